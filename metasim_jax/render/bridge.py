"""An external 3D renderer as a ``registry.Renderer``: scene graphs go out
through ``third_party/renderer_bridge`` (gRPC) and come back as layers.

``config.renderer = "bridge"`` with ``config.renderer_options``:
``backend`` ("moderngl" or "blender": servers started here, ``workers`` of
them, restarted if they die) or ``addresses`` (comma-separated
``host:port`` of servers started elsewhere), and ``timeout_s``.

Grammar: classes with ``"render": "mesh"`` are drawn with one of their
``assets`` (the server's catalogue ids; a categorical attribute ``model``
picks one), one class with ``"render": "camera"`` is the camera, a
``"fill"`` class's colour is the sky.  Attributes read (absent ones take
the default):

* poses, in the parent's frame (metres, degrees): ``x`` (across), ``y``
  (along), ``z`` (up), ``yaw``; children compose x, y, yaw and add z;
* meshes: ``scale`` (uniform) times ``sx``, ``sy``, ``sz`` (per axis),
  colour ``r``, ``g``, ``b`` in [0, 1] (else the class's ``color``);
* the camera: ``pitch`` (positive looks down), ``roll``, ``fov``
  (vertical, degrees).

Instance ids are slot + 1 on the wire and slot indices in ``Renders``;
semantic ids are the problem's table.  Classes marked ``"object": true``
get boxes, truncation and occlusion, measured by the server.  The
renderer is not differentiable: distribution matching uses finite
differences, which send all perturbed scenes of a step as one batch that
the client spreads over the workers.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import threading

import jax
import jax.numpy as jnp
import numpy as np

from metasim_jax.grammar.spec import Grammar, GrammarError
from metasim_jax.render import labels, registry
from metasim_jax.render.registry import Canvas
from metasim_jax.types import Renders

DEFAULTS = {"x": 0.0, "y": 0.0, "z": 0.0, "yaw": 0.0, "scale": 1.0,
            "sx": 1.0, "sy": 1.0, "sz": 1.0, "pitch": 0.0, "roll": 0.0,
            "fov": 40.0}
_KINDS = {"yaw": "angle", "pitch": "angle", "roll": "angle"}
DEFAULT_SKY = (0.55, 0.7, 0.9)


@dataclasses.dataclass(frozen=True, eq=False)
class Codec:
  """A grammar's scene graphs <-> the bridge's scenes (host side, NumPy).

  Attributes:
    grammar: the grammar whose attribute columns ``attrs`` has.
    semantic: [N] semantic id of each slot in the problem's table.
    mesh_slots: slots drawn by the server, pre-order.
    camera_slot: the camera's slot.
  """
  grammar: Grammar
  semantic: np.ndarray
  mesh_slots: tuple[int, ...]
  camera_slot: int
  sky: tuple[float, float, float]

  @classmethod
  @functools.cache
  def create(cls, grammar: Grammar, names: tuple[str, ...]) -> "Codec":
    for name, c in grammar.classes.items():
      if c.render == "texture":
        raise GrammarError(f"classes.{name}.render: the bridge draws "
                           "'mesh' nodes, not textures")
    for a, kind in zip(grammar.attr_names, grammar.attr_kinds):
      want = _KINDS.get(a, "continuous")
      if a in DEFAULTS and kind != want:
        raise GrammarError(f"attribute {a!r}: the bridge reads it as "
                           f"{want}, the grammar has kind {kind!r}")
    cams = [i for i, s in enumerate(grammar.slots)
            if grammar.classes[s.cls].render == "camera"]
    if len(cams) != 1:
      raise GrammarError(f"the bridge needs exactly one camera slot "
                         f"(a class with render 'camera'), found {len(cams)}")
    fills = [c for c in grammar.classes.values() if c.render == "fill"]
    sky = tuple(fills[0].color) if fills else DEFAULT_SKY
    if len(sky) != 3:
      raise GrammarError(f"classes.{fills[0].name}.color: the sky needs 3 "
                         f"channels, got {sky}")
    meshes = tuple(i for i, s in enumerate(grammar.slots)
                   if grammar.classes[s.cls].render == "mesh")
    return cls(grammar, labels.slot_semantic_ids(grammar, names), meshes,
               cams[0], sky)

  def _column(self, attrs: np.ndarray, name: str) -> np.ndarray:
    g = self.grammar
    if name not in g.attr_names:
      return np.full(attrs.shape[:-1], DEFAULTS.get(name, 0.0))
    j = g.col(name)
    return np.where(g.has_attr[:, j], attrs[..., j], DEFAULTS.get(name, 0.0))

  def world_poses(self, attrs: np.ndarray):
    """(xy [B, N, 2], z [B, N], yaw [B, N] degrees) in the world frame."""
    x, y, z, yaw = (self._column(attrs, k).astype(np.float64)
                    for k in ("x", "y", "z", "yaw"))
    xy, wz, wyaw = np.stack([x, y], -1), z.copy(), yaw.copy()
    for n, p in enumerate(self.grammar.parents):  # pre-order: parent first
      if p < 0:
        continue
      t = np.radians(wyaw[:, p])
      c, s = np.cos(t), np.sin(t)
      xy[:, n, 0] = xy[:, p, 0] + c * x[:, n] - s * y[:, n]
      xy[:, n, 1] = xy[:, p, 1] + s * x[:, n] + c * y[:, n]
      wz[:, n] = wz[:, p] + z[:, n]
      wyaw[:, n] = wyaw[:, p] + yaw[:, n]
    return xy, wz, wyaw

  def scenes(self, attrs: np.ndarray, node_mask: np.ndarray) -> list:
    """[B, N, A] attributes and [B, N] masks -> B bridge ``Scene``s."""
    from third_party.renderer_bridge import scene as bridge_scene
    attrs = np.asarray(attrs, np.float64)
    g = self.grammar
    xy, z, yaw = self.world_poses(attrs)
    col = {k: self._column(attrs, k) for k in
           ("scale", "sx", "sy", "sz", "pitch", "roll", "fov")}
    rgb = ({k: self._column(attrs, k) for k in "rgb"}
           if {"r", "g", "b"} <= set(g.attr_names) else None)
    model = self._column(attrs, "model") if "model" in g.attr_names else None
    cam = self.camera_slot
    out = []
    for b in range(attrs.shape[0]):
      camera = bridge_scene.Camera(
          position=(xy[b, cam, 0], xy[b, cam, 1], z[b, cam]),
          yaw_deg=yaw[b, cam], pitch_deg=col["pitch"][b, cam],
          roll_deg=col["roll"][b, cam],
          vfov_deg=float(np.clip(col["fov"][b, cam], 1.0, 170.0)))
      nodes = []
      for n in self.mesh_slots:
        if not node_mask[b, n]:
          continue
        c = g.classes[g.slots[n].cls]
        k = int(np.clip(model[b, n], 0, len(c.assets) - 1)) if (
            model is not None and g.has_attr[n, g.col("model")]) else 0
        s = max(col["scale"][b, n], 1e-3)
        color = c.color if len(c.color) == 3 else (0.5, 0.5, 0.5)
        if rgb is not None and g.has_attr[n, g.col("r")]:
          color = tuple(np.clip([rgb[ch][b, n] for ch in "rgb"], 0, 1))
        nodes.append(bridge_scene.Node(
            instance_id=n + 1, semantic_id=int(self.semantic[n]),
            asset_id=c.assets[k], position=(xy[b, n, 0], xy[b, n, 1],
                                            z[b, n]),
            yaw_deg=yaw[b, n],
            scale=tuple(max(s * col[a][b, n], 1e-3) for a in
                        ("sx", "sy", "sz")),
            color=color, is_object=c.object, class_name=c.name))
      out.append(bridge_scene.Scene(camera=camera, nodes=tuple(nodes),
                                    sky=self.sky))
    return out

  def layers(self, renders: list, node_mask: np.ndarray) -> dict:
    """Bridge renders -> the arrays of ``Renders`` (NumPy, batch first)."""
    b, n = node_mask.shape
    boxes = np.zeros((b, n, 4), np.float32)
    box_mask = np.zeros((b, n), bool)
    truncation = np.zeros((b, n), np.float32)
    occlusion = np.zeros((b, n), np.float32)
    for i, r in enumerate(renders):
      for o in r.objects:
        s = o.instance_id - 1
        boxes[i, s] = o.box
        box_mask[i, s] = o.visible_pixels > 0
        truncation[i, s] = o.truncation
        occlusion[i, s] = o.occlusion
    return dict(
        image=np.stack([r.rgb for r in renders]).astype(np.float32) / 255,
        semantic=np.stack([r.semantic for r in renders]).astype(np.int32),
        instance=np.stack([r.instance for r in renders]).astype(np.int32)
        - 1,
        boxes=boxes, box_mask=box_mask & node_mask, truncation=truncation,
        occlusion=occlusion)


_CLIENTS: dict = {}
_LOCK = threading.Lock()


def client_for(backend: str, workers: int, addresses: str,
               timeout_s: float):
  """One client (and its servers) per option set, for the process's life."""
  from third_party.renderer_bridge import client as client_lib
  key = (backend, workers, addresses, timeout_s)
  with _LOCK:
    if key not in _CLIENTS:
      if addresses:
        c = client_lib.RendererClient(
            [a.strip() for a in addresses.split(",") if a.strip()],
            timeout_s=timeout_s)
      else:
        c = client_lib.RendererClient.local(backend, workers,
                                            timeout_s=timeout_s)
      _CLIENTS[key] = c
    return _CLIENTS[key]


@atexit.register
def _close_clients():
  for c in _CLIENTS.values():
    c.close()
  _CLIENTS.clear()


@dataclasses.dataclass(frozen=True)
class BridgeRenderer:
  """Renders through renderer servers, from inside jitted code
  (``jax.pure_callback``; the starts' vmap becomes one call)."""
  canvas: Canvas
  semantic_names: tuple[str, ...]
  backend: str = "moderngl"
  workers: int = 1
  addresses: str = ""
  timeout_s: float = 300.0
  differentiable: bool = False

  def __post_init__(self):
    if self.canvas.channels != 3:
      raise ValueError(f"the bridge renders RGB: canvas.channels must be 3, "
                       f"got {self.canvas.channels}")
    if self.workers < 1:
      raise ValueError(f"renderer_options.workers must be >= 1, got "
                       f"{self.workers}")

  def _client(self):
    return client_for(self.backend, self.workers, self.addresses,
                      self.timeout_s)

  def _host_render(self, grammar, image_only, attrs, node_mask):
    attrs, node_mask = np.asarray(attrs), np.asarray(node_mask)
    lead = attrs.shape[:-2]  # starts (broadcast_all) and batch
    n, a = attrs.shape[-2:]
    flat_a, flat_m = attrs.reshape(-1, n, a), node_mask.reshape(-1, n)
    codec = Codec.create(grammar, self.semantic_names)
    scenes = codec.scenes(flat_a, flat_m)
    renders = self._client().render(scenes, self.canvas.width,
                                    self.canvas.height, image_only)
    if image_only:
      image = np.stack([r.rgb for r in renders]).astype(np.float32) / 255
      return image.reshape(lead + image.shape[1:])
    out = codec.layers(renders, flat_m)
    return {k: v.reshape(lead + v.shape[1:]) for k, v in out.items()}

  def render(self, scene, grammar: Grammar, pools) -> Renders:
    del pools
    b, n = scene.node_mask.shape
    h, w = self.canvas.height, self.canvas.width
    lead = scene.attrs.shape[:-2]
    shapes = dict(
        image=jax.ShapeDtypeStruct(lead + (h, w, 3), jnp.float32),
        semantic=jax.ShapeDtypeStruct(lead + (h, w), jnp.int32),
        instance=jax.ShapeDtypeStruct(lead + (h, w), jnp.int32),
        boxes=jax.ShapeDtypeStruct(lead + (n, 4), jnp.float32),
        box_mask=jax.ShapeDtypeStruct(lead + (n,), jnp.bool_),
        truncation=jax.ShapeDtypeStruct(lead + (n,), jnp.float32),
        occlusion=jax.ShapeDtypeStruct(lead + (n,), jnp.float32))
    out = jax.pure_callback(
        functools.partial(self._host_render, grammar, False), shapes,
        scene.attrs, scene.node_mask, vmap_method="broadcast_all")
    return Renders(**out)

  def render_image(self, attrs, node_mask, grammar: Grammar,
                   pools) -> jax.Array:
    del pools
    shape = jax.ShapeDtypeStruct(
        attrs.shape[:-2] + (self.canvas.height, self.canvas.width, 3),
        jnp.float32)
    return jax.pure_callback(
        functools.partial(self._host_render, grammar, True), shape, attrs,
        node_mask, vmap_method="broadcast_all")


registry.register("bridge", BridgeRenderer)
