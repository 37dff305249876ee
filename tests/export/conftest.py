"""Run directories to generate from, one per experiment.

``trainer.run`` on the smoke configs costs about two CPU-minutes per
experiment here (mostly compiling its evaluation programs), more than the
export tests may add to the suite.  ``make_run_dir`` writes the files of a
run directory that generation reads, with trainer's own writers:
results.json (its "config"), grammar.json, target.json and
transformer_seed0.msgpack, the Distribution Transformer as
``trainer.run`` initialises it (its trained values do not matter to the
exporters; results/generate_demo.txt records generation from runs that
trainer.run wrote, and test_a_full_trainer_run_directory_loads reads the
committed results/aerial).

XLA compilation dominates these tests, so they compile with
``jax_disable_most_optimizations`` (``fast_compile``), restored after.
"""

import contextlib

import jax
import pytest
from flax import serialization

from experiments.configs import aerial as aerial_config
from experiments.configs import mnist as mnist_config
from metasim_jax import io
from metasim_jax import pipeline as pipeline_lib
from metasim_jax.export import run as run_lib


@contextlib.contextmanager
def fast_compile():
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", old)


@pytest.fixture(autouse=True, scope="module")
def _fast_compile_module():
  with fast_compile():
    yield


def make_run_dir(config, workdir: str, seed: int = 0) -> str:
  pipe, _ = pipeline_lib.build(config)
  for which in ("grammar", "target"):
    io.write_json(f"{workdir}/{which}.json",
                  pipeline_lib.grammar_dict(config, which))
  pools = pipe.world.grammar_pools(config)
  k_scene, k_params = jax.random.split(jax.random.key(seed))
  params = jax.jit(lambda a, b: pipe.init_transformer(a, b, pools))(
      k_scene, k_params)
  io.write_json(f"{workdir}/results.json",
                {"experiment": config.name, "config": config.to_dict()})
  io.write_bytes(f"{workdir}/transformer_seed{seed}.msgpack",
                 serialization.to_bytes(params))
  return workdir


@pytest.fixture(scope="session")
def mnist_run(tmp_path_factory):
  with fast_compile():
    return make_run_dir(mnist_config.get_config("rot,smoke"),
                        str(tmp_path_factory.mktemp("mnist_run")))


@pytest.fixture(scope="session")
def aerial_run(tmp_path_factory):
  with fast_compile():
    return make_run_dir(aerial_config.get_config("smoke"),
                        str(tmp_path_factory.mktemp("aerial_run")))


@pytest.fixture(scope="session")
def runs(mnist_run, aerial_run):
  """The two run directories, loaded once (generation compiles once per
  loaded pipeline and shard shape)."""
  return {"mnist": run_lib.load(mnist_run), "aerial": run_lib.load(aerial_run)}
