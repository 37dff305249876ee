"""What every seed shares (``Setup``) and one seed's run (``SeedRun``):
its named keys, checkpoints, TensorBoard writer, clock and the host-side
record (curves, timings, results) that its checkpoints carry."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import ml_collections
from absl import logging
from flax import serialization

from metasim_jax import io
from metasim_jax import keys as keys_lib
from metasim_jax.features import MMDTarget
from metasim_jax.pipeline import Pipeline
from metasim_jax.schedule import StageSpec
from metasim_jax.tasknet import HostTrainer
from metasim_jax.training import checkpoint, starts, steps, tb_writer
from metasim_jax.types import LabeledSet, MetaSimState

# Reported name -> scene source: the oracle trains on the target's own
# parameters with the grammar's assets.
SOURCES = {"prior": "prior", "metasim": "metasim", "oracle": "target"}
# A seed's key streams (``keys.Streams``): every random draw of a run is a
# function of (seed, stream, step).
KEY_STREAMS = ("init_scene", "init_params", "pretrain", "starts", "mmd",
               "task", "select", "probe", "eval", "stats", "pictures")


@dataclasses.dataclass(frozen=True)
class Phase:
  """One generator-training stage of the schedule (``schedule.py``) with
  its pipeline (only its groups mutable) and jitted functions.

  Attributes:
    spec: name, label, groups, objective.
    pipe: the pipeline of the stage's groups.
    step: jitted MMD step or task step.
    mmd_eval: MMD^2 of each start on a larger batch (MMD stages), or None.
    probe: task net trained on the stage's scenes during MMD (probes).
    final: task net trained on the stage's scenes for its results row.
    steps: number of steps.
    screen: [classes, A] bool, the (class, attribute) pairs an MMD stage
      screens before its first step (``screen.py``), or None.
  """
  spec: StageSpec
  pipe: Pipeline
  step: Any
  mmd_eval: Any
  probe: HostTrainer
  final: HostTrainer
  steps: int
  screen: Any = None

  @property
  def name(self) -> str:
    return self.spec.name


@dataclasses.dataclass(frozen=True)
class Setup:
  """What every seed shares: config, problem, data, jitted functions.

  ``rows`` are the evaluated results: (row name, scene source, phase
  index or None): the prior, every stage of an explicit schedule but the
  last (by label), "metasim" (the last stage) and the oracle."""
  config: ml_collections.ConfigDict
  workdir: str
  pipe: Pipeline
  pools: Any
  feat_params: Any
  target_mmd: MMDTarget
  test_ref: MMDTarget
  val: LabeledSet
  test: LabeledSet
  pretrain_tx: Any
  pretrain_step: Any
  mmd_tx: Any
  gen_tx: Any
  phases: tuple[Phase, ...]
  rows: tuple[tuple[str, str, int | None], ...]
  final: dict[str, HostTrainer]  # prior and oracle
  score: Any  # jitted pipe.score
  steps: dict[str, int]  # stage -> number of steps

  @property
  def stage_names(self) -> tuple[str, ...]:
    return ("pretrain",) + tuple(p.name for p in self.phases) + ("eval",
                                                                 "done")

  @property
  def final_pipe(self) -> Pipeline:
    """The pipeline of the last stage (what "metasim" scenes come from)."""
    return self.phases[-1].pipe if self.phases else self.pipe

  def phase(self, name: str) -> Phase:
    return next(p for p in self.phases if p.name == name)


class SeedRun:
  """One seed's run.

  Progress is one global step: the stages follow each other, each starting
  one step after the previous one ended, so ``global_step(stage, step)`` is
  increasing.  It numbers the checkpoints and TensorBoard's step axis.
  """

  def __init__(self, setup: Setup, seed: int):
    self.setup, self.seed = setup, seed
    self.keys = keys_lib.Streams(keys_lib.root(seed, "train"), KEY_STREAMS)
    self.ckpt = checkpoint.SeedCheckpoints(
        checkpoint.seed_dir(setup.workdir, seed))
    self.probe_name = f"probe {setup.pipe.headline} on V"
    self.record: dict[str, Any] = {
        "curves": {"MMD^2 (train batch)": {}, self.probe_name: {},
                   "task reward on V": {}},
        "seconds": {}, "selection": None, "best": None, "eval": {},
        "result": None}
    self.tb: tb_writer.Writer | None = None
    self._clock = ("", 0.0, 0.0)

  def global_step(self, stage: str, step: int) -> int:
    n, names = self.setup.steps, self.setup.stage_names
    return sum(n[s] + 1 for s in names[:names.index(stage)]) + step

  # -------------------------------------------------- params and states
  def init_params(self):
    return self.setup.pipe.init_transformer(
        self.keys("init_scene"), self.keys("init_params"), self.setup.pools)

  def num_starts(self) -> int:
    config = self.setup.config
    return config.mmd.num_starts if config.mmd.weight else 1

  def mmd_state(self, params, phase: Phase) -> MetaSimState:
    """K starts around the previous stage's params (``starts.py``)."""
    config = self.setup.config
    return starts.multi_start_state(
        self.phase_key("starts", phase), self.phase_key("mmd", phase), params,
        phase.pipe.prior, self.num_starts(), config.mmd.start_spread,
        self.setup.mmd_tx)

  def phase_key(self, stream: str, phase: Phase | None) -> jax.Array:
    """The key of ``stream`` for a stage: the stream's own key in the
    default schedule, one per stage (by index) in an explicit one."""
    if phase is None or phase.name in ("mmd", "task"):
      return self.keys(stream)
    return self.keys(stream, self.setup.phases.index(phase))

  def task_state(self, params, phase: Phase | None = None) -> MetaSimState:
    return steps.init_state(self.phase_key("task", phase),
                            starts.stack(params, 1), self.setup.gen_tx)

  def state_shape(self, stage: str):
    """Shapes and dtypes of the state checkpointed in ``stage``."""
    params = jax.eval_shape(self.init_params)
    if stage == "pretrain":
      return {"params": params,
              "opt_state": jax.eval_shape(self.setup.pretrain_tx.init, params)}
    if stage in ("eval", "done"):
      return params  # the trained transformer
    phase = self.setup.phase(stage)
    if phase.spec.objective == "mmd":  # start offsets change values only
      return jax.eval_shape(lambda p: steps.init_state(
          self.phase_key("mmd", phase), starts.stack(p, self.num_starts()),
          self.setup.mmd_tx), params)
    return jax.eval_shape(lambda p: self.task_state(p, phase), params)

  # ------------------------------------------------ stages' end params
  def _stage_file(self, name: str) -> str:
    return os.path.join(checkpoint.seed_dir(self.setup.workdir, self.seed),
                        "stages", f"{name}.msgpack")

  def save_stage_params(self, name: str, params) -> None:
    """The transformer at the end of stage ``name`` (its results row is
    evaluated from it, after the last stage)."""
    self.check(name, self.setup.steps[name], params)
    io.write_bytes(self._stage_file(name),
                   serialization.to_bytes(jax.device_get(params)))

  def load_stage_params(self, name: str):
    path = self._stage_file(name)
    try:
      with open(path, "rb") as f:
        data = f.read()
    except OSError as e:
      raise checkpoint.CheckpointError(
          f"{path}: the end of stage {name!r} is missing ({e.strerror}); "
          "rerun without --resume") from None
    return serialization.from_bytes(jax.eval_shape(self.init_params), data)

  # ------------------------------------------- checkpoints and checks
  def restore(self):
    """(stage, step, state) of the newest checkpoint; a fresh start is
    ("pretrain", 0, None).  Restores the record too."""
    step = self.ckpt.latest()
    if step is None:
      return "pretrain", 0, None
    meta = self.ckpt.read_meta(step)
    self.record = meta["record"]
    state = self.ckpt.restore(step, self.state_shape(meta["stage"]))
    logging.info("seed %d: resuming from %s (stage %s, step %d)", self.seed,
                 self.ckpt.path(step), meta["stage"], meta["step"])
    return meta["stage"], meta["step"], state

  def check(self, stage: str, step: int, values) -> None:
    """Raises ``checkpoint.NonFiniteError`` if ``values`` (metrics already
    on the host, or a state) hold a NaN or an infinity."""
    checkpoint.check_finite(
        values, f"seed {self.seed}, stage {stage}, step {step}")

  def start_clock(self, stage: str) -> None:
    """Times ``stage`` from now on (seconds kept in the record, summed over
    resumptions); stops the clock of the previous stage."""
    self.read_clock()
    self._clock = (stage, time.perf_counter(),
                   self.record["seconds"].get(stage, 0.0))

  def read_clock(self) -> None:
    stage, t0, base = self._clock
    if stage:
      self.record["seconds"][stage] = base + time.perf_counter() - t0

  def save(self, stage: str, step: int, state) -> None:
    """Checks ``state`` is finite (a non-finite state is never
    checkpointed), flushes TensorBoard, writes checkpoint
    global_step(stage, step) with the record."""
    self.check(stage, step, state)
    self.read_clock()
    self.tb.flush()
    self.ckpt.save(self.global_step(stage, step), state, {
        "seed": self.seed, "stage": stage, "step": step,
        "global_step": self.global_step(stage, step), "record": self.record,
        "config": checkpoint.config_record(self.setup.config)})

  def due(self, stage: str, done: int) -> bool:
    """Periodic checkpoint after ``done`` steps (the last step is covered
    by the next stage's first checkpoint)."""
    every = self.setup.config.checkpoint_every
    return done % every == 0 and done < self.setup.steps[stage]

  def curve(self, panel: str, label: str, step: int, value: float) -> None:
    self.record["curves"][panel].setdefault(label, []).append(
        (step, float(value)))
