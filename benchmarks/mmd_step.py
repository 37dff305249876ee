"""Milliseconds per distribution-matching step: batch 50 against 200 target
images, one start, finite differences and autodiff.

  python -m benchmarks.mmd_step
"""

import jax

from benchmarks.common import mmd_target, problem, timeit
from metasim_jax.training import steps as pl


def main():
  for variant in ("rot", "rot_trans"):
    for grad in ("finite_diff", "autodiff"):
      config, pipe, feat_params, pools, params, real, _ = problem(
          variant, **{"mmd.grad": grad})
      target = mmd_target(pipe, feat_params, real, 200,
                          config.mmd.median_multiples)
      tx = pl.adam(config.mmd.lr)
      step = pl.make_mmd_step(pipe, tx)
      state = pl.init_state(jax.random.key(0),
                            jax.tree.map(lambda x: x[None], params), tx)
      holder = [state]

      def run():
        holder[0], m = step(holder[0], pools, feat_params, target)
        return m["mmd2"]

      t = timeit(run, repeats=50)
      h = pipe.canvas.height
      print(f"{h}x{h} {grad}: {t * 1e3:.1f} ms per step "
            f"(batch {config.mmd.batch_size}, 200 target images, 1 start)")


if __name__ == "__main__":
  main()
