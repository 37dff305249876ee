"""End-to-end: the Aerial2D experiment on a tiny budget; config errors.

The MNIST smoke run's outputs are checked in test_resume.py, the module
that shares that run (pytest-xdist keeps a module on one worker).
"""

import json

import pytest

from experiments.configs import mnist as mnist_config
from metasim_jax.training import trainer

def test_bad_variant_is_a_clear_error():
  with pytest.raises(ValueError, match="rot_trans"):
    mnist_config.get_config("rotate")


@pytest.mark.slow
def test_aerial_smoke_run_writes_its_outputs(tmp_path):
  from experiments.configs import aerial as aerial_config
  # With the task stage after MMD (es on the cars' group, car IoU reward).
  config = aerial_config.get_config("task,smoke")
  # Probes (a task-net training each) are checked in the MNIST smoke run
  # (test_resume.py); here they would only add their compile time.
  config.eval.probe_every = 0
  trainer.run(config, str(tmp_path))
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["summary"]["headline_metric"] == "miou"
  r = saved["per_seed"][0]
  assert set(r["test_miou"]) == {"prior", "metasim", "oracle"}
  assert set(r["test_miou_per_stage"]) == {"all", "+task loss"}
  for source, m in r["test_metrics"].items():
    for name in ("car", "road", "house", "tree", "grass"):
      assert 0.0 <= m[f"iou_{name}"] <= 1.0, (source, name)
  assert "scene/road[0]/car[1].yaw" in r["attribute_stats"]["metasim"]
  assert (tmp_path / "grid_seed0.png").stat().st_size > 0
  summary_md = (tmp_path / "summary.md").read_text()
  assert "| Meta-Sim |" in summary_md and "![samples](grid_seed0.png)" in summary_md
  # The run keeps its grammars and its trained generator.
  assert (tmp_path / "transformer_seed0.msgpack").stat().st_size > 0
  assert json.loads((tmp_path / "target.json").read_text())["root"] == "scene"
