"""MMD steps per second split over 1, 2 and 4 devices (data parallelism).

  python -m benchmarks.scaling                   # forced CPU host devices
  python -m benchmarks.scaling --devices=1       # one child: this process

Each device count runs in a child process with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (the device count is
fixed when JAX starts); the MMD step (MNIST 64x64 rotated + moved, finite
differences, 4 starts, batch 64) is split over an N-device data mesh.
Forced CPU devices share the machine's cores: on a 2-core machine this
measures the overhead of the split, not a speed-up.  On an accelerator
host the same script splits over the real devices (``--real``).
"""

import dataclasses
import os
import subprocess
import sys

from absl import app, flags

_DEVICES = flags.DEFINE_integer("devices", 0, "Run one count here (child).")
_REAL = flags.DEFINE_bool("real", False, "Use the real devices (no forcing); "
                          "counts up to jax.device_count().")


def child(n: int):
  import jax
  from benchmarks.common import mmd_target, problem, timeit
  from metasim_jax import parallel
  from metasim_jax.training import steps as pl
  config, pipe, feat_params, pools, params, real, _ = problem(
      "rot_trans", **{"mmd.batch_size": 64})
  pipe = dataclasses.replace(
      pipe, mesh=parallel.make_mesh(n) if n > 1 else None)
  target = mmd_target(pipe, feat_params, real, 200,
                      config.mmd.median_multiples)
  tx = pl.adam(config.mmd.lr)
  step = pl.make_mmd_step(pipe, tx)
  k = 4
  holder = [pl.init_state(jax.random.key(0), jax.tree.map(
      lambda x: jax.numpy.stack([x] * k), params), tx)]

  def run():
    holder[0], m = step(holder[0], pools, feat_params, target)
    return m["mmd2"]

  t = timeit(run, repeats=30)
  print(f"{n} device(s) [{jax.devices()[0].platform}]: {1 / t:.1f} MMD "
        f"steps/s ({t * 1e3:.1f} ms; 64x64, finite differences, {k} starts "
        f"x batch 64)", flush=True)


def main(argv):
  del argv
  if _DEVICES.value:
    child(_DEVICES.value)
    return
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  counts = (1, 2, 4)
  if _REAL.value:
    import jax
    counts = tuple(c for c in counts if c <= jax.device_count())
  for n in counts:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p))
    if not _REAL.value:
      env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_"
                          f"platform_device_count={n}").strip()
    subprocess.run([sys.executable, "-m", "benchmarks.scaling",
                    f"--devices={n}"], cwd=root, env=env, check=True)


if __name__ == "__main__":
  app.run(main)
