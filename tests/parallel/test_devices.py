"""4 forced CPU devices (2 starts x 2 data) = one device, up to float
reduction order: an MMD step (2 starts), a task step (Algorithm 1 without its
MMD term) and a short task-net training."""

import subprocess
import sys

import pytest

from tests.parallel.common import ROOT, check, env, result


@pytest.mark.slow
def test_four_devices_equal_one():
  proc = subprocess.run(
      [sys.executable, "-m", "tests.parallel.worker", "devices"], cwd=ROOT,
      env=env(4), capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  check(result(proc.stdout))
