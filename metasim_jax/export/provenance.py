"""Where each generated example comes from, written beside the dataset.

Every export holds ``grammar.json`` (the run's grammar, needed to re-render
a scene graph), ``generation.json`` (run, params digest, seeds, sizes,
classes, the scene-graph layout and the run's config) and the scene graph
of every example.  TFDS keeps the scene graphs in the examples; COCO and
KITTI keep them in ``scene_attrs.npy`` [N, slots, attrs] float32 and
``scene_node_mask.npy`` [N, slots] bool, row i = image i.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from metasim_jax import io
from metasim_jax.export.run import TrainedRun


def describe(run: TrainedRun, *, fmt: str, seed: int, num_scenes: int,
             shard_size: int, things: Sequence[str]) -> dict[str, Any]:
  """Generation metadata (JSON-able, no timestamps: exports are
  byte-identical for the same inputs)."""
  g = run.pipe.prior
  return {
      "format": fmt,
      "num_scenes": num_scenes,
      "seed": seed,
      "shard_size": shard_size,
      "source": "metasim: prior scene graphs transformed by the run's "
                "trained Distribution Transformer",
      "run": {"dir": run.run_dir, "name": run.config.name,
              "seed": run.seed,
              "transformer": f"transformer_seed{run.seed}.msgpack",
              "transformer_sha256": run.params_sha256},
      "task": run.config.task_type,
      "semantic_classes": list(run.pipe.semantic_names),
      "object_classes": list(things),
      "scene_graph": {"slots": [s.path for s in g.slots],
                      "slot_classes": [s.cls for s in g.slots],
                      "attr_names": list(g.attr_names),
                      "attr_kinds": list(g.attr_kinds)},
      "reproduce": ("scene i is row i % shard_size of the batch drawn with "
                    "jax.random.fold_in(metasim_jax.keys.root(seed, "
                    "'export'), i // shard_size); re-render it with "
                    "pipe.render(SceneGraph(attrs, node_mask), pools) using "
                    "grammar.json"),
      "config": run.saved_config,
  }


def _dump(path: str, obj: Any) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(io.jsonable(obj), f, indent=1, sort_keys=True)
    f.write("\n")


def write_sidecar(out_dir: str, run: TrainedRun,
                  meta: Mapping[str, Any]) -> None:
  """grammar.json and generation.json into ``out_dir``."""
  os.makedirs(out_dir, exist_ok=True)
  _dump(os.path.join(out_dir, "grammar.json"), run.grammar)
  _dump(os.path.join(out_dir, "generation.json"), meta)


class NpyStream:
  """Writes a [N, ...] .npy file a block of rows at a time (flat memory)."""

  def __init__(self, path: str, shape: tuple[int, ...], dtype):
    self.path, self.shape, self.dtype = path, shape, np.dtype(dtype)
    self.rows = 0
    self._f = open(path, "wb")
    np.lib.format.write_array_header_1_0(self._f, {
        "descr": np.lib.format.dtype_to_descr(self.dtype),
        "fortran_order": False, "shape": shape})

  def write(self, rows: np.ndarray) -> None:
    rows = np.ascontiguousarray(rows, self.dtype)
    if rows.shape[1:] != self.shape[1:]:
      raise ValueError(f"{self.path}: rows {rows.shape} do not fit "
                       f"{self.shape}")
    self._f.write(rows.tobytes())
    self.rows += len(rows)

  def close(self) -> None:
    self._f.close()
    if self.rows != self.shape[0]:
      raise ValueError(f"{self.path}: wrote {self.rows} rows of "
                       f"{self.shape[0]}")


class SceneArrays:
  """scene_attrs.npy and scene_node_mask.npy, streamed shard by shard."""

  def __init__(self, out_dir: str, num_scenes: int, num_slots: int,
               num_attrs: int):
    self.attrs = NpyStream(os.path.join(out_dir, "scene_attrs.npy"),
                           (num_scenes, num_slots, num_attrs), np.float32)
    self.mask = NpyStream(os.path.join(out_dir, "scene_node_mask.npy"),
                          (num_scenes, num_slots), np.bool_)

  def write(self, attrs: np.ndarray, node_mask: np.ndarray) -> None:
    self.attrs.write(attrs)
    self.mask.write(node_mask)

  def close(self) -> None:
    self.attrs.close()
    self.mask.close()
