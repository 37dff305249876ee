"""Per-object measurements from the layers a backend rendered.

A backend renders the scene (instance layer) and each object alone on a
canvas grown by ``margin`` on every side (``camera.extended``); these
functions turn the pixel counts into the protocol's ObjectInfo, the same
for every backend.
"""

from __future__ import annotations

import numpy as np

from third_party.renderer_bridge import assets as assets_lib
from third_party.renderer_bridge import camera as camera_lib
from third_party.renderer_bridge.scene import (Camera, Node, ObjectInfo,
                                               Scene, Variant)

Region = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends)


def margins(width: int, height: int) -> tuple[int, int]:
  """Extended canvas margins: half the image on every side."""
  return width // 2, height // 2


def object_info(instance: np.ndarray, instance_id: int,
                alone_extended: np.ndarray, margin_x: int,
                margin_y: int) -> ObjectInfo:
  """``instance``: [H, W] instance layer of the scene; ``alone_extended``:
  [H + 2 my, W + 2 mx] bool, the object's pixels when rendered alone on the
  extended canvas."""
  h, w = instance.shape
  mask = instance == instance_id
  visible = int(np.count_nonzero(mask))
  if visible:
    ys, xs = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    box = (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)
  else:
    box = (0, 0, 0, 0)
  extended = int(np.count_nonzero(alone_extended))
  alone = int(np.count_nonzero(alone_extended[margin_y:margin_y + h,
                                              margin_x:margin_x + w]))
  occlusion = 1.0 - visible / alone if alone else 0.0
  truncation = 1.0 - alone / extended if extended else 1.0
  return ObjectInfo(instance_id=instance_id, box=box, visible_pixels=visible,
                    alone_pixels=alone, extended_pixels=extended,
                    occlusion=float(max(occlusion, 0.0)),
                    truncation=float(truncation))


def camera_from_object(cam, nodes: list[Node]) -> tuple[np.ndarray,
                                                      np.ndarray]:
  """Each node's object -> camera transform (OpenCV axes, metres):
  p_cam = a @ p + t, a [N, 3, 3] (rotation and scale), t [N, 3]."""
  r = camera_lib.world_from_camera(cam)
  pos = np.array([n.position for n in nodes], np.float64).reshape(-1, 3)
  scale = np.array([n.scale for n in nodes], np.float64).reshape(-1, 3)
  yaw = np.radians([n.yaw_deg for n in nodes])
  c, s = np.cos(yaw), np.sin(yaw)
  rot = np.zeros((len(nodes), 3, 3))  # world_from_object, as assets.py
  rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = c, -s, s, c
  rot[:, 2, 2] = 1.0
  # p_cam = R^T (rot (scale * p) + position - cam.position)
  a = (r.T @ rot) * scale[:, None]
  t = (pos - np.asarray(cam.position, np.float64)) @ r
  return a, t


def pixel_rects(a: np.ndarray, t: np.ndarray, corners: np.ndarray, intr,
                width: int, height: int, near: float,
                pad: int = 2) -> np.ndarray:
  """[N, 4] int (x0, y0, x1, y1): a rectangle of the width x height canvas
  (``intr``) holding every pixel a node's mesh may cover, from its
  object-frame bounding box ``corners`` [N, 8, 3] and camera-from-object
  transform (``camera_from_object``): the box's projection
  when it lies in front of the camera (z > near / 2; the clipping of its
  triangles at the near plane only removes pixels), empty when it lies
  behind z = near / 2, else the whole canvas."""
  pts = corners @ a.transpose(0, 2, 1) + t[:, None]  # [N, 8, 3]
  z = pts[..., 2]
  out = np.tile(np.array([0, 0, width, height]), (len(a), 1))
  front = (z > near / 2).all(1)
  if front.any():
    uv = camera_lib.project(intr, pts[front])
    lo = np.floor(uv.min(1)) - pad
    hi = np.ceil(uv.max(1)) + pad
    size = np.array([width, height])
    out[front] = np.concatenate([np.clip(lo, 0, size), np.clip(hi, 0, size)],
                                1).astype(int)
  out[(z < near / 2).all(1)] = 0
  return out


def node_rects(cam: Camera, nodes, width: int, height: int) -> np.ndarray:
  """[N, 4] ``pixel_rects`` of ``nodes`` seen by ``cam`` on its image."""
  if not nodes:
    return np.zeros((0, 4), int)
  a, t = camera_from_object(cam, list(nodes))
  cat = assets_lib.catalogue()
  corners = np.array([box_corners(cat[n.asset_id]) for n in nodes])
  return pixel_rects(a, t, corners, camera_lib.intrinsics(cam, width, height),
                     width, height, cam.near)


def box_corners(mesh) -> np.ndarray:
  """[8, 3] corners of the mesh's bounding box (object frame)."""
  lo, hi = mesh.bounds
  return np.array([[(hi if k >> i & 1 else lo)[i] for i in range(3)]
                   for k in range(8)], np.float64)  # [8, 3]


def changed_region(base: Scene, variant: Variant, width: int,
                   height: int) -> Region:
  """Where ``variant``'s image can differ from ``base``'s: the union of the
  replaced nodes' rectangles before and after (everything if the camera
  changes); (0, 0, 0, 0) if nowhere.  Outside it the two renders are
  equal: the other nodes, the depth test and the rasterizer's rules are
  the same."""
  if variant.camera is not None and variant.camera != base.camera:
    return (0, 0, width, height)
  old = {n.instance_id: n for n in base.nodes}
  moved = [n for n in variant.nodes if n != old[n.instance_id]]
  if not moved:
    return (0, 0, 0, 0)
  r = node_rects(base.camera, moved + [old[n.instance_id] for n in moved],
                 width, height)
  r = r[(r[:, 0] < r[:, 2]) & (r[:, 1] < r[:, 3])]
  if not len(r):
    return (0, 0, 0, 0)
  return (int(r[:, 0].min()), int(r[:, 1].min()), int(r[:, 2].max()),
          int(r[:, 3].max()))
