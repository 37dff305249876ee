"""Does the Aerial2D task reward see where the cars stand on the road and
how they are turned?  Paired measurement before building a task stage on
Aerial2D (issue 14: "if the signal is too weak, show it").

  python -m benchmarks.aerial_task_signal [INNER_STEPS] [NUM_SCENES] [REPEATS] [RUN_DIR ...]
      [--grammar=FILE --target=FILE]

``--grammar`` / ``--target``: another world's input and target grammar
files (e.g. ``experiments/configs/aerial/{prior,target}_decoys.json``);
the datasets are then that target's scenes with the cars changed as below.

Datasets of NUM_SCENES (default 400) target-grammar scenes that differ only
in the cars' across-road offset and relative heading (and, as a yardstick
of a difference the task is known to need, in the cars' size):

- ``target``: the target's (offset N(0, 2) px, heading N(0, 3) deg);
- ``MMD result``: offset N(-4, 5.6) px, heading uniform, as the committed
  MMD run left them (``results/aerial/results.json``);
- ``offset only``: offset U(-8, 8) px (the prior's), heading the target's;
- ``heading only``: offset the target's, heading uniform;
- ``cars at 0.55`` (yardstick): the target's, cars at the prior's size;
- with RUN_DIRs, instead of the four above: one dataset per RUN_DIR and
  saved seed (a trainer workdir or a committed ``results/`` copy of an
  Aerial2D run): the cars' offset, heading and
  size as that run's generator draws them (from prior scenes, scene by
  scene), everything else the target's; the run's MMD result against the
  target's own placement, i.e. what a task stage after it could still
  gain.

All datasets of a repeat come from the same scenes (same road, cars along
the road, textures, tree, house), and one U-Net per dataset is trained for
INNER_STEPS Adam steps (default 300) from the same initialisation with the
same minibatch indices (common random numbers, as within an ``es`` pair).
Prints, per dataset, V's (200 images) and the test set's (500) loss, car
IoU and mean IoU, and paired differences from ``target`` with their
standard errors over REPEATS (default 4) independent repeats.

The members are trained one after another (``PopulationTrainer(...,
vmap=False)``): on the 2-core CPU one U-Net step of 16 images took 0.22 s,
the same step vmapped over 5 members' weights 4.2 s (19x for the forward
pass over 500 images: 1.9 s vs 59 s), XLA turning the mapped convolution
into a grouped one.
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from metasim_jax import grammar as grammar_lib
from metasim_jax import tasknet as tasknet_lib
from metasim_jax.export import run as run_lib
from metasim_jax.training import steps

# name -> (offset mean, offset std or None for U(+-8), heading std or None
#          for uniform, scale or None for the target's)
CASES = {
    "target": (0.0, 2.0, 3.0, None),
    "MMD result": (-4.0, 5.6, None, None),
    "offset only": (0.0, None, 3.0, None),
    "heading only": (0.0, 2.0, None, None),
    "cars at 0.55": (0.0, 2.0, 3.0, 0.55),
}
METRICS = ("loss", "iou_car", "miou")


def run_placements(run_dirs):
  """name -> jitted key -> the cars' [scenes, cars, (x, yaw, scale)] as
  the generator of each run directory and saved seed draws them."""
  out = {}
  for run_dir in run_dirs:
    for seed in run_lib.saved_seeds(run_dir):
      run = run_lib.load(run_dir, seed)
      prior = run.pipe.prior
      cols = [prior.col(c) for c in ("x", "yaw", "scale")]
      cars = prior.slots_of("car")

      def draw(key, n, run=run, prior=prior, cols=cols, cars=cars):
        drawn = run.pipe.transform(run.params, grammar_lib.sample(
            key, prior, n, run.pools))
        return drawn.attrs[:, cars][:, :, cols]

      out[f"{run_dir.rstrip('/').split('/')[-1]} s{seed}"] = draw
  return out


def main(inner_steps: int, n: int, repeats: int, run_dirs=(),
         grammar_file=None, target_file=None):
  c, pipe, _, pools, sets = common.aerial_world(
      target_file=target_file, grammar_file=grammar_file)
  g = pipe.target
  cars, x, yaw, scale = (g.slots_of("car"), g.col("x"), g.col("yaw"),
                         g.col("scale"))
  lo, hi = g.low[cars[0], x], g.high[cars[0], x]
  runs = run_placements(run_dirs)
  cases = {"target": CASES["target"]} if runs else CASES
  names = list(cases) + list(runs)

  @jax.jit
  def datasets(key):
    scene = pipe.sample(key, n, pools, source="target")
    k_x, k_yaw = jax.random.split(jax.random.fold_in(key, 1))
    shape = (n, len(cars))
    z_x = jax.random.normal(k_x, shape)  # the same draws for every case
    u_x = jax.random.uniform(k_x, shape, minval=-8.0, maxval=8.0)
    z_yaw = jax.random.normal(k_yaw, shape)
    u_yaw = jax.random.uniform(k_yaw, shape, minval=-180.0, maxval=180.0)
    images, labels = [], []
    for mean, sd, yaw_sd, size in cases.values():
      a = scene.attrs
      a = a.at[:, cars, x].set(jnp.clip(
          u_x if sd is None else mean + sd * z_x, lo, hi))
      a = a.at[:, cars, yaw].set(u_yaw if yaw_sd is None else yaw_sd * z_yaw)
      if size is not None:
        a = a.at[:, cars, scale].set(size)
      drawn = scene.replace(attrs=a)
      renders = pipe.render(drawn, pools, g)
      images.append(renders.image)
      labels.append(pipe.task.targets(drawn, renders))
    for j, draw in enumerate(runs.values()):
      placed = draw(jax.random.fold_in(key, 2 + j), n)
      a = scene.attrs
      for i, col in enumerate((x, yaw, scale)):
        a = a.at[:, cars, col].set(placed[..., i])
      drawn = scene.replace(attrs=a)
      renders = pipe.render(drawn, pools, g)
      images.append(renders.image)
      labels.append(pipe.task.targets(drawn, renders))
    return jnp.stack(images), jnp.stack(labels)

  def batch_fn(k, images, labels):
    idx = jax.random.randint(k, (c.task.inner_batch,), 0, n)
    return images[idx], labels[idx]

  trainer = tasknet_lib.PopulationTrainer(
      pipe.tasknet, pipe.task.loss, steps.adam(c.eval.lr), batch_fn,
      inner_steps, pipe.input_shape, vmap=False)
  score = {s: jax.jit(lambda tp, s=s: pipe.score(tp, sets[s]))
           for s in ("val", "test")}
  out = {s: {m: [] for m in METRICS} for s in score}
  t0 = time.perf_counter()
  for r in range(repeats):
    k_scene, k_task = jax.random.split(jax.random.key(200 + r))
    images, labels = datasets(k_scene)
    task_params, _ = trainer.run(k_task, len(names), images, labels)
    for s, fn in score.items():  # member by member (see vmap above)
      got = [jax.device_get(fn(jax.tree.map(lambda a, j=j: a[j], task_params)))
             for j in range(len(names))]
      for m in METRICS:
        out[s][m].append(np.asarray([g[m] for g in got]))
    print(f"repeat {r + 1}/{repeats}: {time.perf_counter() - t0:.0f} s",
          flush=True)
  print(f"Aerial2D ({c.target_file}), {n} target-grammar scenes a dataset, "
        f"{inner_steps} U-Net "
        f"steps of {c.task.inner_batch} (lr {c.eval.lr}), {repeats} paired "
        f"repeats; differences are paired, minus 'target', with s.e.")
  for s in score:
    print(f"{s} ({len(sets[s].labels)} images)")
    width = max(map(len, names))
    print(f"  {'dataset':{width}s}" + "".join(
        f"{m:>10s} {'diff (s.e.)':>17s}" for m in METRICS))
    for j, name in enumerate(names):
      row = f"  {name:{width}s}"
      for m in METRICS:
        v = np.stack(out[s][m])  # [repeats, cases]
        d = v[:, j] - v[:, 0]
        se = d.std(ddof=1) / np.sqrt(repeats) if repeats > 1 else np.nan
        row += f"{v[:, j].mean():10.4f} {d.mean():+9.4f} ({se:.4f})"
      print(row)


if __name__ == "__main__":
  args = sys.argv[1:]
  files = {k: a.split("=", 1)[1] for a in args for k in ("grammar", "target")
           if a.startswith(f"--{k}=")}
  numbers = [int(a) for a in args[:3] if a.isdigit()]
  main(*(numbers + [300, 400, 4][len(numbers):]),
       run_dirs=tuple(a for a in args
                      if not a.isdigit() and not a.startswith("--")),
       grammar_file=files.get("grammar"), target_file=files.get("target"))
