"""Shared set-up for the benchmarks: the MNIST, Aerial2D and driving
problems of a config."""

from __future__ import annotations

import time

import jax
import numpy as np

from experiments.configs import mnist as mnist_config
from metasim_jax import grammar as grammar_lib
from metasim_jax import pipeline as pipeline_lib
from metasim_jax import transformer as transformer_lib
from metasim_jax.data import mnist
from metasim_jax.features import MMDTarget


def problem(variant: str = "rot", **overrides):
  """(config, pipe, feat_params, pools, params, X_R set, V set)."""
  config = mnist_config.get_config(variant)
  for k, v in overrides.items():
    node = config
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  pipe, feat_params = pipeline_lib.build(config)
  images, labels = mnist.load_digits(config.digits, config.data_dir or None)
  parts = mnist.split(images, labels, dict(config.splits), config.data_seed)
  pools = {"digits": mnist.texture_pool(*parts["grammar"])}
  scene = grammar_lib.sample(jax.random.key(0), pipe.prior, 2, pools)
  params = transformer_lib.init(jax.random.key(1), pipe.transformer,
                                pipe.prior, scene)
  real = mnist.labelled_render(jax.random.key(2), pipe, "digits",
                               mnist.texture_pool(*parts["real"]))
  val = mnist.labelled_render(jax.random.key(3), pipe, "digits",
                              mnist.texture_pool(*parts["val"]))
  return config, pipe, feat_params, pools, params, real, val


def aerial_world(variant: str = "default", target_file: str | None = None,
                 grammar_file: str | None = None):
  """(config, pipe, feat_params, pools, sets) of the Aerial2D experiment's
  ``variant`` (``experiments/configs/aerial.py``), with other target and
  input grammar files if given; sets: X_R "real", V "val", "test"."""
  from experiments.configs import aerial as aerial_config
  config = aerial_config.get_config(variant)
  if target_file:
    config.target_file = target_file
  if grammar_file:
    config.grammar_file = grammar_file
  pipe, feat_params = pipeline_lib.build(config)
  pools, sets = pipeline_lib.build_data(config, pipe)
  return config, pipe, feat_params, pools, sets


def aerial_relations_world(target_file: str | None = None):
  """(config, pipe, pools, features, target) of Aerial2D's "relations"
  variant with its features trained on V (``task_features``):
  ``features(images)`` is the jitted feature map, ``target`` the MMD
  target of X_R."""
  from metasim_jax import task_features
  config, pipe, params, pools, sets = aerial_world("relations", target_file)
  pipe, params = task_features.build(config, pipe, params, sets, pools)
  fn = jax.jit(pipe.feature_fn)
  features = lambda images: fn(params, images)
  target = MMDTarget.create(features(sets["real"].images),
                            config.mmd.median_multiples)
  return config, pipe, pools, features, target


def edited_target_mmd(pipe, pools, features, target, edit, n: int = 200,
                      draws: int = 3) -> str:
  """MMD^2 to X_R of the target world's scenes after ``edit(attrs, key)``,
  as "mean +- std" over ``draws`` draws of ``n`` scenes. Draw s samples its
  scenes with ``key(s)`` and hands ``edit`` that key (to fold in for its
  own noise), so that every edit of a table sees the same scenes: the
  differences between a table's cells are paired."""
  v = []
  for s in range(draws):
    key = jax.random.key(s)
    scene = pipe.sample(key, n, pools, source="target")
    image = pipe.render(scene.replace(attrs=edit(scene.attrs, key)), pools,
                        pipe.target).image
    v.append(float(target.mmd2(features(image))))
  return f"{np.mean(v):.5f} +- {np.std(v):.5f}"


def driving_world(real: int, val: int, test: int):
  """(config, pipe, feat_params, pools, sets) of the driving default
  (``experiments/configs/driving.py``) with ``real`` / ``val`` / ``test``
  target images; sets: X_R "real", V "val", "test"."""
  from experiments.configs import driving as driving_config
  config = driving_config.get_config()
  config.splits = {"real": real, "val": val, "test": test}
  pipe, feat_params = pipeline_lib.build(config)
  pools, sets = pipeline_lib.build_data(config, pipe)
  return config, pipe, feat_params, pools, sets


def mmd_target(pipe, feat_params, real, n: int, bandwidths) -> MMDTarget:
  return MMDTarget.create(pipe.feature_fn(feat_params, real.images[:n]),
                          bandwidths)


def timeit(fn, *args, repeats: int = 20, warmup: int = 2) -> float:
  """Median seconds per call after warm-up (compilation excluded)."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return float(np.median(times))


def population_trainer(pipe, lr: float, batch: int, num_scenes: int,
                       inner_steps: int):
  """Trains one task net after another (``vmap=False``, the fast choice for
  a U-Net on a CPU) for ``inner_steps`` Adam steps at ``lr`` on minibatches
  of ``batch`` drawn from each member's ``num_scenes`` images."""
  from metasim_jax import tasknet as tasknet_lib
  from metasim_jax.training import steps

  def batch_fn(k, images, labels):
    idx = jax.random.randint(k, (batch,), 0, num_scenes)
    return images[idx], labels[idx]

  return tasknet_lib.PopulationTrainer(
      pipe.tasknet, pipe.task.loss, steps.adam(lr), batch_fn, inner_steps,
      pipe.input_shape, vmap=False)
