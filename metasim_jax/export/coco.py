"""COCO instance annotations: PNG images and one annotations.json.

Layout of the output directory::

  images/000000.png ...   the generated images
  annotations.json        COCO: images, annotations, categories
  scene_attrs.npy, scene_node_mask.npy, grammar.json, generation.json

Every visible instance (a slot that is the top-most node on at least one
pixel) is one annotation: ``segmentation`` is its pixels in the instance
map as compressed RLE, ``bbox`` [x, y, w, h] their box, ``area`` their
count, ``iscrowd`` 0.  Category ids are the semantic ids of the
segmentation task; the supercategory says ``thing`` or ``stuff``.  Image
ids are the scene indices (file ``images/{id}.png``).  Extra keys:
``metasim_slot`` (the slot path of an annotation).  The JSON is assembled
from streamed parts, so memory stays flat for large N.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from metasim_jax.export import objects
from metasim_jax.export.batch import LabeledBatch
from metasim_jax.export.images import ImageFolder
from metasim_jax.export.run import TrainedRun


def _line(obj: Any) -> str:
  return json.dumps(obj, separators=(",", ":"), sort_keys=True)


class CocoWriter:
  """Streams a COCO dataset into ``out_dir``."""
  needs_objects = True
  amodal = False

  def __init__(self, out_dir: str, run: TrainedRun, meta: Mapping[str, Any],
               things: Sequence[str]):
    g = run.pipe.prior
    self.out_dir = out_dir
    self.meta = meta
    self.sem = objects.slot_semantics(g)
    self.slot_paths = [s.path for s in g.slots]
    names = run.pipe.semantic_names
    self.categories = [{"id": k, "name": n,
                        "supercategory": "thing" if n in things else "stuff"}
                       for k, n in enumerate(names) if k > 0]
    self.folder = ImageFolder(out_dir, "images", run, meta)
    self._parts = {k: open(os.path.join(out_dir, f".{k}.part"), "w",
                           encoding="utf-8")
                   for k in ("images", "annotations")}
    self._first = {k: True for k in self._parts}
    self.next_ann = 1

  def _emit(self, kind: str, obj: Any) -> None:
    f = self._parts[kind]
    f.write(("" if self._first[kind] else ",\n") + _line(obj))
    self._first[kind] = False

  def write(self, b: LabeledBatch, start: int) -> None:
    """Writes the scenes of host batch ``b`` as images start, start+1, ..."""
    h, w = self.folder.canvas.height, self.folder.canvas.width
    for j, (i, stem) in enumerate(self.folder.write_batch(b, start)):
      self._emit("images", {"id": i, "file_name": stem + ".png", "width": w,
                            "height": h})
      for slot in np.flatnonzero((self.sem > 0) & (b.visible_area[j] > 0)):
        hit = np.asfortranarray((b.instance[j] == slot).astype(np.uint8))
        rle = mask_utils.encode(hit)
        x0, y0, x1, y1 = (float(v) for v in b.visible_box[j, slot])
        self._emit("annotations", {
            "id": self.next_ann, "image_id": i,
            "category_id": int(self.sem[slot]),
            "bbox": [x0, y0, x1 - x0, y1 - y0],
            "area": int(b.visible_area[j, slot]), "iscrowd": 0,
            "segmentation": {"size": [h, w],
                             "counts": rle["counts"].decode("ascii")},
            "metasim_slot": self.slot_paths[slot]})
        self.next_ann += 1

  def close(self) -> None:
    self.folder.close()
    for f in self._parts.values():
      f.close()
    head = {"info": {"description": "Meta-Sim generated dataset "
                                    f"({self.meta['run']['name']})",
                     "version": "1.0"},
            "licenses": [], "categories": self.categories}
    path = os.path.join(self.out_dir, "annotations.json")
    with open(path, "w", encoding="utf-8") as out:
      out.write(_line(head)[:-1])  # drop "}", lists follow
      for kind in ("images", "annotations"):
        out.write(f',\n"{kind}":[\n')
        part = os.path.join(self.out_dir, f".{kind}.part")
        with open(part, encoding="utf-8") as f:
          shutil.copyfileobj(f, out)
        os.remove(part)
        out.write("\n]")
      out.write("}\n")
