"""A TFDS dataset, written by tfds's SequentialWriter as it is rendered.

The dataset lives in ``<out_dir>/<name>/1.0.0`` and loads with
``tfds.builder_from_directory(path)`` or ``tfds.builder(name,
data_dir=out_dir)``.  Files are array_record (default; read them with
``as_data_source()`` / ``tfds.data_source``: tfds 4.9 has no
``as_dataset()`` for array_record) or tfrecord (``as_dataset()``).  One
split, ``train``; one file shard per generation shard.

Features of every example:
  * ``id``: int64, the scene index (0..N-1);
  * ``image``: the rendered image, uint8 [H, W, C];
  * classification tasks: ``label``, ClassLabel of the label attribute;
  * segmentation tasks: ``segmentation`` uint8 [H, W, 1], semantic class id
    per pixel (names in ``metadata.json``, ``semantic_classes``, and in the
    feature's doc); ``instance`` uint8 [H, W, 1], slot index + 1 of the
    top-most node (0 = none); ``objects``, a sequence over the visible
    objects (things) with ``bbox`` (tfds BBox, relative ymin, xmin, ymax,
    xmax of the visible pixels), ``label`` (ClassLabel, same ids as the
    segmentation), ``slot`` (slot index) and ``area`` (visible pixels);
  * ``scene``: the scene graph that was rendered, ``attrs`` float32
    [slots, attrs] and ``node_mask`` bool [slots] (layout in
    ``metadata.json``, ``scene_graph``; ``grammar.json`` sits beside it),
    so each image can be traced back and re-rendered.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds

from metasim_jax.export import objects
from metasim_jax.export.batch import LabeledBatch
from metasim_jax.export.provenance import write_sidecar
from metasim_jax.export.run import TrainedRun

VERSION = "1.0.0"


def dataset_name(run: TrainedRun) -> str:
  """A valid TFDS name from the run's config name, e.g. metasim_aerial."""
  name = re.sub(r"[^a-z0-9_]", "_", str(run.config.name).lower())
  return "metasim_" + (name.strip("_") or "run")


def features(run: TrainedRun, things: Sequence[str]
             ) -> tfds.features.FeaturesDict:
  pipe, g = run.pipe, run.pipe.prior
  c = pipe.canvas
  out = {
      "id": np.int64,
      "image": tfds.features.Image(shape=(c.height, c.width, c.channels)),
      "scene": tfds.features.FeaturesDict({
          "attrs": tfds.features.Tensor(
              shape=(g.num_slots, g.num_attrs), dtype=np.float32,
              doc=f"attribute columns {list(g.attr_names)}"),
          "node_mask": tfds.features.Tensor(
              shape=(g.num_slots,), dtype=np.bool_,
              doc=f"slots {[s.path for s in g.slots]}"),
      }),
  }
  label = pipe.task.scene_label
  if label is not None:
    out["label"] = tfds.features.ClassLabel(num_classes=label.num_classes,
                                            doc=label.doc)
    return tfds.features.FeaturesDict(out)
  names = pipe.semantic_names
  out["segmentation"] = tfds.features.Image(
      shape=(c.height, c.width, 1), use_colormap=True,
      doc=f"semantic class id per pixel: {dict(enumerate(names))}")
  out["instance"] = tfds.features.Image(
      shape=(c.height, c.width, 1),
      doc="slot index + 1 of the top-most node per pixel, 0 = none")
  out["objects"] = tfds.features.Sequence({
      "bbox": tfds.features.BBoxFeature(doc="box of the visible pixels"),
      "label": tfds.features.ClassLabel(names=list(names)),
      "slot": np.int32,
      "area": np.int32,
  })
  return tfds.features.FeaturesDict(out)


def _hide_gpus_from_tensorflow() -> None:
  """tfds encodes images with TensorFlow ops; keep TF off the GPUs JAX
  uses (as flax's examples do)."""
  import tensorflow as tf
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # devices already initialised
    pass


class TfdsWriter:
  """Streams a TFDS dataset into ``out_dir/<name>/1.0.0``."""
  needs_objects = False
  amodal = False

  def __init__(self, out_dir: str, run: TrainedRun, meta: Mapping[str, Any],
               things: Sequence[str]):
    g = run.pipe.prior
    if g.num_slots > 254:
      raise ValueError("the instance map stores slot + 1 as uint8: at most "
                       "254 slots")
    _hide_gpus_from_tensorflow()
    self.pipe = run.pipe
    self.name = dataset_name(run)
    self.data_dir = os.path.join(out_dir, self.name, VERSION)
    os.makedirs(self.data_dir)
    self.sem = objects.slot_semantics(g)
    self.slots = np.array(objects.thing_slots(g, things), np.int64)
    c = run.pipe.canvas
    self.size = np.array([c.height, c.width, c.height, c.width], np.float32)
    info = tfds.core.DatasetInfo(
        builder=tfds.core.DatasetIdentity(
            name=self.name, version=VERSION, data_dir=self.data_dir,
            module_name="metasim_jax.export.tfds_writer"),
        description=(
            f"Meta-Sim generated dataset: {meta['num_scenes']} scenes of "
            f"run {meta['run']['name']!r} (seed {meta['run']['seed']}), "
            f"prior scene graphs transformed by its trained Distribution "
            f"Transformer and rendered; sampling seed {meta['seed']}."),
        features=features(run, things),
        supervised_keys=(("image", "label") if run.pipe.task.scene_label
                         else ("image", "segmentation")),
        metadata=tfds.core.MetadataDict(meta),
    )
    self.writer = tfds.core.SequentialWriter(
        ds_info=info, max_examples_per_shard=meta["shard_size"],
        file_format=meta.get("file_format", "array_record"))
    self.writer.initialize_splits(["train"])
    write_sidecar(self.data_dir, run, meta)

  def _example(self, b: LabeledBatch, j: int, index: int) -> dict:
    ex = {"id": index, "image": b.image[j],
          "scene": {"attrs": b.attrs[j], "node_mask": b.node_mask[j]}}
    if self.pipe.task.scene_label is not None:
      ex["label"] = int(b.label[j])
      return ex
    on = self.slots[b.visible_area[j, self.slots] > 0]
    x0, y0, x1, y1 = np.moveaxis(b.visible_box[j, on], -1, 0)
    ex["segmentation"] = b.semantic[j][..., None]
    ex["instance"] = (b.instance[j] + 1).astype(np.uint8)[..., None]
    ex["objects"] = {
        "bbox": np.stack([y0, x0, y1, x1], -1).reshape(-1, 4) / self.size,
        "label": self.sem[on].astype(np.int64),
        "slot": on.astype(np.int32),
        "area": b.visible_area[j, on].astype(np.int32)}
    return ex

  def write(self, b: LabeledBatch, start: int) -> None:
    """Writes the scenes of host batch ``b`` as examples start, ..."""
    self.writer.add_examples({"train": [self._example(b, j, start + j)
                                        for j in range(len(b.image))]})

  def close(self) -> None:
    self.writer.close_all()
