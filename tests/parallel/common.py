"""Running ``worker.py`` in subprocesses and reading what it prints.

Each case runs the worker in fresh processes (the device count is fixed
when JAX starts): the same steps on one device and over a mesh, the
largest difference of parameters and metrics printed as ``RESULT {json}``.
"""

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TOLERANCE = 1e-5


def env(devices: int) -> dict:
  e = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  e["XLA_FLAGS"] = (e.get("XLA_FLAGS", "") + " --xla_force_host_"
                    f"platform_device_count={devices}").strip()
  return e


def result(out: str) -> dict:
  lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
  assert lines, out[-3000:]
  return json.loads(lines[-1][len("RESULT "):])


def check(res: dict):
  assert res
  for mesh, diffs in res.items():
    for what, d in diffs.items():
      assert d <= TOLERANCE, (mesh, what, d)
