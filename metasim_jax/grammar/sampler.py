"""Sampling batches of scene graphs from a compiled grammar (pure, jittable)."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from metasim_jax.grammar import spec as spec_lib
from metasim_jax.types import SceneGraph, TexturePool


def wrap_angle(deg: jax.Array) -> jax.Array:
  """Maps degrees to [-180, 180)."""
  return jnp.mod(deg + 180.0, 360.0) - 180.0


def propagate_mask(own: jax.Array, grammar: spec_lib.Grammar) -> jax.Array:
  """A slot exists iff it was drawn and all its ancestors exist. [B, N]."""
  parents = grammar.parents
  has_parent = parents >= 0
  mask = own
  for _ in range(grammar.depth):  # static depth, vectorised over slots
    mask = own & jnp.where(has_parent, mask[:, np.maximum(parents, 0)], True)
  return mask


def sample(key: jax.Array, grammar: spec_lib.Grammar, batch_size: int,
           pools: Mapping[str, TexturePool]) -> SceneGraph:
  """Draws ``batch_size`` scene graphs.

  Args:
    key: PRNG key; the same key gives bitwise-identical scenes.
    grammar: compiled grammar (static).
    batch_size: B (static).
    pools: texture pools by name, for ``pool``-distributed index attributes.

  Returns:
    SceneGraph with attrs [B, N, A] and node_mask [B, N].
  """
  g = grammar
  n, a = g.num_slots, g.num_attrs
  k_u, k_z, k_cat, k_count, k_pool = jax.random.split(key, 5)
  shape = (batch_size, n, a)
  u = jax.random.uniform(k_u, shape)
  z = jax.random.normal(k_z, shape)
  cat = jax.random.categorical(
      k_cat, jnp.log(jnp.maximum(g.cat_probs, 1e-30)), shape=shape)
  p0, p1, dist = g.p0, g.p1, g.dist
  values = jnp.select(
      [dist == spec_lib.GAUSS, dist == spec_lib.UNIF, dist == spec_lib.CAT],
      [p0 + p1 * z, p0 + (p1 - p0) * u, cat.astype(jnp.float32)],
      default=jnp.broadcast_to(p0, shape))
  kinds = np.array(g.attr_kinds)
  values = jnp.where(kinds == "angle", wrap_angle(values), values)
  values = jnp.where(kinds == "continuous",
                     jnp.clip(values, g.low, g.high), values)

  # Index attributes drawn from a texture pool, per class of node.
  for cls_name, cls in g.classes.items():
    if cls.pool is None:
      continue
    pool = g.pool_of(cls_name, pools)
    slots = g.slots_of(cls_name)
    num_labels = pool.label_offsets.shape[0]
    if "class" in g.attr_names and g.has_attr[slots[0], g.col("class")]:
      num_classes = int(g.num_cats[g.col("class")])
      if num_classes > num_labels:
        raise ValueError(
            f"class {cls_name!r} has {num_classes} categories but texture "
            f"pool {cls.pool!r} has textures for only {num_labels} labels")
      label = values[:, slots, g.col("class")].astype(jnp.int32)
    else:
      label = jnp.zeros((batch_size, len(slots)), jnp.int32)
    uu = jax.random.uniform(k_pool, label.shape)
    k_pool = jax.random.fold_in(k_pool, 1)
    count = pool.label_counts[label]
    tex = pool.label_offsets[label] + jnp.minimum(
        (uu * count).astype(jnp.int32), count - 1)
    col = g.col("texture")
    is_pool = jnp.asarray(g.dist[slots, col] == spec_lib.POOL)
    values = values.at[:, slots, col].set(
        jnp.where(is_pool, tex.astype(jnp.float32), values[:, slots, col]))

  values = jnp.where(g.has_attr, values, 0.0)

  # Variable child counts: slot exists if its rank < its group's count.
  groups = np.array([s.group for s in g.slots])
  num_groups = groups.max() + 1
  lo = np.zeros(num_groups, np.int32)
  hi = np.zeros(num_groups, np.int32)
  for s in g.slots:
    lo[s.group], hi[s.group] = s.min_count, s.max_count
  counts = jax.random.randint(k_count, (batch_size, num_groups), lo, hi + 1)
  ranks = np.array([s.rank for s in g.slots])
  own = ranks < counts[:, groups]
  return SceneGraph(attrs=values.astype(jnp.float32),
                    node_mask=propagate_mask(own, g))
