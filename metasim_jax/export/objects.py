"""Which slots are objects ("things") and how visible each one is.

Semantic classes split into *stuff* (amorphous regions such as grass, road,
background) and *things* (countable objects: cars, trees, houses).  Boxes
and KITTI labels are written for things; COCO annotates every visible
instance and marks its category's supercategory ``thing`` or ``stuff``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from metasim_jax.export.errors import ExportError
from metasim_jax.grammar.spec import Grammar
from metasim_jax.render import semantic_names, slot_semantic_ids

DEFAULT_STUFF = ("background", "grass", "road")


def slot_semantics(grammar: Grammar) -> np.ndarray:
  """[N] int32 semantic id of each slot's class (0 = none / not drawn)."""
  return slot_semantic_ids(grammar, semantic_names(grammar))


def thing_classes(grammar: Grammar,
                  stuff: Sequence[str] | None = None) -> tuple[str, ...]:
  """Semantic classes that are objects: all but 'none' and ``stuff``.

  ``stuff=None`` uses ``DEFAULT_STUFF``; given names must be classes of
  the grammar.
  """
  names = semantic_names(grammar)
  if stuff is None:
    stuff = DEFAULT_STUFF
  else:
    unknown = sorted(set(stuff) - set(names[1:]))
    if unknown:
      raise ExportError(f"--stuff: unknown classes {unknown}; the grammar's "
                        f"classes are {list(names[1:])}")
  return tuple(n for n in names[1:] if n not in stuff)


def thing_slots(grammar: Grammar, things: Sequence[str]) -> tuple[int, ...]:
  names = semantic_names(grammar)
  ids = {names.index(t) for t in things}
  return tuple(int(i) for i, s in enumerate(slot_semantics(grammar))
               if s in ids)


def truncation(full_box: np.ndarray, height: int, width: int) -> np.ndarray:
  """Fraction of each box [..., 4] (x0, y0, x1, y1) outside the image."""
  x0, y0, x1, y1 = np.moveaxis(np.asarray(full_box, np.float64), -1, 0)
  area = np.maximum(x1 - x0, 0) * np.maximum(y1 - y0, 0)
  inside = (np.maximum(np.minimum(x1, width) - np.maximum(x0, 0), 0)
            * np.maximum(np.minimum(y1, height) - np.maximum(y0, 0), 0))
  return np.where(area > 0, 1.0 - inside / np.maximum(area, 1e-12), 1.0)


def occlusion_level(visible_area: np.ndarray,
                    own_area: np.ndarray) -> np.ndarray:
  """KITTI occlusion state from pixel counts: 0 = fully visible, 1 = partly
  occluded (at least half visible), 2 = largely occluded (less than half),
  3 = unknown (own footprint not measured or empty)."""
  visible = np.asarray(visible_area, np.float64)
  own = np.asarray(own_area, np.float64)
  frac = visible / np.maximum(own, 1)
  level = np.where(visible >= own, 0, np.where(frac >= 0.5, 1, 2))
  return np.where(own > 0, level, 3).astype(np.int32)
