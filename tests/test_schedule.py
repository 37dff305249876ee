"""The generator's stage schedule (cars, then + camera, ...): parsing, the
stages' pipelines (which attributes each trains), and the hold term that
keeps the other groups' outputs at the identity."""


import jax
import numpy as np
import pytest

from experiments.configs import driving as driving_config
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import schedule


@pytest.fixture(scope="module")
def grammar(driving_prior):
  return driving_prior


def _mutable_names(g):
  return {(g.slots[i].cls, g.attr_names[j])
          for i, j in zip(*np.nonzero(g.mutable))}


def test_the_papers_schedule_parses_into_named_rows(grammar):
  stages = schedule.parse(
      "cars:mmd; cars+camera:mmd; cars+camera+context:mmd; all:task",
      grammar)
  assert [s.label for s in stages] == ["cars", "+camera", "+context",
                                       "+task loss"]
  assert [s.name for s in stages] == ["s1_mmd", "s2_mmd", "s3_mmd",
                                      "s4_task"]
  assert stages[1].groups == ("camera", "cars")
  assert stages[3].groups is None  # every mutable attribute


def test_all_then_one_group_is_named_by_what_it_trains(grammar):
  stages = schedule.parse("all:mmd; cars:task", grammar)
  assert [s.label for s in stages] == ["all", "+task loss"]
  assert stages[1].groups == ("cars",)


def test_a_stage_may_set_its_own_number_of_steps(grammar):
  stages = schedule.parse("cars:mmd:60; all:mmd", grammar)
  assert [s.steps for s in stages] == [60, None]  # None: config.mmd.steps


def test_default_schedule_is_mmd_then_task(grammar):
  assert [s.name for s in schedule.parse("", grammar)] == ["mmd", "task"]
  assert [s.name for s in schedule.parse("", grammar, task=False)] == ["mmd"]


@pytest.mark.parametrize("text, why", [
    ("cars", "GROUPS:OBJECTIVE"),
    ("cars:adam", "objective 'adam'"),
    ("cars+wheels:mmd", "wheels"),
    ("cars+cars:mmd", "not distinct"),
    ("cars:mmd;:task", "stage 2"),
    ("cars:mmd:many", "'many' is not a count"),
    ("cars:mmd:-3", "'-3' is not a count"),
])
def test_bad_schedules_name_the_stage_and_the_problem(grammar, text, why):
  with pytest.raises(ValueError, match=why):
    schedule.parse(text, grammar)


@pytest.fixture(scope="module")
def pipe():
  config = driving_config.get_config("smoke")
  config.renderer = "raster2d"  # no servers: the stages' grammars only
  config.renderer_options = {}
  return pipeline_lib.build(config)[0]


def test_a_stage_trains_its_groups_and_holds_the_others(pipe):
  cars = pipe.for_groups(("cars",))
  assert _mutable_names(cars.prior) == {("car", "x"), ("car", "y"),
                                        ("car", "yaw")}
  assert ("camera", "fov") in _mutable_names(cars.held)
  assert ("car", "x") not in _mutable_names(cars.held)
  assert _mutable_names(cars.held_full()) == _mutable_names(pipe.prior)
  # Finite differences only perturb the stage's attributes.
  assert (cars.prior.fd_step > 0).sum() < (pipe.prior.fd_step > 0).sum()
  both = cars.for_groups(("cars", "camera"))
  assert ("camera", "fov") in _mutable_names(both.prior)
  assert cars.for_groups(None).prior is pipe.prior
  assert pipe.for_groups(None) is pipe


def test_hidden_groups_keep_their_values_in_a_stage(pipe):
  """A cars stage changes the cars only, whatever the head says."""
  cars = pipe.for_groups(("cars",))
  pools = dict(pipe.world.grammar_pools(
      driving_config.get_config("smoke")))
  params = pipe.init_transformer(jax.random.key(0), jax.random.key(1),
                                 pools)
  params = jax.tree.map(lambda x: x + 0.05, params)  # far from identity
  key = jax.random.key(2)
  raw = pipe.sample(key, 4, pools, source="prior")
  new = cars.transform(params, raw)
  changed = np.abs(np.asarray(new.attrs - raw.attrs)) > 1e-6
  assert changed.any()
  assert not changed[:, ~cars.prior.mutable].any()


def test_learned_before_lists_the_earlier_stages_groups(grammar):
  stages = schedule.parse("cars:mmd; cars+camera:mmd; cars:task", grammar)
  assert schedule.learned_before(stages, grammar) == [
      (), ("cars",), ("cars", "camera")]
  stages = schedule.parse("all:mmd; cars:task", grammar)
  assert set(schedule.learned_before(stages, grammar)[1]) == set(
      grammar.groups)


def test_a_later_stage_keeps_what_earlier_stages_learned(pipe):
  """all:mmd; cars:task — the second stage trains the cars, and the camera
  and context keep the transformer's values (not the prior's), with their
  gradient stopped; a group no stage has trained stays at the prior."""
  pools = dict(pipe.world.grammar_pools(
      driving_config.get_config("smoke")))
  params = pipe.init_transformer(jax.random.key(0), jax.random.key(1),
                                 pools)
  params = jax.tree.map(lambda x: x + 0.05, params)  # far from identity
  raw = pipe.sample(jax.random.key(2), 4, pools, source="prior")
  full = np.asarray(pipe.transform(params, raw).attrs)
  cars = pipe.for_groups(("cars",), learned=pipe.prior.groups)
  kept = np.asarray(cars.applied.mutable) & ~np.asarray(cars.prior.mutable)
  assert kept.any()
  np.testing.assert_allclose(np.asarray(cars.transform(params, raw).attrs),
                             full, atol=1e-5)

  def total(p, m):
    return (cars.transform(p, raw).attrs * m).sum()

  grads = jax.grad(total)(params, kept)
  assert all(not np.asarray(g).any() for g in jax.tree.leaves(grads))
  grads = jax.grad(total)(params, np.asarray(cars.prior.mutable))
  assert any(np.asarray(g).any() for g in jax.tree.leaves(grads))
  # Only the cars learned before: the camera is held at the prior.
  first = pipe.for_groups(("camera",), learned=("cars",))
  new = np.asarray(first.transform(params, raw).attrs)
  held = np.asarray(first.held.mutable)
  np.testing.assert_array_equal(new[:, held], np.asarray(raw.attrs)[:, held])
  cars_only = np.asarray(pipe.for_groups(("cars",)).prior.mutable)
  np.testing.assert_allclose(new[:, cars_only], full[:, cars_only],
                             atol=1e-5)
