"""The windowed rasterizer against the full-canvas reference it replaced.

On random scenes of Aerial2D (prior and target grammars) and of MNIST-like
digit grammars: images within 1e-5; semantic, instance maps and boxes
identical; autodiff and finite-difference gradients alike.  Scenes spread
every continuous attribute over its range widened by its finite-difference
step, so nodes reach past the canvas edges and the largest scale a window
is sized for.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import aerial as aerial_config
from experiments.configs import mnist as mnist_config
from metasim_jax.data import aerial
from metasim_jax.grammar import compile_grammar, sample
from metasim_jax.render import Canvas, raster2d, semantic_names
from metasim_jax.render import with_gradient
from metasim_jax.types import SceneGraph, TexturePool
from tests.conftest import digit_grammar_dict, random_pool
from tests.render import reference_raster2d as reference

SMALL = {"car": 8, "road": 2, "grass": 2, "tree": 4, "house": 4}
BATCH = 7  # odd: the sampling loop pads a scene


@pytest.fixture(scope="module", autouse=True)
def fast_compiles():
  """Compile in seconds: these tests compare numbers, not speed."""
  before = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", before)


def _aerial(which):
  with open(os.path.join(aerial_config.HERE, f"{which}.json")) as f:
    return compile_grammar(json.load(f))


def _digit_pool(seed=0, num=20, size=28):
  """Smooth random blobs of MNIST's size: (grey, alpha) textures."""
  rng = np.random.default_rng(seed)
  ys, xs = np.mgrid[:size, :size] + 0.5
  centres = rng.uniform(8, size - 8, (num, 2, 1, 1))
  blob = np.exp(-((xs - centres[:, 0]) ** 2 + (ys - centres[:, 1]) ** 2)
                / rng.uniform(10, 40, (num, 1, 1)))
  blob = (blob / blob.max((1, 2), keepdims=True)).astype(np.float32)
  return TexturePool.create(np.stack([blob, blob], -1), np.arange(num) % 10,
                            num_labels=10)


@pytest.fixture(scope="module")
def problems():
  """name -> (grammar, pools, canvas)."""
  aerial_pools = aerial.texture_pools(0, SMALL)
  digits = {"digits": _digit_pool()}
  return {
      "aerial_prior": (_aerial("prior"), aerial_pools, Canvas(64, 64, 3)),
      "aerial_target": (_aerial("target"), aerial_pools, Canvas(64, 64, 3)),
      "mnist32": (compile_grammar(mnist_config.digit_grammar(32, 16, 16, 0)),
                  digits, Canvas(32, 32)),
      "mnist64": (compile_grammar(mnist_config.digit_grammar(64, 16, 48,
                                                             90)),
                  digits, Canvas(64, 64)),
      # 8x8 textures with a scale attribute up to 2: windows of 26 px.
      "scaled": (compile_grammar(digit_grammar_dict(32)),
                 {"digits": random_pool(size=8)}, Canvas(32, 40)),
  }


def _spread(key, scene, grammar, drop=0.2):
  """Every continuous attribute uniform in [low - step, high + step] (step:
  its finite-difference step), angles uniform, some nodes dropped."""
  k_u, k_yaw, k_drop = jax.random.split(key, 3)
  lo = grammar.low - grammar.fd_step
  hi = grammar.high + grammar.fd_step
  u = jax.random.uniform(k_u, scene.attrs.shape)
  kinds = np.array(grammar.attr_kinds)
  attrs = jnp.where((kinds == "continuous") & grammar.has_attr,
                    lo + (hi - lo) * u, scene.attrs)
  yaw = jax.random.uniform(k_yaw, scene.attrs.shape, minval=-180.0,
                           maxval=180.0)
  attrs = jnp.where((kinds == "angle") & grammar.has_attr, yaw, attrs)
  keep = jax.random.bernoulli(k_drop, 1 - drop, scene.node_mask.shape)
  return SceneGraph(attrs, scene.node_mask & keep)


def _scenes(problem, batch, seed=0):
  grammar, pools, _ = problem
  s = sample(jax.random.key(seed), grammar, batch, pools)
  return _spread(jax.random.key(seed + 1), s, grammar)


@pytest.fixture(scope="module")
def renderers(problems):
  """name -> jitted (windowed, reference) renders, compiled once per shape."""
  def both(grammar, pools, canvas):
    return tuple(jax.jit(lambda s, mod=mod: mod.render(s, grammar, pools,
                                                        canvas))
                 for mod in (raster2d, reference))
  return {name: both(*p) for name, p in problems.items()}


def _render_both(fns, scene):
  return tuple(f(scene) for f in fns)


def _assert_same(new, ref):
  np.testing.assert_allclose(new.image, ref.image, rtol=0, atol=1e-5)
  np.testing.assert_array_equal(new.semantic, ref.semantic)
  np.testing.assert_array_equal(new.instance, ref.instance)
  np.testing.assert_array_equal(new.boxes, ref.boxes)
  np.testing.assert_array_equal(new.box_mask, ref.box_mask)


@pytest.mark.parametrize("name", ["aerial_prior", "aerial_target", "mnist32",
                                  "mnist64", "scaled"])
def test_equals_reference_on_random_scenes(problems, renderers, name):
  new, ref = _render_both(renderers[name], _scenes(problems[name], BATCH))
  _assert_same(new, ref)
  assert float(ref.image.max()) > 0.5  # something was drawn


def test_equals_reference_when_sampled_from_the_grammar(problems, renderers):
  """Plain prior samples (cars on the road, at their sampled scale)."""
  grammar, pools, _ = problems["aerial_prior"]
  s = sample(jax.random.key(5), grammar, BATCH, pools)
  _assert_same(*_render_both(renderers["aerial_prior"], s))


def test_edges_and_largest_scale(problems, renderers):
  """Nodes over every edge and corner, cars at scale = high + fd_step."""
  grammar, pools, _ = problems["aerial_target"]
  s = sample(jax.random.key(1), grammar, BATCH, pools)
  a = np.array(s.attrs)
  col = grammar.col
  road, tree, house = (grammar.slot(f"scene/{c}[0]")
                       for c in ("road", "tree", "house"))
  cars = grammar.slots_of("car")
  scale_top = grammar.high[cars[0], col("scale")] + grammar.fd_step[
      cars[0], col("scale")]
  assert raster2d.world_scale_bound(grammar, cars[0]) == pytest.approx(
      scale_top)
  corners = [(-3.0, -2.0), (66.0, -4.0), (63.5, 67.0), (0.2, 63.9),
             (32.0, -1.0), (-1.5, 30.0), (65.0, 33.3)][:BATCH]
  for b, (x, y) in enumerate(corners):
    a[b, road, [col("x"), col("y"), col("yaw")]] = [x, y, 37.0 * b + 10]
    a[b, tree, [col("x"), col("y")]] = [64.0 - x, y]
    a[b, house, [col("x"), col("y")]] = [x, 64.0 - y]
    for k, car in enumerate(cars):  # at the ends of the road, across it
      a[b, car, [col("x"), col("y"), col("yaw"), col("scale")]] = [
          (-16.5, 16.5)[k], (-26.5, 26.5)[k], 45.0 + 90 * k, scale_top]
  scene = SceneGraph(jnp.asarray(a), jnp.ones_like(s.node_mask))
  new, ref = _render_both(renderers["aerial_target"], scene)
  _assert_same(new, ref)
  # The cars are drawn (partly off the canvas for some corners).
  assert np.isin(np.asarray(ref.instance), cars).any()


def test_windows_and_full_canvas_path(problems):
  """Small nodes get windows; a class that can cover the canvas gets the
  whole canvas (no slicing of the maps at all)."""
  def windows(name):
    grammar, pools, canvas = problems[name]
    return {c.name: c.window for c in raster2d._plan(grammar, pools, canvas)}

  aerial_windows = windows("aerial_prior")
  assert aerial_windows["grass"] == aerial_windows["road"] == (64, 64)
  for cls in ("car", "tree", "house"):
    assert max(aerial_windows[cls]) < 32, (cls, aerial_windows[cls])
  assert windows("mnist32")["digit"] == (32, 32)  # a 28 px digit, rotated
  assert windows("mnist64")["digit"] < (64, 64)
  assert windows("scaled")["digit"] == (26, 26)  # 8 px at scale <= 2
  # An unbounded-looking scale range: the full canvas.
  g = digit_grammar_dict(32)
  g["classes"]["digit"]["attributes"]["scale"]["range"] = [0.5, 1e6]
  big = compile_grammar(g)
  assert raster2d.window_shape(big, big.slots_of("digit"), (8, 8),
                               Canvas(32, 40)) == (32, 40)

  # A window of the canvas's size is drawn without slicing the maps.
  maps = (jnp.zeros((32, 40, 1)), jnp.zeros((32, 40), jnp.int32))

  def ops(layer):
    jaxpr = jax.make_jaxpr(raster2d._draw, static_argnums=3)(
        maps, layer, jnp.zeros(2, jnp.int32), 1)
    return {e.primitive.name for e in jaxpr.eqns}

  slicing = {"dynamic_slice", "dynamic_update_slice"}
  assert not ops(jnp.zeros((32, 40, 2))) & slicing
  assert slicing <= ops(jnp.zeros((26, 26, 2)))


def test_chunks_and_padding(problems, renderers, monkeypatch):
  """Several chunks of the batch, with padding, give the same layers."""
  grammar, pools, canvas = problems["scaled"]
  scene = _scenes(problems["scaled"], BATCH, seed=3)
  whole, _ = _render_both(renderers["scaled"], scene)
  # 3 scenes a chunk: 3 chunks, 2 scenes padded.
  monkeypatch.setattr(raster2d, "_chunk_size", lambda plan, pools: 3)
  chunked = jax.jit(lambda s: raster2d._render(  # not the cached program
      s, grammar, pools, canvas, semantic_names(grammar)))(scene)
  _assert_same(chunked, whole)


def _image_fns(problem):
  grammar, pools, canvas = problem
  return [lambda attrs, mask, mod=mod: mod.render_image(
      attrs, mask, grammar, pools, canvas) for mod in (raster2d, reference)]


def _assert_gradients_close(new, ref):
  scale = float(jnp.abs(ref).max())
  assert scale > 1.0  # a real gradient
  np.testing.assert_allclose(new, ref, rtol=1e-4, atol=1e-5 * scale)


def test_autodiff_gradients_match_reference(problems):
  """d<w, image>/d attrs by JAX autodiff, w random: Aerial2D (windows,
  full-canvas classes and the road-to-car hierarchy)."""
  problem = problems["aerial_prior"]
  scene = _scenes(problem, 3, seed=7)
  w = jax.random.normal(jax.random.key(8), (3,) + problem[2].shape)
  grads = [jax.jit(jax.grad(lambda a, f=f: jnp.sum(
      w * f(a, scene.node_mask))))(scene.attrs) for f in _image_fns(problem)]
  _assert_gradients_close(*grads)


def test_finite_difference_gradients_match_reference(problems):
  """The same by the finite differences of ``finite_diff.py`` (MNIST's
  gradient mode) on 64x64 digits, whose windows are smaller than the
  canvas."""
  problem = problems["mnist64"]
  grammar, _, canvas = problem
  scene = _scenes(problem, 2, seed=11)
  w = jax.random.normal(jax.random.key(12), (2,) + canvas.shape)
  grads = []
  for f in _image_fns(problem):
    fd = with_gradient(f, grammar.fd_step, "finite_diff")
    grads.append(jax.jit(jax.grad(lambda a, fd=fd: jnp.sum(
        w * fd(a, scene.node_mask))))(scene.attrs))
  _assert_gradients_close(*grads)


def test_vmapped_over_starts(problems, renderers):
  """The MMD step vmaps the renderer over its K starts."""
  grammar, pools, canvas = problems["scaled"]
  scenes = [_scenes(problems["scaled"], BATCH, seed=s) for s in (20, 21)]
  stacked = jax.tree.map(lambda *x: jnp.stack(x), *scenes)
  both = jax.jit(jax.vmap(
      lambda s: raster2d.render(s, grammar, pools, canvas).image))(stacked)
  for k, s in enumerate(scenes):
    ref = renderers["scaled"][1](s).image
    np.testing.assert_allclose(both[k], ref, rtol=0, atol=1e-5)
