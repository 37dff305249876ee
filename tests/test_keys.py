"""PRNG keys: named streams, no key both used and derived from, no seed's
keys built from another's."""

import itertools

import jax
import numpy as np
import pytest

from metasim_jax import keys
from metasim_jax.training import seed as seed_lib


def _data(k) -> bytes:
  return np.asarray(jax.random.key_data(k)).tobytes()


def test_a_key_used_and_derived_from_is_refused():
  s = keys.Streams(keys.root(0, "train"), ("eval", "probe"))
  s("eval", 0)
  s("eval", 1)
  with pytest.raises(keys.KeyReuseError, match="derived from the other"):
    s("eval")  # the stream's key itself: its repeats derive from it
  s2 = keys.Streams(keys.root(0, "train"), ("eval",))
  s2("eval")
  with pytest.raises(keys.KeyReuseError):
    s2("eval", 3)
  with pytest.raises(keys.KeyReuseError, match="unknown key stream"):
    s2("evl")


def test_the_same_path_gives_the_same_key_on_purpose():
  s = keys.Streams(keys.root(0, "train"), ("probe",))
  assert _data(s("probe")) == _data(s("probe"))  # common random numbers


def test_streams_of_all_seeds_and_purposes_are_distinct():
  seen = {}
  for seed, purpose in itertools.product(range(40), keys.PURPOSES):
    s = keys.Streams(keys.root(seed, purpose), seed_lib.KEY_STREAMS)
    for name in seed_lib.KEY_STREAMS:
      for path in ((), (0,), (1,)):
        k = _data(s(name, *path)) if path else None
        if path == ():
          continue
        assert k not in seen, (seed, purpose, name, path, seen.get(k))
        seen[k] = (seed, purpose, name, path)
  # A data seed equal to a run seed shares no key with it.
  assert _data(keys.root(1234, "data")) != _data(keys.root(1234, "train"))
  assert _data(keys.root(7, "train")) != _data(jax.random.key(7))


def test_root_keys_are_made_in_keys_py_only():
  """Outside ``keys.py``, ``jax.random.key`` only makes shapes
  (``jax.eval_shape``), never a key that draws anything."""
  import pathlib
  root = pathlib.Path(keys.__file__).parent
  shapes_only = {"export/run.py", "features/inception.py"}
  for path in root.rglob("*.py"):
    rel = str(path.relative_to(root))
    text = path.read_text()
    if rel == "keys.py" or "jax.random.key(" not in text:
      continue
    assert rel in shapes_only, f"{rel} makes a root key"
    for line in text.splitlines():
      if "jax.random.key(" in line:
        assert "eval_shape" in text and "key(0)" in line, (rel, line)
