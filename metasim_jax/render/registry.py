"""Renderers by name: the one seam between scene graphs and pixels.

A renderer is built by ``create(name, canvas=..., semantic_names=...)``
from the problem's canvas (output size) and its semantic table
(``labels.semantic_names`` of the prior), and implements ``Renderer``:

* ``render(scene, grammar, pools) -> Renders``: all layers of a batch
  (image, semantic and instance maps, boxes); jittable.  A renderer outside
  JAX (another process, a game engine) implements it with one
  ``jax.pure_callback`` per batch; the MMD step vmaps it over the K starts,
  so give the callback ``vmap_method="broadcast_all"`` (one call with the
  starts as a leading axis) rather than one call per start.
* ``render_image(attrs, node_mask, grammar, pools) -> [B, H, W, C]``: the
  image alone, the function that distribution matching differentiates:
  by JAX autodiff if ``differentiable``, else by the finite differences of
  ``finite_diff.py``, which render all perturbed copies of a batch in one
  call of this function.

Optional: ``finite_difference_vjp(attrs, node_mask, g, grammar, steps) ->
[B, P]``, the central differences of ``finite_diff.perturbations(steps)``
computed by the renderer itself (the bridge draws each perturbed copy only
where it can change); the pipeline's finite differences use it if present.

Register another with ``register(name, factory)``, where ``factory(canvas,
semantic_names, **options)`` returns a ``Renderer``; ``options`` come from
``config.renderer_options`` (e.g. the bridge's servers).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Protocol

import jax

from metasim_jax.grammar.spec import Grammar
from metasim_jax.registry import Registry
from metasim_jax.types import Renders, SceneGraph, TexturePool

Pools = Mapping[str, TexturePool]


@dataclasses.dataclass(frozen=True)
class Canvas:
  """Output size of a renderer: height, width, colour channels."""
  height: int
  width: int
  channels: int = 1

  @property
  def shape(self) -> tuple[int, int, int]:
    return (self.height, self.width, self.channels)


class Renderer(Protocol):
  canvas: Canvas
  differentiable: bool

  def render(self, scene: SceneGraph, grammar: Grammar,
             pools: Pools) -> Renders:
    ...

  def render_image(self, attrs: jax.Array, node_mask: jax.Array,
                   grammar: Grammar, pools: Pools) -> jax.Array:
    ...


Factory = Callable[..., Renderer]
REGISTRY = Registry("renderer")  # names valid as config.renderer
register = REGISTRY.register




def create(name: str, *, canvas: Canvas, semantic_names: tuple[str, ...],
           **options) -> Renderer:
  factory = REGISTRY.lookup(name)
  try:
    return factory(canvas, tuple(semantic_names), **options)
  except TypeError as e:
    raise ValueError(f"renderer {name!r}: bad config.renderer_options "
                     f"{sorted(options)}: {e}") from None
