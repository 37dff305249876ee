"""SceneGraph <-> jraph.GraphsTuple with static shapes.

Every scene of a grammar has the same slots and parent->child edges, so a
batch of B scenes is one GraphsTuple with ``B * N`` nodes and ``B * E`` edges
(implicit batching, offsets per scene).  Slots that hold no node in a scene
stay in the graph with ``mask == False``; the transformer ignores their
messages.  Shapes depend only on (grammar, B): nothing recompiles.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from metasim_jax.grammar.spec import Grammar
from metasim_jax.scene_graph import encoding
from metasim_jax.types import SceneGraph


def to_graphs_tuple(scene: SceneGraph, grammar: Grammar) -> jraph.GraphsTuple:
  """Batch of scenes -> GraphsTuple with nodes {'features', 'mask'}."""
  b, n, _ = scene.attrs.shape
  senders, receivers = grammar.edges
  e = len(senders)
  offsets = (np.arange(b) * n)[:, None]
  feats = encoding.encode(scene.attrs, grammar)
  return jraph.GraphsTuple(
      nodes={"features": feats.reshape(b * n, -1),
             "mask": scene.node_mask.reshape(b * n)},
      edges=None,
      senders=jnp.asarray((senders[None] + offsets).reshape(-1), jnp.int32),
      receivers=jnp.asarray((receivers[None] + offsets).reshape(-1), jnp.int32),
      n_node=jnp.full((b,), n, jnp.int32),
      n_edge=jnp.full((b,), e, jnp.int32),
      globals=None)

