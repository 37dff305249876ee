"""Training a task network on generated data and scoring it (pure, jittable).

``train`` runs the whole optimisation as one ``lax.scan``: each step draws a
batch from ``batch_fn(key)`` (fresh generated scenes, or a minibatch of a
fixed generated dataset) and takes an optax step.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

BatchFn = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def train(key: jax.Array, model: nn.Module, tx: optax.GradientTransformation,
          batch_fn: BatchFn, num_steps: int, input_shape: tuple[int, ...]):
  """Trains ``model`` from scratch for ``num_steps``; returns its params."""
  k_init, k_loop = jax.random.split(key)
  params = model.init(k_init, jnp.zeros((1,) + tuple(input_shape)))["params"]

  def loss_fn(p, x, y, k):
    logits = model.apply({"params": p}, x, train=True, rngs={"dropout": k})
    return cross_entropy(logits, y)

  def step(carry, k):
    p, opt = carry
    k_data, k_drop = jax.random.split(k)
    x, y = batch_fn(k_data)
    loss, grads = jax.value_and_grad(loss_fn)(p, x, y, k_drop)
    updates, opt = tx.update(grads, opt, p)
    return (optax.apply_updates(p, updates), opt), loss

  (params, _), losses = jax.lax.scan(step, (params, tx.init(params)),
                                     jax.random.split(k_loop, num_steps))
  return params, losses


def evaluate(params, model: nn.Module, images: jax.Array, labels: jax.Array,
             mask: jax.Array | None = None) -> dict[str, jax.Array]:
  """Accuracy and mean cross-entropy over a (padded, masked) labelled set."""
  logits = model.apply({"params": params}, images, train=False)
  if mask is None:
    mask = jnp.ones(labels.shape, bool)
  w = mask.astype(jnp.float32)
  n = jnp.maximum(w.sum(), 1.0)
  correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return {"accuracy": jnp.sum(correct * w) / n, "loss": jnp.sum(ce * w) / n}
