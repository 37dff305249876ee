import chex
import jax
import jax.numpy as jnp
import numpy as np

from metasim_jax import transformer
from metasim_jax.grammar import compile_grammar, sample
from metasim_jax.scene_graph import to_graphs_tuple
from tests.conftest import digit_grammar_dict


def _model(grammar, pools, seed=0, gain=50.0):
  s = sample(jax.random.key(seed), grammar, 4, pools)
  model = transformer.build(grammar, hidden=16)
  params = transformer.init(jax.random.key(seed + 1), model, grammar, s)
  # Large random head so every mutable attribute really changes.
  params = jax.tree.map(lambda x: x * gain, params)
  return s, model, params


def test_only_mutable_attributes_change(grammar, pools):
  s, model, params = _model(grammar, pools)
  new, _ = transformer.transform(params, model, grammar, s)
  changed = np.abs(np.asarray(new.attrs - s.attrs)) > 1e-3
  assert changed[:, grammar.mutable].all()
  np.testing.assert_array_equal(np.asarray(new.attrs)[:, ~grammar.mutable],
                                np.asarray(s.attrs)[:, ~grammar.mutable])
  np.testing.assert_array_equal(new.node_mask, s.node_mask)


def test_separate_top_down_bottom_up_and_self_weights(grammar, pools):
  s, model, params = _model(grammar, pools)
  layer = params["encoder_0"]
  assert set(layer) == {"self", "top_down", "bottom_up"}
  k = [layer[n]["kernel"] for n in ("self", "top_down", "bottom_up")]
  assert not np.allclose(k[0], k[1]) and not np.allclose(k[1], k[2])


def test_jit_and_eager_agree(grammar, pools):
  # A head 5x its initial size: at 50x an angle head reaches ~1e5 degrees
  # before the wrap to [-180, 180), where float32 rounding that differs
  # between fused (jit) and op-by-op code is whole degrees.
  s, model, params = _model(grammar, pools, gain=5.0)
  eager, _ = transformer.transform(params, model, grammar, s)
  jitted, _ = jax.jit(transformer.transform, static_argnums=(1, 2))(
      params, model, grammar, s)
  assert np.abs(np.asarray(eager.attrs - s.attrs)).max() > 10  # it moves
  chex.assert_trees_all_close(eager.attrs, jitted.attrs, atol=1e-3)


def test_inactive_slots_do_not_affect_active_nodes(pools):
  """Extra (masked) instances leave the outputs of real nodes unchanged."""
  g = digit_grammar_dict()
  g["classes"]["scene"]["children"] = [["background", 1], ["digit", [1, 3]]]
  grammar = compile_grammar(g)
  s = sample(jax.random.key(0), grammar, 4, pools)
  model = transformer.build(grammar, hidden=16)
  params = jax.tree.map(lambda x: x * 20.0,
                        transformer.init(jax.random.key(1), model, grammar, s))
  mask = s.node_mask.at[:, 3:].set(False)
  a = s.replace(node_mask=mask)
  # Change the attributes of the inactive slots: outputs of active ones stay.
  b = a.replace(attrs=a.attrs.at[:, 3:].add(7.0))
  out_a, _ = transformer.transform(params, model, grammar, a)
  out_b, _ = transformer.transform(params, model, grammar, b)
  np.testing.assert_allclose(out_a.attrs[:, :3], out_b.attrs[:, :3],
                             atol=1e-5)


def test_messages_flow_between_parent_and_child(grammar, pools):
  """Changing the parent's features changes the child's output."""
  s, model, params = _model(grammar, pools)
  g = to_graphs_tuple(s, grammar)
  out = model.apply({"params": params}, g)
  feats = g.nodes["features"].at[0].add(1.0)  # node 0 = scene root
  out2 = model.apply({"params": params},
                     g._replace(nodes={**g.nodes, "features": feats}))
  d = grammar.slot("scene/digit[0]")
  assert float(jnp.abs(out[d] - out2[d]).max()) > 0
  # ... but not a node of another scene in the batch.
  n = grammar.num_slots
  np.testing.assert_array_equal(out[n:], out2[n:])


def test_spread_scales_deviations_from_the_prior_centre(grammar, pools):
  """log_spread = log(1/2) with a zero head halves every mutable
  continuous value's distance to its prior centre, and contracts angles by
  the circle's Moebius map (halving small deviations); zero is the
  identity."""
  s = sample(jax.random.key(0), grammar, 64, pools)
  model = transformer.build(grammar, hidden=16, affine=True)
  params = transformer.init(jax.random.key(1), model, grammar, s)
  params = jax.tree.map(jnp.zeros_like, params)  # zero head, no affine
  same, _ = transformer.transform(params, model, grammar, s)
  np.testing.assert_allclose(same.attrs, s.attrs, atol=1e-4)
  params["log_spread"] = jnp.full_like(params["log_spread"], np.log(0.5))
  new, _ = transformer.transform(params, model, grammar, s)
  c = grammar.centre
  for j, kind in enumerate(grammar.attr_kinds):
    rows = grammar.mutable[:, j]
    if not rows.any() or kind not in ("continuous", "angle"):
      continue
    before = np.asarray(s.attrs)[:, rows, j] - c[rows, j]
    after = np.asarray(new.attrs)[:, rows, j] - c[rows, j]
    if kind == "angle":  # the circle's contraction: halving, for small ones
      before, after = ((d + 180.0) % 360.0 - 180.0 for d in (before, after))
      half = np.deg2rad(before) / 2
      want = np.rad2deg(2 * np.arctan2(0.5 * np.sin(half), np.cos(half)))
      np.testing.assert_allclose(after, want, rtol=1e-3, atol=1e-3)
      small = np.abs(before) < 20.0
      np.testing.assert_allclose(after[small], 0.5 * before[small], atol=0.1)
      continue
    inside = np.abs(before) < 0.9 * np.abs(  # away from the soft range edge
        np.where(before > 0, grammar.high[rows, j], grammar.low[rows, j])
        - c[rows, j])
    np.testing.assert_allclose(after[inside], 0.5 * before[inside],
                               rtol=1e-3, atol=1e-3)


def test_class_shift_moves_every_value_of_the_class(grammar, pools):
  """class_shift = 0.1 with zero spread and head: every value moves by 0.1
  of its prior's standard deviation (``Grammar.spread``; of half its range,
  or 18 degrees, where the prior is a constant)."""
  s = sample(jax.random.key(0), grammar, 32, pools)
  model = transformer.build(grammar, hidden=16, affine=True)
  params = transformer.init(jax.random.key(1), model, grammar, s)
  params = jax.tree.map(jnp.zeros_like, params)
  params["class_shift"] = jnp.full_like(params["class_shift"], 0.1)
  new, _ = transformer.transform(params, model, grammar, s)
  checked = 0
  for j, kind in enumerate(grammar.attr_kinds):
    rows = grammar.mutable[:, j]
    if not rows.any() or kind not in ("continuous", "angle"):
      continue
    moved = np.asarray(new.attrs)[:, rows, j] - np.asarray(s.attrs)[:, rows, j]
    std = grammar.spread[rows, j]
    if kind == "angle":
      want = np.where(std > 0, 0.1 * std, 18.0)
      np.testing.assert_allclose((moved + 180.0) % 360.0 - 180.0,
                                 np.broadcast_to(want, moved.shape), atol=1e-3)
    else:
      half = 0.5 * (grammar.high[rows, j] - grammar.low[rows, j])
      want = np.where(std > 0, 0.1 * std, 0.1 * half)
      inside = np.abs(np.asarray(s.attrs)[:, rows, j]
                      - grammar.centre[rows, j]) < 0.5 * half
      np.testing.assert_allclose(
          moved[inside], np.broadcast_to(want, moved.shape)[inside],
          rtol=1e-3, atol=1e-3)
    checked += int(rows.sum())
  assert checked
