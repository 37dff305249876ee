"""KITTI's 3D object fields and calibration for scenes of the renderer bridge.

Host-side NumPy.  Frames are those of ``third_party/renderer_bridge``:
the world in metres with z up; the camera frame is OpenCV's (x right, y
down, z forward), which is KITTI's camera coordinate system; a mesh
asset's object frame has x across, y along (the asset faces +y) and z up,
its origin at the centre of its base (``assets.py``).

KITTI's object devkit (``readme.txt``) defines, per object:

* dimensions: 3D object dimensions: height, width, length (in meters);
* location: 3D object location x,y,z in camera coordinates (in meters);
* rotation_y: rotation ry around Y-axis in camera coordinates [-pi..pi];
* alpha: observation angle of object, ranging [-pi..pi];

and its box (``computeBox3D``): ``location`` is the centre of the box's
bottom face; the length runs along the object's x axis, the width along
its z axis and the height up (camera -y); rotation ry turns the object
about camera Y, so its x axis points along (cos ry, 0, -sin ry).

Here, for a node with a mesh asset (``from_pose``):

* h, w, l: the asset's bounding box (``Mesh.bounds``) along its z, x, y
  axes, times the node's scale along those axes;
* location: the centre of that box's bottom face, in the camera frame;
* rotation_y: the node's heading (the asset's +y, its front) seen in the
  camera's x-z plane, ry = arctan2(-d_z, d_x): 0 faces the camera's +x
  (right), -pi/2 away from the camera (+z; a car driving ahead of it),
  pi/2 towards it, +-pi to its left;
* alpha = rotation_y - arctan2(x, z), wrapped to [-pi, pi]: 0 (or pi)
  when the object is seen exactly from its side, whatever its bearing.

KITTI's box turns about the camera's Y axis only: it is the node's box
exactly when the camera has no pitch and no roll (the world's up is the
camera's -y).  A pitched or rolled camera sees the box tilted, which the
format cannot state; the location is still exact and the heading is its
projection, so the corners move by about l/2 sin(pitch) (8 cm for a
4.5 m car at 2 degrees).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from third_party.renderer_bridge import assets as assets_lib
from third_party.renderer_bridge import camera as camera_lib
from third_party.renderer_bridge import measure
from third_party.renderer_bridge.scene import Camera, Scene

# Velodyne axes (x forward, y left, z up) in a level camera's frame.
_CAM_FROM_VELO_AXES = np.array([[0.0, -1.0, 0.0],
                                [0.0, 0.0, -1.0],
                                [1.0, 0.0, 0.0]])


@dataclasses.dataclass(frozen=True)
class Boxes3D:
  """KITTI's 3D fields of objects (leading shape [...]).

  Attributes:
    dimensions: [..., 3] float64 height, width, length (metres).
    location: [..., 3] float64 bottom centre x, y, z (camera frame, metres).
    rotation_y: [...] float64 radians in [-pi, pi].
    alpha: [...] float64 observation angle, radians in [-pi, pi].
  """
  dimensions: np.ndarray
  location: np.ndarray
  rotation_y: np.ndarray
  alpha: np.ndarray


def wrap_angle(angle: np.ndarray) -> np.ndarray:
  """Radians -> the same angle in [-pi, pi]."""
  angle = np.asarray(angle, np.float64)
  return np.arctan2(np.sin(angle), np.cos(angle))


def observation_angle(rotation_y: np.ndarray,
                      location: np.ndarray) -> np.ndarray:
  """KITTI's alpha = rotation_y - arctan2(x, z), wrapped to [-pi, pi]."""
  location = np.asarray(location, np.float64)
  return wrap_angle(np.asarray(rotation_y) - np.arctan2(location[..., 0],
                                                        location[..., 2]))


def from_pose(a: np.ndarray, t: np.ndarray, bounds: np.ndarray) -> Boxes3D:
  """KITTI fields of K objects from their camera-from-object transforms
  (``measure.camera_from_object``: p_cam = a @ p + t, ``a`` [K, 3, 3] a
  rotation times the per-axis scale, ``t`` [K, 3]) and their unscaled
  object-frame bounding boxes ``bounds`` [K, 2, 3] (min and max corner,
  ``Mesh.bounds``)."""
  a = np.asarray(a, np.float64)
  bounds = np.asarray(bounds, np.float64)
  lo, hi = bounds[..., 0, :], bounds[..., 1, :]
  scale = np.linalg.norm(a, axis=-2)  # a's columns: scaled object axes
  size = (hi - lo) * scale  # along the object's x, y, z
  base = np.concatenate([(lo[..., :2] + hi[..., :2]) / 2, lo[..., 2:]], -1)
  location = np.einsum("...ij,...j->...i", a, base) + np.asarray(t)
  front = a[..., :, 1]  # the asset's +y in the camera frame
  rotation_y = np.arctan2(-front[..., 2], front[..., 0])
  return Boxes3D(dimensions=size[..., [2, 0, 1]], location=location,
                 rotation_y=rotation_y,
                 alpha=observation_angle(rotation_y, location))


def corners(dimensions: np.ndarray, location: np.ndarray,
            rotation_y: np.ndarray) -> np.ndarray:
  """[..., 8, 3] corners of KITTI boxes in the camera frame, as the
  devkit's ``computeBox3D`` (bottom face first)."""
  h, w, l = np.moveaxis(np.asarray(dimensions, np.float64), -1, 0)
  sign_x = np.array([1, 1, -1, -1, 1, 1, -1, -1], np.float64)
  sign_z = np.array([1, -1, -1, 1, 1, -1, -1, 1], np.float64)
  up = np.array([0, 0, 0, 0, 1, 1, 1, 1], np.float64)
  x = sign_x * (l[..., None] / 2)
  y = -up * h[..., None]
  z = sign_z * (w[..., None] / 2)
  ry = np.asarray(rotation_y, np.float64)[..., None]
  c, s = np.cos(ry), np.sin(ry)
  return np.stack([c * x + s * z, y, -s * x + c * z],
                  -1) + np.asarray(location, np.float64)[..., None, :]


def scene_boxes(scene: Scene, num_slots: int) -> tuple[Boxes3D, np.ndarray]:
  """KITTI fields of a bridge scene's nodes by slot (a node's slot is its
  instance id - 1, as ``render.bridge.Codec`` numbers them).

  Returns:
    ``Boxes3D`` of leading shape [num_slots] (zeros where no node) and
    has [num_slots] bool, the slot holds a node.
  """
  dims = np.zeros((num_slots, 3))
  location = np.zeros((num_slots, 3))
  rotation_y, alpha = np.zeros(num_slots), np.zeros(num_slots)
  has = np.zeros(num_slots, bool)
  if scene.nodes:
    a, t = measure.camera_from_object(scene.camera, list(scene.nodes))
    catalogue = assets_lib.catalogue()
    bounds = np.stack([catalogue[n.asset_id].bounds for n in scene.nodes])
    b = from_pose(a, t, bounds)
    slots = np.array([n.instance_id - 1 for n in scene.nodes])
    dims[slots], location[slots] = b.dimensions, b.location
    rotation_y[slots], alpha[slots] = b.rotation_y, b.alpha
    has[slots] = True
  return Boxes3D(dims, location, rotation_y, alpha), has


def projection(camera: Camera, width: int, height: int) -> np.ndarray:
  """[3, 4] K [I | 0]: camera-frame points to pixel-edge coordinates of
  the width x height image (``camera.intrinsics``)."""
  k = camera_lib.intrinsics(camera, width, height)
  return np.array([[k.fx, 0.0, k.cx, 0.0], [0.0, k.fy, k.cy, 0.0],
                   [0.0, 0.0, 1.0, 0.0]])


def cam_from_level(camera: Camera) -> np.ndarray:
  """[3, 3] rotation from a level frame at the camera (x forward, y left,
  z up: KITTI's Velodyne axes; turned by the camera's yaw, without its
  pitch and roll) to the camera frame."""
  level = dataclasses.replace(camera, pitch_deg=0.0, roll_deg=0.0)
  return (camera_lib.world_from_camera(camera).T
          @ camera_lib.world_from_camera(level) @ _CAM_FROM_VELO_AXES)


def calib_text(camera: Camera, width: int, height: int) -> str:
  """A KITTI object calibration file (``calib/*.txt``) for one image.

  P0..P3 = K [I | 0] (one camera: labels are in its frame; pixel-edge
  coordinates, principal point at the image centre), R0_rect = I,
  Tr_velo_to_cam = [``cam_from_level`` | 0] (no lidar: a level frame at
  the camera with Velodyne axes), Tr_imu_to_velo = [I | 0].
  """
  p = projection(camera, width, height)
  zero = np.zeros((3, 1))
  rows = [(f"P{i}", p) for i in range(4)] + [
      ("R0_rect", np.eye(3)),
      ("Tr_velo_to_cam", np.concatenate([cam_from_level(camera), zero], 1)),
      ("Tr_imu_to_velo", np.concatenate([np.eye(3), zero], 1))]
  return "".join(f"{name}: " + " ".join(
      f"{v:.12e}" for v in np.round(m, 12).ravel() + 0.0) + "\n"
                 for name, m in rows)
