"""Can one U-Net training tell which way the cars should face?  Paired
measurement for the coarse start of the Aerial2D task stage (issue 14: the
cars' heading spread did not move in es steps of e^+-0.3, whose pair signal
is within noise; the whole-distribution signal, uniform against aligned,
is -5.3 +- 2.6 car IoU points: ``benchmarks/aerial_task_signal.py``).

  python -m benchmarks.aerial_heading_candidates RUN_DIR [PARAMS] [FACTOR] [REPEATS]

From the generator of RUN_DIR (seed 0; an Aerial2D run with the affine
head), or the transformer in the msgpack file PARAMS (e.g. the end of the
MMD stage, ``CHECKPOINTS/seed0/stages/s1_mmd.msgpack``; that of
``results/aerial_task_warm`` is committed beside it as
``s1_mmd_seed0.msgpack``), datasets of 400 prior scenes that differ only
in the cars' heading on their road:

- ``as is``: the generator's;
- ``f@A``: its heading spread contracted by FACTOR (default 0.1;
  ``starts.contracted_angles``, the circle's Moebius map) and the
  contracted distribution turned so that its axis lies A degrees from
  the road's (A = 0, 30, 60, 90).

The contracted distribution's centre is wherever the generator's shift and
head put it (measured, then turned to A).  One U-Net per dataset, the same
initialisation and minibatches (common random numbers), R = car IoU on V:

- ``cold``: 300 Adam steps from scratch (how ``task.es.coarse_starts``
  scores candidates without ``task.es.warm_steps``);
- ``warm``: 300 steps on the ``as is`` data, then 150 on each dataset
  (how es members are trained with ``warm_steps``).

Prints R minus R(as is) per dataset and mode, mean and standard deviation
over REPEATS (default 3) repeats (new scenes, new initialisation), and the
fraction of a repeat's candidates in which ``f@0`` scored best.
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from benchmarks import common
from metasim_jax import grammar as grammar_lib
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import transformer as transformer_lib
from metasim_jax.export import run as run_lib
from metasim_jax.training import es
from metasim_jax.training import report
from metasim_jax.training import starts
from metasim_jax.training import steps

N = 400
AXES = (0.0, 30.0, 60.0, 90.0)


def heading_axis(pipe, params, pools, key):
  """(axial mean, axial std, fraction within 15 degrees of the road's
  axis) of the cars' relative headings under ``params``."""
  prior = pipe.prior
  drawn = pipe.transform(params, grammar_lib.sample(key, prior, N, pools))
  attrs, mask = np.asarray(drawn.attrs), np.asarray(drawn.node_mask)
  cars, j = prior.slots_of("car"), prior.col("yaw")
  v = np.concatenate([attrs[:, i, j][mask[:, i]] for i in cars])
  m = report._moments(v, "axial")  # pylint: disable=protected-access
  within = np.mean(np.abs((v + 90.0) % 180.0 - 90.0) < 15.0)
  return m["mean"], m["std"], float(within)


def candidates(pipe, params, pools, factor):
  """name -> transformer params."""
  prior = pipe.prior
  yaw = prior.col("yaw")
  contracted = {**params, "log_spread": starts.contracted_angles(
      params["log_spread"], prior, factor)}
  centre, _, _ = heading_axis(pipe, contracted, pools, jax.random.key(5))
  out = {"as is": params}
  for a in AXES:
    out[f"{factor:g}@{a:g}"] = transformer_lib.with_offsets(
        contracted, prior, [(a - centre) / 180.0], [yaw])
  return out


def main(run_dir, params_file=None, factor=0.1, repeats=3):
  run = run_lib.load(run_dir, 0)
  config, pipe = run.config, run.pipe
  params = run.params
  if params_file:
    with open(params_file, "rb") as f:
      params = jax.tree.map(jnp.asarray,
                            serialization.from_bytes(params, f.read()))
  pools, sets = pipeline_lib.build_data(config, pipe)
  cands = candidates(pipe, params, pools, factor)
  names = list(cands)
  for name in names:
    mean, std, within = heading_axis(pipe, cands[name], pools,
                                     jax.random.key(6))
    print(f"{name:8s} heading axis {mean:+6.1f} +- {std:5.1f} deg, "
          f"{within:.0%} within 15 deg of the road's", flush=True)
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *cands.values())

  @jax.jit
  def datasets(key):
    scene = grammar_lib.sample(key, pipe.prior, N, pools)
    return jax.vmap(lambda p: es.labelled_images(pipe, p, scene, pools))(
        stacked)

  trainer = lambda n: common.population_trainer(
      pipe, config.task.lr, config.task.inner_batch, N, n)
  cold, tune = trainer(300), trainer(150)
  tx = steps.adam(config.task.lr)  # the members' (a fresh state on warm)
  score = jax.jit(lambda tp: pipe.score(tp, sets["val"])["iou_car"])
  k = len(names)
  rewards = {mode: [] for mode in ("cold", "warm")}
  t0 = time.perf_counter()
  for r in range(repeats):
    k_scene, k_task = jax.random.split(jax.random.key(400 + r))
    images, labels = datasets(k_scene)
    for mode in rewards:
      if mode == "cold":
        task_params, _ = cold.run(k_task, k, images, labels)
      else:
        base, _ = cold.run(k_task, 1, images[:1], labels[:1])
        base = jax.tree.map(lambda a: a[0], base)
        task_params, _ = tune.run(k_task, k, images, labels,
                                  start=(base, tx.init(base)))
      rewards[mode].append(np.asarray(
          [float(score(jax.tree.map(lambda a, j=j: a[j], task_params)))
           for j in range(k)]))
    print(f"repeat {r + 1}/{repeats}: {time.perf_counter() - t0:.0f} s; "
          + "; ".join(f"{mode} " + " ".join(
              f"{n} {v:.3f}" for n, v in zip(names, rows[-1]))
                      for mode, rows in rewards.items()), flush=True)
  print(f"Aerial2D heading candidates from {params_file or run_dir}: "
        f"{N} prior scenes a dataset, R = car IoU on V "
        f"({len(sets['val'].labels)} images); cold: 300 steps from scratch; "
        f"warm: 300 on 'as is', then 150 on each; {repeats} repeats")
  print(f"  {'dataset':10s}{'mode':>6s}{'R - R(as is)':>14s}{'sd':>9s}")
  for mode, rows in rewards.items():
    d = np.stack(rows)  # [repeats, candidates]
    diff = d - d[:, :1]
    for j, name in enumerate(names):
      sd = diff[:, j].std(ddof=1) if repeats > 1 else float("nan")
      print(f"  {name:10s}{mode:>6s}{diff[:, j].mean():+14.4f}{sd:9.4f}")
    best = np.argmax(d, 1)
    print(f"  {mode}: {names[1]} best in {np.mean(best == 1):.0%} of "
          f"repeats; best per repeat: {[names[b] for b in best]}")


if __name__ == "__main__":
  if len(sys.argv) < 2:
    raise SystemExit(__doc__)
  args = sys.argv[1:]
  main(args[0], args[1] if len(args) > 1 else None,
       *([float(args[2])] if len(args) > 2 else []),
       *([int(args[3])] if len(args) > 3 else []))
