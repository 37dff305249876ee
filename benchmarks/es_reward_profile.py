"""How sharply does the task reward see a dataset's mean rotation near the
target's?  Paired measurement behind the ``es`` estimator's precision.

  python -m benchmarks.es_reward_profile [GENERATOR.msgpack] [INNER_STEPS]

MNIST ``rot`` (target digits at 90 +- 10 degrees), the task stage's reward
(``task.reward``, V's negative loss for ``es``; accuracy beside it): for
offsets d of the generated digits' mean rotation from 90 degrees, one
dataset of ``task.num_scenes`` scenes per offset, all from the same prior
scenes, and one task net per dataset trained for INNER_STEPS steps
(default ``task.inner_steps``) from the same initialisation with the same
minibatches (common random numbers, as within an es pair).  Repeated over
independent scenes/initialisations; prints per offset the mean reward and,
paired, R(d) - R(0) with its standard error.  The generator is a trained
one whose GCN is the identity after pre-training (default: the committed
``results/mnist_rot_task_only_es/transformer_seed2.msgpack``); its affine
shift is set so that the mean rotation is 90 + d, spreads as the prior's.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from experiments.configs import mnist as mnist_config
from metasim_jax import grammar as grammar_lib
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import tasknet as tasknet_lib
from metasim_jax import transformer as transformer_lib
from metasim_jax.training import steps

OFFSETS = (-30.0, -20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0, 30.0)
REPEATS = 6


def main(path: str, inner_steps: int | None):
  c = mnist_config.get_config("rot,task_only,es")
  inner_steps = inner_steps or c.task.inner_steps
  pipe, _ = pipeline_lib.build(c)
  pools, sets = pipeline_lib.build_data(c, pipe)
  like = transformer_lib.init(jax.random.key(0), pipe.transformer, pipe.prior,
                              pipe.sample(jax.random.key(0), 2, pools,
                                          source="prior"))
  with open(path, "rb") as f:
    params = serialization.from_bytes(like, f.read())
  g = pipe.prior
  cls, yaw = list(g.classes).index("digit"), g.col("yaw")
  slot = pipe.task.slot
  prior_mean = float(g.centre[slot, yaw])
  prior_std = float(g.spread[slot, yaw])

  def with_offset(d):
    shift = jnp.zeros_like(params["class_shift"]).at[cls, yaw].set(
        (90.0 + d - prior_mean) / prior_std)
    return {**params, "class_shift": shift,
            "log_spread": jnp.zeros_like(params["log_spread"])}

  population = jax.tree.map(lambda *x: jnp.stack(x),
                            *[with_offset(d) for d in OFFSETS])
  n = c.task.num_scenes

  @jax.jit
  def datasets(key):
    scene = grammar_lib.sample(key, pipe.prior, n, pools)

    def one(p):
      drawn = pipe.transform(p, scene)
      renders = pipe.render(drawn, pools)
      return (renders.image, pipe.task.targets(drawn, renders),
              drawn.attrs[:, slot, yaw])

    return jax.vmap(one)(population)

  def batch_fn(k, images, labels):
    idx = jax.random.randint(k, (c.task.inner_batch,), 0, n)
    return images[idx], labels[idx]

  trainer = tasknet_lib.PopulationTrainer(
      pipe.tasknet, pipe.task.loss, steps.adam(c.task.lr), batch_fn,
      inner_steps, pipe.input_shape)
  score = jax.jit(jax.vmap(lambda tp: pipe.score(tp, sets["val"])))
  loss, acc, mean_yaw = [], [], []
  for r in range(REPEATS):
    k_scene, k_task = jax.random.split(jax.random.key(100 + r))
    images, labels, yaws = datasets(k_scene)
    task_params, _ = trainer.run(k_task, len(OFFSETS), images, labels)
    s = score(task_params)
    loss.append(np.asarray(s["loss"]))
    acc.append(np.asarray(s[pipe.headline]))
    mean_yaw.append(np.asarray(yaws).mean(1))
  loss, acc = np.stack(loss), np.stack(acc)
  zero = OFFSETS.index(0.0)
  print(f"MNIST rot, V = {len(sets['val'].labels)} images, {n} scenes a "
        f"dataset, {inner_steps} task-net steps of {c.task.inner_batch}, "
        f"{REPEATS} paired repeats")
  print("offset  mean yaw  -loss (sd)      accuracy  R(d) - R(0) (s.e.)")
  for j, d in enumerate(OFFSETS):
    diff = loss[:, zero] - loss[:, j]
    print(f"{d:+6.0f}  {np.mean(mean_yaw, 0)[j]:8.1f}  "
          f"{-loss[:, j].mean():6.3f} ({loss[:, j].std():.3f})  "
          f"{acc[:, j].mean():8.3f}  {diff.mean():+8.3f} "
          f"({diff.std(ddof=1) / np.sqrt(REPEATS):.3f})")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else
       "results/mnist_rot_task_only_es/transformer_seed2.msgpack",
       int(sys.argv[2]) if len(sys.argv) > 2 else None)
