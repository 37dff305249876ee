"""Object statistics of detection maps: the distribution of the objects a
detector sees, not their average over image cells.

Detection maps M [B, H, W, 1 + V] (``tasknet.detection.detection_maps``):
channel 0 the object-centre probability p, channels 1..V p times a box
value (log height, log aspect w / h).  Pooling them over cells
(``blocks.pool_maps``) mixes how many objects there are with how large and
how turned they are: in the driving world, far cars turned sideways pool
like near aligned ones (``benchmarks/driving_valley.py``, README).  Here
every map cell is an object candidate of weight p with values

  v(u) = (M_1..V(u) / p(u), row(u))        row: the cell's height in the
                                           image, 0 (top) to 1 (bottom)

and an image's features are

  count      n   = log(1 + sum_u p(u))
  histogram  h_k = sum_u p(u) prod_d A_d(v_d(u), k_d)
                   / (sum_u p(u) + COUNT_PRIOR)

over a grid of ``bins`` per value (k = (k_1..k_{V+1})), A_d a soft
assignment to the bins (a softmax of -z^2 / 2, z the distance to a bin's
centre in units of half the bins' spacing: a value at a centre gives 88 %
of its weight to that bin, one half-way splits evenly; values beyond the
last centre go to the last bin): [B, 1 + bins^(V + 1)], the joint distribution of the
objects' size, shape and place in the image (a car's distance, heading,
and where the horizon puts it).  The centres sit at quantiles of the
target's objects (``centres``), so that the bins cover what the target
shows.  Smooth in the maps, so in the image through the network.

``COUNT_PRIOR`` (half an object) bounds the histogram's gradient once an
image's objects all but vanish; a cell's value M / (p + P_EPS) tends to 0
as p does, where its weight p is negligible.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

COUNT_PRIOR = 0.5
P_EPS = 1e-4


def object_values(maps: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(weights p [B, H, W], values [B, H, W, V + 1]) of ``maps`` [B, H, W,
  1 + V]: each cell's box values and its row (0 top, 1 bottom)."""
  if maps.ndim != 4 or maps.shape[-1] < 2:
    raise ValueError("object statistics need detection maps [B, H, W, 1 + V]"
                     f" (a probability and V >= 1 values), got {maps.shape}")
  p = maps[..., 0]
  values = maps[..., 1:] / (p[..., None] + P_EPS)
  h = maps.shape[1]
  row = jnp.broadcast_to(jnp.linspace(0.0, 1.0, h)[None, :, None],
                         p.shape)[..., None]
  return p, jnp.concatenate([values, row], -1)


def centres(maps: jax.Array, bins: int) -> np.ndarray:
  """[V + 1, bins] bin centres: per value, the p-weighted quantiles at
  (k + 1/2) / bins of the objects in ``maps`` (a target's images)."""
  if bins < 2:
    raise ValueError(f"object statistics need bins >= 2, got {bins}")
  p, values = (np.asarray(a, np.float64) for a in object_values(maps))
  w = p.reshape(-1)
  if w.sum() <= 0:
    raise ValueError("no objects in the maps: the detector finds nothing "
                     "in the target's images")
  levels = (np.arange(bins) + 0.5) / bins
  out = []
  for v in values.reshape(-1, values.shape[-1]).T:
    order = np.argsort(v)
    cum = np.cumsum(w[order]) / w.sum()
    out.append(np.interp(levels, cum, v[order]))
  return np.asarray(out, np.float32)


def object_stats(maps: jax.Array, bin_centres: np.ndarray) -> jax.Array:
  """[B, 1 + bins^(V + 1)]: the count and the joint histogram of the
  objects in ``maps`` (module docstring) over ``bin_centres`` [V + 1,
  bins]."""
  c = jnp.asarray(bin_centres, jnp.float32)
  p, values = object_values(maps.astype(jnp.float32))
  if values.shape[-1] != c.shape[0]:
    raise ValueError(f"maps give {values.shape[-1]} values (with the row), "
                     f"the centres {c.shape[0]}")
  spacing = jnp.maximum((c[:, -1] - c[:, 0]) / (c.shape[1] - 1), 1e-3)
  z = (values[..., None] - c) / (0.5 * spacing[:, None])  # [B, H, W, D, bins]
  assign = jax.nn.softmax(-0.5 * z ** 2, -1)
  joint = p
  for d in range(c.shape[0]):  # outer product over the values
    joint = joint[..., None] * assign[..., d, :].reshape(
        assign.shape[:3] + (1,) * d + (c.shape[1],))
  b = maps.shape[0]
  hist = joint.reshape(b, -1, c.shape[1] ** c.shape[0]).sum(1)
  total = p.reshape(b, -1).sum(1)
  return jnp.concatenate([jnp.log1p(total)[:, None],
                          hist / (total[:, None] + COUNT_PRIOR)], -1)
