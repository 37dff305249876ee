"""KITTI's 3D fields of bridge scenes: known answers in NumPy (a car ahead,
to the right, turned; the asset's box times the scale), the devkit's box
against the node's own box, the writer's rows and calibration, and the
projected boxes against what a real renderer server (moderngl) draws."""

import json
import os
import types

import numpy as np
import pytest

from experiments.configs import driving as driving_config
from metasim_jax import grammar as grammar_lib
from metasim_jax import render as render_lib
from metasim_jax.export import generate as generate_lib
from metasim_jax.export import kitti, kitti3d
from metasim_jax.export import run as run_lib
from metasim_jax.export.batch import LabeledBatch
from metasim_jax.render import bridge
from tests.export.conftest import make_run_dir
from third_party.renderer_bridge import assets as assets_lib
from third_party.renderer_bridge import camera as camera_lib
from third_party.renderer_bridge import measure
from third_party.renderer_bridge.scene import Camera, Node, Scene

PI = np.pi
CAM_HEIGHT = 1.65
# The sedan's box: 1.8 m body plus wheels 2 cm proud on each side, 4.5 m
# long, 1.5 m high (assets.py).
SEDAN_HWL = (1.5, 1.84, 4.5)
PRIOR = os.path.join(driving_config.HERE, "prior.json")


def car(position, yaw_deg=0.0, asset="car/sedan", scale=(1.0, 1.0, 1.0),
        instance_id=1):
  return Node(instance_id=instance_id, semantic_id=1, asset_id=asset,
              position=tuple(map(float, position)), yaw_deg=yaw_deg,
              scale=scale, is_object=True, class_name="car")


def boxes_of(camera, *nodes):
  b, has = kitti3d.scene_boxes(Scene(camera, tuple(nodes)), len(nodes))
  assert has.all()
  return b


def angle_close(got, want, atol=1e-9):
  np.testing.assert_allclose(kitti3d.wrap_angle(np.asarray(got) - want), 0.0,
                             atol=atol)


# The heading of a car straight ahead on the camera's axis (world yaw,
# counter-clockwise seen from above; the asset faces +y, the camera looks
# along +y) -> KITTI rotation_y.
@pytest.mark.parametrize("yaw_deg,rotation_y", [
    (0.0, -PI / 2),    # driving ahead, away from the camera
    (180.0, PI / 2),   # oncoming, facing the camera
    (-90.0, 0.0),      # facing the camera's +x (right)
    (90.0, PI),        # facing left
    (30.0, -PI / 2 - PI / 6)])
def test_car_straight_ahead(yaw_deg, rotation_y):
  d = 20.0
  b = boxes_of(Camera(position=(0.0, 0.0, CAM_HEIGHT)), car((0, d, 0),
                                                            yaw_deg))
  np.testing.assert_allclose(b.location[0], [0.0, CAM_HEIGHT, d], atol=1e-9)
  np.testing.assert_allclose(b.dimensions[0], SEDAN_HWL, atol=1e-6)
  angle_close(b.rotation_y[0], rotation_y)
  # On the optical axis (arctan2(x, z) = 0), alpha equals rotation_y.
  angle_close(b.alpha[0], rotation_y)
  assert -PI <= b.rotation_y[0] <= PI and -PI <= b.alpha[0] <= PI


def test_car_to_the_right_at_45_degrees():
  d = 15.0
  cam = Camera(position=(0.0, 0.0, CAM_HEIGHT))
  b = boxes_of(cam, car((d, d, 0), 0.0),
               car((d, d, 0), -45.0, instance_id=2))
  np.testing.assert_allclose(b.location, [[d, CAM_HEIGHT, d]] * 2,
                             atol=1e-9)
  # Driving along the road: rotation_y -pi/2, seen at bearing pi/4.
  angle_close(b.rotation_y[0], -PI / 2)
  angle_close(b.alpha[0], -PI / 2 - PI / 4)
  # Driving away along the line of sight: seen from straight behind, as
  # the car ahead on the axis (alpha -pi/2).
  angle_close(b.rotation_y[1], -PI / 4)
  angle_close(b.alpha[1], -PI / 2)


def test_alpha_is_rotation_y_minus_the_bearing():
  rng = np.random.default_rng(0)
  cam = Camera(position=(1.0, -2.0, 1.4), yaw_deg=12.0)
  nodes = [car((rng.uniform(-20, 20), rng.uniform(5, 60), 0),
               rng.uniform(-180, 180), instance_id=i + 1) for i in range(20)]
  b = boxes_of(cam, *nodes)
  x, z = b.location[:, 0], b.location[:, 2]
  want = b.rotation_y - np.arctan2(x, z)
  angle_close(b.alpha, want)
  assert (np.abs(b.alpha) <= PI).all() and (np.abs(b.rotation_y) <= PI).all()


def test_dimensions_are_the_asset_box_times_the_scale():
  scale = (2.0, 1.5, 0.5)  # across, along, up
  b = boxes_of(Camera(), car((0, 30, 0), 0.0, "car/van", scale))
  lo, hi = assets_lib.catalogue()["car/van"].bounds
  size = (hi - lo) * scale  # x (width), y (length), z (height)
  np.testing.assert_allclose(b.dimensions[0], [size[2], size[0], size[1]],
                             rtol=1e-9)


@pytest.mark.parametrize("asset", ["car/sedan", "car/van",
                                   "pedestrian/adult", "tree/conifer"])
def test_kitti_box_is_the_node_box_for_a_level_camera(asset):
  """The devkit's 8 corners from (h w l, x y z, ry) are the corners of the
  node's scaled, turned asset box (``measure.camera_from_object``)."""
  cam = Camera(position=(3.0, -4.0, 2.0), yaw_deg=25.0)
  node = car((-2.0, 18.0, 0.3), 137.0, asset, scale=(1.3, 0.8, 1.1))
  b = boxes_of(cam, node)
  got = kitti3d.corners(b.dimensions[0], b.location[0], b.rotation_y[0])
  a, t = measure.camera_from_object(cam, [node])
  mesh = assets_lib.catalogue()[asset]
  want = measure.box_corners(mesh) @ a[0].T + t[0]
  dist = np.linalg.norm(got[:, None] - want[None], axis=-1)
  assert np.allclose(dist.min(1), 0.0, atol=1e-6)
  assert np.allclose(dist.min(0), 0.0, atol=1e-6)


def test_pitched_camera_keeps_the_exact_location():
  cam = Camera(position=(0.5, 1.0, CAM_HEIGHT), yaw_deg=-5.0, pitch_deg=4.0,
               roll_deg=2.0)
  node = car((2.0, 25.0, 0.0), 10.0)
  b = boxes_of(cam, node)
  # The sedan's box is centred on its origin: the bottom centre is the
  # node's position.
  np.testing.assert_allclose(b.location[0],
                             camera_lib.to_camera(cam, node.position),
                             atol=1e-9)
  # A car driving straight ahead of a pitched camera still has -pi/2.
  ahead = boxes_of(Camera(position=(0, 0, CAM_HEIGHT), pitch_deg=6.0),
                   car((0.0, 30.0, 0.0), 0.0))
  angle_close(ahead.rotation_y[0], -PI / 2)


def test_codec_scenes_of_the_driving_grammar():
  """Attributes -> composed world poses (road frame) -> slots' fields."""
  with open(PRIOR, encoding="utf-8") as f:
    g = grammar_lib.compile_grammar(json.load(f))
  names = render_lib.semantic_names(g)
  codec = bridge.Codec.create(g, names)
  attrs = np.zeros((1, g.num_slots, g.num_attrs), np.float32)
  mask = np.zeros((1, g.num_slots), bool)
  col = g.col
  cam, road = g.slot("scene/camera[0]"), g.slot("scene/road[0]")
  car0, car1 = g.slot("scene/road[0]/car[0]"), g.slot("scene/road[0]/car[1]")
  mask[0, [0, cam, road, car0, car1]] = True
  attrs[0, cam, col("z")] = CAM_HEIGHT
  attrs[0, cam, col("fov")] = 30.0
  attrs[0, road, col("y")] = 100.0
  attrs[0, road, [col("sx"), col("sy")]] = 10.0, 220.0
  attrs[0, car0, col("y")] = -80.0              # 20 m ahead of the camera
  attrs[0, car1, [col("x"), col("y"), col("yaw"), col("model")]] = (
      3.0, -70.0, 180.0, 2.0)                     # an oncoming van
  (scene,) = codec.scenes(attrs, mask)
  b, has = kitti3d.scene_boxes(scene, g.num_slots)
  assert set(np.flatnonzero(has)) == {road, car0, car1}
  np.testing.assert_allclose(b.location[car0], [0, CAM_HEIGHT, 20],
                             atol=1e-6)
  np.testing.assert_allclose(b.dimensions[car0], SEDAN_HWL, atol=1e-6)
  angle_close(b.rotation_y[car0], -PI / 2)
  np.testing.assert_allclose(b.location[car1], [3, CAM_HEIGHT, 30],
                             atol=1e-6)
  angle_close(b.rotation_y[car1], PI / 2)
  angle_close(b.alpha[car1], PI / 2 - np.arctan2(3, 30))


def test_calibration_projects_like_the_camera():
  cam = Camera(position=(0.0, 0.0, CAM_HEIGHT), yaw_deg=7.0, pitch_deg=3.0,
               vfov_deg=35.0)
  text = kitti3d.calib_text(cam, 312, 96)
  calib = {k: np.array(v.split(), float) for k, v in
           (line.split(": ") for line in text.splitlines())}
  assert list(calib) == ["P0", "P1", "P2", "P3", "R0_rect",
                         "Tr_velo_to_cam", "Tr_imu_to_velo"]
  p2 = calib["P2"].reshape(3, 4)
  pts = np.array([[1.0, 0.5, 10.0], [-3.0, 1.6, 25.0]])
  uvw = np.concatenate([pts, np.ones((2, 1))], 1) @ p2.T
  np.testing.assert_allclose(
      uvw[:, :2] / uvw[:, 2:],
      camera_lib.project(camera_lib.intrinsics(cam, 312, 96), pts),
      atol=1e-6)
  np.testing.assert_allclose(calib["R0_rect"], np.eye(3).ravel())
  # Velodyne axes: forward is the level heading, up is the world's up.
  tr = calib["Tr_velo_to_cam"].reshape(3, 4)
  r = camera_lib.world_from_camera(cam)
  np.testing.assert_allclose(tr[:, :3] @ [0, 0, 1], r.T @ [0, 0, 1],
                             atol=1e-9)
  yaw = np.radians(cam.yaw_deg)
  np.testing.assert_allclose(tr[:, :3] @ [1, 0, 0],
                             r.T @ [-np.sin(yaw), np.cos(yaw), 0], atol=1e-9)
  np.testing.assert_allclose(tr[:, 3], 0.0)


def test_writer_rows_and_calib_of_a_3d_scene(tmp_path):
  """KittiWriter on a hand-made batch: one car 20 m ahead -> its row."""
  with open(PRIOR, encoding="utf-8") as f:
    raw = json.load(f)
  g = grammar_lib.compile_grammar(raw)
  names = render_lib.semantic_names(g)
  h, w = 48, 160
  cam, car0 = g.slot("scene/camera[0]"), g.slot("scene/road[0]/car[0]")
  road = g.slot("scene/road[0]")
  attrs = np.zeros((1, g.num_slots, g.num_attrs), np.float32)
  attrs[0, cam, [g.col("z"), g.col("fov")]] = CAM_HEIGHT, 30.0
  attrs[0, road, g.col("y")] = 100.0
  attrs[0, car0, g.col("y")] = -80.0
  mask = np.zeros((1, g.num_slots), bool)
  mask[0, [0, cam, road, car0]] = True
  n = g.num_slots
  visible = np.zeros((1, n), np.int32)
  visible[0, car0] = 12
  box = np.zeros((1, n, 4), np.float32)
  box[0, car0] = (70, 22, 90, 30)
  batch = LabeledBatch(
      image=np.zeros((1, h, w, 3), np.uint8), attrs=attrs, node_mask=mask,
      label=np.zeros(1, np.int32), semantic=np.zeros((1, h, w), np.uint8),
      instance=np.full((1, h, w), -1, np.int32), visible_area=visible,
      visible_box=box, full_box=box, own_area=visible, own_box=box)
  run = types.SimpleNamespace(
      pipe=types.SimpleNamespace(prior=g, canvas=render_lib.Canvas(h, w, 3),
                                 semantic_names=names), grammar=raw)
  writer = kitti.KittiWriter(str(tmp_path), run, {"num_scenes": 1},
                             ("car",))
  writer.write(batch, 0)
  writer.close()
  label = (tmp_path / "training" / "label_2" / "000000.txt").read_text()
  assert label == ("Car 0.00 0 -1.57 70.00 22.00 90.00 30.00 "
                   "1.50 1.84 4.50 0.00 1.65 20.00 -1.57\n")
  calib = (tmp_path / "training" / "calib" / "000000.txt").read_text()
  assert calib == kitti3d.calib_text(Camera(position=(0, 0, CAM_HEIGHT),
                                            vfov_deg=30.0), w, h)


def projected_box(row, p2):
  """2D box (x0, y0, x1, y1) of a label row's 3D box through P2."""
  pts = kitti3d.corners(row[8:11], row[11:14], row[14])
  uvw = np.concatenate([pts, np.ones((8, 1))], 1) @ p2.T
  uv = uvw[:, :2] / uvw[:, 2:]
  return np.concatenate([uv.min(0), uv.max(0)])


@pytest.fixture(scope="module")
def server():
  pytest.importorskip("moderngl")
  from third_party.renderer_bridge import client as client_lib
  client = client_lib.RendererClient.local("moderngl", 1, timeout_s=120)
  yield client
  client.close()


@pytest.mark.parametrize("pitch_deg,tol", [(0.0, 2.5), (3.0, 3.0)])
def test_projected_3d_boxes_match_the_rendered_boxes(server, pitch_deg, tol):
  """Visible, untruncated, unoccluded cars: the box of the projected KITTI
  corners agrees with the renderer's box within a few pixels (the 3D box
  also holds the empty space under the body and beside the cabin; a
  pitched camera tilts the real box)."""
  w, h = 312, 96
  cam = Camera(position=(0.0, 0.0, CAM_HEIGHT), pitch_deg=pitch_deg,
               vfov_deg=30.0)
  cars = [car((0, 20, 0), 0.0), car((6, 25, 0), 60.0, "car/van",
                                    instance_id=2),
          car((-5, 12, 0), 200.0, "car/hatchback", instance_id=3),
          car((-8, 35, 0), -20.0, "car/sedan", (1.1, 1.2, 0.9), 4)]
  ground = Node(instance_id=5, semantic_id=2, asset_id="ground/grass",
                position=(0.0, 100.0, 0.0), scale=(400.0, 400.0, 1.0))
  scene = Scene(cam, tuple(cars) + (ground,))
  (rendered,) = server.render([scene], w, h, False)
  b, _ = kitti3d.scene_boxes(scene, 5)
  p2 = kitti3d.projection(cam, w, h)
  checked = 0
  for o in rendered.objects:
    s = o.instance_id - 1
    if s >= len(cars):
      continue
    assert o.visible_pixels > 0 and o.occlusion == 0 and o.truncation == 0
    row = np.concatenate([np.zeros(8), b.dimensions[s], b.location[s],
                          [b.rotation_y[s]]])
    np.testing.assert_allclose(projected_box(row, p2), o.box, atol=tol)
    checked += 1
  assert checked == len(cars)


@pytest.mark.slow
def test_generate_kitti_from_a_driving_run(tmp_path_factory):
  """``generate --format=kitti`` of a driving run (renderer servers): every
  car row carries 3D fields that the calibration projects onto its 2D
  box (clipped to the image) within a few pixels."""
  pytest.importorskip("moderngl")
  config = driving_config.get_config("smoke")
  run = run_lib.load(make_run_dir(config, str(
      tmp_path_factory.mktemp("driving_run"))))
  names = render_lib.semantic_names(run.pipe.prior)
  out = str(tmp_path_factory.mktemp("driving_kitti") / "out")
  num = 3
  generate_lib.generate(run, out, num_scenes=num, fmt="kitti", seed=0,
                        shard_size=num,
                        stuff=[n for n in names[1:] if n != "car"])
  attrs = np.load(os.path.join(out, "scene_attrs.npy"))
  mask = np.load(os.path.join(out, "scene_node_mask.npy"))
  codec = bridge.Codec.create(run.pipe.prior, tuple(names))
  h, w = config.canvas.height, config.canvas.width
  rows = 0
  for i, scene in enumerate(codec.scenes(attrs, mask)):
    with open(os.path.join(out, "training", "calib", f"{i:06d}.txt"),
              encoding="ascii") as f:
      calib = dict(line.split(": ") for line in f.read().splitlines())
    p2 = np.array(calib["P2"].split(), float).reshape(3, 4)
    np.testing.assert_allclose(p2, kitti3d.projection(scene.camera, w, h),
                               rtol=1e-9)
    with open(os.path.join(out, "training", "label_2", f"{i:06d}.txt"),
              encoding="ascii") as f:
      lines = f.read().splitlines()
    cars = {n.instance_id - 1: n for n in scene.nodes
            if n.class_name == "car"}
    b, _ = kitti3d.scene_boxes(scene, mask.shape[1])
    want = {kitti.fields_3d(b, s) for s in cars}
    for line in lines:
      fields = line.split(" ")
      assert fields[0] == "Car" and len(fields) == 15
      row = np.array(fields[1:], float)
      assert (fields[3], " ".join(fields[8:])) in want  # a car of the scene
      assert row[7] > 0 and -PI <= row[2] <= PI and -PI <= row[13] <= PI
      clipped = np.clip(projected_box(np.concatenate([[0], row]), p2),
                        0, [w, h, w, h])
      np.testing.assert_allclose(clipped, row[3:7], atol=4.0)
      rows += 1
  assert rows > 0
