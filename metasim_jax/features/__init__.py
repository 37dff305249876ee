"""Features phi for distribution matching, MMD^2 and KID."""

from __future__ import annotations

from typing import Any, Callable

import jax

from metasim_jax.features import local_stats as local_stats_lib
from metasim_jax.features import pyramid as pyramid_lib
from metasim_jax.features.kid import kid, polynomial_mmd2
from metasim_jax.features.mmd import MMDTarget, mmd2, sq_dists

FeatureFn = Callable[[Any, jax.Array], jax.Array]
NAMES = ("pyramid", "local_stats", "inception")


def create(name: str, *, levels: int = 4, sigma: float = 1.0,
           inception_weights: str | None = None,
           inception_layer: str = "Mixed_5d",
           inception_resize: int | None = 128, num_filters: int = 32,
           filter_size: int = 3, seed: int = 0,
           grid: tuple[int, int] = (1, 1)) -> tuple[Any, FeatureFn]:
  """Returns (frozen params, fn(params, images [B,H,W,C]) -> [B, D]).

  ``pyramid``: blurred pixels at ``levels`` scales (MNIST default);
  ``local_stats``: spatially pooled random-filter responses at ``levels``
  scales (Aerial2D default), over the whole image or over the cells of a
  ``grid`` = (rows, cols) (driving); ``inception``: a layer of InceptionV3.
  """
  if name == "pyramid":
    return None, lambda _, images: pyramid_lib.pyramid(images, levels, sigma)
  if name == "local_stats":
    return None, lambda _, images: local_stats_lib.local_stats(
        images, levels, num_filters, filter_size, seed, tuple(grid))
  if name == "inception":
    if not inception_weights:
      raise ValueError("features 'inception' needs --inception_weights=PATH "
                       "(see docs/inception_weights.md)")
    from metasim_jax.features import inception
    variables = inception.load_params(inception_weights, inception_layer)
    return variables, inception.make_feature_fn(inception_layer,
                                                inception_resize)
  raise ValueError(f"unknown features {name!r}; valid: {NAMES}")


__all__ = ["MMDTarget", "NAMES", "create", "kid", "mmd2", "polynomial_mmd2",
           "sq_dists"]
