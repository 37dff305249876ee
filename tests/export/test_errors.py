"""Bad input to generate: one clear error naming the thing, nothing written,
nothing already there damaged."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from flax import serialization

from metasim_jax.export import generate as generate_lib
from metasim_jax.export import run as run_lib
from metasim_jax.export.errors import ExportError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def cli(*args: str) -> str:
  """Runs experiments.generate's main in-process; returns its exit text.

  Sets the flags one by one (not ``FLAGS(argv)``, which would also check
  flags that other modules mark required) and resets them after.
  """
  from experiments import generate as cli_lib
  fv = flags.FLAGS
  try:
    for arg in args:
      name, _, value = arg[2:].partition("=")
      fv[name].parse(value or "true")
      fv[name].present = 1
    fv.mark_as_parsed()
    with pytest.raises(SystemExit) as e:
      cli_lib.main(["generate"])
  finally:
    fv.unparse_flags()
  return str(e.value.code)


def copy_run(src, dst):
  shutil.copytree(src, dst)
  return str(dst)


def leftovers(parent):
  """Temporary directories left beside an output directory."""
  return [p for p in os.listdir(parent) if ".tmp-" in p or p.startswith(
      ".old-")]


def test_cli_prints_one_error_line_without_traceback(tmp_path):
  missing = tmp_path / "no_such_run"
  r = subprocess.run(
      [sys.executable, "-m", "experiments.generate", f"--run_dir={missing}",
       "--num_scenes=4", "--format=tfds", f"--output_dir={tmp_path / 'out'}"],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert r.returncode == 1
  assert r.stderr.strip().splitlines()[-1] == (
      f"error: run directory {missing}: does not exist")
  assert "Traceback" not in r.stderr
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,message", [
    (["--num_scenes=0"], "--num_scenes=0: must be a positive number of "
                        "scenes"),
    (["--num_scenes=-5"], "--num_scenes=-5: must be a positive number of "
                         "scenes"),
    (["--format=parquet"], "--format=parquet: unknown format; valid: tfds, "
                           "coco, kitti"),
    (["--shard_size=0"], "--shard_size=0: must be positive"),
])
def test_bad_flags(mnist_run, tmp_path, args, message):
  out = tmp_path / "out"
  text = cli(f"--run_dir={mnist_run}", "--num_scenes=4",
             f"--output_dir={out}", *args)
  assert text == f"error: {message}"
  assert not out.exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("fmt", ["coco", "kitti"])
def test_format_that_does_not_apply_to_classification(mnist_run, tmp_path,
                                                      fmt):
  out = tmp_path / "out"
  text = cli(f"--run_dir={mnist_run}", "--num_scenes=4", f"--format={fmt}",
             f"--output_dir={out}")
  assert text.startswith(f"error: --format={fmt}: does not apply to run "
                         "'mnist_rot_smoke', a classification task")
  assert "use --format=tfds" in text
  assert not out.exists() and not leftovers(tmp_path)


def _break(run_dir, name, content: bytes | None):
  path = os.path.join(run_dir, name)
  if content is None:
    os.remove(path)
  else:
    with open(path, "wb") as f:
      f.write(content)
  return path


@pytest.mark.parametrize("name,content,message", [
    ("results.json", None, "missing"),
    ("results.json", b'{"config": {"name": "x", ', "corrupt, not valid JSON"),
    ("results.json", b'{"summary": {}}', "corrupt, it has no 'config' entry"),
    ("grammar.json", None, "missing"),
    ("grammar.json", b"\x00\x01garbage", "corrupt, not valid JSON"),
    ("transformer_seed0.msgpack", None,
     "missing (run seeds with saved transformers: none)"),
    ("transformer_seed0.msgpack", b"\xc1\xc1 not msgpack",
     "corrupt, not a flax msgpack file"),
    ("transformer_seed0.msgpack", serialization.to_bytes({"w": np.ones(3)}),
     "its parameters do not match the run's transformer"),
])
def test_missing_or_corrupt_run_files(mnist_run, tmp_path, name, content,
                                      message):
  run_dir = copy_run(mnist_run, tmp_path / "run")
  path = _break(run_dir, name, content)
  out = tmp_path / "out"
  text = cli(f"--run_dir={run_dir}", "--num_scenes=4", f"--output_dir={out}")
  assert text.startswith(f"error: {path}: {message}"), text
  assert "\n" not in text
  assert not out.exists() and not leftovers(tmp_path)


def test_grammar_that_does_not_compile(mnist_run, tmp_path):
  run_dir = copy_run(mnist_run, tmp_path / "run")
  _break(run_dir, "grammar.json", b'{"root": "scene", "classes": {}}')
  with pytest.raises(ExportError, match=f"^{run_dir}: the config in "
                     "results.json with grammar.json / target.json does not "
                     "build a pipeline"):
    run_lib.load(run_dir)


def test_msgpack_with_wrong_shapes_names_the_parameter(mnist_run, tmp_path):
  run_dir = copy_run(mnist_run, tmp_path / "run")
  path = os.path.join(run_dir, "transformer_seed0.msgpack")
  state = serialization.msgpack_restore(open(path, "rb").read())
  state["head"]["bias"] = np.zeros(3, np.float32)
  open(path, "wb").write(serialization.msgpack_serialize(state))
  with pytest.raises(ExportError, match=r"parameter \['head'\]\['bias'\] "
                                        r"is float32\[3\]"):
    run_lib.load(run_dir)


def test_missing_seed_lists_the_saved_ones(mnist_run, tmp_path):
  text = cli(f"--run_dir={mnist_run}", "--run_seed=7", "--num_scenes=4",
             f"--output_dir={tmp_path / 'out'}")
  assert text == (f"error: {mnist_run}/transformer_seed7.msgpack: missing "
                  "(run seeds with saved transformers: 0)")


def test_run_dir_that_is_a_file(tmp_path):
  f = tmp_path / "file"
  f.write_text("x")
  text = cli(f"--run_dir={f}", "--num_scenes=4",
             f"--output_dir={tmp_path / 'out'}")
  assert text == f"error: run directory {f}: not a directory"


def test_non_empty_output_dir_is_refused_and_left_alone(mnist_run, tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  (out / "precious.txt").write_text("keep me")
  text = cli(f"--run_dir={mnist_run}", "--num_scenes=4",
             f"--output_dir={out}")
  assert text == (f"error: --output_dir={out}: not empty (1 entries); pass "
                  "--overwrite to replace it")
  assert os.listdir(out) == ["precious.txt"]
  assert (out / "precious.txt").read_text() == "keep me"
  assert not leftovers(tmp_path)


def test_output_dir_that_is_a_file_or_holds_the_run(mnist_run, tmp_path):
  f = tmp_path / "file"
  f.write_text("x")
  assert cli(f"--run_dir={mnist_run}", "--num_scenes=4",
             f"--output_dir={f}") == (
                 f"error: --output_dir={f}: exists and is not a directory")
  parent = os.path.dirname(mnist_run)
  text = cli(f"--run_dir={mnist_run}", "--num_scenes=4",
             f"--output_dir={parent}", "--overwrite")
  assert text == (f"error: --output_dir={parent}: it holds {mnist_run}, "
                  "which generation must not replace")
  assert os.path.isfile(os.path.join(mnist_run, "results.json"))


def test_output_dir_that_cannot_be_created(mnist_run, tmp_path):
  f = tmp_path / "file"
  f.write_text("x")
  text = cli(f"--run_dir={mnist_run}", "--num_scenes=4",
             f"--output_dir={f}/out")
  assert text == (f"error: --output_dir={f}/out: cannot create it ({f} is "
                  "not a directory)")
  assert f.read_text() == "x"


def test_overwrite_replaces_only_once_the_new_data_is_complete(runs,
                                                               tmp_path):
  run = runs["mnist"]
  out = tmp_path / "out"
  out.mkdir()
  (out / "old.txt").write_text("old data")

  def interrupt(done):
    raise KeyboardInterrupt  # e.g. Ctrl-C after the first shard

  with pytest.raises(KeyboardInterrupt):
    generate_lib.generate(run, str(out), num_scenes=24, fmt="tfds",
                          seed=0, shard_size=10, overwrite=True,
                          on_shard=interrupt)
  assert os.listdir(out) == ["old.txt"] and not leftovers(tmp_path)
  generate_lib.generate(run, str(out), num_scenes=24, fmt="tfds", seed=0,
                        shard_size=10, overwrite=True)
  assert sorted(os.listdir(out)) == ["metasim_mnist_rot_smoke"]
  assert not leftovers(tmp_path)


def test_empty_output_dir_is_used(runs, tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  generate_lib.generate(runs["mnist"], str(out), num_scenes=24, fmt="tfds",
                        seed=0, shard_size=10)
  assert os.listdir(out) == ["metasim_mnist_rot_smoke"]


def test_unknown_stuff_class(aerial_run, tmp_path):
  text = cli(f"--run_dir={aerial_run}", "--num_scenes=4", "--format=kitti",
             "--stuff=grass,lava", f"--output_dir={tmp_path / 'out'}")
  assert text == ("error: --stuff: unknown classes ['lava']; the grammar's "
                  "classes are ['grass', 'road', 'car', 'tree', 'house']")
  assert not (tmp_path / "out").exists()
