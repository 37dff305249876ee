"""The client's worker pool on real servers: two servers share a batch, a
server killed in the middle of a batch costs a retry (the batch completes,
nothing lost, the server is restarted), a dead remote server's share goes
to the others, and refusals are not retried."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests.bridge import scenes
from third_party.renderer_bridge import client as client_lib
from third_party.renderer_bridge.scene import Node


def _batch(n: int):
  """n different scenes: the car steps across the road."""
  return [scenes.road_scene(((-2.0 + 4.0 * k / n, 12.0 + k % 7),))
          for k in range(n)]


@pytest.fixture(scope="module")
def pool():
  c = client_lib.RendererClient.local("moderngl", num_workers=2,
                                      timeout_s=60, chunks_per_worker=8)
  yield c
  c.close()


@pytest.fixture(scope="module")
def reference(pool):
  batch = _batch(96)
  return batch, pool.render(batch, scenes.WIDTH, scenes.HEIGHT)


def test_two_servers_share_a_batch(pool, reference):
  batch, renders = reference
  pool.rendered.clear()
  again = pool.render(batch, scenes.WIDTH, scenes.HEIGHT)
  assert sorted(pool.rendered) == sorted(pool.addresses)
  assert all(v > 0 for v in pool.rendered.values()), pool.rendered
  assert sum(pool.rendered.values()) == len(batch)
  for a, b in zip(renders, again):  # in order, byte-identical
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.instance, b.instance)


def test_worker_killed_mid_batch(pool, reference):
  batch, renders = reference
  victim = pool.servers[0]
  restarts = victim.restarts
  pool.rendered.clear()
  result = {}
  t = threading.Thread(target=lambda: result.setdefault(
      "out", pool.render(batch, scenes.WIDTH, scenes.HEIGHT)))
  t.start()
  deadline = time.monotonic() + 60
  while not pool.rendered[victim.address] and time.monotonic() < deadline:
    time.sleep(0.001)
  os.kill(victim.pid, signal.SIGKILL)  # in the middle of the batch
  t.join(timeout=120)
  assert "out" in result, "the batch did not complete"
  assert victim.restarts == restarts + 1 and victim.alive
  for a, b in zip(renders, result["out"]):  # nothing lost, nothing mixed
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.instance, b.instance)
  # The restarted server serves again.
  pool.rendered.clear()
  pool.render(batch, scenes.WIDTH, scenes.HEIGHT)
  assert pool.rendered[victim.address] > 0


def test_dead_remote_server_share_goes_to_the_others(pool, reference):
  batch, renders = reference
  dead = client_lib.LocalServer("moderngl")
  address = dead.address
  dead.close()  # a server elsewhere that went away: nobody restarts it
  c = client_lib.RendererClient([address, pool.addresses[1]], timeout_s=5,
                                retries=2)
  try:
    out = c.render(batch[:8], scenes.WIDTH, scenes.HEIGHT)
  finally:
    c.close()
  assert c.rendered[address] == 0
  for a, b in zip(renders, out):
    np.testing.assert_array_equal(a.rgb, b.rgb)


def test_refusal_is_not_retried(pool):
  bad = scenes.road_scene(extra=(Node(99, 0, "car/tank"),))
  t = time.monotonic()
  with pytest.raises(client_lib.BridgeError, match="car/tank"):
    pool.render([bad] * 4, scenes.WIDTH, scenes.HEIGHT)
  assert time.monotonic() - t < 10


def test_servers_stop_when_their_process_dies():
  """A crashed training process leaves no server behind."""
  code = ("import os\n"
          "from third_party.renderer_bridge import client\n"
          "print(client.LocalServer('moderngl').pid, flush=True)\n"
          "os._exit(1)\n")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, cwd=client_lib.ROOT, timeout=120)
  pid = int(out.stdout.split()[-1])
  deadline = time.monotonic() + 30
  while time.monotonic() < deadline:
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      return
    time.sleep(0.2)
  os.kill(pid, signal.SIGKILL)
  raise AssertionError(f"server {pid} outlived its parent")
