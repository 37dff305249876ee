"""One fixed-shape batch of generated scenes and everything to label them.

``make_batch_fn(pipe, batch, things, amodal)`` returns one jitted function
``(key, params, pools) -> LabeledBatch``: sample ``batch`` scenes from the
prior, transform them with the trained Distribution Transformer, render
them, and measure per slot what the exporters need (visible pixels and
their box; optionally each object's own footprint, rendered alone).  The
shape never changes, so a whole dataset compiles once.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from metasim_jax.pipeline import Pipeline


@struct.dataclass
class LabeledBatch:
  """Generated scenes with their labels (device or host arrays).

  Boxes are (x0, y0, x1, y1) in pixel-edge coordinates: a region covering
  columns 3..7 has x0 = 3, x1 = 8.  Slots with no pixels have an all-zero
  box.

  Attributes:
    image: [B, H, W, C] uint8.
    attrs: [B, N, A] float32 attributes of the rendered scene graphs.
    node_mask: [B, N] bool, the slot holds a node.
    label: [B] int32 class (tasks with one class per scene, i.e. a
      ``scene_label``; 0 otherwise).
    semantic: [B, H, W] uint8 semantic class id (0 = none).
    instance: [B, H, W] int32 slot index of the top-most node (-1 = none).
    visible_area: [B, N] int32 pixels where the slot is the top-most node.
    visible_box: [B, N, 4] float32 box of those pixels.
    full_box: [B, N, 4] float32 the renderer's box of the slot's texture
      content, unclipped (it may leave the image).
    own_area: [B, N] int32 pixels the slot covers when rendered alone
      (inside the image); -1 where not measured.
    own_box: [B, N, 4] float32 box of those pixels.
    truncation: [B, N] float32 fraction of each object outside the image,
      as a 3D renderer measures it (``Renders.truncation``), or None
      (2D: computed from ``full_box``).
  """
  image: jax.Array
  attrs: jax.Array
  node_mask: jax.Array
  label: jax.Array
  semantic: jax.Array
  instance: jax.Array
  visible_area: jax.Array
  visible_box: jax.Array
  full_box: jax.Array
  own_area: jax.Array
  own_box: jax.Array
  truncation: jax.Array | None = None


def region_boxes(hit: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Pixel count [...] and box [..., 4] of boolean maps [..., H, W]."""
  h, w = hit.shape[-2:]
  rows, cols = hit.any(-1), hit.any(-2)  # [..., H], [..., W]
  def span(line, n):
    idx = jnp.arange(n)
    lo = jnp.min(jnp.where(line, idx, n), -1)
    hi = jnp.max(jnp.where(line, idx + 1, 0), -1)
    return jnp.where(lo < hi, lo, 0), hi
  x0, x1 = span(cols, w)
  y0, y1 = span(rows, h)
  box = jnp.stack([x0, y0, x1, y1], -1).astype(jnp.float32)
  return hit.sum((-2, -1)).astype(jnp.int32), box


@functools.cache  # one compilation per (pipeline, shape, options)
def make_batch_fn(pipe: Pipeline, batch: int, things: tuple[int, ...] = (),
                  amodal: bool = False):
  """Jitted ``(key, params, pools) -> LabeledBatch`` of ``batch`` scenes.

  Args:
    pipe: the run's pipeline.
    batch: scenes per call (static).
    things: slot indices whose own footprint is measured (``amodal``), a
      tuple (the arguments are the cache key).
    amodal: render each slot of ``things`` alone for ``own_area`` /
      ``own_box`` (len(things) extra renders; KITTI's occlusion levels).
  """
  n = pipe.prior.num_slots
  things = tuple(int(i) for i in things)

  @jax.jit
  def generate(key, params, pools) -> LabeledBatch:
    scene = pipe.transform(params, pipe.sample(key, batch, pools,
                                               source="prior"))
    r = pipe.render(scene, pools)
    slot_ids = jnp.arange(n)[None, :, None, None]
    visible_area, visible_box = region_boxes(r.instance[:, None] == slot_ids)
    own_area = jnp.full((batch, n), -1, jnp.int32)
    own_box = jnp.zeros((batch, n, 4), jnp.float32)
    if amodal and things:
      def alone(i):
        only = scene.node_mask & (jnp.arange(n) == i)[None]
        inst = pipe.render(scene.replace(node_mask=only), pools).instance
        return region_boxes(inst == i)
      area, box = jax.lax.map(alone, jnp.asarray(things))  # [K, B], [K, B, 4]
      idx = np.asarray(things)
      own_area = own_area.at[:, idx].set(area.T)
      own_box = own_box.at[:, idx].set(jnp.moveaxis(box, 0, 1))
    label = (pipe.task.targets(scene, r) if pipe.task.scene_label
             else jnp.zeros((batch,), jnp.int32))
    return LabeledBatch(
        image=jnp.round(r.image * 255.0).astype(jnp.uint8),
        attrs=scene.attrs, node_mask=scene.node_mask, label=label,
        semantic=r.semantic.astype(jnp.uint8), instance=r.instance,
        visible_area=visible_area, visible_box=visible_box,
        full_box=r.boxes, own_area=own_area, own_box=own_box,
        truncation=r.truncation)

  return generate
