import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metasim_jax.grammar import compile_grammar, sample
from metasim_jax.render import Canvas, render, semantic_names
from metasim_jax.render.raster2d import world_transforms
from metasim_jax.types import SceneGraph, TexturePool
from tests.conftest import digit_grammar_dict


def _scene(grammar, x, y, yaw, tex=0, scale=1.0):
  a = np.zeros((1, grammar.num_slots, grammar.num_attrs), np.float32)
  d = grammar.slot("scene/digit[0]")
  for name, v in (("x", x), ("y", y), ("yaw", yaw), ("texture", tex),
                  ("scale", scale)):
    a[0, d, grammar.col(name)] = v
  return SceneGraph(jnp.asarray(a), jnp.ones((1, grammar.num_slots), bool))


def _asym_pool(size=8):
  grey = np.zeros((size, size), np.float32)
  grey[1:3, 1:6] = 1.0   # an "L": bar on top ...
  grey[1:7, 1:3] = 0.6   # ... and a leg on the left
  return TexturePool.create(np.stack([grey, grey], -1)[None], np.zeros(1),
                            num_labels=1), grey


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotation_by_90_matches_rot90(grammar, k):
  pool, grey = _asym_pool()
  s = _scene(grammar, 8.0, 8.0, 90.0 * k)
  img = render(s, grammar, {"digits": pool}, Canvas(16, 16)).image[0, ..., 0]
  expected = np.zeros((16, 16), np.float32)
  expected[4:12, 4:12] = np.rot90(grey, k)
  np.testing.assert_allclose(img, expected, atol=1e-4)


def test_unrotated_texture_is_pasted_exactly(grammar):
  pool, grey = _asym_pool()
  img = render(_scene(grammar, 5.0, 9.0, 0.0), grammar, {"digits": pool},
               Canvas(16, 16)).image[0, ..., 0]
  expected = np.zeros((16, 16), np.float32)
  expected[5:13, 1:9] = grey
  np.testing.assert_allclose(img, expected, atol=1e-5)


def test_one_pixel_square_known_mask(grammar):
  one = np.ones((1, 1), np.float32)
  pool = TexturePool.create(np.stack([one, one], -1)[None], np.zeros(1), 1)
  r = render(_scene(grammar, 2.5, 1.5, 0.0), grammar, {"digits": pool},
             Canvas(4, 4))
  expected = np.zeros((4, 4))
  expected[1, 2] = 1.0
  np.testing.assert_allclose(r.image[0, ..., 0], expected, atol=1e-6)
  sem = semantic_names(grammar)
  assert sem == ("none", "background", "digit")
  expected_sem = np.full((4, 4), 1)
  expected_sem[1, 2] = 2
  np.testing.assert_array_equal(r.semantic[0], expected_sem)
  np.testing.assert_allclose(r.boxes[0, grammar.slot("scene/digit[0]")],
                             [2, 1, 3, 2], atol=1e-5)


def test_subpixel_shift_is_bilinear(grammar):
  one = np.ones((1, 1), np.float32)
  pool = TexturePool.create(np.stack([one, one], -1)[None], np.zeros(1), 1)
  img = render(_scene(grammar, 2.75, 1.5, 0.0), grammar, {"digits": pool},
               Canvas(4, 4)).image[0, ..., 0]
  np.testing.assert_allclose(img[1, 2:4], [0.75, 0.25], atol=1e-6)


def test_translation_moves_the_box(grammar):
  pool, _ = _asym_pool()
  d = grammar.slot("scene/digit[0]")
  b0 = render(_scene(grammar, 8.0, 8.0, 0.0), grammar, {"digits": pool},
              Canvas(24, 24)).boxes[0, d]
  b1 = render(_scene(grammar, 11.0, 6.5, 0.0), grammar, {"digits": pool},
              Canvas(24, 24)).boxes[0, d]
  np.testing.assert_allclose(b1 - b0, [3.0, -1.5, 3.0, -1.5], atol=1e-5)
  # The box is the texture's content (the L), not the whole texture.
  np.testing.assert_allclose(b0, [4 + 1, 4 + 1, 4 + 6, 4 + 7], atol=1e-5)


def test_children_compose_with_their_parent():
  g = digit_grammar_dict()
  g["classes"]["scene"]["attributes"] = {
      "x": {"kind": "continuous", "range": [0, 32],
            "dist": {"type": "deterministic", "value": 10.0}},
      "y": {"kind": "continuous", "range": [0, 32],
            "dist": {"type": "deterministic", "value": 20.0}},
      "yaw": {"kind": "angle", "dist": {"type": "deterministic",
                                        "value": 90.0}}}
  grammar = compile_grammar(g)
  a = np.zeros((1, grammar.num_slots, grammar.num_attrs), np.float32)
  a[0, 0, [grammar.col("x"), grammar.col("y"), grammar.col("yaw")]] = [
      10, 20, 90]
  d = grammar.slot("scene/digit[0]")
  a[0, d, [grammar.col("x"), grammar.col("y"), grammar.col("scale")]] = [
      4, 0, 1]
  m, t = world_transforms(jnp.asarray(a), grammar)
  # (4, 0) in a frame rotated 90 degrees counter-clockwise on screen lies
  # 4 pixels up (y down) from the parent's origin.
  np.testing.assert_allclose(t[0, d], [10, 16], atol=1e-5)
  np.testing.assert_allclose(m[0, d], [[0, 1], [-1, 0]], atol=1e-6)


def test_occlusion_order_and_instances():
  g = digit_grammar_dict()
  g["classes"]["scene"]["children"] = [["background", 1], ["digit", 2]]
  grammar = compile_grammar(g)
  one = np.ones((4, 4), np.float32)
  pool = TexturePool.create(
      np.stack([np.stack([one * 0.3, one], -1), np.stack([one * 0.9, one],
                                                         -1)]),
      np.zeros(2), 1)
  a = np.zeros((1, grammar.num_slots, grammar.num_attrs), np.float32)
  for slot, x, tex in (("scene/digit[0]", 4.0, 0), ("scene/digit[1]", 6.0,
                                                    1)):
    i = grammar.slot(slot)
    a[0, i, [grammar.col("x"), grammar.col("y"), grammar.col("texture"),
             grammar.col("scale")]] = [x, 4.0, tex, 1.0]
  r = render(SceneGraph(jnp.asarray(a), jnp.ones((1, grammar.num_slots),
                                                 bool)),
             grammar, {"digits": pool}, Canvas(8, 10))
  img, inst = np.asarray(r.image[0, ..., 0]), np.asarray(r.instance[0])
  assert img[3, 3] == pytest.approx(0.3) and img[3, 5] == pytest.approx(0.9)
  assert inst[3, 3] == grammar.slot("scene/digit[0]")
  assert inst[3, 5] == grammar.slot("scene/digit[1]")  # later sibling on top
  assert inst[0, 9] == grammar.slot("scene/background[0]")


def test_masked_slot_is_not_drawn(grammar, pools):
  s = sample(jax.random.key(0), grammar, 2, pools)
  s = s.replace(node_mask=s.node_mask.at[:, grammar.slot("scene/digit[0]")
                                         ].set(False))
  r = render(s, grammar, pools, Canvas(16, 16))
  np.testing.assert_array_equal(r.image, 0.0)
  assert not bool(r.box_mask[:, grammar.slot("scene/digit[0]")].any())
