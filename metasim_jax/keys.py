"""PRNG keys by name: one root per (seed, purpose), named streams per run.

Every random draw is a function of a seed and a *named* path, never of a
key used for two things:

* ``root(seed, purpose)``: the root key of a seed for one purpose
  (``PURPOSES``: training runs, target data, dataset export, learned
  features), so that
  ``--seed=1234`` and ``config.data_seed=1234`` never share draws, and no
  seed's key is built from another seed's (``key(10_000 + seed)`` style).
* ``Streams(root, names)``: named streams split once from a root;
  ``streams("mmd")`` is a stream's key, ``streams("eval", r)`` folds ``r``
  into it.  A path is either used as a key or derived from, never both:
  asking for ``("eval",)`` and ``("eval", 0)`` raises ``KeyReuseError``.
  Asking for the same path again gives the same key; that is how common
  random numbers are drawn on purpose (every evaluated source trains its
  task network from the same key).
"""

from __future__ import annotations

from typing import Sequence

import jax

PURPOSES = ("train", "data", "export", "features")


class KeyReuseError(RuntimeError):
  """A key was both used and derived from (or a stream name is unknown)."""


def root(seed: int, purpose: str) -> jax.Array:
  """The root key of ``seed`` for ``purpose`` (one of ``PURPOSES``)."""
  if purpose not in PURPOSES:
    raise ValueError(f"unknown key purpose {purpose!r}; valid: {PURPOSES}")
  return jax.random.fold_in(jax.random.key(seed), PURPOSES.index(purpose))


class Streams:
  """Named key streams split from one root, with a ledger of the paths
  handed out (``issued``)."""

  def __init__(self, root_key: jax.Array, names: Sequence[str]):
    if len(set(names)) != len(names):
      raise ValueError(f"repeated stream names in {list(names)}")
    self.names = tuple(names)
    self._keys = dict(zip(self.names, jax.random.split(root_key,
                                                       len(self.names))))
    self.issued: set[tuple] = set()
    self._parents: set[tuple] = set()  # strict prefixes of issued paths

  def __call__(self, name: str, *path: int) -> jax.Array:
    if name not in self._keys:
      raise KeyReuseError(f"unknown key stream {name!r}; streams: "
                          f"{list(self.names)}")
    full = (name,) + tuple(int(i) for i in path)
    if full not in self.issued:
      prefixes = [full[:n] for n in range(1, len(full))]
      clash = (full if full in self._parents
               else next((p for p in prefixes if p in self.issued), None))
      if clash is not None:
        raise KeyReuseError(
            f"key {'/'.join(map(str, full))} and key "
            f"{'/'.join(map(str, clash))}...: one is derived from the "
            "other, so their draws are not independent")
      self.issued.add(full)
      self._parents.update(prefixes)
    key = self._keys[name]
    for i in full[1:]:
      key = jax.random.fold_in(key, i)
    return key
