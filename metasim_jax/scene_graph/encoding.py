"""One schema for attributes as network features, and back.

Node features are ``[class one-hot | per-attribute encodings]``:

* continuous: ``2 (x - low) / (high - low) - 1`` (one feature);
* angle: ``(sin, cos)`` (two features, no seam at +-180 degrees);
* categorical: one-hot over ``num`` categories;
* index (e.g. a texture id): not a feature, carried through unchanged.

Attributes a slot does not have encode to zeros.  ``decode`` inverts
``encode`` exactly (up to float rounding).

The transformer's head predicts, per attribute, a *change*: a normalised
delta (continuous), a rotation in units of 180 degrees (angle) or logits
(categorical).  ``apply_head`` turns that into new attribute values and
copies every immutable attribute from the input.  New continuous values
stay inside their range through ``soft_bound``, a smooth bound whose
gradient never vanishes: a value pushed past an edge is still pulled back
by any loss that wants it inside (a hard clip would give it zero gradient
from MMD and REINFORCE alike, and leave it stuck at the edge).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from metasim_jax.grammar.sampler import wrap_angle
from metasim_jax.grammar.spec import Grammar

# How confidently the head keeps an input category before training.
CATEGORY_PRIOR_LOGIT = 4.0
# Width of the soft edge of continuous ranges, in normalised units ([-1, 1]
# spans the range): 2.5 % of the range at each end.
SOFT_MARGIN = 0.05


@dataclasses.dataclass(frozen=True)
class Layout:
  """Static feature offsets: attr column -> (start, width)."""
  num_classes: int
  feature: tuple[tuple[int, int], ...]  # encoded feature slice per column
  head: tuple[tuple[int, int], ...]     # head output slice per column
  feature_dim: int
  head_dim: int


_FEATURE_WIDTH = {"continuous": 1, "angle": 2, "index": 0}
_HEAD_WIDTH = {"continuous": 1, "angle": 1, "index": 0}


@functools.lru_cache(maxsize=None)
def layout(grammar: Grammar) -> Layout:
  num_classes = len(grammar.classes)
  feat, head = [], []
  f, h = num_classes, 0
  for j, kind in enumerate(grammar.attr_kinds):
    k = int(grammar.num_cats[j])
    fw = k if kind == "categorical" else _FEATURE_WIDTH[kind]
    hw = k if kind == "categorical" else _HEAD_WIDTH[kind]
    feat.append((f, fw))
    head.append((h, hw))
    f, h = f + fw, h + hw
  return Layout(num_classes, tuple(feat), tuple(head), f, max(h, 1))


def class_ids(grammar: Grammar) -> np.ndarray:
  names = list(grammar.classes)
  return np.array([names.index(s.cls) for s in grammar.slots], np.int32)


def _normalise(x, lo, hi):
  return 2.0 * (x - lo) / (hi - lo) - 1.0


def _denormalise(v, lo, hi):
  return lo + 0.5 * (v + 1.0) * (hi - lo)


def soft_bound(u: jax.Array, margin: float = SOFT_MARGIN) -> jax.Array:
  """Bounds normalised values to (-1, 1), smoothly and strictly monotone.

  The identity on [-1 + margin, 1 - margin]; beyond, the value approaches
  the edge as ``edge + margin * z / sqrt(1 + z^2)`` with ``z`` the distance
  past ``1 - margin`` in units of ``margin``.  Its derivative is continuous
  and decays only polynomially (``(1 + z^2)^-1.5``), so it is non-zero at
  and far beyond the edges, and positive: a gradient step on a value past
  an edge moves it back inside.
  """
  edge = 1.0 - margin
  z = (jnp.abs(u) - edge) / margin
  tail = edge + margin * z / jnp.sqrt(1.0 + z * z)
  return jnp.where(jnp.abs(u) > edge, jnp.sign(u) * tail, u)


def contract_angle(deg: jax.Array, s: jax.Array) -> jax.Array:
  """The circle's Moebius contraction towards 0: ``2 atan(s tan(deg / 2))``.

  A smooth, strictly monotone map of the circle onto itself for every
  ``s > 0``: the identity at ``s = 1``, towards 0 for ``s < 1`` (and away
  from 180), ``s * deg`` for small angles.  It takes the uniform
  distribution to the wrapped Cauchy with concentration
  ``(1 - s) / (1 + s)`` (Kato & Jones, JASA 2010).  Scaling ``s * deg``
  instead cuts the circle at 180: for ``s > 1`` it wraps values round it,
  and on a uniform prior the distribution of headings modulo 180 (what a
  front-back symmetric shape shows) is the same at ``s = 1`` and
  ``s = 0.5`` and worse in between, a barrier that gradient steps on
  ``s`` do not cross (``benchmarks/aerial_slices.py``).
  """
  half = jnp.deg2rad(wrap_angle(deg)) / 2.0  # in [-pi/2, pi/2)
  return 2.0 * jnp.rad2deg(jnp.arctan2(s * jnp.sin(half), jnp.cos(half)))


def encode(attrs: jax.Array, grammar: Grammar) -> jax.Array:
  """[B, N, A] attribute values -> [B, N, F] features."""
  lay = layout(grammar)
  b, n, _ = attrs.shape
  parts = [jnp.broadcast_to(
      jax.nn.one_hot(class_ids(grammar), lay.num_classes), (b, n,
                                                             lay.num_classes))]
  for j, kind in enumerate(grammar.attr_kinds):
    x = attrs[..., j]
    has = grammar.has_attr[:, j]
    if kind == "continuous":
      e = _normalise(x, grammar.low[:, j], grammar.high[:, j])[..., None]
    elif kind == "angle":
      r = jnp.deg2rad(x)
      e = jnp.stack([jnp.sin(r), jnp.cos(r)], -1)
    elif kind == "categorical":
      e = jax.nn.one_hot(x.astype(jnp.int32), int(grammar.num_cats[j]))
    else:
      continue
    parts.append(jnp.where(has[:, None], e, 0.0))
  return jnp.concatenate(parts, -1)


def decode(features: jax.Array, like: jax.Array, grammar: Grammar) -> jax.Array:
  """[B, N, F] features -> [B, N, A] values; index columns come from ``like``."""
  lay = layout(grammar)
  cols = []
  for j, kind in enumerate(grammar.attr_kinds):
    start, width = lay.feature[j]
    e = features[..., start:start + width]
    if kind == "continuous":
      v = _denormalise(e[..., 0], grammar.low[:, j], grammar.high[:, j])
    elif kind == "angle":
      v = jnp.rad2deg(jnp.arctan2(e[..., 0], e[..., 1]))
    elif kind == "categorical":
      v = jnp.argmax(e, -1).astype(jnp.float32)
    else:
      v = like[..., j]
    cols.append(jnp.where(grammar.has_attr[:, j], v, 0.0))
  return jnp.stack(cols, -1)


def apply_head(head: jax.Array, attrs: jax.Array, grammar: Grammar,
               affine: tuple[jax.Array, jax.Array] | None = None
               ) -> tuple[jax.Array, dict[int, jax.Array]]:
  """Transformer head [B, N, H] -> (new attrs [B, N, A], logits by column).

  Only attributes marked mutable change; all others are copied exactly.
  Logits are returned for categorical columns that are mutable somewhere.
  ``affine`` = (log_spread, shift), each [classes, A] (optional):
  continuous and angle values are first scaled about the prior's centre
  (``Grammar.centre``) by ``exp(log_spread)`` of their slot's class (angles
  by ``contract_angle``, which is that scaling for small deviations and
  keeps the circle whole for large ones) and
  moved by ``shift`` times the prior's standard deviation
  (``Grammar.spread``; the whole range / 2, or 180 degrees, where the prior
  is a constant).  In units of its own spread every attribute moves alike
  for a given change of the parameter: an optimiser that takes steps of
  about the same size on every parameter (Adam) then moves a car's heading
  (prior std 30 of 360 degrees) no faster, relative to its distribution,
  than its distance (std 20 of a 100 m range).
  """
  lay = layout(grammar)
  cols, logits = [], {}
  scale = shift = None
  if affine is not None:
    ids = class_ids(grammar)
    scale, shift = jnp.exp(affine[0][ids]), affine[1][ids]  # [N, A]
  for j, kind in enumerate(grammar.attr_kinds):
    start, width = lay.head[j]
    x = attrs[..., j]
    if kind == "continuous":
      lo, hi = grammar.low[:, j], grammar.high[:, j]
      u = _normalise(x, lo, hi)
      if scale is not None:
        c = _normalise(grammar.centre[:, j], lo, hi)
        unit = np.where(grammar.spread[:, j] > 0,
                        2.0 * grammar.spread[:, j] / (hi - lo), 1.0)
        u = c + scale[:, j] * (u - c) + unit * shift[:, j]
      # Stay inside the attribute's range, as the prior's samples do.
      v = _denormalise(soft_bound(u + head[..., start]), lo, hi)
    elif kind == "angle":
      a = x
      if scale is not None:
        c = grammar.centre[:, j]
        unit = np.where(grammar.spread[:, j] > 0, grammar.spread[:, j],
                        180.0)
        a = c + contract_angle(x - c, scale[:, j]) + unit * shift[:, j]
      v = wrap_angle(a + 180.0 * head[..., start])
    elif kind == "categorical":
      k = int(grammar.num_cats[j])
      lg = head[..., start:start + width] + CATEGORY_PRIOR_LOGIT * (
          jax.nn.one_hot(x.astype(jnp.int32), k))
      if grammar.mutable[:, j].any():
        logits[j] = lg
      v = jnp.argmax(lg, -1).astype(jnp.float32)
    else:
      v = x
    cols.append(jnp.where(grammar.mutable[:, j], v, x))
  return jnp.stack(cols, -1), logits
