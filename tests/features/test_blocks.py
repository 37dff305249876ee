"""Feature blocks: grid pooling and balancing by median distance."""

import jax.numpy as jnp
import numpy as np
import pytest

from metasim_jax.features import blocks


def test_pool_maps_cell_means():
  maps = np.arange(2 * 4 * 6 * 1, dtype=np.float32).reshape(2, 4, 6, 1)
  out = np.asarray(blocks.pool_maps(jnp.asarray(maps), (2, 3)))
  assert out.shape == (2, 6)
  # Cell (0, 0) of image 0: rows 0-1, columns 0-1.
  assert out[0, 0] == pytest.approx(maps[0, :2, :2].mean())
  assert out[1, 5] == pytest.approx(maps[1, 2:, 4:].mean())
  vec = jnp.ones((3, 5))
  assert blocks.pool_maps(vec, (4, 4)) is vec  # no space: as it is


def test_pool_maps_rejects_bad_grids():
  with pytest.raises(ValueError, match="does not fit"):
    blocks.pool_maps(jnp.zeros((1, 2, 2, 1)), (3, 1))
  with pytest.raises(ValueError, match=r"\[B, H, W, F\]"):
    blocks.pool_maps(jnp.zeros((1, 2, 2)), (1, 1))


def test_median_distance_by_hand():
  # Distances 3, 4, 5 between the three points: median 4.
  pts = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
  assert blocks.median_distance(pts) == pytest.approx(4.0)
  with pytest.raises(ValueError):
    blocks.median_distance(pts[:1])


def test_balanced_blocks_contribute_their_weights():
  rng = np.random.default_rng(0)
  real = jnp.asarray(rng.random((40, 3), np.float32))
  big = lambda p, x: 1000.0 * x * p  # large units
  small = lambda p, x: 1e-3 * x[:, :1] + p  # small units, one dimension
  params, fn = blocks.balanced([big, small], [2.0, 0.5], real, [1.0, 4.0])
  f = np.asarray(fn(params, real))
  assert f.shape == (40, 4)
  # Median distance of each block over the real set: sqrt(weight).
  assert blocks.median_distance(f[:, :3]) == pytest.approx(1.0, rel=1e-4)
  assert blocks.median_distance(f[:, 3:]) == pytest.approx(2.0, rel=1e-4)


def test_balanced_rejects_a_constant_block():
  with pytest.raises(ValueError, match="constant"):
    blocks.balanced([lambda p, x: x * 0.0], [None], jnp.ones((4, 2)))
  with pytest.raises(ValueError, match="weights"):
    blocks.balanced([lambda p, x: x], [None], jnp.ones((4, 2)), [-1.0])
