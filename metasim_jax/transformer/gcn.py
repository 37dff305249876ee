"""Distribution Transformer: a GCN over scene graphs (Meta-Sim, Sec. 3.2).

Each layer has separate weights for messages from a node's parent
(top-down), from its children (bottom-up) and from itself:

    h_i' = relu(W_self h_i + W_down h_parent(i) + mean_{c in kids(i)} W_up h_c)

Messages from and to slots that hold no node are dropped.  An encoder stack
maps node features to a latent per node, a decoder stack maps it back, and a
linear head predicts the per-attribute change (see ``scene_graph.encoding``).

With ``affine=True`` the transformer also holds, per (class, attribute),
a log-scale ``log_spread`` and a shift ``class_shift``: each value's
deviation from the prior's centre is scaled by ``exp(log_spread)`` and the
class's shift, in units of the prior's standard deviation, is added before
the head's change, so a class's spread and mean each move through one
well-conditioned parameter, every attribute at the same pace relative to
its distribution.  The GCN alone
learns neither well: contracting every value towards a centre needs a
change proportional to the value, and a class's shift must come through
the shared layers from its one-hot, where the per-slot gradients of a
small object's attributes mostly cancel.  Zero-initialised: the identity.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from metasim_jax.grammar.spec import Grammar
from metasim_jax.scene_graph import encoding, graph as graph_lib
from metasim_jax.types import SceneGraph


class TreeConv(nn.Module):
  """One message-passing layer with top-down / bottom-up / self weights."""
  features: int

  @nn.compact
  def __call__(self, h: jax.Array, senders: jax.Array, receivers: jax.Array,
               mask: jax.Array) -> jax.Array:
    num_nodes = h.shape[0]
    m = mask[:, None].astype(h.dtype)
    h = h * m
    own = nn.Dense(self.features, name="self")(h)
    down = nn.Dense(self.features, use_bias=False, name="top_down")(h)
    up = nn.Dense(self.features, use_bias=False, name="bottom_up")(h)
    live = (mask[senders] & mask[receivers]).astype(h.dtype)[:, None]
    from_parent = jraph.segment_sum(down[senders] * live, receivers, num_nodes)
    from_kids = jraph.segment_sum(up[receivers] * live, senders, num_nodes)
    num_kids = jraph.segment_sum(live, senders, num_nodes)
    from_kids = from_kids / jnp.maximum(num_kids, 1.0)
    return nn.relu(own + from_parent + from_kids) * m


class DistributionTransformer(nn.Module):
  """GCN encoder-decoder; returns the head output per node [B*N, head_dim]."""
  head_dim: int
  hidden: int = 64
  encoder_layers: int = 2
  decoder_layers: int = 2
  affine_shape: tuple[int, int] | None = None  # (classes, attributes)

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple) -> jax.Array:
    if self.affine_shape is not None:  # read by ``transform``
      self.param("log_spread", nn.initializers.zeros, self.affine_shape)
      self.param("class_shift", nn.initializers.zeros, self.affine_shape)
    x, mask = graph.nodes["features"], graph.nodes["mask"]
    h = nn.relu(nn.Dense(self.hidden, name="embed")(x))
    for i in range(self.encoder_layers):
      h = TreeConv(self.hidden, name=f"encoder_{i}")(
          h, graph.senders, graph.receivers, mask)
    for i in range(self.decoder_layers):
      h = TreeConv(self.hidden, name=f"decoder_{i}")(
          h, graph.senders, graph.receivers, mask)
    return nn.Dense(self.head_dim, name="head",
                    kernel_init=nn.initializers.normal(1e-2))(h)


def build(grammar: Grammar, hidden: int = 64, encoder_layers: int = 2,
          decoder_layers: int = 2, affine: bool = False
          ) -> DistributionTransformer:
  return DistributionTransformer(
      head_dim=encoding.layout(grammar).head_dim, hidden=hidden,
      encoder_layers=encoder_layers, decoder_layers=decoder_layers,
      affine_shape=((len(grammar.classes), grammar.num_attrs) if affine
                    else None))


def init(key: jax.Array, model: DistributionTransformer, grammar: Grammar,
         scene: SceneGraph):
  return model.init(key, graph_lib.to_graphs_tuple(scene, grammar))["params"]


def transform(params, model: DistributionTransformer, grammar: Grammar,
              scene: SceneGraph) -> tuple[SceneGraph, dict[int, jax.Array]]:
  """G_theta: new scene graphs (same structure) and categorical logits."""
  b = scene.batch_size
  out = model.apply({"params": params},
                    graph_lib.to_graphs_tuple(scene, grammar))
  head = out.reshape(b, grammar.num_slots, -1)
  affine = (None if "log_spread" not in params
            else (params["log_spread"], params["class_shift"]))
  attrs, logits = encoding.apply_head(head, scene.attrs, grammar, affine)
  return scene.replace(attrs=attrs), logits


def with_offsets(params, grammar: Grammar, offsets: Sequence[float] | jax.Array,
                 columns: Sequence[int]):
  """Adds constant head-bias offsets for mutable columns (multi-start).

  ``offsets[i]`` is in head units (normalised delta, or angle / 180).
  """
  lay = encoding.layout(grammar)
  bias = params["head"]["bias"]
  for off, j in zip(offsets, columns):
    bias = bias.at[lay.head[j][0]].add(off)
  return {**params, "head": {**params["head"], "bias": bias}}
