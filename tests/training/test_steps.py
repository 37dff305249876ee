"""The jitted training steps move the generator, and compile once."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.configs import mnist as mnist_config
from metasim_jax import features as features_lib
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import transformer as transformer_lib
from metasim_jax.grammar import sample
from metasim_jax.training import steps as pl
from metasim_jax.types import LabeledSet


def _setup(task_weight=0.0):
  config = mnist_config.get_config("rot,smoke")
  config.task.weight = task_weight
  pipe, feat_params = pipeline_lib.build(config)
  rng = np.random.default_rng(0)
  grey = rng.uniform(0, 1, (20, 28, 28)).astype(np.float32)
  from metasim_jax.types import TexturePool
  pools = {"digits": TexturePool.create(np.stack([grey, grey], -1),
                                        np.arange(20) % 10, 10)}
  s = sample(jax.random.key(0), pipe.prior, 2, pools)
  params = transformer_lib.init(jax.random.key(1), pipe.transformer,
                                pipe.prior, s)
  real = pipe.render(sample(jax.random.key(5), pipe.target, 16, pools),
                     pools, pipe.target).image
  target = features_lib.MMDTarget.create(pipe.feature_fn(feat_params, real))
  return config, pipe, feat_params, pools, params, target


def test_mmd_step_moves_the_generator_and_compiles_once():
  config, pipe, feat_params, pools, params, target = _setup()
  tx = pl.adam(1e-2)
  k = 2
  state = pl.init_state(jax.random.key(0),
                        jax.tree.map(lambda x: jnp.stack([x] * k), params), tx)
  step = chex.assert_max_traces(pl.make_mmd_step(pipe, tx).__wrapped__, n=1)
  step = jax.jit(step, donate_argnums=0)
  before = jax.tree.map(np.asarray, state.params)
  for _ in range(3):
    state, m = step(state, pools, feat_params, target)
  assert m["mmd2"].shape == (k,)
  assert bool(jnp.isfinite(m["mmd2"]).all())
  assert int(state.step) == 3
  moved = optax.global_norm(jax.tree.map(lambda a, b: a - b, state.params,
                                         before))
  assert float(moved) > 0


def test_task_step_moves_the_generator():
  config, pipe, feat_params, pools, params, target = _setup(task_weight=1.0)
  tx = pl.adam(1e-2)
  state = pl.init_state(jax.random.key(0),
                        jax.tree.map(lambda x: x[None], params), tx)
  step = pl.make_task_step(
      pipe, tx, pl.adam(1e-3), num_scenes=16, inner_steps=2, inner_batch=8,
      task_weight=1.0, mmd_weight=0.0, baseline_decay=0.5,
      reward="neg_loss", fixed_task_init=True)
  val = LabeledSet(
      pipe.render(sample(jax.random.key(9), pipe.target, 8, pools), pools,
                  pipe.target).image, jnp.arange(8) % 10)
  before = jax.tree.map(np.asarray, state.params)
  state, m0 = step(state, pools, feat_params, target, val)
  # First step: the baseline is the reward itself, so no update yet.
  assert float(m0["baseline"]) == float(m0["reward"])
  state = state.replace(baseline=state.baseline - 1.0)  # force an advantage
  state, m1 = step(state, pools, feat_params, target, val)
  moved = optax.global_norm(jax.tree.map(lambda a, b: a - b, state.params,
                                         before))
  assert float(moved) > 0
  assert bool(state.has_baseline.all())


def test_mmd_optimizers_by_name():
  params = {"w": jnp.zeros(2)}
  grads = {"w": jnp.array([1e-4, 1e-2])}
  moves = {}
  for name in pl.OPTIMIZERS:
    tx = pl.optimizer(name, 0.1)
    updates, _ = tx.update(grads, tx.init(params), params)
    moves[name] = np.abs(np.asarray(updates["w"]))
  # Adam moves both parameters alike; SGD in proportion to the gradient.
  np.testing.assert_allclose(moves["adam"][0], moves["adam"][1], rtol=1e-3)
  np.testing.assert_allclose(moves["sgd"], 0.1 * np.array([1e-4, 1e-2]),
                             rtol=1e-5)
  with pytest.raises(ValueError, match="optimizer"):
    pl.optimizer("lamb", 0.1)


def test_task_reward_forms():
  scores = {"loss": jnp.asarray(0.25), "miou": jnp.asarray(0.8),
            "iou_car": jnp.asarray(0.5)}
  assert float(pl.reward_of(scores, "score", "miou")) == pytest.approx(0.8)
  assert float(pl.reward_of(scores, "neg_loss", "miou")) == -0.25
  assert float(pl.reward_of(scores, "score:iou_car", "miou")) == 0.5
  for bad in ("accuracy", "neg_loss:iou_car", "score:"):
    with pytest.raises(ValueError, match="unknown task reward"):
      pl.check_reward(bad)
  with pytest.raises(ValueError, match="no metric 'iou_bus'"):
    pl.reward_of(scores, "score:iou_bus", "miou")


def test_reward_metric_is_checked_before_training(tmp_path):
  from metasim_jax.training import trainer
  config = mnist_config.get_config("rot,smoke")
  config.task.weight, config.task.steps = 1.0, 1
  config.task.reward = "score:iou_car"  # MNIST scores accuracy
  with pytest.raises(ValueError, match="no metric 'iou_car'.*accuracy"):
    trainer.run(config, str(tmp_path))
  assert not (tmp_path / "checkpoints").exists()
