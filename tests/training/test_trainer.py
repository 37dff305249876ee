"""Pieces of the experiment loop: starts, target sets, config checks."""

import json

import jax
import numpy as np
import optax
import pytest

from experiments.configs import aerial as aerial_config
from experiments.configs import mnist as mnist_config
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import transformer as transformer_lib
from metasim_jax.data import aerial, mnist
from metasim_jax.grammar import sample
from metasim_jax.training import seed as seed_lib
from metasim_jax.training import starts, trainer
from tests.conftest import random_pool


def test_start_offsets_cover_the_circle(grammar):
  cols, offsets = starts.start_offsets(jax.random.key(0), grammar, 4, 0.0)
  names = [grammar.attr_names[j] for j in cols]
  assert names == ["x", "y", "yaw"]
  yaw = offsets[:, names.index("yaw")] * 180.0
  assert yaw[0] == 0.0  # start 0 is the pre-trained identity
  for k in (1, 2, 3):
    assert abs(yaw[k] - 90.0 * k) <= 45.0
  np.testing.assert_array_equal(offsets[:, :2], 0.0)  # spread 0


def test_offsets_rotate_the_generated_scenes(grammar, pools):
  s = sample(jax.random.key(0), grammar, 4, pools)
  model = transformer_lib.build(grammar, hidden=8)
  params = transformer_lib.init(jax.random.key(1), model, grammar, s)
  params = jax.tree.map(lambda x: x * 0, params)  # exact identity
  moved = transformer_lib.with_offsets(params, grammar, [0.5],
                                       [grammar.col("yaw")])
  new, _ = transformer_lib.transform(moved, model, grammar, s)
  d, j = grammar.slot("scene/digit[0]"), grammar.col("yaw")
  diff = (np.asarray(new.attrs - s.attrs)[:, d, j] + 180) % 360 - 180
  np.testing.assert_allclose(diff, 90.0, atol=1e-3)


def _aerial_affine_starts(num_starts):
  """(grammar, affine transformer, 4 prior scenes, multi-start state) of
  the Aerial2D smoke world."""
  c = aerial_config.get_config("smoke")
  grammar = pipeline_lib.build(c)[0].prior
  pools = aerial.texture_pools(0, dict(c.textures.counts))
  s = sample(jax.random.key(0), grammar, 4, pools)
  model = transformer_lib.build(grammar, hidden=8, affine=True)
  params = transformer_lib.init(jax.random.key(1), model, grammar, s)
  state = starts.multi_start_state(jax.random.key(2), jax.random.key(3),
                                   params, grammar, num_starts, 0.0,
                                   optax.sgd(0.1))
  return grammar, model, s, state


def test_odd_starts_begin_with_relative_angles_contracted():
  """With the affine head, odd starts' relative angles (a car's heading on
  its road) begin contracted by ANGLE_START_SPREAD; start 0, angles in the
  image's frame (the road's) and every continuous spread stay as given."""
  grammar, _, _, state = _aerial_affine_starts(3)
  log_spread = np.asarray(state.params["log_spread"])
  np.testing.assert_array_equal(log_spread[0], 0.0)
  np.testing.assert_array_equal(log_spread[2], 0.0)
  names, yaw = list(grammar.classes), grammar.col("yaw")
  want = np.zeros_like(log_spread[1])
  want[names.index("car"), yaw] = np.log(starts.ANGLE_START_SPREAD)
  np.testing.assert_allclose(log_spread[1], want, rtol=1e-6)


def test_contracted_starts_turn_image_frame_headings_only():
  """Start 1 (contracted) is not rotated in its parent's frame: with its
  contraction undone, its cars' headings match start 0's while its road
  turns by the stratified offset; start 2 (not contracted) turns both."""
  grammar, model, s, state = _aerial_affine_starts(3)
  yaw = grammar.col("yaw")
  road = grammar.slot("scene/road[0]")
  car = grammar.slot("scene/road[0]/car[0]")

  def yaws(k):
    p = jax.tree.map(lambda x: x[k], state.params)
    p = {**p, "log_spread": p["log_spread"] * 0}
    new, _ = transformer_lib.transform(p, model, grammar, s)
    return np.asarray(new.attrs)[:, :, yaw]

  def turn(a, b):
    return (a - b + 180.0) % 360.0 - 180.0

  y0, y1, y2 = yaws(0), yaws(1), yaws(2)
  np.testing.assert_allclose(turn(y1[:, car], y0[:, car]), 0.0, atol=1e-3)
  assert np.all(np.abs(turn(y1[:, road], y0[:, road])) > 45.0)
  assert np.all(np.abs(turn(y2[:, car], y0[:, car])) > 45.0)


def test_target_set_uses_every_digit_once_with_its_label():
  config = mnist_config.get_config("rot,smoke")
  pipe, _ = pipeline_lib.build(config)
  pool = random_pool(num=20, size=28, labels=10)
  data = mnist.labelled_render(jax.random.key(0), pipe, "digits", pool)
  assert data.images.shape == (20, 32, 32, 1)
  np.testing.assert_array_equal(data.labels, pool.labels)
  # Distinct textures give distinct images.
  flat = np.asarray(data.images).reshape(20, -1)
  assert len({row.tobytes() for row in flat}) == 20


def test_target_with_other_structure_is_rejected():
  config = mnist_config.get_config("rot,smoke")
  config.target.classes.scene.children = [["digit", 1], ["background", 1]]
  with pytest.raises(ValueError, match="structure"):
    pipeline_lib.build(config)


def test_empty_seeds_is_a_clear_error(tmp_path):
  config = mnist_config.get_config("rot,smoke")
  config.seeds = ()
  with pytest.raises(ValueError, match="seeds"):
    trainer.run(config, str(tmp_path))


def test_config_read_back_from_json_builds_a_hashable_task_net():
  """results.json stores tuples as lists; a pipeline built from it must
  still give a task net that can key a jit cache."""
  import json
  import ml_collections
  c = aerial_config.get_config("smoke")
  c = ml_collections.ConfigDict(json.loads(c.to_json()))
  assert isinstance(c.tasknet.kwargs.features, list)
  pipe, _ = pipeline_lib.build(c)
  hash(pipe.tasknet)


def test_task_stage_checkpoints_every_step(tmp_path, monkeypatch):
  """A task step trains task nets (minutes on Aerial2D): the stage saves
  after each one even when ``checkpoint_every`` is far larger."""
  config = mnist_config.get_config("rot,smoke,task_only,es")
  config.task.steps = 3
  config.checkpoint_every = 1000
  saved, save = [], seed_lib.SeedRun.save

  def recording(run, stage, step, state):
    saved.append((stage, step))
    save(run, stage, step, state)

  monkeypatch.setattr(seed_lib.SeedRun, "save", recording)
  trainer.run(config, str(tmp_path))
  task = [step for stage, step in saved if stage.endswith("task")]
  assert task == [0, 1, 2], saved  # step 3 is the evaluation's checkpoint
  # The results keep the generated attributes after every task step.
  results = json.loads((tmp_path / "results.json").read_text())
  (trace,) = results["per_seed"][0]["task_attribute_trace"].values()
  assert [t["step"] for t in trace] == [1, 2, 3]
  assert set(trace[0]) == {"step", "digit.x", "digit.y", "digit.yaw",
                           "digit.yaw_axis"}
  assert all(np.isfinite(t["digit.yaw"]["std"]) for t in trace)
