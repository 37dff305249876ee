"""A renderer server: the bridge protocol over one rendering backend.

  python -m third_party.renderer_bridge.server --backend=moderngl --port=0

Prints ``listening on HOST:PORT`` once it serves (port 0 picks a free
one).  It binds the loopback interface unless ``--host`` says otherwise:
the protocol has no authentication, so expose it only on a network you
trust.  Every request is checked (``validate.py``) before the backend sees
it; a malformed, oversized or wrong-version request gets a gRPC error
naming the field, and the server keeps serving.  Requests are rendered one
at a time (a backend holds one GL context or one Blender scene).
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
import time

import grpc
import numpy as np
from absl import app, flags, logging

from third_party.renderer_bridge import assets as assets_lib
from third_party.renderer_bridge import backend as backend_lib
from third_party.renderer_bridge import measure
from third_party.renderer_bridge import renderer_pb2 as pb
from third_party.renderer_bridge import renderer_pb2_grpc as pb_grpc
from third_party.renderer_bridge import scene as scene_lib
from third_party.renderer_bridge import validate

FLAGS = flags.FLAGS
flags.DEFINE_enum("backend", "moderngl", sorted(backend_lib.BACKENDS),
                  "Rendering backend.")
flags.DEFINE_string("host", "127.0.0.1",
                    "Interface to bind; 0.0.0.0 exposes the server to the "
                    "network (no authentication: trusted networks only).")
flags.DEFINE_integer("port", 0, "Port; 0 picks a free one.")
flags.DEFINE_bool("exit_with_parent", False,
                  "Exit when the process that started this one ends (set by "
                  "the client for the servers it starts, so that a crashed "
                  "training run leaves none behind).")
flags.DEFINE_integer("max_scenes", validate.Limits.max_scenes,
                     "Most scenes per request.")
flags.DEFINE_integer("max_message_mb", validate.Limits.max_message_bytes >> 20,
                     "Largest request or reply, MiB.")


class Servicer(pb_grpc.RendererServicer):
  """The protocol's service over ``backend`` (one request at a time)."""

  def __init__(self, backend, limits: validate.Limits):
    self._backend = backend
    self._limits = limits
    self._assets = frozenset(assets_lib.catalogue())
    self._lock = threading.Lock()

  def Info(self, request: pb.InfoRequest, context) -> pb.InfoReply:
    try:
      validate.check_version(request.protocol_version)
    except validate.ProtocolError as e:
      context.abort(e.code, str(e))
    return pb.InfoReply(protocol_version=scene_lib.PROTOCOL_VERSION,
                        renderer=self._backend.name,
                        assets=sorted(self._assets),
                        limits=self._limits.to_proto())

  def Render(self, request: pb.RenderRequest, context) -> pb.RenderReply:
    try:
      validate.check_request(request, self._limits, self._assets)
    except validate.ProtocolError as e:
      logging.warning("rejected request: %s", e)
      context.abort(e.code, str(e))
    w, h = request.width, request.height
    scenes = [scene_lib.scene_from_proto(s) for s in request.scenes]
    variants = [scene_lib.variant_from_proto(v) for v in request.variants]
    with self._lock:
      renders = [self._backend.render(s, w, h, request.image_only)
                 for s in scenes]
      crops = [self._crop(scenes[v.scene], v, w, h) for v in variants]
    return pb.RenderReply(
        protocol_version=scene_lib.PROTOCOL_VERSION, width=w, height=h,
        renderer=self._backend.name,
        renders=[scene_lib.render_to_proto(r) for r in renders],
        variants=[scene_lib.crop_to_proto(c) for c in crops])

  def _crop(self, base, variant, width: int, height: int):
    """The variant's pixels where they can differ from ``base``'s."""
    region = measure.changed_region(base, variant, width, height)
    x0, y0, x1, y1 = region
    if x0 >= x1:
      return scene_lib.Crop(region, np.zeros((0, 0, 3), np.uint8))
    scene = scene_lib.apply_variant(base, variant)
    if hasattr(self._backend, "render_region"):  # draws only the region
      return scene_lib.Crop(region, self._backend.render_region(
          scene, width, height, region))
    rgb = self._backend.render(scene, width, height, True).rgb
    return scene_lib.Crop(region, rgb[y0:y1, x0:x1])


def serve(backend, host: str = "127.0.0.1", port: int = 0,
          limits: validate.Limits = validate.Limits()) -> tuple[grpc.Server,
                                                                int]:
  """Starts a gRPC server for ``backend``; returns (server, bound port)."""
  size = limits.max_message_bytes
  server = grpc.server(
      concurrent.futures.ThreadPoolExecutor(max_workers=4),
      options=[("grpc.max_receive_message_length", size),
               ("grpc.max_send_message_length", size),
               ("grpc.so_reuseport", 0)])
  pb_grpc.add_RendererServicer_to_server(Servicer(backend, limits), server)
  bound = server.add_insecure_port(f"{host}:{port}")
  if not bound:
    raise OSError(f"cannot bind {host}:{port}")
  server.start()
  return server, bound


def _watch_parent(parent: int, server: grpc.Server) -> None:
  while os.getppid() == parent:  # re-parented once the parent has died
    time.sleep(0.5)
  logging.warning("parent process %d ended; stopping", parent)
  server.stop(grace=None)


def main(argv):
  del argv
  backend = backend_lib.create(FLAGS.backend)
  limits = validate.Limits(max_scenes=FLAGS.max_scenes,
                           max_message_bytes=FLAGS.max_message_mb << 20)
  if FLAGS.host not in ("127.0.0.1", "localhost", "::1"):
    logging.warning("serving on %s: anyone who can reach it can render "
                    "(no authentication)", FLAGS.host)
  server, port = serve(backend, FLAGS.host, FLAGS.port, limits)
  if FLAGS.exit_with_parent:
    threading.Thread(target=_watch_parent, args=(os.getppid(), server),
                     daemon=True).start()
  print(f"listening on {FLAGS.host}:{port} ({backend.name})", flush=True)
  sys.stdout.flush()
  server.wait_for_termination()


if __name__ == "__main__":
  app.run(main)
