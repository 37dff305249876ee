"""Which features see which part of the driving target?  MMD^2 against the
target set X_R of scenes from the target grammar with one group of
attributes (cars; camera; context) drawn from the prior instead: the
larger it is against the target's own draws (the noise floor), the better
those features can guide that group's training stage.

  python -m benchmarks.driving_landscape [--draws=2] [--num=200]

Features: local statistics pooled over the whole image (grid 1x1, the
Aerial2D default), over a 3x4 and a 6x8 grid, the pixel pyramid, and the
learned block of ``metasim_jax/task_features.py`` (the detector trained on
V's 100 labelled images, its car maps pooled over 6x8 cells) alone and
beside local statistics 3x4 (the driving default).  Rows with one car
attribute from the prior say which of the cars' attributes each sees.
Rendered through the bridge (moderngl servers).  Prints one table; the
README quotes it (results/bench_driving_landscape.txt).
"""

from __future__ import annotations

import copy

import jax
import numpy as np
from absl import app, flags

from benchmarks import common

from metasim_jax import features as features_lib
from metasim_jax import grammar as grammar_lib
from metasim_jax import keys
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import task_features
from metasim_jax.features import MMDTarget, blocks

_DRAWS = flags.DEFINE_integer("draws", 2, "Draws of --num scenes per row.")
_NUM = flags.DEFINE_integer("num", 200, "Scenes per draw.")

FEATURES = {
    "local_stats 1x1": {"name": "local_stats", "levels": 4, "num_filters": 32,
                        "filter_size": 5, "grid": (1, 1)},
    "local_stats 3x4": {"name": "local_stats", "levels": 4, "num_filters": 32,
                        "filter_size": 5, "grid": (3, 4)},
    "local_stats 6x8": {"name": "local_stats", "levels": 3, "num_filters": 32,
                        "filter_size": 5, "grid": (6, 8)},
    "pyramid": {"name": "pyramid", "levels": 4, "sigma": 1.0},
}


def mixed(target: dict, prior: dict, group: str, cls_attr=None) -> dict:
  """The target grammar with the distributions of ``group``'s attributes
  (the prior's "group" keys), or of one (class, attribute), taken from the
  prior."""
  out = copy.deepcopy(target)
  for name, cls in prior["classes"].items():
    for attr, d in cls.get("attributes", {}).items():
      if (d.get("group") == group if cls_attr is None
          else (name, attr) == cls_attr):
        out["classes"][name]["attributes"][attr]["dist"] = copy.deepcopy(
            d["dist"])
  return out


def main(argv):
  del argv
  config, pipe, _, pools, sets = common.driving_world(400, 100, 16)
  prior_d = pipeline_lib.grammar_dict(config, "grammar")
  target_d = pipeline_lib.grammar_dict(config, "target")
  rows = {"target (noise floor)": target_d}
  for group in ("cars", "camera", "context"):
    rows[f"target, {group} from the prior"] = mixed(target_d, prior_d, group)
  for attr in ("x", "y", "yaw"):
    rows[f"target, car {attr} from the prior"] = mixed(
        target_d, prior_d, "", ("car", attr))
  rows["prior"] = prior_d
  images = {}
  for name, d in rows.items():
    g = grammar_lib.compile_grammar(d)
    images[name] = [np.asarray(pipe.render(grammar_lib.sample(
        jax.random.key(100 + k), g, _NUM.value, pools), pools, g).image)
        for k in range(_DRAWS.value)]
  print(f"MMD^2 x 1e3 vs {len(sets['real'].images)} target images (X_R), "
        f"mean of {_DRAWS.value} draws of {_NUM.value} scenes; the first row "
        "is the noise floor (the target's own scenes)")
  table = {}
  columns = {k: features_lib.create(**kw) for k, kw in FEATURES.items()}
  tf = config.task_features
  net, loss = task_features.train_on_set(
      pipe, sets["val"], keys.root(config.data_seed, "features"),
      steps=tf.steps, batch=tf.batch, lr=tf.lr, synthetic=tf.synthetic,
      pools=pools)
  print(f"task net on V (+{tf.synthetic} prior scenes a batch): "
        f"{tf.steps} steps, last loss {loss:.3f}")
  learned = task_features.learned_block(pipe, tf.grid)
  columns[f"task net {tf.grid[0]}x{tf.grid[1]}"] = (net, learned)
  columns["ls 3x4 + task net"] = blocks.balanced(
      [columns["local_stats 3x4"][1], learned],
      [columns["local_stats 3x4"][0], net], sets["real"].images,
      [1.0, tf.weight])
  print(f"{'':34s}" + "".join(f"{f:>18s}" for f in columns))
  for fname, (fp, fn) in columns.items():
    fn = jax.jit(fn)
    ref = MMDTarget.create(fn(fp, sets["real"].images),
                           config.mmd.median_multiples)
    table[fname] = {name: float(np.mean([ref.mmd2(fn(fp, x))
                                         for x in ims]))
                    for name, ims in images.items()}
  for name in rows:
    print(f"{name:34s}" + "".join(f"{1e3 * table[f][name]:18.2f}"
                                   for f in columns))


if __name__ == "__main__":
  app.run(main)
