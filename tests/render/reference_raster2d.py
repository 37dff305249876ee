"""The full-canvas 2D rasterizer, frozen as the reference for the windowed one.

A verbatim copy of the rendering functions of
``metasim_jax/render/raster2d.py`` before it sampled each node inside a
static-size window (every texture node samples every canvas pixel here).
``tests/render/test_raster_windows.py`` checks that the windowed renderer
gives the same layers and gradients; ``benchmarks/render_throughput.py``
times both.  Not registered as a renderer; do not use it in the pipeline.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from metasim_jax.grammar.spec import GEOMETRY_DEFAULTS, Grammar
from metasim_jax.render import labels
from metasim_jax.render.registry import Canvas
from metasim_jax.types import Renders, SceneGraph, TexturePool


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


def _pixel_centres(canvas: Canvas) -> jax.Array:
  ys, xs = np.meshgrid(np.arange(canvas.height) + 0.5,
                       np.arange(canvas.width) + 0.5, indexing="ij")
  return jnp.asarray(np.stack([xs, ys], -1), jnp.float32)  # [H, W, 2]


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


def _texture_layers(m, t, tex_ids, pool: TexturePool, canvas: Canvas):
  """Renders texture slots. m [B,S,2,2], t [B,S,2], ids [B,S] -> [B,S,H,W,C+1]."""
  h, w = pool.size
  centre = jnp.array([w / 2.0, h / 2.0], jnp.float32)
  pix = _pixel_centres(canvas)

  def one(m1, t1, tid):
    # Texel coordinates of every pixel centre: M^-1 (p - t) + centre.
    inv = _inverse_2x2(m1)
    d = pix - t1
    uv = (inv[None, None, :, 0] * d[..., :1] + inv[None, None, :, 1]
          * d[..., 1:]) + centre
    return bilinear(pool.images, tid, uv[..., 0], uv[..., 1])

  return jax.vmap(jax.vmap(one))(m, t, tex_ids)


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
  ``grammar`` itself, ``labels.semantic_names``).
  """
  b, n = scene.node_mask.shape
  hh, ww, ch = canvas.height, canvas.width, canvas.channels
  m, t = world_transforms(scene.attrs, grammar)
  layers: dict[int, jax.Array] = {}  # slot -> [B, H, W, C + 1]
  boxes = jnp.zeros((b, n, 4), jnp.float32)
  for name, cls in grammar.classes.items():  # static loop over node classes
    slots = grammar.slots_of(name)
    if cls.render == "fill":
      colour = np.resize(np.asarray(cls.color, np.float32), ch)
      fill = jnp.asarray(np.concatenate([colour, [1.0]]), jnp.float32)
      for i in slots:
        layers[int(i)] = jnp.broadcast_to(fill, (b, hh, ww, ch + 1))
      boxes = boxes.at[:, slots].set(jnp.array([0.0, 0.0, ww, hh]))
    elif cls.render == "texture":
      if cls.pool not in pools:
        raise KeyError(f"class {name!r} draws from texture pool "
                       f"{cls.pool!r}, which was not given; pools: "
                       f"{sorted(pools)}")
      pool = pools[cls.pool]
      if pool.images.shape[-1] != ch + 1:
        raise ValueError(f"pool {cls.pool!r} has {pool.images.shape[-1]} "
                         f"channels; canvas needs {ch} + alpha")
      ids = scene.attrs[:, slots, grammar.col("texture")].astype(jnp.int32)
      drawn = _texture_layers(m[:, slots], t[:, slots], ids, pool, canvas)
      for k, i in enumerate(slots):
        layers[int(i)] = drawn[:, k]
      boxes = boxes.at[:, slots].set(
          _texture_boxes(m[:, slots], t[:, slots], ids, pool))
  is_drawn = np.zeros(n, bool)
  is_drawn[list(layers)] = True
  live = scene.node_mask & is_drawn
  if semantic_names is None:
    semantic_names = labels.semantic_names(grammar)
  sem_ids = labels.slot_semantic_ids(grammar, semantic_names)
  # Front to back over the drawn slots (static, usually a handful):
  # image = sum_i c_i prod_{j above i} (1 - alpha_j), premultiplied colour.
  image = jnp.zeros((b, hh, ww, ch), jnp.float32)
  through = jnp.ones((b, hh, ww), jnp.float32)
  instance = jnp.full((b, hh, ww), -1, jnp.int32)
  semantic = jnp.zeros((b, hh, ww), jnp.int32)
  for i in sorted(layers, reverse=True):
    on = scene.node_mask[:, i, None, None]
    layer = layers[i] * on[..., None]
    alpha = layer[..., ch]
    image = image + layer[..., :ch] * through[..., None]
    through = through * (1.0 - alpha)
    newly = (instance < 0) & (alpha > 0.5)
    semantic = jnp.where(newly, sem_ids[i], semantic)
    instance = jnp.where(newly, i, instance)
  return Renders(image=jnp.clip(image, 0.0, 1.0), semantic=semantic,
                 instance=instance, boxes=boxes, box_mask=live)


def render_image(attrs: jax.Array, node_mask: jax.Array, grammar: Grammar,
                 pools: Mapping[str, TexturePool], canvas: Canvas) -> jax.Array:
  """Only the image layer, as a function of the attributes."""
  return render(SceneGraph(attrs, node_mask), grammar, pools, canvas).image
