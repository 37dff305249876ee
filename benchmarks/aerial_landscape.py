"""Which features see where Aerial2D's cars are?  MMD^2 against the target
set X_R of target-grammar scenes whose cars are moved off the road, for the
pixel pyramid (MNIST's default), the local statistics (Aerial2D's), and
the local statistics joined by a block learned from V
(``metasim_jax/task_features.py``: the U-Net trained on V plus prior
scenes, its class-probability maps pooled over 4x4 cells, ``cells``, or
into relation statistics, ``relations``).

  python -m benchmarks.aerial_landscape [FEATURES...]

Scenes are drawn from the target grammar, then the cars' across-road
offset (and/or relative yaw) is redrawn uniformly in +-X px (+-Y degrees);
everything else stays the target's.  Mean of 3 draws of 200 scenes.
Cars rescaled (the target's scale is ~N(1, 0.06), the prior's U(0.45,
0.65)).  Also: the prior grammar as a whole, and the prior with the target's texture
seed replaced by another (a pure appearance gap).
"""

import copy
import sys

import jax
import numpy as np

from benchmarks import common
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import task_features
from metasim_jax.data import aerial
from metasim_jax.features import MMDTarget

LOCAL_STATS = {"name": "local_stats", "levels": 4, "num_filters": 32,
               "filter_size": 5}
LEARNED = {"steps": 300, "batch": 16, "synthetic": 8, "lr": 2e-3,
           "weight": 1.0}
# name -> (config.features, config.task_features overrides or None)
FEATURES = {
    "pyramid": ({"name": "pyramid", "levels": 4, "sigma": 1.0}, None),
    "local_stats": (LOCAL_STATS, None),
    "cells": (LOCAL_STATS, {**LEARNED, "pooling": "cells", "grid": (4, 4)}),
    "relations": (LOCAL_STATS, {**LEARNED, "pooling": "relations",
                                "radii": (2.0, 4.0, 8.0)}),
}


def main(argv):
  names = argv[1:] or list(FEATURES)
  config, pipe, _, pools, sets = common.aerial_world()
  other = aerial.texture_pools(config.textures.grammar_seed + 100,
                               dict(config.textures.counts))
  g = pipe.target
  cars, x, yaw = g.slots_of("car"), g.col("x"), g.col("yaw")
  scale = g.col("scale")
  n = 200

  def images(key, across, turn, source="target", p=pools, size=None):
    scene = pipe.sample(key, n, p, source=source)
    a = scene.attrs
    k1, k2 = jax.random.split(jax.random.fold_in(key, 1))
    if across:
      a = a.at[:, cars, x].set(jax.random.uniform(
          k1, (n, len(cars)), minval=-across, maxval=across))
    if turn:
      a = a.at[:, cars, yaw].set(jax.random.uniform(
          k2, (n, len(cars)), minval=-turn, maxval=turn))
    if size is not None:
      a = a.at[:, cars, scale].set(size)
    grammar = pipe.target if source == "target" else pipe.prior
    return pipe.render(scene.replace(attrs=a), p, grammar).image

  cases = [("target (cars on the road, aligned)", 0, 0, "target", pools),
           ("cars across-offset U(+-8 px)", 8, 0, "target", pools),
           ("cars across-offset U(+-16 px)", 16, 0, "target", pools),
           ("cars relative yaw U(+-180 deg)", 0, 180, "target", pools),
           ("cars relative yaw U(+-45 deg)", 0, 45, "target", pools),
           ("cars offset U(+-8 px), yaw U(+-180 deg)", 8, 180, "target",
            pools),
           ("cars at scale 0.55 (prior's mean)", 0, 0, "target", pools,
            0.55),
           ("cars at scale 0.8", 0, 0, "target", pools, 0.8),
           ("cars at scale 0.9", 0, 0, "target", pools, 0.9),
           ("cars at scale 1.2", 0, 0, "target", pools, 1.2),
           ("prior grammar", 0, 0, "prior", pools),
           ("target, other texture seed", 0, 0, "target", other)]
  for name in names:
    feats, learned = FEATURES[name]
    c = copy.deepcopy(config)
    c.features.update(feats)
    if learned:
      c.task_features.update(learned)
    p_name, params = pipeline_lib.build(c)
    p_name, params = task_features.build(c, p_name, params, sets, pools)
    fn = jax.jit(p_name.feature_fn)
    target = MMDTarget.create(fn(params, sets["real"].images),
                              config.mmd.median_multiples)
    print(f"features {name}:")
    for label, across, turn, source, p, *size in cases:
      v = [float(target.mmd2(fn(params, images(jax.random.key(s), across,
                                                 turn, source, p, *size))))
           for s in range(3)]
      print(f"  {label:40s} MMD^2 {np.mean(v):.5f} +- {np.std(v):.5f}")


if __name__ == "__main__":
  main(sys.argv)
