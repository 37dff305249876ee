"""The driving experiment's costs: the detector's training steps per second
(batch 16, 96 x 312) and seconds per MMD step with finite differences
through the renderer bridge (batch 16, moderngl servers), per stage of the
schedule (cars; + camera; + context), with the configured MMD features
(local statistics and the learned detector block).

  python -m benchmarks.driving [--workers=2] [--repeats=5] [--nolite]

The fixed-batch detector step is timed for both detectors (the first runs'
and the lite one, ``tasknet/detector.py``); the rest with ``--lite``'s
(default: the lite one, as driving.flags).

Prints one line per figure; the README quotes them (results/bench_driving.txt).
Run it on an otherwise idle machine: the servers and JAX share the cores.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import app, flags

from experiments.configs import driving as driving_config
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import schedule
from metasim_jax import task_features
from metasim_jax.features import MMDTarget
from metasim_jax.tasknet.train import init as init_tasknet
from metasim_jax.tasknet.train import make_step
from metasim_jax.training import steps as steps_lib

_WORKERS = flags.DEFINE_integer("workers", 2, "moderngl server processes.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed MMD steps per stage.")
_DET_STEPS = flags.DEFINE_integer("detector_steps", 30,
                                  "Timed detector training steps.")
_LITE = flags.DEFINE_bool("lite", True, "The lite detector (driving.flags' "
                          "choice) for the fresh-scene and MMD lines.")


def _median_seconds(fn, repeats: int, warmup: int = 2) -> float:
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def main(argv):
  del argv
  config = driving_config.get_config()
  config.renderer_options.workers = _WORKERS.value
  config.tasknet.kwargs.lite = _LITE.value
  config.splits = {"real": 200, "val": 16, "test": 16}
  # The learned feature block costs the same whatever it learned: a few
  # steps on V make it (config.task_features.steps only sets quality).
  config.task_features.steps = min(config.task_features.steps, 5)
  pipe, feat_params = pipeline_lib.build(config)
  pools, sets = pipeline_lib.build_data(config, pipe)
  pipe, feat_params = task_features.build(config, pipe, feat_params, sets,
                                          pools)
  batch = config.eval.batch_size
  h, w = config.canvas.height, config.canvas.width
  print(f"driving, {w}x{h}, batch {batch}; renderer bridge "
        f"({config.renderer_options.backend}, {_WORKERS.value} worker(s)); "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s)")

  # ------------------------------------------------ detector training
  images, targets = pipe.images_and_targets(jax.random.key(0), batch, pools,
                                            None, "prior")
  tx = steps_lib.adam(config.eval.lr)
  for lite in (False, True):
    net = pipe.tasknet.clone(lite=lite)
    carry = init_tasknet(jax.random.key(1), net, tx, pipe.input_shape)
    step = jax.jit(make_step(net, pipe.task.loss, tx,
                             lambda k: (images, targets)), donate_argnums=0)
    holder = [carry]

    def det_step():
      holder[0], loss = step(holder[0], jax.random.key(2))
      return loss
    t = _median_seconds(det_step, _DET_STEPS.value)
    print(f"detector (CenterNet{', lite' if lite else ''}) training step on "
          f"a fixed batch: {1.0 / t:.2f} steps/s ({t * 1e3:.0f} ms)")
  trainer = pipe.task_trainer(tx, steps=_DET_STEPS.value, batch=batch,
                              source="prior")
  jax.block_until_ready(trainer.run(jax.random.key(3), None, pools))
  for prefetch in (False, True):  # the next batch drawn during the update
    trainer.prefetch = prefetch
    t0 = time.perf_counter()
    jax.block_until_ready(trainer.run(jax.random.key(4), None, pools))
    t = (time.perf_counter() - t0) / _DET_STEPS.value
    how = ("next batch drawn during the update" if prefetch else
           "batch, then update")
    print(f"detector training step with fresh scenes rendered through the "
          f"bridge ({how}): {1.0 / t:.2f} steps/s ({t * 1e3:.0f} ms)")

  # ---------------------------------------------- MMD steps per stage
  target = MMDTarget.create(pipe.feature_fn(feat_params, sets["real"].images),
                            config.mmd.median_multiples)
  params = pipe.init_transformer(jax.random.key(5), jax.random.key(6), pools)
  mmd_tx = steps_lib.adam(config.mmd.lr)
  for spec in schedule.parse(config.schedule, pipe.prior):
    ph = pipe.for_groups(spec.groups)
    mmd_step = steps_lib.make_mmd_step(ph, mmd_tx)
    state = [steps_lib.init_state(jax.random.key(7), jax.tree.map(
        lambda x: x[None], params), mmd_tx)]

    def run_step():
      state[0], m = mmd_step(state[0], pools, feat_params, target)
      return m["mmd2"]
    t = _median_seconds(run_step, _REPEATS.value)
    n = int((ph.prior.fd_step > 0).sum())
    print(f"MMD step, stage {spec.label!r} ({n} slot attributes, central "
          f"differences: {2 * n} perturbed renders per scene), batch "
          f"{config.mmd.batch_size}: {t:.2f} s")


if __name__ == "__main__":
  app.run(main)
