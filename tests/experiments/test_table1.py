"""Table 1's per-seed tolerance counts: means and spreads, joined runs."""

import json

import pytest

from experiments import table1

TOL = {"yaw": 5.0, "x": 1.0}


def _write(path, seeds, mean_err, std_err=None, config=None):
  per_seed = []
  for s in seeds:
    p = {"seed": s, "attribute_mean_error": mean_err,
         "test_accuracy": {"prior": 0.1, "metasim": 0.9, "oracle": 0.95},
         "selected_start": 0, "seconds": {"with_evaluation": 1.0}}
    if std_err is not None:
      p["attribute_std_error"] = std_err
    per_seed.append(p)
  summary = {"attribute_tolerance": TOL}
  if std_err is not None:
    summary["std_tolerance"] = TOL
  path.mkdir()
  (path / "results.json").write_text(json.dumps({
      "experiment": "mnist_rot", "summary": summary, "per_seed": per_seed,
      "config": {"seeds": list(seeds), **(config or {})}}))
  return str(path)


def test_means_and_spreads_counted_per_seed(tmp_path, capsys):
  a = _write(tmp_path / "a", (0, 1), {"d.yaw": 2.0, "d.x": 0.5},
             {"d.yaw": 6.0, "d.x": 0.1})  # spread of yaw out of tolerance
  b = _write(tmp_path / "b", (2,), {"d.yaw": 7.0, "d.x": 0.5},
             {"d.yaw": 1.0, "d.x": 0.1})  # mean of yaw out of tolerance
  r = table1.load(f"{a}+{b}")
  assert r["ok"] == [True, True, False]
  assert r["ok_std"] == [False, False, True]
  table1.main([f"{a}+{b}"])
  row = capsys.readouterr().out.splitlines()[2]
  assert "| 2/3 | 1/3 |" in row


def test_results_without_spreads_show_a_dash(tmp_path):
  r = table1.load(_write(tmp_path / "old", (0,), {"d.yaw": 1.0}))
  assert r["ok_std"] == [None]
  assert table1._count(r["ok_std"]) == "-"


def test_runs_with_other_configs_are_not_joined(tmp_path):
  a = _write(tmp_path / "a", (0,), {"d.yaw": 1.0}, config={"lr": 1})
  b = _write(tmp_path / "b", (1,), {"d.yaw": 1.0}, config={"lr": 2})
  with pytest.raises(SystemExit, match="another config"):
    table1.load(f"{a}+{b}")
