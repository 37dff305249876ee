"""Shared fixtures: a small digit grammar and pools made in the test.

The session also shares one XLA compilation cache (a temporary folder),
inherited by the subprocess runs of tests/training/test_resume.py: the
smoke runs in and out of process compile the same programs once.
"""

import atexit
import json
import os
import shutil
import tempfile

# Tests compare numbers, not speed: XLA's cheaper compile (about half the
# compile time of a training step; the tests' shapes are tiny) for this
# process and, through the environment, its subprocesses.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix="metasim_jax_tests_xla_")
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

import jax  # pylint: disable=g-import-not-at-top
import numpy as np
import pytest

from metasim_jax.grammar import compile_grammar

# Also if jax was imported before this file (the environment is read then).
jax.config.update("jax_compilation_cache_dir",
                  os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_disable_most_optimizations",
                  os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] not in
                  ("0", "false", "False"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", float(
    os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")))
from metasim_jax.types import TexturePool


def digit_grammar_dict(size=32, yaw_mean=0.0):
  return {
      "root": "scene",
      "classes": {
          "scene": {"children": [["background", 1], ["digit", 1]]},
          "background": {"render": "fill", "color": [0.0],
                         "semantic": "background"},
          "digit": {
              "render": "texture", "pool": "digits", "semantic": "digit",
              "attributes": {
                  "class": {"kind": "categorical", "num": 3,
                            "dist": {"type": "categorical"}},
                  "texture": {"kind": "index", "dist": {"type": "pool"}},
                  "x": {"kind": "continuous", "range": [0.0, float(size)],
                        "mutable": True,
                        "dist": {"type": "gaussian", "mean": size / 2,
                                 "std": 1.0}},
                  "y": {"kind": "continuous", "range": [0.0, float(size)],
                        "mutable": True,
                        "dist": {"type": "uniform", "low": size / 2 - 2,
                                 "high": size / 2 + 2}},
                  "yaw": {"kind": "angle", "mutable": True,
                          "dist": {"type": "gaussian", "mean": yaw_mean,
                                   "std": 10.0}},
                  "scale": {"kind": "continuous", "range": [0.5, 2.0],
                            "dist": {"type": "deterministic", "value": 1.0}},
              },
          },
      },
  }


def random_pool(seed=0, num=12, size=8, labels=3):
  rng = np.random.default_rng(seed)
  grey = rng.uniform(0, 1, (num, size, size)).astype(np.float32)
  return TexturePool.create(np.stack([grey, grey], -1),
                            np.arange(num) % labels, num_labels=labels)


def pytest_collection_modifyitems(items):
  """Modules with a ``slow`` test run first (pytest.ini turns off
  pytest-xdist's own order, by test count): the long end-to-end runs then
  overlap the many short tests instead of ending the suite on one worker."""
  slow = {item.module.__name__ for item in items
          if item.get_closest_marker("slow")}
  items.sort(key=lambda item: item.module.__name__ not in slow)


@pytest.fixture
def grammar():
  return compile_grammar(digit_grammar_dict())


@pytest.fixture(scope="module")
def driving_prior():
  """The driving world's input grammar (``experiments/configs/driving``)."""
  from experiments.configs import driving as driving_config
  path = os.path.join(os.path.dirname(driving_config.__file__), "driving",
                      "prior.json")
  with open(path) as f:
    return compile_grammar(json.load(f))


@pytest.fixture
def pools():
  return {"digits": random_pool()}
