"""A jit-compiled, differentiable 2D rasterizer for scene graphs.

Every slot has a local frame given by its attributes ``x, y`` (translation,
pixels), ``yaw`` (degrees, counter-clockwise as seen on screen, so that 90
degrees equals ``np.rot90``) and ``scale``, relative to its parent's frame;
the root's parent frame is the image (origin top-left, y down).  A texture
node draws its texture centred on its origin, one texel per pixel at scale 1,
sampled bilinearly at pixel centres (sub-pixel exact, differentiable in the
geometry).  Fill nodes cover the canvas with a constant colour.  Slots are
composited in slot order (pre-order: parents under their children, later
siblings on top) with premultiplied alpha.

Outputs (``Renders``): the image, a semantic map (id of the class of the
top-most node whose alpha exceeds 0.5; 0 where none), an instance map (slot
index, -1 where none) and per-slot axis-aligned boxes of the texture content.

Windows.  A texture of h x w texels is non-zero only inside itself plus the
half-texel bilinear fade, so a node covers at most the disk of radius
``s * hypot(w / 2 + 0.5, h / 2 + 0.5)`` around its world origin ``t``,
where ``s`` is its world scale: the product of the ``scale`` of the node and
of its ancestors.  The grammar bounds ``s`` statically: each factor by the
upper end of its range plus its finite-difference step (the finite-difference
renderer draws a step past the range), 1 where a slot has no scale.  So all
nodes of a class are sampled on one static-size window (``window_shape``),
placed at run time around ``t`` and clamped to the canvas
(``window_origin``): a small car costs its window, not the canvas.  A
window as large as the canvas is the canvas (origin 0), so a class whose
nodes can cover it all is sampled on the full canvas by the same code.  The
sampler and the Distribution Transformer keep scales inside their ranges;
a larger scale (say REINFORCE noise on ``scale``, which no shipped config
uses) would be cropped to the window.

Compositing runs back to front, each window updating only its part of the
image and of the instance map (the same sums and the same top-most node as
front to back); the semantic map is the semantic id of that node.  The
batch is rendered a chunk of scenes at a time by a loop (``_CHUNK_BYTES``),
so that a chunk's windows and maps stay in cache; inside a chunk the
windows are sampled by a loop of their own (``_SAMPLE_STEPS`` steps), whose
outputs XLA must materialize.  Without it XLA fuses the texture gathers
into each consumer of the sampled values and recomputes them there, tap by
tap and channel by channel, three times slower on the CPU.  Images match
the full-canvas renderer to float rounding, labels and boxes exactly
(``tests/render/test_raster_windows.py``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from metasim_jax.grammar.spec import GEOMETRY_DEFAULTS, Grammar
from metasim_jax.render import labels, registry
from metasim_jax.render.registry import Canvas
from metasim_jax.types import Renders, SceneGraph, TexturePool

# Bytes of sampled windows per step of the loop over the batch: a chunk is
# the largest power of two of scenes whose windows fit (the whole batch in
# one step if it fits).  Measured on 2 CPU cores: Aerial2D (184 KB of
# windows a scene) is fastest in chunks of 64 to 128 scenes, 1.3x faster
# than in one step; MNIST (8 to 14 KB) is fastest in one step.
_CHUNK_BYTES = 24 << 20
# Steps of the loop that samples the windows of one chunk (>= 2: XLA inlines
# a one-step loop, and with it the fusion this loop is there to prevent).
_SAMPLE_STEPS = 2
# Pixels added to a window's radius against float rounding of the texel
# coordinates at the edge of the footprint.
_WINDOW_MARGIN = 0.01


def _geometry(attrs: jax.Array, grammar: Grammar, name: str) -> jax.Array:
  if name in grammar.attr_names:
    j = grammar.col(name)
    return jnp.where(grammar.has_attr[:, j], attrs[..., j],
                     GEOMETRY_DEFAULTS[name])
  return jnp.full(attrs.shape[:-1], GEOMETRY_DEFAULTS[name], attrs.dtype)


def world_transforms(attrs: jax.Array, grammar: Grammar
                     ) -> tuple[jax.Array, jax.Array]:
  """Composes local frames down the tree: (M [B, N, 2, 2], t [B, N, 2]).

  A point q in a slot's frame lies at ``M q + t`` in the image.
  """
  x, y = _geometry(attrs, grammar, "x"), _geometry(attrs, grammar, "y")
  yaw = jnp.deg2rad(_geometry(attrs, grammar, "yaw"))
  s = jnp.maximum(_geometry(attrs, grammar, "scale"), 1e-3)
  c, sn = jnp.cos(yaw) * s, jnp.sin(yaw) * s
  # Counter-clockwise on screen with y pointing down.
  m_local = jnp.stack([jnp.stack([c, sn], -1), jnp.stack([-sn, c], -1)], -2)
  t_local = jnp.stack([x, y], -1)
  parents = grammar.parents
  is_root = (parents < 0)[None, :, None]
  p = np.maximum(parents, 0)
  m, t = m_local, t_local
  for _ in range(grammar.depth):  # static depth; vectorised over slots
    mp, tp = m[:, p], t[:, p]
    # Elementwise 2x2 products: tiny batched matmuls are slow on the CPU.
    mm = jnp.sum(mp[..., :, :, None] * m_local[..., None, :, :], -2)
    tt = tp + jnp.sum(mp * t_local[..., None, :], -1)
    m = jnp.where(is_root[..., None], m_local, mm)
    t = jnp.where(is_root, t_local, tt)
  return m, t


def _inverse_2x2(m: jax.Array) -> jax.Array:
  a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
  det = a * d - b * c
  return jnp.stack([jnp.stack([d, -b], -1), jnp.stack([-c, a], -1)],
                   -2) / det[..., None, None]


def bilinear(bank: jax.Array, tex_id: jax.Array, u: jax.Array,
             v: jax.Array) -> jax.Array:
  """Samples texture ``tex_id`` of [T, h, w, C] at texel coords (u, v).

  Texel centres sit at +0.5.  Outside the texture the value is 0, with a
  one-texel bilinear fade.  Returns [..., C] for u, v of shape [...].
  """
  _, h, w, ch = bank.shape
  fx, fy = u - 0.5, v - 0.5
  x0, y0 = jnp.floor(fx), jnp.floor(fy)
  ax, ay = fx - x0, fy - y0
  flat = bank.reshape(-1, ch)
  base = tex_id * (h * w)
  out = 0.0
  for dx, dy, wgt in ((0, 0, (1 - ax) * (1 - ay)), (1, 0, ax * (1 - ay)),
                      (0, 1, (1 - ax) * ay), (1, 1, ax * ay)):
    xi, yi = (x0 + dx).astype(jnp.int32), (y0 + dy).astype(jnp.int32)
    ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    idx = jnp.where(ok, base + yi * w + xi, 0)
    out = out + jnp.where(ok, wgt, 0.0)[..., None] * flat[idx]
  return out


# --- Windows ---------------------------------------------------------------


def world_scale_bound(grammar: Grammar, slot: int) -> float:
  """Largest world scale slot ``slot`` can be drawn at (static).

  The product over the slot and its ancestors of the upper end of each
  ``scale`` range plus its finite-difference step; 1 for slots without one.
  """
  bound, i = 1.0, int(slot)
  has_scale = "scale" in grammar.attr_names
  while i >= 0:
    if has_scale and grammar.has_attr[i, grammar.col("scale")]:
      j = grammar.col("scale")
      top = float(grammar.high[i, j]) + float(grammar.fd_step[i, j])
      bound *= max(top, 1e-3)  # world_transforms floors scales at 1e-3
    i = grammar.slots[i].parent
  return bound


def window_shape(grammar: Grammar, slots: Sequence[int],
                 texture_size: tuple[int, int],
                 canvas: Canvas) -> tuple[int, int]:
  """Static (height, width) of the windows of the nodes in ``slots``.

  A square of side ``ceil(2 * window_radius)``, cut to the canvas: a window
  of the canvas's size means "sample the whole canvas".
  """
  side = 2 * window_radius(grammar, slots, texture_size)
  side = math.ceil(side) if math.isfinite(side) else math.inf
  return min(side, canvas.height), min(side, canvas.width)


def window_radius(grammar: Grammar, slots: Sequence[int],
                  texture_size: tuple[int, int]) -> float:
  """Radius (pixels) of the disk that holds every footprint of ``slots``.

  ``s * hypot(w / 2 + 0.5, h / 2 + 0.5)`` for the largest world scale
  ``s``, plus ``_WINDOW_MARGIN`` against float rounding.
  """
  h, w = texture_size
  scale = max(world_scale_bound(grammar, i) for i in slots)
  return scale * math.hypot(w / 2 + 0.5, h / 2 + 0.5) + _WINDOW_MARGIN


def window_origin(t: jax.Array, shape: tuple[int, int], radius: float,
                  canvas: Canvas) -> jax.Array:
  """[..., 2] int32 (x, y) of the top-left pixel of windows centred at ``t``.

  The first pixel whose centre lies within ``radius`` of ``t``; a window
  of side ``ceil(2 radius)`` from there holds all such pixels.  Clamped
  onto the canvas: the pixels this leaves out lie off the canvas.
  """

  def start(centre, side, size):
    first = jnp.floor(jax.lax.stop_gradient(centre) - radius - 0.5) + 1
    return jnp.clip(first, 0, size - side).astype(jnp.int32)

  return jnp.stack([start(t[..., 0], shape[1], canvas.width),
                    start(t[..., 1], shape[0], canvas.height)], -1)


def _sample_window(inv: jax.Array, t: jax.Array, tex_id: jax.Array,
                   origin: jax.Array, bank: jax.Array,
                   shape: tuple[int, int]) -> jax.Array:
  """One node's texture over its window: [Sy, Sx, C + 1].

  inv [2, 2]: inverse of the node's world matrix; t [2]: its world origin;
  origin [2] int32 (x, y): the window's top-left pixel; bank [T, h, w,
  C + 1].  A pixel centre p samples texel ``inv (p - t) + centre``, the
  same arithmetic as on the full canvas.
  """
  _, h, w, _ = bank.shape
  # p - t per column (x) and per row (y): the products below are then
  # per row or column, and each texel coordinate costs two adds.
  dx = (np.arange(shape[1], dtype=np.float32) + 0.5
        + origin[0].astype(jnp.float32)) - t[0]
  dy = (np.arange(shape[0], dtype=np.float32) + 0.5
        + origin[1].astype(jnp.float32)) - t[1]
  u = (inv[0, 0] * dx[None, :] + inv[0, 1] * dy[:, None]) + w / 2.0
  v = (inv[1, 0] * dx[None, :] + inv[1, 1] * dy[:, None]) + h / 2.0
  return bilinear(bank, tex_id, u, v)


def _draw(maps: tuple[jax.Array, jax.Array], layer: jax.Array,
          origin: jax.Array, slot: int) -> tuple[jax.Array, jax.Array]:
  """Composites one layer over the maps of one scene, back to front.

  maps: image [H, W, C] and instance [H, W] (top-most slot with alpha >
  0.5 so far, -1 where none); layer [Sy, Sx, C + 1] premultiplied colour
  and alpha (zero for an absent node) at ``origin`` (x, y).  Only the
  window's pixels are read and written (pasting the window into a
  canvas-size layer instead measured 1.3x slower on Aerial2D).
  """
  image, instance = maps
  full = layer.shape[:2] == image.shape[:2]
  at = (origin[1], origin[0])

  def crop(x):
    if full:
      return x
    return jax.lax.dynamic_slice(x, at + (0,) * (x.ndim - 2),
                                 layer.shape[:2] + x.shape[2:])

  def paste(x, part):
    if full:
      return part
    return jax.lax.dynamic_update_slice(x, part, at + (0,) * (x.ndim - 2))

  alpha = layer[..., -1]
  return (paste(image, crop(image) * (1.0 - alpha[..., None])
                + layer[..., :-1]),
          paste(instance, jnp.where(alpha > 0.5, slot, crop(instance))))


# --- Batching ----------------------------------------------------------------


def _loop(fn: Callable, xs, steps: int, strided: bool = False):
  """``fn`` over the leading axis of ``xs`` in a loop of ``steps`` steps
  (one step: a plain call).

  Step i takes a block of consecutive elements, or with ``strided`` the
  elements i, i + steps, ...: a batch split over devices along that axis
  then stays split in every step (a block would sit on one device, and
  XLA would gather it onto all of them).  The batch is padded with copies
  of its last element to a multiple of ``steps``; the padding is cut from
  the outputs.
  """
  if steps == 1:
    return fn(xs)
  b = jax.tree.leaves(xs)[0].shape[0]
  size = -(-b // steps)
  pad = steps * size - b

  def split(x):
    if pad:
      x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, 0)])
    if strided:
      return x.reshape((size, steps) + x.shape[1:]).swapaxes(0, 1)
    return x.reshape((steps, size) + x.shape[1:])

  def join(y):
    if strided:
      y = y.swapaxes(0, 1)
    return y.reshape((-1,) + y.shape[2:])

  out = jax.tree.map(join, jax.lax.map(fn, jax.tree.map(split, xs)))
  return jax.tree.map(lambda y: y[:b], out) if pad else out


@dataclasses.dataclass(frozen=True)
class _TextureClass:
  """Static plan of one texture class: its slots, pool and windows."""
  name: str
  slots: np.ndarray
  pool: str
  window: tuple[int, int]  # (height, width)
  radius: float


def _plan(grammar: Grammar, pools: Mapping[str, TexturePool],
          canvas: Canvas) -> list[_TextureClass]:
  """The texture classes of ``grammar`` that have slots, with their windows;
  raises if a pool is missing or has the wrong number of channels."""
  plan = []
  for name, cls in grammar.classes.items():
    slots = grammar.slots_of(name)
    if cls.render in ("mesh", "camera"):
      raise ValueError(f"class {name!r} renders as {cls.render!r}: a 3D "
                       "grammar needs config.renderer 'bridge'")
    if cls.render != "texture" or not len(slots):
      continue
    pool = grammar.pool_of(name, pools)
    if pool.images.shape[-1] != canvas.channels + 1:
      raise ValueError(f"pool {cls.pool!r} has {pool.images.shape[-1]} "
                       f"channels; canvas needs {canvas.channels} + alpha")
    plan.append(_TextureClass(
        name, slots, cls.pool, window_shape(grammar, slots, pool.size, canvas),
        window_radius(grammar, slots, pool.size)))
  return plan


def _layer_table(grammar: Grammar, plan: list[_TextureClass],
                 channels: int) -> dict:
  """Drawn slot -> (texture class, index among its slots), or for a fill
  node its colour and alpha [C + 1]."""
  layers = {}
  for c in plan:
    for k, i in enumerate(c.slots):
      layers[int(i)] = (c.name, k)
  for name, cls in grammar.classes.items():
    if cls.render == "fill":
      colour = np.resize(np.asarray(cls.color, np.float32), channels)
      for i in grammar.slots_of(name):
        layers[int(i)] = np.append(colour, 1.0).astype(np.float32)
  return layers


def _chunk_size(plan: list[_TextureClass],
                pools: Mapping[str, TexturePool]) -> int:
  """Scenes per step of the loop over the batch (see ``_CHUNK_BYTES``)."""
  per_scene = sum(4 * len(c.slots) * c.window[0] * c.window[1]
                  * pools[c.pool].images.shape[-1] for c in plan)
  fit = max(1, _CHUNK_BYTES // max(1, per_scene))
  return 1 << (fit.bit_length() - 1)


def _texture_boxes(m, t, tex_ids, pool: TexturePool):
  h, w = pool.size
  b = pool.boxes[tex_ids]  # [B, S, 4]
  x0, y0, x1, y1 = (b[..., i] for i in range(4))
  corners = jnp.stack([jnp.stack([x0, y0], -1), jnp.stack([x1, y0], -1),
                       jnp.stack([x0, y1], -1), jnp.stack([x1, y1], -1)], -2)
  corners = corners - jnp.array([w / 2.0, h / 2.0])
  world = jnp.sum(m[:, :, None] * corners[..., None, :], -1) + t[:, :, None]
  return jnp.concatenate([world.min(-2), world.max(-2)], -1)


def render(scene: SceneGraph, grammar: Grammar,
           pools: Mapping[str, TexturePool], canvas: Canvas,
           semantic_names: Sequence[str] | None = None) -> Renders:
  """Rasterizes a batch of scene graphs (jittable, differentiable in attrs).

  ``semantic_names`` is the problem's semantic table (default: the one of
  ``grammar`` itself, ``labels.semantic_names``).  Windows are sized from
  ``grammar``'s scale ranges, so pass the grammar the scenes come from.
  Compiled once per grammar, canvas and shapes, also when called outside
  ``jax.jit`` (its loops would otherwise be compiled at every call).
  """
  if semantic_names is None:
    semantic_names = labels.semantic_names(grammar)
  return _render_jit(scene, grammar, pools, canvas, tuple(semantic_names))


def _render(scene: SceneGraph, grammar: Grammar,
            pools: Mapping[str, TexturePool], canvas: Canvas,
            semantic_names: Sequence[str]) -> Renders:
  """``render`` (not compiled by itself)."""
  b, n = scene.node_mask.shape
  hh, ww, ch = canvas.height, canvas.width, canvas.channels
  sem_ids = labels.slot_semantic_ids(grammar, semantic_names)
  plan = _plan(grammar, pools, canvas)
  m, t = world_transforms(scene.attrs, grammar)

  # Per texture class, per node [B, S, ...]: inverse world matrix, world
  # origin, texture id and window origin.
  nodes = {}
  boxes = jnp.zeros((b, n, 4), jnp.float32)
  for c in plan:
    ids = scene.attrs[:, c.slots, grammar.col("texture")].astype(jnp.int32)
    ms, ts = m[:, c.slots], t[:, c.slots]
    nodes[c.name] = (_inverse_2x2(ms), ts, ids,
                     window_origin(ts, c.window, c.radius, canvas))
    boxes = boxes.at[:, c.slots].set(
        _texture_boxes(ms, ts, ids, pools[c.pool]))
  layers = _layer_table(grammar, plan, ch)
  for i, layer in layers.items():
    if not isinstance(layer, tuple):  # fill nodes cover the canvas
      boxes = boxes.at[:, i].set(jnp.array([0.0, 0.0, ww, hh]))

  def sample(nodes_part):
    """Windows of a few scenes: class -> [b, S, Sy, Sx, C + 1]."""
    out = {}
    for c in plan:
      sample_one = functools.partial(_sample_window,
                                     bank=pools[c.pool].images,
                                     shape=c.window)
      out[c.name] = jax.vmap(jax.vmap(sample_one))(*nodes_part[c.name])
    return out

  def draw_chunk(chunk):
    """Image, semantic and instance maps of a chunk of scenes."""
    nodes_chunk, on = chunk
    bc = on.shape[0]
    windows = (_loop(sample, nodes_chunk, _SAMPLE_STEPS, strided=True)
               if plan else {})
    maps = (jnp.zeros((bc, hh, ww, ch), jnp.float32),
            jnp.full((bc, hh, ww), -1, jnp.int32))
    for i in sorted(layers):  # back to front
      visible = on[:, i, None, None, None].astype(jnp.float32)
      if isinstance(layers[i], tuple):
        name, k = layers[i]
        layer = windows[name][:, k] * visible
        origin = nodes_chunk[name][3][:, k]
      else:
        layer = jnp.broadcast_to(jnp.asarray(layers[i]) * visible,
                                 (bc, hh, ww, ch + 1))
        origin = jnp.zeros((bc, 2), jnp.int32)
      maps = jax.vmap(functools.partial(_draw, slot=i))(maps, layer, origin)
    image, instance = maps
    # The semantic id is the top-most slot's; index -1 (none) reads id 0.
    semantic = jnp.asarray(np.append(sem_ids, 0), jnp.int32)[instance]
    return jnp.clip(image, 0.0, 1.0), semantic, instance

  # Chunks of consecutive scenes: strided ones would cost a transpose of
  # the outputs (1.15x slower on Aerial2D at batch 1024), but a batch split
  # over devices that spans several chunks is gathered onto every device.
  steps = max(1, -(-b // _chunk_size(plan, pools)))
  image, semantic, instance = _loop(draw_chunk, (nodes, scene.node_mask),
                                    steps)
  is_drawn = np.zeros(n, bool)
  is_drawn[list(layers)] = True
  return Renders(image=image, semantic=semantic, instance=instance,
                 boxes=boxes, box_mask=scene.node_mask & is_drawn)


_render_jit = jax.jit(_render, static_argnums=(1, 3, 4))


def render_image(attrs: jax.Array, node_mask: jax.Array, grammar: Grammar,
                 pools: Mapping[str, TexturePool], canvas: Canvas) -> jax.Array:
  """Only the image layer, as a function of the attributes."""
  return render(SceneGraph(attrs, node_mask), grammar, pools, canvas).image


@dataclasses.dataclass(frozen=True)
class Raster2D:
  """The jitted 2D rasterizer as a ``registry.Renderer`` (autodiff works)."""
  canvas: Canvas
  semantic_names: tuple[str, ...]
  differentiable: bool = True

  def render(self, scene: SceneGraph, grammar: Grammar,
             pools: Mapping[str, TexturePool]) -> Renders:
    return render(scene, grammar, pools, self.canvas, self.semantic_names)

  def render_image(self, attrs: jax.Array, node_mask: jax.Array,
                   grammar: Grammar,
                   pools: Mapping[str, TexturePool]) -> jax.Array:
    return render_image(attrs, node_mask, grammar, pools, self.canvas)


registry.register("raster2d", Raster2D)
