"""A non-editable install (``pip install .``) holds what the code reads.

setup.py is parsed, not run: ``package_data`` is a literal, and
``packages`` is evaluated alone (with setuptools' ``find_packages``).  The
package data globs are expanded as setuptools expands them (relative to
the package directory, ``**`` recursive), and every data file of
experiments/configs (flag files, the Aerial2D grammars) must be matched.
"""

import ast
import glob
import os
import shutil
import subprocess
import sys
import zipfile

import pytest
import setuptools

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join("experiments", "configs")


def _setup_keywords() -> dict[str, ast.expr]:
  with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
    tree = ast.parse(f.read())
  calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
           and getattr(n.func, "id", None) == "setup"]
  assert len(calls) == 1, "setup.py must call setup() once"
  return {k.arg: k.value for k in calls[0].keywords}


def _package_data() -> dict[str, list[str]]:
  return ast.literal_eval(_setup_keywords()["package_data"])


def _packages(monkeypatch) -> list[str]:
  monkeypatch.chdir(ROOT)  # find_packages looks from the working dir
  expr = ast.Expression(_setup_keywords()["packages"])
  return eval(compile(expr, "setup.py", "eval"),  # pylint: disable=eval-used
              {"find_packages": setuptools.find_packages})


def _data_files(top: str) -> set[str]:
  """Files under ``top`` (relative to ROOT) that are not Python code."""
  found = set()
  for d, dirs, files in os.walk(os.path.join(ROOT, top)):
    dirs[:] = [x for x in dirs if x != "__pycache__"]
    found.update(os.path.relpath(os.path.join(d, f), ROOT) for f in files
                 if not f.endswith((".py", ".pyc")))
  return found


def _matched(package_data: dict[str, list[str]]) -> set[str]:
  matched = set()
  for package, patterns in package_data.items():
    base = os.path.join(ROOT, *package.split("."))
    for pattern in patterns:
      for f in glob.glob(pattern, root_dir=base, recursive=True):
        if os.path.isfile(os.path.join(base, f)):
          matched.add(os.path.relpath(os.path.join(base, f), ROOT))
  return matched


def test_package_data_holds_every_config_data_file():
  files = _data_files(CONFIGS)
  assert os.path.join(CONFIGS, "aerial", "prior.json") in files
  missing = sorted(files - _matched(_package_data()))
  assert not missing, f"setup.py package_data misses {missing}"


def test_every_code_directory_is_a_package(monkeypatch):
  """Directories of modules without __init__.py (experiments/configs)
  are invisible to find_packages; setup.py must name them."""
  packages = set(_packages(monkeypatch))
  for top in ("metasim_jax", "experiments"):
    for d, dirs, files in os.walk(os.path.join(ROOT, top)):
      dirs[:] = [x for x in dirs if x != "__pycache__"]
      if any(f.endswith(".py") for f in files):
        package = os.path.relpath(d, ROOT).replace(os.sep, ".")
        assert package in packages, f"setup.py packages misses {package}"


@pytest.mark.slow
def test_the_wheel_holds_the_aerial_grammars(tmp_path):
  """Builds the wheel offline from a copy of the sources (the build
  writes build/ and *.egg-info beside setup.py)."""
  src = tmp_path / "src"
  src.mkdir()
  for name in ("setup.py", "README.md"):
    shutil.copy(os.path.join(ROOT, name), src)
  for top in ("metasim_jax", "experiments"):
    shutil.copytree(os.path.join(ROOT, top), src / top,
                    ignore=shutil.ignore_patterns("__pycache__"))
  subprocess.run(
      [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
       "--no-build-isolation", "--no-index", "-q", "-w", str(tmp_path)],
      check=True, capture_output=True, timeout=120)
  (wheel,) = glob.glob(str(tmp_path / "*.whl"))
  with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
  for f in ("aerial/prior.json", "aerial/target.json", "aerial.py",
            "aerial.flags"):
    assert f"experiments/configs/{f}" in names
  assert {f.replace(os.sep, "/") for f in _data_files(CONFIGS)} <= names
