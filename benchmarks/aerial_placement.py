"""Where Aerial2D's cars stand on the road and how they are turned, in the
data of trained runs (issue 14's figures: across-offset spread, and the
share of cars aligned with the road).

  python -m benchmarks.aerial_placement RUN_DIR [RUN_DIR ...]

For each run directory (a trainer workdir or a committed ``results/``
copy: results.json, grammar.json, target.json, transformer_seed*.msgpack),
for every saved seed, 2,000 scenes each of the prior, Meta-Sim and the
run's target: the cars' across-road offset (mean, std, share within 4 px
of the axis), their heading relative to the road (share within 15 degrees
of the road's direction, either way along it: |yaw| or |yaw - 180| <= 15)
and their size; and the road's offset from the image's centre, across
its axis (what an image shows: the road texture, 160 px long, spans the
64 px canvas, so sliding it along its axis changes nothing but where its
cars are) and along it.  The same scenes' keys for every source.
"""

import os
import sys

import jax
import numpy as np
from flax import serialization

from metasim_jax import grammar as grammar_lib
from metasim_jax import schedule
from metasim_jax.export import run as run_lib
from metasim_jax.training import checkpoint

N = 2000


def stats(scene, grammar, canvas):
  cars = grammar.slots_of("car")
  a = np.asarray(scene.attrs)[:, cars]
  x, yaw, scale = (a[..., grammar.col(c)].ravel()
                   for c in ("x", "yaw", "scale"))
  along = np.minimum(np.abs(yaw), 180.0 - np.abs(yaw))  # angle to the axis
  road = np.asarray(scene.attrs)[:, grammar.slots_of("road")[0]]
  rx, ry, ryaw = (road[:, grammar.col(c)] for c in ("x", "y", "yaw"))
  # raster2d.world_transforms: the road's x axis (across) lies along
  # (cos, -sin) in the image, its y axis (along) along (sin, cos).
  centre_x, centre_y = canvas.width / 2, canvas.height / 2
  cos, sin = np.cos(np.deg2rad(ryaw)), np.sin(np.deg2rad(ryaw))
  across = (rx - centre_x) * cos - (ry - centre_y) * sin
  along_road = (rx - centre_x) * sin + (ry - centre_y) * cos
  return {"road across": f"{across.mean():+5.2f} ± {across.std():4.2f}",
          "road along": f"{along_road.mean():+5.2f} ± {along_road.std():5.2f}",
          "offset": f"{x.mean():+5.2f} ± {x.std():4.2f}",
          "|offset| <= 4 px": f"{np.mean(np.abs(x) <= 4):4.0%}",
          "within 15° of the road": f"{np.mean(along <= 15):4.0%}",
          "scale": f"{scale.mean():.2f} ± {scale.std():.2f}"}


def earlier_stages(run):
  """[(stage name, its pipeline, its saved params)] of the stages before
  the last one whose generator the run kept."""
  base = run.pipe.for_groups(None)
  specs = schedule.parse(run.config.schedule, base.prior)
  learned = schedule.learned_before(specs, base.prior)
  folder = os.path.join(checkpoint.seed_dir(run.run_dir, run.seed), "stages")
  out = []
  for spec, before in list(zip(specs, learned))[:-1]:
    path = os.path.join(folder, f"{spec.name}.msgpack")
    if os.path.isfile(path):
      with open(path, "rb") as f:
        params = serialization.from_bytes(run.params, f.read())
      out.append((spec.name, base.for_groups(spec.groups, learned=before),
                  params))
  return out


def main(run_dirs):
  for run_dir in run_dirs:
    for seed in run_lib.saved_seeds(run_dir):
      run = run_lib.load(run_dir, seed)
      pipe, pools = run.pipe, run.pools
      target = pipe.target
      key = jax.random.key(seed)
      rows = {
          "prior": stats(grammar_lib.sample(key, pipe.prior, N, pools),
                         pipe.prior, pipe.canvas),
          "Meta-Sim": stats(pipe.transform(run.params, grammar_lib.sample(
              key, pipe.prior, N, pools)), pipe.prior, pipe.canvas),
          **{f"after {name}": stats(p.transform(params, grammar_lib.sample(
              key, pipe.prior, N, pools)), pipe.prior, pipe.canvas)
             for name, p, params in earlier_stages(run)},
          "target": stats(grammar_lib.sample(key, target, N, pools),
                          target, pipe.canvas)}
      print(f"{run_dir} seed {seed} ({N} scenes, 2 cars each)")
      cols = list(rows["prior"])
      width = max(map(len, rows))
      print(f"  {'':{width}s}" + "".join(f"{c:>24s}" for c in cols))
      for name, r in rows.items():
        print(f"  {name:{width}s}" + "".join(f"{r[c]:>24s}" for c in cols))


if __name__ == "__main__":
  main(sys.argv[1:] or ["results/aerial"])
