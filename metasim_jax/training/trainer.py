"""The experiment loop: data -> pre-training -> MMD -> task -> evaluation.

``run(config, workdir)`` reads top to bottom in the sections below, like
big_vision's ``train.py``.  All jitted functions are built once and reused
for every seed in ``config.seeds``.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import serialization

from metasim_jax import features as features_lib
from metasim_jax import grammar as grammar_lib
from metasim_jax import render as render_lib
from metasim_jax import tasknet as tasknet_lib
from metasim_jax import transformer as transformer_lib
from metasim_jax.data import aerial, mnist
from metasim_jax.training import losses, report
from metasim_jax.training import pipeline as pl
from metasim_jax.types import TexturePool

# Reported name -> scene source: the oracle trains on the target's own
# parameters with the grammar's digit pool.
SOURCES = {"prior": "prior", "metasim": "metasim", "oracle": "target"}


class Progress:
  """Console progress: stage, step, metrics and ETA."""

  def __init__(self, stage: str, total: int, every: int):
    self.stage, self.total, self.every = stage, total, max(every, 1)
    self.start = time.perf_counter()

  def log(self, step: int, metrics: dict[str, float]) -> None:
    done = step + 1
    if done % self.every and done != self.total:
      return
    elapsed = time.perf_counter() - self.start
    eta = elapsed / done * (self.total - done)
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


def run(config: ml_collections.ConfigDict, workdir: str,
        command: str = "") -> dict[str, Any]:
  """Runs the experiment for every seed; writes results into ``workdir``:
  results.json, summary.md (with ``command``), grids and curves."""
  t_start = time.perf_counter()
  if not config.seeds:
    raise ValueError("config.seeds is empty")
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
  task_tx = pl.adam(config.task.lr)
  eval_tx = pl.adam(config.eval.lr, decay_steps=config.eval.train_steps)
  probe_tx = pl.adam(config.eval.lr, decay_steps=config.eval.probe_steps)
  pretrain_step = pl.make_pretrain_step(pipe, pre_tx, config.pretrain.batch_size)
  mmd_step = pl.make_mmd_step(pipe, tx)
  mmd_eval = pl.make_mmd_eval(pipe, config.mmd.select_batch)
  task_step = None
  if config.task.weight and config.task.steps:
    task_step = pl.make_task_step(
        pipe, pl.adam(config.task.gen_lr), task_tx,
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

  per_seed = []
  for seed in config.seeds:
    per_seed.append(_run_seed(
        config, seed, pipe, grammar_pools, feat_params, target_mmd,
        test_ref, real, val, test, pretrain_step, tx, mmd_step, mmd_eval,
        task_step, probe, final, workdir))
    summary = _summarise(config, per_seed, t_start, pipe.headline)
    report.write_json(f"{workdir}/results.json", summary)
    report.write_summary(f"{workdir}/summary.md", summary,
                         command or f"trainer.run(config, {workdir!r})")
  logging.info("results: %s/results.json", workdir)
  return summary


def _run_seed(config, seed, pipe: pl.Pipeline, pools, feat_params,
              target_mmd, test_ref, real, val, test, pretrain_step,
              mmd_tx, mmd_step, mmd_eval, task_step, probe, final, workdir) -> dict[str, Any]:
  t0 = time.perf_counter()
  root = jax.random.key(seed)
  (k_init, k_pre, k_starts, k_mmd, k_task, k_eval, k_select, k_stats,
   k_probe) = jax.random.split(root, 9)
  probe_name = f"probe {pipe.headline} on V"
  curves: dict[str, dict[str, list]] = {"MMD^2 (train batch)": {},
                                        probe_name: {},
                                        "task reward on V": {}}
  prior = pipe.prior

  # -------------------------------------------------- pre-training (AE)
  init_scene = grammar_lib.sample(k_init, prior, 2, pools)
  params = transformer_lib.init(k_init, pipe.transformer, prior, init_scene)
  opt = pl.adam(config.pretrain.lr).init(params)
  prog = Progress("pretrain", config.pretrain.steps, config.log_every)
  for i in range(config.pretrain.steps):
    params, opt, loss = pretrain_step(params, opt, jax.random.fold_in(k_pre, i),
                                      pools)
    if (i + 1) % config.log_every == 0 or i + 1 == config.pretrain.steps:
      prog.log(i, {"ae_loss": float(loss)})

  # ------------------------------------------------ distribution matching
  starts = config.mmd.num_starts if config.mmd.weight else 1
  cols, offsets = _start_offsets(k_starts, prior, starts,
                                 config.mmd.start_spread)
  params_k = jax.tree.map(lambda x: jnp.stack([x] * starts), params)
  params_k = jax.vmap(lambda p, o: transformer_lib.with_offsets(
      p, prior, o, cols))(params_k, jnp.asarray(offsets))
  state = pl.init_state(k_mmd, params_k, mmd_tx)
  mmd_steps = config.mmd.steps if config.mmd.weight else 0
  prog = Progress("mmd", mmd_steps, config.log_every)
  t_mmd = time.perf_counter()
  time_to_target = None
  def run_probe(step: int):
    # Task accuracy on V of the start that currently matches best.
    k = int(np.argmin(np.asarray(mmd_eval(state.params, k_select, pools,
                                          feat_params, target_mmd))))
    acc = probe(k_probe, jax.tree.map(lambda x: x[k], state.params), pools,
                val)[pipe.headline]
    curves[probe_name].setdefault("Meta-Sim (MMD)", []).append(
        (step, float(acc)))
    logging.info("[mmd] step %d probe: task %s on V %.4f (start %d)",
                 step, pipe.headline, float(acc), k)

  probe_every = config.eval.probe_every if mmd_steps else 0
  if probe_every:
    run_probe(0)
  for i in range(mmd_steps):
    state, m = mmd_step(state, pools, feat_params, target_mmd)
    if i == 0 or (i + 1) % config.curve_every == 0:
      mmd = np.asarray(m["mmd2"])
      for k in range(starts):
        curves["MMD^2 (train batch)"].setdefault(f"start {k}", []).append(
            (i + 1, float(mmd[k])))
    if (i + 1) % config.log_every == 0 or i + 1 == mmd_steps:
      mmd = np.asarray(m["mmd2"])
      # On this step's batch; the final choice uses a fresh, larger batch.
      prog.log(i, {"batch_mmd2_min": float(mmd.min()),
                   "batch_argmin_start": float(mmd.argmin())})
    if probe_every and (i + 1) % probe_every == 0:
      run_probe(i + 1)
  selection = np.asarray(mmd_eval(state.params, k_select, pools, feat_params,
                                  target_mmd))
  best = int(np.argmin(selection))
  if starts > 1:
    logging.info("start selection MMD^2 %s -> start %d", selection.round(5),
                 best)
  mmd_seconds = time.perf_counter() - t_mmd
  params = jax.tree.map(lambda x: x[best], state.params)
  state = pl.init_state(k_task, jax.tree.map(lambda x: x[None], params),
                        pl.adam(config.task.gen_lr))

  # ------------------------------------------------ task meta-objective
  t_task = time.perf_counter()
  task_steps = config.task.steps if task_step is not None else 0
  prog = Progress("task", task_steps, max(1, config.log_every // 10))
  for i in range(task_steps):
    state, m = task_step(state, pools, feat_params, target_mmd, val)
    curves["task reward on V"].setdefault("reward", []).append(
        (i + 1, float(m["reward"])))
    curves["task reward on V"].setdefault("baseline", []).append(
        (i + 1, float(m["baseline"])))
    prog.log(i, {"reward": float(m["reward"]),
                 "baseline": float(m["baseline"]),
                 "val_score": float(m["val_score"]),
                 "mmd2": float(m["mmd2"])})
  task_seconds = time.perf_counter() - t_task
  params = jax.tree.map(lambda x: x[0], state.params)
  train_seconds = time.perf_counter() - t0

  # ------------------------------------------------------ evaluation
  # Each source trains ``eval.repeats`` task networks (same keys for every
  # source: common random numbers) and reports their mean; one training's
  # figure on 1,000 test digits varies by about +-0.5 points.
  results, repeats = {}, {}
  head = pipe.headline
  for source in SOURCES:
    runs = [final[source](jax.random.fold_in(k_eval, r) if r else k_eval,
                          params, pools, test)
            for r in range(config.eval.get("repeats", 1))]
    repeats[source] = {k: [float(x[k]) for x in runs] for k in runs[0]}
    results[source] = {k: float(np.nanmean(v))
                       for k, v in repeats[source].items()}
    logging.info("[eval] trained on %-8s -> test %s %.4f (%s)", source,
                 head, results[source][head],
                 ", ".join(f"{a:.4f}" for a in repeats[source][head]))
    if pipe.task == "segmentation":
      logging.info("[eval]   IoU %s", " ".join(
          f"{n}={results[source]['iou_' + n]:.3f}" for n in pipe.class_names
          if n != "none"))
  stats, dist = _distribution_report(config, pipe, params, pools, feat_params,
                                     test_ref, k_stats)
  learned = stats["metasim"]
  target_stats = stats["target"]
  errors = {}
  for name, tv in target_stats.items():
    kind = tv["kind"]
    mv = learned[name]["mean"]
    errors[name] = (report.angle_error(mv, tv["mean"]) if kind == "angle"
                    else abs(mv - tv["mean"]))
  out = {
      "seed": seed,
      f"test_{head}": {s: results[s][head] for s in SOURCES},
      "test_loss": {s: results[s]["loss"] for s in SOURCES},
      f"test_{head}_per_repeat": {s: repeats[s][head] for s in SOURCES},
      "test_metrics": results,
      "distribution": dist,
      "attribute_stats": stats,
      "attribute_mean_error": errors,
      "mmd_start_selection": selection.tolist(),
      "selected_start": best,
      "seconds": {"mmd_stage": mmd_seconds, "task_stage": task_seconds,
                  "training_total": train_seconds,
                  "with_evaluation": time.perf_counter() - t0},
      "curves": curves,
  }
  _write_pictures(config, pipe, params, pools, seed, test, curves, workdir)
  # The trained generator, for sampling datasets later.
  report.write_bytes(f"{workdir}/transformer_seed{seed}.msgpack",
                     serialization.to_bytes(params))
  return out


def _distribution_report(config, pipe, params, pools, feat_params, reference,
                         key):
  """Attribute statistics and MMD^2 / KID of each source vs the test set."""
  n = config.eval.num_scenes
  prior = pipe.prior
  columns = [(prior.slots[i].path, i, j)
             for i, j in zip(*np.nonzero(prior.mutable))
             if prior.attr_kinds[j] in ("continuous", "angle")]
  k_scene, k_kid = jax.random.split(key)

  stats, dist = {}, {}
  for name, source in (("prior", "prior"), ("metasim", "metasim"),
                       ("oracle", "target")):
    scene, mmd2, kid = _measure(pipe, k_scene, k_kid, n, params, pools,
                                feat_params, reference, source)
    stats["target" if name == "oracle" else name] = report.attribute_stats(
        np.asarray(scene.attrs), np.asarray(scene.node_mask),
        prior.attr_names, prior.attr_kinds, columns)
    dist[name] = {"mmd2": float(mmd2), "kid": float(kid[0]),
                  "kid_std": float(kid[1])}
  return stats, dist


@functools.partial(jax.jit, static_argnums=(0, 3, 8))
def _measure(pipe, k_scene, k_kid, n, params, pools, feat_params, reference,
             source):
  scene = pipe.sample(k_scene, n, pools, params, source)
  grammar = pipe.target if source == "target" else pipe.prior
  feats = pipe.feature_fn(feat_params,
                          pipe.render(scene, pools, grammar).image)
  return (scene, reference.mmd2(feats),
          features_lib.kid(k_kid, feats, reference.feats))


def _write_pictures(config, pipe, params, pools, seed, test, curves, workdir):
  k = jax.random.key(10_000 + seed)
  n = 10 if pipe.task == "classification" else min(10, len(test.labels))
  scene = pipe.sample(k, n, pools, source="prior")
  moved = pipe.transform(params, scene)
  shown = pipe.render(scene, pools), pipe.render(moved, pools)
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
  report.save_grid(f"{workdir}/grid_seed{seed}.png",
                   [(t, np.asarray(x)) for t, x in rows])
  report.save_curves(f"{workdir}/curves_seed{seed}.png", curves,
                     f"{config.name} seed {seed}")


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
