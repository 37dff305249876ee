"""Generated images as files: PNG bytes and the numbered image folder.

``write_png`` writes deterministic PNG bytes (no timestamps).
``ImageFolder`` is what the COCO and KITTI exports share: image
``{i:06d}.png`` of scene i in one sub-folder of the output directory (the
names widen past 6 digits for a million scenes or more), the sidecar
(grammar.json, generation.json) and the scene arrays (scene_attrs.npy,
scene_node_mask.npy); each writer adds its own annotations.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
from PIL import Image

from metasim_jax.export.batch import LabeledBatch
from metasim_jax.export.provenance import SceneArrays, write_sidecar

if TYPE_CHECKING:
  from metasim_jax.export.run import TrainedRun

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def write_png(path: str, image: np.ndarray) -> None:
  """Writes a [H, W, C] uint8 image, C in (1, 3, 4)."""
  c = image.shape[-1]
  if c not in _MODES:
    raise ValueError(f"cannot write a {c}-channel image as PNG")
  Image.fromarray(image[..., 0] if c == 1 else image, _MODES[c]).save(
      path, format="PNG")


class ImageFolder:
  """Numbered PNG images of an export, with its sidecar and scene arrays.

  Creates the image folder ``out_dir/images`` (``images`` a relative path,
  e.g. ``training/image_2``) and writes the sidecar at once;
  ``write_batch`` then streams the images and scene graphs shard by shard,
  and ``close`` finishes the scene arrays (it checks that all
  ``meta["num_scenes"]`` rows came).

  Attributes:
    out_dir: the output directory.
    dir: the image folder.
    canvas: the run's canvas (image height and width).
    width: digits of the zero-padded file names.
  """

  def __init__(self, out_dir: str, images: str, run: TrainedRun,
               meta: Mapping[str, Any]):
    g = run.pipe.prior
    self.out_dir = out_dir
    self.dir = os.path.join(out_dir, images)
    self.canvas = run.pipe.canvas
    self.width = max(6, len(str(meta["num_scenes"] - 1)))
    os.makedirs(self.dir)
    write_sidecar(out_dir, run, meta)
    self.scenes = SceneArrays(out_dir, meta["num_scenes"], g.num_slots,
                              g.num_attrs)

  def name(self, index: int) -> str:
    """The file stem of scene ``index`` (``000042``)."""
    return f"{index:0{self.width}d}"

  def write_batch(self, b: LabeledBatch, start: int) -> list[tuple[int, str]]:
    """Writes the images and scene graphs of host batch ``b`` as scenes
    start, start+1, ...; returns (scene index, file stem) per row of ``b``."""
    self.scenes.write(b.attrs, b.node_mask)
    written = []
    for j, image in enumerate(b.image):
      stem = self.name(start + j)
      write_png(os.path.join(self.dir, stem + ".png"), image)
      written.append((start + j, stem))
    return written

  def close(self) -> None:
    self.scenes.close()
