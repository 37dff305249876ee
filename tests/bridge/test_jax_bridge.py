"""The bridge as a metasim_jax renderer: a grammar's scene graphs rendered
by a real server from inside jit (and vmap over starts), and the batched
finite-difference gradient through it against a finer difference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metasim_jax import grammar as grammar_lib
from metasim_jax import render as render_lib
from metasim_jax.render import bridge
from metasim_jax.types import SceneGraph

H, W = 96, 312


def _cont(value, low, high, mutable=False, step=None):
  d = {"kind": "continuous", "range": [low, high],
       "dist": {"type": "deterministic", "value": value}}
  if mutable:
    d["mutable"] = True
  if step is not None:
    d["fd_step"] = step
  return d


GRAMMAR = {
    "root": "scene",
    "classes": {
        "scene": {"children": [["sky", 1], ["camera", 1], ["ground", 1],
                               ["road", 1]]},
        "sky": {"render": "fill", "color": [0.5, 0.7, 0.9]},
        "camera": {"render": "camera", "attributes": {
            "z": _cont(1.6, 0.5, 3.0), "pitch": {
                "kind": "angle", "dist": {"type": "deterministic",
                                          "value": 5.0}},
            "fov": _cont(40.0, 10.0, 90.0)}},
        "ground": {"render": "mesh", "assets": ["ground/grass"],
                   "semantic": "grass", "attributes": {
                       "sx": _cont(400.0, 1.0, 1000.0),
                       "sy": _cont(400.0, 1.0, 1000.0)}},
        "road": {"render": "mesh", "assets": ["road/asphalt"],
                 "semantic": "road", "children": [["car", [1, 2]]],
                 "attributes": {
                     "y": _cont(40.0, 0.0, 100.0),
                     "yaw": {"kind": "angle", "dist": {
                         "type": "deterministic", "value": 0.0}},
                     "sx": _cont(7.0, 1.0, 20.0),
                     "sy": _cont(120.0, 1.0, 200.0)}},
        "car": {"render": "mesh", "semantic": "car", "object": True,
                "assets": ["car/sedan", "car/van"],
                "color": [0.7, 0.1, 0.1],
                "attributes": {
                    "model": {"kind": "categorical", "num": 2,
                              "dist": {"type": "categorical"}},
                    "x": {"kind": "continuous", "range": [-3.0, 3.0],
                          "mutable": True, "fd_step": 0.25,
                          "dist": {"type": "uniform", "low": -1.5,
                                   "high": 1.5}},
                    "y": {"kind": "continuous", "range": [-30.0, 30.0],
                          "dist": {"type": "uniform", "low": -28.0,
                                   "high": -20.0}}}},
    },
}


@pytest.fixture(scope="module")
def setup():
  g = grammar_lib.compile_grammar(GRAMMAR)
  names = render_lib.semantic_names(g)
  r = render_lib.create("bridge", canvas=render_lib.Canvas(H, W, 3),
                        semantic_names=names, backend="moderngl", workers=1,
                        timeout_s=120.0)
  scene = grammar_lib.sample(jax.random.key(0), g, 6, {})
  return g, names, r, scene


def test_codec_composes_frames():
  g = grammar_lib.compile_grammar(GRAMMAR)
  codec = bridge.Codec.create(g, render_lib.semantic_names(g))
  attrs = np.zeros((1, g.num_slots, g.num_attrs))
  road, car = g.slot("scene/road[0]"), g.slot("scene/road[0]/car[0]")
  attrs[0, road, g.col("y")] = 40.0
  attrs[0, road, g.col("yaw")] = 90.0   # the road turns left
  attrs[0, car, g.col("x")] = 2.0       # across the road
  attrs[0, car, g.col("y")] = 10.0      # along it
  mask = np.ones((1, g.num_slots), bool)
  xy, z, yaw = codec.world_poses(attrs)
  np.testing.assert_allclose(xy[0, car], [-10.0, 42.0], atol=1e-9)
  assert yaw[0, car] == 90.0
  (scene,) = codec.scenes(attrs, mask)
  ids = [n.instance_id for n in scene.nodes]
  assert ids == [i + 1 for i in codec.mesh_slots]
  assert scene.sky == (0.5, 0.7, 0.9)


def test_codec_refuses_bad_grammars():
  two_cams = dict(GRAMMAR, classes=dict(
      GRAMMAR["classes"], scene={"children": [["camera", 2], ["road", 1],
                                              ["ground", 1], ["sky", 1]]}))
  g = grammar_lib.compile_grammar(two_cams)
  with pytest.raises(grammar_lib.GrammarError, match="one camera"):
    bridge.Codec.create(g, render_lib.semantic_names(g))
  with pytest.raises(ValueError, match="channels must be 3"):
    render_lib.create("bridge", canvas=render_lib.Canvas(H, W, 1),
                      semantic_names=("none",))


def test_render_inside_jit_and_vmap(setup):
  g, names, r, scene = setup
  out = jax.jit(lambda s: r.render(s, g, {}))(scene)
  assert out.image.shape == (6, H, W, 3) and out.image.dtype == jnp.float32
  cars = g.slots_of("car")
  mask = np.asarray(scene.node_mask)
  inst = np.asarray(out.instance)
  for b in range(6):
    seen = set(np.unique(inst[b])) - {-1}
    assert seen <= set(np.flatnonzero(mask[b]))
    np.testing.assert_array_equal(np.asarray(out.box_mask)[b, cars],
                                  mask[b, cars])
  sem = np.asarray(out.semantic)
  assert (sem[inst == -1] == 0).all()
  assert (sem[np.isin(inst, cars)] == names.index("car")).all()
  # Two starts in one vmap: one callback, the same pixels.
  img = jax.jit(jax.vmap(lambda a: r.render_image(a, scene.node_mask, g,
                                                  {})))(
      jnp.stack([scene.attrs, scene.attrs]))
  np.testing.assert_array_equal(img[0], out.image)
  np.testing.assert_array_equal(img[1], out.image)


def test_finite_difference_gradient_through_the_bridge(setup):
  """d/dx of a smooth image statistic: the bridge's batched central
  difference (step 0.25 m) against a finer one (0.1 m) by hand."""
  # One car per scene, so that no other car hides it.
  g = grammar_lib.compile_grammar(dict(GRAMMAR, classes=dict(
      GRAMMAR["classes"], road=dict(GRAMMAR["classes"]["road"],
                                    children=[["car", 1]]))))
  _, _, r, _ = setup
  scene = grammar_lib.sample(jax.random.key(1), g, 6, {})
  weights = jnp.linspace(-1.0, 1.0, W)[None, None, :, None]  # left -> right

  def loss_of(image):
    return jnp.sum(image * weights, axis=(1, 2, 3))

  fd = render_lib.finite_difference(
      lambda a, m: r.render_image(a, m, g, {}), g.fd_step)
  grads = jax.grad(lambda a: jnp.sum(loss_of(fd(a, scene.node_mask))))(
      scene.attrs)
  car, col = g.slots_of("car")[0], g.col("x")
  assert np.count_nonzero(np.asarray(grads)) <= 2 * 6  # the cars' x only
  h = 0.1
  fine = []
  for sign in (1, -1):
    a = scene.attrs.at[:, car, col].add(sign * h)
    fine.append(loss_of(r.render_image(a, scene.node_mask, g, {})))
  fine = np.asarray((fine[0] - fine[1]) / (2 * h))
  coarse = np.asarray(grads)[:, car, col]
  # Per scene the same sign; in size (pixels are quantised: a far car moves
  # by less than a pixel at the fine step) the same over the batch.
  assert np.all(np.abs(fine) > 0)
  np.testing.assert_array_equal(np.sign(coarse), np.sign(fine))
  ratio = np.abs(coarse).sum() / np.abs(fine).sum()
  assert 0.67 < ratio < 1.5, (coarse, fine)


def test_crop_differences_equal_full_renders(setup):
  """The bridge's own finite differences (variants drawn only where they
  can change, dot products on the host) equal the generic path (every
  perturbed copy rendered whole), under a vmap over two starts."""
  g, names, r, scene = setup
  steps = np.array(g.fd_step)
  steps[g.slot("scene/road[0]"), g.col("y")] = 0.5  # moves both cars
  weights = jax.random.normal(jax.random.key(2), (H, W, 3))
  fn = lambda a, m: r.render_image(a, m, g, {})
  paths = {
      "full": render_lib.finite_difference(fn, steps),
      "crops": render_lib.finite_difference(
          fn, steps, lambda a, m, ct: r.finite_difference_vjp(a, m, ct, g,
                                                               steps))}
  attrs = jnp.stack([scene.attrs, scene.attrs.at[:, :, g.col("x")].add(
      0.3)])
  grads = {k: jax.vmap(jax.grad(lambda a, f=f: jnp.sum(
      f(a, scene.node_mask) * weights)))(attrs) for k, f in paths.items()}
  assert np.abs(np.asarray(grads["full"])).max() > 0
  np.testing.assert_allclose(grads["crops"], grads["full"], rtol=1e-4,
                             atol=1e-3)
