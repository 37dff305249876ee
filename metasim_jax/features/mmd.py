"""MMD^2 between feature sets (matmul form, constants precomputed).

``MMDTarget.create`` computes, once, everything that depends only on the
real features: their squared norms, the kernel bandwidths (multiples of the
median real-real distance) and the real-real kernel mean.  A training step
then costs one [n, n] and one [n, m] kernel matrix.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


def sq_dists(x: jax.Array, y: jax.Array) -> jax.Array:
  """Pairwise squared distances [n, m] via |x|^2 + |y|^2 - 2 x.y."""
  d = (jnp.sum(x * x, -1)[:, None] + jnp.sum(y * y, -1)[None]
       - 2.0 * x @ y.T)
  return jnp.maximum(d, 0.0)


def gaussian_kernel(d2: jax.Array, bandwidths: jax.Array) -> jax.Array:
  """Mean over bandwidths s of exp(-d2 / (2 s^2))."""
  return jnp.mean(jnp.exp(-d2[..., None] / (2.0 * bandwidths ** 2)), -1)


def _offdiag_mean(k: jax.Array) -> jax.Array:
  n = k.shape[0]
  return (jnp.sum(k) - jnp.trace(k)) / (n * (n - 1))


def mmd2(x: jax.Array, y: jax.Array, bandwidths: jax.Array,
         unbiased: bool = True) -> jax.Array:
  """MMD^2 with a mixture of Gaussian kernels (reference form)."""
  kxx = gaussian_kernel(sq_dists(x, x), bandwidths)
  kyy = gaussian_kernel(sq_dists(y, y), bandwidths)
  kxy = gaussian_kernel(sq_dists(x, y), bandwidths)
  if unbiased:
    return _offdiag_mean(kxx) + _offdiag_mean(kyy) - 2.0 * jnp.mean(kxy)
  return jnp.mean(kxx) + jnp.mean(kyy) - 2.0 * jnp.mean(kxy)


def median_distance(y: jax.Array) -> jax.Array:
  """Median pairwise distance (the usual kernel-bandwidth heuristic)."""
  iu = np.triu_indices(y.shape[0], 1)
  return jnp.median(jnp.sqrt(sq_dists(y, y)[iu]))


@struct.dataclass
class MMDTarget:
  """Real features and the constants derived from them.

  Attributes:
    feats: [m, D] real features.
    bandwidths: [S] Gaussian bandwidths.
    kyy: scalar, unbiased real-real kernel mean.
  """
  feats: jax.Array
  bandwidths: jax.Array
  kyy: jax.Array

  @classmethod
  def create(cls, feats: jax.Array,
             bandwidth_multipliers: Sequence[float] = (0.5, 1.0, 2.0, 4.0)
             ) -> "MMDTarget":
    feats = jnp.asarray(feats, jnp.float32)
    if feats.shape[0] < 2:
      raise ValueError(f"MMD needs at least 2 target samples, got "
                       f"{feats.shape[0]}")
    median = float(median_distance(feats))
    if not median > 0:
      raise ValueError("target features are all identical (median distance "
                       "0): MMD bandwidths would be 0")
    bw = median * jnp.asarray(bandwidth_multipliers,
                                              jnp.float32)
    kyy = _offdiag_mean(gaussian_kernel(sq_dists(feats, feats), bw))
    return cls(feats=feats, bandwidths=bw, kyy=kyy)

  def mmd2(self, x: jax.Array) -> jax.Array:
    """Unbiased MMD^2 of generated features x [n, D] against the target."""
    kxx = gaussian_kernel(sq_dists(x, x), self.bandwidths)
    kxy = gaussian_kernel(sq_dists(x, self.feats), self.bandwidths)
    return _offdiag_mean(kxx) + self.kyy - 2.0 * jnp.mean(kxy)
