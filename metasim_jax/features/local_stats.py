"""Translation-invariant local statistics: pooled random-filter responses.

For scenes whose layout varies a lot (Aerial2D: the road crosses the image
at any angle), blurred pixels (``pyramid``) mostly measure *where* things
are, and the distance between two images is dominated by the road's pose.
What distinguishes a realistic scene is *what is next to what*: car paint
next to asphalt rather than grass.  These features capture that the way the
lower layers of a CNN do, without weights to download:

  for each pyramid level (2x average pooling per level):
    r = relu(conv(level, W) + b)      W: fixed random k x k x C x F filters
    features += [mean over space of r, sqrt(mean over space of r^2)]

The filters are drawn once from a fixed seed (deterministic), zero-mean per
filter so that flat colour areas respond through the bias only.  Spatial
pooling makes the features invariant to translation; the second moment keeps
rare local patterns (a few car pixels) from being averaged away.

``grid=(rows, cols)`` pools over each cell of a rows x cols grid instead of
the whole image, for scenes whose layout is meaningful (a driving camera:
the horizon's height, the road ahead and the cars' distance show in *which*
rows and columns a pattern appears); (1, 1) is the translation-invariant
form above.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from metasim_jax.features.blocks import pool_maps


def random_filters(channels: int, num: int, size: int, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
  """([size, size, C, F] zero-mean unit-norm filters, [F] biases)."""
  rng = np.random.default_rng(seed)
  w = rng.standard_normal((size, size, channels, num)).astype(np.float32)
  w -= w.mean((0, 1, 2), keepdims=True)
  w /= np.sqrt((w ** 2).sum((0, 1, 2), keepdims=True))
  b = rng.uniform(-0.1, 0.1, num).astype(np.float32)
  return w, b


def local_stats(images: jax.Array, levels: int = 3, num_filters: int = 32,
                size: int = 3, seed: int = 0,
                grid: tuple[int, int] = (1, 1)) -> jax.Array:
  """[B, H, W, C] in [0, 1] -> [B, levels * 2 * num_filters * rows * cols]
  (``grid`` = (rows, cols) pooling cells)."""
  rows, cols = grid
  if rows < 1 or cols < 1:
    raise ValueError(f"grid must be two counts >= 1, got {tuple(grid)}")
  w, b = random_filters(images.shape[-1], num_filters, size, seed)
  feats = []
  x = images
  for level in range(levels):
    if level:
      bb, h, ww, c = x.shape
      x = x[:, :h // 2 * 2, :ww // 2 * 2].reshape(
          bb, h // 2, 2, ww // 2, 2, c).mean((2, 4))
    if x.shape[1] < size + rows - 1 or x.shape[2] < size + cols - 1:
      raise ValueError(
          f"{levels} levels of {size}x{size} filters over a {rows}x{cols} "
          f"grid need a larger image than {images.shape[1:3]} (level "
          f"{level} is {x.shape[1:3]})")
    r = jax.nn.relu(jax.lax.conv_general_dilated(
        x, jnp.asarray(w), (1, 1), "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC")) + b)
    feats.append(pool_maps(r, grid))
    feats.append(jnp.sqrt(pool_maps(r * r, grid) + 1e-8))
  return jnp.concatenate(feats, -1)
