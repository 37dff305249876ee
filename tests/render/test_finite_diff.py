import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metasim_jax.grammar import sample
from metasim_jax.render import Canvas, finite_difference, render_image
from metasim_jax.render import with_gradient
from metasim_jax.types import TexturePool


def _smooth_pool(size=28):
  """A wide, anisotropic blob: bilinear sampling of it is nearly C^1."""
  ys, xs = np.mgrid[:size, :size] + 0.5
  c = size / 2
  blob = np.exp(-((xs - c) ** 2 / 50.0 + (ys - c - 2) ** 2 / 18.0))
  blob = blob.astype(np.float32) * 0.9
  tex = np.stack([blob, blob], -1)
  # One copy per digit class of the test grammar (3 classes).
  return TexturePool.create(np.stack([tex] * 3), np.arange(3), 3)


@pytest.fixture
def setup(grammar):
  pools = {"digits": _smooth_pool()}
  s = sample(jax.random.key(0), grammar, 6, pools)
  s = s.replace(attrs=s.attrs.at[:, :, grammar.col("texture")].set(0.0))
  fn = lambda attrs, mask: render_image(attrs, mask, grammar, pools,
                                        Canvas(32, 32))
  # A smooth upstream gradient (as from blurred features): with white noise
  # the texel-crossing kinks of bilinear sampling would dominate.
  ys, xs = np.mgrid[:32, :32] / 32.0
  phase = np.arange(6)[:, None, None]
  w = np.cos(3 * xs + phase) + np.sin(2 * ys - phase)
  return s, fn, jnp.asarray(w[..., None], jnp.float32)


def test_finite_differences_match_autodiff_on_a_smooth_image(grammar, setup):
  s, fn, w = setup
  steps = np.where(grammar.fd_step > 0, 1e-2, 0.0)
  loss = lambda f: lambda a: jnp.sum(w * f(a, s.node_mask))
  exact = jax.grad(loss(fn))(s.attrs)
  fd = jax.jit(jax.grad(loss(finite_difference(fn, steps))))(s.attrs)
  mutable = grammar.fd_step > 0
  assert float(jnp.abs(exact[:, mutable]).max()) > 1.0  # a real gradient
  np.testing.assert_allclose(fd[:, mutable], exact[:, mutable], rtol=0.02,
                             atol=0.02 * float(jnp.abs(exact).max()))
  np.testing.assert_array_equal(fd[:, ~mutable], 0.0)


def test_grammar_steps_are_close_too(grammar, setup):
  s, fn, w = setup
  loss = lambda f: lambda a: jnp.sum(w * f(a, s.node_mask))
  exact = jax.grad(loss(fn))(s.attrs)
  fd = jax.grad(loss(with_gradient(fn, grammar.fd_step, "finite_diff")))(
      s.attrs)
  mutable = grammar.fd_step > 0
  err = jnp.abs(fd[:, mutable] - exact[:, mutable]).max()
  assert float(err) < 0.1 * float(jnp.abs(exact[:, mutable]).max())


def test_gradient_is_per_scene(grammar, setup):
  """The upstream gradient of one scene never leaks into another."""
  s, fn, w = setup
  w = w.at[1:].set(0.0)
  f = finite_difference(fn, grammar.fd_step)
  g = jax.grad(lambda a: jnp.sum(w * f(a, s.node_mask)))(s.attrs)
  assert float(jnp.abs(g[0]).max()) > 0
  np.testing.assert_array_equal(g[1:], 0.0)


def test_unknown_mode(grammar, setup):
  _, fn, _ = setup
  with pytest.raises(ValueError, match="finite_diff"):
    with_gradient(fn, grammar.fd_step, "spsa")
