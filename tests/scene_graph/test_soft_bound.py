"""Continuous outputs stay in range without dead gradients at the edges."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metasim_jax.scene_graph import encoding
from metasim_jax.transformer import losses


def test_identity_inside_and_strictly_inside_the_range():
  u = jnp.linspace(-0.95, 0.95, 39)
  np.testing.assert_array_equal(encoding.soft_bound(u), u)
  far = encoding.soft_bound(jnp.array([-50.0, -1.0, 1.0, 50.0]))
  assert bool((jnp.abs(far) < 1.0).all())


@pytest.mark.parametrize("edge", [1.0, -1.0])
@pytest.mark.parametrize("beyond", [0.0, 0.05, 0.5, 3.0])
def test_gradient_at_and_beyond_the_edge_points_back_inside(edge, beyond):
  u = edge * (1.0 + beyond)
  # A loss that wants the value back in the middle of the range.
  g = jax.grad(lambda v: encoding.soft_bound(v) ** 2)(u)
  assert g != 0.0
  assert np.sign(g) == np.sign(edge)  # descent moves u towards 0


def test_transformer_output_past_the_edge_still_gets_a_gradient(grammar,
                                                                pools):
  """The head's change of x pushed far past the range's top: a loss on
  the new x still moves it (a hard clip gave exactly 0)."""
  from metasim_jax.grammar import sample
  scene = sample(jax.random.key(0), grammar, 4, pools)
  lay = encoding.layout(grammar)
  head = jnp.zeros((4, grammar.num_slots, lay.head_dim))
  jx = grammar.col("x")
  d = grammar.slot("scene/digit[0]")

  def new_x(push):
    h = head.at[:, d, lay.head[jx][0]].set(push)
    attrs, _ = encoding.apply_head(h, scene.attrs, grammar)
    return attrs[:, d, jx]

  top = float(grammar.high[d, jx])
  x = new_x(3.0)  # three half-ranges up: far outside without a bound
  assert bool((x < top).all()) and bool((x > top - 1.0).all())
  g = jax.grad(lambda p: jnp.sum((new_x(p) - top / 2) ** 2))(3.0)
  assert g > 0.0  # gradient descent lowers the push: back inside


def test_reinforce_mean_past_the_edge_gets_a_gradient(grammar, pools):
  """REINFORCE's log-probability moves a mean that sits past the edge."""
  from metasim_jax.grammar import sample
  scene = sample(jax.random.key(0), grammar, 4, pools)
  sigma = losses.sigma_table(grammar, {"x": 1.0})
  lay = encoding.layout(grammar)
  jx, d = grammar.col("x"), grammar.slot("scene/digit[0]")
  drawn = scene.attrs.at[:, d, jx].set(float(grammar.high[d, jx]) - 4.0)

  def logp(push):
    h = jnp.zeros((4, grammar.num_slots, lay.head_dim))
    h = h.at[:, d, lay.head[jx][0]].set(push)
    attrs, _ = encoding.apply_head(h, scene.attrs, grammar)
    return jnp.sum(losses.gaussian_log_prob(drawn, scene.replace(attrs=attrs),
                                            sigma, grammar))

  g = jax.grad(logp)(3.0)
  assert g < 0.0  # the sample lies inside: log p rises as the push drops
