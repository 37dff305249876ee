import jax
import jax.numpy as jnp
import numpy as np

from metasim_jax.grammar import sample
from metasim_jax.scene_graph import encoding, to_graphs_tuple


def test_round_trip(grammar, pools):
  s = sample(jax.random.key(0), grammar, 64, pools)
  feats = encoding.encode(s.attrs, grammar)
  assert feats.shape == (64, grammar.num_slots,
                         encoding.layout(grammar).feature_dim)
  back = encoding.decode(feats, s.attrs, grammar)
  np.testing.assert_allclose(back, s.attrs, atol=2e-4)


def test_angles_have_no_seam(grammar, pools):
  s = sample(jax.random.key(0), grammar, 2, pools)
  j, d = grammar.col("yaw"), grammar.slot("scene/digit[0]")
  a = jnp.stack([s.attrs[0], s.attrs[0]])
  a = a.at[:, d, j].set(jnp.array([179.9, -179.9]))
  f = encoding.encode(a, grammar)
  # +-179.9 degrees are 0.2 degrees apart, so their encodings are close.
  assert float(jnp.abs(f[0, d] - f[1, d]).max()) < 0.01
  # A naive (x - low) / (high - low) code would put them at 0 and 1.


def test_zero_head_is_identity(grammar, pools):
  s = sample(jax.random.key(1), grammar, 8, pools)
  head = jnp.zeros((8, grammar.num_slots, encoding.layout(grammar).head_dim))
  new, logits = encoding.apply_head(head, s.attrs, grammar)
  np.testing.assert_allclose(new, s.attrs, atol=1e-4)
  assert not logits  # no mutable categorical attribute here


def test_graphs_tuple_static_shapes(grammar, pools):
  s = sample(jax.random.key(0), grammar, 5, pools)
  g = to_graphs_tuple(s, grammar)
  n = grammar.num_slots
  assert g.nodes["features"].shape[0] == 5 * n
  assert g.senders.shape == (5 * 2,)  # two edges per scene
  assert int(g.receivers.max()) < 5 * n
  np.testing.assert_array_equal(g.n_node, [n] * 5)
