"""Per-object measurements from the layers a backend rendered.

A backend renders the scene (instance layer) and each object alone on a
canvas grown by ``margin`` on every side (``camera.extended``); these
functions turn the pixel counts into the protocol's ObjectInfo, the same
for every backend.
"""

from __future__ import annotations

import numpy as np

from third_party.renderer_bridge.scene import ObjectInfo


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
