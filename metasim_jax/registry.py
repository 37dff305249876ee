"""Named plug-ins: one small dict type shared by the world, task and
renderer registries (``data``, ``tasknet.tasks``, ``render.registry``)."""

from __future__ import annotations

from typing import Any


class Registry(dict):
  """name -> plug-in; ``what`` names it in errors (e.g. "world")."""

  def __init__(self, what: str):
    super().__init__()
    self.what = what

  def register(self, name: str, value: Any, *, replace: bool = False) -> None:
    """Adds ``name``; an existing name is refused unless ``replace``."""
    if name in self and not replace:
      raise ValueError(f"{name!r} is registered already; pass replace=True "
                       "to replace it")
    self[name] = value

  def lookup(self, name: str) -> Any:
    """The plug-in ``name``; ``ValueError`` listing the valid names."""
    if name not in self:
      raise ValueError(f"unknown {self.what} {name!r}; valid: {sorted(self)}")
    return self[name]
