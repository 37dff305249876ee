"""A small centre-heatmap detector ("Objects as Points", Zhou et al. 2019).

CenterNet represents each object by the peak of a class heatmap at its box
centre, and regresses the box size and the centre's sub-cell offset there.
This one is sized for a 2-core CPU at the driving experiment's 96 x 312
input: a strided 3x3 backbone down to stride 16, a light top-down path
(nearest upsampling + concatenation, as in a U-Net/FPN) back to stride
``STRIDE`` = 4, and three heads at stride 4.

``lite=True`` is the same backbone with two cheaper parts, as FPN (Lin et
al. 2017) and FCOS/RetinaNet build them: the top-down path *adds* the
upsampled coarser map (through a 1x1 lateral where the widths differ)
instead of concatenating it, and the three heads share one 3x3 trunk.
Most of the network's work is at stride 4, where both parts sit: a
training step of batch 16 at 96 x 312 takes ~0.67x the time
(``benchmarks/driving.py``).

Output channels (``detection.py`` encodes targets and decodes boxes):
  [..., :C]      heatmap logits, one per class (C = ``num_classes``, 1 for
                 cars); sigmoid gives the centre probability;
  [..., C:C+2]   log box size, log(w / STRIDE), log(h / STRIDE) (w, h in
                 input pixels);
  [..., C+2:C+4] centre offset inside the cell, (dx, dy) in cells, 0..1.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

STRIDE = 4  # input pixels per output cell
HEAT_PRIOR = 0.1  # initial centre probability (CenterNet's bias -2.19)
# He initialisation (variance 2 / fan_in) for the ReLU layers.
KERNEL_INIT = nn.initializers.variance_scaling(2.0, "fan_in", "uniform")
# Output layers start near 0 (CenterNet: std 0.001 on its regression
# heads), so the first steps see the prior heatmap and 4 x 4 px boxes.
OUTPUT_INIT = nn.initializers.variance_scaling(1e-4, "fan_in", "uniform")


def _resize(x: jax.Array, hw: tuple[int, int]) -> jax.Array:
  """Nearest-neighbour resize of [B, h, w, C] to [B, *hw, C] (the strided
  SAME convs round up, so stride 8 and 16 sizes need not halve exactly)."""
  return jax.image.resize(x, (x.shape[0],) + tuple(hw) + (x.shape[-1],),
                          "nearest")


class CenterNet(nn.Module):
  """Centre-heatmap detector, outputs at stride 4.

  backbone: conv f0 /2 -> conv f1 /4 -> conv f1 -> conv f2 /8 -> conv f2
            -> conv f3 /16 -> conv f3
  top-down: up(/16) ++ /8 -> conv f2 -> up ++ /4 -> conv head -> heads
  heads (each conv3x3 head -> relu -> 1x1): heatmap (``num_classes``),
  log size (2), offset (2).
  ``lite``: ++ (concatenation) becomes + (sum, after a 1x1 lateral to the
  finer map's width where they differ), and the heads' 3x3 conv is one,
  shared; their 1x1 outputs stay separate.

  Input [B, H, W, C] in [0, 1] with H and W divisible by 4; returns
  [B, H/4, W/4, num_classes + 4] (channel layout in the module docstring).
  """
  num_classes: int = 1
  features: tuple[int, int, int, int] = (16, 32, 64, 64)
  head: int = 32
  lite: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # no dropout or batch statistics
    if x.ndim != 4 or x.shape[1] % STRIDE or x.shape[2] % STRIDE:
      raise ValueError(f"CenterNet needs [B, H, W, C] input with H and W "
                       f"divisible by {STRIDE}, got {x.shape}")
    f0, f1, f2, f3 = self.features
    conv = lambda f, y, s=1: nn.relu(nn.Conv(
        f, (3, 3), strides=s, kernel_init=KERNEL_INIT)(y))
    out = lambda f, y, **kw: nn.Conv(f, (1, 1), kernel_init=OUTPUT_INIT,
                                     **kw)(y)
    y = conv(f0, 2.0 * x - 1.0, 2)
    c4 = conv(f1, conv(f1, y, 2))
    c8 = conv(f2, conv(f2, c4, 2))
    c16 = conv(f3, conv(f3, c8, 2))
    if self.lite:
      lateral = lambda y, f: y if y.shape[-1] == f else nn.Dense(f)(y)
      up = lambda y, like: _resize(lateral(y, like.shape[-1]),
                                   like.shape[1:3]) + like
      d8 = conv(f2, up(c16, c8))
      d4 = conv(self.head, up(d8, c4))
      shared = conv(self.head, d4)
      trunk = lambda: shared
    else:
      d8 = conv(f2, jnp.concatenate([_resize(c16, c8.shape[1:3]), c8], -1))
      d4 = conv(self.head, jnp.concatenate([_resize(d8, c4.shape[1:3]), c4],
                                           -1))
      trunk = lambda: conv(self.head, d4)  # one per head
    bias = math.log(HEAT_PRIOR / (1.0 - HEAT_PRIOR))
    heat = out(self.num_classes, trunk(),
               bias_init=nn.initializers.constant(bias))
    size = out(2, trunk())
    offset = out(2, trunk())
    return jnp.concatenate([heat, size, offset], -1)
