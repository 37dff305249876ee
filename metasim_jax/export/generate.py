"""Generate a labelled dataset from a trained run, shard by shard.

``generate(run, out_dir, ...)`` draws ``num_scenes`` scenes from the prior,
transforms them with the run's trained Distribution Transformer, renders
them and streams them to a writer (``FORMATS``), one fixed-shape jitted
batch (a shard) at a time: the device renders shard s + 1 while the host
encodes and writes shard s, and the last shard is padded, so nothing
recompiles and memory stays flat for any N.  Shard s uses the key
``fold_in(keys.root(seed, "export"), s)``: the same run, seed, N and shard size give
byte-identical files.

The output is written into a temporary directory beside ``out_dir`` and
renamed onto it at the end; a failure or an interrupt removes the
temporary directory and leaves ``out_dir`` as it was.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import time
from typing import Callable, Sequence

import jax
from absl import logging

from metasim_jax import keys
from metasim_jax.export import objects, provenance
from metasim_jax.export.batch import make_batch_fn
from metasim_jax.export.errors import ExportError
from metasim_jax.export.run import TrainedRun

# Format -> writer class (imported on use: tfds pulls in TensorFlow).
FORMATS = {
    "tfds": "metasim_jax.export.tfds_writer:TfdsWriter",
    "coco": "metasim_jax.export.coco:CocoWriter",
    "kitti": "metasim_jax.export.kitti:KittiWriter",
}
# 256 aerial scenes (64x64 RGB) peak at ~1.6 GB RSS, 500 at ~2.1 GB, at the
# same speed (benchmarks/generate.py).
DEFAULT_SHARD_SIZE = 256
# TFDS file formats: array_record (random access, ``as_data_source``; tfds
# 4.9 cannot ``as_dataset`` it) or tfrecord (``as_dataset``).
TFDS_FILE_FORMATS = ("array_record", "tfrecord")


def writer_class(fmt: str):
  if fmt not in FORMATS:
    raise ExportError(f"--format={fmt}: unknown format; valid: "
                      f"{', '.join(FORMATS)}")
  module, name = FORMATS[fmt].split(":")
  return getattr(importlib.import_module(module), name)


def check_request(num_scenes: int, fmt: str, shard_size: int,
                  file_format: str = "array_record") -> None:
  """Checks what needs no run directory (before any loading)."""
  if num_scenes <= 0:
    raise ExportError(f"--num_scenes={num_scenes}: must be a positive "
                      "number of scenes")
  if shard_size <= 0:
    raise ExportError(f"--shard_size={shard_size}: must be positive")
  if fmt not in FORMATS:
    raise ExportError(f"--format={fmt}: unknown format; valid: "
                      f"{', '.join(FORMATS)}")
  if file_format not in TFDS_FILE_FORMATS:
    raise ExportError(f"--tfds_file_format={file_format}: unknown; valid: "
                      f"{', '.join(TFDS_FILE_FORMATS)}")


def check_output(out_dir: str, overwrite: bool,
                 protect: Sequence[str] = ()) -> None:
  """Refuses an output dir that is a file, non-empty (without
  ``overwrite``), or that contains a directory in ``protect``."""
  if not out_dir:
    raise ExportError("--output_dir: missing")
  real = os.path.realpath(out_dir)
  for p in protect:
    rp = os.path.realpath(p)
    if rp == real or rp.startswith(real.rstrip(os.sep) + os.sep):
      raise ExportError(f"--output_dir={out_dir}: it holds {p}, which "
                        "generation must not replace")
  if not os.path.exists(out_dir):
    return
  if not os.path.isdir(out_dir):
    raise ExportError(f"--output_dir={out_dir}: exists and is not a "
                      "directory")
  entries = os.listdir(out_dir)
  if entries and not overwrite:
    raise ExportError(f"--output_dir={out_dir}: not empty ({len(entries)} "
                      "entries); pass --overwrite to replace it")


def check_format(run: TrainedRun, fmt: str):
  """The writer class of ``fmt`` if it applies to the run's task: object
  formats (``needs_objects``: COCO, KITTI) need a task whose labels are
  maps of object instances, not one class per scene."""
  cls = writer_class(fmt)
  if cls.needs_objects and run.pipe.task.scene_label is not None:
    raise ExportError(
        f"--format={fmt}: does not apply to run {run.config.name!r}, "
        f"a {run.config.task_type} task ({fmt} needs object instances and "
        "boxes; this task labels whole scenes); use --format=tfds")
  return cls


def _commit(tmp: str, out_dir: str) -> None:
  """Moves the finished ``tmp`` onto ``out_dir`` (renames only)."""
  os.chmod(tmp, 0o755)
  if not os.path.exists(out_dir):
    os.rename(tmp, out_dir)
    return
  if not os.listdir(out_dir):
    os.rmdir(out_dir)
    os.rename(tmp, out_dir)
    return
  old = tempfile.mkdtemp(dir=os.path.dirname(tmp), prefix=".old-")
  os.rename(out_dir, os.path.join(old, "replaced"))
  os.rename(tmp, out_dir)
  shutil.rmtree(old)


class _Progress:
  """Progress lines; the rate counts from the first shard on (the first
  one includes compilation)."""

  def __init__(self, total: int):
    self.total, self.start = total, time.perf_counter()
    self.first = None  # (scenes, time) when the first shard was written

  def log(self, done: int) -> None:
    now = time.perf_counter()
    if self.first is None:
      self.first = (done, now)
      logging.info("[generate] %d/%d scenes | first shard (with "
                   "compilation) in %.1fs", done, self.total,
                   now - self.start)
      return
    rate = (done - self.first[0]) / max(now - self.first[1], 1e-9)
    logging.info("[generate] %d/%d scenes (%.0f%%) | %.0f scenes/s | "
                 "%.1fs elapsed, ETA %.1fs", done, self.total,
                 100.0 * done / self.total, rate, now - self.start,
                 (self.total - done) / max(rate, 1e-9))


def generate(run: TrainedRun, out_dir: str, *, num_scenes: int, fmt: str,
             seed: int, shard_size: int = DEFAULT_SHARD_SIZE,
             overwrite: bool = False, stuff: Sequence[str] | None = None,
             file_format: str = "array_record",
             on_shard: Callable[[int], None] | None = None) -> str:
  """Writes ``num_scenes`` generated scenes of ``run`` to ``out_dir``.

  Args:
    run: a loaded run (``export.run.load``).
    out_dir: output directory; must not exist or be empty, unless
      ``overwrite`` (then it is replaced once the new data is complete).
    num_scenes: N > 0.
    fmt: a key of ``FORMATS``.
    seed: sampling seed.
    shard_size: scenes per jitted batch and per file shard.
    overwrite: replace a non-empty ``out_dir``.
    stuff: semantic classes that are not objects (``objects.DEFAULT_STUFF``
      if None).
    file_format: TFDS file format (``TFDS_FILE_FORMATS``; tfds only).
    on_shard: called with the number of scenes written after each shard.

  Returns:
    ``out_dir``.
  """
  check_request(num_scenes, fmt, shard_size, file_format)
  check_output(out_dir, overwrite, protect=(run.run_dir,))
  cls = check_format(run, fmt)
  pipe = run.pipe
  things = objects.thing_classes(pipe.prior, stuff)
  batch = min(shard_size, num_scenes)
  meta = provenance.describe(run, fmt=fmt, seed=seed, num_scenes=num_scenes,
                             shard_size=batch, things=things)
  if fmt == "tfds":
    meta["file_format"] = file_format
  parent, name = os.path.split(os.path.abspath(out_dir))
  try:
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.tmp-")
  except OSError as e:
    why = e.strerror
    if os.path.exists(parent) and not os.path.isdir(parent):
      why = f"{parent} is not a directory"
    raise ExportError(f"--output_dir={out_dir}: cannot create it "
                      f"({why})") from None
  try:
    writer = cls(tmp, run, meta, things)
    fn = make_batch_fn(pipe, batch, objects.thing_slots(pipe.prior, things),
                       amodal=cls.amodal)
    root = keys.root(seed, "export")
    num_shards = -(-num_scenes // batch)
    progress = _Progress(num_scenes)
    pending = fn(jax.random.fold_in(root, 0), run.params, run.pools)
    for s in range(num_shards):
      current = pending
      if s + 1 < num_shards:  # dispatched now, computed while we write
        pending = fn(jax.random.fold_in(root, s + 1), run.params, run.pools)
      count = min(batch, num_scenes - s * batch)
      host = jax.tree.map(lambda x, c=count: jax.device_get(x)[:c], current)
      del current
      writer.write(host, s * batch)
      done = s * batch + count
      progress.log(done)
      if on_shard is not None:
        on_shard(done)
    writer.close()
    _commit(tmp, out_dir)
  except OSError as e:  # e.g. the disk is full
    shutil.rmtree(tmp, ignore_errors=True)
    raise ExportError(f"--output_dir={out_dir}: writing failed "
                      f"({e.strerror or e}); nothing was changed") from e
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  logging.info("[generate] wrote %d scenes (%s) to %s", num_scenes, fmt,
               out_dir)
  return out_dir
