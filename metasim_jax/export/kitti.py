"""KITTI object labels: PNG images and one label file per image.

Layout of the output directory (as KITTI's object benchmark)::

  training/image_2/000000.png ...
  training/label_2/000000.txt ...
  training/calib/000000.txt ...     (3D scenes only)
  scene_attrs.npy, scene_node_mask.npy, grammar.json, generation.json

One line per visible object (a slot of a ``thing`` class with at least one
visible pixel), the devkit's 15 fields separated by spaces::

  type truncated occluded alpha left top right bottom h w l x y z rotation_y

* type: the class name capitalised (``Car``, ``Tree``, ``House``);
* truncated: fraction of the object outside the image, 0..1: as a 3D
  renderer measures it (the bridge: 1 - pixels inside / pixels of the
  object drawn alone on a larger canvas), else the fraction of the 2D
  renderer's box of its texture content that lies outside;
* occluded: 0 fully visible, 1 partly occluded (at least half of its own
  pixels visible), 2 largely occluded (less than half), from the object
  rendered alone vs. the pixels where it is on top;
* left top right bottom: the box of the object's own pixels in the image
  (occluded parts included, truncated at the image border), in pixel-edge
  coordinates (columns 3..7 give left 3, right 8);
* alpha, h w l, x y z, rotation_y: in 3D scenes (a grammar with a
  ``"render": "camera"`` class, drawn by the renderer bridge), each
  object's box in KITTI's camera coordinates (OpenCV's: x right, y down,
  z forward, metres): h w l the mesh asset's bounding box (height along
  its z, width along x, length along y, its front) times the node's
  scale; x y z the centre of the box's bottom face; rotation_y the
  heading about the camera's Y axis in [-pi, pi] (0 facing the camera's
  +x, -pi/2 facing away from it, as a car driving ahead); alpha =
  rotation_y - arctan2(x, z) wrapped to [-pi, pi] (``kitti3d`` states
  the conventions; the box is exact for a camera without pitch and roll).
  ``calib/`` holds each image's camera (P2 = K [I | 0], pixel-edge
  coordinates; ``kitti3d.calib_text``), which differs per image when the
  field of view is an attribute.  2D scenes (MNIST, Aerial2D) have no 3D:
  there these fields take the values KITTI's own label files use where a
  field does not apply (its ``DontCare`` rows): alpha -10, dimensions
  -1 -1 -1, location -1000 -1000 -1000, rotation_y -10, and no
  ``calib/`` is written.

Fully occluded objects (no visible pixel) and objects outside the image are
not written.  An image without objects gets an empty label file.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from metasim_jax.export import kitti3d, objects
from metasim_jax.export.batch import LabeledBatch
from metasim_jax.export.images import ImageFolder
from metasim_jax.export.run import TrainedRun
from metasim_jax.render import bridge

NOT_3D = "-1 -1 -1 -1000 -1000 -1000 -10"  # h w l, x y z, rotation_y
NO_ALPHA = "-10"


def kitti_type(name: str) -> str:
  return name[:1].upper() + name[1:]


def fields_3d(boxes: kitti3d.Boxes3D, slot: int) -> tuple[str, str]:
  """(alpha, "h w l x y z rotation_y") of one slot of ``boxes``."""
  values = np.concatenate([boxes.dimensions[slot], boxes.location[slot],
                           boxes.rotation_y[slot, None]])
  text = lambda v: f"{np.round(v, 2) + 0.0:.2f}"  # no "-0.00"
  return text(boxes.alpha[slot]), " ".join(map(text, values))


class KittiWriter:
  """Streams a KITTI-layout dataset into ``out_dir``."""
  needs_objects = True
  amodal = True

  def __init__(self, out_dir: str, run: TrainedRun, meta: Mapping[str, Any],
               things: Sequence[str]):
    g = run.pipe.prior
    self.folder = ImageFolder(out_dir, os.path.join("training", "image_2"),
                              run, meta)
    self.labels = os.path.join(out_dir, "training", "label_2")
    os.makedirs(self.labels)
    names = run.pipe.semantic_names
    self.types = {k: kitti_type(n) for k, n in enumerate(names)
                  if n in things}
    self.sem = objects.slot_semantics(g)
    self.slots = np.array(objects.thing_slots(g, things), np.int64)
    self.codec, self.calib = None, None
    if any(c.render == "camera" for c in g.classes.values()):
      self.codec = bridge.Codec.create(g, tuple(names))
      self.calib = os.path.join(out_dir, "training", "calib")
      os.makedirs(self.calib)

  def write(self, b: LabeledBatch, start: int) -> None:
    """Writes the scenes of host batch ``b`` as images start, start+1, ..."""
    h, w = self.folder.canvas.height, self.folder.canvas.width
    trunc = (np.asarray(b.truncation) if b.truncation is not None
             else objects.truncation(b.full_box, h, w))
    occl = objects.occlusion_level(b.visible_area, b.own_area)
    scenes = (self.codec.scenes(b.attrs, b.node_mask) if self.codec
              else None)
    n = b.node_mask.shape[1]
    for j, (_, stem) in enumerate(self.folder.write_batch(b, start)):
      boxes, has = None, np.zeros(n, bool)
      if scenes is not None:
        boxes, has = kitti3d.scene_boxes(scenes[j], n)
        with open(os.path.join(self.calib, stem + ".txt"), "w",
                  encoding="ascii") as f:
          f.write(kitti3d.calib_text(scenes[j].camera, w, h))
      lines = []
      for slot in self.slots:
        if b.visible_area[j, slot] <= 0:
          continue
        x0, y0, x1, y1 = b.own_box[j, slot]
        alpha, box3d = (fields_3d(boxes, slot) if has[slot]
                        else (NO_ALPHA, NOT_3D))
        lines.append(
            f"{self.types[int(self.sem[slot])]} {trunc[j, slot]:.2f} "
            f"{occl[j, slot]:d} {alpha} {x0:.2f} {y0:.2f} {x1:.2f} "
            f"{y1:.2f} {box3d}\n")
      with open(os.path.join(self.labels, stem + ".txt"), "w",
                encoding="ascii") as f:
        f.writelines(lines)

  def close(self) -> None:
    self.folder.close()
