"""The moderngl (EGL) backend against known answers: where a car lands in
the image, its ids, occlusion and truncation, and exact, repeatable layers.

The backend runs in a server process (an EGL context of Mesa's llvmpipe
and TensorFlow segfault in one process; see ``remote.py``).
"""

import threading

import numpy as np
import pytest

from tests.bridge.remote import Remote
from third_party.renderer_bridge import assets
from third_party.renderer_bridge import camera as camera_lib
from third_party.renderer_bridge import gl_backend  # srgb, AMBIENT only
from third_party.renderer_bridge import measure
from third_party.renderer_bridge.scene import Camera, Node, Scene

W, H = 312, 96
CAM = Camera(position=(0.0, 0.0, 1.6), pitch_deg=5.0, vfov_deg=40.0)
SKY = (0.55, 0.7, 0.9)
GROUND = (
    Node(1, 1, "ground/grass", (0.0, 50.0, 0.0), scale=(200.0, 200.0, 1.0)),
    Node(2, 2, "road/asphalt", (0.0, 50.0, 0.0), scale=(8.0, 200.0, 1.0)),
)


def car(instance_id, x, y, yaw=0.0, asset="car/sedan", color=(0.8, 0.1, 0.1)):
  return Node(instance_id, 10, asset, (x, y, 0.0), yaw_deg=yaw, color=color,
              is_object=True, class_name="car")


def scene(*nodes, cam=CAM):
  return Scene(cam, GROUND + tuple(nodes), sky=SKY)


def street(n_cars=12, seed=0):
  """A road with cars in both lanes, a pedestrian, trees and buildings."""
  rng = np.random.default_rng(seed)
  nodes = [
      Node(3, 3, "road/marking", (0, 50, 0), scale=(0.15, 200, 1)),
      Node(4, 4, "sidewalk/slab", (-5.5, 50, 0), scale=(3, 200, 1)),
      Node(5, 4, "sidewalk/slab", (5.5, 50, 0), scale=(3, 200, 1)),
      Node(6, 5, "building/block", (-12, 40, 0), scale=(8, 20, 12),
           color=(0.6, 0.3, 0.3)),
      Node(7, 6, "tree/conifer", (7.5, 30, 0)),
      Node(8, 7, "pedestrian/adult", (5, 12, 0.15), color=(0.8, 0.1, 0.1),
           is_object=True)]
  for k in range(n_cars):
    lane = 2.0 if k % 2 else -2.0
    nodes.append(car(20 + k, lane + rng.normal(0, 0.3),
                     6 + 6 * k + rng.uniform(0, 3),
                     yaw=(0 if lane > 0 else 180) + rng.normal(0, 5),
                     asset=("car/sedan", "car/hatchback", "car/van")[k % 3],
                     color=tuple(rng.uniform(0.1, 0.9, 3))))
  return scene(*nodes, cam=Camera(position=(0.5, 0, 1.6), pitch_deg=5))


@pytest.fixture(scope="module")
def backend():
  b = Remote("moderngl")
  yield b
  b.close()


def projected_box(node, cam=CAM):
  """(u0, v0, u1, v1) of the node's mesh vertices, pixels (all in front)."""
  v = assets.world_vertices(assets.catalogue()[node.asset_id], node.position,
                            node.yaw_deg, node.scale)
  uv = camera_lib.project(camera_lib.intrinsics(cam, W, H),
                          camera_lib.to_camera(cam, v))
  return (*uv.min(0), *uv.max(0))


def test_car_lands_where_the_camera_model_says(backend):
  r = backend.render(scene(car(3, 0.0, 15.0)), W, H, False)
  o = r.objects[0]
  assert o.visible_pixels > 100 and o.occlusion == 0 and o.truncation == 0
  # The box of covered pixel centres vs the projected mesh, within a pixel:
  # same rows (not flipped) and columns (not mirrored).
  np.testing.assert_allclose(o.box, projected_box(car(3, 0.0, 15.0)),
                             atol=1.0)
  intr = camera_lib.intrinsics(CAM, W, H)
  assert r.intrinsics == intr
  assert abs((o.box[0] + o.box[2]) / 2 - intr.cx) <= 0.5  # symmetric car

  # 1 m to the right: the box's right edge (the car's rear corners, the
  # face toward the camera) moves by fx / Z pixels.
  moved = backend.render(scene(car(3, 1.0, 15.0)), W, H, False).objects[0]
  rear = camera_lib.to_camera(CAM, [1.9, 15.0 - 4.5 / 2, 0.25])
  np.testing.assert_allclose(moved.box[2] - o.box[2], intr.fx / rear[2],
                             atol=1.0)
  assert moved.box[0] > o.box[0] and moved.box[1:4:2] == o.box[1:4:2]


def test_layers_hold_the_scene_ids(backend):
  s = street()
  r = backend.render(s, W, H, False)
  assert r.rgb.shape == (H, W, 3) and r.rgb.dtype == np.uint8
  assert r.instance.shape == (H, W) and r.instance.dtype == np.uint16
  assert r.semantic.shape == (H, W) and r.semantic.dtype == np.uint8
  ids = {n.instance_id for n in s.nodes}
  seen = set(np.unique(r.instance).tolist())
  assert 0 in seen and seen - {0} <= ids and len(seen) > 8
  semantic_of = {n.instance_id: n.semantic_id for n in s.nodes} | {0: 0}
  expected = np.vectorize(semantic_of.get)(r.instance)
  np.testing.assert_array_equal(r.semantic, expected)
  # Sky: id 0, the sky colour, at the top; ground at the bottom.
  sky = r.instance == 0
  assert sky[0].sum() > W // 2 and not sky[-1].any()
  np.testing.assert_allclose(  # sRGB-encoded bytes (GPU pow: +-1)
      r.rgb[sky], np.broadcast_to(255 * gl_backend.srgb(np.array(SKY)),
                                  (sky.sum(), 3)), atol=1)
  # Objects: one per is_object node, in order, boxes around their pixels.
  objects = [n for n in s.nodes if n.is_object]
  assert [o.instance_id for o in r.objects] == [n.instance_id
                                                for n in objects]
  for o in r.objects:
    assert o.visible_pixels == (r.instance == o.instance_id).sum()
    if o.visible_pixels:
      x0, y0, x1, y1 = o.box
      inside = (r.instance[y0:y1, x0:x1] == o.instance_id).sum()
      assert inside == o.visible_pixels


def test_occlusion_and_truncation(backend):
  front, back = backend.render(scene(car(3, 0.0, 12.0), car(4, 0.0, 20.0)),
                               W, H, False).objects
  assert front.occlusion < 0.02 and back.occlusion > 0.5
  assert back.alone_pixels > 0 and back.truncation == 0

  # Half out of the left edge: find x where the projected box is centred
  # on u = 0.
  lo, hi = -40.0, 0.0
  for _ in range(40):
    x = (lo + hi) / 2
    u0, _, u1, _ = projected_box(car(3, x, 15.0))
    lo, hi = (x, hi) if (u0 + u1) / 2 < 0 else (lo, x)
  o = backend.render(scene(car(3, x, 15.0)), W, H, False).objects[0]
  assert 0.3 < o.truncation < 0.7 and o.occlusion < 0.02
  assert o.box[0] == 0

  # Behind the camera, far outside, off-image but on the extended canvas.
  behind, far_left, margin = backend.render(
      scene(car(3, 0.0, -10.0), car(4, -80.0, 15.0), car(5, x - 12.0, 15.0)),
      W, H, False).objects
  for o in (behind, far_left):
    assert (o.box, o.visible_pixels, o.alone_pixels, o.extended_pixels,
            o.truncation) == ((0, 0, 0, 0), 0, 0, 0, 1.0)
  assert margin.extended_pixels > 0 and margin.alone_pixels == 0
  assert margin.truncation == 1.0


def test_alone_masks_equal_one_pass_per_object(backend):
  s = street(n_cars=12, seed=1)
  s = Scene(s.camera, s.nodes + (car(40, 0.3, 1.0),  # crosses the near plane
                                 car(41, -30.0, 12.0)), s.sky)
  shared = backend.render(s, W, H, False).objects
  single = Remote("moderngl-one-pass")
  try:
    assert single.render(s, W, H, False).objects == shared
  finally:
    single.close()
  # The extended canvas is the image of a camera with the same focal
  # length on a (W + 2 mx) x (H + 2 my) image: render each object alone.
  mx, my = measure.margins(W, H)
  fx = camera_lib.intrinsics(s.camera, W, H).fx
  wide = Camera(position=s.camera.position, pitch_deg=s.camera.pitch_deg,
                vfov_deg=float(np.degrees(2 * np.arctan((H / 2 + my) / fx))))
  objects = [n for n in s.nodes if n.is_object]
  for n, o in zip(objects, shared):
    alone = backend.render(Scene(wide, (n,)), W + 2 * mx, H + 2 * my, False)
    assert abs(alone.objects[0].visible_pixels - o.extended_pixels) <= 2, n


def test_renders_are_byte_identical(backend):
  s = street(seed=2)
  a = backend.render(s, W, H, False)
  backend.render(street(seed=3), 200, 64, False)  # other state between
  b = backend.render(s, W, H, False)
  for x, y in ((a.rgb, b.rgb), (a.instance, b.instance),
               (a.semantic, b.semantic)):
    assert x.tobytes() == y.tobytes()
  assert a.objects == b.objects


def test_image_only_gives_the_same_rgb(backend):
  s = street(seed=4)
  full = backend.render(s, W, H, False)
  fast = backend.render(s, W, H, True)
  assert fast.instance is None and fast.semantic is None
  assert fast.objects == ()
  assert fast.rgb.tobytes() == full.rgb.tobytes()
  assert fast.intrinsics == full.intrinsics


def test_concurrent_requests(backend):
  """The server renders on its worker threads, one request at a time."""
  s = street(seed=5)
  here = backend.render(s, W, H, False)
  out = []
  threads = [threading.Thread(target=lambda: out.append(
      backend.render(s, W, H, False))) for _ in range(3)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert len(out) == 3
  for o in out:
    assert o.rgb.tobytes() == here.rgb.tobytes()
    assert o.objects == here.objects


def test_shading_and_tint(backend):
  """A car body takes the node colour, lit between the ambient and full
  light; a grey asset ignores the node colour."""
  r = backend.render(scene(car(3, 0.0, 10.0, color=(1.0, 0.0, 0.0))), W, H,
                     False)
  body = r.rgb[r.instance == 3]
  red = body[(body[:, 1] == 0) & (body[:, 2] == 0)]
  assert len(red) > 0.3 * len(body)
  assert red[:, 0].min() >= np.floor(255 * gl_backend.srgb(
      gl_backend.AMBIENT))
  road = r.rgb[r.instance == 2]
  assert (road[:, 0] == road[:, 1]).all()  # untinted grey asphalt
  assert len(np.unique(road, axis=0)) == 1  # flat: one normal, one shade
