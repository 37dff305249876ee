"""Object statistics of detection maps (features/objects.py): each object
counted once in the bin of its size, shape and row; bins at the target's
quantiles; gradients bounded as objects fade."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metasim_jax.features import objects


def _maps(objs, shape=(1, 5, 8)):
  """Detection maps [B, H, W, 3] with objects (b, row, col, p, log_h,
  log_aspect): channels p, p log_h, p log_aspect."""
  m = np.zeros(shape + (3,), np.float32)
  for b, r, c, p, lh, la in objs:
    m[b, r, c] = (p, p * lh, p * la)
  return jnp.asarray(m)


CENTRES = np.array([[1.0, 2.0], [0.0, 1.0], [0.0, 1.0]], np.float32)


def test_each_object_lands_in_its_bin():
  # A small, square object at the top; a large, wide one at the bottom.
  maps = _maps([(0, 0, 1, 1.0, 1.0, 0.0), (0, 4, 6, 1.0, 2.0, 1.0)])
  f = np.asarray(objects.object_stats(maps, CENTRES))[0]
  np.testing.assert_allclose(f[0], np.log(3.0), rtol=1e-5)  # 2 objects
  hist = f[1:].reshape(2, 2, 2) * (2 + objects.COUNT_PRIOR)
  want = np.zeros((2, 2, 2))
  want[0, 0, 0] = want[1, 1, 1] = 1.0
  # Soft assignment: most of each object's weight in its own bin (0.88
  # per value at a bin's centre, 0.88^3 over three).
  np.testing.assert_allclose([hist[0, 0, 0], hist[1, 1, 1]], 0.88 ** 3,
                             atol=0.01)
  np.testing.assert_allclose(hist.sum(), 2.0, rtol=1e-4)
  np.testing.assert_allclose(hist, want, atol=0.35)
  # Turned sideways (wider): the mass moves along the aspect axis only.
  wide = _maps([(0, 0, 1, 1.0, 1.0, 1.0), (0, 4, 6, 1.0, 2.0, 1.0)])
  hist = (np.asarray(objects.object_stats(wide, CENTRES))[0, 1:]
          .reshape(2, 2, 2) * (2 + objects.COUNT_PRIOR))
  assert hist[0, 1, 0] > 0.6 and hist[0, 0, 0] < 0.1


def test_centres_are_the_weighted_quantiles_of_the_objects():
  objs = [(0, r % 5, r, 1.0, float(r), 0.0) for r in range(8)]
  objs.append((0, 0, 0, 0.0, 100.0, 5.0))  # weight 0: ignored
  c = objects.centres(_maps(objs, (1, 5, 9)), 4)
  assert c.shape == (3, 4)
  np.testing.assert_allclose(c[0], [0.5, 2.5, 4.5, 6.5], atol=0.6)
  np.testing.assert_allclose(c[1], 0.0, atol=1e-3)
  with pytest.raises(ValueError, match="bins >= 2"):
    objects.centres(_maps(objs, (1, 5, 9)), 1)
  with pytest.raises(ValueError, match="finds nothing"):
    objects.centres(_maps([], (1, 5, 9)), 4)
  with pytest.raises(ValueError, match="detection maps"):
    objects.object_stats(jnp.zeros((2, 5)), CENTRES)


def test_gradient_stays_bounded_as_an_object_fades():
  def feats(p):
    m = jnp.zeros((1, 5, 8, 3)).at[0, 2, 3].set(
        jnp.stack([p, p * 1.5, p * 0.5]))
    return objects.object_stats(m, CENTRES).sum()

  g = [float(jax.grad(feats)(jnp.float32(p))) for p in (1.0, 1e-2, 1e-5)]
  assert all(np.isfinite(g)) and max(abs(x) for x in g) < 10, g
