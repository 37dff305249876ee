"""Can the MMD features see a spread? MMD^2 against a target world's X_R
of that world's own scenes with one spread redrawn: the cars' size and the
road's position, alone and together.

  python -m benchmarks.aerial_spread [TARGET_FILE]

Asked by the second Aerial2D world (``target_offcentre.json``): after 1,200
MMD steps the cars' size spread ends at 0.042 against the target's 0.05
(seeds 0 and 1) while the road's position spread stays near 5 px against
3. Either the features do not resolve a size spread that small, or a
wider road is paid for by narrower cars; the table says which.

Scenes are the target's with the cars' scale redrawn as N(m, s) (m: the
target scenes' mean) and / or the road's x and y as N(m, s) about their
means; the features are those of the "relations" runs
(``common.aerial_relations_world``). Mean +- std of 3 draws of 200
scenes (the same scenes in every cell: differences between cells are
paired); the target's own draws give the estimator's floor (~0). The last
row, the cars' mean size 0.1 lower, is the scale of what the features do
see.
"""

import sys

import jax

from benchmarks import common

SCALE_SPREADS = (0.0, 0.025, 0.042, 0.05, 0.075, 0.1, 0.15)
ROAD_SPREADS = (None, 5.2, 9.0)  # None: the target's own; 9: the prior's


def main(argv):
  config, pipe, pools, features, target = common.aerial_relations_world(
      argv[1] if len(argv) > 1 else None)
  g = pipe.target

  def mmd(scale_sd, road_sd, scale_shift=0.0):
    """The cars' scale redrawn N(mean + scale_shift, scale_sd), the road's
    x and y N(mean, road_sd); None: left as drawn."""
    def edit(a, key):
      cars, roads = g.slots_of("car"), g.slots_of("road")
      if scale_sd is not None:
        z = jax.random.normal(jax.random.fold_in(key, 1), a[:, cars, 0].shape)
        col = g.col("scale")
        a = a.at[:, cars, col].set(a[:, cars, col].mean() + scale_shift
                                   + scale_sd * z)
      if road_sd is not None:
        z = jax.random.normal(jax.random.fold_in(key, 2),
                              a[:, roads, 0].shape + (2,))
        for j, col in enumerate((g.col("x"), g.col("y"))):
          a = a.at[:, roads, col].set(a[:, roads, col].mean()
                                      + road_sd * z[..., j])
      return a
    return common.edited_target_mmd(pipe, pools, features, target, edit)

  print(f"target {config.target_file}")
  print(f"  {'target scenes':>22s} {mmd(None, None):>22s}")
  heads = ["road: target's" if r is None else f"road x, y sd {r} px"
           for r in ROAD_SPREADS]
  print("cars' scale ~ N(mean, s):")
  print(f"  {'s':>5s} " + " ".join(f"{h:>22s}" for h in heads))
  for s in SCALE_SPREADS:
    print(f"  {s:5.3f} " + " ".join(f"{mmd(s, r):>22s}"
                                    for r in ROAD_SPREADS))
  # For scale: the same spread about a mean 0.1 lower (what MMD does see).
  print(f"  {'m-0.1':>5s} " + " ".join(f"{mmd(0.05, r, -0.1):>22s}"
                                       for r in ROAD_SPREADS))


if __name__ == "__main__":
  main(sys.argv)
