"""MMD^2 against the target as the digit's rotation is swept 0..360 degrees:
does a feature map give distribution matching a usable slope?

Compares the offline default (Gaussian-pyramid features) with raw pixels,
and sweeps the x position on the 64x64 problem the same way.
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


def _sweep(variant, column, values, edit):
  """MMD^2 vs an offset added to one attribute, for both feature maps."""
  config, pipe, _, pools, _, real, _ = problem(variant)
  j = pipe.prior.col(column)
  scene = edit(pipe, grammar_lib.sample(jax.random.key(7), pipe.prior, 200,
                                        pools))
  feats = {"pyramid (default)": features_lib.create("pyramid")[1],
           "raw pixels": lambda _, x: x.reshape(x.shape[0], -1)}
  curves = {}
  for name, fn in feats.items():
    target = MMDTarget.create(fn(None, real.images),
                              config.mmd.median_multiples)

    @jax.jit
    def mmd_at(offset):
      moved = scene.replace(attrs=scene.attrs.at[:, :, j].add(offset))
      return target.mmd2(fn(None, pipe.render(moved, pools).image))

    curves[name] = [float(mmd_at(jnp.float32(v))) for v in values]
  return curves


def _at_target_rotation(pipe, scene):
  """64x64 problem: put the digits at the target's rotation and y, so the
  sweep is over x alone."""
  d = pipe.task.slot
  attrs = scene.attrs.at[:, d, pipe.prior.col("yaw")].add(90.0)
  attrs = attrs.at[:, d, pipe.prior.col("y")].add(16.0)
  return scene.replace(attrs=attrs)


def main(out_dir: str = "results"):
  angles = np.arange(0, 361, 5)
  rot = _sweep("rot", "yaw", angles, lambda pipe, s: s)
  shifts = np.arange(-32, 17, 2)
  trans = _sweep("rot_trans", "x", shifts, _at_target_rotation)
  for name, c in rot.items():
    print(f"rotation, {name}: argmin at {angles[int(np.argmin(c))]} deg; "
          "MMD^2 at 0/90/180/270 deg = "
          + " / ".join(f"{c[int(a / 5)]:.4f}" for a in (0, 90, 180, 270)))
  for name, c in trans.items():
    c = np.asarray(c) / max(c)
    far = {int(v): round(float(c[shifts == v][0]), 3) for v in (4, 8, 12, 16)}
    print(f"x shift (64x64), {name}: argmin at "
          f"{shifts[int(np.argmin(c))]} px (target -16); MMD^2/max far "
          f"from the target (shift: value) {far}")
  os.makedirs(out_dir, exist_ok=True)
  with open(f"{out_dir}/mmd_landscape.json", "w") as f:
    json.dump({"rotation": {"angles_deg": angles.tolist(), "target_deg": 90,
                            "mmd2": rot},
               "x_shift_64": {"shift_px": shifts.tolist(), "target_px": -16,
                              "mmd2": trans}}, f, indent=1)
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
  for ax, curves, xs, target, label, title in (
      (axes[0], rot, angles, 90, "rotation added to the prior's digits (deg)",
       "32x32: rotation sweep (target 90 deg)"),
      (axes[1], trans, shifts, -16, "x shift of the digits (px)",
       "64x64: x sweep at the target rotation (target -16 px)")):
    for name, c in curves.items():
      c = np.asarray(c)
      ax.plot(xs, c / c.max(), label=name)
    ax.axvline(target, color="k", ls=":", lw=1, label="target")
    ax.set_xlabel(label)
    ax.set_ylabel("MMD^2 / max")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(f"{out_dir}/mmd_landscape.png", dpi=110)


if __name__ == "__main__":
  main()
