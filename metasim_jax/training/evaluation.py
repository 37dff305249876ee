"""The evaluation stage of a seed and the run's reports: task networks
trained on each source's scenes and scored on the test set, attribute
statistics and MMD^2 / KID of each source, the sample grid and curves, the
trained generator's parameters, and the summary over seeds."""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import jax
import numpy as np
from absl import logging
from flax import serialization
from PIL import Image

from metasim_jax import features as features_lib
from metasim_jax import io
from metasim_jax import parallel
from metasim_jax.training import checkpoint, report
from metasim_jax.training.seed import SOURCES, SeedRun, Setup


def evaluate(setup: Setup, run: SeedRun, params, state, start: int):
  """Task networks trained on each source, scored on the test set (one
  checkpoint per source), then the distribution report and pictures."""
  config, pipe, head = setup.config, setup.pipe, setup.pipe.headline
  if state is None:
    run.save("eval", 0, params)
  else:
    params = state
  # Each row trains ``eval.repeats`` task networks from the same keys
  # (common random numbers across rows) and reports their mean.
  for j, (row, source, phase) in enumerate(setup.rows):
    if j < start:
      continue
    trainer, row_params = _row_trainer(setup, run, row, phase, params)
    runs = []
    for r in range(config.eval.repeats):
      task_params, loss = trainer.run(run.keys("eval", r), row_params,
                                      setup.pools)
      runs.append({**setup.score(task_params, setup.test),
                   "train_loss": loss})
      if r == 0:
        _save_predictions(setup, run, j, task_params)
    runs = parallel.to_host(runs)
    run.record["eval"][row] = {k: [float(x[k]) for x in runs]
                               for k in runs[0]}
    means = {k: float(np.nanmean(v))
             for k, v in run.record["eval"][row].items()}
    run.tb.scalars(run.global_step("eval", j + 1), {
        ("" if k == "train_loss" else "test_") + f"{k}/{row}": v
        for k, v in means.items()}, "eval/")
    logging.info("[eval] trained on %-8s -> test %s %.4f (%s)", row,
                 head, means[head], ", ".join(
                     f"{a:.4f}" for a in run.record["eval"][row][head]))
    line = pipe.task.describe(means)
    if line:
      logging.info("[eval]   %s", line)
    run.save("eval", j + 1, params)

  repeats = run.record["eval"]
  results = {s: {k: float(np.nanmean(v)) for k, v in repeats[s].items()}
             for s in SOURCES}
  stats, by_class, dist, values = distribution_report(setup, params,
                                                     run.keys("stats"))
  errors, std_errors = {}, {}
  for name, tv in stats["target"].items():
    mv = stats["metasim"][name]["mean"]
    errors[name] = (report.angle_error(mv, tv["mean"])
                    if tv["kind"] == "angle" else abs(mv - tv["mean"]))
    std_errors[name] = abs(stats["metasim"][name]["std"] - tv["std"])
  run.read_clock()
  sec = run.record["seconds"]
  by_objective = {o: sum(sec.get(p.name, 0.0) for p in setup.phases
                         if p.spec.objective == o) for o in ("mmd", "task")}
  training = sec.get("pretrain", 0.0) + sum(by_objective.values())
  out = {
      "seed": run.seed,
      f"test_{head}": {s: results[s][head] for s in SOURCES},
      "test_loss": {s: results[s]["loss"] for s in SOURCES},
      f"test_{head}_per_repeat": {s: repeats[s][head] for s in SOURCES},
      "test_metrics": results,
      "distribution": dist,
      "attribute_stats": stats,
      "attribute_stats_by_class": by_class,
      "attribute_mean_error": errors,
      "attribute_std_error": std_errors,
      "mmd_start_selection": run.record["selection"],
      "selected_start": run.record["best"],
      # es's coarse multi-start, by stage: candidates' rewards, offsets,
      # the chosen one.
      "task_coarse_start": run.record.get("coarse_start", {}),
      # The generated attributes' mean and std after every task step, by
      # stage (what TensorBoard's <stage>/attributes/ shows).
      "task_attribute_trace": run.record.get("attribute_trace", {}),
      "seconds": {"mmd_stage": by_objective["mmd"],
                  "task_stage": by_objective["task"],
                  "per_stage": {p.spec.label: sec.get(p.name, 0.0)
                                for p in setup.phases},
                  "training_total": training,
                  "with_evaluation": training + sec.get("eval", 0.0)},
      "curves": run.record["curves"],
  }
  staged = [(setup.phases[i].spec.label, row) for row, _, i in setup.rows
            if i is not None and setup.config.schedule.strip()]
  if staged:  # one row per stage of the schedule, the last is "metasim"
    out["stages"] = [label for label, _ in staged]
    out["attribute_stats_by_class_per_stage"] = stage_class_stats(
        setup, run, params, run.keys("stats"))
    out[f"test_{head}_per_stage"] = {
        label: float(np.nanmean(repeats[row][head])) for label, row in staged}
    out["test_metrics_per_stage"] = {
        label: {k: float(np.nanmean(v)) for k, v in repeats[row].items()}
        for label, row in staged}
  grid = write_pictures(setup, params, run.keys("pictures"), run.seed,
                        run.record["curves"])
  _write_predictions(setup, run)
  # The trained generator, for sampling datasets later.
  if parallel.is_writer():
    io.write_bytes(f"{setup.workdir}/transformer_seed{run.seed}.msgpack",
                   serialization.to_bytes(parallel.to_host(params)))
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


def _predictions_file(setup: Setup, run: SeedRun, j: int) -> str:
  return os.path.join(checkpoint.seed_dir(setup.workdir, run.seed),
                      "pictures", f"row{j}.npy")


def _save_predictions(setup: Setup, run: SeedRun, j: int, task_params):
  """Row ``j``'s task net on the first test images, drawn by the task (if
  it draws predictions: detections), kept with the checkpoints so that a
  resumed evaluation still has every row for the picture."""
  draw = getattr(setup.pipe.task, "draw_predictions", None)
  if draw is None or not parallel.is_writer():
    return
  n = min(6, len(setup.test.labels))
  images, labels = parallel.to_host((setup.test.images[:n],
                                     setup.test.labels[:n]))
  picture = draw(parallel.to_host(task_params), setup.pipe.tasknet, images,
                 labels)
  path = _predictions_file(setup, run, j)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  np.save(path, (np.clip(picture, 0, 1) * 255).astype(np.uint8))


def _write_predictions(setup: Setup, run: SeedRun) -> None:
  """``predictions_seed<N>.png``: one row per results row, each drawn from
  the task net trained on that row's scenes, on the same test images."""
  rows = []
  staged = bool(setup.config.schedule.strip())
  for j, (row, _, phase) in enumerate(setup.rows):
    path = _predictions_file(setup, run, j)
    if phase is None:
      title = {"prior": "prob. grammar"}.get(row, row)
    else:
      title = (f"Meta-Sim {setup.phases[phase].spec.label}" if staged
               else "Meta-Sim")
    if os.path.isfile(path):
      rows.append((title, np.load(path) / 255.0))
  if rows and parallel.is_writer():
    report.save_grid(f"{setup.workdir}/predictions_seed{run.seed}.png", rows,
                     zoom=2)


def _row_trainer(setup: Setup, run: SeedRun, row: str, phase, params):
  """(task-net trainer, transformer params) of a results row: the last
  stage's are the trained ones; an earlier stage's were saved at its
  end."""
  if phase is None:
    return setup.final[row], params
  p = setup.phases[phase]
  if phase == len(setup.phases) - 1:
    return p.final, params
  return p.final, run.load_stage_params(p.name)


def _columns(prior):
  """(slot path, slot, column) of the mutable continuous/angle values."""
  return [(prior.slots[i].path, i, j)
          for i, j in zip(*np.nonzero(prior.mutable))
          if prior.attr_kinds[j] in ("continuous", "angle")]


def distribution_report(setup: Setup, params, key):
  """Attribute statistics (per slot, per class) and MMD^2 / KID of each
  source vs the test set, and the attribute values ({source: {slot.attr:
  [n]}}) behind them."""
  pipe, n = setup.pipe, setup.config.eval.num_scenes
  prior = pipe.prior
  columns = _columns(prior)
  classes = [slot.cls for slot in prior.slots]
  k_scene, k_kid = jax.random.split(key)
  stats, by_class, dist, values = {}, {}, {}, {}
  for name, source in SOURCES.items():
    scene, images = _scenes_and_images(
        setup.final_pipe if source == "metasim" else pipe, k_scene, n, source,
        params, setup.pools)
    mmd2, kid = _distances(pipe.feature_fn, k_kid, images, setup.feat_params,
                           setup.test_ref)
    attrs, mask, mmd2, kid = parallel.to_host(
        (scene.attrs, scene.node_mask, mmd2, kid))
    key_name = "target" if name == "oracle" else name
    stats[key_name] = report.attribute_stats(
        attrs, mask, prior.attr_names, prior.attr_kinds, columns)
    by_class[key_name] = report.class_attribute_stats(
        attrs, mask, classes, prior.attr_names, prior.attr_kinds, columns)
    values[key_name] = {
        f"{path}.{prior.attr_names[j]}": attrs[:, i, j][mask[:, i]]
        for path, i, j in columns}
    dist[name] = {"mmd2": float(mmd2), "kid": float(kid[0]),
                  "kid_std": float(kid[1])}
  return stats, by_class, dist, values


def class_stats(setup: Setup, pipe, params, key) -> dict:
  """Per-class statistics of the mutable attributes of ``eval.num_scenes``
  scenes of the generator ``params`` ({"car.yaw": {"mean", "std"}})."""
  prior = setup.pipe.prior
  scene = parallel.to_host(_transformed(pipe, key, setup.config.eval.num_scenes,
                                        params, setup.pools))
  return report.class_attribute_stats(
      scene.attrs, scene.node_mask, [slot.cls for slot in prior.slots],
      prior.attr_names, prior.attr_kinds, _columns(prior))


def stage_class_stats(setup: Setup, run: SeedRun, params, key) -> dict:
  """{stage label: per-class attribute statistics} of the generator at the
  end of each stage of an explicit schedule (what each stage moved)."""
  out = {}
  for i, phase in enumerate(setup.phases):
    p = params if i == len(setup.phases) - 1 else run.load_stage_params(
        phase.name)
    out[phase.spec.label] = class_stats(setup, phase.pipe, p, key)
  return out


@functools.partial(jax.jit, static_argnums=(0, 2))
def _transformed(pipe, key, n, params, pools):
  return pipe.sample(key, n, pools, params, "metasim")


@functools.partial(jax.jit, static_argnums=(0, 2, 3))
def _scenes_and_images(pipe, key, n, source, params, pools):
  scene = pipe.sample(key, n, pools, params, source)
  return scene, pipe.render(scene, pools, pipe.grammar(source)).image


@functools.partial(jax.jit, static_argnums=0)
def _distances(feature_fn, k_kid, images, feat_params, reference):
  """MMD^2 and KID of ``images`` to ``reference``: one program for every
  source (the same features of the same shapes)."""
  feats = feature_fn(feat_params, images)
  return reference.mmd2(feats), features_lib.kid(k_kid, feats,
                                                 reference.feats)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _picture_renders(pipe, key, n, params, pools):
  """Renders of ``n`` prior scenes and of the same scenes transformed."""
  scene = pipe.sample(key, n, pools, source="prior")
  return pipe.render(scene, pools), pipe.render(pipe.transform(params, scene),
                                                pools)


def write_pictures(setup: Setup, params, key, seed: int, curves):
  """Writes the sample grid (rows chosen by the task) and the curves PNGs;
  returns the grid [H, W, 3]."""
  n = min(10, len(setup.test.labels))
  (prior, metasim), test = parallel.to_host((
      _picture_renders(setup.final_pipe, key, n, params, setup.pools),
      setup.test))
  rows = setup.pipe.task.grid_rows(prior, metasim, test)
  if not parallel.is_writer():
    return None
  grid = f"{setup.workdir}/grid_seed{seed}.png"
  report.save_grid(grid, rows)
  report.save_curves(f"{setup.workdir}/curves_seed{seed}.png", curves,
                     f"{setup.config.name} seed {seed}")
  with Image.open(grid) as im:  # the grid as written, for TensorBoard
    return np.asarray(im.convert("RGB"))


def within_tolerance(errors: dict[str, float],
                     tolerance: dict[str, float]) -> bool:
  """Every error ("slot.attr" -> |learned - target|) within its attribute's
  tolerance (by "attr"; attributes without one always pass)."""
  return bool(all(err <= tolerance.get(name.rsplit(".", 1)[-1], np.inf)
                  for name, err in errors.items()))


def summarise(config, per_seed, t_start: float, head: str) -> dict[str, Any]:
  """results.json: the summary over seeds, per-seed results, config."""
  acc = {s: [r[f"test_{head}"][s] for r in per_seed] for s in SOURCES}
  gap = [r[f"test_{head}"]["oracle"] - r[f"test_{head}"]["metasim"]
         for r in per_seed]
  tol = dict(config.success.attribute_tolerance)
  std_tol = dict(config.success.std_tolerance)
  ok_attr = [within_tolerance(r["attribute_mean_error"], tol) for r in per_seed]
  ok_std = [within_tolerance(r["attribute_std_error"], std_tol) for r in per_seed]
  stages = {}
  if "stages" in per_seed[0]:  # explicit schedule: every stage's metrics
    names = per_seed[0]["test_metrics_per_stage"][per_seed[0]["stages"][0]]
    stages = {"stages": per_seed[0]["stages"], "test_metrics_per_stage_mean": {
        label: {k: float(np.nanmean([r["test_metrics_per_stage"][label][k]
                                     for r in per_seed])) for k in names}
        for label in per_seed[0]["stages"]}}
  return {
      "experiment": config.name,
      "summary": {
          "seeds": list(config.seeds),
          "headline_metric": head,
          f"test_{head}_mean": {s: float(np.mean(v)) for s, v in acc.items()},
          f"test_{head}_per_seed": acc,
          **stages,
          "test_metrics_mean": {
              s: {k: float(np.nanmean([r["test_metrics"][s][k]
                                       for r in per_seed]))
                  for k in per_seed[0]["test_metrics"][s]}
              for s in SOURCES},
          "oracle_minus_metasim_per_seed": gap,
          "attributes_within_tolerance_per_seed": ok_attr,
          "attribute_tolerance": tol,
          "spreads_within_tolerance_per_seed": ok_std,
          "std_tolerance": std_tol,
          "wall_seconds": time.perf_counter() - t_start,
      },
      "per_seed": per_seed,
      "config": config.to_dict(),
      "versions": report.versions(),
  }
