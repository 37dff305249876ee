"""Target sets rendered from a problem's target grammar.

A world whose "real" data is a parameter set of its own grammar (Aerial2D,
the offline driving target) renders X_R, V and test with
``pipe.sample(..., source="target")``, ``pipe.render`` and labels them with
``pipe.task.targets``: the renderer's ground truth is the annotation.
"""

from __future__ import annotations

from typing import Mapping

import jax
import numpy as np

from metasim_jax import data as data_lib
from metasim_jax import parallel
from metasim_jax.types import LabeledSet, TexturePool


def render_sets(key: jax.Array, pipe, pools: Mapping[str, TexturePool],
                sizes: Mapping[str, int], batch: int = 500):
  """Renders disjoint target sets {'real', 'val', 'test'} -> LabeledSet."""
  render = jax.jit(lambda k, n: _render_target(pipe, pools, k, n),
                   static_argnums=1)
  out = {}
  for i, name in enumerate(data_lib.SPLITS):
    n = int(sizes[name])
    if n < 2:
      raise ValueError(f"splits.{name} must be >= 2, got {n}")
    k = jax.random.fold_in(key, i)
    parts = [parallel.to_host(render(jax.random.fold_in(k, j),
                                     min(batch, n - j * batch)))
             for j in range((n + batch - 1) // batch)]
    out[name] = LabeledSet(
        images=np.concatenate([p[0] for p in parts]),
        labels=np.concatenate([p[1] for p in parts]))
  return out


def _render_target(pipe, pools, key, n):
  scene = pipe.sample(key, n, pools, source="target")
  r = pipe.render(scene, pools, pipe.target)
  return r.image, pipe.task.targets(scene, r)
