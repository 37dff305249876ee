"""The import graph: layers follow the pipeline and import only downward;
no module reaches into another's private names.

Layers, lowest first: a module may import its own layer and those below.
``training`` and ``export`` are side by side: neither imports the other.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "metasim_jax"
LAYERS = [
    {"types", "io", "keys", "registry", "parallel", "config_upgrade"},
    {"grammar"},
    {"scene_graph"},
    {"transformer"},
    {"render"},
    {"features"},
    {"tasknet"},
    {"data"},
    {"pipeline", "schedule", "task_features"},
    {"training", "export"},
]
SIDE_BY_SIDE = {("training", "export"), ("export", "training")}


def _layer(part: str) -> int:
  for i, names in enumerate(LAYERS):
    if part in names:
      return i
  raise AssertionError(f"metasim_jax.{part} is in no layer of {__file__}")


def _unit(module: str) -> str | None:
  """metasim_jax.render.raster2d -> 'render'; other packages -> None."""
  parts = module.split(".")
  if parts[0] != "metasim_jax" or len(parts) < 2:
    return None
  return parts[1]


def _imports(path: pathlib.Path):
  """(imported module, [names], line) of every import in ``path``."""
  tree = ast.parse(path.read_text(), str(path))
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for a in node.names:
        yield a.name, [], node.lineno
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      yield node.module, [a.name for a in node.names], node.lineno


def _modules():
  return sorted(p for p in PACKAGE.rglob("*.py"))


def test_every_package_module_is_in_a_layer():
  for path in _modules():
    rel = path.relative_to(PACKAGE).with_suffix("")
    if rel.parts == ("__init__",):
      continue
    _layer(rel.parts[0])


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(
    p.relative_to(ROOT)))
def test_imports_run_downward_only(path):
  rel = path.relative_to(PACKAGE).with_suffix("")
  if rel.parts == ("__init__",):
    return
  own = rel.parts[0]
  upward = []
  for module, names, line in _imports(path):
    units = {_unit(module)}
    if module == "metasim_jax":  # from metasim_jax import grammar, ...
      units = {n for n in names}
    for unit in units - {None, own}:
      if ((own, unit) in SIDE_BY_SIDE or _layer(unit) > _layer(own)):
        upward.append(f"line {line}: {own} imports {unit} ({module})")
  assert not upward, f"{rel}: upward imports: {upward}"


@pytest.mark.parametrize("root", ["metasim_jax", "experiments"])
def test_no_private_names_of_other_modules(root):
  """``from m import _x`` and ``m._x`` on an imported project module."""
  found = []
  for path in sorted((ROOT / root).rglob("*.py")):
    tree = ast.parse(path.read_text(), str(path))
    aliases = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module and (
          node.module.split(".")[0] in ("metasim_jax", "experiments")):
        for a in node.names:
          if a.name.startswith("_") and not a.name.startswith("__"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports "
                         f"{node.module}.{a.name}")
          aliases.add(a.asname or a.name)
      elif isinstance(node, ast.Import):
        for a in node.names:
          if a.name.split(".")[0] in ("metasim_jax", "experiments"):
            aliases.add((a.asname or a.name).split(".")[0])
    for node in ast.walk(tree):
      if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
          and not node.attr.startswith("__")
          and isinstance(node.value, ast.Name) and node.value.id in aliases):
        found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses "
                     f"{node.value.id}.{node.attr}")
  assert not found, found


def test_the_pipeline_imports_without_orbax_or_tensorboard():
  import subprocess
  import sys
  code = ("import sys, metasim_jax.pipeline, metasim_jax.export.generate; "
          "bad = [m for m in sys.modules if m.split('.')[0] in "
          "('orbax', 'tensorboardX', 'tensorboard')]; print(bad); "
          "sys.exit(1 if bad else 0)")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stdout + out.stderr
