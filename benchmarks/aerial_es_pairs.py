"""How noisy is one ``es`` pair on Aerial2D, and is it less noisy when the
task nets start from a net already trained on the generator's data?
(issue 14: the Aerial2D task stage of ``aerial_task.flags``, 2 pairs a
step, did not move the cars in 14 steps; within a step its members' car
IoU on V spread by up to 0.2 for perturbations of a fraction of a prior
standard deviation.)

  python -m benchmarks.aerial_es_pairs RUN_DIR [COLD_STEPS] [WARM_STEPS] [FINETUNE_STEPS] [REPEATS]

From the generator of RUN_DIR (seed 0; an Aerial2D run with the affine
head, e.g. ``results/aerial_task``), pairs of datasets of 400 prior scenes
generated at theta +- one ``es`` perturbation (the run's ``task.es``
sigma / log_sigma) along a single coordinate of the cars' affine
parameters: the log-spread of the across-offset x, the log-spread of the
heading, the shift of x; and along one random direction of all the cars'
coordinates (what a step of ``es`` draws).  For each pair, R(+) - R(-)
with R = car IoU on V (200 images), the two U-Nets trained from the same
start with the same minibatches:

- ``cold``: from a fresh initialisation, COLD_STEPS (default 300) steps,
  as the task stage trains them;
- ``warm``: from a net trained WARM_STEPS (default 300) steps on the
  unperturbed generator's data of the same scenes, then FINETUNE_STEPS
  (default 150) steps on each perturbed dataset.

Prints per direction and mode the mean paired difference, its standard
deviation over REPEATS (default 4) independent repeats (new scenes, new
initialisation), and their ratio: the signal-to-noise ratio of one pair.
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from metasim_jax import grammar as grammar_lib
from metasim_jax import pipeline as pipeline_lib
from metasim_jax.export import run as run_lib
from metasim_jax.training import es
from metasim_jax.training import steps

N = 400


def directions(prior, mask, sigma, log_sigma, key):
  """name -> perturbation [2M] (log-spreads first, then shifts)."""
  idx = list(zip(*np.nonzero(mask)))
  m = len(idx)

  def axis(kind, cls, attr):
    j = idx.index((list(prior.classes).index(cls), prior.col(attr)))
    d = np.zeros(2 * m, np.float32)
    d[j if kind == "log_spread" else m + j] = (log_sigma if kind ==
                                               "log_spread" else sigma)
    return d

  scale = np.concatenate([np.full(m, log_sigma), np.full(m, sigma)])
  return {"x spread": axis("log_spread", "car", "x"),
          "heading spread": axis("log_spread", "car", "yaw"),
          "x shift": axis("class_shift", "car", "x"),
          "random (es)": np.asarray(jax.random.normal(key, (2 * m,)))
                         * scale.astype(np.float32)}


def main(run_dir, cold_steps=300, warm_steps=300, finetune_steps=150,
         repeats=4):
  run = run_lib.load(run_dir, 0)
  config = run.config
  pipe = run.pipe.for_groups(("cars",))
  pools, sets = pipeline_lib.build_data(config, run.pipe)
  mask = es.search_mask(pipe.prior)
  e = config.task.es
  dirs = directions(pipe.prior, mask, e.sigma, e.log_sigma,
                    jax.random.key(11))
  batch = config.task.inner_batch

  @jax.jit
  def datasets(key, deltas):
    scene = grammar_lib.sample(key, pipe.prior, N, pools)

    def one(delta):
      drawn = pipe.transform(es.perturbed(run.params, delta, mask), scene)
      renders = pipe.render(drawn, pools)
      return renders.image, pipe.task.targets(drawn, renders)

    return jax.vmap(one)(deltas)

  tx = steps.adam(config.task.lr)
  trainer = lambda n: common.population_trainer(pipe, config.task.lr, batch,
                                                N, n)
  cold, warm, tune = trainer(cold_steps), trainer(warm_steps), trainer(
      finetune_steps)
  score = jax.jit(lambda tp: pipe.score(tp, sets["val"])["iou_car"])
  names = list(dirs)
  deltas = jnp.asarray(np.concatenate([np.stack(list(dirs.values())),
                                       -np.stack(list(dirs.values())),
                                       np.zeros((1, mask.sum() * 2))]),
                       jnp.float32)  # [+ each, - each, unperturbed]
  k = len(names)
  diffs = {mode: [] for mode in ("cold", "warm")}
  t0 = time.perf_counter()
  for r in range(repeats):
    k_scene, k_task = jax.random.split(jax.random.key(300 + r))
    images, labels = datasets(k_scene, deltas)
    pm = (images[:2 * k], labels[:2 * k])
    for mode in diffs:
      if mode == "cold":
        params, _ = cold.run(k_task, 2 * k, *pm)
      else:
        base, _ = warm.run(k_task, 1, images[2 * k:], labels[2 * k:])
        base = jax.tree.map(lambda a: a[0], base)
        params, _ = tune.run(k_task, 2 * k, *pm, start=(base, tx.init(base)))
      rewards = np.asarray([float(score(jax.tree.map(lambda a, j=j: a[j],
                                                     params)))
                            for j in range(2 * k)])
      diffs[mode].append(rewards[:k] - rewards[k:])
    print(f"repeat {r + 1}/{repeats}: {time.perf_counter() - t0:.0f} s; "
          + "; ".join(f"{mode} " + " ".join(
              f"{n} {d:+.3f}" for n, d in zip(names, rows[-1]))
                      for mode, rows in diffs.items()), flush=True)
  print(f"Aerial2D es pairs from {run_dir} (seed 0): {N} prior scenes a "
        f"dataset, U-Nets of {batch} images a step; R = car IoU on V "
        f"({len(sets['val'].labels)} images); cold: {cold_steps} steps from "
        f"scratch; warm: {warm_steps} steps on the unperturbed data, then "
        f"{finetune_steps} on each; {repeats} repeats")
  print(f"  {'direction':16s}{'mode':>6s}{'R(+) - R(-)':>13s}{'sd':>9s}"
        f"{'mean/sd':>9s}")
  for mode, rows in diffs.items():
    d = np.stack(rows)  # [repeats, directions]
    for j, name in enumerate(names):
      mean, sd = d[:, j].mean(), d[:, j].std(ddof=1) if repeats > 1 else 0.0
      print(f"  {name:16s}{mode:>6s}{mean:+13.4f}{sd:9.4f}"
            f"{mean / sd if sd else float('nan'):+9.2f}")


if __name__ == "__main__":
  if len(sys.argv) < 2:
    raise SystemExit(__doc__)
  main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
