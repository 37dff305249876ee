"""Multi-start: K copies of the pre-trained generator, each shifted by a
constant offset of its mutable attributes, trained side by side (vmapped)
so that one of them starts in the basin of the target.

With the affine head (``transformer.affine``), every odd-numbered start
also begins with its relative angles (in a parent object's frame)
contracted (``ANGLE_START_SPREAD``, by the circle's Moebius map,
``encoding.contract_angle``) and not rotated: their head-bias angle offset
turns image-frame headings only.  From a prior that is
wide on the circle, the MMD of features that see headings only modulo 180
degrees (a car's outline, not its front) is flat in the angles' spread
near the prior's (``benchmarks/aerial_slices.py``: MMD^2 0.00449 at 1x,
0.00430 at 0.6x on the lane world, then falling steeply); a contracted
start begins past that flat, and spreads back out where the target is
wide (the map has no barrier in between)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from metasim_jax import transformer as transformer_lib
from metasim_jax.grammar.spec import Grammar
from metasim_jax.scene_graph import encoding
from metasim_jax.training import steps
from metasim_jax.types import MetaSimState


def offset_columns(grammar: Grammar) -> list[int]:
  """The attribute columns a start is offset in: mutable continuous and
  angle attributes."""
  return [j for j in range(grammar.num_attrs)
          if grammar.mutable[:, j].any()
          and grammar.attr_kinds[j] in ("continuous", "angle")]


def start_offsets(key: jax.Array, grammar: Grammar, num_starts: int,
                  spread: float) -> tuple[list[int], np.ndarray]:
  """(columns, [K, len(columns)] head-bias offsets): angles stratified
  around the circle, continuous attributes uniform in +-spread (normalised
  units); start 0 is the pre-trained identity."""
  cols = offset_columns(grammar)
  offsets = np.zeros((num_starts, len(cols)), np.float32)
  u = np.asarray(jax.random.uniform(key, offsets.shape, minval=-1, maxval=1))
  for i, j in enumerate(cols):
    if grammar.attr_kinds[j] == "angle" and num_starts > 1:
      offsets[:, i] = (2.0 * np.arange(num_starts) / num_starts
                       + u[:, i] / num_starts)
    else:
      offsets[:, i] = spread * u[:, i]
  offsets[0] = 0.0
  return cols, offsets


# Odd-numbered starts' angles begin this much contracted (affine head only).
ANGLE_START_SPREAD = 0.25


def relative_classes(grammar: Grammar) -> np.ndarray:
  """[classes] bool: classes held in a parent object's frame (their slots'
  parent is not the root: a car on its road)."""
  parents = grammar.parents
  held = np.array([p >= 0 and parents[p] >= 0 for p in parents])
  relative = np.zeros(len(grammar.classes), bool)
  relative[encoding.class_ids(grammar)[held]] = True
  return relative


def contracted_angles(log_spread: jax.Array, grammar: Grammar,
                      factor: float) -> jax.Array:
  """[classes, A] log_spread with the spread of every relative angle (a
  car's heading on its road, ``relative_classes``) times ``factor``.
  Headings in the image's frame (the road's, the camera's) are left as
  they are: features that turn with the image hardly see them, so a
  contraction there would stay whatever the target's spread."""
  angle = np.array([k == "angle" for k in grammar.attr_kinds])
  return log_spread + np.where(
      relative_classes(grammar)[:, None] & angle[None, :],
      np.log(factor), 0.0)


def unrotated_relative_shift(grammar: Grammar, offsets: np.ndarray,
                             cols: list[int]) -> np.ndarray:
  """[K, classes, A] ``class_shift`` that cancels, for relative classes,
  the angle columns' head-bias offsets (head units: angle / 180), so that
  only image-frame headings turn.  A contracted start rotated by the
  stratified offset (180 +- 90 degrees for K = 2) would concentrate its
  cars' headings wherever the offset put them, across their road as
  likely as along it."""
  ids = encoding.class_ids(grammar)
  relative = relative_classes(grammar)
  shift = np.zeros((offsets.shape[0], len(grammar.classes), grammar.num_attrs),
                   np.float32)
  for i, j in enumerate(cols):
    if grammar.attr_kinds[j] != "angle":
      continue
    for c in np.flatnonzero(relative):
      spread = grammar.spread[np.flatnonzero(ids == c)[0], j]
      unit = spread if spread > 0 else 180.0  # as encoding.apply_head
      shift[:, c, j] = -180.0 * offsets[:, i] / unit
  return shift


def stack(params, num: int):
  """``num`` copies of ``params`` along a new leading axis."""
  return jax.tree.map(lambda x: jnp.stack([x] * num), params)


def multi_start_state(key_offsets: jax.Array, key_state: jax.Array, params,
                      grammar: Grammar, num_starts: int, spread: float,
                      tx: optax.GradientTransformation) -> MetaSimState:
  """The MMD stage's state: K starts around ``params``."""
  cols, offsets = start_offsets(key_offsets, grammar, num_starts, spread)
  params_k = jax.vmap(lambda p, o: transformer_lib.with_offsets(
      p, grammar, o, cols))(stack(params, num_starts), jnp.asarray(offsets))
  if "log_spread" in params_k:
    odd = (np.arange(num_starts) % 2 == 1)[:, None, None]
    log_spread = params_k["log_spread"]
    unrotate = jnp.asarray(unrotated_relative_shift(grammar, offsets, cols))
    params_k = {
        **params_k,
        "log_spread": jnp.where(
            odd, contracted_angles(log_spread, grammar, ANGLE_START_SPREAD),
            log_spread),
        "class_shift": params_k["class_shift"] + jnp.where(odd, unrotate, 0.0),
    }
  return steps.init_state(key_state, params_k, tx)
