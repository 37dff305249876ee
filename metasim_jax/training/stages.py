"""The generator-training stages of one seed, as host loops around the
jitted steps: ``pretrain`` (autoencoder), ``match`` (MMD^2, multi-start)
and ``meta_objective`` (the task loss, Algorithm 1).

Each stage takes the previous stage's transformer params, or resumes from
``state`` at ``start`` (a restored checkpoint), and returns its trained
params.  Metrics stay on the device between host syncs: they are read to
the host (and checked for NaN/Inf, logged to TensorBoard, the console and
the curves) only at logging, curve, probe and checkpoint steps, so the host
can queue the next steps meanwhile.  Every checkpointed state is checked
for NaN/Inf first (``SeedRun.save``).
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import logging

from metasim_jax import parallel
from metasim_jax.training import evaluation, screen
from metasim_jax.training import steps as steps_lib

from metasim_jax.training.seed import Phase, SeedRun, Setup


class Progress:
  """Console progress: stage, step, metrics and ETA."""

  def __init__(self, stage: str, total: int, every: int, first: int = 0):
    self.stage, self.total, self.every = stage, total, max(every, 1)
    self.first = first  # steps done before this process (resumed runs)
    self.start = time.perf_counter()

  def due(self, done: int) -> bool:
    return done % self.every == 0 or done == self.total

  def log(self, done: int, metrics: dict[str, float]) -> None:
    elapsed = time.perf_counter() - self.start
    eta = elapsed / max(done - self.first, 1) * (self.total - done)
    text = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    logging.info("[%s] step %d/%d %s | %.1fs elapsed, ETA %.1fs", self.stage,
                 done, self.total, text, elapsed, eta)


def _sync_due(setup: Setup, run: SeedRun, stage: str, done: int,
              prog: Progress, *extra: int) -> bool:
  """Whether step ``done`` reads its metrics to the host."""
  curve = setup.config.curve_every
  return (done == 1 or prog.due(done) or done % curve == 0
          or run.due(stage, done) or any(e and done % e == 0 for e in extra))


def pretrain(setup: Setup, run: SeedRun, params, state, start: int):
  """Autoencoder (identity) pre-training of the transformer."""
  if state is None:
    params = run.init_params()
    state = {"params": params, "opt_state": setup.pretrain_tx.init(params)}
    run.save("pretrain", 0, state)
  params, opt = state["params"], state["opt_state"]
  total = setup.steps["pretrain"]
  prog = Progress("pretrain", total, setup.config.log_every, start)
  for i in range(start, total):
    params, opt, loss = setup.pretrain_step(
        params, opt, run.keys("pretrain", i), setup.pools)
    done = i + 1
    if _sync_due(setup, run, "pretrain", done, prog):
      m = {"ae_loss": float(parallel.to_host(loss))}
      run.check("pretrain", done, m)
      run.tb.scalars(run.global_step("pretrain", done), m, "pretrain/")
      if prog.due(done):
        prog.log(done, m)
    if run.due("pretrain", done):
      run.save("pretrain", done, {"params": params, "opt_state": opt})
  return params


def _probe(setup: Setup, run: SeedRun, phase: Phase, state, step: int,
           x: int, label: str) -> None:
  """Task score on V of the start that currently matches best."""
  head = setup.pipe.headline
  k = int(np.argmin(parallel.to_host(phase.mmd_eval(
      state.params, run.keys("select"), setup.pools, setup.feat_params,
      setup.target_mmd))))
  params = jax.tree.map(lambda x: x[k], state.params)
  task_params, _ = phase.probe.run(run.keys("probe"), params, setup.pools)
  score = float(parallel.to_host(setup.score(task_params, setup.val)[head]))
  run.curve(run.probe_name, label, x, score)
  run.tb.scalars(run.global_step(phase.name, step),
                 {f"probe_{head}_on_V": score}, f"{phase.name}/")
  logging.info("[%s] step %d probe: task %s on V %.4f (start %d)",
               phase.name, step, head, score, k)


def _curve_axis(setup: Setup, phase: Phase) -> tuple[int, str]:
  """(x offset, label prefix) of a stage's curves: explicit schedules draw
  their stages one after the other on one axis."""
  if phase.name in ("mmd", "task"):
    return 0, ""
  before = setup.phases[:setup.phases.index(phase)]
  return (sum(p.steps for p in before if p.spec.objective
              == phase.spec.objective), f"{phase.spec.label}: ")


def _screened_state(setup: Setup, run: SeedRun, phase: Phase, params):
  """The stage's state from the best of ``mmd.screen_candidates``
  candidate starts (``screen.py``), recorded and logged."""
  mmd = setup.config.mmd
  t0 = time.perf_counter()
  key = run.phase_key("starts", phase)
  params_k, mmd2, deltas, order = screen.screen(
      phase.mmd_eval, params, jax.random.fold_in(key, 1), setup.pools,
      setup.feat_params, setup.target_mmd, mask=phase.screen,
      num=mmd.screen_candidates, keep=run.num_starts(),
      shift=mmd.screen_shift, log_spread=tuple(mmd.screen_log_spread),
      chunk=_screen_chunk(phase.pipe))
  run.check(phase.name, 0, {"screen_mmd2": mmd2})
  names = screen.entry_names(phase.pipe.prior, phase.screen)
  best = deltas[order[0]]
  run.record.setdefault("screen", {})[phase.name] = {
      "mmd2": mmd2.tolist(), "kept": order.tolist(), "entries": names,
      "deltas": deltas.tolist()}
  logging.info(
      "[%s] screened %d candidates in %.0fs: MMD^2 as it is %.5f, best "
      "%.5f (candidate %d: %s)", phase.name, len(mmd2),
      time.perf_counter() - t0, mmd2[0], mmd2[order[0]], order[0],
      ", ".join(f"{n} {v:+.2f}" for n, v in zip(names, best)))
  return steps_lib.init_state(run.phase_key("mmd", phase), params_k,
                              setup.mmd_tx)


# Candidates scored per call of the stage's jitted MMD^2 evaluation (at
# least; rounded up to a multiple of the mesh's "starts" devices).
SCREEN_CHUNK = 8


def _screen_chunk(pipe) -> int:
  n = parallel.size(pipe.mesh, "starts")
  return n * -(-SCREEN_CHUNK // n)


def match(setup: Setup, run: SeedRun, phase: Phase, params, state,
          start: int):
  """Distribution matching: MMD^2 over K starts, then the best start."""
  config, name = setup.config, phase.name
  total = phase.steps
  probe_every = config.eval.probe_every if total else 0
  x0, prefix = _curve_axis(setup, phase)
  probe_label = f"{prefix}Meta-Sim (MMD)"
  if state is None:
    state = (run.mmd_state(params, phase) if phase.screen is None
             else _screened_state(setup, run, phase, params))
    if probe_every:
      _probe(setup, run, phase, state, 0, x0, probe_label)
    run.save(name, 0, state)
  prog = Progress(name, total, config.log_every, start)
  for i in range(start, total):
    state, m = phase.step(state, setup.pools, setup.feat_params,
                          setup.target_mmd)
    done = i + 1
    if _sync_due(setup, run, name, done, prog, probe_every):
      m = parallel.to_host(m)
      run.check(name, done, m)
      mmd, k_all = m["mmd2"], range(len(m["mmd2"]))
      run.tb.scalars(run.global_step(name, done),
                     {f"{n}/start{k}": v[k] for n, v in
                      (("mmd2_train_batch", mmd),
                       ("grad_norm", m["grad_norm"])) for k in k_all},
                     f"{name}/")
      if done == 1 or done % config.curve_every == 0:
        for k in k_all:
          run.curve("MMD^2 (train batch)", f"{prefix}start {k}", x0 + done,
                    mmd[k])
      if prog.due(done):  # this step's batch; selection uses a larger one
        prog.log(done, {"batch_mmd2_min": float(mmd.min()),
                        "batch_argmin_start": float(mmd.argmin())})
    if probe_every and done % probe_every == 0:
      _probe(setup, run, phase, state, done, x0 + done, probe_label)
    if run.due(name, done):
      run.save(name, done, state)
  selection = parallel.to_host(phase.mmd_eval(
      state.params, run.keys("select"), setup.pools, setup.feat_params,
      setup.target_mmd))
  run.check(name, total, {"selection_mmd2": selection})
  best = int(np.argmin(selection))
  if len(selection) > 1:
    logging.info("[%s] start selection MMD^2 %s -> start %d", name,
                 selection.round(5), best)
  run.record["selection"], run.record["best"] = selection.tolist(), best
  run.tb.scalars(run.global_step(name, total),
                 {**{f"selection_mmd2/start{k}": v
                     for k, v in enumerate(selection)},
                  "selected_start": best}, f"{name}/")
  return jax.tree.map(lambda x: x[best], state.params)


def meta_objective(setup: Setup, run: SeedRun, phase: Phase, params, state,
                   start: int):
  """The task meta-objective (Algorithm 1, REINFORCE, or ``es``) from the
  best start.  Its steps are long (task networks are trained in each), so
  every step's metrics are read, with the statistics of the generated
  attributes (TensorBoard ``<stage>/attributes/``, and the log), and every
  step is checkpointed whatever ``checkpoint_every`` (the last one by the
  next stage's first checkpoint)."""
  name = phase.name
  if state is None:
    state = run.task_state(params, phase)
    coarse = getattr(phase.step, "coarse_start", None)
    if coarse is not None:  # es: the best of K candidate starts, once
      state, rewards, offsets, best, chosen = coarse(state, setup.pools,
                                                     setup.val)
      run.record.setdefault("coarse_start", {})[name] = {
          "rewards": rewards.tolist(), "offsets": offsets.tolist(),
          "chosen": best, "chosen_offsets": chosen.tolist()}
      run.tb.scalars(run.global_step(name, 0), {
          f"reward_{k}": float(r) for k, r in enumerate(rewards)},
          f"{name}/coarse_start/")
      logging.info("[%s] coarse start: rewards %s, best candidate %d "
                   "-> offsets %s", name,
                   [round(float(r), 4) for r in rewards], best,
                   [round(float(o), 3) for o in chosen])
    run.save(name, 0, state)
  total = phase.steps
  x0, prefix = _curve_axis(setup, phase)
  prog = Progress(name, total, max(1, setup.config.log_every // 10), start)
  for i in range(start, total):
    state, m = phase.step(state, setup.pools, setup.feat_params,
                          setup.target_mmd, setup.val)
    done = i + 1
    m = {k: float(v) for k, v in parallel.to_host(m).items()}
    run.check(name, done, m)
    for k in ("reward", "baseline", "best"):  # "best": es's population
      if k in m:
        run.curve("task reward on V", f"{prefix}{k}", x0 + done, m[k])
    stats = evaluation.class_stats(
        setup, phase.pipe, jax.tree.map(lambda x: x[0], state.params),
        run.keys("stats"))
    run.tb.scalars(run.global_step(name, done), m, f"{name}/")
    run.tb.scalars(run.global_step(name, done), {
        f"{a}/{k}": v[k] for a, v in stats.items() for k in ("mean", "std")},
        f"{name}/attributes/")
    run.record.setdefault("attribute_trace", {}).setdefault(name, []).append(
        {"step": done, **{a: {k: float(v[k]) for k in ("mean", "std")}
                          for a, v in stats.items()}})
    if prog.due(done):
      prog.log(done, {k: m[k] for k in ("reward", "baseline", "best",
                                        "val_score", "mmd2") if k in m})
      logging.info("[%s]   generated: %s", name, ", ".join(
          f"{a} {v['mean']:.2f}+-{v['std']:.2f}" for a, v in stats.items()))
    if done < total:  # a step takes minutes: none is lost on a crash
      run.save(name, done, state)
  return jax.tree.map(lambda x: x[0], state.params)


STAGE_FNS = {"mmd": match, "task": meta_objective}
