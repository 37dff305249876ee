"""Losses on the Distribution Transformer's outputs (pure functions): the
autoencoder pre-training loss and the Gaussian sampling, log-probability and
score-function surrogate of REINFORCE (Algorithm 1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from metasim_jax.grammar.sampler import wrap_angle
from metasim_jax.grammar.spec import Grammar
from metasim_jax.scene_graph import encoding
from metasim_jax.types import SceneGraph


def _mutable_feature_mask(grammar: Grammar) -> np.ndarray:
  """[N, F] True on encoded features of mutable continuous/angle attrs."""
  lay = encoding.layout(grammar)
  mask = np.zeros((grammar.num_slots, lay.feature_dim), bool)
  for j, kind in enumerate(grammar.attr_kinds):
    if kind in ("continuous", "angle"):
      start, width = lay.feature[j]
      mask[:, start:start + width] = grammar.mutable[:, j, None]
  return mask


def autoencoder_loss(new: SceneGraph, logits: dict[int, jax.Array],
                     scene: SceneGraph, grammar: Grammar) -> jax.Array:
  """Identity pre-training: L1 on continuous, cross-entropy on categorical.

  Both are averaged over the mutable entries of existing nodes.
  """
  node = scene.node_mask[..., None]
  fmask = _mutable_feature_mask(grammar) & node
  diff = jnp.abs(encoding.encode(new.attrs, grammar)
                 - encoding.encode(scene.attrs, grammar))
  loss = jnp.sum(diff * fmask) / jnp.maximum(fmask.sum(), 1)
  for j, lg in logits.items():
    m = grammar.mutable[:, j] & scene.node_mask
    ce = -jnp.take_along_axis(
        jax.nn.log_softmax(lg), scene.attrs[..., j, None].astype(jnp.int32),
        -1)[..., 0]
    loss = loss + jnp.sum(ce * m) / jnp.maximum(m.sum(), 1)
  return loss


def sigma_table(grammar: Grammar, sigmas: dict[str, float]) -> np.ndarray:
  """[N, A] REINFORCE sampling sigma; 0 where an attribute is not sampled."""
  table = np.zeros((grammar.num_slots, grammar.num_attrs), np.float32)
  for name, s in sigmas.items():
    j = grammar.col(name)
    if grammar.attr_kinds[j] not in ("continuous", "angle"):
      raise ValueError(f"REINFORCE sigma given for {name!r}, which is "
                       f"{grammar.attr_kinds[j]}; only continuous and angle "
                       "attributes are sampled")
    if s <= 0:
      raise ValueError(f"REINFORCE sigma for {name!r} must be > 0, got {s}")
    table[:, j] = np.where(grammar.mutable[:, j], s, 0.0)
  return table


def _angle_cols(grammar: Grammar) -> np.ndarray:
  return np.array([k == "angle" for k in grammar.attr_kinds])


def gaussian_sample(key: jax.Array, mean: SceneGraph, sigma: np.ndarray,
                    grammar: Grammar) -> SceneGraph:
  """Draws attrs ~ N(mean, sigma) on the sampled entries (Algorithm 1)."""
  x = mean.attrs + sigma * jax.random.normal(key, mean.attrs.shape)
  x = jnp.where(_angle_cols(grammar), wrap_angle(x), x)
  return mean.replace(attrs=jnp.where(sigma > 0, x, mean.attrs))


def gaussian_log_prob(sample: jax.Array, mean: SceneGraph, sigma: np.ndarray,
                      grammar: Grammar) -> jax.Array:
  """log N(sample | mean, sigma) summed over sampled attributes. [B]."""
  diff = sample - mean.attrs
  diff = jnp.where(_angle_cols(grammar), wrap_angle(diff), diff)
  on = (sigma > 0) & mean.node_mask[..., None]
  s = np.where(sigma > 0, sigma, 1.0)
  lp = -0.5 * (diff / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)
  return jnp.sum(jnp.where(on, lp, 0.0), (1, 2))


def shared_gaussian_sample(key: jax.Array, mean: SceneGraph,
                           sigma: np.ndarray, grammar: Grammar) -> SceneGraph:
  """One offset ~ N(0, sigma) per attribute column, shared by all scenes."""
  col_sigma = sigma.max(0)  # [A]
  offset = col_sigma * jax.random.normal(key, col_sigma.shape)
  x = mean.attrs + offset
  x = jnp.where(_angle_cols(grammar), wrap_angle(x), x)
  return mean.replace(attrs=jnp.where(sigma > 0, x, mean.attrs))


def shared_gaussian_log_prob(sample: jax.Array, mean: SceneGraph,
                             sigma: np.ndarray, grammar: Grammar
                             ) -> jax.Array:
  """log N(offset | 0, sigma) of the shared offset, estimated per column as
  the mean of (sample - mean) over the scenes; broadcast to [B].

  The score is exact when G_theta moves every scene's mean by one common
  offset (the global shifts of the MNIST targets); otherwise it is a biased
  approximation.
  """
  diff = sample - mean.attrs
  diff = jnp.where(_angle_cols(grammar), wrap_angle(diff), diff)
  on = (sigma > 0) & mean.node_mask[..., None]
  offset = jnp.sum(jnp.where(on, diff, 0.0), (0, 1)) / jnp.maximum(
      on.sum((0, 1)), 1)
  col_sigma = sigma.max(0)
  used = col_sigma > 0
  s = np.where(used, col_sigma, 1.0)
  lp = -0.5 * (offset / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)
  return jnp.broadcast_to(jnp.sum(jnp.where(used, lp, 0.0)),
                          sample.shape[:1])


def reinforce_surrogate(log_prob: jax.Array, reward: jax.Array,
                        baseline: jax.Array) -> jax.Array:
  """Score-function surrogate: its gradient is -(R - b) grad log p."""
  advantage = jax.lax.stop_gradient(reward - baseline)
  return -advantage * log_prob
