r"""Prints Table 1 (markdown) from the committed results of the MNIST runs.
Per seed: whether the learned attributes' means and standard deviations
are within the config's tolerances (``success.attribute_tolerance``,
``success.std_tolerance``) of the target's.

  python -m experiments.table1 results/mnist_rot results/mnist_rot_trans

An argument ``DIR1+DIR2`` joins the seeds of several runs of one experiment
(their configs must agree except for ``seeds``), e.g. a 5-seed table from
a run of seeds 0-2 and a run of seeds 3-4.
"""

import json
import sys

import numpy as np

from metasim_jax.training.evaluation import within_tolerance

PAPER = {"mnist_rot": (14.8, 99.5), "mnist_rot_trans": (13.1, 99.3)}


def load(arg: str) -> dict:
  """Results of one run, or the seeds of several runs joined."""
  runs = [json.load(open(f"{d}/results.json")) for d in arg.split("+")]
  first = runs[0]
  strip = lambda c: {k: v for k, v in c.items() if k != "seeds"}
  for d, r in zip(arg.split("+")[1:], runs[1:]):
    if strip(r["config"]) != strip(first["config"]):
      sys.exit(f"error: {d} was run with another config than "
               f"{arg.split('+')[0]}; cannot join their seeds")
  per_seed = sorted((p for r in runs for p in r["per_seed"]),
                    key=lambda p: p["seed"])
  seeds = [p["seed"] for p in per_seed]
  if len(set(seeds)) != len(seeds):
    sys.exit(f"error: seeds {seeds} repeat across {arg}")
  tol = first["summary"]["attribute_tolerance"]
  ok = [within_tolerance(p["attribute_mean_error"], tol) for p in per_seed]
  # Spreads: results made before the standard deviations were reported
  # have no "attribute_std_error" (None: not measured).
  std_tol = first["summary"].get("std_tolerance")
  ok_std = [within_tolerance(p["attribute_std_error"], std_tol)
            if std_tol and "attribute_std_error" in p else None
            for p in per_seed]
  return {"experiment": first["experiment"], "per_seed": per_seed, "ok": ok,
          "ok_std": ok_std}


def _count(flags) -> str:
  """'k/n' of the seeds within tolerance; '-' where none was measured."""
  if any(f is None for f in flags):
    return "-"
  return f"{sum(flags)}/{len(flags)}"


def main(args):
  results = [load(a) for a in args]
  print("| experiment | seeds | prob. grammar | Meta-Sim | oracle | oracle - "
        "Meta-Sim (mean; max over seeds) | means on target | spreads on target "
        "| paper: prob. grammar -> Meta-Sim |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in results:
    acc = {k: 100 * np.asarray([p["test_accuracy"][k] for p in r["per_seed"]])
           for k in ("prior", "metasim", "oracle")}
    fmt = lambda v: f"{v.mean():.1f} ± {v.std():.1f}"
    gap = acc["oracle"] - acc["metasim"]
    paper = PAPER.get(r["experiment"], ("-", "-"))
    print(f"| {r['experiment']} | {len(r['per_seed'])} | {fmt(acc['prior'])} "
          f"| {fmt(acc['metasim'])} | {fmt(acc['oracle'])} | "
          f"{gap.mean():+.1f}; {gap.max():+.1f} | {_count(r['ok'])} | "
          f"{_count(r['ok_std'])} | "
          f"{paper[0]} -> {paper[1]} |")
  print()
  for r in results:
    print(f"{r['experiment']} per seed (test accuracy %, |learned - "
          "target| of the mean; of the std where measured):")
    for p in r["per_seed"]:
      a = p["test_accuracy"]
      err = ", ".join(f"{k.rsplit('.', 1)[-1]} {v:.2f}"
                      for k, v in p["attribute_mean_error"].items())
      std = ", ".join(f"{k.rsplit('.', 1)[-1]} {v:.2f}"
                      for k, v in p.get("attribute_std_error", {}).items())
      std = f"; of the std {std}" if std else ""
      print(f"  seed {p['seed']}: prior {100 * a['prior']:.1f}, Meta-Sim "
            f"{100 * a['metasim']:.1f}, oracle {100 * a['oracle']:.1f}; "
            f"|error| {err}{std}; start {p['selected_start']}; "
            f"{p['seconds']['with_evaluation']:.0f} s")


if __name__ == "__main__":
  main(sys.argv[1:])
