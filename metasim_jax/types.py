"""Shared state pytrees passed between the pipeline stages."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class SceneGraph:
  """A batch of fixed-capacity scene graphs of one grammar.

  The structure (slots, edges) is the grammar's and is the same for every
  scene; only attribute values and which slots exist vary.

  Attributes:
    attrs: [B, N, A] float32 attribute values in natural units (pixels,
      degrees, category index as a float); columns are
      ``Grammar.attr_names``.
    node_mask: [B, N] bool, the slot holds a node in this scene.
  """
  attrs: jax.Array
  node_mask: jax.Array

  @property
  def batch_size(self) -> int:
    return self.attrs.shape[0]


@struct.dataclass
class TexturePool:
  """Textures one node class draws from, grouped by label.

  Attributes:
    images: [T, h, w, C + 1] float32, premultiplied colour channels then alpha.
    labels: [T] int32 label of each texture (e.g. the digit class).
    label_offsets: [L] int32 first texture of each label (sorted by label).
    label_counts: [L] int32 number of textures of each label.
    boxes: [T, 4] float32 content box (x0, y0, x1, y1) in texel units.
  """
  images: jax.Array
  labels: jax.Array
  label_offsets: jax.Array
  label_counts: jax.Array
  boxes: jax.Array

  @classmethod
  def create(cls, images: np.ndarray, labels: np.ndarray,
             num_labels: int | None = None,
             alpha_threshold: float = 0.1) -> "TexturePool":
    """Builds a pool from [T, h, w, C+1] premultiplied RGBA-like textures."""
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels, np.int32)
    if images.ndim != 4 or images.shape[-1] < 2:
      raise ValueError(f"textures must be [T, h, w, C+1], got {images.shape}")
    if labels.shape != images.shape[:1]:
      raise ValueError(f"labels {labels.shape} do not match textures "
                       f"{images.shape[:1]}")
    order = np.argsort(labels, kind="stable")
    images, labels = images[order], labels[order]
    num_labels = int(labels.max()) + 1 if num_labels is None else num_labels
    counts = np.bincount(labels, minlength=num_labels).astype(np.int32)
    if (counts == 0).any():
      raise ValueError(f"no texture for labels {np.flatnonzero(counts == 0)}")
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    alpha = images[..., -1] > alpha_threshold
    boxes = np.zeros((len(images), 4), np.float32)
    h, w = images.shape[1:3]
    for t, a in enumerate(alpha):
      ys, xs = np.nonzero(a)
      boxes[t] = ((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
                  if len(xs) else (0, 0, w, h))
    return cls(images=jnp.asarray(images), labels=jnp.asarray(labels),
               label_offsets=jnp.asarray(offsets),
               label_counts=jnp.asarray(counts), boxes=jnp.asarray(boxes))

  @property
  def size(self) -> tuple[int, int]:
    return tuple(self.images.shape[1:3])

  def __len__(self) -> int:
    return self.images.shape[0]


@struct.dataclass
class Renders:
  """Named render layers of a batch (every renderer returns these).

  Attributes:
    image: [B, H, W, C] float32 in [0, 1].
    semantic: [B, H, W] int32 class id (the problem's one semantic table,
      ``render.labels.semantic_names`` of the prior grammar), 0 = none.
    instance: [B, H, W] int32 slot index of the top-most node, -1 = none.
    boxes: [B, N, 4] float32 (x0, y0, x1, y1) pixels, per slot.
    box_mask: [B, N] bool, the slot exists and is drawn.
    truncation, occlusion: [B, N] float32 fractions of each object outside
      the image and hidden by others (renderers that measure them, e.g. the
      3D bridge; None otherwise).
  """
  image: jax.Array
  semantic: jax.Array
  instance: jax.Array
  boxes: jax.Array
  box_mask: jax.Array
  truncation: jax.Array | None = None
  occlusion: jax.Array | None = None


@struct.dataclass
class LabeledSet:
  """A labelled image set: images [M, H, W, C] and the task's targets, e.g.
  int32 [M] (classification) or [M, H, W] (segmentation, semantic ids)."""
  images: jax.Array
  labels: jax.Array


@struct.dataclass
class MetaSimState:
  """Everything that changes during a generator-training stage: one pytree.

  Attributes:
    params: transformer params with a leading [K] axis (one per start).
    opt_state: optax state of the transformer optimiser, [K]-batched.
    baseline: [K] moving-average reward of REINFORCE.
    has_baseline: [K] bool, a reward has been seen.
    step: scalar int32 step of the stage.
    key: PRNG key of the stage; steps split ``fold_in(key, step)``.
  """
  params: Any
  opt_state: Any
  baseline: jax.Array
  has_baseline: jax.Array
  step: jax.Array
  key: jax.Array
