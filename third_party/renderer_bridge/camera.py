"""Camera geometry shared by every backend (and the KITTI export).

World: metres, z up.  Camera frame (OpenCV's): x right, y down, z forward.
At yaw = pitch = roll = 0 the camera looks along +y with +x to its right;
yaw turns it counter-clockwise seen from above, positive pitch tilts it
down, positive roll turns the camera clockwise about its forward axis (seen
from behind it; the scene then appears turned counter-clockwise).  Pixels are square; the
principal point is the image centre.
"""

from __future__ import annotations

import numpy as np

from third_party.renderer_bridge.scene import Camera, Intrinsics

# Columns: the camera's right, down and forward axes at zero angles.
_BASE = np.array([[1.0, 0.0, 0.0],
                  [0.0, 0.0, 1.0],
                  [0.0, -1.0, 0.0]])


def _rot_z(deg: float) -> np.ndarray:
  c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
  return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_x(deg: float) -> np.ndarray:
  c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
  return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def world_from_camera(cam: Camera) -> np.ndarray:
  """[3, 3] rotation whose columns are the camera axes in the world."""
  # Pitch about the camera's x: forward (0, 0, 1) turns toward down (+y).
  return _rot_z(cam.yaw_deg) @ _BASE @ _rot_x(-cam.pitch_deg) @ _rot_z(
      cam.roll_deg)


def to_camera(cam: Camera, points: np.ndarray) -> np.ndarray:
  """World points [..., 3] -> camera-frame points [..., 3]."""
  r = world_from_camera(cam)
  return (np.asarray(points, np.float64) - np.asarray(cam.position)) @ r


def intrinsics(cam: Camera, width: int, height: int) -> Intrinsics:
  f = 0.5 * height / np.tan(np.radians(cam.vfov_deg) / 2)
  return Intrinsics(fx=float(f), fy=float(f), cx=width / 2, cy=height / 2)


def extended(intr: Intrinsics, margin_x: int, margin_y: int) -> Intrinsics:
  """The same camera on a canvas grown by the margins on every side."""
  return Intrinsics(intr.fx, intr.fy, intr.cx + margin_x, intr.cy + margin_y)


def project(intr: Intrinsics, points_cam: np.ndarray) -> np.ndarray:
  """Camera-frame points [..., 3] (z > 0) -> pixel coordinates [..., 2]."""
  p = np.asarray(points_cam, np.float64)
  return np.stack([intr.fx * p[..., 0] / p[..., 2] + intr.cx,
                   intr.fy * p[..., 1] / p[..., 2] + intr.cy], -1)


def gl_projection(intr: Intrinsics, width: int, height: int, near: float,
                  far: float) -> np.ndarray:
  """[4, 4] OpenGL clip matrix for camera-frame points (OpenCV axes) whose
  NDC y points up, so that row 0 of a glReadPixels result is the image's
  bottom row (flip it)."""
  return np.array([
      [2 * intr.fx / width, 0, 2 * intr.cx / width - 1, 0],
      [0, -2 * intr.fy / height, 1 - 2 * intr.cy / height, 0],
      [0, 0, (far + near) / (far - near), -2 * far * near / (far - near)],
      [0, 0, 1, 0]])
