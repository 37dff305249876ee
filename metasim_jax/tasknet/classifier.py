"""The paper's MNIST task network: 2 conv + 3 fully connected layers."""

from __future__ import annotations

import flax.linen as nn
import jax


class SmallCNN(nn.Module):
  """conv(5x5) -> pool -> conv(5x5) -> pool -> fc 50 -> fc 100 -> fc classes.

  Unpadded convolutions with 10 and 20 filters (the classic MNIST network
  the paper's description matches); dropout follows the two hidden fully
  connected layers.

  ``smooth=True`` replaces ReLU by SiLU (x sigmoid(x)) and max- by average
  pooling:
  the network's output is then a smooth function of its input image and
  weights, which differentiating through its training needs (the
  ``unrolled`` estimator: with max-pool ties on exactly flat backgrounds,
  e.g. MNIST's zeros, the unrolled validation loss jumps).
  """
  num_classes: int = 10
  conv_features: tuple[int, int] = (10, 20)
  conv_strides: tuple[int, int] = (1, 1)  # (2, 1) keeps 64x64 cheap on CPUs
  dropout: float = 0.3
  smooth: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    act = nn.silu if self.smooth else nn.relu
    pool = nn.avg_pool if self.smooth else nn.max_pool
    for f, s in zip(self.conv_features, self.conv_strides):
      x = act(nn.Conv(f, (5, 5), strides=s, padding="VALID")(x))
      x = pool(x, (2, 2), (2, 2))
    x = x.reshape(x.shape[0], -1)
    for width in (50, 100):
      x = act(nn.Dense(width)(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes)(x)
