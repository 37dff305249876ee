"""Gradients through a renderer: exact autodiff, or the paper's finite
differences as a ``jax.custom_vjp``.

``with_gradient(image_fn, steps, mode)`` returns ``f(attrs, context) ->
image`` whose VJP is either JAX's own (``"autodiff"``) or a per-scene central
difference on every perturbed (slot, attribute) pair (``"finite_diff"``)::

    d<g, I>/d a_{b,n,j} ~= <g_b, I_b(a + h e_nj) - I_b(a - h e_nj)> / (2 h)

All ``2 P`` perturbed copies of the batch are rendered in one batched call of
``image_fn``, so the same path serves renderers that have no JAX gradient
(a host renderer behind ``jax.pure_callback``).  ``steps`` is the grammar's
static ``fd_step`` table: 0 means "not perturbed" (immutable attributes get a
zero gradient).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

ImageFn = Callable[[jax.Array, Any], jax.Array]
MODES = ("autodiff", "finite_diff")


def _zero_cotangent(x):
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.inexact):
    return jnp.zeros_like(x)
  return np.zeros(x.shape, jax.dtypes.float0)


def perturbations(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                             np.ndarray]:
  """(slot index, attr index, step) of each perturbed pair, P of them."""
  n_idx, a_idx = np.nonzero(steps > 0)
  return n_idx, a_idx, steps[n_idx, a_idx].astype(np.float32)


def finite_difference(image_fn: ImageFn, steps: np.ndarray,
                      directional: Callable | None = None) -> ImageFn:
  """Wraps ``image_fn`` with a central-difference VJP in ``attrs``.

  ``directional(attrs, context, g) -> [B, P]``, if given, computes the
  central differences <g_b, I_b(a + h e_p) - I_b(a - h e_p)> / (2 h) of the
  pairs of ``perturbations(steps)`` itself (a renderer that draws each
  perturbed copy only where it can change, e.g. the 3D bridge); otherwise
  the 2 P perturbed copies of the batch are rendered by ``image_fn``."""
  n_idx, a_idx, h = perturbations(np.asarray(steps))
  num = len(h)

  @jax.custom_vjp
  def f(attrs, context):
    return image_fn(attrs, context)

  def fwd(attrs, context):
    return image_fn(attrs, context), (attrs, context)

  def bwd(res, g):
    attrs, context = res
    if num == 0:
      return jnp.zeros_like(attrs), jax.tree.map(_zero_cotangent, context)
    if directional is not None:
      grads = directional(attrs, context, g)
      out = jnp.zeros_like(attrs).at[:, n_idx, a_idx].set(grads)
      return out, jax.tree.map(_zero_cotangent, context)
    delta = np.zeros((2 * num,) + steps.shape, np.float32)
    delta[np.arange(num), n_idx, a_idx] = h
    delta[num + np.arange(num), n_idx, a_idx] = -h
    b = attrs.shape[0]
    # [2P, B, N, A] -> one batch of 2P * B scenes.
    shifted = (attrs[None] + delta[:, None]).reshape((-1,) + attrs.shape[1:])
    tiled = jax.tree.map(
        lambda c: jnp.broadcast_to(c[None], (2 * num,) + c.shape).reshape(
            (-1,) + c.shape[1:]), context)
    images = image_fn(shifted, tiled).reshape((2 * num, b) + g.shape[1:])
    diff = (images[:num] - images[num:]) / (2.0 * h.reshape(
        (num,) + (1,) * g.ndim))
    grads = jnp.einsum("pb...,b...->bp", diff, g)  # per scene, never mixed
    out = jnp.zeros_like(attrs).at[:, n_idx, a_idx].set(grads)
    return out, jax.tree.map(_zero_cotangent, context)

  f.defvjp(fwd, bwd)
  return f


def with_gradient(image_fn: ImageFn, steps: np.ndarray, mode: str,
                  directional: Callable | None = None) -> ImageFn:
  """``image_fn`` with the gradient path named by ``mode``."""
  if mode == "autodiff":
    return image_fn
  if mode == "finite_diff":
    return finite_difference(image_fn, steps, directional)
  raise ValueError(f"unknown gradient mode {mode!r}; valid: {MODES}")
