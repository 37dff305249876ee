"""Client of the renderer bridge: batches of scenes over a pool of servers.

  with RendererClient.local("moderngl", num_workers=2) as client:
    renders = client.render(scenes, width=312, height=96)

``RendererClient(["host1:50051", "host2:50051"])`` uses servers started
elsewhere (``python -m third_party.renderer_bridge.server --host=...`` on
each machine): the documented way to render on more than one machine.

A batch is cut into chunks (several per worker, each within the servers'
limits) that the workers take from one queue, so a fast worker takes more.
A chunk that fails for a transient reason (a worker died, hung or is
unreachable) goes back to the queue and another worker, or the restarted
one, renders it: a crashed worker costs a retry, not the batch.  A request
the server refuses (malformed, too big, wrong version) raises
``BridgeError`` with the server's message at once.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import queue
import subprocess
import sys
import threading
import time
from typing import Sequence

import grpc
import numpy as np
from absl import logging

from third_party.renderer_bridge import renderer_pb2 as pb
from third_party.renderer_bridge import renderer_pb2_grpc as pb_grpc
from third_party.renderer_bridge import scene as scene_lib
from third_party.renderer_bridge import validate
from third_party.renderer_bridge.scene import Scene, SceneRender

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# Refusals: sending the same request again cannot help.
_FINAL = (grpc.StatusCode.INVALID_ARGUMENT,
          grpc.StatusCode.FAILED_PRECONDITION,
          grpc.StatusCode.RESOURCE_EXHAUSTED,
          grpc.StatusCode.UNIMPLEMENTED)
_MESSAGE_BYTES = validate.Limits.max_message_bytes


class BridgeError(RuntimeError):
  """A render request failed for good (refused, or out of retries)."""


class LocalServer:
  """A server process on this machine that the client can restart.

  Attributes:
    address: "127.0.0.1:PORT", fixed for the server's life (a restart binds
      the same port).
  """

  def __init__(self, backend: str = "moderngl", port: int = 0,
               startup_timeout_s: float = 120.0,
               extra_args: Sequence[str] = ()):
    self.backend = backend
    self._port = port
    self._timeout = startup_timeout_s
    self._extra = tuple(extra_args)
    self._proc: subprocess.Popen | None = None
    self.restarts = 0
    self.start()

  @property
  def address(self) -> str:
    return f"127.0.0.1:{self._port}"

  @property
  def pid(self) -> int:
    return self._proc.pid

  @property
  def alive(self) -> bool:
    return self._proc is not None and self._proc.poll() is None

  def exited(self, timeout_s: float) -> bool:
    """Whether the process has exited, waiting up to ``timeout_s`` (a
    killed process can still be dying when its connections drop)."""
    try:
      self._proc.wait(timeout=timeout_s)
      return True
    except subprocess.TimeoutExpired:
      return False

  def start(self) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, env.get("PYTHONPATH")) if p)
    self._proc = subprocess.Popen(
        [sys.executable, "-m", "third_party.renderer_bridge.server",
         f"--backend={self.backend}", f"--port={self._port}",
         "--exit_with_parent", *self._extra], cwd=ROOT, env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(l) for l in self._proc.stdout],
                     daemon=True).start()
    deadline = time.monotonic() + self._timeout
    while True:
      try:
        line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
      except queue.Empty:
        self.close()
        raise BridgeError(f"{self.backend} server did not start within "
                          f"{self._timeout:.0f} s") from None
      if line.startswith("listening on "):
        self._port = int(line.split()[2].rsplit(":", 1)[1])
        return

  def restart(self) -> None:
    self.close()
    self.restarts += 1
    logging.warning("restarting the %s server on %s", self.backend,
                    self.address)
    self.start()

  def close(self) -> None:
    if self._proc is not None and self._proc.poll() is None:
      self._proc.kill()
      self._proc.wait()


class _Worker:
  """One server address, its channel, and the process if it is ours."""

  def __init__(self, target: str | LocalServer):
    self.local = target if isinstance(target, LocalServer) else None
    self.address = target.address if self.local else target
    self.failures = 0  # in a row; a failing server waits longer each time
    self._connect()

  def _connect(self) -> None:
    self.channel = grpc.insecure_channel(
        self.address,
        options=[("grpc.max_receive_message_length", _MESSAGE_BYTES),
                 ("grpc.max_send_message_length", _MESSAGE_BYTES),
                 ("grpc.initial_reconnect_backoff_ms", 100),
                 ("grpc.max_reconnect_backoff_ms", 2000)])
    self.stub = pb_grpc.RendererStub(self.channel)

  def recover(self, code: grpc.StatusCode) -> float:
    """After a transient failure: restarts our own server if it died or
    hung; returns seconds to wait before this worker takes the next chunk
    (doubling with each failure in a row, so that the others take over)."""
    self.failures += 1
    if self.local is not None and (
        code == grpc.StatusCode.DEADLINE_EXCEEDED  # hung: replace it
        or self.local.exited(timeout_s=2.0)):
      self.channel.close()
      self.local.restart()
      self._connect()
      return 0.0
    return min(30.0, 0.25 * 2 ** self.failures)

  def close(self) -> None:
    self.channel.close()
    if self.local is not None:
      self.local.close()


class RendererClient:
  """Renders batches of scenes on servers at ``workers`` (addresses, or
  ``LocalServer``s that it restarts when they die)."""

  def __init__(self, workers: Sequence[str | LocalServer],
               timeout_s: float = 300.0, retries: int = 3,
               chunks_per_worker: int = 2):
    if not workers:
      raise ValueError("RendererClient needs at least one server address")
    self._workers = [_Worker(w) for w in workers]
    self.timeout_s = timeout_s
    self.retries = retries
    self.chunks_per_worker = chunks_per_worker
    self._limits: pb.Limits | None = None
    # Scenes rendered per server address (a pool's balance, for logs/tests).
    self.rendered: collections.Counter = collections.Counter()

  @classmethod
  def local(cls, backend: str = "moderngl", num_workers: int = 1,
            **kwargs) -> "RendererClient":
    """Starts ``num_workers`` servers of ``backend`` on loopback."""
    servers = []
    try:
      for _ in range(num_workers):
        servers.append(LocalServer(backend))
    except Exception:
      for s in servers:
        s.close()
      raise
    return cls(servers, **kwargs)

  @property
  def addresses(self) -> list[str]:
    return [w.address for w in self._workers]

  @property
  def servers(self) -> list[LocalServer]:
    return [w.local for w in self._workers if w.local is not None]

  def info(self) -> pb.InfoReply:
    """Name, catalogue and limits of the first server that answers."""
    errors = []
    for w in self._workers:
      try:
        return w.stub.Info(
            pb.InfoRequest(protocol_version=scene_lib.PROTOCOL_VERSION),
            timeout=min(self.timeout_s, 30.0))
      except grpc.RpcError as e:
        errors.append(f"{w.address}: {e.code().name} {e.details()}")
    raise BridgeError("no renderer server answered: " + "; ".join(errors))

  def _chunk_size(self, n: int, width: int, height: int,
                  image_only: bool) -> int:
    if self._limits is None:
      self._limits = self.info().limits
    per_scene = validate.reply_bytes(width, height, 1, image_only) + 4096
    most = min(self._limits.max_scenes,
               max(1, (self._limits.max_message_bytes // 2) // per_scene))
    want = math.ceil(n / (len(self._workers) * self.chunks_per_worker))
    return max(1, min(most, want))

  def render(self, scenes: Sequence[Scene], width: int, height: int,
             image_only: bool = False) -> list[SceneRender]:
    """Renders ``scenes`` (in order) on the pool; raises ``BridgeError``."""
    n = len(scenes)
    if n == 0:
      return []
    size = self._chunk_size(n, width, height, image_only)
    protos = [scene_lib.scene_to_proto(s) for s in scenes]
    out: list[SceneRender | None] = [None] * n
    jobs = []
    for start in range(0, n, size):
      request = pb.RenderRequest(
          protocol_version=scene_lib.PROTOCOL_VERSION, width=width,
          height=height, scenes=protos[start:start + size],
          image_only=image_only)

      def store(reply, start=start, count=len(request.scenes)):
        if len(reply.renders) != count:
          raise BridgeError(f"a server returned {len(reply.renders)} "
                            f"renders for {count} scenes")
        out[start:start + count] = [
            scene_lib.render_from_proto(r, width, height)
            for r in reply.renders]
        return count

      jobs.append((request, store))
    self._run(jobs)
    return out

  def render_variants(self, scenes: Sequence[Scene],
                      variants: Sequence[scene_lib.Variant], width: int,
                      height: int) -> tuple[list[np.ndarray],
                                            list[scene_lib.Crop]]:
    """Images of ``scenes`` and, for each of ``variants`` (in order), the
    crop where it can differ from its scene's image (finite differences:
    the server draws only there).  Returns (rgb [H, W, 3] per scene,
    Crop per variant)."""
    by_scene: dict[int, list[int]] = {}
    for k, v in enumerate(variants):
      by_scene.setdefault(v.scene, []).append(k)
    # Chunks of whole scenes with their variants, about equal in size.
    n = len(scenes) + len(variants)
    size = self._chunk_size(n, width, height, True)
    groups, current, count = [], [], 0
    for i in range(len(scenes)):
      cost = 1 + len(by_scene.get(i, ()))
      if current and count + cost > size:
        groups.append(current)
        current, count = [], 0
      current.append(i)
      count += cost
    if current:
      groups.append(current)
    images: list = [None] * len(scenes)
    crops: list = [None] * len(variants)
    jobs = []
    for group in groups:
      local = {i: j for j, i in enumerate(group)}
      index = [k for i in group for k in by_scene.get(i, ())]
      request = pb.RenderRequest(
          protocol_version=scene_lib.PROTOCOL_VERSION, width=width,
          height=height, image_only=True,
          scenes=[scene_lib.scene_to_proto(scenes[i]) for i in group],
          variants=[scene_lib.variant_to_proto(dataclasses.replace(
              variants[k], scene=local[variants[k].scene])) for k in index])

      def store(reply, group=group, index=index):
        if (len(reply.renders), len(reply.variants)) != (len(group),
                                                         len(index)):
          raise BridgeError("a server's reply does not match its request")
        for i, r in zip(group, reply.renders):
          images[i] = scene_lib.render_from_proto(r, width, height).rgb
        for k, c in zip(index, reply.variants):
          crops[k] = scene_lib.crop_from_proto(c)
        return len(group) + len(index)

      jobs.append((request, store))
    self._run(jobs)
    return images, crops

  def _run(self, jobs: list) -> None:
    """Sends every ``(request, store)`` job to some worker; ``store(reply)``
    keeps the results and returns the number of renders."""
    if not jobs:
      return
    pending: queue.Queue = queue.Queue()
    for job in jobs:
      pending.put((job, 0))
    left = [len(jobs)]
    failure: list[BaseException] = []
    done = threading.Event()
    lock = threading.Lock()

    def serve(worker: _Worker) -> None:
      while not done.is_set():
        try:
          (request, store), tries = pending.get(timeout=0.05)
        except queue.Empty:
          continue
        try:
          reply = worker.stub.Render(request, timeout=self.timeout_s)
          count = store(reply)
        except grpc.RpcError as e:
          code = e.code()
          if code in _FINAL or tries >= self.retries:
            failure.append(BridgeError(
                f"{worker.address}: {code.name}: {e.details()}"
                + (f" (after {tries} retries)" if tries else "")))
            done.set()
            return
          logging.warning("%s: %s (%s); retrying a chunk of %d scenes",
                          worker.address, code.name, e.details(),
                          len(request.scenes) + len(request.variants))
          pending.put(((request, store), tries + 1))
          try:
            done.wait(worker.recover(code))
          except BridgeError as restart_failed:
            logging.error("%s: %s", worker.address, restart_failed)
            return  # this worker is gone; the others take its chunks
          continue
        except BaseException as e:  # a decoding error: a bug, not transient
          failure.append(e)
          done.set()
          return
        worker.failures = 0
        with lock:
          self.rendered[worker.address] += count
          left[0] -= 1
          if left[0] == 0:
            done.set()

    threads = [threading.Thread(target=serve, args=(w,), daemon=True)
               for w in self._workers]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    if failure:
      raise failure[0]
    if left[0]:
      raise BridgeError(f"every worker failed; {left[0]} of {len(jobs)} "
                        "chunks were not rendered")

  def close(self) -> None:
    for w in self._workers:
      w.close()

  def __enter__(self) -> "RendererClient":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
