"""Steps per second of the MMD stage of the training loop (the host loop
around the jitted ``mmd_step``: metrics, TensorBoard, NaN checks, curves;
``training/stages.py:match``, before it ``trainer._match``), through
``trainer.run`` with the shipped mnist rot config (batch 50, 4 starts,
finite differences).  The same script measured the code before and after
the metrics stopped being read to the host after every step
(``results/bench_mmd_stage_{before,after}.txt``).

The stage's time (``results.json``: per_seed[0].seconds.mmd_stage) includes
the first step's compilation, the start checkpoint and the final start
selection; two step counts cancel those: steps/s = (N2 - N1) / (t(N2) -
t(N1)).  Tiny pre-training and evaluation, no probes, no periodic
checkpoint inside the stage; the runs alternate N1, N2, N1, N2, after one
unreported warm-up run.  A persistent compilation cache (a fresh temporary
folder, filled by the warm-up run) keeps each run's compilations (about
130 s of evaluation, pictures and reports, outside the MMD stage) out of
the later runs; it changes only the constant part of the stage time.

  python -m benchmarks.mmd_stage
"""

import json
import os
import shutil
import sys
import tempfile
import time

import jax
import numpy as np

import metasim_jax
from experiments.configs import mnist as mnist_config
from metasim_jax.training import trainer

STEPS = (20, 220)  # MMD steps of the short and the long run
REPEATS = 2        # of each, alternating
OVERRIDES = {
    "pretrain.steps": 2,
    "mmd.num_starts": 4,
    "eval.train_steps": 2,
    "eval.probe_every": 0,  # no probes
    "eval.num_scenes": 16,
    "eval.repeats": 1,
    "checkpoint_every": 10_000,  # > steps: only the stage-start checkpoint
    "log_every": 50,
    "curve_every": 10,
    "seeds": (0,),
}


def config_for(mmd_steps: int):
  config = mnist_config.get_config("rot")
  for k, v in {**OVERRIDES, "mmd.steps": mmd_steps}.items():
    node = config
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return config


def stage_seconds(mmd_steps: int) -> tuple[float, float]:
  """(MMD stage seconds from results.json, whole run's wall seconds)."""
  workdir = tempfile.mkdtemp(prefix="bench_mmd_stage_", dir="/tmp")
  try:
    t = time.perf_counter()
    trainer.run(config_for(mmd_steps), workdir)
    wall = time.perf_counter() - t
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
    return float(results["per_seed"][0]["seconds"]["mmd_stage"]), wall
  finally:
    shutil.rmtree(workdir, ignore_errors=True)


def loadavg() -> str:
  return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main():
  t0 = time.perf_counter()
  cache = tempfile.mkdtemp(prefix="bench_mmd_stage_jaxcache_", dir="/tmp")
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  try:
    measure(t0)
  finally:
    shutil.rmtree(cache, ignore_errors=True)


def measure(t0: float):
  c = config_for(STEPS[0])
  print(f"metasim_jax: {metasim_jax.__file__}")
  print(f"jax {jax.__version__} ({jax.default_backend()}, "
        f"{jax.device_count()} device(s)); python {sys.version.split()[0]}; "
        f"CPUs: {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}); "
        f"load average at start: {loadavg()}")
  print(f"config: mnist rot, mmd batch {c.mmd.batch_size}, "
        f"{c.mmd.num_starts} starts, grad {c.mmd.grad}, lr_decay "
        f"{c.mmd.lr_decay}; overrides "
        + ", ".join(f"{k}={v}" for k, v in OVERRIDES.items()))
  t, wall = stage_seconds(2)  # warm-up: compilations, one-off costs
  print(f"warm-up run (mmd.steps=2, fills the compilation cache; not "
        f"used): mmd_stage {t:.2f} s, run wall {wall:.1f} s")
  times = {n: [] for n in STEPS}
  for r in range(REPEATS):
    for n in STEPS:
      t, wall = stage_seconds(n)
      times[n].append(t)
      print(f"  repeat {r + 1}, mmd.steps={n}: mmd_stage {t:.2f} s "
            f"(run wall {wall:.1f} s, load {loadavg()})")
  n1, n2 = STEPS
  pairs = [(n2 - n1) / (b - a) for a, b in zip(times[n1], times[n2])]
  t1, t2 = float(np.median(times[n1])), float(np.median(times[n2]))
  rate = (n2 - n1) / (t2 - t1)
  print(f"mmd_stage seconds: {n1} steps {', '.join(f'{t:.2f}' for t in times[n1])}"
        f" (median {t1:.2f}); {n2} steps "
        f"{', '.join(f'{t:.2f}' for t in times[n2])} (median {t2:.2f})")
  print(f"MMD stage: {rate:.2f} steps/s ({1e3 / rate:.1f} ms/step) = "
        f"({n2}-{n1}) / ({t2:.2f}-{t1:.2f}) from the medians; per repeat "
        + ", ".join(f"{p:.2f}" for p in pairs) + " steps/s")
  print(f"load average at end: {loadavg()}; benchmark wall "
        f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
  main()
