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

  def fields(self, attrs: np.ndarray) -> dict:
    """What the bridge's nodes and camera are made of, for a batch of
    attributes [B, N, A] (NumPy, vectorised): world poses, scales, colours,
    asset choices, camera angles."""
    g = self.grammar
    attrs = np.asarray(attrs, np.float64)
    xy, z, yaw = self.world_poses(attrs)
    col = {k: self._column(attrs, k) for k in
           ("scale", "sx", "sy", "sz", "pitch", "roll", "fov")}
    s = np.maximum(col["scale"], 1e-3)
    scale = np.maximum(np.stack([s * col[a] for a in ("sx", "sy", "sz")],
                                -1), 1e-3)
    color = np.broadcast_to(self._class_colors, attrs.shape[:-1] + (3,))
    if {"r", "g", "b"} <= set(g.attr_names):
      has = g.has_attr[:, g.col("r")][:, None]
      rgb = np.clip(np.stack([self._column(attrs, c) for c in "rgb"], -1),
                    0.0, 1.0)
      color = np.where(has, rgb, color)
    model = np.zeros(attrs.shape[:-1], int)
    if "model" in g.attr_names:
      top = np.array([max(len(g.classes[sl.cls].assets), 1) - 1
                      for sl in g.slots])
      model = np.where(g.has_attr[:, g.col("model")],
                       np.clip(self._column(attrs, "model"), 0, top),
                       0).astype(int)
    cam = self.camera_slot
    camera = np.stack([xy[:, cam, 0], xy[:, cam, 1], z[:, cam], yaw[:, cam],
                       col["pitch"][:, cam], col["roll"][:, cam],
                       np.clip(col["fov"][:, cam], 1.0, 170.0)], -1)
    position = np.concatenate([xy, z[..., None]], -1)
    return dict(position=position, yaw=yaw, scale=scale, color=color,
                model=model, camera=camera)

  @functools.cached_property
  def _class_colors(self) -> np.ndarray:
    """[N, 3] each slot's class colour (grey if it has not 3 channels)."""
    g = self.grammar
    return np.array([g.classes[sl.cls].color
                     if len(g.classes[sl.cls].color) == 3 else (0.5,) * 3
                     for sl in g.slots])

  def _node(self, f: dict, i: int, n: int):
    from third_party.renderer_bridge import scene as bridge_scene
    c = self.grammar.classes[self.grammar.slots[n].cls]
    return bridge_scene.Node(
        instance_id=n + 1, semantic_id=int(self.semantic[n]),
        asset_id=c.assets[f["model"][i, n]],
        position=tuple(f["position"][i, n].tolist()),
        yaw_deg=float(f["yaw"][i, n]), scale=tuple(f["scale"][i, n].tolist()),
        color=tuple(f["color"][i, n].tolist()), is_object=c.object,
        class_name=c.name)

  def _camera(self, f: dict, i: int):
    from third_party.renderer_bridge import scene as bridge_scene
    x, y, z, yaw, pitch, roll, fov = f["camera"][i].tolist()
    return bridge_scene.Camera(position=(x, y, z), yaw_deg=yaw,
                               pitch_deg=pitch, roll_deg=roll, vfov_deg=fov)

  def scenes(self, attrs: np.ndarray, node_mask: np.ndarray,
             fields: dict | None = None) -> list:
    """[B, N, A] attributes and [B, N] masks -> B bridge ``Scene``s."""
    from third_party.renderer_bridge import scene as bridge_scene
    f = self.fields(attrs) if fields is None else fields
    mask = np.asarray(node_mask)
    return [bridge_scene.Scene(
        camera=self._camera(f, b),
        nodes=tuple(self._node(f, b, n) for n in self.mesh_slots
                    if mask[b, n]), sky=self.sky)
            for b in range(mask.shape[0])]

  def variants(self, attrs: np.ndarray, node_mask: np.ndarray,
               delta: np.ndarray) -> tuple[list, list]:
    """Finite-difference variants: the B scenes of ``attrs`` and, for each
    perturbation ``delta[q]`` [N, A] and scene b (index q * B + b), a
    ``Variant`` holding only the nodes (or camera) the perturbation moves
    (a perturbed road moves its cars: all of them are in it)."""
    from third_party.renderer_bridge import scene as bridge_scene
    attrs, mask = np.asarray(attrs, np.float64), np.asarray(node_mask)
    b, q = attrs.shape[0], delta.shape[0]
    base = self.fields(attrs)
    pert = self.fields((attrs[None] + delta[:, None]).reshape(
        (q * b,) + attrs.shape[1:]))
    tile = lambda x: np.tile(x, (q,) + (1,) * (x.ndim - 1))
    mesh = np.zeros(attrs.shape[1], bool)
    mesh[list(self.mesh_slots)] = True
    moved = np.zeros((q * b, attrs.shape[1]), bool)
    for k in ("position", "yaw", "scale", "color", "model"):
      d = pert[k] != tile(base[k])
      moved |= d.reshape(d.shape[:2] + (-1,)).any(-1)
    moved &= mesh & tile(mask)
    cam_moved = (pert["camera"] != tile(base["camera"])).any(-1)
    variants = []
    for v in range(q * b):
      variants.append(bridge_scene.Variant(
          scene=v % b,
          nodes=tuple(self._node(pert, v, n) for n in np.flatnonzero(
              moved[v])),
          camera=self._camera(pert, v) if cam_moved[v] else None))
    return self.scenes(attrs, mask, base), variants

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
def close_clients():
  """Closes every client and stops the servers it started."""
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

  def _host_directional(self, grammar, steps, attrs, node_mask, g):
    from metasim_jax.render.finite_diff import perturbations
    attrs, node_mask, g = (np.asarray(x) for x in (attrs, node_mask, g))
    lead = attrs.shape[:-2]
    n, a = attrs.shape[-2:]
    flat_a, flat_m = attrs.reshape(-1, n, a), node_mask.reshape(-1, n)
    g = g.reshape((-1,) + g.shape[len(lead):])
    n_idx, a_idx, h = perturbations(steps)
    num, batch = len(h), flat_a.shape[0]
    delta = np.zeros((2 * num, n, a))
    delta[np.arange(num), n_idx, a_idx] = h
    delta[num + np.arange(num), n_idx, a_idx] = -h
    codec = Codec.create(grammar, self.semantic_names)
    bases, variants = codec.variants(flat_a, flat_m, delta)
    images, crops = self._client().render_variants(
        bases, variants, self.canvas.width, self.canvas.height)
    dots = np.zeros((2 * num, batch))
    for v, crop in enumerate(crops):
      x0, y0, x1, y1 = crop.region
      if x0 >= x1 or y0 >= y1:
        continue
      q, b = divmod(v, batch)
      change = (crop.rgb.astype(np.float32)
                - images[b][y0:y1, x0:x1]) / 255
      dots[q, b] = np.vdot(g[b, y0:y1, x0:x1], change)
    grads = ((dots[:num] - dots[num:]) / (2 * h[:, None])).T  # [batch, P]
    return grads.astype(np.float32).reshape(lead + (num,))

  def finite_difference_vjp(self, attrs, node_mask, g, grammar: Grammar,
                            steps: np.ndarray) -> jax.Array:
    """[..., B, P] central differences <g, I(a + h e_p) - I(a - h e_p)> /
    (2 h) for the pairs of ``finite_diff.perturbations(steps)``, all
    computed on the host from crops: each variant is drawn only where it
    can differ from its scene, and the crops never reach the device."""
    num = int((np.asarray(steps) > 0).sum())
    shape = jax.ShapeDtypeStruct(attrs.shape[:-2] + (num,), jnp.float32)
    return jax.pure_callback(
        functools.partial(self._host_directional, grammar,
                          np.asarray(steps)), shape, attrs, node_mask, g,
        vmap_method="broadcast_all")

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
