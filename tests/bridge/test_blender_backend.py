"""The Blender backend against known answers (camera.py, assets.py).

The backend runs in a Blender server process (bpy must not share a
process with TensorFlow, which other tests import); skipped without
``bpy`` (``tools/install_renderers.sh``).
"""

import importlib.util

import numpy as np
import pytest

from tests.bridge.remote import Remote
from third_party.renderer_bridge import assets
from third_party.renderer_bridge import camera as cam_lib
from third_party.renderer_bridge import measure
from third_party.renderer_bridge.scene import Camera, Node, Scene

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bpy") is None,
    reason="Blender as a module is not installed (tools/install_renderers.sh)")

W, H = 312, 96
CAM = Camera(position=(0.0, 0.0, 1.6), pitch_deg=5.0, vfov_deg=40.0)
GROUND = (Node(1, 1, "ground/grass", (0.0, 50.0, 0.0), scale=(200, 200, 1)),
          Node(2, 2, "road/asphalt", (0.0, 50.0, 0.0), scale=(8, 200, 1)))


@pytest.fixture(scope="module")
def backend():
  remote = Remote("blender")
  yield remote
  remote.close()


def car(iid, x, y, yaw=0.0, asset="car/sedan"):
  return Node(iid, 7, asset, (x, y, 0.0), yaw_deg=yaw,
              color=(0.7, 0.1, 0.1), is_object=True, class_name="car")


def reference_mask(node, cam, intr, width, height):
  """[H, W] bool: pixels whose centre lies in a projected triangle of the
  node (all in front of the camera), a plain pinhole rasteriser."""
  v = assets.world_vertices(assets.catalogue()[node.asset_id], node.position,
                            node.yaw_deg, node.scale)
  p = cam_lib.to_camera(cam, v)
  assert (p[:, 2] > cam.near).all()
  tri = cam_lib.project(intr, p).reshape(-1, 3, 2)
  u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
  mask = np.zeros((height, width), bool)
  for a, b, c in tri:
    area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    if abs(area) < 1e-9:
      continue
    e = [(q[0] - p0[0]) * (v - p0[1]) - (q[1] - p0[1]) * (u - p0[0])
         for p0, q in ((a, b), (b, c), (c, a))]
    s = np.sign(area)
    mask |= (s * e[0] >= 0) & (s * e[1] >= 0) & (s * e[2] >= 0)
  return mask


def box_of(mask):
  ys, xs = np.nonzero(mask)
  return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_car_ahead_known_answer(backend):
  """Box centred on cx; 1 m to the right moves it by fx / Z px."""
  intr = cam_lib.intrinsics(CAM, W, H)
  centres = []
  for x in (0.0, 1.0):
    node = car(10, x, 15.0)
    r = backend.render(Scene(CAM, GROUND + (node,)), W, H, False)
    assert r.intrinsics == intr
    (info,) = r.objects
    assert info.instance_id == 10
    assert info.occlusion == 0.0 and info.truncation == 0.0
    mask = r.instance == 10
    ref = reference_mask(node, CAM, intr, W, H)
    np.testing.assert_allclose(box_of(mask), box_of(ref), atol=1)
    assert (mask != ref).sum() <= 0.01 * ref.sum() + 2  # ties on edges
    assert info.box == tuple(box_of(mask))
    centres.append((info.box[0] + info.box[2]) / 2)
  assert abs(centres[0] - intr.cx) <= 1.0
  # The box's sides are the near face's corners: their depth sets the shift.
  z = cam_lib.to_camera(CAM, np.array([1.0, 15.0 - 2.25, 0.6]))[2]
  assert abs(centres[1] - centres[0] - intr.fx / z) <= 1.0


@pytest.mark.parametrize("yaw, pitch, roll, width, height", [
    (30.0, 10.0, 8.0, 161, 75), (-120.0, -5.0, -15.0, 96, 128)])
def test_turned_camera_matches_the_pinhole_model(backend, yaw, pitch, roll,
                                                 width, height):
  """Any yaw, pitch, roll and an odd canvas: the car's pixels are those
  whose centres a pinhole projection of its triangles covers."""
  cam = Camera(position=(1.0, -2.0, 2.5), yaw_deg=yaw, pitch_deg=pitch,
               roll_deg=roll, vfov_deg=55.0)
  forward = cam_lib.world_from_camera(cam)[:, 2]
  at = np.asarray(cam.position) + 12.0 * forward
  node = car(9, at[0], at[1], yaw=40.0, asset="car/van")
  r = backend.render(Scene(cam, (node,)), width, height, False)
  intr = cam_lib.intrinsics(cam, width, height)
  ref = reference_mask(node, cam, intr, width, height)
  mask = r.instance == 9
  assert ref.sum() > 100
  np.testing.assert_allclose(box_of(mask), box_of(ref), atol=1)
  assert (mask != ref).sum() <= 0.01 * ref.sum() + 2


def test_layers_hold_exactly_the_scene_ids(backend):
  nodes = GROUND + (
      Node(3, 3, "sidewalk/slab", (6.0, 50.0, 0.0), scale=(4, 200, 1)),
      Node(4, 4, "building/block", (14.0, 40.0, 0.0), scale=(8, 10, 8),
           color=(0.7, 0.5, 0.4)),
      Node(5, 5, "tree/conifer", (-7.0, 25.0, 0.0)),
      Node(300, 6, "pedestrian/adult", (5.0, 12.0, 0.0), yaw_deg=90.0,
           is_object=True),
      car(257, -2.0, 10.0, yaw=180.0), car(4095, 2.0, 20.0, 5.0, "car/van"),
      car(65535, -2.0, 30.0, 180.0, "car/hatchback"))
  r = backend.render(Scene(CAM, nodes), W, H, False)
  assert r.rgb.shape == (H, W, 3) and r.rgb.dtype == np.uint8
  assert r.instance.dtype == np.uint16 and r.semantic.dtype == np.uint8
  assert set(np.unique(r.instance)) == {0} | {n.instance_id for n in nodes}
  semantic = {0: 0} | {n.instance_id: n.semantic_id for n in nodes}
  expected = np.vectorize(semantic.get)(r.instance)
  np.testing.assert_array_equal(r.semantic, expected)
  assert [o.instance_id for o in r.objects] == [300, 257, 4095, 65535]
  for o in r.objects:
    assert o.visible_pixels == (r.instance == o.instance_id).sum() > 0
    assert o.alone_pixels >= o.visible_pixels
  # The sky is above the horizon, the ground below; a car at +x is right.
  assert (r.instance[:5] == 0).all() and (r.instance[-5:] != 0).all()
  assert r.objects[2].box[0] > cam_lib.intrinsics(CAM, W, H).cx


def test_occlusion_of_a_car_behind_another(backend):
  front, back = car(10, 0.0, 10.0), car(11, 0.0, 16.0)
  r = backend.render(Scene(CAM, GROUND + (front, back)), W, H, False)
  info = {o.instance_id: o for o in r.objects}
  assert info[10].occlusion < 0.01
  assert info[11].occlusion > 0.5
  assert info[11].alone_pixels > info[11].visible_pixels > 0
  assert info[10].truncation == info[11].truncation == 0.0


def test_truncation_and_shared_passes(backend):
  """Cars far apart share an extended-canvas pass without disturbing each
  other; a car cut by the image's edge has 0 < truncation < 1."""
  cars = (car(10, -8.0, 6.0, yaw=90.0), car(11, 0.0, 12.0),
          car(12, 5.0, 25.0), car(13, -5.0, 22.0, yaw=30.0))
  r = backend.render(Scene(CAM, GROUND + cars), W, H, False)
  info = {o.instance_id: o for o in r.objects}
  assert 0.0 < info[10].truncation < 1.0
  intr = cam_lib.intrinsics(CAM, W, H)
  mx, my = measure.margins(W, H)
  ext = cam_lib.extended(intr, mx, my)
  for node in cars:
    o = info[node.instance_id]
    ref = reference_mask(node, CAM, ext, W + 2 * mx, H + 2 * my)
    assert abs(o.extended_pixels - ref.sum()) <= 0.01 * ref.sum() + 2
    if node.instance_id != 10:
      assert o.occlusion == 0.0 and o.truncation == 0.0
      assert o.alone_pixels == o.visible_pixels


def test_deterministic_and_image_only(backend):
  scene = Scene(CAM, GROUND + (car(10, 0.0, 15.0), car(11, 2.0, 25.0)))
  a = backend.render(scene, W, H, False)
  b = backend.render(scene, W, H, False)
  assert a.rgb.tobytes() == b.rgb.tobytes()
  assert a.instance.tobytes() == b.instance.tobytes()
  assert a.objects == b.objects
  c = backend.render(scene, W, H, True)
  assert c.instance is None and c.semantic is None and c.objects == ()
  assert c.rgb.tobytes() == a.rgb.tobytes()
  # Nothing leaks into the next scene.
  d = backend.render(Scene(CAM, (car(5, 0.0, 15.0),)), W, H, False)
  assert set(np.unique(d.instance)) == {0, 5}
  assert np.ptp(a.rgb.reshape(-1, 3), 0).max() > 50  # not a blank image


def test_cycles_rgb_is_deterministic():
  be = Remote("blender-cycles")
  try:
    scene = Scene(CAM, GROUND + (car(10, 0.0, 15.0),))
    a, b = (be.render(scene, 104, 32, True) for _ in range(2))
  finally:
    be.close()
  assert a.rgb.shape == (32, 104, 3)
  assert a.rgb.tobytes() == b.rgb.tobytes()
  assert "cycles" in be.name
