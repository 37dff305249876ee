"""Does the learned generator rotate some digit classes differently?

  python -m benchmarks.mnist_per_class_yaw [SEED]

Trains rot_trans (500 MMD steps, cosine decay; evaluation skipped) for one
seed, then transforms 5,000 prior scenes and prints each class's circular
mean rotation and the fraction more than 45 degrees from the target's 90.
"""

import sys
import tempfile

import jax
import numpy as np
from flax import serialization

from experiments.configs import mnist as mnist_config
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import transformer as transformer_lib
from metasim_jax.training import trainer


def main(seed: int = 1):
  c = mnist_config.get_config("rot_trans")
  c.mmd.steps, c.mmd.lr_decay, c.seeds = 500, True, (seed,)
  c.eval.train_steps, c.eval.probe_every = 2, 0
  with tempfile.TemporaryDirectory() as out:
    trainer.run(c, out)
    pipe, _ = pipeline_lib.build(c)
    pools, _ = pipeline_lib.build_data(c, pipe)
    like = transformer_lib.init(jax.random.key(0), pipe.transformer,
                                pipe.prior, pipe.sample(jax.random.key(0), 2,
                                                        pools, source="prior"))
    with open(f"{out}/transformer_seed{seed}.msgpack", "rb") as f:
      params = serialization.from_bytes(like, f.read())
  scene = pipe.sample(jax.random.key(5), 5000, pools, source="prior")
  new = pipe.transform(params, scene)
  g, d = pipe.prior, pipe.task.slot
  cls = np.asarray(new.attrs[:, d, g.col("class")]).astype(int)
  yaw = np.deg2rad(np.asarray(new.attrs[:, d, g.col("yaw")]))
  for k in range(10):
    y = yaw[cls == k]
    mean = np.rad2deg(np.arctan2(np.sin(y).mean(), np.cos(y).mean()))
    off = np.abs((np.rad2deg(y) - 90 + 180) % 360 - 180) > 45
    print(f"class {k}: mean yaw {mean:.1f}, fraction > 45 deg from 90: "
          f"{off.mean():.3f}")


if __name__ == "__main__":
  main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
