"""Procedural top-down textures for the Aerial2D world (nothing downloaded).

Every texture is premultiplied RGBA in [0, 1], drawn at one texel per
pixel of the experiment's canvas, with the object's forward axis along the
texture's rows (up = forward at yaw 0).  Generation is deterministic from a
seed: ``make_all(seed, counts)`` gives the same arrays for the same seed,
and different seeds give different textures (the grammar and the "real"
target draw from disjoint seeds, as MNIST's digits do).

Kinds and look:
  * ``car``   8 x 16: a rounded body in one of a dozen paints, shaded across
    its width, a tinted windscreen and rear window with a roof between, head
    and tail lights;
  * ``road``  20 x 160: asphalt with grain and patches, white edge lines,
    a dashed centre line (white or yellow);
  * ``grass`` 66 x 66: green to dry-yellow fields with low-frequency
    variation, mowing stripes on some;
  * ``tree``  16 x 16: a lumpy round canopy, lit from the top left, darker
    and more saturated than the grass, soft edge;
  * ``house`` 20 x 20: a gable roof (two shaded halves and a ridge) in tile,
    slate or metal colours, sometimes a chimney.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

SIZES = {"car": (16, 8), "road": (160, 20), "grass": (66, 66),
         "tree": (16, 16), "house": (20, 20)}  # (height, width) in texels
# The paper's texture counts: ~600 car, 40 tree, 20 house, 7 grass, 4 road.
PAPER_COUNTS = {"car": 600, "road": 4, "grass": 7, "tree": 40, "house": 20}

_PAINTS = np.array([
    [0.80, 0.10, 0.10], [0.10, 0.25, 0.70], [0.92, 0.92, 0.90],
    [0.08, 0.08, 0.09], [0.62, 0.64, 0.66], [0.95, 0.80, 0.10],
    [0.10, 0.45, 0.20], [0.35, 0.36, 0.38], [0.55, 0.10, 0.15],
    [0.20, 0.55, 0.80], [0.90, 0.45, 0.10], [0.45, 0.30, 0.20]], np.float32)
_ROOFS = np.array([
    [0.62, 0.25, 0.16], [0.50, 0.30, 0.22], [0.30, 0.31, 0.34],
    [0.42, 0.44, 0.50], [0.70, 0.62, 0.52], [0.55, 0.18, 0.12]], np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int,
                  sigma: float) -> np.ndarray:
  """Zero-mean, unit-std Gaussian-filtered white noise [h, w]."""
  z = rng.standard_normal((h, w))
  r = max(1, int(3 * sigma))
  k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
  k /= k.sum()
  blur = lambda v: np.convolve(np.pad(v, r, mode="wrap"), k, "valid")
  z = np.apply_along_axis(blur, 0, z)
  z = np.apply_along_axis(blur, 1, z)
  return (z - z.mean()) / (z.std() + 1e-8)


def _rgba(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
  """Premultiplied RGBA [h, w, 4] float32."""
  rgb = np.clip(rgb, 0.0, 1.0)
  alpha = np.clip(alpha, 0.0, 1.0)[..., None]
  return np.concatenate([rgb * alpha, alpha], -1).astype(np.float32)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
  """Texel-centre coordinates (x, y), origin at the texture centre."""
  ys, xs = np.meshgrid(np.arange(h) + 0.5 - h / 2, np.arange(w) + 0.5 - w / 2,
                       indexing="ij")
  return xs, ys


def car(rng: np.random.Generator) -> np.ndarray:
  h, w = SIZES["car"]
  xs, ys = _grid(h, w)
  half_w = rng.uniform(2.9, 3.6)
  half_l = rng.uniform(6.2, 7.4)
  corner = rng.uniform(1.2, 2.0)
  # Rounded rectangle: distance outside the inner rectangle minus radius.
  dx = np.maximum(np.abs(xs) - (half_w - corner), 0)
  dy = np.maximum(np.abs(ys) - (half_l - corner), 0)
  alpha = np.clip(corner + 0.5 - np.hypot(dx, dy), 0, 1)
  paint = _PAINTS[rng.integers(len(_PAINTS))] * rng.uniform(0.85, 1.1)
  paint = np.clip(paint + rng.normal(0, 0.03, 3), 0, 1)
  shade = 1.0 - 0.35 * (np.abs(xs) / half_w) ** 2  # rounded sides
  rgb = paint * shade[..., None]
  # Front is up (negative y): windscreen, roof, rear window.
  glass = np.array([0.12, 0.16, 0.22]) + rng.uniform(-0.04, 0.06)
  ws0 = -half_l + rng.uniform(2.0, 2.8)
  ws1 = ws0 + rng.uniform(1.6, 2.4)
  rw1 = half_l - rng.uniform(1.2, 1.8)
  rw0 = rw1 - rng.uniform(1.0, 1.6)
  inside = np.abs(xs) < half_w - 0.8
  rgb[inside & (ys > ws0) & (ys < ws1)] = glass
  rgb[inside & (ys > rw0) & (ys < rw1)] = glass * 1.2
  roof = inside & (ys >= ws1) & (ys <= rw0)
  rgb[roof] = np.clip(paint * rng.uniform(0.9, 1.15), 0, 1)
  lights = (np.abs(xs) > half_w - 1.6) & (np.abs(xs) < half_w - 0.3)
  rgb[lights & (ys < -half_l + 1.0)] = (1.0, 0.95, 0.7)
  rgb[lights & (ys > half_l - 1.0)] = (0.8, 0.05, 0.05)
  return _rgba(rgb, alpha)


def road(rng: np.random.Generator) -> np.ndarray:
  h, w = SIZES["road"]
  xs, ys = _grid(h, w)
  tone = rng.uniform(0.26, 0.42)
  grain = 0.03 * rng.standard_normal((h, w))
  patches = 0.04 * _smooth_noise(rng, h, w, 4.0)
  rgb = np.repeat((tone + grain + patches)[..., None], 3, -1)
  rgb *= np.array([1.0, 1.0, rng.uniform(1.0, 1.08)])
  edge = w / 2 - rng.uniform(1.5, 2.2)
  white = np.array([0.9, 0.9, 0.88])
  rgb[(np.abs(np.abs(xs) - edge) < 0.5)] = white
  dash, gap = rng.integers(5, 9), rng.integers(4, 8)
  centre = (np.abs(xs - 0.5) < 0.5) & (np.mod(ys + h / 2, dash + gap) < dash)
  rgb[centre] = white if rng.random() < 0.5 else (0.92, 0.75, 0.15)
  return _rgba(rgb, np.ones((h, w)))


def grass(rng: np.random.Generator) -> np.ndarray:
  h, w = SIZES["grass"]
  base = np.array([rng.uniform(0.18, 0.42), rng.uniform(0.42, 0.62),
                   rng.uniform(0.10, 0.22)])
  low = _smooth_noise(rng, h, w, 6.0)
  mid = _smooth_noise(rng, h, w, 1.5)
  rgb = base * (1 + 0.12 * low + 0.06 * mid)[..., None]
  rgb += 0.025 * rng.standard_normal((h, w, 3))
  if rng.random() < 0.4:  # mowing stripes
    period = rng.integers(6, 12)
    stripes = (np.arange(w) // (period // 2)) % 2
    rgb *= (1 + 0.06 * (stripes - 0.5))[None, :, None]
  return _rgba(rgb, np.ones((h, w)))


def tree(rng: np.random.Generator) -> np.ndarray:
  h, w = SIZES["tree"]
  xs, ys = _grid(h, w)
  radius = rng.uniform(5.0, 7.3)
  theta = np.arctan2(ys, xs)
  bumps = sum(rng.uniform(0.2, 0.6) * np.cos(k * theta + rng.uniform(0, 6.3))
              for k in (3, 5, 7))
  r = np.hypot(xs, ys)
  alpha = np.clip(radius + bumps - r + 0.5, 0, 1)
  leaf = np.array([rng.uniform(0.05, 0.18), rng.uniform(0.22, 0.38),
                   rng.uniform(0.04, 0.12)])
  light = 1.0 + 0.45 * np.clip(-(xs + ys) / (2 * radius), -1, 1)
  clumps = 1.0 + 0.18 * _smooth_noise(rng, h, w, 1.0)
  rgb = leaf * (light * clumps)[..., None]
  return _rgba(rgb, alpha)


def house(rng: np.random.Generator) -> np.ndarray:
  h, w = SIZES["house"]
  xs, ys = _grid(h, w)
  half_x, half_y = rng.uniform(5.0, 9.0), rng.uniform(5.0, 9.0)
  alpha = (np.clip(half_x + 0.5 - np.abs(xs), 0, 1)
           * np.clip(half_y + 0.5 - np.abs(ys), 0, 1))
  colour = _ROOFS[rng.integers(len(_ROOFS))] * rng.uniform(0.85, 1.1)
  along_x = rng.random() < 0.5  # ridge direction
  side = ys if along_x else xs
  rgb = colour * np.where(side < 0, 1.15, 0.8)[..., None]
  rgb[np.abs(side) < 0.6] = colour * 0.6  # ridge
  rows = np.mod(ys if not along_x else xs, 2.0) < 0.5  # tile courses
  rgb[rows] *= 0.92
  if rng.random() < 0.6:  # chimney
    cx = rng.uniform(-half_x + 2, half_x - 2)
    cy = rng.uniform(-half_y + 2, half_y - 2)
    chim = (np.abs(xs - cx) < 1.0) & (np.abs(ys - cy) < 1.0)
    rgb[chim] = (0.35, 0.3, 0.28)
  rgb = rgb + 0.02 * rng.standard_normal(rgb.shape)
  return _rgba(rgb, alpha)


MAKERS = {"car": car, "road": road, "grass": grass, "tree": tree,
          "house": house}


def make(kind: str, num: int, seed: int) -> np.ndarray:
  """``num`` textures of ``kind``: [num, h, w, 4], deterministic per seed."""
  if kind not in MAKERS:
    raise ValueError(f"unknown texture kind {kind!r}; valid: {sorted(MAKERS)}")
  if num < 1:
    raise ValueError(f"need at least one {kind} texture, got {num}")
  # One independent stream per kind, so counts of one kind never change
  # another kind's textures.
  rng = np.random.default_rng([seed, sorted(MAKERS).index(kind)])
  return np.stack([MAKERS[kind](rng) for _ in range(num)])


def make_all(seed: int, counts: Mapping[str, int] | None = None
             ) -> dict[str, np.ndarray]:
  counts = dict(PAPER_COUNTS if counts is None else counts)
  return {kind: make(kind, n, seed) for kind, n in counts.items()}
