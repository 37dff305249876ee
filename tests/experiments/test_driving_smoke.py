"""A short end-to-end run of the driving experiment through a real renderer
server (moderngl): pre-training, two generator stages with finite
differences through the bridge, a detector per results row, reports."""

import json
import os

import numpy as np
import pytest

from experiments.configs import driving as driving_config
from metasim_jax.training import trainer

pytest.importorskip("moderngl")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("driving_smoke")
  config = driving_config.get_config("smoke")
  return workdir, trainer.run(config, str(workdir))


@pytest.mark.slow
def test_every_stage_is_a_row_of_the_results(smoke):
  workdir, summary = smoke
  seed = summary["per_seed"][0]
  assert seed["stages"] == ["cars", "+camera+context"]
  per_stage = seed["test_ap50_moderate_per_stage"]
  assert set(per_stage) == {"cars", "+camera+context"}
  # The last stage is the run's Meta-Sim result.
  assert per_stage["+camera+context"] == seed["test_ap50_moderate"]["metasim"]
  for row in ("prior", "metasim", "oracle"):
    assert set(seed["test_metrics"][row]) >= {"ap50_easy", "ap50_moderate",
                                              "ap50_hard", "ap70_moderate"}
  assert os.path.isfile(workdir / "checkpoints" / "seed0" / "stages"
                        / "s1_mmd.msgpack")
  with open(workdir / "results.json") as f:
    assert json.load(f)["summary"]["stages"] == ["cars", "+camera+context"]
  text = (workdir / "summary.md").read_text()
  assert "Meta-Sim: cars" in text and "Meta-Sim: +camera+context" in text


@pytest.mark.slow
def test_the_run_wrote_its_pictures_and_attribute_report(smoke):
  workdir, summary = smoke
  seed = summary["per_seed"][0]
  assert (workdir / "grid_seed0.png").stat().st_size > 0
  assert (workdir / "curves_seed0.png").stat().st_size > 0
  # Detections of each row's detector (prior, cars, last stage, oracle).
  assert (workdir / "predictions_seed0.png").stat().st_size > 0
  assert "predictions_seed0.png" in (workdir / "summary.md").read_text()
  stats = seed["attribute_stats"]
  names = set(stats["metasim"])
  assert any(n.endswith("camera[0].fov") for n in names)
  assert any("/car[" in n and n.endswith(".yaw") for n in names)
  for source in ("prior", "metasim", "target"):
    assert all(np.isfinite(v["mean"]) for v in stats[source].values())
