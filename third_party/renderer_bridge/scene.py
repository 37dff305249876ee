"""Scenes and renders as plain Python/NumPy, and their protobuf forms.

The servers' backends and the client work on these types; ``to_proto`` /
``from_proto`` are the only places that know the wire format
(``renderer.proto``, whose comments define every unit and convention).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from third_party.renderer_bridge import renderer_pb2 as pb

PROTOCOL_VERSION = 1
DEFAULT_NEAR, DEFAULT_FAR = 0.1, 500.0


@dataclasses.dataclass(frozen=True)
class Camera:
  position: tuple[float, float, float] = (0.0, 0.0, 1.6)
  yaw_deg: float = 0.0
  pitch_deg: float = 0.0
  roll_deg: float = 0.0
  vfov_deg: float = 40.0
  near: float = DEFAULT_NEAR
  far: float = DEFAULT_FAR


@dataclasses.dataclass(frozen=True)
class Node:
  instance_id: int
  semantic_id: int
  asset_id: str
  position: tuple[float, float, float] = (0.0, 0.0, 0.0)
  yaw_deg: float = 0.0
  scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
  color: tuple[float, float, float] = (0.5, 0.5, 0.5)
  is_object: bool = False
  class_name: str = ""


@dataclasses.dataclass(frozen=True)
class Scene:
  camera: Camera
  nodes: tuple[Node, ...]
  sky: tuple[float, float, float] = (0.55, 0.7, 0.9)


@dataclasses.dataclass(frozen=True)
class Variant:
  """A scene with some nodes (matched by instance id) or the camera
  replaced: one finite-difference perturbation."""
  scene: int
  nodes: tuple[Node, ...] = ()
  camera: Camera | None = None


def apply_variant(base: Scene, variant: Variant) -> Scene:
  """The scene ``variant`` describes, given its base scene."""
  new = {n.instance_id: n for n in variant.nodes}
  return dataclasses.replace(
      base, nodes=tuple(new.get(n.instance_id, n) for n in base.nodes),
      camera=variant.camera or base.camera)


@dataclasses.dataclass(frozen=True)
class Crop:
  """The pixels of a variant's image that can differ from its scene's:
  rgb [y1 - y0, x1 - x0, 3] uint8 at ``region`` (x0, y0, x1, y1)."""
  region: tuple[int, int, int, int]
  rgb: np.ndarray


@dataclasses.dataclass(frozen=True)
class Intrinsics:
  fx: float
  fy: float
  cx: float
  cy: float

  @property
  def matrix(self) -> np.ndarray:
    return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]])


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
  instance_id: int
  box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the visible pixels
  visible_pixels: int
  alone_pixels: int
  extended_pixels: int
  occlusion: float
  truncation: float


@dataclasses.dataclass(frozen=True)
class SceneRender:
  """What a renderer returns for one scene (layers empty if image_only).

  Attributes:
    rgb: [H, W, 3] uint8.
    instance: [H, W] uint16, the instance_id of the node seen at each pixel.
    semantic: [H, W] uint8, its semantic_id.
    objects: one per node with ``is_object``, in node order.
  """
  rgb: np.ndarray
  instance: np.ndarray | None
  semantic: np.ndarray | None
  objects: tuple[ObjectInfo, ...]
  intrinsics: Intrinsics


def _vec(v) -> tuple[float, float, float]:
  return (float(v.x), float(v.y), float(v.z))


def _scale(v) -> tuple[float, float, float]:
  return tuple(float(c) if c else 1.0 for c in (v.x, v.y, v.z))


def camera_from_proto(c: pb.Camera) -> Camera:
  return Camera(position=_vec(c.position), yaw_deg=c.yaw_deg,
                pitch_deg=c.pitch_deg, roll_deg=c.roll_deg,
                vfov_deg=c.vfov_deg, near=c.near or DEFAULT_NEAR,
                far=c.far or DEFAULT_FAR)


def node_from_proto(n: pb.Node) -> Node:
  return Node(instance_id=n.instance_id, semantic_id=n.semantic_id,
              asset_id=n.asset_id, position=_vec(n.position),
              yaw_deg=n.yaw_deg, scale=_scale(n.scale),
              color=(n.color.r, n.color.g, n.color.b), is_object=n.is_object,
              class_name=n.class_name)


def node_to_proto(n: Node) -> pb.Node:
  return pb.Node(instance_id=n.instance_id, semantic_id=n.semantic_id,
                 class_name=n.class_name, asset_id=n.asset_id,
                 position=pb.Vec3(x=n.position[0], y=n.position[1],
                                  z=n.position[2]),
                 yaw_deg=n.yaw_deg,
                 scale=pb.Vec3(x=n.scale[0], y=n.scale[1], z=n.scale[2]),
                 color=pb.Color(r=n.color[0], g=n.color[1], b=n.color[2]),
                 is_object=n.is_object)


def camera_to_proto(c: Camera) -> pb.Camera:
  return pb.Camera(position=pb.Vec3(x=c.position[0], y=c.position[1],
                                    z=c.position[2]),
                   yaw_deg=c.yaw_deg, pitch_deg=c.pitch_deg,
                   roll_deg=c.roll_deg, vfov_deg=c.vfov_deg, near=c.near,
                   far=c.far)


def variant_to_proto(v: Variant) -> pb.Variant:
  out = pb.Variant(scene=v.scene, nodes=[node_to_proto(n) for n in v.nodes])
  if v.camera is not None:
    out.camera.CopyFrom(camera_to_proto(v.camera))
  return out


def variant_from_proto(v: pb.Variant) -> Variant:
  return Variant(scene=v.scene,
                 nodes=tuple(node_from_proto(n) for n in v.nodes),
                 camera=camera_from_proto(v.camera) if v.HasField("camera")
                 else None)


def crop_to_proto(c: Crop) -> pb.Crop:
  x0, y0, x1, y1 = c.region
  return pb.Crop(x0=x0, y0=y0, x1=x1, y1=y1,
                 rgb=np.ascontiguousarray(c.rgb, np.uint8).tobytes())


def crop_from_proto(c: pb.Crop) -> Crop:
  h, w = c.y1 - c.y0, c.x1 - c.x0
  rgb = np.frombuffer(c.rgb, np.uint8)
  if rgb.size != max(h, 0) * max(w, 0) * 3:
    raise ValueError(f"crop {(c.x0, c.y0, c.x1, c.y1)} has {rgb.size} bytes")
  return Crop((c.x0, c.y0, c.x1, c.y1), rgb.reshape(max(h, 0), max(w, 0), 3))


def scene_from_proto(s: pb.Scene) -> Scene:
  nodes = tuple(node_from_proto(n) for n in s.nodes)
  sky = (s.sky.r, s.sky.g, s.sky.b) if s.HasField("sky") else Scene.sky
  return Scene(camera=camera_from_proto(s.camera), nodes=nodes, sky=sky)


def scene_to_proto(scene: Scene) -> pb.Scene:
  return pb.Scene(camera=camera_to_proto(scene.camera),
                  nodes=[node_to_proto(n) for n in scene.nodes],
                  sky=pb.Color(r=scene.sky[0], g=scene.sky[1],
                               b=scene.sky[2]))


def render_to_proto(r: SceneRender) -> pb.SceneRender:
  out = pb.SceneRender(
      rgb=np.ascontiguousarray(r.rgb, np.uint8).tobytes(),
      intrinsics=pb.Intrinsics(fx=r.intrinsics.fx, fy=r.intrinsics.fy,
                               cx=r.intrinsics.cx, cy=r.intrinsics.cy))
  if r.instance is not None:
    out.instance = np.ascontiguousarray(r.instance, "<u2").tobytes()
    out.semantic = np.ascontiguousarray(r.semantic, np.uint8).tobytes()
  for o in r.objects:
    out.objects.append(pb.ObjectInfo(
        instance_id=o.instance_id,
        box=pb.Box2D(x0=o.box[0], y0=o.box[1], x1=o.box[2], y1=o.box[3]),
        visible_pixels=o.visible_pixels, alone_pixels=o.alone_pixels,
        extended_pixels=o.extended_pixels, occlusion=o.occlusion,
        truncation=o.truncation))
  return out


def render_from_proto(r: pb.SceneRender, width: int,
                      height: int) -> SceneRender:
  """Decodes one scene's render; raises ValueError on a size mismatch."""
  def layer(data: bytes, dtype, shape):
    a = np.frombuffer(data, dtype)
    if a.size != np.prod(shape):
      raise ValueError(f"reply layer has {a.size} values, expected "
                       f"{int(np.prod(shape))} ({shape})")
    return a.reshape(shape)
  rgb = layer(r.rgb, np.uint8, (height, width, 3))
  instance = semantic = None
  if r.instance:
    instance = layer(r.instance, "<u2", (height, width)).astype(np.uint16)
    semantic = layer(r.semantic, np.uint8, (height, width))
  objects = tuple(
      ObjectInfo(instance_id=o.instance_id,
                 box=(o.box.x0, o.box.y0, o.box.x1, o.box.y1),
                 visible_pixels=o.visible_pixels,
                 alone_pixels=o.alone_pixels,
                 extended_pixels=o.extended_pixels,
                 occlusion=float(o.occlusion),
                 truncation=float(o.truncation)) for o in r.objects)
  i = r.intrinsics
  return SceneRender(rgb=rgb, instance=instance, semantic=semantic,
                     objects=objects,
                     intrinsics=Intrinsics(i.fx, i.fy, i.cx, i.cy))
