"""The ``es`` estimator of the task meta-objective (training/es.py):
unbiased on a reward with a known gradient, antithetic pairs built from the
same scenes and trained from the same initialisation, and a meta-step that
moves only the searched affine parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import mnist as mnist_config
from metasim_jax import grammar as grammar_lib
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import tasknet as tasknet_lib
from metasim_jax import transformer as transformer_lib
from metasim_jax.training import es, starts, steps


def _quadratic(theta, c):
  return -jnp.sum((theta - c) ** 2, -1)


def test_unnormalised_estimate_is_unbiased_on_a_quadratic():
  # E R(theta + sigma eps) of a quadratic has the quadratic's gradient.
  theta, c = jnp.array([0.3, -1.0, 2.0]), jnp.array([1.0, 0.5, -0.5])
  sigma = jnp.array([0.5, 1.0, 2.0])
  eps = jax.random.normal(jax.random.key(0), (200_000, 3))
  g = es.antithetic_gradient(_quadratic(theta + sigma * eps, c),
                             _quadratic(theta - sigma * eps, c), eps, sigma)
  # Its noise: the pairs' differences -4 sigma (theta - c).eps give a
  # standard error of 2 |theta - c| / sqrt(P) = 0.013 per coordinate here.
  np.testing.assert_allclose(g, -2 * (theta - c), atol=0.06)


def test_rank_normalisation_keeps_the_direction_not_the_size():
  theta, c = jnp.zeros(2), jnp.array([3.0, -1.0])
  eps = jax.random.normal(jax.random.key(1), (50_000, 2))
  plus, minus = _quadratic(theta + eps, c), _quadratic(theta - eps, c)
  g = es.antithetic_gradient(plus, minus, eps, 1.0, "rank")
  true = -2 * (theta - c)
  cosine = g @ true / np.linalg.norm(g) / np.linalg.norm(true)
  assert cosine > 0.99
  assert np.linalg.norm(g) < 0.5 * np.linalg.norm(true)  # biased in size
  with pytest.raises(ValueError, match="unknown reward normalisation"):
    es.antithetic_gradient(plus, minus, eps, 1.0, "zscore")


def test_decay_waits_for_its_start_then_follows_a_cosine_to_zero():
  f = lambda step: float(es.decay_factor(step, 20, 0.5))
  assert f(0) == f(10) == 1.0
  np.testing.assert_allclose([f(15), f(20), f(30)], [0.5, 0.0, 0.0],
                             atol=1e-6)
  assert float(es.decay_factor(7, 0)) == 1.0  # no decay


def test_centred_ranks():
  np.testing.assert_allclose(es.centred_ranks(jnp.array([3.0, -1.0, 7.0])),
                             [0.0, -0.5, 0.5])


def _es_step(pipe, **overrides):
  """An es step on the MNIST smoke world: 2 pairs, 2 inner steps."""
  c = mnist_config.get_config("rot,smoke,task_only,es")
  args = dict(pairs=2, sigma=3.0, log_sigma=0.5,
              num_scenes=c.task.num_scenes, inner_steps=2, inner_batch=4,
              task_weight=1.0, mmd_weight=0.0, reward="neg_loss",
              normalise="rank", fixed_task_init=True)
  return es.make_es_step(pipe, steps.adam(0.5), steps.adam(c.task.lr),
                         **{**args, **overrides})


@pytest.fixture(scope="module")
def problem():
  """The MNIST smoke world and an es step (2 pairs, 2 inner steps)."""
  c = mnist_config.get_config("rot,smoke,task_only,es")
  pipe, _ = pipeline_lib.build(c)
  pools, sets = pipeline_lib.build_data(c, pipe)
  params = pipe.init_transformer(jax.random.key(0), jax.random.key(1), pools)
  tx = steps.adam(0.5)  # the step's (``_es_step``)
  step = _es_step(pipe)
  state = lambda: steps.init_state(jax.random.key(2), jax.tree.map(
      lambda x: x[None], params), tx)
  return pipe, pools, sets, params, step, state


def test_search_space_is_the_mutable_continuous_attributes(problem):
  pipe = problem[0]
  names = list(pipe.prior.classes)

  def searched(mask):
    return {(names[i], pipe.prior.attr_names[j])
            for i, j in zip(*np.nonzero(mask))}

  assert searched(es.search_mask(pipe.prior)) == {
      ("digit", "x"), ("digit", "y"), ("digit", "yaw")}
  # ``attributes`` narrows it to the named ones; a name it cannot search
  # is an error that lists those it can.
  assert searched(es.search_mask(pipe.prior, ["digit.yaw", "digit.x"])) == {
      ("digit", "x"), ("digit", "yaw")}
  for bad in ("digit.colour", "car.x", "digit.label"):
    with pytest.raises(ValueError, match="digit.yaw"):
      es.search_mask(pipe.prior, [bad])


def test_a_narrowed_search_moves_only_its_attributes(problem):
  pipe, pools, sets, params, _, state = problem
  step = _es_step(pipe, attributes=["digit.yaw"])
  eps, _, _, _ = step.generate(state(), pools)
  assert eps.shape == (2, 2)  # a log-spread and a shift
  new, _ = step(state(), pools, None, None, sets["val"])
  after = jax.tree.map(lambda x: x[0], new.params)
  mask = es.search_mask(pipe.prior, ["digit.yaw"])
  for name in ("class_shift", "log_spread"):
    moved = np.asarray(after[name] != params[name])
    assert moved.any() and not (moved & ~mask).any(), name


def test_a_part_of_an_attribute_is_searched_alone(problem):
  """"digit.x:spread" perturbs and moves only digit.x's log-spread, and
  "digit.yaw:shift" only digit.yaw's shift: the other coordinates of
  the searched vector have no perturbation and no step."""
  pipe, pools, sets, params, _, state = problem
  names = ["digit.x:spread", "digit.yaw:shift"]
  mask = es.search_mask(pipe.prior, names)
  active = es.search_parts(pipe.prior, names)
  x, yaw = pipe.prior.col("x"), pipe.prior.col("yaw")
  cells = [int(j) for _, j in zip(*np.nonzero(mask))]
  assert sorted(cells) == sorted([x, yaw])
  m = len(cells)
  expected = np.zeros(2 * m)
  expected[cells.index(x)] = 1.0  # x's log-spread
  expected[m + cells.index(yaw)] = 1.0  # yaw's shift
  np.testing.assert_array_equal(active, expected)
  np.testing.assert_array_equal(es.search_parts(pipe.prior, ["digit.x"]),
                                np.ones(2))
  step = _es_step(pipe, attributes=names)
  eps, _, _, _ = step.generate(state(), pools)
  assert (np.asarray(eps)[:, active == 0] == 0).all()
  assert (np.asarray(eps)[:, active == 1] != 0).all()
  new, _ = step(state(), pools, None, None, sets["val"])
  after = jax.tree.map(lambda x: x[0], new.params)
  moved = np.asarray(es.searched(after, mask) != es.searched(params, mask))
  np.testing.assert_array_equal(moved, active == 1)
  with pytest.raises(ValueError, match="spread"):
    es.search_parts(pipe.prior, ["digit.x:scale"])


def test_harmonic_peak_finds_a_noisy_curves_maximum():
  """The least-squares fit of two harmonics over 8 stratified turns puts
  its peak where the curve's is, within the noise's reach; a heading
  whose front and back look alike (second harmonic) peaks twice."""
  rng = np.random.default_rng(0)
  t = 2 * np.pi * (np.arange(8) + rng.uniform(-0.5, 0.5, 8)) / 8 - np.pi
  for truth, curve in ((0.4, lambda t: np.cos(t - 0.4)),
                       (-2.0, lambda t: np.cos(2 * (t + 2.0)))):
    r = 0.3 + 0.1 * curve(t) + 0.01 * rng.standard_normal(8)
    peak, value = es.harmonic_peak(t, r)
    off = np.angle(np.exp(1j * (peak - truth)))
    assert min(abs(off), abs(abs(off) - np.pi)) < np.deg2rad(8), peak
    np.testing.assert_allclose(value, 0.4, atol=0.02)
  with pytest.raises(ValueError, match="at least 5"):
    es.harmonic_peak(t[:4], r[:4])


def test_pairs_share_their_scenes_and_initialisation(problem):
  _, pools, _, _, step, state = problem
  eps, images, labels, k_task = step.generate(state(), pools)
  assert images.shape[0] == 4 and eps.shape == (2, 6)
  # The same prior scenes (digit classes) under 4 generators ...
  for i in range(1, 4):
    np.testing.assert_array_equal(labels[i], labels[0])
    assert np.abs(images[i] - images[0]).max() > 0
  # ... and the same task-net initialisation and batches: identical
  # datasets give identical task nets.
  same = jnp.broadcast_to(images[:1], images.shape)
  trained, _ = step.trainer.run(k_task, 4, same, labels)
  for leaf in jax.tree.leaves(trained):
    np.testing.assert_allclose(leaf[1:], jnp.broadcast_to(
        leaf[0], leaf[1:].shape), atol=1e-6)


def test_step_moves_only_the_searched_affine_parameters(problem):
  pipe, pools, sets, params, step, state = problem
  new, metrics = step(state(), pools, None, None, sets["val"])
  assert np.isfinite(float(metrics["reward"]))
  after = jax.tree.map(lambda x: x[0], new.params)
  mask = es.search_mask(pipe.prior)
  for name in ("class_shift", "log_spread"):
    moved = np.asarray(after[name] != params[name])
    assert moved.any() and not (moved & ~mask).any(), name
  for k in params:
    if k not in ("class_shift", "log_spread"):
      jax.tree.map(np.testing.assert_array_equal, after[k], params[k])


def test_members_one_after_another_give_the_same_step(problem):
  """vmap=False (task nets trained and scored member after member) takes
  the same step as the vmapped population."""
  pipe, pools, sets, _, step, state = problem
  seq = _es_step(pipe, vmap=False)
  a, ma = step(state(), pools, None, None, sets["val"])
  b, mb = seq(state(), pools, None, None, sets["val"])
  np.testing.assert_allclose(float(mb["reward"]), float(ma["reward"]),
                             rtol=1e-4)
  for name in ("class_shift", "log_spread"):
    np.testing.assert_allclose(b.params[name], a.params[name], atol=1e-5)


def test_warm_started_members_continue_from_one_net(problem):
  """warm_steps > 0: a net trained on the unperturbed data is every
  member's start; identical datasets still give identical nets, and the
  rewards differ from those of members trained from scratch."""
  pipe, pools, sets, _, cold, state = problem
  warm = _es_step(pipe, warm_steps=3)
  eps, images, labels, _ = warm.generate(state(), pools)
  assert images.shape[0] == 5  # 2P perturbed + the unperturbed dataset
  np.testing.assert_allclose(images[:4], cold.generate(state(), pools)[1],
                             atol=1e-6)
  _, m_warm = warm(state(), pools, None, None, sets["val"])
  _, m_cold = cold(state(), pools, None, None, sets["val"])
  assert np.isfinite(float(m_warm["reward"]))
  assert float(m_warm["reward"]) != float(m_cold["reward"])
  with pytest.raises(ValueError, match="warm_steps"):
    _es_step(pipe, warm_steps=-1)


def test_coarse_start_moves_to_the_best_scored_candidate(problem):
  """coarse_starts=K: K candidates (candidate 0 the generator as it is,
  the others turned by stratified angles around the circle), one task net
  each on the same scenes; the stage starts from the best one's params."""
  pipe, pools, sets, params, _, state = problem
  step = _es_step(pipe, pairs=1, coarse_starts=4)
  new, rewards, offsets, best, chosen = step.coarse_start(state(), pools,
                                                          sets["val"])
  assert rewards.shape == (4,) and np.isfinite(rewards).all()
  assert best == int(np.argmax(rewards))
  np.testing.assert_array_equal(chosen, offsets[best])
  yaw = starts.offset_columns(pipe.prior).index(pipe.prior.col("yaw"))
  np.testing.assert_array_equal(offsets[0], 0.0)
  for k in range(1, 4):  # a quarter turn apart, +-45 degrees (angle / 180)
    assert abs(offsets[k, yaw] - k / 2) <= 0.25
  expected = es.class_offsets(
      params, pipe.prior, offsets[best], starts.offset_columns(pipe.prior),
      es.search_mask(pipe.prior))
  jax.tree.map(np.testing.assert_array_equal,
               jax.tree.map(lambda x: x[0], new.params), expected)
  # Its keys are the stage's: the same state gives the same choice.
  again = step.coarse_start(state(), pools, sets["val"])[1]
  np.testing.assert_allclose(again, rewards, rtol=1e-5)
  assert _es_step(pipe, pairs=1).coarse_start is None
  with pytest.raises(ValueError, match="coarse_starts"):
    _es_step(pipe, coarse_starts=0)
  # Contracted candidates: the same turns, the headings concentrated
  # (all but candidate 0, the generator as it is).
  step = _es_step(pipe, pairs=1, coarse_starts=4, coarse_contract=0.1)
  new, tight, tight_offsets, best, _ = step.coarse_start(state(), pools,
                                                         sets["val"])
  np.testing.assert_array_equal(tight_offsets, offsets)
  np.testing.assert_allclose(tight[0], rewards[0], rtol=1e-5)
  assert not np.allclose(tight[1:], rewards[1:])
  expected = es.class_offsets(
      es.contracted(params, es.search_mask(pipe.prior), pipe.prior,
                    0.1 if best else 1.0),
      pipe.prior, offsets[best], starts.offset_columns(pipe.prior),
      es.search_mask(pipe.prior))
  jax.tree.map(np.testing.assert_allclose,
               jax.tree.map(lambda x: x[0], new.params), expected)
  with pytest.raises(ValueError, match="coarse_contract"):
    _es_step(pipe, coarse_contract=0.0)


def test_harmonic_coarse_start_goes_to_the_fits_peak(problem):
  """coarse_fit="harmonic": the start turns the searched angle to the
  peak of the curve fitted to the contracted candidates' rewards (the
  generator as it is left out of the fit); other columns are the
  best-scored contracted candidate's."""
  pipe, pools, sets, params, _, state = problem
  step = _es_step(pipe, pairs=1, coarse_starts=7, coarse_contract=0.5,
                  coarse_fit="harmonic", attributes=["digit.yaw"])
  new, rewards, offsets, best, chosen = step.coarse_start(state(), pools,
                                                          sets["val"])
  assert offsets.shape == (7, 1)  # only the searched angle turns
  peak, value = es.harmonic_peak(np.pi * offsets[1:, 0], rewards[1:])
  if value >= rewards[0]:
    np.testing.assert_allclose(chosen[0], peak / np.pi, atol=1e-6)
    factor = 0.5
  else:  # the generator as it is beat the fit
    np.testing.assert_array_equal(chosen, 0.0)
    factor = 1.0
  mask = es.search_mask(pipe.prior, ["digit.yaw"])
  expected = es.class_offsets(
      es.contracted(params, mask, pipe.prior, factor), pipe.prior,
      chosen, [pipe.prior.col("yaw")], mask)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               jax.tree.map(lambda x: x[0], new.params), expected)
  with pytest.raises(ValueError, match="at least 5"):
    _es_step(pipe, coarse_starts=5, coarse_contract=0.5,
             coarse_fit="harmonic", attributes=["digit.yaw"])
  with pytest.raises(ValueError, match="one searched angle"):
    _es_step(pipe, coarse_starts=7, coarse_fit="harmonic",
             attributes=["digit.x"])
  with pytest.raises(ValueError, match="coarse_fit"):
    _es_step(pipe, coarse_starts=7, coarse_fit="median")


def test_class_offsets_turn_the_searched_class_as_the_head_bias_does(
    problem):
  """A coarse start's candidate moves the searched class by its class
  shift: on that class the same scenes as the head bias's offset
  (``transformer.with_offsets``), and nothing on a class outside
  ``mask`` (which the shared head bias would move too)."""
  pipe, pools, _, params, _, _ = problem
  prior = pipe.prior
  cols = [prior.col("x"), prior.col("yaw")]
  offsets = jnp.array([0.3, 0.6])
  scene = grammar_lib.sample(jax.random.key(4), prior, 64, pools)
  mask = es.search_mask(prior)
  by_class = pipe.transform(es.class_offsets(params, prior, offsets, cols,
                                             mask), scene).attrs
  by_head = pipe.transform(transformer_lib.with_offsets(
      params, prior, offsets, cols), scene).attrs
  np.testing.assert_allclose(by_class, by_head, atol=1e-3)
  moved = np.asarray(pipe.transform(params, scene).attrs != by_class)
  assert moved[..., prior.col("yaw")].any()
  none = es.class_offsets(params, prior, offsets, cols, np.zeros_like(mask))
  jax.tree.map(np.testing.assert_array_equal, none, params)


def test_contracted_concentrates_the_searched_angles_only(problem):
  pipe, pools, _, params, _, _ = problem
  prior = pipe.prior
  mask = es.search_mask(prior)
  scene = grammar_lib.sample(jax.random.key(3), prior, 256, pools)
  digit, yaw, x = (prior.slots_of("digit")[0], prior.col("yaw"),
                   prior.col("x"))

  def drawn(p):
    return np.asarray(pipe.transform(p, scene).attrs[:, digit])

  before = drawn(params)
  after = drawn(es.contracted(params, mask, prior, 0.1))
  # The prior's headings are within +-40 degrees: the map is ~ 0.1 x there.
  assert np.abs(before[:, yaw]).max() < 60
  np.testing.assert_allclose(after[:, yaw].std(), 0.1 * before[:, yaw].std(),
                             rtol=0.2)
  np.testing.assert_allclose(after[:, x], before[:, x], atol=1e-5)


def test_relative_shift_scales_the_shifts_by_the_current_spread(problem):
  """relative_shift: a shift's perturbation and step are in units of its
  attribute's current spread (log-spreads keep theirs)."""
  pipe, pools, sets, params, _, state = problem
  mask = es.search_mask(pipe.prior)
  m = int(mask.sum())
  base = jnp.concatenate([jnp.full(m, 0.3), jnp.full(m, 3.0)])
  narrow = es.contracted(params, mask, pipe.prior, 0.1)
  np.testing.assert_array_equal(
      es.perturbation_scale(narrow, base, mask, False), base)
  got = es.perturbation_scale(narrow, base, mask, True)
  yaw = list(zip(*np.nonzero(mask))).index(
      (list(pipe.prior.classes).index("digit"), pipe.prior.col("yaw")))
  want = np.array(base)
  want[m:] *= np.exp(np.asarray(narrow["log_spread"])[np.nonzero(mask)])
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert abs(float(got[m + yaw]) - 0.3) < 1e-5  # 3.0 x 0.1
  # A step with it moves the searched parameters, by less than without.
  moved = {}
  for relative in (False, True):
    step = _es_step(pipe, relative_shift=relative)
    s0 = state()
    s0 = s0.replace(params=jax.tree.map(lambda x: x[None], narrow))
    new, _ = step(s0, pools, None, None, sets["val"])
    moved[relative] = np.abs(np.asarray(es.searched(
        jax.tree.map(lambda x: x[0], new.params), mask))
        - np.asarray(es.searched(narrow, mask)))[m + yaw]
  assert 0 < moved[True] < moved[False]
