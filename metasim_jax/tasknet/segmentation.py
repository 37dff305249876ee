"""Segmentation metrics: confusion matrix and per-class IoU (jittable)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def confusion_matrix(pred: jax.Array, labels: jax.Array, num_classes: int,
                     weight: jax.Array | None = None) -> jax.Array:
  """[K, K] (weighted) counts, rows = true class, columns = predicted."""
  idx = labels.reshape(-1) * num_classes + pred.reshape(-1)
  w = (jnp.ones(idx.shape, jnp.float32) if weight is None
       else weight.reshape(-1).astype(jnp.float32))
  counts = jnp.zeros(num_classes * num_classes, jnp.float32).at[idx].add(w)
  return counts.reshape(num_classes, num_classes)


def iou_from_confusion(cm: jax.Array) -> jax.Array:
  """Per-class IoU = TP / (TP + FP + FN), accumulated over the whole set.

  A class absent from both labels and predictions gets NaN (undefined), so
  that a mean over classes can skip it explicitly.
  """
  tp = jnp.diag(cm)
  union = cm.sum(0) + cm.sum(1) - tp
  return jnp.where(union > 0, tp / jnp.maximum(union, 1.0), jnp.nan)


def evaluate(params, model, images: jax.Array, labels: jax.Array,
             class_names: tuple[str, ...], mean_over: tuple[str, ...],
             chunk: int = 100) -> dict[str, jax.Array]:
  """IoU per class (``iou_<name>``), ``miou`` over ``mean_over``, pixel
  accuracy and mean cross-entropy, over a set [M, H, W, C] / [M, H, W]."""
  k = len(class_names)
  m = images.shape[0]
  chunk = min(chunk, m)
  pad = (-m) % chunk
  x = jnp.concatenate([images, jnp.zeros((pad,) + images.shape[1:])])
  y = jnp.concatenate([labels, jnp.zeros((pad,) + labels.shape[1:],
                                         labels.dtype)])
  valid = jnp.arange(m + pad) < m
  chunks = lambda a: a.reshape((-1, chunk) + a.shape[1:])

  def accumulate(carry, batch):
    cm, ce = carry
    xb, yb, vb = batch
    logits = model.apply({"params": params}, xb, train=False)
    pred = jnp.argmax(logits, -1)
    w = jnp.broadcast_to(vb[:, None, None], yb.shape).astype(jnp.float32)
    cm = cm + confusion_matrix(pred, yb, k, w)
    ce = ce + jnp.sum(w * optax.softmax_cross_entropy_with_integer_labels(
        logits, yb))
    return (cm, ce), None

  (cm, ce), _ = jax.lax.scan(accumulate, (jnp.zeros((k, k)), jnp.zeros(())),
                             (chunks(x), chunks(y), chunks(valid)))
  iou = iou_from_confusion(cm)
  out = {f"iou_{n}": iou[i] for i, n in enumerate(class_names)
         if n != "none"}  # "none" (no object) is not a class of the task
  sel = jnp.array([class_names.index(n) for n in mean_over])
  out["miou"] = jnp.nanmean(iou[sel])
  out["pixel_accuracy"] = jnp.trace(cm) / jnp.maximum(cm.sum(), 1.0)
  out["loss"] = ce / jnp.maximum(cm.sum(), 1.0)
  return out
