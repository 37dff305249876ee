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


def test_contract_angle_keeps_the_circle_whole():
  """The Moebius contraction: identity at s = 1, about s * deg for small
  angles, continuous and increasing round the circle (no cut at 180), and
  the uniform distribution goes to the wrapped Cauchy, whose mean
  resultant length is (1 - s) / (1 + s)."""
  deg = jnp.linspace(-180.0, 180.0, 3601)[:-1]
  np.testing.assert_allclose(encoding.contract_angle(deg, 1.0), deg,
                             atol=1e-3)
  for s in (0.1, 0.5, 2.0):
    out = np.asarray(encoding.contract_angle(deg, s))
    small = np.abs(deg) < 5.0
    np.testing.assert_allclose(out[small], s * deg[small], rtol=0.02,
                               atol=1e-3)
    assert (np.diff(out) > 0).all()  # increasing, one turn, no seam
    r = np.deg2rad(out)
    resultant = np.hypot(np.cos(r).mean(), np.sin(r).mean())
    np.testing.assert_allclose(resultant, abs(1 - s) / (1 + s), atol=1e-3)
