"""Wall time, from a cold start (compilation included), until the learned
mean rotation is within 5 degrees of the target's (90), with the shipped
rot config (pre-training, then MMD with 4 starts; the best start by MMD on
the training batch is checked every 10 steps).

  python -m benchmarks.time_to_rotation
"""

import time

T0 = time.perf_counter()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import mmd_target, problem  # noqa: E402
from metasim_jax import transformer as transformer_lib  # noqa: E402
from metasim_jax.training import report, starts  # noqa: E402
from metasim_jax.training import steps as pl  # noqa: E402


def main():
  config, pipe, feat_params, pools, params, real, _ = problem("rot")
  target = mmd_target(pipe, feat_params, real, 250,
                      config.mmd.median_multiples)
  t_setup = time.perf_counter() - T0
  pre = pl.make_pretrain_step(pipe, pl.adam(config.pretrain.lr),
                              config.pretrain.batch_size)
  opt = pl.adam(config.pretrain.lr).init(params)
  for i in range(config.pretrain.steps):
    params, opt, _ = pre(params, opt, jax.random.key(i), pools)
  k = config.mmd.num_starts
  cols, offsets = starts.start_offsets(jax.random.key(3), pipe.prior, k, 0.0)
  params_k = jax.vmap(lambda o: transformer_lib.with_offsets(
      params, pipe.prior, o, cols))(jnp.asarray(offsets))
  tx = pl.adam(config.mmd.lr)
  state = pl.init_state(jax.random.key(4), params_k, tx)
  step = pl.make_mmd_step(pipe, tx)
  yaw, d = pipe.prior.col("yaw"), pipe.task.slot

  @jax.jit
  def mean_yaw(p, key):
    s = pipe.sample(key, 500, pools, p)
    r = jnp.deg2rad(s.attrs[:, d, yaw])
    return jnp.rad2deg(jnp.arctan2(jnp.sin(r).mean(), jnp.cos(r).mean()))

  for i in range(config.mmd.steps):
    state, m = step(state, pools, feat_params, target)
    if (i + 1) % 10 == 0:
      best = int(np.argmin(np.asarray(m["mmd2"])))
      y = float(mean_yaw(jax.tree.map(lambda x: x[best], state.params),
                         jax.random.key(99)))
      if report.angle_error(y, 90.0) <= 5.0:
        print(f"mean rotation {y:.1f} deg (target 90) after {i + 1} MMD steps:"
              f" {time.perf_counter() - T0:.1f} s from a cold start "
              f"(imports, data and target set-up {t_setup:.1f} s, "
              f"compilation included)")
        return
  print("rotation not within 5 degrees after", config.mmd.steps, "steps")


if __name__ == "__main__":
  main()
