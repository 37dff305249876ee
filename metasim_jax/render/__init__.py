"""Renderers (by name, ``registry``), the jitted 2D rasterizer, label
tables, and gradient paths through any renderer (``finite_diff``)."""

from metasim_jax.render import bridge  # registers "bridge"
from metasim_jax.render import raster2d  # registers "raster2d"
from metasim_jax.render.finite_diff import (MODES, finite_difference,
                                            with_gradient)
from metasim_jax.render.labels import (check_same_semantics, colorize,
                                       semantic_names, slot_semantic_ids)
from metasim_jax.render.raster2d import (Raster2D, render, render_image,
                                         world_transforms)
from metasim_jax.render.registry import (REGISTRY, Canvas, Renderer, create,
                                         register)
from metasim_jax.types import Renders

__all__ = ["Canvas", "bridge", "MODES", "REGISTRY", "Raster2D", "Renderer", "Renders",
           "check_same_semantics", "colorize", "create", "finite_difference",
           "raster2d", "register", "render", "render_image",
           "semantic_names", "slot_semantic_ids", "with_gradient",
           "world_transforms"]
