import jax
import numpy as np
import pytest

from metasim_jax.grammar import GrammarError, compile_grammar, sample
from tests.conftest import digit_grammar_dict


def test_same_key_same_scenes_bitwise(grammar, pools):
  a = sample(jax.random.key(3), grammar, 16, pools)
  b = sample(jax.random.key(3), grammar, 16, pools)
  c = sample(jax.random.key(4), grammar, 16, pools)
  np.testing.assert_array_equal(np.asarray(a.attrs), np.asarray(b.attrs))
  assert not np.array_equal(np.asarray(a.attrs), np.asarray(c.attrs))


def test_jit_and_eager_agree(grammar, pools):
  eager = sample(jax.random.key(0), grammar, 8, pools)
  jitted = jax.jit(sample, static_argnums=(1, 2))(jax.random.key(0), grammar,
                                                  8, pools)
  np.testing.assert_allclose(eager.attrs, jitted.attrs, rtol=1e-6)


def test_samples_follow_the_grammar(grammar, pools):
  s = sample(jax.random.key(0), grammar, 4000, pools)
  d = grammar.slot("scene/digit[0]")
  a = np.asarray(s.attrs[:, d])
  col = grammar.col
  assert abs(a[:, col("x")].mean() - 16) < 0.1
  assert abs(a[:, col("x")].std() - 1.0) < 0.05
  assert 14 <= a[:, col("y")].min() and a[:, col("y")].max() <= 18
  assert abs(a[:, col("yaw")].std() - 10) < 0.5
  np.testing.assert_array_equal(a[:, col("scale")], 1.0)
  # The texture is drawn from the digit's own class.
  labels = np.asarray(pools["digits"].labels)[a[:, col("texture")].astype(int)]
  np.testing.assert_array_equal(labels, a[:, col("class")])
  assert np.asarray(s.node_mask).all()


def test_variable_child_count_masks_slots(pools):
  g = digit_grammar_dict()
  g["classes"]["scene"]["children"] = [["background", 1], ["digit", [0, 3]]]
  grammar = compile_grammar(g)
  assert grammar.num_slots == 5  # scene, background, 3 digit slots
  s = sample(jax.random.key(0), grammar, 2000, pools)
  count = np.asarray(s.node_mask[:, 2:]).sum(1)
  assert set(np.unique(count)) == {0, 1, 2, 3}
  # Instances fill slots in order.
  m = np.asarray(s.node_mask[:, 2:])
  assert (m[:, 1] <= m[:, 0]).all() and (m[:, 2] <= m[:, 1]).all()


@pytest.mark.parametrize("path, value, field", [
    (("classes", "digit", "attributes", "x", "range"), [5, 1],
     "classes.digit.attributes.x.range"),
    (("classes", "digit", "attributes", "x", "kind"), "vector",
     "classes.digit.attributes.x.kind"),
    (("classes", "digit", "attributes", "yaw", "dist", "std"), -1.0,
     "classes.digit.attributes.yaw.dist.std"),
    (("classes", "digit", "attributes", "x", "dist", "type"), "poisson",
     "classes.digit.attributes.x.dist.type"),
    (("classes", "digit", "attributes", "x", "dist", "mean"), 99.0,
     "classes.digit.attributes.x.dist.mean"),
    (("classes", "digit", "attributes", "class", "dist", "probs"), [0.5, 0.6,
                                                                    0.1],
     "classes.digit.attributes.class.dist.probs"),
    (("classes", "scene", "children"), [["tree", 1]],
     "classes.scene.children[0]"),
    (("classes", "digit", "render"), "sprite", "classes.digit.render"),
    (("root",), "nothing", "root"),
    (("classes", "digit", "attributes", "x", "colour"), 1,
     "classes.digit.attributes.x.colour"),
])
def test_validation_error_names_the_field(path, value, field):
  g = digit_grammar_dict()
  node = g
  for k in path[:-1]:
    node = node[k]
  node[path[-1]] = value
  with pytest.raises(GrammarError, match=field.replace("[", r"\[").replace(
      "]", r"\]")):
    compile_grammar(g)


def test_recursive_grammar_is_rejected():
  g = digit_grammar_dict()
  g["classes"]["digit"]["children"] = [["scene", 1]]
  with pytest.raises(GrammarError, match="recursive"):
    compile_grammar(g)


def test_missing_pool_is_a_clear_error(grammar):
  with pytest.raises(KeyError, match="digits"):
    sample(jax.random.key(0), grammar, 2, {})


def test_replace_params_makes_a_target(grammar):
  target = grammar.replace_params(
      {"classes.digit.attributes.yaw.dist.mean": 90.0})
  j = target.col("yaw")
  d = target.slot("scene/digit[0]")
  assert target.p0[d, j] == 90.0 and grammar.p0[d, j] == 0.0
  with pytest.raises(GrammarError, match="nope"):
    grammar.replace_params({"classes.nope.x": 1})


def test_unreachable_class_is_rejected():
  g = digit_grammar_dict()
  g["classes"]["tree"] = {"render": "fill"}
  with pytest.raises(GrammarError, match="classes.tree"):
    compile_grammar(g)


def test_more_classes_than_pool_labels_is_an_error(pools):
  g = digit_grammar_dict()
  g["classes"]["digit"]["attributes"]["class"]["num"] = 5  # pool has 3
  with pytest.raises(ValueError, match="3 labels"):
    sample(jax.random.key(0), compile_grammar(g), 2, pools)
