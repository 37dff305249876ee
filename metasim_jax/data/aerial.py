"""Aerial2D data: procedural texture pools and the labelled target sets.

The grammar's pools and the target ("real") world's pools come from
different texture seeds, so the cars, trees, houses, roads and grass of the
target images never appear in generated scenes (as MNIST's digit splits are
disjoint).  The target sets X_R, V and test are rendered once from the
target grammar with the target pools; labels are the renderer's semantic
map.
"""

from __future__ import annotations

from typing import Mapping

import jax
import numpy as np

from metasim_jax import data as data_lib
from metasim_jax.data import aerial_textures
from metasim_jax.data.rendered import render_sets
from metasim_jax.types import LabeledSet, TexturePool

CLASSES = ("grass", "road", "car", "tree", "house")


def texture_pools(seed: int, counts: Mapping[str, int] | None = None
                  ) -> dict[str, TexturePool]:
  """One single-label pool per texture kind, deterministic per seed."""
  textures = aerial_textures.make_all(seed, counts)
  return {kind: TexturePool.create(t, np.zeros(len(t), np.int32), 1)
          for kind, t in textures.items()}


def grammar_pools(config) -> dict[str, TexturePool]:
  return texture_pools(config.textures.grammar_seed,
                       dict(config.textures.counts))


def target_sets(key: jax.Array, config, pipe) -> dict[str, LabeledSet]:
  """X_R, V, test of ``config.splits`` sizes, rendered from the target
  grammar with the pools of ``config.textures.target_seed``."""
  pools = texture_pools(config.textures.target_seed,
                        dict(config.textures.counts))
  return render_sets(key, pipe, pools, dict(config.splits))


data_lib.register("aerial", data_lib.World(grammar_pools, target_sets))
