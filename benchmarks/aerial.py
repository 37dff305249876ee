"""Aerial2D: scenes rendered per second at 64x64 RGB (batch 1024), and the
cost of one MMD step and one U-Net training step.

  python -m benchmarks.aerial

The whole experiment's wall time is in its results JSON
(``summary.wall_seconds``) and in the README.
"""

import dataclasses

import jax

from benchmarks.common import timeit
from experiments.configs import aerial as aerial_config
from metasim_jax import grammar as grammar_lib
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import transformer as transformer_lib
from metasim_jax.data import aerial
from metasim_jax.features import MMDTarget
from metasim_jax.training import steps as pl


def main():
  config = aerial_config.get_config()
  pipe, feat_params = pipeline_lib.build(config)
  pools = aerial.texture_pools(config.textures.grammar_seed,
                               dict(config.textures.counts))
  batch = 1024
  scene = jax.jit(lambda k: grammar_lib.sample(k, pipe.prior, batch, pools))(
      jax.random.key(0))
  h, w = pipe.canvas.height, pipe.canvas.width
  for name, fn in (("image only", lambda s: pipe.render(s, pools).image),
                   ("all layers (image, semantic, instance, boxes)",
                    lambda s: pipe.render(s, pools))):
    t = timeit(jax.jit(fn), scene)
    print(f"{h}x{w} RGB {name}: {batch / t:,.0f} scenes/s "
          f"({t * 1e3:.1f} ms per batch of {batch})")

  # One MMD step (K starts, batch 50 against 500 target images).
  sets = aerial.render_sets(jax.random.key(1), pipe,
                            aerial.texture_pools(2, dict(config.textures.counts)),
                            {"real": 500, "val": 2, "test": 2})
  target = MMDTarget.create(pipe.feature_fn(feat_params, sets["real"].images),
                            config.mmd.median_multiples)
  small = grammar_lib.sample(jax.random.key(2), pipe.prior, 2, pools)
  params = transformer_lib.init(jax.random.key(3), pipe.transformer,
                                pipe.prior, small)
  k = config.mmd.num_starts
  for mode in ("autodiff", "finite_diff"):
    p = dataclasses.replace(pipe, grad_mode=mode)
    tx = pl.adam(config.mmd.lr)
    step = pl.make_mmd_step(p, tx)
    params_k = jax.tree.map(lambda x: jax.numpy.stack([x] * k), params)
    state = pl.init_state(jax.random.key(4), params_k, tx)

    def run(state):
      return step(state, pools, feat_params, target)

    state, _ = run(state)  # compile
    holder = [state]

    def once():
      holder[0], m = run(holder[0])
      return m

    t = timeit(once)
    print(f"MMD step, {mode}, {k} starts x {config.mmd.batch_size} scenes: "
          f"{t * 1e3:.0f} ms")

  # One U-Net training step on freshly generated scenes: 20 steps of the
  # host-loop task-net trainer (sample, render, forward, backward, Adam),
  # then the score on a 2-image set (negligible).
  eval_tx = pl.adam(config.eval.lr)
  score = jax.jit(pipe.score)
  for bs in (config.eval.batch_size,):
    task_trainer = pipe.task_trainer(eval_tx, steps=20, batch=bs,
                                     source="prior")

    def train_and_score(key):
      task_params, loss = task_trainer.run(key, params, pools)
      return score(task_params, sets["val"]), loss

    train_and_score(jax.random.key(5))  # compile
    t = timeit(train_and_score, jax.random.key(6), repeats=3, warmup=0)
    print(f"U-Net training step (batch {bs}, 64x64, incl. rendering): "
          f"{t / 20 * 1e3:.0f} ms")


if __name__ == "__main__":
  main()
