"""MMD^2 along one attribute of Aerial2D's cars, with the relation
features (``task_features``, pooling "relations"), against a target world's
X_R: where along a path the MMD is lowest, and whether the path is flat.

  python -m benchmarks.aerial_slices [TARGET_FILE]

Scenes are the target world's with one car attribute redrawn:
  * heading: the prior's U(+-180) contracted towards the road's axis by a
    factor s, (a) linearly, s * yaw (the affine head before this
    benchmark), (b) by the circle's Moebius contraction
    2 atan(s tan(yaw / 2)) (``encoding.contract_angle``);
  * scale: every car at one size, with the target's headings and with
    headings U(+-180) (the generator's state before it turns the cars);
  * across-offset: the target's mirrored across the road's axis, or
    redrawn uniformly about 0, +4 or -4 px (sd 1.5 px).
Mean +- std of 3 draws of 200 scenes.
"""

import sys

import jax
import jax.numpy as jnp

from benchmarks import common
from metasim_jax.scene_graph import encoding


def main(argv):
  config, pipe, pools, features, target = common.aerial_relations_world(
      argv[1] if len(argv) > 1 else None)
  g = pipe.target
  cars, yaw, scale = g.slots_of("car"), g.col("yaw"), g.col("scale")
  n = 200

  def mmd(edit):
    """``edit(attrs, u)``, u: headings drawn U(+-180) per car."""
    def keyed(a, key):
      return edit(a, jax.random.uniform(jax.random.fold_in(key, 1),
                                        (n, len(cars)), minval=-180.0,
                                        maxval=180.0))
    return common.edited_target_mmd(pipe, pools, features, target, keyed, n)

  print(f"target {config.target_file}")
  print("heading U(+-180) contracted by s towards the road's axis:")
  print(f"  {'s':>5s} {'linear s*yaw':>22s} {'Moebius':>22s}")
  for s in (1.25, 1.0, 0.9, 0.75, 0.6, 0.5, 0.35, 0.2, 0.1, 0.03):
    lin = mmd(lambda a, u: a.at[:, cars, yaw].set(
        encoding.wrap_angle(s * u)))
    mob = mmd(lambda a, u: a.at[:, cars, yaw].set(
        encoding.contract_angle(u, jnp.float32(s))))
    print(f"  {s:5.2f} {lin:>22s} {mob:>22s}")
  print("every car at one scale:")
  print(f"  {'scale':>5s} {'target headings':>22s} {'headings U(+-180)':>22s}")
  for c in (0.3, 0.4, 0.55, 0.7, 0.8, 0.9, 1.0, 1.2):
    same = mmd(lambda a, u: a.at[:, cars, scale].set(c))
    turned = mmd(lambda a, u: a.at[:, cars, scale].set(c).at[
        :, cars, yaw].set(u))
    print(f"  {c:5.2f} {same:>22s} {turned:>22s}")
  # The target's headings and scales; the across-offset mirrored, or drawn
  # like the target's but centred elsewhere.
  x = g.col("x")
  print("cars' across-offset (target's headings and sizes):")
  print(f"  {'offset':>15s} {'MMD^2':>22s}")
  for label, sign, centre in (("target's", 1, 0.0), ("mirrored", -1, 0.0),
                              ("about 0", 0, 0.0), ("about +4", 0, 4.0),
                              ("about -4", 0, -4.0)):
    def edit(a, u, sign=sign, centre=centre):
      if sign:
        return a.at[:, cars, x].multiply(sign)
      return a.at[:, cars, x].set(centre + 1.5 * u / 103.92)  # uniform, sd 1.5
    print(f"  {label:>15s} {mmd(edit):>22s}")


if __name__ == "__main__":
  main(sys.argv)
