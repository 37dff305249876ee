"""The experiment loop: data -> pre-training -> MMD -> task -> evaluation.

``run(config, workdir)`` reads top to bottom in the sections below, like
big_vision's ``train.py``.  All jitted functions are built once and reused
for every seed in ``config.seeds``; ``_run_seed`` then takes each seed
through the stages ``_pretrain``, ``_match`` (MMD), ``_meta_objective``
(task) and ``_evaluate``.

Checkpoints (``checkpoint.py``, in ``workdir/checkpoints/seed<N>``) hold the
whole state of the stage a seed is in, plus its host-side record (curves,
timings, finished results).  They are written at the start of every stage
(that is, when the previous one ends), every ``config.checkpoint_every``
steps, after each evaluated source, and when the seed is done.  Every random
draw is a function of (seed, stage, step) (named streams split from
``jax.random.key(seed)``, folded with the step), so a run resumed from a
checkpoint does exactly what the killed one would have done.  A NaN or Inf
in a step's metrics or in a state to checkpoint stops the run
(``checkpoint.NonFiniteError``).  TensorBoard events go to
``workdir/tb/seed<N>`` (``tb_writer.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import serialization
from PIL import Image

from metasim_jax import features as features_lib
from metasim_jax import grammar as grammar_lib
from metasim_jax import render as render_lib
from metasim_jax import tasknet as tasknet_lib
from metasim_jax import transformer as transformer_lib
from metasim_jax.data import aerial, mnist
from metasim_jax.training import checkpoint, losses, report, tb_writer
from metasim_jax.training import pipeline as pl
from metasim_jax.types import TexturePool

# Reported name -> scene source: the oracle trains on the target's own
# parameters with the grammar's digit pool.
SOURCES = {"prior": "prior", "metasim": "metasim", "oracle": "target"}


class Progress:
  """Console progress: stage, step, metrics and ETA."""

  def __init__(self, stage: str, total: int, every: int, first: int = 0):
    self.stage, self.total, self.every = stage, total, max(every, 1)
    self.first = first  # steps done before this process (resumed runs)
    self.start = time.perf_counter()

  def log(self, step: int, metrics: dict[str, float]) -> None:
    done = step + 1
    if done % self.every and done != self.total:
      return
    elapsed = time.perf_counter() - self.start
    eta = elapsed / max(done - self.first, 1) * (self.total - done)
    text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    logging.info("[%s] step %d/%d %s | %.1fs elapsed, ETA %.1fs", self.stage,
                 done, self.total, text, elapsed, eta)


def _target_set(key, pipe: pl.Pipeline, pool_name: str, pool: TexturePool
                ) -> pl.LabeledSet:
  """Renders the target grammar once per texture of ``pool`` (each digit
  used exactly once, its own label as the class)."""
  g = pipe.target
  scene = grammar_lib.sample(key, g, len(pool), {pool_name: pool})
  n = pipe.label_slot
  attrs = scene.attrs.at[:, n, g.col("texture")].set(
      jnp.arange(len(pool), dtype=jnp.float32))
  attrs = attrs.at[:, n, pipe.label_col].set(pool.labels.astype(jnp.float32))
  scene = scene.replace(attrs=attrs)
  return pl.LabeledSet(images=pipe.render(scene, {pool_name: pool}, g).image,
                       labels=pipe.labels(scene))


def build_data(config: ml_collections.ConfigDict, pipe: pl.Pipeline):
  """(grammar pools, {'real', 'val', 'test'} target sets) of the dataset."""
  dataset = config.get("dataset", "mnist")
  data_key = jax.random.key(config.data_seed)
  if dataset == "mnist":
    images, labels = mnist.load_digits(config.digits, config.data_dir or None)
    parts = mnist.split(images, labels, dict(config.splits), config.data_seed)
    logging.info("digits: %s, splits %s", config.digits,
                 {k: len(v[1]) for k, v in parts.items()})
    pools = {config.pool: mnist.texture_pool(*parts["grammar"])}
    keys = dict(zip(("real", "val", "test"), jax.random.split(data_key, 3)))
    sets = {k: _target_set(keys[k], pipe, config.pool,
                           mnist.texture_pool(*parts[k])) for k in keys}
    return pools, sets
  if dataset == "aerial":
    t = config.textures
    counts = dict(t.counts)
    pools = aerial.texture_pools(t.grammar_seed, counts)
    target_pools = aerial.texture_pools(t.target_seed, counts)
    sets = aerial.target_sets(data_key, pipe, target_pools,
                              dict(config.splits))
    logging.info("aerial textures %s (grammar seed %d, target seed %d); "
                 "target sets %s", counts, t.grammar_seed, t.target_seed,
                 {k: len(v.labels) for k, v in sets.items()})
    return pools, sets
  raise ValueError(f"unknown config.dataset {dataset!r}; valid: mnist, aerial")


def _start_offsets(key, grammar, num_starts: int, spread: float):
  """Head-bias offsets per start: angles stratified around the circle,
  continuous attributes uniform in +-spread (normalised units)."""
  cols = [j for j in range(grammar.num_attrs)
          if grammar.mutable[:, j].any()
          and grammar.attr_kinds[j] in ("continuous", "angle")]
  offsets = np.zeros((num_starts, len(cols)), np.float32)
  u = np.asarray(jax.random.uniform(key, offsets.shape, minval=-1, maxval=1))
  for i, j in enumerate(cols):
    if grammar.attr_kinds[j] == "angle" and num_starts > 1:
      offsets[:, i] = (2.0 * np.arange(num_starts) / num_starts
                       + u[:, i] / num_starts)
    else:
      offsets[:, i] = spread * u[:, i]
  offsets[0] = 0.0  # start 0 is the pre-trained identity
  return cols, offsets


def grammar_dict(config: ml_collections.ConfigDict, which: str) -> dict:
  """``config.<which>`` (a dict), or the JSON file ``config.<which>_file``."""
  path = config.get(f"{which}_file")
  if not path:
    return config[which].to_dict()
  try:
    with open(path) as f:
      return json.load(f)
  except OSError as e:
    raise ValueError(f"config.{which}_file: cannot read {path!r}: "
                     f"{e.strerror}") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"config.{which}_file: {path!r} is not valid JSON: "
                     f"{e}") from None


def build_pipeline(config: ml_collections.ConfigDict):
  """Static pieces of the problem from the config."""
  prior = grammar_lib.compile_grammar(grammar_dict(config, "grammar"))
  target = grammar_lib.compile_grammar(grammar_dict(config, "target"))
  same = (prior.attr_names == target.attr_names
          and [(s.path, s.cls) for s in prior.slots]
          == [(s.path, s.cls) for s in target.slots]
          and (prior.has_attr == target.has_attr).all())
  if not same:
    raise ValueError("config.target must have the structure of "
                     "config.grammar (same classes, children, attributes)")
  canvas = render_lib.Canvas(**config.canvas)
  feat_params, feat_fn = features_lib.create(**config.features)
  model = transformer_lib.build(prior, **config.transformer)
  sigma = (losses.sigma_table(prior, dict(config.task.sigma))
           if config.task.weight else None)
  if config.mmd.grad not in render_lib.MODES:
    raise ValueError(f"config.mmd.grad {config.mmd.grad!r} is not one of "
                     f"{render_lib.MODES}")
  task = config.get("task_type", "classification")
  common = dict(prior=prior, target=target, canvas=canvas, transformer=model,
                feature_fn=feat_fn, grad_mode=config.mmd.grad,
                mmd_batch=config.mmd.batch_size, task_sigma=sigma)
  kwargs = dict(config.tasknet.get("kwargs", {}))
  if task == "segmentation":
    names = render_lib.semantic_names(prior)
    kwargs.setdefault("num_classes", len(names))
    tasknet = tasknet_lib.create(config.tasknet.name, **kwargs)
    return pl.Pipeline(**common, tasknet=tasknet, task=task,
                       class_names=names,
                       mean_over=tuple(config.mean_over)), feat_params
  label_col = prior.col(config.label.attr)
  if prior.attr_kinds[label_col] != "categorical":
    raise ValueError(f"config.label.attr {config.label.attr!r} must be a "
                     "categorical attribute")
  tasknet = tasknet_lib.create(config.tasknet.name, **kwargs)
  pipe = pl.Pipeline(**common, tasknet=tasknet,
                     label_slot=prior.slot(config.label.slot),
                     label_col=label_col)
  return pipe, feat_params


def _get(config: ml_collections.ConfigDict, name: str):
  node = config
  for part in name.split("."):
    if part not in node:
      return None
    node = node[part]
  return node


# Config values that must be in range, by kind: (dotted name, ...).
_AT_LEAST_0 = ("pretrain.steps", "mmd.steps", "task.steps", "task.inner_steps",
               "eval.train_steps", "eval.probe_steps", "eval.probe_every",
               "mmd.weight", "task.weight", "mmd.start_spread")
_AT_LEAST_1 = ("pretrain.batch_size", "mmd.batch_size", "mmd.select_batch",
               "mmd.num_starts", "task.num_scenes", "task.inner_batch",
               "eval.batch_size", "eval.num_scenes", "eval.repeats",
               "log_every", "curve_every", "checkpoint_every")
_POSITIVE = ("pretrain.lr", "mmd.lr", "task.lr", "task.gen_lr", "eval.lr")
DATASETS = ("mnist", "aerial")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ValueError`` naming the first config value out of range
  (steps, sizes, learning rates, names), before any work is done."""
  dataset = config.get("dataset", "mnist")
  if dataset not in DATASETS:
    raise ValueError(f"unknown config.dataset {dataset!r}; valid: "
                     f"{', '.join(DATASETS)}")
  if not config.seeds:
    raise ValueError("config.seeds is empty")
  if len(set(config.seeds)) != len(config.seeds):
    raise ValueError(f"config.seeds {tuple(config.seeds)} has a repeated "
                     "seed")
  checks = ([(n, lambda v: v >= 0, ">= 0") for n in _AT_LEAST_0]
            + [(n, lambda v: v >= 1, ">= 1") for n in _AT_LEAST_1]
            + [(n, lambda v: np.isfinite(v) and v > 0, "a finite number > 0")
               for n in _POSITIVE])
  for name, ok, what in checks:
    value = _get(config, name)
    if value is not None and not ok(value):
      raise ValueError(f"config.{name} must be {what}, got {value!r}")
  decay = config.task.baseline_decay
  if not 0.0 <= decay <= 1.0:
    raise ValueError(f"config.task.baseline_decay must be in [0, 1], got "
                     f"{decay!r}")
  if not all(b > 0 for b in config.mmd.bandwidths):
    raise ValueError(f"config.mmd.bandwidths must all be > 0, got "
                     f"{tuple(config.mmd.bandwidths)}")


@dataclasses.dataclass(frozen=True)
class _Setup:
  """What every seed shares: config, problem, data, jitted functions."""
  config: ml_collections.ConfigDict
  workdir: str
  pipe: pl.Pipeline
  pools: Any
  feat_params: Any
  target_mmd: features_lib.MMDTarget
  test_ref: features_lib.MMDTarget
  val: pl.LabeledSet
  test: pl.LabeledSet
  pretrain_tx: Any
  pretrain_step: Any
  mmd_tx: Any
  mmd_step: Any
  mmd_eval: Any
  gen_tx: Any
  task_step: Any
  probe: Any
  final: dict[str, Any]
  steps: dict[str, int]  # stage -> number of steps


def run(config: ml_collections.ConfigDict, workdir: str, command: str = "",
        *, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
  """Runs the experiment for every seed; writes results into ``workdir``:
  results.json, summary.md (with ``command``), grids, curves, checkpoints
  and TensorBoard logs.

  ``resume`` continues from the newest checkpoints in ``workdir`` (seeds
  already finished are not run again); a fresh run refuses a workdir with
  checkpoints unless ``overwrite``, which deletes them and the TensorBoard
  logs.  Raises ``checkpoint.CheckpointError`` (bad workdir for the mode)
  and ``checkpoint.NonFiniteError`` (a NaN/Inf in training).
  """
  t_start = time.perf_counter()
  check_config(config)
  checkpoint.check_workdir(workdir, config, config.seeds, resume=resume,
                           overwrite=overwrite)
  if overwrite:
    for name in (checkpoint.DIRNAME, TB_DIRNAME):
      shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
  # -------------------------------------------- problem and target data
  pipe, feat_params = build_pipeline(config)
  for which in ("grammar", "target"):  # the run's grammars, for later use
    report.write_json(f"{workdir}/{which}.json", grammar_dict(config, which))
  grammar_pools, sets = build_data(config, pipe)
  real, val, test = sets["real"], sets["val"], sets["test"]
  feature_fn = jax.jit(pipe.feature_fn)
  target_mmd = features_lib.MMDTarget.create(
      feature_fn(feat_params, real.images), config.mmd.bandwidths)
  # Built once: the test set's features and MMD constants for the reports.
  test_ref = features_lib.MMDTarget.create(
      feature_fn(feat_params, test.images), config.mmd.bandwidths)

  # ------------------------------------------------- jitted functions
  tx = pl.adam(config.mmd.lr,
               decay_steps=config.mmd.steps if config.mmd.lr_decay else None)
  pre_tx = pl.adam(config.pretrain.lr)
  task_tx = pl.adam(config.task.lr)  # the task net inside task_step
  gen_tx = pl.adam(config.task.gen_lr)  # the transformer in the task stage
  eval_tx = pl.adam(config.eval.lr, decay_steps=config.eval.train_steps)
  probe_tx = pl.adam(config.eval.lr, decay_steps=config.eval.probe_steps)
  pretrain_step = pl.make_pretrain_step(pipe, pre_tx, config.pretrain.batch_size)
  mmd_step = pl.make_mmd_step(pipe, tx)
  mmd_eval = pl.make_mmd_eval(pipe, config.mmd.select_batch)
  task_step = None
  if config.task.weight and config.task.steps:
    task_step = pl.make_task_step(
        pipe, gen_tx, task_tx,
        num_scenes=config.task.num_scenes,
        inner_steps=config.task.inner_steps,
        inner_batch=config.task.inner_batch,
        task_weight=config.task.weight,
        mmd_weight=config.mmd.weight if config.task.with_mmd else 0.0,
        baseline_decay=config.task.baseline_decay,
        reward=config.task.reward, fixed_task_init=config.task.fixed_init,
        noise=config.task.noise)
  probe = pl.make_train_and_score(pipe, probe_tx, steps=config.eval.probe_steps,
                                  batch=config.eval.batch_size,
                                  source="metasim")
  final = {s: pl.make_train_and_score(pipe, eval_tx,
                                      steps=config.eval.train_steps,
                                      batch=config.eval.batch_size, source=src)
           for s, src in SOURCES.items()}
  setup = _Setup(
      config=config, workdir=workdir, pipe=pipe, pools=grammar_pools,
      feat_params=feat_params, target_mmd=target_mmd, test_ref=test_ref,
      val=val, test=test, pretrain_tx=pre_tx, pretrain_step=pretrain_step,
      mmd_tx=tx, mmd_step=mmd_step, mmd_eval=mmd_eval,
      gen_tx=gen_tx, task_step=task_step, probe=probe,
      final=final, steps={
          "pretrain": config.pretrain.steps,
          "mmd": config.mmd.steps if config.mmd.weight else 0,
          "task": config.task.steps if task_step is not None else 0,
          "eval": len(SOURCES), "done": 0})

  # ------------------------------------------------------ seeds
  per_seed = []
  for seed in config.seeds:
    per_seed.append(_run_seed(setup, seed))
    summary = _summarise(config, per_seed, t_start, pipe.headline)
    report.write_json(f"{workdir}/results.json", summary)
    report.write_summary(f"{workdir}/summary.md", summary,
                         command or f"trainer.run(config, {workdir!r})",
                         tensorboard_dir=TB_DIRNAME,
                         checkpoint_dir=checkpoint.DIRNAME)
  logging.info("results: %s/results.json; TensorBoard: tensorboard "
               "--logdir %s", workdir, os.path.join(workdir, TB_DIRNAME))
  return summary


# ------------------------------------------------------------ one seed
STAGES = ("pretrain", "mmd", "task", "eval", "done")
TB_DIRNAME = "tb"


class _Seed:
  """One seed's run: its keys, checkpoints, TensorBoard writer, and the
  host-side record (curves, timings, results) that checkpoints carry.

  Progress is one global step: the stages follow each other, each starting
  one step after the previous one ended, so ``global_step(stage, step)`` is
  increasing.  It numbers the checkpoints and TensorBoard's step axis.
  """

  def __init__(self, setup: _Setup, seed: int):
    self.setup, self.seed = setup, seed
    # Named streams of the seed's root key: every random draw of the run is
    # a function of (seed, stream, step).
    (self.k_init, self.k_pre, self.k_starts, self.k_mmd, self.k_task,
     self.k_eval, self.k_select, self.k_stats,
     self.k_probe) = jax.random.split(jax.random.key(seed), 9)
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
    steps = self.setup.steps
    return sum(steps[s] + 1 for s in STAGES[:STAGES.index(stage)]) + step

  # -------------------------------------------------- params and states
  def init_params(self):
    pipe = self.setup.pipe
    scene = grammar_lib.sample(self.k_init, pipe.prior, 2, self.setup.pools)
    return transformer_lib.init(self.k_init, pipe.transformer, pipe.prior,
                                scene)

  def mmd_state(self, params) -> pl.MetaSimState:
    """K starts around the pre-trained params (``_start_offsets``)."""
    config, prior = self.setup.config, self.setup.pipe.prior
    starts = config.mmd.num_starts if config.mmd.weight else 1
    cols, offsets = _start_offsets(self.k_starts, prior, starts,
                                   config.mmd.start_spread)
    params_k = jax.tree.map(lambda x: jnp.stack([x] * starts), params)
    params_k = jax.vmap(lambda p, o: transformer_lib.with_offsets(
        p, prior, o, cols))(params_k, jnp.asarray(offsets))
    return pl.init_state(self.k_mmd, params_k, self.setup.mmd_tx)

  def task_state(self, params) -> pl.MetaSimState:
    return pl.init_state(self.k_task, jax.tree.map(lambda x: x[None], params),
                         self.setup.gen_tx)

  def state_shape(self, stage: str):
    """Shapes and dtypes of the state checkpointed in ``stage``."""
    params = jax.eval_shape(self.init_params)
    config = self.setup.config
    if stage == "pretrain":
      return {"params": params,
              "opt_state": jax.eval_shape(self.setup.pretrain_tx.init, params)}
    if stage == "mmd":  # mmd_state's offsets change values, not shapes
      starts = config.mmd.num_starts if config.mmd.weight else 1
      return jax.eval_shape(lambda p: pl.init_state(
          self.k_mmd, jax.tree.map(lambda x: jnp.stack([x] * starts), p),
          self.setup.mmd_tx), params)
    if stage == "task":
      return jax.eval_shape(self.task_state, params)
    return params  # eval, done: the trained transformer

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
    """Checks ``state`` is finite, flushes TensorBoard, writes checkpoint
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
    every = self.setup.config.get("checkpoint_every", 100)
    return done % every == 0 and done < self.setup.steps[stage]

  def curve(self, panel: str, label: str, step: int, value: float) -> None:
    self.record["curves"][panel].setdefault(label, []).append(
        (step, float(value)))


def _run_seed(setup: _Setup, seed: int) -> dict[str, Any]:
  """One seed from its newest checkpoint (or the start) to its results."""
  run = _Seed(setup, seed)
  stage, step, state = run.restore()
  if stage == "done":
    logging.info("seed %d: finished earlier; results from its checkpoint",
                 seed)
    run.ckpt.close()
    return run.record["result"]
  run.tb = tb_writer.Writer(
      os.path.join(setup.workdir, TB_DIRNAME, f"seed{seed}"),
      purge_step=run.global_step(stage, step) + 1 if state is not None else 0)
  # Each stage continues from ``state`` at ``step`` if it is the restored
  # one, else starts from the previous stage's transformer params.
  params = None
  try:
    for name, stage_fn in (("pretrain", _pretrain), ("mmd", _match),
                           ("task", _meta_objective), ("eval", _evaluate)):
      if STAGES.index(name) < STAGES.index(stage):
        continue
      run.start_clock(name)
      params = stage_fn(setup, run, params,
                        state if name == stage else None,
                        step if name == stage else 0)
  finally:  # also on NonFiniteError: keep the events logged up to it
    run.tb.close()
    run.ckpt.close()
  return run.record["result"]


def _pretrain(setup: _Setup, run: _Seed, params, state, start: int):
  """Autoencoder (identity) pre-training of the transformer."""
  config = setup.config
  if state is None:
    params = run.init_params()
    state = {"params": params,
             "opt_state": setup.pretrain_tx.init(params)}
    run.save("pretrain", 0, state)
  params, opt = state["params"], state["opt_state"]
  total = setup.steps["pretrain"]
  prog = Progress("pretrain", total, config.log_every, start)
  for i in range(start, total):
    params, opt, loss = setup.pretrain_step(
        params, opt, jax.random.fold_in(run.k_pre, i), setup.pools)
    loss = float(loss)
    run.check("pretrain", i + 1, {"ae_loss": loss})
    run.tb.scalars(run.global_step("pretrain", i + 1), {"ae_loss": loss},
                   "pretrain/")
    prog.log(i, {"ae_loss": loss})
    if run.due("pretrain", i + 1):
      run.save("pretrain", i + 1, {"params": params, "opt_state": opt})
  return params


def _match(setup: _Setup, run: _Seed, params, state, start: int):
  """Distribution matching: MMD^2 over K starts, then the best start."""
  config, pipe = setup.config, setup.pipe
  total = setup.steps["mmd"]
  probe_every = config.eval.probe_every if total else 0

  def run_probe(state, step: int):
    # Task score on V of the start that currently matches best.
    k = int(np.argmin(np.asarray(setup.mmd_eval(
        state.params, run.k_select, setup.pools, setup.feat_params,
        setup.target_mmd))))
    acc = float(setup.probe(run.k_probe,
                            jax.tree.map(lambda x: x[k], state.params),
                            setup.pools, setup.val)[pipe.headline])
    run.curve(run.probe_name, "Meta-Sim (MMD)", step, acc)
    run.tb.scalars(run.global_step("mmd", step),
                   {f"probe_{pipe.headline}_on_V": acc}, "mmd/")
    logging.info("[mmd] step %d probe: task %s on V %.4f (start %d)",
                 step, pipe.headline, acc, k)

  if state is None:
    state = run.mmd_state(params)
    if probe_every:
      run_probe(state, 0)
    run.save("mmd", 0, state)
  prog = Progress("mmd", total, config.log_every, start)
  for i in range(start, total):
    state, m = setup.mmd_step(state, setup.pools, setup.feat_params,
                              setup.target_mmd)
    m = jax.device_get(m)
    run.check("mmd", i + 1, m)
    mmd = m["mmd2"]
    run.tb.scalars(run.global_step("mmd", i + 1),
                   {f"{name}/start{k}": v[k] for name, v in
                    (("mmd2_train_batch", mmd), ("grad_norm", m["grad_norm"]))
                    for k in range(len(mmd))}, "mmd/")
    if i == 0 or (i + 1) % config.curve_every == 0:
      for k in range(len(mmd)):
        run.curve("MMD^2 (train batch)", f"start {k}", i + 1, mmd[k])
    # On this step's batch; the final choice uses a fresh, larger batch.
    prog.log(i, {"batch_mmd2_min": float(mmd.min()),
                 "batch_argmin_start": float(mmd.argmin())})
    if probe_every and (i + 1) % probe_every == 0:
      run_probe(state, i + 1)
    if run.due("mmd", i + 1):
      run.save("mmd", i + 1, state)
  selection = np.asarray(setup.mmd_eval(state.params, run.k_select,
                                        setup.pools, setup.feat_params,
                                        setup.target_mmd))
  best = int(np.argmin(selection))
  if len(selection) > 1:
    logging.info("start selection MMD^2 %s -> start %d", selection.round(5),
                 best)
  run.record["selection"], run.record["best"] = selection.tolist(), best
  run.tb.scalars(run.global_step("mmd", total),
                 {**{f"selection_mmd2/start{k}": v
                     for k, v in enumerate(selection)},
                  "selected_start": best}, "mmd/")
  return jax.tree.map(lambda x: x[best], state.params)


def _meta_objective(setup: _Setup, run: _Seed, params, state, start: int):
  """The task meta-objective (Algorithm 1, REINFORCE) from the best start."""
  config = setup.config
  if state is None:
    state = run.task_state(params)
    run.save("task", 0, state)
  total = setup.steps["task"]
  prog = Progress("task", total, max(1, config.log_every // 10), start)
  for i in range(start, total):
    state, m = setup.task_step(state, setup.pools, setup.feat_params,
                               setup.target_mmd, setup.val)
    m = {k: float(v) for k, v in jax.device_get(m).items()}
    run.check("task", i + 1, m)
    run.curve("task reward on V", "reward", i + 1, m["reward"])
    run.curve("task reward on V", "baseline", i + 1, m["baseline"])
    run.tb.scalars(run.global_step("task", i + 1), m, "task/")
    prog.log(i, {k: m[k] for k in ("reward", "baseline", "val_score",
                                   "mmd2")})
    if run.due("task", i + 1):
      run.save("task", i + 1, state)
  return jax.tree.map(lambda x: x[0], state.params)


def _evaluate(setup: _Setup, run: _Seed, params, state, start: int):
  """Task networks trained on each source, scored on the test set (one
  checkpoint per source), then the distribution report and pictures."""
  config, pipe, head = setup.config, setup.pipe, setup.pipe.headline
  if state is None:
    run.save("eval", 0, params)
  else:
    params = state
  # Each source trains ``eval.repeats`` task networks (same keys for every
  # source: common random numbers) and reports their mean; one training's
  # figure on 1,000 test digits varies by about +-0.5 points.
  for j, source in enumerate(SOURCES):
    if j < start:
      continue
    runs = [setup.final[source](
        jax.random.fold_in(run.k_eval, r) if r else run.k_eval, params,
        setup.pools, setup.test) for r in range(config.eval.get("repeats", 1))]
    run.record["eval"][source] = {k: [float(x[k]) for x in runs]
                                  for k in runs[0]}
    means = {k: float(np.nanmean(v))
             for k, v in run.record["eval"][source].items()}
    run.tb.scalars(run.global_step("eval", j + 1), {
        ("" if k == "train_loss" else "test_") + f"{k}/{source}": v
        for k, v in means.items()}, "eval/")
    logging.info("[eval] trained on %-8s -> test %s %.4f (%s)", source,
                 head, means[head], ", ".join(
                     f"{a:.4f}" for a in run.record["eval"][source][head]))
    if pipe.task == "segmentation":
      logging.info("[eval]   IoU %s", " ".join(
          f"{n}={means['iou_' + n]:.3f}" for n in pipe.class_names
          if n != "none"))
    run.save("eval", j + 1, params)

  repeats = run.record["eval"]
  results = {s: {k: float(np.nanmean(v)) for k, v in repeats[s].items()}
             for s in SOURCES}
  stats, dist, values = _distribution_report(
      config, pipe, params, setup.pools, setup.feat_params, setup.test_ref,
      run.k_stats)
  learned = stats["metasim"]
  target_stats = stats["target"]
  errors = {}
  for name, tv in target_stats.items():
    kind = tv["kind"]
    mv = learned[name]["mean"]
    errors[name] = (report.angle_error(mv, tv["mean"]) if kind == "angle"
                    else abs(mv - tv["mean"]))
  run.read_clock()
  sec = run.record["seconds"]
  training = sum(sec.get(s, 0.0) for s in ("pretrain", "mmd", "task"))
  out = {
      "seed": run.seed,
      f"test_{head}": {s: results[s][head] for s in SOURCES},
      "test_loss": {s: results[s]["loss"] for s in SOURCES},
      f"test_{head}_per_repeat": {s: repeats[s][head] for s in SOURCES},
      "test_metrics": results,
      "distribution": dist,
      "attribute_stats": stats,
      "attribute_mean_error": errors,
      "mmd_start_selection": run.record["selection"],
      "selected_start": run.record["best"],
      "seconds": {"mmd_stage": sec.get("mmd", 0.0),
                  "task_stage": sec.get("task", 0.0),
                  "training_total": training,
                  "with_evaluation": training + sec.get("eval", 0.0)},
      "curves": run.record["curves"],
  }
  grid = _write_pictures(config, pipe, params, setup.pools, run.seed,
                         setup.test, run.record["curves"], setup.workdir)
  # The trained generator, for sampling datasets later.
  report.write_bytes(f"{setup.workdir}/transformer_seed{run.seed}.msgpack",
                     serialization.to_bytes(params))
  step = run.global_step("done", 0)
  run.tb.scalars(step, {f"{m}_vs_test/{s}": d[m] for s, d in dist.items()
                        for m in ("mmd2", "kid")}, "eval/")
  run.tb.image("samples/prior_metasim_target", grid, step)
  for source, cols in values.items():
    for name, v in cols.items():  # scene/digit[0].yaw -> scene/digit0.yaw
      name = name.replace("[", "").replace("]", "")
      run.tb.histogram(f"attributes/{source}/{name}", v, step)
  run.record["result"] = out
  run.save("done", 0, params)
  return params


def _distribution_report(config, pipe, params, pools, feat_params, reference,
                         key):
  """Attribute statistics and MMD^2 / KID of each source vs the test set,
  and the attribute values ({source: {slot.attr: [n]}}) behind them."""
  n = config.eval.num_scenes
  prior = pipe.prior
  columns = [(prior.slots[i].path, i, j)
             for i, j in zip(*np.nonzero(prior.mutable))
             if prior.attr_kinds[j] in ("continuous", "angle")]
  k_scene, k_kid = jax.random.split(key)

  stats, dist, values = {}, {}, {}
  for name, source in (("prior", "prior"), ("metasim", "metasim"),
                       ("oracle", "target")):
    scene, mmd2, kid = _measure(pipe, k_scene, k_kid, n, params, pools,
                                feat_params, reference, source)
    attrs, mask = np.asarray(scene.attrs), np.asarray(scene.node_mask)
    key = "target" if name == "oracle" else name
    stats[key] = report.attribute_stats(attrs, mask, prior.attr_names,
                                        prior.attr_kinds, columns)
    values[key] = {f"{path}.{prior.attr_names[j]}": attrs[:, i, j][mask[:, i]]
                   for path, i, j in columns}
    dist[name] = {"mmd2": float(mmd2), "kid": float(kid[0]),
                  "kid_std": float(kid[1])}
  return stats, dist, values


@functools.partial(jax.jit, static_argnums=(0, 3, 8))
def _measure(pipe, k_scene, k_kid, n, params, pools, feat_params, reference,
             source):
  scene = pipe.sample(k_scene, n, pools, params, source)
  grammar = pipe.target if source == "target" else pipe.prior
  feats = pipe.feature_fn(feat_params,
                          pipe.render(scene, pools, grammar).image)
  return (scene, reference.mmd2(feats),
          features_lib.kid(k_kid, feats, reference.feats))


@functools.partial(jax.jit, static_argnums=(0, 2))
def _picture_renders(pipe, key, n, params, pools):
  """Renders of ``n`` prior scenes and of the same scenes transformed."""
  scene = pipe.sample(key, n, pools, source="prior")
  return pipe.render(scene, pools), pipe.render(pipe.transform(params, scene),
                                                pools)


def _write_pictures(config, pipe, params, pools, seed, test, curves, workdir):
  """Writes the sample grid and curves PNGs; returns the grid [H, W, 3]."""
  k = jax.random.key(10_000 + seed)
  n = 10 if pipe.task == "classification" else min(10, len(test.labels))
  shown = _picture_renders(pipe, k, n, params, pools)
  if pipe.task == "segmentation":
    colour = report.colorize
    rows = [("input (prior)", shown[0].image),
            ("  its labels", colour(shown[0].semantic)),
            ("Meta-Sim", shown[1].image),
            ("  its labels", colour(shown[1].semantic)),
            ("target", test.images[:n]),
            ("  its labels", colour(test.labels[:n]))]
  else:
    rows = [("input (prior)", shown[0].image), ("Meta-Sim", shown[1].image),
            # The target set is sorted by label: show one of each class.
            ("target", test.images[np.linspace(0, len(test.labels) - 1, 10)
                                   .astype(int)])]
  grid = f"{workdir}/grid_seed{seed}.png"
  report.save_grid(grid, [(t, np.asarray(x)) for t, x in rows])
  report.save_curves(f"{workdir}/curves_seed{seed}.png", curves,
                     f"{config.name} seed {seed}")
  with Image.open(grid) as im:  # the grid as written, for TensorBoard
    return np.asarray(im.convert("RGB"))


def _summarise(config, per_seed, t_start, head) -> dict[str, Any]:
  acc = {s: [r[f"test_{head}"][s] for r in per_seed] for s in SOURCES}
  gap = [r[f"test_{head}"]["oracle"] - r[f"test_{head}"]["metasim"]
         for r in per_seed]
  tol = dict(config.success.attribute_tolerance)
  ok_attr = []
  for r in per_seed:
    ok = all(err <= tol.get(name.rsplit(".", 1)[-1], np.inf)
             for name, err in r["attribute_mean_error"].items())
    ok_attr.append(bool(ok))
  return {
      "experiment": config.name,
      "summary": {
          "seeds": list(config.seeds),
          "headline_metric": head,
          f"test_{head}_mean": {s: float(np.mean(v)) for s, v in acc.items()},
          f"test_{head}_per_seed": acc,
          "test_metrics_mean": {
              s: {k: float(np.nanmean([r["test_metrics"][s][k]
                                       for r in per_seed]))
                  for k in per_seed[0]["test_metrics"][s]}
              for s in SOURCES},
          "oracle_minus_metasim_per_seed": gap,
          "attributes_within_tolerance_per_seed": ok_attr,
          "attribute_tolerance": tol,
          "wall_seconds": time.perf_counter() - t_start,
      },
      "per_seed": per_seed,
      "config": config.to_dict(),
      "versions": report.versions(),
  }
