"""End-to-end: the MNIST experiment on a tiny budget, all three losses."""

import json

import jax
import numpy as np
import pytest

from experiments.configs import mnist as mnist_config
from metasim_jax.training import trainer

# One worker runs every test of the shared smoke run (pytest-xdist).
pytestmark = pytest.mark.xdist_group("smoke_run")


@pytest.mark.slow
def test_mnist_smoke_run_writes_its_outputs(smoke_run):
  tmp_path, summary = smoke_run  # rot,smoke,both with seeds (0, 1)
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["summary"]["seeds"] == [0, 1]
  assert len(saved["per_seed"]) == 2
  for seed in (0, 1):
    r = saved["per_seed"][seed]
    assert set(r["test_accuracy"]) == {"prior", "metasim", "oracle"}
    assert all(0.0 <= v <= 1.0 for v in r["test_accuracy"].values())
    assert np.isfinite(r["distribution"]["metasim"]["mmd2"])
    assert "scene/digit[0].yaw" in r["attribute_stats"]["metasim"]
    assert (tmp_path / f"grid_seed{seed}.png").stat().st_size > 0
    assert (tmp_path / f"curves_seed{seed}.png").stat().st_size > 0
  assert saved["versions"]["jax"] == jax.__version__
  assert summary["experiment"] == "mnist_rot_smoke_both"


@pytest.mark.slow
def test_smoke_run_uses_no_key_for_two_things(smoke_run):
  """The run's key ledgers (one per seed) raised no KeyReuseError, and
  each use has its own stream: the initial scenes and params, the
  evaluation repeats (derived from the eval stream, never it itself)."""
  from tests.training.conftest import RecordingStreams
  del smoke_run
  ledgers = RecordingStreams.ledgers[:2]
  assert len(ledgers) == 2  # seeds 0 and 1
  for issued in ledgers:
    names = {p[0] for p in issued}
    assert {"init_scene", "init_params", "pretrain", "starts", "mmd",
            "task", "select", "probe", "eval", "stats", "pictures"} <= names
    assert ("eval",) not in issued and ("eval", 0) in issued
    assert ("pretrain", 0) in issued and ("pretrain",) not in issued


def test_bad_variant_is_a_clear_error():
  with pytest.raises(ValueError, match="rot_trans"):
    mnist_config.get_config("rotate")


@pytest.mark.slow
def test_aerial_smoke_run_writes_its_outputs(tmp_path):
  from experiments.configs import aerial as aerial_config
  config = aerial_config.get_config("smoke")
  trainer.run(config, str(tmp_path))
  saved = json.loads((tmp_path / "results.json").read_text())
  assert saved["summary"]["headline_metric"] == "miou"
  r = saved["per_seed"][0]
  assert set(r["test_miou"]) == {"prior", "metasim", "oracle"}
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
