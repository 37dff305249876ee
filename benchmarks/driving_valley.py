"""Why MMD turns the driving cars sideways: the landscape over the cars'
distance and heading spread.

  python -m benchmarks.driving_valley [--num=200] [--pooling=objects]

MMD^2 x 1e3 against X_R (400 target images) of target scenes whose cars
are drawn with another distance range (uniform y in the road's frame: the
target's -90..-60, half-way -90..-40, the prior's -90..-20) and another
heading spread (yaw N(0, s)), and of the prior's cars turned (yaw mean 80);
per feature block of the driving default (local statistics 3x4, the
detector trained on V and prior scenes, both).  Prints one table; the README
quotes it (results/bench_driving_valley.txt).
"""

from __future__ import annotations

import copy

import jax
from absl import app, flags

from experiments.configs import driving as driving_config
from metasim_jax import grammar as grammar_lib
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import task_features
from metasim_jax.features import MMDTarget

_NUM = flags.DEFINE_integer("num", 200, "Scenes per cell.")
_POOLING = flags.DEFINE_string(
    "pooling", None, "config.task_features.pooling of the learned block "
    "(default: the driving config's).")
RANGES = ((-90.0, -60.0), (-90.0, -40.0), (-90.0, -20.0))
SPREADS = (4.0, 10.0, 20.0, 30.0)


def cars(target: dict, y_range, yaw_mean: float, yaw_std: float) -> dict:
  out = copy.deepcopy(target)
  attrs = out["classes"]["car"]["attributes"]
  attrs["y"]["dist"] = {"type": "uniform", "low": y_range[0],
                        "high": y_range[1]}
  attrs["yaw"]["dist"] = {"type": "gaussian", "mean": yaw_mean,
                          "std": yaw_std}
  return out


def main(argv):
  del argv
  config = driving_config.get_config()
  config.splits = {"real": 400, "val": 100, "test": 16}
  if _POOLING.value:
    config.task_features.pooling = _POOLING.value
  base, base_params = pipeline_lib.build(config)
  pools, sets = pipeline_lib.build_data(config, base)
  pipe, params = task_features.build(config, base, base_params, sets, pools)
  fn = jax.jit(pipe.feature_fn)
  real = fn(params, sets["real"].images)
  split = jax.jit(base.feature_fn)(base_params, sets["real"].images[:2])
  split = split.shape[1]  # the configured block comes first
  blocks = {"local_stats": slice(0, split), "learned": slice(split, None),
            "both": slice(0, None)}
  refs = {k: MMDTarget.create(real[:, s], config.mmd.median_multiples)
          for k, s in blocks.items()}
  target = pipeline_lib.grammar_dict(config, "target")

  def cell(d):
    g = grammar_lib.compile_grammar(d)
    f = fn(params, pipe.render(grammar_lib.sample(
        jax.random.key(7), g, _NUM.value, pools), pools, g).image)
    return "/".join(f"{1e3 * float(refs[k].mmd2(f[:, s])):.1f}"
                    for k, s in blocks.items())

  print(f"MMD^2 x 1e3 vs {len(real)} target images, {_NUM.value} scenes a "
        "cell, as local_stats / learned / both (learned: pooling "
        f"{config.task_features.pooling!r}); target scenes with the "
        "cars' y range and yaw N(mean, s) replaced")
  print(f"{'car y range':18s}" + "".join(f"{f'yaw N(0, {s:g})':>18s}"
                                         for s in SPREADS)
        + f"{'yaw N(80, 30)':>18s}")
  for r in RANGES:
    print(f"{f'U({r[0]:g}, {r[1]:g})':18s}"
          + "".join(f"{cell(cars(target, r, 0.0, s)):>18s}" for s in SPREADS)
          + f"{cell(cars(target, r, 80.0, 30.0)):>18s}", flush=True)


if __name__ == "__main__":
  app.run(main)
