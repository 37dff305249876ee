"""Learned MMD features: the task net trained on V, beside the configured
features (metasim_jax/task_features.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import mnist as mnist_config
from metasim_jax import keys
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import task_features
from metasim_jax.features import blocks
from metasim_jax.features import objects
from metasim_jax.types import LabeledSet


@pytest.fixture(scope="module")
def problem():
  config = mnist_config.get_config("rot,smoke")
  pipe, feat_params = pipeline_lib.build(config)
  _, sets = pipeline_lib.build_data(config, pipe)
  return config, pipe, feat_params, sets


def test_off_by_default(problem):
  config, pipe, feat_params, sets = problem
  assert config.task_features.steps == 0
  assert task_features.build(config, pipe, feat_params, sets) == (
      pipe, feat_params)


def test_training_on_v_lowers_its_loss(problem):
  _, pipe, _, sets = problem
  key = keys.root(0, "features")
  losses = {}
  for steps in (1, 40):
    params, _ = task_features.train_on_set(pipe, sets["val"], key,
                                           steps=steps, batch=16, lr=3e-3)
    losses[steps] = float(pipe.task.loss(
        pipe.tasknet.apply({"params": params}, sets["val"].images),
        sets["val"].labels))
  assert losses[40] < 0.8 * losses[1]  # measured: 2.28 -> 1.64


def test_learned_block_joins_the_features(problem):
  config, pipe, feat_params, sets = problem
  config = config.copy_and_resolve_references()
  config.task_features.steps = 5
  config.task_features.weight = 4.0
  sets = {**sets, "real": LabeledSet(sets["real"].images[:48],
                                     sets["real"].labels[:48])}
  new, fp = task_features.build(config, pipe, feat_params, sets)
  real = sets["real"].images
  base = pipe.feature_fn(feat_params, real)
  feats = np.asarray(new.feature_fn(fp, real))
  k = pipe.task.num_outputs  # class probabilities: no space to pool
  assert feats.shape == (len(real), base.shape[1] + k)
  # Each block's median distance over X_R is sqrt(its weight).
  assert blocks.median_distance(feats[:, :-k]) == pytest.approx(1.0, 1e-3)
  assert blocks.median_distance(feats[:, -k:]) == pytest.approx(2.0, 1e-3)
  # The stages' pipelines keep the learned features.
  assert new.for_groups(None).feature_fn is new.feature_fn
  # The gradient reaches the images through the network.
  g = jax.grad(lambda x: new.feature_fn(fp, x)[:, -k:].sum())(real[:2])
  assert float(jnp.abs(g).max()) > 0


def test_prior_scenes_join_the_batches(problem):
  config, pipe, _, sets = problem
  pools, _ = pipeline_lib.build_data(config, pipe)
  key = keys.root(0, "features")
  alone, _ = task_features.train_on_set(pipe, sets["val"], key, steps=2,
                                        batch=8, lr=1e-3)
  mixed, loss = task_features.train_on_set(
      pipe, sets["val"], key, steps=2, batch=8, lr=1e-3, synthetic=4,
      pools=pools)
  assert np.isfinite(loss)
  diff = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), alone, mixed)
  assert max(jax.tree.leaves(diff)) > 0  # the prior's scenes were used


def test_relations_pooling_on_aerial_maps(problem):
  """Aerial2D's U-Net maps pooled into relation statistics: one per class,
  then contact and alignment per class pair and radius; a classifier's
  maps (no space) are refused by name."""
  from experiments.configs import aerial as aerial_config
  config = aerial_config.get_config("smoke,relations")
  pipe, _ = pipeline_lib.build(config)
  images = jax.random.uniform(jax.random.key(1), (3,) + pipe.input_shape)
  block = task_features.learned_block(pipe, (1, 1), "relations", (2.0, 4.0))
  params = pipe.tasknet.init(jax.random.key(0), images[:1],
                             train=False)["params"]
  k = pipe.task.num_outputs
  feats = block(params, images)
  assert feats.shape == (3, k + 2 * 2 * k * k)
  assert np.isfinite(np.asarray(feats)).all()
  with pytest.raises(ValueError, match="pooling must be one of"):
    task_features.learned_block(pipe, (1, 1), "max")
  _, mpipe, _, sets = problem  # MNIST: class probabilities per image
  mparams = mpipe.tasknet.init(jax.random.key(0), sets["val"].images[:1],
                               train=False)["params"]
  with pytest.raises(ValueError, match="'relations' needs maps over the "
                     "image"):
    task_features.learned_block(mpipe, (1, 1), "relations")(
        mparams, sets["val"].images[:2])


def test_objects_pooling_on_detection_maps():
  """The driving detector's maps pooled into object statistics: a count
  and a joint histogram over (log height, log aspect, row) with bins at the
  given centres; differentiable in the image; refused without centres."""
  from experiments.configs import driving as driving_config
  config = driving_config.get_config("smoke")
  config.renderer = "raster2d"  # no servers: the detector alone
  config.renderer_options = {}
  config.canvas = {"height": 32, "width": 64, "channels": 3}  # compiles fast
  pipe, _ = pipeline_lib.build(config)
  images = jax.random.uniform(jax.random.key(1), (2,) + pipe.input_shape)
  params = pipe.tasknet.init(jax.random.key(0), images[:1],
                             train=False)["params"]
  maps = task_features.target_maps(pipe, params, images, chunk=1)
  assert maps.shape[-1] == 3  # p, p log h, p log aspect
  centres = objects.centres(maps, 3)
  assert centres.shape == (3, 3)
  block = task_features.learned_block(pipe, (1, 1), "objects",
                                      bin_centres=centres)
  feats = block(params, images)
  assert feats.shape == (2, 1 + 3 ** 3)
  assert np.isfinite(np.asarray(feats)).all()
  g = jax.grad(lambda x: block(params, x).sum())(images)
  assert np.isfinite(np.asarray(g)).all() and float(jnp.abs(g).max()) > 0
  with pytest.raises(ValueError, match="needs bin centres"):
    task_features.learned_block(pipe, (1, 1), "objects")
