"""Checks a RenderRequest against the protocol and the server's limits.

Every problem is reported as a ``ProtocolError`` carrying the gRPC status
code to answer with and a message naming the field, e.g.
``scenes[3].nodes[0].asset_id: 'car/tank' is not in the catalogue``.
"""

from __future__ import annotations

import dataclasses
import math

import grpc

from third_party.renderer_bridge import renderer_pb2 as pb
from third_party.renderer_bridge.scene import PROTOCOL_VERSION

MAX_ID = 65535


@dataclasses.dataclass(frozen=True)
class Limits:
  max_scenes: int = 512
  max_nodes: int = 512
  max_width: int = 2048
  max_height: int = 2048
  max_message_bytes: int = 64 << 20

  def to_proto(self) -> pb.Limits:
    return pb.Limits(**dataclasses.asdict(self))


class ProtocolError(Exception):
  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code


def _need(cond: bool, where: str, msg: str,
          code=grpc.StatusCode.INVALID_ARGUMENT):
  if not cond:
    raise ProtocolError(code, f"{where}: {msg}")


def check_version(version: int) -> None:
  _need(version == PROTOCOL_VERSION, "protocol_version",
        f"this server speaks version {PROTOCOL_VERSION}, the request "
        f"version {version}" + (" (unset)" if version == 0 else ""),
        grpc.StatusCode.FAILED_PRECONDITION)


def reply_bytes(width: int, height: int, scenes: int,
                image_only: bool) -> int:
  """Upper bound of a reply's layer bytes (rgb 3, instance 2, semantic 1)."""
  return width * height * scenes * (3 if image_only else 6)


def _finite(where: str, *values: float):
  _need(all(math.isfinite(v) for v in values), where,
        f"expected finite numbers, got {values}")


def _vec(where: str, v: pb.Vec3):
  _finite(where, v.x, v.y, v.z)


def check_request(req: pb.RenderRequest, limits: Limits,
                  assets: frozenset[str]) -> None:
  """Raises ProtocolError for the first problem found."""
  check_version(req.protocol_version)
  too_big = grpc.StatusCode.RESOURCE_EXHAUSTED
  _need(0 < req.width <= limits.max_width, "width",
        f"must be in 1..{limits.max_width}, got {req.width}",
        too_big if req.width else grpc.StatusCode.INVALID_ARGUMENT)
  _need(0 < req.height <= limits.max_height, "height",
        f"must be in 1..{limits.max_height}, got {req.height}",
        too_big if req.height else grpc.StatusCode.INVALID_ARGUMENT)
  n = len(req.scenes) + len(req.variants)
  _need(len(req.scenes) > 0, "scenes", "the request has no scene")
  _need(n <= limits.max_scenes, "scenes",
        f"{n} scenes and variants; this server takes at most "
        f"{limits.max_scenes} per request", too_big)
  size = reply_bytes(req.width, req.height, n, req.image_only)
  _need(size <= limits.max_message_bytes, "scenes",
        f"the reply could hold {size} bytes of layers, over the limit "
        f"{limits.max_message_bytes}; send fewer scenes per request",
        too_big)
  ids = []
  for i, s in enumerate(req.scenes):
    w = f"scenes[{i}]"
    _check_camera(f"{w}.camera", s.camera)
    _need(len(s.nodes) <= limits.max_nodes, f"{w}.nodes",
          f"{len(s.nodes)} nodes; at most {limits.max_nodes} per scene",
          too_big)
    seen = set()
    for j, node in enumerate(s.nodes):
      wn = f"{w}.nodes[{j}]"
      _check_node(wn, node, assets)
      _need(node.instance_id not in seen, f"{wn}.instance_id",
            f"{node.instance_id} is used twice in the scene")
      seen.add(node.instance_id)
    ids.append(seen)
  _need(req.image_only or not req.variants, "variants",
        "variants are rendered as images only: set image_only")
  for i, v in enumerate(req.variants):
    w = f"variants[{i}]"
    _need(v.scene < len(req.scenes), f"{w}.scene",
          f"{v.scene} is not a scene index (the request has "
          f"{len(req.scenes)})")
    if v.HasField("camera"):
      _check_camera(f"{w}.camera", v.camera)
    for j, node in enumerate(v.nodes):
      wn = f"{w}.nodes[{j}]"
      _check_node(wn, node, assets)
      _need(node.instance_id in ids[v.scene], f"{wn}.instance_id",
            f"scene {v.scene} has no node {node.instance_id} to replace")


def _check_camera(w: str, c: pb.Camera) -> None:
  _vec(f"{w}.position", c.position)
  _finite(w, c.yaw_deg, c.pitch_deg, c.roll_deg, c.vfov_deg, c.near, c.far)
  _need(0 < c.vfov_deg < 180, f"{w}.vfov_deg",
        f"must be in (0, 180), got {c.vfov_deg}")
  _need(c.near >= 0 and c.far >= 0, f"{w}.near",
        "clip distances must be >= 0")
  if c.near or c.far:
    _need(0 < c.near < c.far, f"{w}.near",
          f"need 0 < near < far, got {c.near}, {c.far}")


def _check_node(wn: str, node: pb.Node, assets: frozenset[str]) -> None:
  _need(1 <= node.instance_id <= MAX_ID, f"{wn}.instance_id",
        f"must be in 1..{MAX_ID}, got {node.instance_id}")
  _need(node.semantic_id <= 255, f"{wn}.semantic_id",
        f"must be in 0..255, got {node.semantic_id}")
  _need(node.asset_id in assets, f"{wn}.asset_id",
        f"{node.asset_id!r} is not in the catalogue "
        f"(Info lists {len(assets)} assets)")
  _vec(f"{wn}.position", node.position)
  _vec(f"{wn}.scale", node.scale)
  _need(min(node.scale.x, node.scale.y, node.scale.z) >= 0,
        f"{wn}.scale", "must be >= 0 (0 means 1)")
  _finite(f"{wn}.yaw_deg", node.yaw_deg)
  col = (node.color.r, node.color.g, node.color.b)
  _finite(f"{wn}.color", *col)
  _need(all(0 <= v <= 1 for v in col), f"{wn}.color",
        f"channels must be in [0, 1], got {col}")
