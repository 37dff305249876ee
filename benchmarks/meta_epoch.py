"""Seconds per meta-epoch of the task objective (Algorithm 1): 1,000 scenes
generated and rendered, the task network trained on them and scored on V,
the REINFORCE update.

  python -m benchmarks.meta_epoch
"""

import jax

from benchmarks.common import mmd_target, problem, timeit
from metasim_jax.training import steps as pl


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
    holder = [pl.init_state(jax.random.key(0),
                            jax.tree.map(lambda x: x[None], params), tx)]

    def run():
      holder[0], m = step(holder[0], pools, feat_params, target, val)
      return m["reward"]

    t = timeit(run, repeats=5, warmup=1)
    print(f"meta-epoch ({'task + MMD' if with_mmd else 'task only'}, "
          f"inner loop {inner_loop}, 1000 "
          f"scenes, {config.task.inner_steps} task-net steps of "
          f"{config.task.inner_batch}, scored on {len(val.labels)}): "
          f"{t:.2f} s")


if __name__ == "__main__":
  main()
