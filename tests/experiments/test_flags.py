"""experiments.launch.parse_flags: the last value of a --config field wins.

config_flags defines a tuple field (``seeds``, ``mmd.median_multiples``) as
an absl multi-flag, so a second ``--config.seeds=`` would append to the
first.  Each command line is parsed in its own process (absl's FLAGS is
global state), through a real flagfile; the process prints the config
fields it got as JSON.  The processes run at once (each imports jax).
"""

import json
import pathlib
import subprocess
import sys

import pytest

from experiments import launch

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Parses sys.argv[1:] with the programs' parser, prints some config fields.
_PARSE = """
import json, sys
from experiments import launch
rest = launch.parse_flags(["prog"] + sys.argv[1:])
c = launch._CONFIG.value
print(json.dumps({"rest": rest[1:], "name": c.name, "seeds": c.seeds,
                  "median_multiples": c.mmd.median_multiples,
                  "task_steps": c.task.steps,
                  "fixed_init": c.task.fixed_init}))
"""


def _write_flagfile(folder: pathlib.Path) -> pathlib.Path:
  path = folder / "five_seeds.flags"
  path.write_text("--config=experiments/configs/mnist.py:rot\n"
                  "--config.seeds=(0,1,2,3,4)\n"
                  "--config.mmd.median_multiples=(0.25,)\n"
                  "--config.task.steps=60\n"
                  f"--workdir={folder / 'run'}\n")
  return path


def _cases(flagfile: pathlib.Path) -> dict[str, list[str]]:
  """Command lines to parse, by name."""
  ff = f"--flagfile={flagfile}"
  return {
      "command_line_last": [
          ff, "--config.seeds=(3,4)", "--config.mmd.median_multiples=(4.0,)",
          "--config.mmd.median_multiples=(1.0,2.0)", "--config.task.steps=7",
          "--config.task.steps=8"],
      # An override before the flagfile's --config is no FlagOrderError;
      # the flagfile's values come last and win.
      "flagfile_last": [
          "--config.seeds=(3,4)", "--config.task.steps", "7",
          "--config.mmd.median_multiples=(1.0,2.0)", ff],
      "two_tokens": [ff, "--config.seeds", "(5,)", "--config.task.steps",
                     "-1", "--noconfig.task.fixed_init"],
      "unknown_field": [ff, "--config.nope=1"],
      "missing_flagfile": [f"--flagfile={flagfile.parent / 'missing.flags'}"],
  }


@pytest.fixture(scope="module")
def flagfile(tmp_path_factory) -> pathlib.Path:
  return _write_flagfile(tmp_path_factory.mktemp("flags"))


@pytest.fixture(scope="module")
def parsed(flagfile) -> dict[str, subprocess.CompletedProcess]:
  """Each case of ``_cases`` parsed in its own process, all at once."""
  procs = {name: subprocess.Popen(
      [sys.executable, "-c", _PARSE, *args], cwd=ROOT, text=True,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
           for name, args in _cases(flagfile).items()}
  out = {}
  for name, proc in procs.items():
    stdout, stderr = proc.communicate(timeout=120)
    out[name] = subprocess.CompletedProcess(proc.args, proc.returncode,
                                            stdout, stderr)
  return out


def _fields(parsed, name: str) -> dict:
  out = parsed[name]
  assert out.returncode == 0, out.stderr
  return json.loads(out.stdout.splitlines()[-1])


def test_command_line_after_flagfile_wins(parsed):
  got = _fields(parsed, "command_line_last")
  assert got["name"] == "mnist_rot"
  assert got["seeds"] == [3, 4]
  assert got["median_multiples"] == [1.0, 2.0]
  assert got["task_steps"] == 8
  assert got["rest"] == []


def test_flagfile_after_command_line_wins(parsed):
  got = _fields(parsed, "flagfile_last")
  assert got["seeds"] == [0, 1, 2, 3, 4]
  assert got["median_multiples"] == [0.25]
  assert got["task_steps"] == 60


def test_two_token_form_and_negation(parsed):
  got = _fields(parsed, "two_tokens")
  assert got["seeds"] == [5]
  assert got["task_steps"] == -1  # parsed; launch.check rejects it later
  assert got["fixed_init"] is False


def test_bad_flag_is_one_error_line(parsed, flagfile):
  out = parsed["unknown_field"]
  assert out.returncode != 0
  assert out.stderr.strip() == ("error: bad flag: the config has no field "
                                "'nope'")
  out = parsed["missing_flagfile"]
  assert out.returncode != 0
  assert out.stderr.strip() == (
      "error: bad flag: --flagfile: Unable to open flagfile: [Errno 2] No "
      f"such file or directory: '{flagfile.parent / 'missing.flags'}'")


def test_last_config_values(flagfile):
  # In this process: only expands the flagfile, parses nothing.
  got = launch.last_config_values([
      "prog", "--config.seeds=(9,)", f"--flagfile={flagfile}",
      "--config.seeds", "(3,4)", "-config.task.steps=1",
      "--config=experiments/configs/mnist.py:rot_trans", "--resume",
      "--", "--config.seeds=(7,)"])
  assert got == [
      "prog", "--config=experiments/configs/mnist.py:rot_trans",
      "--config.mmd.median_multiples=(0.25,)",
      f"--workdir={flagfile.parent / 'run'}", "--config.seeds", "(3,4)",
      "-config.task.steps=1", "--resume", "--", "--config.seeds=(7,)"]
