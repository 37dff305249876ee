"""A trained run directory, loaded back for sampling datasets.

``trainer.run`` leaves in its workdir ``results.json`` (its ``"config"``
entry is the run's config), ``grammar.json`` / ``target.json`` (the run's
grammars) and one ``transformer_seed{N}.msgpack`` per seed (the trained
Distribution Transformer).  ``load(run_dir, seed)`` rebuilds the pipeline
from those files, the grammar's texture pools and the trained params.
Every failure raises ``ExportError`` with a message naming the file.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import serialization

from metasim_jax import config_upgrade
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import schedule
from metasim_jax.export.errors import ExportError
from metasim_jax.types import TexturePool


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedRun:
  """What generation needs from a run directory.

  Attributes:
    run_dir: the directory, absolute.
    seed: the run seed whose transformer was loaded.
    config: the run's config (from results.json), grammar files pointing at
      the run directory's grammar.json / target.json.
    pipe: the rebuilt pipeline (prior grammar, canvas, transformer, task).
    pools: the grammar's texture pools, by name.
    params: trained transformer params.
    grammar: grammar.json as a dict.
    saved_config: results.json's "config" entry, unchanged.
    params_sha256: hex digest of the msgpack file.
  """
  run_dir: str
  seed: int
  config: ml_collections.ConfigDict
  pipe: pipeline_lib.Pipeline
  pools: Mapping[str, TexturePool]
  params: Any
  grammar: dict
  saved_config: dict
  params_sha256: str


def _read_json(path: str, what: str) -> Any:
  if not os.path.isfile(path):
    raise ExportError(f"{path}: missing ({what}; is the run directory one "
                      "that experiments.mnist / experiments.aerial wrote?)")
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ExportError(f"{path}: corrupt, not valid JSON ({e})") from None
  except OSError as e:
    raise ExportError(f"{path}: cannot read ({e.strerror})") from None


# A saved config's keys renamed or added since it was written.
upgrade_config = config_upgrade.upgrade


def saved_seeds(run_dir: str) -> list[int]:
  """Seeds that have a transformer_seed{N}.msgpack in ``run_dir``."""
  seeds = []
  for p in glob.glob(os.path.join(glob.escape(run_dir),
                                  "transformer_seed*.msgpack")):
    m = re.fullmatch(r"transformer_seed(\d+)\.msgpack", os.path.basename(p))
    if m:
      seeds.append(int(m.group(1)))
  return sorted(seeds)


def _load_params(path: str, template) -> Any:
  """Restores msgpack params against ``template`` (a tree of
  ShapeDtypeStructs); checks every shape and dtype."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise ExportError(f"{path}: cannot read ({e.strerror})") from None
  try:
    state = serialization.msgpack_restore(data)
  except Exception as e:  # msgpack raises several types on bad bytes
    raise ExportError(f"{path}: corrupt, not a flax msgpack file "
                      f"({type(e).__name__}: {e})") from None
  want = serialization.to_state_dict(template)
  if (not isinstance(state, dict)
      or jax.tree.structure(state) != jax.tree.structure(want)):
    raise ExportError(f"{path}: its parameters do not match the run's "
                      "transformer (different layers; was it written by "
                      "another config?)")
  for (kp, got), ref in zip(jax.tree_util.tree_leaves_with_path(state),
                            jax.tree.leaves(want)):
    if (np.shape(got) != ref.shape
        or np.asarray(got).dtype != np.dtype(ref.dtype)):
      raise ExportError(
          f"{path}: parameter {jax.tree_util.keystr(kp)} is "
          f"{np.asarray(got).dtype}{list(np.shape(got))}, the run's "
          f"transformer needs {np.dtype(ref.dtype)}{list(ref.shape)}")
  params = serialization.from_state_dict(template, state)
  return jax.tree.map(jnp.asarray, params), data


def load(run_dir: str, seed: int = 0) -> TrainedRun:
  """Loads ``run_dir`` (a trainer workdir) with the params of ``seed``."""
  if not os.path.exists(run_dir):
    raise ExportError(f"run directory {run_dir}: does not exist")
  if not os.path.isdir(run_dir):
    raise ExportError(f"run directory {run_dir}: not a directory")
  run_dir = os.path.abspath(run_dir)
  results_path = os.path.join(run_dir, "results.json")
  results = _read_json(results_path, "the run's results and config")
  if not isinstance(results, dict) or not isinstance(
      results.get("config"), dict):
    raise ExportError(f"{results_path}: corrupt, it has no 'config' entry")
  config = ml_collections.ConfigDict(upgrade_config(results["config"]))
  grammars = {}
  for which in ("grammar", "target"):
    path = os.path.join(run_dir, f"{which}.json")
    grammars[which] = _read_json(path, f"the run's {which}")
    config[f"{which}_file"] = path  # the run's own copy is authoritative
  # Generation uses no feature net; the configured one may need weights.
  config.features.name = "pyramid"
  try:
    pipe, _ = pipeline_lib.build(config)
    # The trained transformer changes the groups some stage trained (the
    # last stage's pipeline: its own, and those it keeps).
    stages = schedule.parse(config.schedule, pipe.prior)
    if stages:
      pipe = pipe.for_groups(
          stages[-1].groups,
          learned=schedule.learned_before(stages, pipe.prior)[-1])
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise ExportError(f"{run_dir}: the config in results.json with "
                      f"grammar.json / target.json does not build a pipeline "
                      f"({e})") from None

  params_path = os.path.join(run_dir, f"transformer_seed{seed}.msgpack")
  if not os.path.isfile(params_path):
    have = saved_seeds(run_dir)
    raise ExportError(
        f"{params_path}: missing (run seeds with saved transformers: "
        f"{', '.join(map(str, have)) if have else 'none'})")
  try:
    pools = dict(pipe.world.grammar_pools(config))
  except (ValueError, KeyError, RuntimeError) as e:
    raise ExportError(f"cannot build the texture pools of run "
                      f"{config.name!r}: {e}") from None
  # Shapes of freshly initialised params, traced without running anything.
  template = jax.eval_shape(lambda k: pipe.init_transformer(
      *jax.random.split(k), pools), jax.random.key(0))
  params, data = _load_params(params_path, template)
  return TrainedRun(run_dir=run_dir, seed=seed, config=config, pipe=pipe,
                    pools=pools, params=params, grammar=grammars["grammar"],
                    saved_config=results["config"],
                    params_sha256=hashlib.sha256(data).hexdigest())
