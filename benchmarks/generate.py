r"""Dataset generation: scenes per second of each experiment and format,
and peak memory at 1,000 vs 20,000 scenes (it should not grow with N).

  python -m benchmarks.generate --mnist_run=DIR --aerial_run=DIR
  python -m benchmarks.generate  # trains the smoke configs first

Each (experiment, format, N) runs in its own process, which loads the run,
writes N scenes into a temporary directory (deleted after) and reports the
high-water mark of its resident memory (``ru_maxrss``).  Throughput is
measured after the first shard (compilation excluded); the wall time of
the whole command (imports, loading the run, compiling, writing) is printed
too, and the machine's load average (other jobs share its 2 cores).
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app, flags, logging

_MNIST = flags.DEFINE_string("mnist_run", "", "MNIST run directory "
                             "(default: train mnist.py:rot,smoke).")
_AERIAL = flags.DEFINE_string("aerial_run", "", "Aerial2D run directory "
                              "(default: train aerial.py:smoke).")
_SIZES = flags.DEFINE_list("sizes", ["1000", "20000"], "Numbers of scenes.")
_SHARD = flags.DEFINE_integer("shard_size", 256, "Scenes per shard (the "
                              "default of experiments.generate).")
_CHILD = flags.DEFINE_string("child", "", "Internal: run_dir,format,N.")

CASES = (("mnist", "tfds"), ("aerial", "tfds"), ("aerial", "coco"),
         ("aerial", "kitti"))


def _child(spec: str) -> None:
  """Generates into a temporary directory; prints one JSON line."""
  t0 = time.perf_counter()
  from metasim_jax.export import generate as generate_lib
  from metasim_jax.export import run as run_lib
  run_dir, fmt, n = spec.split(",")
  n = int(n)
  run = run_lib.load(run_dir)
  marks = []
  out = tempfile.mkdtemp(prefix="bench_generate_")
  try:
    t_start = time.perf_counter()
    generate_lib.generate(
        run, os.path.join(out, "data"), num_scenes=n, fmt=fmt, seed=0,
        shard_size=_SHARD.value,
        on_shard=lambda done: marks.append((done, time.perf_counter())))
    t_end = time.perf_counter()
    process_s = t_end - t0
    size = sum(os.path.getsize(os.path.join(d, f))
               for d, _, fs in os.walk(out) for f in fs)
  finally:
    shutil.rmtree(out)
  first, t_first = marks[0]
  rate = ((n - first) / (t_end - t_first) if n > first
          else n / (t_end - t_start))
  print(json.dumps({
      "scenes_per_s": rate, "generate_s": t_end - t_start,
      "process_s": process_s, "bytes": size,
      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                     / 1024}))


def _train(config_arg: str, module: str, workdir: str) -> str:
  t = time.perf_counter()
  subprocess.run([sys.executable, "-m", f"experiments.{module}",
                  f"--config=experiments/configs/{config_arg}",
                  f"--workdir={workdir}"], check=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  print(f"trained {config_arg} into {workdir} in "
        f"{time.perf_counter() - t:.0f} s", flush=True)
  return workdir


def main(argv):
  del argv
  if _CHILD.value:
    logging.set_verbosity(logging.WARNING)
    _child(_CHILD.value)
    return
  tmp = tempfile.mkdtemp(prefix="bench_generate_runs_")
  runs = {"mnist": _MNIST.value or _train("mnist.py:rot,smoke", "mnist",
                                          os.path.join(tmp, "mnist")),
          "aerial": _AERIAL.value or _train("aerial.py:smoke", "aerial",
                                            os.path.join(tmp, "aerial"))}
  print(f"shard size {_SHARD.value}; throughput after the first shard "
        "(compilation excluded); peak RSS of the whole process", flush=True)
  for name, fmt in CASES:
    for n in (int(s) for s in _SIZES.value):
      r = subprocess.run(
          [sys.executable, "-m", "benchmarks.generate",
           f"--child={runs[name]},{fmt},{n}", f"--shard_size={_SHARD.value}"],
          check=True, capture_output=True, text=True)
      m = json.loads(r.stdout.strip().splitlines()[-1])
      print(f"{name:6s} {fmt:5s} N={n:>6,d}: {m['scenes_per_s']:7,.0f} "
            f"scenes/s | generate {m['generate_s']:6.1f} s, whole command "
            f"{m['process_s']:6.1f} s | {m['bytes'] / 2**20:6.1f} MiB "
            f"written | peak RSS {m['peak_rss_mb']:6,.0f} MiB | load "
            f"{os.getloadavg()[0]:.1f}", flush=True)
  shutil.rmtree(tmp)


if __name__ == "__main__":
  app.run(main)
