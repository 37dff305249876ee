r"""Prints Table 1 (markdown) from the committed results of the MNIST runs.

  python -m experiments.table1 results/mnist_rot results/mnist_rot_trans
"""

import json
import sys

import numpy as np

PAPER = {"mnist_rot": (14.8, 99.5), "mnist_rot_trans": (13.1, 99.3)}


def main(dirs):
  print("| experiment | seeds | prob. grammar | Meta-Sim | oracle | oracle - "
        "Meta-Sim (max over seeds) | attributes on target | paper: prob. "
        "grammar -> Meta-Sim |")
  print("|---|---|---|---|---|---|---|---|")
  for d in dirs:
    r = json.load(open(f"{d}/results.json"))
    s = r["summary"]
    acc = {k: 100 * np.asarray(v) for k, v in
           s["test_accuracy_per_seed"].items()}
    fmt = lambda v: f"{v.mean():.1f} ± {v.std():.1f}"
    gap = 100 * np.asarray(s["oracle_minus_metasim_per_seed"])
    ok = s["attributes_within_tolerance_per_seed"]
    paper = PAPER.get(r["experiment"], ("-", "-"))
    print(f"| {r['experiment']} | {len(r['per_seed'])} | {fmt(acc['prior'])} | "
          f"{fmt(acc['metasim'])} | {fmt(acc['oracle'])} | "
          f"{gap.max():+.1f} | {sum(ok)}/{len(ok)} | "
          f"{paper[0]} -> {paper[1]} |")
  print()
  for d in dirs:
    r = json.load(open(f"{d}/results.json"))
    print(f"{r['experiment']} per seed (test accuracy %, learned mean - "
          "target mean):")
    for p in r["per_seed"]:
      a = p["test_accuracy"]
      err = ", ".join(f"{k.rsplit('.', 1)[-1]} {v:.2f}"
                      for k, v in p["attribute_mean_error"].items())
      print(f"  seed {p['seed']}: prior {100 * a['prior']:.1f}, Meta-Sim "
            f"{100 * a['metasim']:.1f}, oracle {100 * a['oracle']:.1f}; "
            f"|error| {err}; start {p['selected_start']}; "
            f"{p['seconds']['with_evaluation']:.0f} s")


if __name__ == "__main__":
  main(sys.argv[1:])
