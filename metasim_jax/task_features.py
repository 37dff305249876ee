"""MMD features learned from the labelled validation set V.

The paper's MMD compares lower Inception layers, pretrained on ImageNet;
they cannot be downloaded here, and the offline random-filter statistics
(``features/local_stats.py``) see the camera and the large surfaces of a
driving scene but hardly its cars (``benchmarks/driving_landscape.py``).
Meta-Sim is allowed to see V (the task objective scores on it), so a
feature network may learn from it what matters to the task:

  1. the task network is trained on V (``config.task_features.steps``
     steps of ``batch`` images, Adam at ``lr``), each batch joined by
     ``synthetic`` fresh scenes of the prior with their ground truth, so
     that it also responds to what the prior makes and the target lacks
     (e.g. cars turned sideways, which V never shows);
  2. its outputs on an image become smooth maps (``Task.feature_maps``:
     class probabilities; for detection the car-centre probability and the
     box sizes there), pooled (``pooling``) over the cells of ``grid``
     ("cells": where each class is) or into relation statistics at
     ``radii`` px ("relations", ``features/relations.py``: which class lies
     next to which, and whether their edges run parallel: cars on the road
     and aligned with it, wherever the road is), or, for detection, into
     the joint distribution of the objects' size, shape and row over
     ``bins`` per value at the target's quantiles ("objects",
     ``features/objects.py``: far cars turned sideways apart from near
     aligned ones, which cell means mix);
  3. that block joins the configured features (``config.features``), each
     block scaled by its median distance over X_R (``features/blocks.py``),
     the learned one weighted by ``weight``.

The MMD's gradient reaches the renderer through the network's image
gradient (finite differences are taken in image space), so the learned
block adds one forward and backward pass of a small network per MMD step.
``steps = 0`` (the default) keeps the configured features alone.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import jax
import jax.numpy as jnp
import optax

from metasim_jax import keys
from metasim_jax import tasknet as tasknet_lib
from metasim_jax.features import blocks
from metasim_jax.features import objects
from metasim_jax.features import relations
from metasim_jax.pipeline import Pipeline
from metasim_jax.types import LabeledSet


def _pad_rows(labels: jax.Array, k: int) -> jax.Array:
  """[B, K', F] object rows padded with zero rows (no object) to K >= K'
  (the detection layout); other label shapes are returned as they are."""
  if labels.ndim != 3 or labels.shape[1] >= k:
    return labels
  return jnp.pad(labels, ((0, 0), (0, k - labels.shape[1]), (0, 0)))


def train_on_set(pipe: Pipeline, data: LabeledSet, key: jax.Array, *,
                 steps: int, batch: int, lr: float, synthetic: int = 0,
                 pools=None) -> tuple[Any, float]:
  """(task-net params, last loss) trained on random minibatches of
  ``data`` (its labels in the task's target layout), each joined by
  ``synthetic`` fresh scenes of the prior with their ground truth (drawn
  from ``pools``): the network then also knows what the prior's objects
  look like, e.g. cars at every heading, not only the target's."""
  n = len(data.labels)
  if n < 1:
    raise ValueError("task_features: the validation set is empty")
  real = min(batch, n)

  def batch_fn(k, images, labels):
    k_real, k_syn = jax.random.split(k)
    idx = jax.random.choice(k_real, n, (real,), replace=False)
    x, y = images[idx], labels[idx]
    if synthetic:
      xs, ys = pipe.images_and_targets(k_syn, synthetic, pools, None, "prior")
      width = max(y.shape[1], ys.shape[1]) if y.ndim == 3 else 0
      x = jnp.concatenate([x, xs.astype(x.dtype)])
      y = jnp.concatenate([_pad_rows(y, width),
                           _pad_rows(ys.astype(y.dtype), width)])
    return x, y

  tx = optax.chain(optax.clip_by_global_norm(1.0),
                   optax.adam(optax.cosine_decay_schedule(lr, steps)))
  trainer = tasknet_lib.HostTrainer(pipe.tasknet, pipe.task.loss, tx,
                                    batch_fn, steps, pipe.input_shape)
  params, loss = trainer.run(key, data.images, data.labels)
  return params, float(loss)


POOLINGS = ("cells", "relations", "objects")


def learned_block(pipe: Pipeline, grid, pooling: str = "cells",
                  radii=(2.0, 4.0, 8.0),
                  bin_centres=None) -> blocks.FeatureFn:
  """fn(task-net params, images) -> the task net's feature maps pooled over
  the cells of ``grid`` (rows, cols), or their relation statistics at
  ``radii`` (``pooling="relations"``), or their objects' statistics over
  ``bin_centres`` (``pooling="objects"``, ``objects.centres``)."""
  model, task, grid, radii = pipe.tasknet, pipe.task, tuple(grid), tuple(radii)
  if pooling not in POOLINGS:
    raise ValueError(f"task_features.pooling must be one of {POOLINGS}, got "
                     f"{pooling!r}")
  if pooling == "objects" and bin_centres is None:
    raise ValueError("task_features.pooling 'objects' needs bin centres "
                     "(objects.centres of the target's maps)")

  def learned(p, images: jax.Array) -> jax.Array:
    maps = task.feature_maps(model.apply({"params": p}, images, train=False))
    if pooling == "cells":
      return blocks.pool_maps(maps, grid)
    if pooling == "objects":
      return objects.object_stats(maps, bin_centres)
    if maps.ndim != 4:
      raise ValueError("task_features.pooling 'relations' needs maps over "
                       f"the image (segmentation, detection); the "
                       f"{type(task).__name__} task gives {maps.shape}")
    return relations.relation_stats(maps, radii)

  return learned


def target_maps(pipe: Pipeline, params, images, chunk: int = 32):
  """The task net's feature maps of ``images``, computed ``chunk`` at a
  time."""
  model, task = pipe.tasknet, pipe.task
  fn = jax.jit(lambda x: task.feature_maps(
      model.apply({"params": params}, x, train=False)))
  return jnp.concatenate([fn(jnp.asarray(images[i:i + chunk]))
                          for i in range(0, len(images), chunk)])


def object_bins(pipe: Pipeline, params, real, bins: int, pools=None,
                key=None, prior_scenes: int = 200):
  """[V + 1, bins] centres of the "objects" pooling's bins: quantiles of
  the objects the task net finds in the target's images ``real`` and, with
  ``pools``, in as many (at most ``prior_scenes``) of the prior's, so that
  the bins span both: bins over the target's objects alone put every
  prior object beyond their range into the edge bin, where it weighs the
  same wherever it is (far cars, smaller than any of the target's, could
  not pull closer; ``benchmarks/driving_valley.py``)."""
  maps = target_maps(pipe, params, real)
  if pools is not None:
    n = min(len(real), prior_scenes)
    images, _ = pipe.images_and_targets(key, n, pools, None, "prior")
    maps = jnp.concatenate([maps, target_maps(pipe, params, images)])
  return objects.centres(maps, bins)


def build(config, pipe: Pipeline, feat_params, sets: dict[str, LabeledSet],
          pools=None) -> tuple[Pipeline, Any]:
  """(pipeline, feature params) with the learned block added to the MMD
  features if ``config.task_features.steps`` > 0; else unchanged.
  ``pools``: the grammar's pools, for ``config.task_features.synthetic``
  prior scenes per batch."""
  cfg = config.task_features
  if not cfg.steps:
    return pipe, feat_params
  if cfg.weight <= 0:
    raise ValueError(f"config.task_features.weight must be > 0, got "
                     f"{cfg.weight}")
  params, loss = train_on_set(
      pipe, sets["val"], keys.root(config.data_seed, "features"),
      steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, synthetic=cfg.synthetic,
      pools=pools)
  logging.info("task features: %s trained on V (%d images, %d steps, "
               "+%d prior scenes a batch), loss %.4f", config.tasknet.name,
               len(sets["val"].labels), cfg.steps, cfg.synthetic, loss)
  centres = None
  if cfg.pooling == "objects":
    centres = object_bins(
        pipe, params, sets["real"].images, cfg.bins, pools,
        jax.random.fold_in(keys.root(config.data_seed, "features"), 1))
    logging.info("task features: object bins at %s", centres.round(3))
  block = learned_block(pipe, cfg.grid, cfg.pooling, cfg.radii, centres)
  fp, fn = blocks.balanced([pipe.feature_fn, block],
                           [feat_params, params],
                           jnp.asarray(sets["real"].images),
                           [1.0, float(cfg.weight)])
  return dataclasses.replace(pipe, feature_fn=fn), fp
