"""Relation statistics of smooth semantic maps: what lies next to what, and
turned how relative to it.

Pooling a network's class-probability maps over image cells
(``blocks.pool_maps``) says *where* each class is.  In a world whose layout
turns and moves (Aerial2D: a road at any angle), what makes a scene
realistic is relative: cars on the road, not beside it, and aligned with
it.  For maps S [B, H, W, K] (class probabilities; any smooth maps work)
and each radius r (a Gaussian blur G_r of standard deviation r px):

  area        a_i        = mean_u S_i(u)                          [K]
  contact     C_ij(r)    = (mean_u S_i G_r S_j + k_a a_j)
                           / (a_i + k_a)                          [K, K]
              (how much of j lies within about r of i's mass)
  alignment   A_ij(r)    = mean_u O_i . G_r O_j
                           / (mean_u |O_i| |G_r O_j| + k_o)       [K, K]
              (do i's edges run parallel (+1) or across (-1) the edges of
              j within about r)

with O_k = (gx^2 - gy^2, 2 gx gy) the double-angle orientation of S_k's
gradient (central differences), lightly smoothed (the structure tensor's
orientation: an edge and its opposite side count alike; |.| is the norm
of the smoothed vector).  All are invariant to translation and to rotations by multiples of
90 degrees, and differentiable in the maps (so in the image, through the
network that made them).  Features: [B, K + 2 * len(radii) * K^2].

The pseudo-counts ``k_a`` (``AREA_PRIOR``: 4 px of a 64x64 image, as if
spread evenly: an absent class has its contacts at the chance level a_j)
and ``k_o`` (``EDGE_PRIOR``, below the edge mass of the pairs of classes
that meet in Aerial2D's target) bound the ratios' gradients once a class
has all but vanished: a car whose probability fades to 1e-4 (a shrunken
car the network no longer finds) gave 1,370x the gradient of a present
one with eps = 1e-6 alone, 7.5x with them
(tests/features/test_relations.py).  Between, the alignment ratio, being
scale-free in its maps, still grows as 1 / fade (90x at 1e-2).  An MMD
stage whose cars shrank away diverged with eps alone: every object at the
edge of its range, MMD^2 ten times the prior's (``mmd/grad_norm`` in
TensorBoard; README, Aerial2D).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

EPS = 1e-6
# Pseudo-counts of the ratios (module docstring): area, in image fractions;
# edge mass, in mean |O_i| |G_r O_j| (car-road 6e-5 to 2e-4, car-grass 1e-5
# to 6e-5 in Aerial2D's scenes, on their label maps).
AREA_PRIOR = 1e-3
EDGE_PRIOR = 1e-5


def blur_matrix(n: int, sigma: float) -> np.ndarray:
  """[n, n] Gaussian blur of standard deviation ``sigma`` along an axis of
  length n, truncated at 3 sigma and zero outside the axis (a convolution
  with 'SAME' zero padding, as a matrix)."""
  half = max(1, int(np.ceil(3.0 * sigma)))
  t = np.arange(-half, half + 1, dtype=np.float64)
  g = np.exp(-0.5 * (t / sigma) ** 2)
  g /= g.sum()
  i = np.arange(n)
  d = i[None, :] - i[:, None]  # [out, in]
  return np.where(np.abs(d) <= half, g[np.clip(d + half, 0, 2 * half)],
                  0.0).astype(np.float32)


def blur(maps: jax.Array, sigma: float) -> jax.Array:
  """[B, H, W, F] -> the same, each map convolved with a separable Gaussian
  of standard deviation ``sigma`` px (zero outside the image).  Two
  matrix products: XLA's CPU backend runs the equivalent per-channel
  (grouped) convolution many times slower."""
  h, w = maps.shape[1:3]
  x = jnp.einsum("bhwf,vw->bhvf", maps, jnp.asarray(blur_matrix(w, sigma)))
  return jnp.einsum("bhwf,vh->bvwf", x, jnp.asarray(blur_matrix(h, sigma)))


def orientation(maps: jax.Array) -> jax.Array:
  """Double-angle gradient orientation of each map: [B, H, W, F, 2]."""
  p = jnp.pad(maps, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
  gx = 0.5 * (p[:, 1:-1, 2:] - p[:, 1:-1, :-2])
  gy = 0.5 * (p[:, 2:, 1:-1] - p[:, :-2, 1:-1])
  return jnp.stack([gx * gx - gy * gy, 2.0 * gx * gy], -1)


def _norm(v: jax.Array) -> jax.Array:
  """|v| over the last axis, with a finite gradient at 0."""
  return jnp.sqrt(jnp.sum(v * v, -1) + EPS * EPS)


def relation_stats(maps: jax.Array, radii: Sequence[float] = (2.0, 4.0, 8.0)
                   ) -> jax.Array:
  """[B, H, W, K] smooth maps -> [B, K + 2 * len(radii) * K * K] area,
  contact and alignment statistics (module docstring)."""
  if maps.ndim != 4:
    raise ValueError(f"relation_stats needs maps [B, H, W, K], got "
                     f"{maps.shape}")
  if not radii or min(radii) <= 0:
    raise ValueError(f"radii must be positive, got {tuple(radii)}")
  b, h, w, k = maps.shape
  area = maps.mean((1, 2))  # [B, K]
  o = orientation(maps)
  # The structure tensor's smoothing: opposite sides of a thin shape agree.
  o = blur(o.reshape(b, h, w, 2 * k), 1.0).reshape(b, h, w, k, 2)
  mag = _norm(o)
  feats = [area]
  for r in radii:
    near = blur(maps, r)  # [B, H, W, K]
    contact = jnp.einsum("bhwi,bhwj->bij", maps, near) / (h * w)
    feats.append(((contact + AREA_PRIOR * area[:, None, :])
                  / (area[:, :, None] + AREA_PRIOR)).reshape(b, k * k))
    o_near = blur(o.reshape(b, h, w, 2 * k), r).reshape(b, h, w, k, 2)
    dot = jnp.einsum("bhwic,bhwjc->bij", o, o_near)
    norm = jnp.einsum("bhwi,bhwj->bij", mag,
                      _norm(o_near))
    feats.append((dot / (norm + EDGE_PRIOR)).reshape(b, k * k))
  return jnp.concatenate(feats, -1)
