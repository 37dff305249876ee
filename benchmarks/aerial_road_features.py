"""Whether Aerial2D's MMD features see where the road lies in the image.

  python -m benchmarks.aerial_road_features [TARGET_FILE]

The road texture (160 px) spans the 64 px canvas, so of its (x, y) only the
offset across its axis from the image's centre shows.  The local
statistics pool their filter responses over the whole image by default
(``grid`` (1, 1): translation-invariant), so they can see that offset only
where the road meets a border.  Here: MMD^2 of the ``local_stats``
features (the Aerial2D config's, pooled over a rows x cols ``grid``)
between the target world's X_R and the target's scenes with one change:
  * the road's offset from the centre scaled by s (s = 2.3 is about the
    shipped prior's spread, 9.2 px against the target's 4.0);
  * the road moved across its axis by a constant (px);
  * every car at the prior's size (0.55), for scale: a change that MMD
    on these features is known to see and learn.
Mean +- std of 3 draws of 200 scenes.  The relation block
(``task_features``, pooled over the image) is translation-invariant and
not included.
"""

import sys

import jax
import numpy as np

from benchmarks import common
from metasim_jax import features as features_lib
from metasim_jax.features import MMDTarget

GRIDS = ((1, 1), (2, 2), (3, 3), (4, 4))


def main(argv):
  config, pipe, _, pools, sets = common.aerial_world(
      "default", argv[1] if len(argv) > 1 else None)
  g = pipe.target
  road = g.slots_of("road")[0]
  cars = g.slots_of("car")
  x, y, yaw, scale = (g.col(c) for c in ("x", "y", "yaw", "scale"))
  cx, cy = pipe.canvas.width / 2, pipe.canvas.height / 2
  n = 200

  def scaled(s):
    def edit(a):
      return (a.at[:, road, x].set(cx + s * (a[:, road, x] - cx))
               .at[:, road, y].set(cy + s * (a[:, road, y] - cy)))
    return edit

  def moved(d):
    def edit(a):
      # raster2d.world_transforms: the road's across axis is (cos, -sin).
      t = np.deg2rad(a[:, road, yaw])
      return (a.at[:, road, x].add(d * np.cos(t))
               .at[:, road, y].add(-d * np.sin(t)))
    return edit

  edits = [("target's", lambda a: a)]
  edits += [(f"offset x {s:g}", scaled(s)) for s in (1.5, 2.0, 2.3, 3.0)]
  edits += [(f"moved {d:g} px", moved(d)) for d in (4.0, 8.0)]
  edits += [("cars at 0.55", lambda a: a.at[:, cars, scale].set(0.55))]

  images = {}
  for label, edit in edits:
    images[label] = []
    for s in range(3):
      scene = pipe.sample(jax.random.key(s), n, pools, source="target")
      scene = scene.replace(attrs=edit(scene.attrs))
      images[label].append(pipe.render(scene, pools, g).image)

  print(f"target {config.target_file}")
  print(f"  {'':>16s}" + "".join(f"{f'grid {r}x{c}':>20s}" for r, c in GRIDS))
  rows = {label: [] for label, _ in edits}
  for grid in GRIDS:
    kwargs = {**dict(config.features), "grid": grid}
    params, fn = features_lib.create(**kwargs)
    fn = jax.jit(fn)
    target = MMDTarget.create(fn(params, sets["real"].images),
                              config.mmd.median_multiples)
    for label, _ in edits:
      v = [float(target.mmd2(fn(params, im))) for im in images[label]]
      rows[label].append(f"{np.mean(v):.5f} +- {np.std(v):.5f}")
  for label, cells in rows.items():
    print(f"  {label:>16s}" + "".join(f"{c:>20s}" for c in cells))


if __name__ == "__main__":
  main(sys.argv)
