"""Car detection (the driving experiment, the paper's Table 3): targets,
CenterNet loss, box decoding, KITTI-style AP and the ``detection`` task.

Targets.  One fixed-shape float32 array per image, [K, 7] rows
``(x0, y0, x1, y1, valid, truncation, occlusion)``: a box in input pixels,
a kind code ``valid``, and the fractions of the object outside the image and
hidden by others (0..1).  ``valid`` is

  * ``CAR`` = 1: a car (trained on, a ground truth of the AP);
  * ``PADDING`` = 0: an empty row (all fields 0);
  * ``DONTCARE`` = -1: a KITTI DontCare region (no loss on heatmap cells
    inside it; detections inside it are not false positives);
  * ``IGNORED`` = 2: an object that is neither a car nor a miss, e.g.
    KITTI's "Van" (the devkit's neighbour class) or a car of unknown
    occlusion (KITTI level 3): no heatmap loss inside it, and the AP ignores
    it (it may absorb one detection).

Generated scenes give K = the number of grammar slots whose class has
``"object": true`` (``targets``); a labelled real set (``LabeledSet.labels``)
uses the same layout with its own K' (``pack_labels`` builds it).

Network output ([B, H/4, W/4, 5], ``detector.CenterNet``): heatmap logit,
log(w / 4), log(h / 4), centre offset (dx, dy) in cells.

Metrics (``evaluate``): AP|R40 of ``detection_ap`` for IoU 0.5 and 0.7 and
the three KITTI difficulties, as **fractions** 0..1 like the other tasks'
headlines (the report prints them x100 as percent): ``ap50_easy``,
``ap50_moderate`` (the headline), ``ap50_hard``, ``ap70_*``, and ``loss``.
Ground-truth occlusion levels come from ``detection_ap.occlusion_level``.
Mind ``detection_ap``'s docstring: with fewer than ~40 valid ground truths
in a difficulty even perfect detections score below 1.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from metasim_jax.grammar.spec import Grammar
from metasim_jax.tasknet import detection_ap
from metasim_jax.tasknet.detector import STRIDE
from metasim_jax.types import LabeledSet, Renders, SceneGraph

# Target rows.
FIELDS = ("x0", "y0", "x1", "y1", "valid", "truncation", "occlusion")
VALID, TRUNCATION, OCCLUSION = 4, 5, 6
CAR, PADDING, DONTCARE, IGNORED = 1.0, 0.0, -1.0, 2.0

# Settings (module constants; candidates for config keys).
TOP_K = 32            # detections kept per image
EVAL_BATCH = 32       # images per forward pass in ``evaluate``
IOU_THRESHOLDS = (0.5, 0.7)
MIN_OVERLAP = 0.7     # CenterNet's Gaussian radius: IoU kept by a shift
SIZE_WEIGHT = 1.0     # L1 on log sizes
OFFSET_WEIGHT = 1.0   # L1 on centre offsets (cells)
LOG_SIZE_RANGE = (-3.0, 7.0)  # decoded log(w / STRIDE) is clipped to this
HEAT_LOGIT_MAX = 20.0  # |logit| of ``perfect_output``'s heatmap
# KITTI occlusion level -> a fraction that ``detection_ap.occlusion_level``
# maps back to the same level (``pack_labels``).
LEVEL_FRACTION = (0.0, 0.3, 0.75)
METRICS = tuple(f"ap{round(100 * t)}_{d}" for t in IOU_THRESHOLDS
                for d in detection_ap.DIFFICULTIES)


# ---------------------------------------------------------------- targets
def pack_targets(boxes: jax.Array, valid: jax.Array,
                 truncation: jax.Array | None = None,
                 occlusion: jax.Array | None = None) -> jax.Array:
  """[..., K, 7] target rows from boxes [..., K, 4] (x0, y0, x1, y1 px),
  valid [..., K] (bool, or the kind codes above) and optional truncation /
  occlusion fractions [..., K] (0 where None); rows with valid = 0 are
  all zeros."""
  v = jnp.asarray(valid).astype(jnp.float32)
  zeros = jnp.zeros_like(v)
  t = zeros if truncation is None else jnp.asarray(truncation, jnp.float32)
  o = zeros if occlusion is None else jnp.asarray(occlusion, jnp.float32)
  rows = jnp.concatenate([jnp.asarray(boxes, jnp.float32), v[..., None],
                          t[..., None], o[..., None]], -1)
  return jnp.where((v != 0)[..., None], rows, 0.0)


def targets_from_renders(renders: Renders,
                         object_slots: Sequence[int]) -> jax.Array:
  """[B, K, 7] targets of the object slots (K = len(object_slots)) of a
  rendered batch: cars where ``box_mask``, padding elsewhere."""
  idx = np.asarray(object_slots, np.int32)
  pick = lambda a: None if a is None else a[:, idx]
  return pack_targets(renders.boxes[:, idx], renders.box_mask[:, idx],
                      pick(renders.truncation), pick(renders.occlusion))


def pack_labels(images: Sequence[Mapping[str, Any]],
                capacity: int | None = None) -> np.ndarray:
  """Host-side (NumPy) [M, K', 7] labels of a real set, one dict per image:

  ``boxes`` [n, 4] px, ``kind`` [n] (KITTI class names or
  ``detection_ap`` kind ints: Car -> CAR, Van -> IGNORED, DontCare ->
  DONTCARE, other classes dropped), ``truncation`` [n] in [0, 1] and either
  ``occlusion`` [n] fractions or ``occlusion_level`` [n] KITTI levels 0..3
  (stored as ``LEVEL_FRACTION``; a level-3 car becomes IGNORED). K' is
  ``capacity`` (an error if an image has more rows) or the largest count.
  """
  rows = []
  for i, im in enumerate(images):
    boxes = np.asarray(im["boxes"], np.float32).reshape(-1, 4)
    n = len(boxes)
    kind = detection_ap.kind_codes(im["kind"], n, f"images[{i}]['kind']")
    trunc = np.clip(np.asarray(im["truncation"], np.float32).reshape(n), 0, 1)
    if "occlusion_level" in im:
      level = np.asarray(im["occlusion_level"], np.int64).reshape(n)
      occ = np.asarray(LEVEL_FRACTION + (1.0,), np.float32)[
          np.clip(level, 0, 3)]
    else:
      level = np.zeros(n, np.int64)
      occ = np.clip(np.asarray(im["occlusion"], np.float32).reshape(n), 0, 1)
    valid = np.select(
        [(kind == detection_ap.CAR) & (level < 3),
         (kind == detection_ap.CAR) | (kind == detection_ap.NEIGHBOUR),
         kind == detection_ap.DONTCARE], [CAR, IGNORED, DONTCARE], PADDING)
    r = np.concatenate([boxes, valid[:, None], trunc[:, None], occ[:, None]],
                       1).astype(np.float32)
    r[valid == DONTCARE, TRUNCATION:] = 0.0
    rows.append(r[valid != PADDING])
  k = max([len(r) for r in rows], default=0)
  if capacity is not None:
    if k > capacity:
      raise ValueError(f"an image has {k} labelled rows, more than "
                       f"capacity={capacity}")
    k = capacity
  out = np.zeros((len(rows), k, len(FIELDS)), np.float32)
  for i, r in enumerate(rows):
    out[i, :len(r)] = r
  return out


# --------------------------------------------------------------- encoding
def gaussian_radius(h: jax.Array, w: jax.Array,
                    min_overlap: float = MIN_OVERLAP) -> jax.Array:
  """CenterNet's heatmap radius (cells) for boxes h x w (cells): the
  smallest of three corner-shift cases keeping IoU >= ``min_overlap``
  (the formula as used in CenterNet's ``gaussian_radius``)."""
  def root(a, b, c):
    return (b + jnp.sqrt(jnp.maximum(b * b - 4 * a * c, 0.0))) / 2
  r1 = root(1.0, h + w, w * h * (1 - min_overlap) / (1 + min_overlap))
  r2 = root(4.0, 2 * (h + w), (1 - min_overlap) * w * h)
  r3 = root(4 * min_overlap, -2 * min_overlap * (h + w),
            (min_overlap - 1) * w * h)
  return jnp.minimum(jnp.minimum(r1, r2), r3)


def encode(targets: jax.Array,
           grid_hw: tuple[int, int]) -> dict[str, jax.Array]:
  """Training targets on the output grid (Ho, Wo) = (H/4, W/4).

  Boxes are clipped to the image (Ho * 4 x Wo * 4 px); a car clipped to
  nothing is dropped.  Returns:
    heat: [B, Ho, Wo] max over cars of a Gaussian at the centre cell
      (sigma = (2r + 1) / 6, cut at radius r = ``gaussian_radius``), 1 at
      centres;
    pos: [B, Ho, Wo] bool, a car's centre cell;
    ignore: [B, Ho, Wo] bool, a non-centre cell whose centre lies in a
      DONTCARE or IGNORED box (no heatmap loss);
    car: [B, K] bool, rows trained on;
    index: [B, K] int32 flat centre cell (iy * Wo + ix);
    log_size: [B, K, 2] log(w / 4), log(h / 4);
    offset: [B, K, 2] centre / 4 minus its cell, in [0, 1).
  """
  ho, wo = grid_hw
  s = float(STRIDE)
  box = jnp.stack([jnp.clip(targets[..., 0], 0, wo * s),
                   jnp.clip(targets[..., 1], 0, ho * s),
                   jnp.clip(targets[..., 2], 0, wo * s),
                   jnp.clip(targets[..., 3], 0, ho * s)], -1)
  valid = targets[..., VALID]
  w, h = box[..., 2] - box[..., 0], box[..., 3] - box[..., 1]
  car = (valid == CAR) & (w > 0) & (h > 0)
  cx = (box[..., 0] + box[..., 2]) / (2 * s)
  cy = (box[..., 1] + box[..., 3]) / (2 * s)
  ix = jnp.clip(jnp.floor(cx), 0, wo - 1).astype(jnp.int32)
  iy = jnp.clip(jnp.floor(cy), 0, ho - 1).astype(jnp.int32)
  r = jnp.floor(jnp.maximum(gaussian_radius(h / s, w / s), 0.0))
  sigma = (2 * r + 1) / 6
  dx = jnp.arange(wo)[None, None, :] - ix[..., None]  # [B, K, Wo]
  dy = jnp.arange(ho)[None, None, :] - iy[..., None]  # [B, K, Ho]
  g1 = lambda d: jnp.where(jnp.abs(d) <= r[..., None],
                           jnp.exp(-d * d / (2 * sigma[..., None] ** 2)), 0.0)
  g = g1(dy)[..., :, None] * g1(dx)[..., None, :]  # [B, K, Ho, Wo]
  heat = jnp.max(jnp.where(car[..., None, None], g, 0.0), axis=1,
                 initial=0.0)
  at_centre = (dy == 0)[..., :, None] & (dx == 0)[..., None, :]
  pos = jnp.any(car[..., None, None] & at_centre, axis=1)
  heat = jnp.where(pos, 1.0, heat)
  px = (jnp.arange(wo) + 0.5) * s  # cell centres in pixels
  py = (jnp.arange(ho) + 0.5) * s
  inside_x = (px >= box[..., 0:1]) & (px < box[..., 2:3])  # [B, K, Wo]
  inside_y = (py >= box[..., 1:2]) & (py < box[..., 3:4])  # [B, K, Ho]
  skip = (valid == DONTCARE) | (valid == IGNORED)
  ignore = jnp.any(skip[..., None, None] & inside_y[..., :, None]
                   & inside_x[..., None, :], axis=1) & ~pos
  log_size = jnp.log(jnp.maximum(jnp.stack([w, h], -1), 1.0) / s)
  offset = jnp.stack([cx - ix, cy - iy], -1)
  return {"heat": heat, "pos": pos, "ignore": ignore, "car": car,
          "index": iy * wo + ix, "log_size": log_size, "offset": offset}


def perfect_output(targets: jax.Array,
                   grid_hw: tuple[int, int]) -> jax.Array:
  """[B, Ho, Wo, 5] the output a perfect detector would give: heatmap
  logits of ``encode``'s heat (+-``HEAT_LOGIT_MAX``), exact log sizes and
  offsets at the car centres (0 elsewhere).  Decodes to the cars' boxes
  (clipped to the image) with scores sigmoid(20) ~ 1."""
  ho, wo = grid_hw
  e = encode(targets, grid_hw)
  p = jnp.clip(e["heat"], 1e-12, 1.0)
  logit = jnp.clip(jnp.log(p) - jnp.log1p(-jnp.minimum(p, 1 - 1e-7)),
                   -HEAT_LOGIT_MAX, HEAT_LOGIT_MAX)
  logit = jnp.where(e["pos"], HEAT_LOGIT_MAX, logit)
  b, k = e["car"].shape
  reg = jnp.concatenate([e["log_size"], e["offset"]], -1)  # [B, K, 4]
  index = jnp.where(e["car"], e["index"], ho * wo)  # out of range: dropped
  flat = jnp.zeros((b, ho * wo, 4)).at[
      jnp.arange(b)[:, None], index].set(reg, mode="drop")
  return jnp.concatenate([logit[..., None], flat.reshape(b, ho, wo, 4)], -1)


# ------------------------------------------------------------------- loss
def _check_logits(logits: jax.Array) -> None:
  if logits.ndim != 4 or logits.shape[-1] != 5:
    raise ValueError("detection needs logits [B, H/4, W/4, 5] (heatmap, "
                     f"log size x2, offset x2), got {logits.shape}")


def loss_terms(logits: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
  """Per-image sums [B] of the loss: ``focal`` (penalty-reduced focal
  loss over heatmap cells, CenterNet alpha=2, beta=4), ``num_pos`` (centre
  cells), ``size`` / ``offset`` (L1 at the car centres, summed over both
  coordinates) and ``num_obj`` (cars)."""
  _check_logits(logits)
  b, ho, wo, _ = logits.shape
  e = encode(targets, (ho, wo))
  z = logits[..., 0].astype(jnp.float32)
  p = jax.nn.sigmoid(z)
  pos_term = (1 - p) ** 2 * jax.nn.log_sigmoid(z)
  neg_term = (1 - e["heat"]) ** 4 * p ** 2 * jax.nn.log_sigmoid(-z)
  neg_w = (~e["pos"] & ~e["ignore"]).astype(jnp.float32)
  focal = -jnp.sum(jnp.where(e["pos"], pos_term, 0.0) + neg_w * neg_term,
                   axis=(1, 2))
  reg = jnp.take_along_axis(logits[..., 1:].reshape(b, ho * wo, 4),
                            e["index"][..., None], axis=1)  # [B, K, 4]
  car = e["car"].astype(jnp.float32)
  l1 = lambda a, t: jnp.sum(car * jnp.abs(a - t).sum(-1), -1)
  return {"focal": focal,
          "num_pos": e["pos"].sum((1, 2)).astype(jnp.float32),
          "size": l1(reg[..., :2], e["log_size"]),
          "offset": l1(reg[..., 2:], e["offset"]),
          "num_obj": car.sum(-1)}


def combine(terms: Mapping[str, jax.Array]) -> jax.Array:
  """The scalar loss from (summed) ``loss_terms``: focal / centres +
  weighted mean L1 per coordinate."""
  n_coord = jnp.maximum(2 * jnp.sum(terms["num_obj"]), 1.0)
  num_pos = jnp.maximum(jnp.sum(terms["num_pos"]), 1.0)
  return (jnp.sum(terms["focal"]) / num_pos
          + SIZE_WEIGHT * jnp.sum(terms["size"]) / n_coord
          + OFFSET_WEIGHT * jnp.sum(terms["offset"]) / n_coord)


def detection_loss(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """CenterNet loss of outputs [B, H/4, W/4, 5] against targets [B, K, 7]
  (scalar, jittable, static shapes)."""
  return combine(loss_terms(logits, targets))


def detection_maps(logits: jax.Array) -> jax.Array:
  """[B, H/4, W/4, 3]: the centre probability p, p times the log box
  height and p times the log aspect ratio log(w / h).  Pooled over an area
  they say how many objects are there, how large (a car's height: its
  distance) and of what shape (a car's aspect: its heading; seen from
  behind about 1.2, from the side 2-3), size and shape in channels of
  their own.  Smooth in the image, unlike decoded boxes."""
  _check_logits(logits)
  z = logits.astype(jnp.float32)
  p = jax.nn.sigmoid(z[..., :1])
  log_w, log_h = z[..., 1:2], z[..., 2:3]
  return jnp.concatenate([p, p * log_h, p * (log_w - log_h)], -1)


# --------------------------------------------------------------- decoding
def decode(logits: jax.Array, top_k: int = TOP_K
           ) -> tuple[jax.Array, jax.Array]:
  """Boxes [B, k, 4] (x0, y0, x1, y1 px, clipped to the image) and scores
  [B, k] (centre probability, descending) of the ``top_k`` heatmap peaks
  (cells equal to their 3x3 max); k = min(top_k, Ho * Wo)."""
  _check_logits(logits)
  b, ho, wo, _ = logits.shape
  s = float(STRIDE)
  heat = jax.nn.sigmoid(logits[..., 0].astype(jnp.float32))
  hmax = jax.lax.reduce_window(heat, -jnp.inf, jax.lax.max, (1, 3, 3),
                               (1, 1, 1), "SAME")
  peaks = jnp.where(heat == hmax, heat, 0.0).reshape(b, ho * wo)
  scores, index = jax.lax.top_k(peaks, min(top_k, ho * wo))
  reg = jnp.take_along_axis(logits[..., 1:].reshape(b, ho * wo, 4),
                            index[..., None], axis=1).astype(jnp.float32)
  cx = (index % wo + reg[..., 2]) * s
  cy = (index // wo + reg[..., 3]) * s
  size = s * jnp.exp(jnp.clip(reg[..., :2], *LOG_SIZE_RANGE))
  half_w, half_h = size[..., 0] / 2, size[..., 1] / 2
  boxes = jnp.stack([jnp.clip(cx - half_w, 0, wo * s),
                     jnp.clip(cy - half_h, 0, ho * s),
                     jnp.clip(cx + half_w, 0, wo * s),
                     jnp.clip(cy + half_h, 0, ho * s)], -1)
  return boxes, scores


# ---------------------------------------------------------------- scoring
def _ground_truth(rows: np.ndarray) -> dict[str, np.ndarray]:
  """One image's ``detection_ap`` ground truth from its [K, 7] rows."""
  rows = rows[rows[:, VALID] != PADDING]
  v = rows[:, VALID]
  kind = np.select([v == CAR, v == DONTCARE], [detection_ap.CAR,
                                                detection_ap.DONTCARE],
                   detection_ap.NEIGHBOUR)
  boxes = np.stack([np.minimum(rows[:, 0], rows[:, 2]),
                    np.minimum(rows[:, 1], rows[:, 3]),
                    np.maximum(rows[:, 0], rows[:, 2]),
                    np.maximum(rows[:, 1], rows[:, 3])], 1).reshape(-1, 4)
  return {"boxes": boxes, "kind": kind,
          "truncation": np.clip(rows[:, TRUNCATION], 0, 1),
          "occlusion": detection_ap.occlusion_level(
              np.clip(rows[:, OCCLUSION], 0, 1)).reshape(-1)}


def average_precision(boxes: np.ndarray, scores: np.ndarray,
                      labels: np.ndarray,
                      min_height=detection_ap.MIN_HEIGHT) -> np.ndarray:
  """Host side: float32 [len(METRICS)] AP|R40 fractions of detections
  (boxes [M, k, 4], scores [M, k]) against labels [M, K', 7]; NaN (and a
  logged warning) if they cannot be scored, e.g. non-finite detections."""
  boxes, scores, labels = (np.asarray(a, np.float64)
                           for a in (boxes, scores, labels))
  try:
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
      raise ValueError("non-finite detections")
    gt = [_ground_truth(r) for r in labels]
    det = [{"boxes": b, "scores": s} for b, s in zip(boxes, scores)]
    out = []
    for t in IOU_THRESHOLDS:
      res = detection_ap.evaluate(gt, det, t, min_height)
      out += [res[d]["ap40"] / 100.0 for d in detection_ap.DIFFICULTIES]
    return np.asarray(out, np.float32)
  except ValueError as e:
    logging.warning("detection AP not computed: %s", e)
    return np.full(len(METRICS), np.nan, np.float32)


@functools.partial(jax.jit, static_argnames=("model", "top_k", "batch",
                                             "min_height"))
def evaluate(params, model: nn.Module, images: jax.Array, labels: jax.Array,
             top_k: int = TOP_K, batch: int = EVAL_BATCH,
             min_height: tuple[float, ...] = detection_ap.MIN_HEIGHT
             ) -> dict[str, jax.Array]:
  """``METRICS`` (AP fractions) and the mean ``loss`` of ``model`` over a
  labelled set: images [M, H, W, C], labels [M, K', 7].

  Runs the model over batches of ``batch`` images (the last padded with
  zeros and masked out), decodes ``top_k`` detections per image, and
  scores them on the host (``average_precision``, difficulties with
  ``min_height``) through one ``jax.pure_callback``, so this also runs
  inside ``jax.jit``.
  """
  m = images.shape[0]
  chunk = min(batch, m)
  pad = (-m) % chunk
  x = jnp.concatenate([images, jnp.zeros((pad,) + images.shape[1:],
                                         images.dtype)])
  y = jnp.concatenate([labels.astype(jnp.float32),
                       jnp.zeros((pad,) + labels.shape[1:], jnp.float32)])
  keep = (jnp.arange(m + pad) < m).astype(jnp.float32)
  chunks = lambda a: a.reshape((-1, chunk) + a.shape[1:])

  def step(sums, xs):
    xb, yb, kb = xs
    logits = model.apply({"params": params}, xb, train=False)
    terms = loss_terms(logits, yb)
    sums = {k: sums[k] + jnp.sum(kb * v) for k, v in terms.items()}
    return sums, decode(logits, top_k)

  zero = {k: jnp.zeros(()) for k in ("focal", "num_pos", "size", "offset",
                                     "num_obj")}
  sums, (boxes, scores) = jax.lax.scan(step, zero,
                                       (chunks(x), chunks(y), chunks(keep)))
  boxes = boxes.reshape((-1,) + boxes.shape[2:])[:m]
  scores = scores.reshape((-1,) + scores.shape[2:])[:m]
  ap = jax.pure_callback(
      functools.partial(average_precision, min_height=min_height),
      jax.ShapeDtypeStruct((len(METRICS),), jnp.float32),
      boxes, scores, labels.astype(jnp.float32), vmap_method="sequential")
  out = {name: ap[i] for i, name in enumerate(METRICS)}
  out["loss"] = combine(sums)
  return out


# ---------------------------------------------------------------- drawing
def draw_boxes(images: np.ndarray, boxes: np.ndarray,
               color: Sequence[float] = (0.0, 1.0, 0.0),
               mask: np.ndarray | None = None) -> np.ndarray:
  """Images [n, H, W, C] (C = 1 or 3, in [0, 1]) with one-pixel box
  outlines drawn in ``color``: boxes [n, k, 4] px, drawn where ``mask``
  [n, k] (default: all).  Returns float32 [n, H, W, 3]."""
  out = np.array(images, np.float32)
  if out.ndim != 4 or out.shape[-1] not in (1, 3):
    raise ValueError(f"images must be [n, H, W, 1 or 3], got {out.shape}")
  if out.shape[-1] == 1:
    out = np.repeat(out, 3, -1)
  boxes = np.asarray(boxes, np.float64)
  if (boxes.ndim != 3 or boxes.shape[0] != out.shape[0]
      or boxes.shape[-1] != 4):
    raise ValueError(f"boxes must be [{out.shape[0]}, k, 4], got "
                     f"{boxes.shape}")
  mask = (np.ones(boxes.shape[:2], bool) if mask is None
          else np.asarray(mask, bool))
  h, w = out.shape[1:3]
  c = np.asarray(color, np.float32)
  for i, j in zip(*np.nonzero(mask)):
    x0, y0, x1, y1 = boxes[i, j]
    if not np.isfinite(boxes[i, j]).all():
      continue
    x0, x1 = (int(np.clip(np.round(v), 0, w - 1)) for v in sorted((x0, x1)))
    y0, y1 = (int(np.clip(np.round(v), 0, h - 1)) for v in sorted((y0, y1)))
    out[i, y0:y1 + 1, [x0, x1]] = c
    out[i, [y0, y1], x0:x1 + 1] = c
  return out


def draw_targets(images: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """[n, H, W, 3] images with target rows [n, K, 7] drawn: cars green,
  DontCare and ignored regions grey."""
  t = np.asarray(targets)
  v = t[..., VALID]
  out = draw_boxes(images, t[..., :4], (0.6, 0.6, 0.6),
                   (v == DONTCARE) | (v == IGNORED))
  return draw_boxes(out, t[..., :4], (0.0, 1.0, 0.0), v == CAR)


# ------------------------------------------------------------------- task
@dataclasses.dataclass(frozen=True)
class Detection:
  """Car detection: boxes of the grammar's object slots ``object_slots``
  (``"object": true`` classes); ``ap50_moderate`` is the headline.
  ``min_height``: the difficulties' minimum box heights (px)."""
  object_slots: tuple[int, ...]
  min_height: tuple[float, ...] = detection_ap.MIN_HEIGHT
  top_k: int = TOP_K
  headline: str = "ap50_moderate"
  num_outputs: int = 1  # heatmap classes (cars)
  scene_label: None = None

  def targets(self, scene: SceneGraph, renders: Renders) -> jax.Array:
    del scene
    return targets_from_renders(renders, self.object_slots)

  def loss(self, logits, targets):
    return detection_loss(logits, targets)

  def score(self, params, model, data: LabeledSet):
    return evaluate(params, model, data.images, data.labels, top_k=self.top_k,
                    min_height=self.min_height)

  def feature_maps(self, logits):
    return detection_maps(logits)

  def describe(self, metrics):
    def row(t):
      return "/".join(f"{100 * metrics[f'ap{t}_{d}']:.1f}"
                      for d in detection_ap.DIFFICULTIES)
    return (f"AP|R40 % (easy/moderate/hard): IoU 0.5 {row(50)}, "
            f"IoU 0.7 {row(70)}")

  def draw_predictions(self, params, model, images, labels,
                       min_score: float = 0.3) -> np.ndarray:
    """Images [n, H, W, 3] with the detections of ``model`` scoring at
    least ``min_score`` (red) over the ground truth (green; ignored
    regions grey), like the paper's Fig. 13."""
    logits = jax.jit(model.apply, static_argnames="train")(
        {"params": params}, jnp.asarray(images), train=False)
    boxes, scores = (np.asarray(a) for a in decode(logits, self.top_k))
    out = draw_targets(np.asarray(images), np.asarray(labels))
    return draw_boxes(out, boxes, (1.0, 0.1, 0.1), scores >= min_score)

  def grid_rows(self, prior, metasim, test):
    n = prior.image.shape[0]
    row = lambda r: draw_targets(np.asarray(r.image),
                                 np.asarray(self.targets(None, r)))
    return [("input (prior)", row(prior)),
            ("Meta-Sim", row(metasim)),
            ("target", draw_targets(np.asarray(test.images[:n]),
                                    np.asarray(test.labels[:n])))]


def detection_task(config, prior: Grammar,
                   semantic_names: Sequence[str]) -> Detection:
  """Detection of the slots of the prior's ``"object": true`` classes.

  The difficulties' minimum box heights are ``config.detection.min_height``
  (px) if set, else KITTI's scaled to the image height
  (``detection_ap.scaled_min_height``: 10.2 / 6.4 / 6.4 px at 96 px);
  KITTI's own without a config.
  """
  del semantic_names
  heights = ()
  if config is not None:
    heights = tuple(config.get("detection", {}).get("min_height", ()) or ())
    if not heights:
      heights = detection_ap.scaled_min_height(config.canvas["height"])
  heights = heights or detection_ap.MIN_HEIGHT
  if len(heights) != len(detection_ap.DIFFICULTIES) or min(heights) < 0:
    raise ValueError(f"config.detection.min_height must be 3 heights >= 0 "
                     f"(easy, moderate, hard), got {heights}")
  slots = tuple(i for i, s in enumerate(prior.slots)
                if prior.classes[s.cls].object)
  if not slots:
    raise ValueError("task 'detection' needs a grammar class with "
                     "\"object\": true (its nodes are the objects to "
                     f"detect); classes: {sorted(prior.classes)}")
  return Detection(object_slots=slots,
                   min_height=tuple(float(h) for h in heights))
