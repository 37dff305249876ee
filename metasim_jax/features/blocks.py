"""Feature blocks of different kinds in one MMD^2, each on an equal footing.

The Gaussian kernels of ``MMDTarget`` see squared distances between feature
vectors.  Concatenating blocks as they come (2,304 random-filter statistics
beside 72 pooled heatmap cells) would let the block with the larger spread
decide every distance.  ``balanced`` divides each block by its median
pairwise distance over the real images X_R (``median_distance``) and
multiplies it by sqrt(weight): a block of weight w then contributes about
w to a typical squared distance, whatever its dimension or units.

``pool_maps`` turns a network's output maps into a feature block: the mean
of each map over the cells of a rows x cols grid (where in the image a
response is, e.g. how far away cars are), or the vector as it is for an
output without space (a classifier's class probabilities).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

FeatureFn = Callable[[Any, jax.Array], jax.Array]


def pool_maps(maps: jax.Array, grid: tuple[int, int]) -> jax.Array:
  """[B, H, W, F] -> [B, rows * cols * F] cell means (the last cells take
  the remainder); [B, F] is returned as it is."""
  if maps.ndim == 2:
    return maps
  if maps.ndim != 4:
    raise ValueError(f"maps must be [B, H, W, F] or [B, F], got {maps.shape}")
  rows, cols = grid
  h, w = maps.shape[1:3]
  if not 1 <= rows <= h or not 1 <= cols <= w:
    raise ValueError(f"grid {tuple(grid)} does not fit maps of {h}x{w}")
  ys = np.linspace(0, h, rows + 1).round().astype(int)
  xs = np.linspace(0, w, cols + 1).round().astype(int)
  return jnp.concatenate(
      [maps[:, ys[i]:ys[i + 1], xs[j]:xs[j + 1]].mean((1, 2))
       for i in range(rows) for j in range(cols)], -1)


def median_distance(feats: jax.Array) -> float:
  """Median Euclidean distance between distinct rows of [N, D] (N >= 2)."""
  feats = np.asarray(feats, np.float64)
  if feats.ndim != 2 or len(feats) < 2:
    raise ValueError(f"need [N >= 2, D] features, got {feats.shape}")
  sq = (feats ** 2).sum(1)
  d2 = sq[:, None] + sq[None, :] - 2.0 * feats @ feats.T
  iu = np.triu_indices(len(feats), 1)
  return float(np.sqrt(np.maximum(np.median(d2[iu]), 0.0)))


def balanced(fns: Sequence[FeatureFn], params: Sequence[Any],
             real: jax.Array, weights: Sequence[float] | None = None,
             ) -> tuple[Any, FeatureFn]:
  """(params, fn(params, images) -> [B, sum D_i]) concatenating the blocks
  ``fns[i](params[i], images)``, each divided by its median distance over
  ``real`` images and multiplied by sqrt(``weights[i]``) (default 1)."""
  weights = [1.0] * len(fns) if weights is None else list(weights)
  if len(weights) != len(fns) or len(params) != len(fns) or not fns:
    raise ValueError("balanced: one params and weight per feature block")
  if min(weights) < 0:
    raise ValueError(f"block weights must be >= 0, got {weights}")
  scales = []
  for fn, p, w in zip(fns, params, weights):
    d = median_distance(jax.jit(fn)(p, real))
    if d <= 0:
      raise ValueError("a feature block is constant over the real images "
                       "(median distance 0): it cannot be balanced")
    scales.append(np.float32(np.sqrt(w) / d))
  fns = tuple(fns)

  def fn(p, images):
    return jnp.concatenate([f(q, images) * s for f, q, s in
                            zip(fns, p["blocks"], p["scales"])], -1)

  return {"blocks": list(params), "scales": jnp.asarray(scales)}, fn
