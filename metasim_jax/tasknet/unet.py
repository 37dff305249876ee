"""A small U-Net for semantic segmentation (the paper's Aerial2D network)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def _up(x: jax.Array) -> jax.Array:
  b, h, w, c = x.shape
  return jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest")


class UNet(nn.Module):
  """Seven 3x3/1x1 convolutions, 16-64 filters, two pooling levels.

  enc: conv f0 (H) -> pool -> conv f1 (H/2) -> pool -> conv f2 (H/4)
  dec: up -> concat enc(H/2) -> conv f1 -> up -> concat enc(H) -> conv f0
       -> conv f0 -> 1x1 conv to ``num_classes`` logits per pixel.
  Input height and width must be divisible by 4.  Returns [B, H, W, K].

  ``smooth=True``: SiLU for ReLU and average for max pooling, as
  ``SmallCNN``'s, so that V's loss after a training is a smooth function of
  the training images (the ``unrolled`` estimator differentiates it).
  """
  num_classes: int = 6
  features: tuple[int, int, int] = (16, 32, 64)
  smooth: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # no dropout or batch statistics
    if x.shape[1] % 4 or x.shape[2] % 4:
      raise ValueError(f"UNet needs H and W divisible by 4, got {x.shape}")
    f0, f1, f2 = self.features
    act = nn.silu if self.smooth else nn.relu
    pool = nn.avg_pool if self.smooth else nn.max_pool
    conv = lambda f, y: act(nn.Conv(f, (3, 3))(y))
    e0 = conv(f0, x)
    e1 = conv(f1, pool(e0, (2, 2), (2, 2)))
    e2 = conv(f2, pool(e1, (2, 2), (2, 2)))
    d1 = conv(f1, jnp.concatenate([_up(e2), e1], -1))
    d0 = conv(f0, jnp.concatenate([_up(d1), e0], -1))
    d0 = conv(f0, d0)
    return nn.Conv(self.num_classes, (1, 1))(d0)
