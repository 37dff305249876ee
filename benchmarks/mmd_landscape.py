"""MMD^2 against the target as the digit's rotation is swept 0..360 degrees:
does a feature map give distribution matching a usable slope?

Compares the offline default (Gaussian-pyramid features) with raw pixels.
Writes results/mmd_landscape.{png,json}.

  python -m benchmarks.mmd_landscape
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import problem
from metasim_jax import features as features_lib
from metasim_jax import grammar as grammar_lib
from metasim_jax.features import MMDTarget


def main(out_dir: str = "results"):
  config, pipe, _, pools, _, real, _ = problem("rot")
  yaw = pipe.prior.col("yaw")
  scene = grammar_lib.sample(jax.random.key(7), pipe.prior, 200, pools)
  angles = np.arange(0, 361, 5)
  feats = {"pyramid (default)": features_lib.create("pyramid")[1],
           "raw pixels": lambda _, x: x.reshape(x.shape[0], -1)}
  curves = {}
  for name, fn in feats.items():
    target = MMDTarget.create(fn(None, real.images), config.mmd.bandwidths)

    @jax.jit
    def mmd_at(offset):
      moved = scene.replace(attrs=scene.attrs.at[:, :, yaw].add(offset))
      return target.mmd2(fn(None, pipe.render(moved, pools).image))

    curves[name] = [float(mmd_at(jnp.float32(a))) for a in angles]
    best = angles[int(np.argmin(curves[name]))]
    print(f"{name}: argmin at {best} deg; MMD^2 at 0/90/180/270 deg = "
          + " / ".join(f"{curves[name][int(a / 5)]:.4f}"
                       for a in (0, 90, 180, 270)))
  os.makedirs(out_dir, exist_ok=True)
  with open(f"{out_dir}/mmd_landscape.json", "w") as f:
    json.dump({"angles_deg": angles.tolist(), "target_deg": 90,
               "mmd2": curves}, f, indent=1)
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 3.5))
  for name, c in curves.items():
    c = np.asarray(c)
    ax.plot(angles, c / c.max(), label=name)
  ax.axvline(90, color="k", ls=":", lw=1, label="target (90 deg)")
  ax.set_xlabel("rotation added to the prior's digits (deg)")
  ax.set_ylabel("MMD^2 / max")
  ax.set_title("MMD^2 to the rotated-MNIST target (200 vs 250 images)")
  ax.legend(fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(f"{out_dir}/mmd_landscape.png", dpi=110)


if __name__ == "__main__":
  main()
