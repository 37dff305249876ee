"""The attribute report: how far Meta-Sim moved each mean and spread."""

import math

import pytest

from metasim_jax.training import report


def test_moved_fractions_by_hand():
  assert report.moved(0.0, 5.0, 10.0, "continuous") == pytest.approx(0.5)
  assert report.moved(0.0, 10.0, 10.0, "continuous") == pytest.approx(1.0)
  assert report.moved(0.0, -5.0, 10.0, "continuous") == pytest.approx(-0.5)
  # Angles go the short way round: 170 -> -170 is 20 degrees.
  assert report.moved(170.0, 180.0, -170.0, "angle") == pytest.approx(0.5)
  assert math.isnan(report.moved(1.0, 2.0, 1.0, "continuous"))


def test_attribute_table_rows():
  stat = lambda m, s, k="continuous": {"mean": m, "std": s, "kind": k}
  by_class = {
      "prior": {"car.y": stat(-55.0, 20.0), "car.yaw": stat(0.0, 30.0, "angle")},
      "metasim": {"car.y": stat(-65.0, 15.0), "car.yaw": stat(1.0, 4.0, "angle")},
      "target": {"car.y": stat(-75.0, 10.0), "car.yaw": stat(0.2, 4.0, "angle")},
  }
  lines = report.attribute_table(by_class)
  assert lines[0].startswith("| attribute |")
  y = next(l for l in lines if l.startswith("| car.y "))
  assert "-65.00 ± 15.00" in y and "| 50 % | 50 % |" in y
  yaw = next(l for l in lines if l.startswith("| car.yaw "))
  # The prior's yaw mean is within a tenth of the target's std: "-".
  assert yaw.endswith("| - | 100 % |")
  # Nothing to move, but Meta-Sim moved it anyway: "drifted".
  by_class["metasim"]["car.yaw"] = stat(20.0, 4.0, "angle")
  yaw = next(l for l in report.attribute_table(by_class)
             if l.startswith("| car.yaw "))
  assert "| drifted 19.80 |" in yaw


def test_success_covers_means_and_spreads():
  from experiments.configs import mnist as mnist_config
  from metasim_jax.training import evaluation
  config = mnist_config.get_config("rot,smoke")
  seed = lambda mean_err, std_err: {
      "test_accuracy": {"prior": 0.2, "metasim": 0.9, "oracle": 0.95},
      "test_metrics": {s: {"accuracy": 0.9} for s in
                       ("prior", "metasim", "oracle")},
      "attribute_mean_error": {"scene/digit[0].yaw": mean_err},
      "attribute_std_error": {"scene/digit[0].yaw": std_err}}
  out = evaluation.summarise(config, [seed(1.0, 1.0), seed(1.0, 6.0),
                                      seed(6.0, 1.0)], 0.0, "accuracy")
  assert out["summary"]["attributes_within_tolerance_per_seed"] == [
      True, True, False]  # yaw mean within 5 degrees
  assert out["summary"]["spreads_within_tolerance_per_seed"] == [
      True, False, True]  # yaw std within 5 degrees


def test_axis_rows_fold_front_and_back():
  """Every angle also gets an "_axis" row (0 and 180 degrees are one
  line): cars half at 0 and half at 180 degrees are spread all over the
  circle, but lie exactly on one axis."""
  import numpy as np
  attrs = np.zeros((100, 1, 1), np.float32)
  attrs[50:, 0, 0] = 180.0
  attrs[:, 0, 0] += np.linspace(-2.0, 2.0, 100)
  stats = report.class_attribute_stats(
      attrs, np.ones((100, 1), bool), ["car"], ["yaw"], ["angle"],
      [("car[0]", 0, 0)])
  assert stats["car.yaw"]["std"] > 90.0
  assert abs(stats["car.yaw_axis"]["mean"]) < 0.1
  assert stats["car.yaw_axis"]["std"] < 2.0
  # 170 and -170 lie 20 degrees apart on the circle, on axes 10 apart.
  assert report.moved(60.0, 175.0, -175.0, "axial") == pytest.approx(
      1.0 - 10.0 / 55.0)


def test_sampling_noise_is_not_a_difference():
  """A prior and a target that agree in distribution differ in their
  sample means by sampling alone: within SAME_STANDARD_ERRORS standard
  errors the row says "-", not a fraction moved.  (Figures: the road's y
  in results/aerial_relations, the prior and target both centred at 32.)"""
  stat = lambda m, s, n: {"mean": m, "std": s, "kind": "continuous", "n": n}
  by_class = {"prior": {"road.y": stat(31.40, 9.26, 500)},
              "metasim": {"road.y": stat(33.43, 8.21, 500)},
              "target": {"road.y": stat(32.33, 4.11, 500)}}
  row = report.attribute_table(by_class)[2]
  assert row.split("|")[5].strip() == "-"       # the means: noise
  assert row.split("|")[6].strip() == "20 %"    # the spreads: real
  # Far more samples: the same gap is a difference.
  for source in by_class.values():
    source["road.y"]["n"] = 100_000
  row = report.attribute_table(by_class)[2]
  assert row.split("|")[5].strip().endswith("%")
