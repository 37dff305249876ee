"""Driving data: the target sets of the 3D driving experiment (Table 3).

Offline default (``config.kitti.data_dir`` empty): the driving grammar's
target parameter set (``experiments/configs/driving/target.json``, a
"real-like" world of the same grammar) rendered through the renderer
bridge and labelled by it: car boxes, truncation and occlusion measured by
the renderer (``metasim_jax/data/rendered.py``).

KITTI (``config.kitti.data_dir`` set): the ``kitti`` dataset of
tensorflow-datasets, prepared in that folder beforehand (``tfds build
kitti --data_dir=...`` where the download is allowed; nothing is
downloaded here).  As in the paper: X_R = ``splits.real`` train images
(unlabelled), V = ``splits.val`` other labelled train images (the paper's
100), test = the first ``splits.test`` images of the ``validation`` split
(held out).  Images are resized to the canvas and boxes scaled with them;
Car -> car, Van -> ignored (the devkit's neighbour class), DontCare ->
DontCare, other classes dropped; occlusion levels as annotated.
"""

from __future__ import annotations

import numpy as np

from metasim_jax import data as data_lib
from metasim_jax.data.rendered import render_sets
from metasim_jax.tasknet import detection
from metasim_jax.types import LabeledSet

KITTI_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting",
                 "Cyclist", "Tram", "Misc", "DontCare")


def grammar_pools(config) -> dict:
  del config  # meshes are the renderer's catalogue: no texture pools
  return {}


def target_sets(key, config, pipe) -> dict[str, LabeledSet]:
  if config.kitti.data_dir:
    return kitti_sets(config.kitti.data_dir, dict(config.splits),
                      (config.canvas.height, config.canvas.width))
  return render_sets(key, pipe, {}, dict(config.splits))


def _examples(builder, split: str, count: int) -> list:
  """The first ``count`` examples of ``split`` as NumPy dicts."""
  try:  # prepared as ArrayRecord: random access, no TensorFlow graph
    source = builder.as_data_source(split=split)
    examples = [source[i] for i in range(min(count, len(source)))]
  except (AttributeError, NotImplementedError, ValueError):  # TFRecord
    import tensorflow_datasets as tfds
    examples = list(tfds.as_numpy(builder.as_dataset(split=split).take(
        count)))
  if len(examples) < count:
    raise ValueError(f"KITTI split {split!r} has {len(examples)} images, "
                     f"{count} needed (config.splits)")
  return examples


def convert(example, size: tuple[int, int]) -> tuple[np.ndarray, dict]:
  """One tfds KITTI example -> (image [H, W, 3] float32 in [0, 1] at
  ``size``, a ``detection.pack_labels`` row dict in those pixels)."""
  from PIL import Image
  image = np.asarray(example["image"], np.uint8)
  h, w = size
  resized = np.asarray(Image.fromarray(image).resize((w, h),
                                                     Image.BILINEAR),
                       np.float32) / 255.0
  obj = example["objects"]
  bbox = np.asarray(obj["bbox"], np.float32).reshape(-1, 4)  # ymin, xmin...
  boxes = np.stack([bbox[:, 1] * w, bbox[:, 0] * h, bbox[:, 3] * w,
                    bbox[:, 2] * h], 1)
  types = np.asarray(obj["type"]).reshape(-1)
  kind = [KITTI_CLASSES[int(t)] if np.issubdtype(type(t), np.integer)
          else (t.decode() if isinstance(t, bytes) else str(t))
          for t in types]
  return resized, {
      "boxes": boxes, "kind": kind,
      "truncation": np.clip(np.asarray(obj["truncated"], np.float32), 0, 1),
      "occlusion_level": np.asarray(obj["occluded"], np.int64)}


def kitti_sets(data_dir: str, sizes: dict, size: tuple[int, int]
               ) -> dict[str, LabeledSet]:
  """X_R, V (train) and test (validation) of KITTI in ``data_dir``."""
  import tensorflow_datasets as tfds
  builder = tfds.builder("kitti", data_dir=data_dir)
  if not builder.info.splits.total_num_examples:
    raise ValueError(
        f"config.kitti.data_dir={data_dir!r}: no prepared tfds 'kitti' "
        "dataset there; prepare it where downloading is allowed (tfds build "
        f"kitti --data_dir={data_dir}), or leave data_dir empty for the "
        "offline target")
  train = _examples(builder, "train", sizes["real"] + sizes["val"])
  test = _examples(builder, "validation", sizes["test"])
  out = {}
  for name, examples in (("real", train[:sizes["real"]]),
                         ("val", train[sizes["real"]:]), ("test", test)):
    images, rows = zip(*(convert(e, size) for e in examples))
    out[name] = LabeledSet(np.stack(images), detection.pack_labels(rows))
  return out


data_lib.register("driving", data_lib.World(grammar_pools, target_sets))
