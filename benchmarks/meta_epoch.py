"""Seconds per meta-epoch of the task objective (Algorithm 1): 1,000 scenes
generated and rendered, the task network trained on them and scored on V,
the REINFORCE update; and per meta-step of the ``es`` estimator (2P
datasets of 1,000 scenes, 2P task networks trained in one vmapped loop),
with its seconds per task-net training.

  python -m benchmarks.meta_epoch
"""

import jax

from benchmarks.common import mmd_target, problem, timeit
from metasim_jax.training import es
from metasim_jax.training import steps as pl


def seconds_per_step(step, params, tx, pools, feat_params, target, val,
                     repeats: int) -> float:
  """Median seconds of ``step`` from a fresh state (compile excluded)."""
  holder = [pl.init_state(jax.random.key(0),
                          jax.tree.map(lambda x: x[None], params), tx)]

  def run():
    holder[0], m = step(holder[0], pools, feat_params, target, val)
    return m["reward"]

  return timeit(run, repeats=repeats, warmup=1)


def main():
  config, pipe, feat_params, pools, params, real, val = problem(
      "rot", **{"task.weight": 1.0})
  target = mmd_target(pipe, feat_params, real, 200,
                      config.mmd.median_multiples)
  tx = pl.adam(config.task.gen_lr)
  for with_mmd, inner_loop in ((False, "scan"), (False, "host"),
                               (True, "host")):
    step = pl.make_task_step(
        pipe, tx, pl.adam(config.task.lr), num_scenes=1000,
        inner_steps=config.task.inner_steps,
        inner_batch=config.task.inner_batch, task_weight=1.0,
        mmd_weight=1.0 if with_mmd else 0.0,
        baseline_decay=config.task.baseline_decay,
        reward=config.task.reward, fixed_task_init=True,
        inner_loop=inner_loop)
    t = seconds_per_step(step, params, tx, pools, feat_params, target, val,
                         repeats=5)
    print(f"meta-epoch ({'task + MMD' if with_mmd else 'task only'}, "
          f"inner loop {inner_loop}, 1000 "
          f"scenes, {config.task.inner_steps} task-net steps of "
          f"{config.task.inner_batch}, scored on {len(val.labels)}): "
          f"{t:.2f} s")

  config, pipe, feat_params, pools, params, _, val = problem(
      "rot", **{"task.weight": 1.0, "transformer.affine": True})
  e = config.task.es
  for pairs in (1, 4):
    step = es.make_es_step(
        pipe, tx, pl.adam(config.task.lr), pairs=pairs, sigma=e.sigma,
        log_sigma=e.log_sigma, num_scenes=1000,
        inner_steps=config.task.inner_steps,
        inner_batch=config.task.inner_batch, task_weight=1.0,
        mmd_weight=0.0, reward="neg_loss", normalise=e.normalise,
        fixed_task_init=True)
    t = seconds_per_step(step, params, tx, pools, feat_params, None, val,
                         repeats=3)
    print(f"es meta-step ({pairs} pair(s) = {2 * pairs} datasets of 1000 "
          f"scenes and task-net trainings, vmapped): {t:.2f} s, "
          f"{t / (2 * pairs):.2f} s per training")


if __name__ == "__main__":
  main()
