"""Two processes joined by ``jax.distributed`` on loopback (CPU
collectives over gloo) = one process: MMD steps over a mesh of both."""

import socket
import subprocess
import sys

import pytest

from tests.parallel.common import ROOT, check, env, result


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one():
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, "-m", "tests.parallel.worker", "hosts", str(i),
       str(port)], cwd=ROOT, env=env(1), stdout=subprocess.PIPE,
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
  results = [result(o) for o in outs]
  assert results[0].keys() == results[1].keys()
  for r in results:  # each process compared the mesh with its own device
    check(r)
