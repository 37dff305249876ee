"""Split over devices and hosts = one device, up to float reduction order.

Each case runs ``worker.py`` in fresh processes (the device count is fixed
when JAX starts): an MMD step (2 starts), a task step (Algorithm 1 with
its MMD term) and a short task-net training, on one device and over a
mesh.  The hosts case joins two processes with ``jax.distributed`` on
loopback (CPU collectives over gloo).
"""

import json
import os
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TOLERANCE = 1e-5


def _env(devices: int) -> dict:
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_"
                      f"platform_device_count={devices}").strip()
  return env


def _result(out: str) -> dict:
  lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
  assert lines, out[-3000:]
  return json.loads(lines[-1][len("RESULT "):])


def _check(result: dict):
  assert result
  for mesh, diffs in result.items():
    for what, d in diffs.items():
      assert d <= TOLERANCE, (mesh, what, d)


def test_four_devices_equal_one():
  proc = subprocess.run(
      [sys.executable, "-m", "tests.parallel.worker", "devices"], cwd=ROOT,
      env=_env(4), capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  _check(_result(proc.stdout))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_equal_one():
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, "-m", "tests.parallel.worker", "hosts", str(i),
       str(port)], cwd=ROOT, env=_env(1), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=900)
      assert p.returncode == 0, err[-3000:]
      outs.append(out)
  finally:
    for p in procs:
      p.kill()
  results = [_result(o) for o in outs]
  assert results[0].keys() == results[1].keys()
  for r in results:  # each process compared the mesh with its own device
    _check(r)
