"""The experiment loop: data -> pre-training -> MMD -> task -> evaluation.

``run(config, workdir)`` reads top to bottom in the sections below, like
big_vision's ``train.py``: checks, the problem and its data
(``pipeline.build``, the world's target sets), the jitted functions (built
once and reused for every seed in ``config.seeds``), then each seed through
the stages of ``stages.py`` and ``evaluation.py``.

Checkpoints (``checkpoint.py``, in ``workdir/checkpoints/seed<N>``) hold the
whole state of the stage a seed is in, plus its host-side record (curves,
timings, finished results).  They are written at the start of every stage
(that is, when the previous one ends), every ``config.checkpoint_every``
steps, after each evaluated source, and when the seed is done.  Every random
draw is a function of (seed, stream, step) (``keys.Streams``), so a run
resumed from a checkpoint does exactly what the killed one would have done.
A NaN or Inf in the metrics read to the host, or in a state to checkpoint,
stops the run (``checkpoint.NonFiniteError``).  TensorBoard events go to
``workdir/tb/seed<N>`` (``tb_writer.py``).
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from metasim_jax import features as features_lib
from metasim_jax import io
from metasim_jax import keys as keys_lib
from metasim_jax import parallel
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import schedule
from metasim_jax import task_features
from metasim_jax.training import (checkpoint, es, evaluation, report,
                                  screen, stages, steps, tb_writer, unrolled)
from metasim_jax.training.seed import Phase, SeedRun, Setup

TB_DIRNAME = "tb"

# Config values that must be in range, by kind: (dotted name, ...).
_AT_LEAST_0 = ("pretrain.steps", "mmd.steps", "task.steps", "task.inner_steps",
               "eval.train_steps", "eval.probe_steps", "eval.probe_every",
               "mmd.weight", "task.weight", "mmd.start_spread",
               "task_features.steps", "task_features.synthetic",
               "task.es.warm_steps", "task.es.coarse_spread",
               "mmd.screen_candidates", "mmd.screen_shift")
_AT_LEAST_1 = ("pretrain.batch_size", "mmd.batch_size", "mmd.select_batch",
               "mmd.num_starts", "task.num_scenes", "task.inner_batch",
               "eval.batch_size", "eval.num_scenes", "eval.repeats",
               "log_every", "curve_every", "checkpoint_every",
               "task_features.batch", "task.es.coarse_starts")
# Batches split over the data devices (smaller ones are computed whole).
_SPLIT_OVER_DEVICES = ("pretrain.batch_size", "mmd.batch_size",
                       "mmd.select_batch", "task.num_scenes",
                       "task.inner_batch", "eval.batch_size")
_POSITIVE = ("pretrain.lr", "mmd.lr", "task.lr", "task.gen_lr", "eval.lr",
             "task_features.lr", "task_features.weight", "task.es.pairs",
             "task.es.lr")
ESTIMATORS = ("reinforce", "es", "unrolled")


def _get(config: ml_collections.ConfigDict, name: str):
  node = config
  for part in name.split("."):
    node = node[part]
  return node


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ValueError`` naming the first config value out of range
  (steps, sizes, learning rates, seeds), before any work is done; plug-in
  names are checked when the pipeline is built."""
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
    if not ok(value):
      raise ValueError(f"config.{name} must be {what}, got {value!r}")
  tf = config.task_features
  if tf.pooling not in task_features.POOLINGS:
    raise ValueError(f"config.task_features.pooling {tf.pooling!r} is not "
                     f"one of {task_features.POOLINGS}")
  if not tf.radii or min(tf.radii) <= 0:
    raise ValueError(f"config.task_features.radii must be positive radii "
                     f"in px, got {tuple(tf.radii)}")
  if tf.bins < 2:
    raise ValueError(f"config.task_features.bins must be >= 2, got "
                     f"{tf.bins}")
  if config.task.estimator not in ESTIMATORS:
    raise ValueError(f"config.task.estimator {config.task.estimator!r} is "
                     f"not one of {ESTIMATORS}")
  if config.task.inner_optimizer not in steps.OPTIMIZERS:
    raise ValueError(f"config.task.inner_optimizer "
                     f"{config.task.inner_optimizer!r} is not one of "
                     f"{steps.OPTIMIZERS}")
  steps.check_reward(config.task.reward)
  if config.task.estimator == "unrolled":
    if config.task.reward != "neg_loss":
      raise ValueError("config.task.estimator 'unrolled' descends V's loss: "
                       "set config.task.reward='neg_loss' (got "
                       f"{config.task.reward!r}, which has no gradient)")
    if config.task.unrolled_affine_only and not config.transformer.affine:
      raise ValueError("config.task.unrolled_affine_only needs "
                       "config.transformer.affine=True")
  if config.task.estimator == "es":
    if not config.transformer.affine:
      raise ValueError("config.task.estimator 'es' searches the "
                       "transformer's affine parameters: set "
                       "config.transformer.affine=True")
    if config.task.es.normalise not in es.NORMALISE:
      raise ValueError(f"config.task.es.normalise "
                       f"{config.task.es.normalise!r} is not one of "
                       f"{es.NORMALISE}")
    if config.task.es.sigma < 0 or config.task.es.log_sigma < 0:
      raise ValueError("config.task.es.sigma and log_sigma must be >= 0")
    if not 0.0 <= config.task.es.momentum < 1.0:
      raise ValueError(f"config.task.es.momentum must be in [0, 1), got "
                       f"{config.task.es.momentum}")
    if not 0.0 <= config.task.es.decay_start < 1.0:
      raise ValueError(f"config.task.es.decay_start must be in [0, 1), got "
                       f"{config.task.es.decay_start}")
    if not 0.0 < config.task.es.sigma_floor <= 1.0:
      raise ValueError(f"config.task.es.sigma_floor must be in (0, 1], got "
                       f"{config.task.es.sigma_floor}")
  if config.mmd.screen_candidates > 1:
    lo, hi = config.mmd.screen_log_spread
    if not lo <= hi:
      raise ValueError(f"config.mmd.screen_log_spread must be (low, high) "
                       f"with low <= high, got {(lo, hi)}")
    if not config.transformer.affine:
      raise ValueError("config.mmd.screen_candidates needs "
                       "config.transformer.affine=True: the candidates are "
                       "the affine head's shifts and spreads")
    if config.mmd.num_starts > config.mmd.screen_candidates:
      raise ValueError(f"config.mmd.num_starts ({config.mmd.num_starts}) "
                       f"must be <= config.mmd.screen_candidates "
                       f"({config.mmd.screen_candidates}): the starts are "
                       f"the best candidates")
  decay = config.task.baseline_decay
  if not 0.0 <= decay <= 1.0:
    raise ValueError(f"config.task.baseline_decay must be in [0, 1], got "
                     f"{decay!r}")
  par = config.parallel
  if par.devices < 0 or par.starts < 1:
    raise ValueError(f"config.parallel.devices must be >= 0 and "
                     f"config.parallel.starts >= 1, got {par.devices}, "
                     f"{par.starts}")
  parallel.check_batches(
      {n: _get(config, n) for n in _SPLIT_OVER_DEVICES}, par.devices,
      par.starts, config.mmd.num_starts)
  if (not config.mmd.median_multiples
      or not all(b > 0 for b in config.mmd.median_multiples)):
    raise ValueError(f"config.mmd.median_multiples must all be > 0, got "
                     f"{tuple(config.mmd.median_multiples)}")


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
  if overwrite and parallel.is_writer():
    for name in (checkpoint.DIRNAME, TB_DIRNAME):
      shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
  parallel.barrier("workdir ready")
  # -------------------------------------------- problem and target data
  pipe, feat_params = pipeline_lib.build(config)
  for which in ("grammar", "target"):  # the run's grammars, for later use
    if parallel.is_writer():
      io.write_json(f"{workdir}/{which}.json",
                    pipeline_lib.grammar_dict(config, which))
  pools, sets = pipeline_lib.build_data(config, pipe)
  logging.info("world %s: target sets %s", config.world,
               {k: len(v.labels) for k, v in sets.items()})
  if config.task.weight and config.task.steps:  # before any training
    steps.check_reward(config.task.reward, score_names(pipe, sets["val"]))
  pipe, feat_params = task_features.build(config, pipe, feat_params, sets,
                                          pools)
  feature_fn = jax.jit(pipe.feature_fn)
  target_mmd = features_lib.MMDTarget.create(
      feature_fn(feat_params, sets["real"].images),
      config.mmd.median_multiples)
  # Built once: the test set's features and MMD constants for the reports.
  test_ref = features_lib.MMDTarget.create(
      feature_fn(feat_params, sets["test"].images),
      config.mmd.median_multiples)

  # ------------------------------------------------- jitted functions
  setup = _setup(config, workdir, pipe, pools, feat_params, target_mmd,
                 test_ref, sets)

  # ------------------------------------------------------ seeds
  per_seed = []
  for seed in config.seeds:
    per_seed.append(run_seed(setup, seed))
    summary = evaluation.summarise(config, per_seed, t_start, pipe.headline)
    if parallel.is_writer():
      io.write_json(f"{workdir}/results.json", summary)
      report.write_summary(f"{workdir}/summary.md", summary,
                           command or f"trainer.run(config, {workdir!r})",
                           tensorboard_dir=TB_DIRNAME,
                           checkpoint_dir=checkpoint.DIRNAME)
  logging.info("results: %s/results.json; TensorBoard: tensorboard "
               "--logdir %s", workdir, os.path.join(workdir, TB_DIRNAME))
  return summary


def score_names(pipe: pipeline_lib.Pipeline, val) -> list[str]:
  """The metrics ``pipe.score`` returns on ``val`` (traced, not run)."""
  params = jax.eval_shape(lambda k: pipe.tasknet.init(
      k, jnp.zeros((1,) + tuple(pipe.input_shape)))["params"],
                          keys_lib.root(0, "train"))  # shapes only
  return sorted(jax.eval_shape(pipe.score, params, val))


def _setup(config, workdir, pipe, pools, feat_params, target_mmd, test_ref,
           sets) -> Setup:
  """The optimisers and jitted functions every seed shares."""
  mmd_tx = steps.optimizer(config.mmd.optimizer, config.mmd.lr, decay_steps=(
      config.mmd.steps if config.mmd.lr_decay else None))
  pretrain_tx = steps.adam(config.pretrain.lr)
  # The task net inside the task step; the unrolled estimator
  # differentiates through its updates (Adam's sqrt needs eps_root there).
  task_tx = (steps.optimizer("sgd", config.task.lr)
             if config.task.inner_optimizer == "sgd" else
             steps.adam(config.task.lr, eps_root=(
                 1e-12 if config.task.estimator == "unrolled" else 0.0)))
  # The transformer in the task stage (es: its affine parameters).
  gen_tx = (steps.adam(config.task.es.lr, b1=config.task.es.momentum)
            if config.task.estimator == "es" else
            steps.adam(config.task.gen_lr))
  eval_tx = steps.adam(config.eval.lr, decay_steps=config.eval.train_steps)
  probe_tx = steps.adam(config.eval.lr, decay_steps=config.eval.probe_steps)
  specs = schedule.parse(
      config.schedule, pipe.prior,
      mmd=bool(config.mmd.weight and config.mmd.steps),
      task=bool(config.task.weight and config.task.steps))
  trainer = lambda p, tx, n: p.task_trainer(
      tx, steps=n, batch=config.eval.batch_size, source="metasim")
  # What both task-stage estimators share.
  task_args = dict(num_scenes=config.task.num_scenes,
                   inner_steps=config.task.inner_steps,
                   inner_batch=config.task.inner_batch,
                   task_weight=config.task.weight,
                   mmd_weight=(config.mmd.weight if config.task.with_mmd
                               else 0.0),
                   reward=config.task.reward,
                   fixed_task_init=config.task.fixed_init)
  phases = []
  for spec, learned in zip(specs, schedule.learned_before(specs, pipe.prior)):
    ph = pipe.for_groups(spec.groups, config.mmd.hold_weight, learned)
    if spec.objective == "mmd":
      step = steps.make_mmd_step(ph, mmd_tx)
      n = config.mmd.steps if spec.steps is None else spec.steps
    else:
      n = config.task.steps if spec.steps is None else spec.steps
      if config.task.estimator == "es":
        e = config.task.es
        step = es.make_es_step(
            ph, gen_tx, task_tx, pairs=e.pairs, sigma=e.sigma,
            log_sigma=e.log_sigma, normalise=e.normalise,
            decay_steps=n if e.lr_decay else 0, sigma_floor=e.sigma_floor,
            decay_start=e.decay_start, vmap=e.vmap,
            warm_steps=e.warm_steps, coarse_starts=e.coarse_starts,
            coarse_spread=e.coarse_spread,
            coarse_contract=e.coarse_contract, coarse_fit=e.coarse_fit,
            relative_shift=e.relative_shift,
            attributes=[a.strip() for a in e.attributes.split(",")
                        if a.strip()],
            **task_args)
      elif config.task.estimator == "unrolled":
        step = unrolled.make_unrolled_step(
            ph, gen_tx, task_tx, affine_only=config.task.unrolled_affine_only,
            **task_args)
      else:
        step = steps.make_task_step(
            ph, gen_tx, task_tx, baseline_decay=config.task.baseline_decay,
            noise=config.task.noise, inner_loop=config.task.inner_loop,
            **task_args)
    mask = (screen.new_mask(pipe.prior, spec.groups, learned)
            if spec.objective == "mmd" and config.mmd.screen_candidates > 1
            else None)
    phases.append(Phase(
        spec=spec, pipe=ph, step=step,
        mmd_eval=steps.make_mmd_eval(ph, config.mmd.select_batch),
        probe=trainer(ph, probe_tx, config.eval.probe_steps),
        final=trainer(ph, eval_tx, config.eval.train_steps), steps=n,
        screen=mask if mask is not None and mask.any() else None))
  # Rows: the prior, each stage of an explicit schedule (the last one is
  # "metasim"), the oracle.
  staged = bool(config.schedule.strip())
  rows = (("prior", "prior", None),
          *((p.spec.label, "metasim", i) for i, p in enumerate(phases[:-1])
            if staged),
          ("metasim", "metasim", len(phases) - 1 if phases else None),
          ("oracle", "target", None))
  return Setup(
      config=config, workdir=workdir, pipe=pipe, pools=pools,
      feat_params=feat_params, target_mmd=target_mmd, test_ref=test_ref,
      val=sets["val"], test=sets["test"], pretrain_tx=pretrain_tx,
      pretrain_step=steps.make_pretrain_step(pipe, pretrain_tx,
                                             config.pretrain.batch_size),
      mmd_tx=mmd_tx, gen_tx=gen_tx, phases=tuple(phases), rows=rows,
      final={s: pipe.task_trainer(eval_tx, steps=config.eval.train_steps,
                                  batch=config.eval.batch_size, source=src)
             for s, src in (("prior", "prior"), ("oracle", "target"),
                            ("metasim", "metasim"))},
      score=jax.jit(pipe.score),
      steps={"pretrain": config.pretrain.steps,
             **{p.name: p.steps for p in phases},
             "eval": len(rows), "done": 0})


def run_seed(setup: Setup, seed: int) -> dict[str, Any]:
  """One seed from its newest checkpoint (or the start) to its results."""
  run = SeedRun(setup, seed)
  stage, step, state = run.restore()
  if stage == "done":
    logging.info("seed %d: finished earlier; results from its checkpoint",
                 seed)
    run.ckpt.close()
    return run.record["result"]
  run.tb = tb_writer.Writer(
      os.path.join(setup.workdir, TB_DIRNAME, f"seed{seed}"),
      purge_step=run.global_step(stage, step) + 1 if state is not None else 0
  ) if parallel.is_writer() else tb_writer.Null()
  # Each stage continues from ``state`` at ``step`` if it is the restored
  # one, else starts from the previous stage's transformer params.
  params = None
  names = setup.stage_names
  staged = bool(setup.config.schedule.strip())
  try:
    for name in names[:-1]:
      if names.index(name) < names.index(stage):
        continue
      run.start_clock(name)
      go = (state if name == stage else None, step if name == stage else 0)
      if name == "pretrain":
        params = stages.pretrain(setup, run, params, *go)
      elif name == "eval":
        params = evaluation.evaluate(setup, run, params, *go)
      else:
        phase = setup.phase(name)
        params = stages.STAGE_FNS[phase.spec.objective](setup, run, phase,
                                                         params, *go)
        if staged:  # its results row is evaluated from these params
          run.save_stage_params(name, params)
  finally:  # also on NonFiniteError: keep the events logged up to it
    run.tb.close()
    run.ckpt.close()
  return run.record["result"]
