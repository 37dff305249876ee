"""Offline default features: a Gaussian pyramid of the image.

No weights, nothing to download, and smooth in an object's location and
rotation: level ``l`` is the image blurred with a Gaussian of ``sigma * 2^l``
pixels and subsampled by ``2^l``.  Fine levels see shape, coarse levels see
where the mass is, so MMD on these features has a usable slope even when a
generated object and the target's do not overlap (see
``benchmarks/mmd_landscape.py``).  Each level is scaled by
``1 / sqrt(its size)`` so every level weighs the same in a distance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _gaussian_taps(sigma: float) -> np.ndarray:
  radius = max(1, int(np.ceil(3 * sigma)))
  x = np.arange(-radius, radius + 1, dtype=np.float32)
  k = np.exp(-0.5 * (x / sigma) ** 2)
  return (k / k.sum()).astype(np.float32)


def _blur_matrix(n: int, sigma: float) -> np.ndarray:
  """[n, n] banded matrix: Gaussian filtering of a length-n signal, zero
  padding (the same taps as a 'SAME' convolution)."""
  taps = _gaussian_taps(sigma)
  r = len(taps) // 2
  m = np.zeros((n, n), np.float32)
  for i in range(n):
    lo, hi = max(0, i - r), min(n, i + r + 1)
    m[i, lo:hi] = taps[lo - i + r:hi - i + r]
  return m


def blur(images: jax.Array, sigma: float) -> jax.Array:
  """Separable Gaussian blur of [B, H, W, C] with zero padding.

  Written as two small matmuls: XLA's CPU convolutions are several times
  slower for this (benchmarks/mmd_step.py).
  """
  _, h, w, _ = images.shape
  mh = jnp.asarray(_blur_matrix(h, sigma))
  mw = jnp.asarray(_blur_matrix(w, sigma))
  return jnp.einsum("ij,bjkc,lk->bilc", mh, images, mw)


def pyramid(images: jax.Array, levels: int = 4, sigma: float = 1.0
            ) -> jax.Array:
  """[B, H, W, C] in [0, 1] -> [B, D] multi-scale blurred pixels."""
  feats = []
  x = images
  for level in range(levels):
    if level:
      b, h, w, c = x.shape
      if h < 2 or w < 2:
        raise ValueError(f"{levels} pyramid levels need an image larger "
                         f"than {images.shape[1:3]}")
      x = x[:, :h // 2 * 2, :w // 2 * 2].reshape(
          b, h // 2, 2, w // 2, 2, c).mean((2, 4))
    y = blur(x, sigma).reshape(x.shape[0], -1)
    feats.append(y / np.sqrt(y.shape[-1]))
  return jnp.concatenate(feats, -1)
