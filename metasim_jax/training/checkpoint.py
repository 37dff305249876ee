"""Checkpoints of a training run (Orbax) and the guard against NaN/Inf.

Layout: ``<workdir>/checkpoints/seed<N>/<global step>/`` holds ``state``, the
training pytree of the stage the seed is in (``ocp.args.StandardSave``), and
``meta``, a JSON record: stage, step, the host-side record of the seed
(curves, timings, finished results) and the config.  Orbax writes a step into
a temporary directory and renames it when complete, so a killed run leaves a
whole checkpoint or none; leftover temporary directories are removed when
the run is resumed.  Typed PRNG keys are stored as their key data.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from metasim_jax import config_upgrade
from metasim_jax import parallel

DIRNAME = "checkpoints"
KEEP = 2  # newest checkpoints kept per seed
# Config fields that may change between a run and its resumption: they
# change neither numbers nor recorded results.
RESUMABLE_CHANGES = ("seeds", "checkpoint_every", "log_every")


class _QuietOrbax(logging.Filter):
  """Orbax logs ~20 INFO lines per save through absl, and warns that a
  read-only manager is read-only; keep its other warnings."""

  def filter(self, record: logging.LogRecord) -> bool:
    if f"{os.sep}orbax{os.sep}" not in record.pathname:
      return True
    message = str(record.msg)
    return (record.levelno >= logging.WARNING and "read only" not in message
            and "read_only" not in message)


logging.getLogger("absl").addFilter(_QuietOrbax())


class CheckpointError(ValueError):
  """Checkpoints missing, unreadable, or not those of this run."""


class NonFiniteError(FloatingPointError):
  """A training quantity became NaN or infinite."""


def _name(path) -> str:
  parts = []
  for p in path:
    if isinstance(p, jax.tree_util.DictKey):
      parts.append(f".{p.key}")
    elif isinstance(p, jax.tree_util.GetAttrKey):
      parts.append(f".{p.name}")
    elif isinstance(p, jax.tree_util.SequenceKey):
      parts.append(f"[{p.idx}]")
    else:
      parts.append(str(p))
  return "".join(parts).lstrip(".") or "value"


def check_finite(tree, where: str) -> None:
  """Raises ``NonFiniteError`` naming ``where`` and the first leaf of ``tree``
  (a metrics dict or a training state) that holds a NaN or an infinity."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(_encode(tree))
  for path, x in leaves:
    x = parallel.to_host(x)
    if x.dtype.kind not in "fc" or np.isfinite(x).all():
      continue
    bad = np.argwhere(~np.isfinite(x))
    at = f" at index {tuple(int(i) for i in bad[0])}" if x.ndim else ""
    raise NonFiniteError(
        f"{where}: {_name(path)} is not finite ({int(np.isnan(x).sum())} "
        f"NaN, {int(np.isinf(x).sum())} Inf of {x.size} values; first"
        f"{at} = {x[tuple(bad[0])]}); no checkpoint was written from it")


# ------------------------------------------------------------ PRNG keys
def _is_key(x) -> bool:
  dtype = getattr(x, "dtype", None)
  return dtype is not None and jax.dtypes.issubdtype(dtype,
                                                     jax.dtypes.prng_key)


def _encode(tree):
  """Typed PRNG keys -> their uint32 key data (Orbax stores plain arrays)."""
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x,
                      tree)


def _abstract(target):
  """Shape/dtype tree to restore into, keys as key data."""
  def one(x):
    if _is_key(x):
      return jax.eval_shape(jax.random.key_data, x)
    return jax.ShapeDtypeStruct(x.shape, x.dtype)
  return parallel.replicated_like(jax.tree.map(one, target))


def _decode(tree, target):
  """Back to typed keys; arrays as fresh uncommitted device arrays, like
  those of an uninterrupted run (Orbax returns arrays committed to a
  device, which jit compiles separately)."""
  def one(x, t):
    x = jnp.asarray(parallel.to_host(x))
    return jax.random.wrap_key_data(x) if _is_key(t) else x
  return jax.tree.map(one, tree, target)


# ------------------------------------------------------------ one seed
def seed_dir(workdir: str, seed: int) -> str:
  return os.path.join(os.path.abspath(workdir), DIRNAME, f"seed{seed}")


class SeedCheckpoints:
  """The checkpoints of one seed, numbered by the seed's global step."""

  def __init__(self, directory: str, read_only: bool = False):
    self.directory = directory
    policy = ocp.checkpoint_managers.LatestN(n=KEEP)
    self._manager = ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(
            preservation_policy=policy, enable_async_checkpointing=False,
            create=not read_only, cleanup_tmp_directories=not read_only,
            read_only=read_only, save_root_metadata=False))
    self._last = self._manager.latest_step()

  def latest(self) -> int | None:
    return self._last

  def save(self, step: int, state, meta: Mapping[str, Any]) -> bool:
    """Writes ``state`` and ``meta`` as checkpoint ``step``; a step at or
    before the newest one is not written again (returns False)."""
    if self._last is not None and step <= self._last:
      return False
    self._manager.save(step, force=True, args=ocp.args.Composite(
        state=ocp.args.StandardSave(parallel.globalize(_encode(state))),
        meta=ocp.args.JsonSave(dict(meta))))
    self._manager.wait_until_finished()
    self._last = step
    return True

  def path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def read_meta(self, step: int) -> dict[str, Any]:
    try:
      return self._manager.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore())).meta
    except Exception as e:  # any Orbax/IO/JSON failure: one clear message
      raise _unreadable(self.path(step), e) from None

  def restore(self, step: int, target):
    """The state of checkpoint ``step``, shaped like ``target`` (arrays or
    ``jax.ShapeDtypeStruct``s)."""
    try:
      got = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(_abstract(target))))
    except Exception as e:
      raise _unreadable(self.path(step), e) from None
    return _decode(got.state, target)

  def read(self, step: int) -> tuple[dict[str, Any], Any]:
    """(meta, state) of checkpoint ``step``, the state as stored (nested
    dicts and lists of arrays, keys as key data): reads every array, so it
    also verifies the checkpoint.  Raises ``CheckpointError``."""
    meta = self.read_meta(step)
    try:
      state = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore())).state
    except Exception as e:
      raise _unreadable(self.path(step), e) from None
    return meta, state

  def close(self) -> None:
    self._manager.close()


def _unreadable(path: str, e: Exception) -> CheckpointError:
  first = (str(e).strip().splitlines() or [""])[0][:300]
  return CheckpointError(
      f"checkpoint {path} is unreadable ({type(e).__name__}: {first}); "
      "delete that step directory to resume from the one before it, or "
      "start afresh with --overwrite")


# ------------------------------------------------------------ the run
def steps_on_disk(workdir: str) -> dict[int, list[int]]:
  """{seed: [steps]} of the checkpoints under ``workdir``, read-only."""
  root = os.path.join(workdir, DIRNAME)
  found = {}
  if not os.path.isdir(root):
    return found
  for name in sorted(os.listdir(root)):
    path = os.path.join(root, name)
    if name.startswith("seed") and name[4:].isdigit() and os.path.isdir(path):
      steps = sorted(int(s) for s in os.listdir(path) if s.isdigit()
                     and os.path.isdir(os.path.join(path, s)))
      if steps:
        found[int(name[4:])] = steps
  return found


def config_record(config) -> dict[str, Any]:
  """The config as plain JSON (tuples -> lists), as stored in ``meta``."""
  return json.loads(json.dumps(config.to_dict()))


def _flatten(d, prefix=""):
  if isinstance(d, Mapping):
    out = {}
    for k, v in d.items():
      out.update(_flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: d}


def config_changes(saved: Mapping, current: Mapping) -> list[str]:
  """Dotted names of the config fields that differ (and matter); both are
  first upgraded to today's keys (``config_upgrade``: a key added since
  the checkpoint, at its default, is no change)."""
  a, b = (_flatten(json.loads(json.dumps(config_upgrade.upgrade(c))))
          for c in (saved, current))
  return sorted(k for k in set(a) | set(b) if a.get(k, "<unset>") !=
                b.get(k, "<unset>") and k.split(".")[0]
                not in RESUMABLE_CHANGES)


def check_workdir(workdir: str, config, seeds: Iterable[int], *,
                  resume: bool, overwrite: bool) -> None:
  """Checks the checkpoints in ``workdir`` against the launch mode, before
  anything is written; reads, never writes.

  A fresh run (neither ``resume`` nor ``overwrite``) refuses a workdir that
  has checkpoints.  ``resume`` needs at least one checkpoint; the newest one
  of every seed of ``seeds`` must be readable and made with this config
  (up to ``RESUMABLE_CHANGES``).
  """
  root = os.path.join(os.path.abspath(workdir), DIRNAME)
  found = steps_on_disk(workdir)
  if resume and overwrite:
    raise CheckpointError("--resume and --overwrite exclude each other")
  if not resume:
    if found and not overwrite:
      raise CheckpointError(
          f"{root} already has checkpoints (seeds "
          f"{', '.join(map(str, found))}): continue that run with --resume, "
          "or start afresh with --overwrite (deletes its checkpoints and "
          "TensorBoard logs)")
    return
  if not found:
    raise CheckpointError(f"cannot resume: no checkpoint in {root} "
                          "(start the run without --resume)")
  current = config_record(config)
  for seed in seeds:
    if seed not in found:
      continue
    ckpt = SeedCheckpoints(seed_dir(workdir, seed), read_only=True)
    step = ckpt.latest()
    if step is None:  # only unfinished temporary directories
      continue
    meta, _ = ckpt.read(step)
    for field in ("stage", "step", "config"):
      if field not in meta:
        raise CheckpointError(f"checkpoint {ckpt.path(step)} is unreadable "
                              f"(its meta has no {field!r})")
    changed = config_changes(meta["config"], current)
    if changed:
      shown = ", ".join(changed[:6]) + (" ..." if len(changed) > 6 else "")
      raise CheckpointError(
          f"cannot resume: the config differs from that of the checkpointed "
          f"run in {ckpt.path(step)} ({shown}); resume with the same config "
          "or start afresh with --overwrite")
