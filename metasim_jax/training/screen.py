"""Screening: many candidate starts of an MMD stage scored by their MMD^2
alone, the best kept as the stage's starts (``config.mmd.screen_*``).

Gradient descent on MMD^2 follows the landscape from where the generator
is, and a landscape can couple attributes so that the way to the target
first goes uphill.  On the driving world (``benchmarks/driving_valley.py``)
the cars' distance and heading spread meet in a narrow valley: from the
prior's far, loosely aimed cars, turning them sideways is downhill and
aligning them uphill, while the target's near aligned cars are the lowest
point of the whole table.  Gradient steps turn the cars; a look at the
table finds the target.  Screening is that look, for the attributes a
stage switches on: a Latin hypercube of shifts (in units of the prior's
standard deviation) and log-scales of every newly trained (class,
attribute) pair of the affine head, each candidate's MMD^2 measured on the
same ``mmd.select_batch`` scenes (common random numbers: the candidates
differ only by their parameters), the lowest ``mmd.num_starts`` kept.
Candidate 0 is the generator as it is, so a screen never starts a stage
worse, on its own measurement, than no screen.

What it assumes: the affine head (``transformer.affine``; the candidates
are its shifts and spreads), a budget of one batch's MMD^2 per candidate
(rendering and features, no gradient: on the driving world about 20
candidates cost one finite-difference step), and that the target's basin
is wide enough for a few dozen candidates in a few dimensions to land in
it; in many dimensions the hypercube covers each one's range but not
their combinations, and descent has to do the rest.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from metasim_jax.grammar.spec import Grammar
from metasim_jax.training import es


def latin_hypercube(key: jax.Array, num: int, dims: int) -> np.ndarray:
  """[num, dims] points in [0, 1): each dimension's ``num`` strata hit
  once, in an independent random order, at a random place in the
  stratum."""
  k_perm, k_jitter = jax.random.split(key)
  strata = jax.vmap(lambda k: jax.random.permutation(k, num))(
      jax.random.split(k_perm, dims)).T
  jitter = jax.random.uniform(k_jitter, (num, dims))
  return np.asarray((strata + jitter) / num, np.float32)


def new_mask(full: Grammar, groups, learned) -> np.ndarray:
  """[classes, A] bool: the continuous and angle (class, attribute) pairs
  of the stage's groups that no earlier stage trained (``groups`` None:
  every group)."""
  groups = full.groups if groups is None else groups
  new = tuple(g for g in groups if g not in set(learned))
  if not new:
    return np.zeros((len(full.classes), full.num_attrs), bool)
  return es.search_mask(full.with_mutable_groups(new))


def entry_names(grammar: Grammar, mask: np.ndarray) -> list[str]:
  """Names of the [2 M] entries ``candidate_deltas`` changes, in its
  order: "car.yaw log_spread", ..., "car.yaw shift", ..."""
  classes = list(grammar.classes)
  pairs = [f"{classes[c]}.{grammar.attr_names[j]}"
           for c, j in zip(*np.nonzero(mask))]
  return ([f"{p} log_spread" for p in pairs]
          + [f"{p} shift" for p in pairs])


def candidate_deltas(key: jax.Array, mask: np.ndarray, num: int,
                     shift: float, log_spread: tuple[float, float]
                     ) -> np.ndarray:
  """[num, 2 M] changes of the masked (log_spread, class_shift) entries
  (``es.perturbed``'s order): row 0 zero, the others a Latin hypercube of
  log-scales in ``log_spread`` = (low, high) and shifts in +-``shift``."""
  m = int(mask.sum())
  lo, hi = log_spread
  u = latin_hypercube(key, num - 1, 2 * m)
  deltas = np.concatenate([lo + (hi - lo) * u[:, :m],
                           shift * (2.0 * u[:, m:] - 1.0)], axis=1)
  return np.concatenate([np.zeros((1, 2 * m), np.float32), deltas])


def screen(mmd_eval, params, key: jax.Array, pools, feat_params, target, *,
           mask: np.ndarray, num: int, keep: int, shift: float,
           log_spread: tuple[float, float], chunk: int):
  """(params_k [keep], mmd2 [num], deltas [num, 2 M], order [keep]):
  ``num`` candidates around ``params`` (one set, unstacked) scored by
  ``mmd_eval`` (``steps.make_mmd_eval``: stacked params, key, ... -> [K]
  MMD^2) in chunks of ``chunk`` on the same scenes, the ``keep`` lowest
  kept, best first (a non-finite MMD^2 sorts last; the caller checks).
  Every call scores exactly ``chunk`` candidates (the last call padded
  with row 0), so that one program serves every call and a chunk that
  divides over the mesh's "starts" devices stays divisible."""
  if "log_spread" not in params:
    raise ValueError("mmd.screen_candidates needs the affine head "
                     "(transformer.affine=True): the candidates are its "
                     "shifts and spreads")
  if keep > num:
    raise ValueError(f"mmd.num_starts ({keep}) must be <= "
                     f"mmd.screen_candidates ({num})")
  k_cand, k_scene = jax.random.split(key)
  deltas = candidate_deltas(k_cand, mask, num, shift, log_spread)
  if chunk < 1:
    raise ValueError(f"screen: chunk must be >= 1, got {chunk}")
  padded = -(-num // chunk) * chunk  # the last chunk filled with row 0
  rows = np.concatenate([deltas, np.repeat(deltas[:1], padded - num, 0)])
  make = jax.jit(jax.vmap(lambda d: es.perturbed(params, d, mask)))
  mmd2 = np.concatenate([
      np.asarray(mmd_eval(make(jnp.asarray(rows[i:i + chunk])), k_scene,
                          pools, feat_params, target))
      for i in range(0, padded, chunk)])[:num]
  order = np.argsort(mmd2, kind="stable")[:keep]
  return make(jnp.asarray(deltas[order])), mmd2, deltas, order
