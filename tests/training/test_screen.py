"""Screening of an MMD stage's candidate starts (training/screen.py): the
Latin hypercube, the candidates, the mask of what a stage switches on, the
choice of the lowest MMD^2 on common scenes, and a stage's first state."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import aerial as aerial_config
from metasim_jax import pipeline as pipeline_lib
from metasim_jax.data import aerial
from metasim_jax.features import MMDTarget
from metasim_jax.training import es, screen, stages, steps


@pytest.fixture(scope="module")
def driving(driving_prior):
  return driving_prior


def test_latin_hypercube_hits_every_stratum_of_every_dimension_once():
  u = screen.latin_hypercube(jax.random.key(0), 10, 3)
  assert u.shape == (10, 3) and (u >= 0).all() and (u < 1).all()
  for d in range(3):
    np.testing.assert_array_equal(np.sort(np.floor(u[:, d] * 10)),
                                  np.arange(10))
  # The dimensions are ordered independently.
  assert not np.array_equal(np.argsort(u[:, 0]), np.argsort(u[:, 1]))


def test_candidate_zero_is_the_generator_as_it_is(driving):
  mask = es.search_mask(driving, ["car.y", "car.yaw"])
  d = screen.candidate_deltas(jax.random.key(1), mask, 9, 2.0, (-2.0, 0.5))
  assert d.shape == (9, 4)
  np.testing.assert_array_equal(d[0], 0.0)
  assert (d[1:, :2] >= -2.0).all() and (d[1:, :2] <= 0.5).all()  # log-scales
  assert (np.abs(d[1:, 2:]) <= 2.0).all()  # shifts, prior stds
  names = screen.entry_names(driving, mask)  # in the grammar's column order
  assert sorted(names[:2]) == ["car.y log_spread", "car.yaw log_spread"]
  assert [n.replace("log_spread", "shift") for n in names[:2]] == names[2:]


def test_a_stage_screens_only_the_groups_it_switches_on(driving):
  def names(mask):
    return {f"{list(driving.classes)[c]}.{driving.attr_names[j]}"
            for c, j in zip(*np.nonzero(mask))}
  cars = names(screen.new_mask(driving, ("cars",), ()))
  camera = names(screen.new_mask(driving, ("camera", "cars"), ("cars",)))
  assert cars == {"car.x", "car.y", "car.yaw"}
  assert camera and all(n.startswith("camera.") for n in camera)
  assert not screen.new_mask(driving, ("cars",), ("cars",)).any()
  every = names(screen.new_mask(driving, None, ("cars", "camera")))
  assert every and not every & (cars | camera)


def test_screen_keeps_the_lowest_candidates_scored_on_common_scenes(driving):
  """A landscape with its minimum at known shifts and log-scales: the
  kept starts are the candidates nearest to it, best first, each scored
  with the same scene key."""
  mask = es.search_mask(driving, ["car.y", "car.yaw"])
  shape = mask.shape
  params = {"log_spread": jnp.zeros(shape), "class_shift": jnp.zeros(shape)}
  goal = np.array([-1.0, -1.5, -0.8, 0.3], np.float32)
  seen, sizes = [], []

  def mmd_eval(params_k, key, pools, feat_params, target):
    seen.append(np.asarray(jax.random.key_data(key)))
    sizes.append(len(params_k["class_shift"]))
    x = jax.vmap(lambda p: es.searched(p, mask))(params_k)
    return jnp.sum((x - goal) ** 2, axis=1)

  params_k, mmd2, deltas, order = screen.screen(
      mmd_eval, params, jax.random.key(2), None, None, None, mask=mask,
      num=21, keep=3, shift=2.0, log_spread=(-2.0, 0.5), chunk=8)
  assert sizes == [8, 8, 8]  # 21 candidates in chunks of 8, the last padded
  assert all(np.array_equal(s, seen[0]) for s in seen)
  np.testing.assert_allclose(mmd2, ((deltas - goal) ** 2).sum(1), rtol=1e-6)
  np.testing.assert_array_equal(order, np.argsort(mmd2)[:3])
  assert mmd2[order[0]] < mmd2[0]
  kept = np.asarray(jax.vmap(lambda p: es.searched(p, mask))(params_k))
  np.testing.assert_allclose(kept, deltas[order], rtol=1e-6)


def test_fewer_candidates_than_a_chunk_still_fill_the_chunk(driving):
  """One program size for every call: a chunk that divides over the mesh's
  "starts" devices stays divisible, however few the candidates."""
  mask = es.search_mask(driving, ["car.y"])
  params = {"log_spread": jnp.zeros(mask.shape),
            "class_shift": jnp.zeros(mask.shape)}
  sizes = []

  def mmd_eval(params_k, key, pools, feat_params, target):
    sizes.append(len(params_k["class_shift"]))
    return jnp.arange(sizes[-1], dtype=jnp.float32)

  _, mmd2, _, order = screen.screen(
      mmd_eval, params, jax.random.key(0), None, None, None, mask=mask,
      num=3, keep=1, shift=1.0, log_spread=(-1.0, 0.0), chunk=4)
  assert sizes == [4] and len(mmd2) == 3 and order.tolist() == [0]
  starts = lambda n: types.SimpleNamespace(
      mesh=None if n is None else types.SimpleNamespace(shape={"starts": n}))
  assert [stages._screen_chunk(starts(n)) for n in (None, 2, 3, 16)] == [
      8, 8, 9, 16]


def test_screen_needs_the_affine_head(driving):
  mask = es.search_mask(driving, ["car.y"])
  with pytest.raises(ValueError, match="affine"):
    screen.screen(None, {"w": jnp.zeros(1)}, jax.random.key(0), None, None,
                  None, mask=mask, num=4, keep=1, shift=1.0,
                  log_spread=(-1.0, 0.0), chunk=4)


def test_kept_starts_render_what_they_were_scored_on():
  """On the Aerial2D smoke world, through the real renderer and features:
  each kept start's MMD^2 measured again on the screen's scenes is the
  value it was chosen by."""
  c = aerial_config.get_config("smoke")
  c.transformer.affine = True
  pipe, feat_params = pipeline_lib.build(c)
  pools = aerial.texture_pools(0, dict(c.textures.counts))
  params = pipe.init_transformer(jax.random.key(0), jax.random.key(1), pools)
  real = pipe.render(pipe.sample(jax.random.key(5), 8, pools,
                                 source="target"), pools,
                     pipe.target).image
  target = MMDTarget.create(pipe.feature_fn(feat_params, real), (1.0,))
  mmd_eval = steps.make_mmd_eval(pipe, 4)
  mask = screen.new_mask(pipe.prior, None, ())
  key = jax.random.key(3)
  params_k, mmd2, _, order = screen.screen(
      mmd_eval, params, key, pools, feat_params, target, mask=mask, num=6,
      keep=4, shift=1.0, log_spread=(-1.0, 0.5), chunk=4)
  again = mmd_eval(params_k, jax.random.split(key)[1], pools, feat_params,
                   target)
  np.testing.assert_allclose(np.asarray(again), mmd2[order], rtol=1e-4,
                             atol=1e-7)
