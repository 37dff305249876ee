"""Local-statistics features: invariant to where things are, sensitive to
what is next to what."""

import jax.numpy as jnp
import numpy as np

from metasim_jax import features
from metasim_jax.features import local_stats


def _scene(obj_at, background=(0.2, 0.6, 0.2), patch=None):
  img = np.ones((1, 32, 32, 3), np.float32) * np.array(background)
  y, x = obj_at
  img[0, y:y + 4, x:x + 4] = (0.9, 0.1, 0.1)
  if patch is not None:  # a grey area the object may sit on
    img[0, patch[0]:patch[1], :] = (0.4, 0.4, 0.4)
  return jnp.asarray(img)


def test_translation_invariant_away_from_borders():
  a = local_stats.local_stats(_scene((8, 8)), levels=2, num_filters=8)
  b = local_stats.local_stats(_scene((16, 20)), levels=2, num_filters=8)
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_sees_what_an_object_sits_on():
  # Same object, same grey band; on the band vs on the green.
  on = local_stats.local_stats(_scene((14, 14), patch=(10, 22)))
  off = local_stats.local_stats(_scene((2, 14), patch=(10, 22)))
  assert float(jnp.abs(on - off).max()) > 1e-2


def test_registry_shape_and_determinism():
  params, fn = features.create("local_stats", levels=3, num_filters=16)
  x = jnp.zeros((2, 32, 32, 3)) + 0.5
  assert fn(params, x).shape == (2, 3 * 2 * 16)
  w1, _ = local_stats.random_filters(3, 16, 3, seed=0)
  w2, _ = local_stats.random_filters(3, 16, 3, seed=0)
  np.testing.assert_array_equal(w1, w2)


def test_a_grid_sees_where_an_object_is():
  """Pooled over a 2 x 2 grid, the same object high or low in the image
  differs (a driving camera's horizon, a car's distance); the cells' mean
  is the whole-image pooling."""
  kw = dict(levels=1, num_filters=8, size=3)
  high = local_stats.local_stats(_scene((4, 14)), grid=(2, 2), **kw)
  low = local_stats.local_stats(_scene((22, 14)), grid=(2, 2), **kw)
  assert high.shape == (1, 2 * 8 * 4)
  assert float(jnp.abs(high - low).max()) > 1e-2
  whole = local_stats.local_stats(_scene((4, 14)), **kw)
  cells = np.asarray(high[0, :32]).reshape(4, 8)  # the means, per cell
  np.testing.assert_allclose(cells.mean(0), whole[0, :8], rtol=1e-5)


def test_a_grid_larger_than_the_image_is_a_clear_error():
  with np.testing.assert_raises_regex(ValueError, "larger image"):
    local_stats.local_stats(_scene((4, 4)), levels=3, size=5, grid=(8, 8))
