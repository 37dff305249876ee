"""One semantic-id table per problem, and colours to show label maps.

Semantic ids come from the *prior* grammar: id 0 is ``none``, then the
semantic names of its drawn classes in the order the prior lists them.  The
target grammar (and every other grammar rendered in the same problem) is
labelled through this one table, looked up by name, so that the order in
which a grammar file lists its classes cannot swap labels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from metasim_jax.grammar.spec import Grammar

NONE = "none"


def semantic_names(grammar: Grammar) -> tuple[str, ...]:
  """The semantic table of ``grammar`` (index = id; 0 is ``none``)."""
  names = [NONE]
  for c in grammar.classes.values():
    if c.render != "none" and c.semantic and c.semantic not in names:
      names.append(c.semantic)
  return tuple(names)


def slot_semantic_ids(grammar: Grammar,
                      names: Sequence[str]) -> np.ndarray:
  """[N] int32 id in ``names`` of each slot's class (0 if not drawn or
  unlabelled); raises ``ValueError`` naming a class whose semantic name is
  not in the table."""
  ids = []
  for s in grammar.slots:
    c = grammar.classes[s.cls]
    if c.render == "none" or not c.semantic:
      ids.append(0)
      continue
    if c.semantic not in names:
      raise ValueError(f"class {s.cls!r} has semantic class {c.semantic!r}, "
                       f"which is not in the problem's table {list(names)}")
    ids.append(list(names).index(c.semantic))
  return np.array(ids, np.int32)


def check_same_semantics(prior: Grammar, other: Grammar,
                         what: str = "config.target") -> None:
  """Raises ``ValueError`` naming the first class whose semantic name (or
  render kind) in ``other`` differs from the prior's."""
  for name, c in prior.classes.items():
    o = other.classes.get(name)
    if o is None:
      raise ValueError(f"{what}: has no class {name!r}")
    if (o.semantic or None) != (c.semantic or None):
      raise ValueError(
          f"{what}: class {name!r} has semantic class {o.semantic!r}, the "
          f"grammar has {c.semantic!r}; its labels would not mean the same")
    if o.render != c.render:
      raise ValueError(f"{what}: class {name!r} renders as {o.render!r}, "
                       f"the grammar as {c.render!r}")


# Colours of semantic ids 0.. (none, then the prior's classes in order;
# Aerial2D: grass, road, car, tree, house).
PALETTE = np.array([[0, 0, 0], [0.55, 0.85, 0.45], [0.5, 0.5, 0.5],
                    [0.95, 0.1, 0.1], [0.05, 0.35, 0.05], [1.0, 0.6, 0.1],
                    [0.2, 0.4, 1.0], [1.0, 1.0, 0.2]], np.float32)


def colorize(semantic: np.ndarray) -> np.ndarray:
  """[n, H, W] semantic ids -> [n, H, W, 3] colours of ``PALETTE``."""
  return PALETTE[np.asarray(semantic) % len(PALETTE)]
