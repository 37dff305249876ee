"""Every shipped flagfile names a config that builds; the Aerial2D task
stage's estimator options set what they say and refuse misuse."""

import importlib
import pathlib

import pytest

from experiments.configs import aerial

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLAGFILES = sorted((ROOT / "experiments" / "configs").glob("*.flags"))


def _flag_lines(flagfile: pathlib.Path) -> list[str]:
  """The flagfile's flags, nested ``--flagfile=`` ones (paths from the
  repository's root, where runs start) read in their place, as absl does."""
  lines = []
  for line in flagfile.read_text().split():
    if line.startswith("--flagfile="):
      lines += _flag_lines(ROOT / line.split("=", 1)[1])
    else:
      lines.append(line)
  return lines


def _config_of(flagfile: pathlib.Path):
  spec = next(line.split("=", 1)[1] for line in _flag_lines(flagfile)
              if line.startswith("--config="))
  path, _, variant = spec.partition(":")
  module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
  return module.get_config(variant or "default")


@pytest.mark.parametrize("flagfile", FLAGFILES, ids=lambda p: p.name)
def test_shipped_flagfile_config_builds(flagfile):
  config = _config_of(flagfile)
  assert config.world in ("mnist", "aerial", "driving")


def test_aerial_task_estimators():
  es, rf, ur = (aerial.get_config(v) for v in
                ("task", "task,reinforce", "task,unrolled"))
  assert (es.task.estimator, rf.task.estimator, ur.task.estimator) == (
      "es", "reinforce", "unrolled")
  # Same stage, budget and data; only how the gradient is estimated.
  for c in (rf, ur):
    assert c.schedule == es.schedule and c.task.steps == es.task.steps
    assert c.task.num_scenes == es.task.num_scenes
  assert rf.task.reward == es.task.reward == "score:iou_car"
  assert ur.task.reward == "neg_loss" and ur.tasknet.kwargs["smooth"]
  with pytest.raises(ValueError, match="use them with 'task'"):
    aerial.get_config("unrolled")
  with pytest.raises(ValueError, match="choose one estimator"):
    aerial.get_config("task,reinforce,unrolled")
