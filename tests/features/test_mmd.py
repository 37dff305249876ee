import itertools

import jax
import jax.numpy as jnp
import numpy as np

from metasim_jax.features import MMDTarget, kid, mmd2, polynomial_mmd2
from metasim_jax.features.pyramid import pyramid


def _brute_force_unbiased(x, y, bws):
  def k(a, b):
    d2 = np.sum((a - b) ** 2)
    return np.mean([np.exp(-d2 / (2 * s * s)) for s in bws])
  n, m = len(x), len(y)
  xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(n), 2))
  yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2))
  xy = sum(k(a, b) for a in x for b in y)
  return xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2 * xy / (n * m)


def test_unbiased_matches_brute_force():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(7, 3)).astype(np.float32)
  y = rng.normal(0.5, 1.2, size=(9, 3)).astype(np.float32)
  bws = np.array([0.5, 1.0, 3.0], np.float32)
  ref = _brute_force_unbiased(x.astype(np.float64), y.astype(np.float64), bws)
  np.testing.assert_allclose(mmd2(x, y, bws), ref, rtol=1e-4, atol=1e-6)
  # The cached-constant form equals the brute force too.
  t = MMDTarget.create(y, (1.0, 2.0))
  ref_t = _brute_force_unbiased(x.astype(np.float64), y.astype(np.float64),
                                np.asarray(t.bandwidths, np.float64))
  np.testing.assert_allclose(t.mmd2(jnp.asarray(x)), ref_t, rtol=1e-4,
                             atol=1e-6)


def test_identical_sets_and_symmetry():
  x = jax.random.normal(jax.random.key(0), (20, 4))
  y = jax.random.normal(jax.random.key(1), (25, 4))
  bws = jnp.array([1.0, 2.0])
  assert abs(float(mmd2(x, x, bws, unbiased=False))) < 1e-6
  np.testing.assert_allclose(mmd2(x, y, bws), mmd2(y, x, bws), atol=1e-6)


def test_grows_with_a_shift():
  y = jax.random.normal(jax.random.key(0), (200, 4))
  target = MMDTarget.create(y)
  x = jax.random.normal(jax.random.key(1), (200, 4))
  vals = [float(target.mmd2(x + s)) for s in (0.0, 0.5, 1.0, 2.0)]
  assert abs(vals[0]) < 0.01
  assert vals == sorted(vals) and vals[-1] > 10 * abs(vals[0])


def test_kid_against_numpy():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(30, 6)).astype(np.float32)
  y = rng.normal(0.3, 1.0, size=(40, 6)).astype(np.float32)

  def ref(a, b):  # an independent float64 computation
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = a.shape[1]
    k = lambda u, v: (u @ v.T / d + 1) ** 3
    n, m = len(a), len(b)
    kxx, kyy = k(a, a), k(b, b)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1))
            + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * k(a, b).mean())

  np.testing.assert_allclose(polynomial_mmd2(x, y), ref(x, y), rtol=1e-4)
  # With subsets as large as the smaller set, each subset of x is all of x.
  mean, std = kid(jax.random.key(0), x, y, num_subsets=5, subset_size=30)
  perms = [np.asarray(jax.random.permutation(k, 40))[:30] for k in
           [jax.random.split(kk)[1] for kk in
            jax.random.split(jax.random.key(0), 5)]]
  expected = [ref(x, y[p]) for p in perms]
  np.testing.assert_allclose(mean, np.mean(expected), rtol=1e-4)
  np.testing.assert_allclose(std, np.std(expected), rtol=1e-3, atol=1e-7)


def test_pyramid_levels_weigh_the_same():
  img = jax.random.uniform(jax.random.key(0), (3, 32, 32, 1))
  f = pyramid(img, levels=4)
  assert f.shape == (3, 32 * 32 + 16 * 16 + 8 * 8 + 4 * 4)
  assert bool(jnp.isfinite(f).all())


def test_blur_matches_a_same_convolution():
  from metasim_jax.features.pyramid import _gaussian_taps, blur
  img = jax.random.uniform(jax.random.key(0), (2, 12, 10, 1))
  taps = jnp.asarray(_gaussian_taps(1.5))
  ref = img
  for shape in ((len(taps), 1), (1, len(taps))):
    ref = jax.lax.conv_general_dilated(
        ref, taps.reshape(shape + (1, 1)), (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(blur(img, 1.5), ref, atol=1e-5)
