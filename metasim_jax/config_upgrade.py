"""A run's saved config brought up to today's keys.

Results files (``results.json``'s ``"config"``) and checkpoints (their
meta's ``"config"``) keep the config a run was launched with.  Keys renamed
or added since are mapped here, once, for every reader: loading a trained
run for export (``export.run``) and checking that a ``--resume`` continues
the same run (``training.checkpoint.config_changes``: a key added since,
at its default, is not a change).
"""

from __future__ import annotations

import copy
from typing import Mapping


def upgrade(saved: Mapping) -> dict:
  """A run's saved config with the keys renamed or added since it was
  written (``dataset`` -> ``world``, ``mmd.bandwidths`` ->
  ``mmd.median_multiples``, ``task.reward`` "accuracy" -> "score";
  ``task_type``, ``renderer``, ``label``,
  ``mean_over`` and the grammar-file keys with their former values;
  ``task.inner_loop``, ``parallel``, ``renderer_options``, ``schedule``,
  ``mmd.hold_weight``, ``mmd.screen_*``, ``features.grid``,
  ``transformer.affine``,
  ``task_features``, ``task.estimator``, ``task.es`` and
  ``success.std_tolerance`` with their defaults)."""
  c = copy.deepcopy(dict(saved))
  c.setdefault("name", "")
  c.setdefault("world", c.pop("dataset", "mnist"))
  c.setdefault("task_type", "classification")
  c.setdefault("renderer", "raster2d")
  c.setdefault("renderer_options", {})
  c.setdefault("label", {"slot": "", "attr": ""})
  c.setdefault("mean_over", [])
  for which in ("grammar", "target"):
    c.setdefault(which, {})
    c.setdefault(f"{which}_file", "")
  c.setdefault("tasknet", {}).setdefault("kwargs", {})
  task = c.setdefault("task", {})
  if task.get("reward") == "accuracy":  # the old name of "score"
    task["reward"] = "score"
  task.setdefault("inner_loop", "auto")
  task.setdefault("estimator", "reinforce")
  task.setdefault("unrolled_affine_only", False)
  task.setdefault("inner_optimizer", "adam")
  task.setdefault("es", {"pairs": 4, "sigma": 3.0, "log_sigma": 0.3,
                         "lr": 0.15, "lr_decay": False,
                         "normalise": "rank"})
  task["es"].setdefault("sigma_floor", 1.0)
  task["es"].setdefault("decay_start", 0.0)
  task["es"].setdefault("momentum", 0.9)
  task["es"].setdefault("vmap", True)
  task["es"].setdefault("warm_steps", 0)
  task["es"].setdefault("coarse_starts", 1)
  task["es"].setdefault("coarse_spread", 0.0)
  task["es"].setdefault("coarse_contract", 1.0)
  task["es"].setdefault("relative_shift", False)
  task["es"].setdefault("coarse_fit", "best")
  task["es"].setdefault("attributes", "")
  c.setdefault("parallel", {"devices": 0, "starts": 1, "coordinator": "",
                            "num_processes": 1, "process_id": 0})
  mmd = c.setdefault("mmd", {})
  if "bandwidths" in mmd:
    mmd["median_multiples"] = mmd.pop("bandwidths")
  mmd.setdefault("hold_weight", 1.0)
  mmd.setdefault("optimizer", "adam")
  mmd.setdefault("screen_candidates", 0)
  mmd.setdefault("screen_shift", 2.0)
  mmd.setdefault("screen_log_spread", [-2.0, 0.5])
  c.setdefault("schedule", "")
  c.setdefault("success", {}).setdefault("std_tolerance", {})
  c.setdefault("transformer", {}).setdefault("affine", False)
  c.setdefault("features", {}).setdefault("grid", (1, 1))
  tf = c.setdefault("task_features", {"steps": 0, "batch": 16,
                                      "synthetic": 0, "lr": 2e-3,
                                      "grid": (1, 1), "weight": 1.0})
  tf.setdefault("pooling", "cells")
  tf.setdefault("radii", (2.0, 4.0, 8.0))
  tf.setdefault("bins", 4)
  return c
