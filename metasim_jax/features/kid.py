"""Kernel Inception Distance: unbiased MMD^2, cubic polynomial kernel.

k(x, y) = (x.y / d + 1)^3, averaged over random subsets drawn without
replacement, as in the usual KID implementations (100 subsets of up to 1000).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def polynomial_mmd2(x: jax.Array, y: jax.Array) -> jax.Array:
  """Unbiased MMD^2 with the cubic polynomial kernel."""
  d = x.shape[-1]
  kxx = (x @ x.T / d + 1.0) ** 3
  kyy = (y @ y.T / d + 1.0) ** 3
  kxy = (x @ y.T / d + 1.0) ** 3
  n, m = x.shape[0], y.shape[0]
  return ((jnp.sum(kxx) - jnp.trace(kxx)) / (n * (n - 1))
          + (jnp.sum(kyy) - jnp.trace(kyy)) / (m * (m - 1))
          - 2.0 * jnp.mean(kxy))


def kid(key: jax.Array, x: jax.Array, y: jax.Array, num_subsets: int = 100,
        subset_size: int = 1000) -> tuple[jax.Array, jax.Array]:
  """(mean, std) of KID over ``num_subsets`` random subsets."""
  x, y = jnp.asarray(x), jnp.asarray(y)
  size = min(subset_size, x.shape[0], y.shape[0])
  if size < 2:
    raise ValueError(f"KID needs at least 2 samples per set, got "
                     f"{x.shape[0]} and {y.shape[0]}")

  def one(k):
    kx, ky = jax.random.split(k)
    ix = jax.random.permutation(kx, x.shape[0])[:size]
    iy = jax.random.permutation(ky, y.shape[0])[:size]
    return polynomial_mmd2(x[ix], y[iy])

  vals = jax.lax.map(one, jax.random.split(key, num_subsets))
  return jnp.mean(vals), jnp.std(vals)
