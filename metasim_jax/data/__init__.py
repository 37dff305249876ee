"""Worlds by name: where a problem's assets and target data come from.

A world (``config.world``) provides

* ``grammar_pools(config) -> {name: TexturePool}``: the assets the grammar
  samples and renders with (textures, models, ...);
* ``target_sets(key, config, pipe) -> {"real", "val", "test": LabeledSet}``:
  X_R (unlabelled real images; their labels are unused), the labelled
  validation set V and the test set.  ``pipe`` is the problem
  (``metasim_jax.pipeline.Pipeline``): a world made from the target
  grammar renders it with ``pipe.sample(..., source="target")``,
  ``pipe.render`` and ``pipe.task.targets``.

Register another with ``register(name, World(grammar_pools, target_sets))``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax

from metasim_jax.registry import Registry
from metasim_jax.types import LabeledSet, TexturePool

SPLITS = ("real", "val", "test")


@dataclasses.dataclass(frozen=True)
class World:
  grammar_pools: Callable[[Any], Mapping[str, TexturePool]]
  target_sets: Callable[[jax.Array, Any, Any], Mapping[str, LabeledSet]]


REGISTRY = Registry("world")  # names valid as config.world
register = REGISTRY.register




def get(name: str) -> World:
  return REGISTRY.lookup(name)


def check_sets(sets: Mapping[str, LabeledSet], name: str) -> None:
  """Raises ``ValueError`` unless ``sets`` has the three splits."""
  missing = [s for s in SPLITS if s not in sets]
  if missing:
    raise ValueError(f"world {name!r} returned no target sets {missing}")


# The worlds of this package register themselves on import.
from metasim_jax.data import aerial, driving, mnist  # pylint: disable=g-import-not-at-top,wrong-import-position

__all__ = ["REGISTRY", "SPLITS", "World", "aerial", "check_sets", "driving",
           "get", "mnist", "register"]
