"""KITTI object labels: PNG images and one label file per image.

Layout of the output directory (as KITTI's object benchmark)::

  training/image_2/000000.png ...
  training/label_2/000000.txt ...
  scene_attrs.npy, scene_node_mask.npy, grammar.json, generation.json

One line per visible object (a slot of a ``thing`` class with at least one
visible pixel), the devkit's 15 fields separated by spaces::

  type truncated occluded alpha left top right bottom h w l x y z rotation_y

* type: the class name capitalised (``Car``, ``Tree``, ``House``);
* truncated: fraction of the object's box (the renderer's box of its
  texture content) that lies outside the image, 0..1;
* occluded: 0 fully visible, 1 partly occluded (at least half of its own
  pixels visible), 2 largely occluded (less than half), from the object
  rendered alone vs. the pixels where it is on top;
* left top right bottom: the box of the object's own pixels in the image
  (occluded parts included, truncated at the image border), in pixel-edge
  coordinates (columns 3..7 give left 3, right 8);
* the scenes are 2D, so alpha, the 3D dimensions, location and rotation_y
  take the values KITTI's own label files use where a field does not apply
  (its ``DontCare`` rows): alpha -10, dimensions -1 -1 -1, location
  -1000 -1000 -1000, rotation_y -10.

Fully occluded objects (no visible pixel) and objects outside the image are
not written.  An image without objects gets an empty label file.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import numpy as np

from metasim_jax.export import objects
from metasim_jax.export.batch import LabeledBatch
from metasim_jax.export.images import ImageFolder
from metasim_jax.export.run import TrainedRun

NOT_3D = "-1 -1 -1 -1000 -1000 -1000 -10"  # h w l, x y z, rotation_y
NO_ALPHA = "-10"


def kitti_type(name: str) -> str:
  return name[:1].upper() + name[1:]


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

  def write(self, b: LabeledBatch, start: int) -> None:
    """Writes the scenes of host batch ``b`` as images start, start+1, ..."""
    h, w = self.folder.canvas.height, self.folder.canvas.width
    trunc = objects.truncation(b.full_box, h, w)
    occl = objects.occlusion_level(b.visible_area, b.own_area)
    for j, (_, stem) in enumerate(self.folder.write_batch(b, start)):
      lines = []
      for slot in self.slots:
        if b.visible_area[j, slot] <= 0:
          continue
        x0, y0, x1, y1 = b.own_box[j, slot]
        lines.append(
            f"{self.types[int(self.sem[slot])]} {trunc[j, slot]:.2f} "
            f"{occl[j, slot]:d} {NO_ALPHA} {x0:.2f} {y0:.2f} {x1:.2f} "
            f"{y1:.2f} {NOT_3D}\n")
      with open(os.path.join(self.labels, stem + ".txt"), "w",
                encoding="ascii") as f:
        f.writelines(lines)

  def close(self) -> None:
    self.folder.close()
