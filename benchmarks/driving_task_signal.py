"""Does a driving task reward see where the cars are and how they are
turned?  Paired measurement before a task stage on the cars (issue 12's
"+ task loss" row; issue 14's "if the signal is too weak, show it").

  python -m benchmarks.driving_task_signal [--inner_steps=150]
      [--num_scenes=400] [--repeats=3]

Datasets of ``num_scenes`` target-grammar scenes (the target's camera,
context, car count, models and colours) that differ only in the cars'
across-road position x, distance along the road y and heading yaw, all
drawn from the same normal / uniform numbers:

- ``target``: the target's (x N(1.8, 1.2) m, y U(-90, -60), yaw N(0, 4)°);
- ``prior cars``: the input grammar's (x U(-5, 5), y U(-90, -20),
  yaw N(0, 30));
- ``far only``: the prior's distance, the target's x and yaw;
- ``turned only``: the prior's heading, the target's x and y;
- ``MMD result``: as the committed default run's last stage drew them
  (``results/driving``: x N(1.1, 1.8), y N(-54, 15), yaw N(5, 59)).

One CenterNet per dataset trains ``inner_steps`` Adam steps of 16 (the
evaluation's lr) from the same initialisation with the same minibatch
indices (common random numbers, as within an ``es`` pair), then is scored
on V (the 100 labelled target images a task stage is rewarded on) and the
500 test images.  Prints AP|R40 at IoU 0.5 per dataset and the paired
differences from ``target`` with their standard errors over ``repeats``.
The README quotes it (``results/bench_driving_task_signal.txt``).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from benchmarks import common
from metasim_jax import tasknet as tasknet_lib
from metasim_jax.training import report
from metasim_jax.training import steps as steps_lib

_INNER = flags.DEFINE_integer("inner_steps", 150, "Detector steps.")
_NUM = flags.DEFINE_integer("num_scenes", 400, "Scenes per dataset.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Paired repeats.")
_PICTURE = flags.DEFINE_string(
    "picture", "", "If set, a PNG of the first repeat's first 3 scenes of "
    "every dataset (one row each), to check the cases by eye.")

# name -> ((x mean, x std) | None: U(-5, 5), (y low, y high) | (mean, std,
#          "normal"), yaw (mean, std))
CASES = {
    "target": ((1.8, 1.2), (-90.0, -60.0), (0.0, 4.0)),
    "prior cars": (None, (-90.0, -20.0), (0.0, 30.0)),
    "far only": ((1.8, 1.2), (-90.0, -20.0), (0.0, 4.0)),
    "turned only": ((1.8, 1.2), (-90.0, -60.0), (0.0, 30.0)),
    "MMD result": ((1.1, 1.8), (-54.0, 15.0, "normal"), (5.0, 59.0)),
}
METRICS = ("ap50_easy", "ap50_moderate", "ap50_hard")


def main(argv):
  del argv
  config, pipe, _, pools, sets = common.driving_world(16, 100, 500)
  g, n = pipe.target, _NUM.value
  cars = g.slots_of("car")
  x, y, yaw = g.col("x"), g.col("y"), g.col("yaw")
  lo, hi = g.low[cars[0]], g.high[cars[0]]

  @jax.jit
  def datasets(key):
    scene = pipe.sample(key, n, pools, source="target")
    kx, ky, kyaw = jax.random.split(jax.random.fold_in(key, 1), 3)
    shape = (n, len(cars))
    z = {c: jax.random.normal(k, shape) for c, k in
         (("x", kx), ("y", ky), ("yaw", kyaw))}
    u = {c: jax.random.uniform(k, shape) for c, k in
         (("x", kx), ("y", ky))}
    images, labels = [], []
    for cx, cy, cyaw in CASES.values():
      vx = -5.0 + 10.0 * u["x"] if cx is None else cx[0] + cx[1] * z["x"]
      vy = (cy[0] + cy[1] * z["y"] if len(cy) == 3
            else cy[0] + (cy[1] - cy[0]) * u["y"])
      a = scene.attrs
      a = a.at[:, cars, x].set(jnp.clip(vx, lo[x], hi[x]))
      a = a.at[:, cars, y].set(jnp.clip(vy, lo[y], hi[y]))
      a = a.at[:, cars, yaw].set(cyaw[0] + cyaw[1] * z["yaw"])
      drawn = scene.replace(attrs=a)
      renders = pipe.render(drawn, pools, g)
      images.append(renders.image)
      labels.append(pipe.task.targets(drawn, renders))
    return jnp.stack(images), jnp.stack(labels)

  batch = config.eval.batch_size

  def batch_fn(k, images, labels):
    idx = jax.random.randint(k, (batch,), 0, n)
    return images[idx], labels[idx]

  trainer = tasknet_lib.PopulationTrainer(
      pipe.tasknet, pipe.task.loss, steps_lib.adam(config.eval.lr), batch_fn,
      _INNER.value, pipe.input_shape, vmap=False)
  score_fn = jax.jit(pipe.score)
  names = list(CASES)
  out = {"val": [], "test": []}
  t0 = time.perf_counter()
  for r in range(_REPEATS.value):
    k_scene, k_task = jax.random.split(jax.random.key(300 + r))
    images, labels = datasets(k_scene)
    task_params, _ = trainer.run(k_task, len(names), images, labels)
    if r == 0 and _PICTURE.value:
      report.save_grid(_PICTURE.value, [
          (name, np.asarray(images[j, :3])) for j, name in enumerate(names)],
                       zoom=2)
    for s in out:
      got = [jax.device_get(score_fn(jax.tree.map(lambda a, j=j: a[j],
                                                  task_params), sets[s]))
             for j in range(len(names))]
      out[s].append(np.asarray([[100 * float(m[k]) for k in METRICS]
                                for m in got]))  # [cases, metrics]
    print(f"repeat {r + 1}/{_REPEATS.value}: "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
  print(f"driving, {n} target-grammar scenes a dataset with the cars "
        f"replaced, {_INNER.value} CenterNet steps of {batch} "
        f"(lr {config.eval.lr}), {_REPEATS.value} paired repeats; AP|R40 % "
        "at IoU 0.5, easy/moderate/hard; differences paired, minus "
        "'target', with s.e.")
  width = max(map(len, names))
  for s in out:
    v = np.stack(out[s])  # [repeats, cases, metrics]
    print(f"{s} ({len(sets[s].labels)} images)")
    for j, name in enumerate(names):
      d = v[:, j] - v[:, 0]
      se = (d.std(0, ddof=1) / np.sqrt(len(v)) if len(v) > 1
            else np.full(d.shape[1], np.nan))
      print(f"  {name:{width}s}  "
            + "/".join(f"{m:5.1f}" for m in v[:, j].mean(0))
            + "   diff " + "/".join(f"{a:+5.1f} ({b:.1f})"
                                    for a, b in zip(d.mean(0), se)))


if __name__ == "__main__":
  app.run(main)
