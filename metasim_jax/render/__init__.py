"""Renderers: the jitted 2D rasterizer and gradient paths through renderers."""

from metasim_jax.render.finite_diff import (MODES, finite_difference,
                                            with_gradient)
from metasim_jax.render.raster2d import (Canvas, Renders, render,
                                         render_image, semantic_names,
                                         world_transforms)

__all__ = ["Canvas", "MODES", "Renders", "finite_difference", "render",
           "render_image", "semantic_names", "with_gradient",
           "world_transforms"]
