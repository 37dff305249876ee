"""FID InceptionV3 feature network in flax.linen (NHWC, inference only).

This is the network used by FID (TF graph `inception-2015-12-05`, as ported to
torchvision's InceptionV3 layout by pytorch-fid): the stem convolutions,
Mixed_5b..Mixed_7c with the FID-specific blocks (average pools that exclude
padding, and a max pool in Mixed_7c's pool branch), then `pool3`.

Features are the spatial mean of one selected layer, so lower layers give a
vector too (Meta-Sim computes MMD on lower-layer Inception features):

    variables = load_params('inception_fid.npz', output_layer='Mixed_5d')
    features = make_feature_fn('Mixed_5d', resize=299)
    feats = jax.jit(features)(variables, images)  # [B, 288]

Submodule names mirror the PyTorch state_dict keys, so weights convert by a
plain renaming (see `convert_inception.py` and docs/inception_weights.md).
"""

from __future__ import annotations

import functools
import os
import zipfile
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

Variables = dict[str, Any]
"""`{'params': ..., 'batch_stats': ...}` as returned by `load_params`."""

FeatureFn = Callable[[Variables, jax.Array], jax.Array]
"""`features(variables, images [B, H, W, C]) -> [B, D]`."""

_Layer = Callable[[jax.Array], jax.Array]

# Leaves stored in the 'batch_stats' collection; all others are params.
_BATCH_STATS_LEAVES = ('mean', 'var')
# Smallest input side the full network accepts; also used to trace shapes.
_MIN_SIZE = 75


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), strides=(2, 2))


def _avg_pool_3x3_same(x: jax.Array) -> jax.Array:
  """3x3/1 average pool, padding 1, padded cells not counted (FID blocks)."""
  return nn.avg_pool(
      x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
      count_include_pad=False)


def _max_pool_3x3_same(x: jax.Array) -> jax.Array:
  """3x3/1 max pool, padding 1 (pads with -inf)."""
  return nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))


def _global_avg_pool(x: jax.Array) -> jax.Array:
  return jnp.mean(x, axis=(1, 2), keepdims=True)


class BasicConv2d(nn.Module):
  """Conv (no bias) + BatchNorm (eps 1e-3, running stats) + ReLU.

  Attributes:
    features: output channels.
    kernel_size: (kh, kw).
    strides: stride in both spatial dims.
    padding: symmetric zero padding (ph, pw), as in PyTorch's Conv2d.
  """
  features: int
  kernel_size: tuple[int, int] = (1, 1)
  strides: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ph, pw = self.padding
    x = nn.Conv(
        self.features, self.kernel_size, strides=self.strides,
        padding=((ph, ph), (pw, pw)), use_bias=False, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name='bn')(x)
    return nn.relu(x)


class InceptionA(nn.Module):
  """Mixed_5b/5c/5d (FIDInceptionA); 224 + pool_features output channels."""
  pool_features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv2d(64, name='branch1x1')(x)
    b5 = BasicConv2d(48, name='branch5x5_1')(x)
    b5 = BasicConv2d(64, (5, 5), padding=(2, 2), name='branch5x5_2')(b5)
    b3 = BasicConv2d(64, name='branch3x3dbl_1')(x)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(b3)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name='branch3x3dbl_3')(b3)
    bp = BasicConv2d(self.pool_features, name='branch_pool')(
        _avg_pool_3x3_same(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: grid reduction 35 -> 17; 480 + input channels."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv2d(384, (3, 3), strides=2, name='branch3x3')(x)
    bd = BasicConv2d(64, name='branch3x3dbl_1')(x)
    bd = BasicConv2d(96, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
    bd = BasicConv2d(96, (3, 3), strides=2, name='branch3x3dbl_3')(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b..6e (FIDInceptionC), factorized 7x7 convs; 768 channels."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c7 = self.channels_7x7
    row = dict(kernel_size=(1, 7), padding=(0, 3))
    col = dict(kernel_size=(7, 1), padding=(3, 0))
    b1 = BasicConv2d(192, name='branch1x1')(x)
    b7 = BasicConv2d(c7, name='branch7x7_1')(x)
    b7 = BasicConv2d(c7, **row, name='branch7x7_2')(b7)
    b7 = BasicConv2d(192, **col, name='branch7x7_3')(b7)
    bd = BasicConv2d(c7, name='branch7x7dbl_1')(x)
    bd = BasicConv2d(c7, **col, name='branch7x7dbl_2')(bd)
    bd = BasicConv2d(c7, **row, name='branch7x7dbl_3')(bd)
    bd = BasicConv2d(c7, **col, name='branch7x7dbl_4')(bd)
    bd = BasicConv2d(192, **row, name='branch7x7dbl_5')(bd)
    bp = BasicConv2d(192, name='branch_pool')(_avg_pool_3x3_same(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: grid reduction 17 -> 8; 512 + input channels."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv2d(192, name='branch3x3_1')(x)
    b3 = BasicConv2d(320, (3, 3), strides=2, name='branch3x3_2')(b3)
    b7 = BasicConv2d(192, name='branch7x7x3_1')(x)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = BasicConv2d(192, (3, 3), strides=2, name='branch7x7x3_4')(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b/7c (FIDInceptionE_1/FIDInceptionE_2); 2048 channels.

  Attributes:
    pool: branch_pool's 3x3 pool: 'avg' excluding padding (Mixed_7b) or 'max'
      (Mixed_7c).
  """
  pool: Literal['avg', 'max']

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    row = dict(kernel_size=(1, 3), padding=(0, 1))
    col = dict(kernel_size=(3, 1), padding=(1, 0))
    b1 = BasicConv2d(320, name='branch1x1')(x)
    b3 = BasicConv2d(384, name='branch3x3_1')(x)
    b3 = jnp.concatenate([
        BasicConv2d(384, **row, name='branch3x3_2a')(b3),
        BasicConv2d(384, **col, name='branch3x3_2b')(b3),
    ], axis=-1)
    bd = BasicConv2d(448, name='branch3x3dbl_1')(x)
    bd = BasicConv2d(384, (3, 3), padding=(1, 1), name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate([
        BasicConv2d(384, **row, name='branch3x3dbl_3a')(bd),
        BasicConv2d(384, **col, name='branch3x3dbl_3b')(bd),
    ], axis=-1)
    pool = _avg_pool_3x3_same if self.pool == 'avg' else _max_pool_3x3_same
    bp = BasicConv2d(192, name='branch_pool')(pool(x))
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


# (name, factory(name) -> layer, output channels), in network order. Factories
# build submodules only when called, so layers above the selected one are
# never created.
_STAGES: tuple[tuple[str, Callable[[str], _Layer], int], ...] = (
    ('Conv2d_1a_3x3',
     lambda n: BasicConv2d(32, (3, 3), strides=2, name=n), 32),
    ('Conv2d_2a_3x3', lambda n: BasicConv2d(32, (3, 3), name=n), 32),
    ('Conv2d_2b_3x3',
     lambda n: BasicConv2d(64, (3, 3), padding=(1, 1), name=n), 64),
    ('MaxPool_1', lambda n: _max_pool_3x3_s2, 64),
    ('Conv2d_3b_1x1', lambda n: BasicConv2d(80, name=n), 80),
    ('Conv2d_4a_3x3', lambda n: BasicConv2d(192, (3, 3), name=n), 192),
    ('MaxPool_2', lambda n: _max_pool_3x3_s2, 192),
    ('Mixed_5b', lambda n: InceptionA(32, name=n), 256),
    ('Mixed_5c', lambda n: InceptionA(64, name=n), 288),
    ('Mixed_5d', lambda n: InceptionA(64, name=n), 288),
    ('Mixed_6a', lambda n: InceptionB(name=n), 768),
    ('Mixed_6b', lambda n: InceptionC(128, name=n), 768),
    ('Mixed_6c', lambda n: InceptionC(160, name=n), 768),
    ('Mixed_6d', lambda n: InceptionC(160, name=n), 768),
    ('Mixed_6e', lambda n: InceptionC(192, name=n), 768),
    ('Mixed_7a', lambda n: InceptionD(name=n), 1280),
    ('Mixed_7b', lambda n: InceptionE('avg', name=n), 2048),
    ('Mixed_7c', lambda n: InceptionE('max', name=n), 2048),
    ('pool3', lambda n: _global_avg_pool, 2048),
)

LAYERS: tuple[str, ...] = tuple(name for name, _, _ in _STAGES)
"""Selectable output layers, in network order."""

FEATURE_DIMS: dict[str, int] = {name: dim for name, _, dim in _STAGES}
"""Feature size D returned for each output layer."""

# Stages applying an unpadded 3x3 window: their input must be at least 3x3.
_UNPADDED_3X3 = frozenset({
    'Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'MaxPool_1', 'Conv2d_4a_3x3',
    'MaxPool_2', 'Mixed_6a', 'Mixed_7a'})


def _check_layer(output_layer: str) -> None:
  if output_layer not in LAYERS:
    raise ValueError(
        f'unknown Inception output_layer {output_layer!r}; valid layers: '
        f'{", ".join(LAYERS)}')


def preprocess(images: jax.Array, resize: int | None) -> jax.Array:
  """Maps images in [0, 1] to the network input.

  Args:
    images: [B, H, W, C] floats in [0, 1], C = 1 (repeated to RGB) or 3.
    resize: output side length (bilinear, half-pixel centres and no
      antialiasing, like PyTorch's `interpolate(align_corners=False)` in
      pytorch-fid), or None to keep H x W.

  Returns:
    [B, resize, resize, 3] float32 in [-1, 1].
  """
  x = jnp.asarray(images, jnp.float32)
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(
        f'images must have shape [B, H, W, 1 or 3], got {tuple(x.shape)}')
  batch, height, width, channels = x.shape
  if resize is not None and (height, width) != (resize, resize):
    x = jax.image.resize(
        x, (batch, resize, resize, channels), method='bilinear',
        antialias=False)
  return jnp.broadcast_to(2.0 * x - 1.0, x.shape[:3] + (3,))


class InceptionV3(nn.Module):
  """FID InceptionV3 truncated at `output_layer`, returning pooled features.

  Only the layers up to and including `output_layer` are created. The full
  network needs at least 75x75 input (after resizing).

  Attributes:
    output_layer: one of `LAYERS`.
    resize: side length images are bilinearly resized to (299 for FID), or
      None to use them at their own size.
  """
  output_layer: str = 'pool3'
  resize: int | None = 299

  def __post_init__(self) -> None:
    _check_layer(self.output_layer)
    super().__post_init__()

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    """[B, H, W, C] images in [0, 1] -> [B, FEATURE_DIMS[output_layer]]."""
    x = preprocess(images, self.resize)
    for name, make, _ in _STAGES[:LAYERS.index(self.output_layer) + 1]:
      if name in _UNPADDED_3X3 and min(x.shape[1:3]) < 3:
        raise ValueError(
            f'{name} needs at least 3x3 input but gets '
            f'{x.shape[1]}x{x.shape[2]}; use larger images or resize '
            f'(the full network needs >= {_MIN_SIZE} px)')
      x = make(name)(x)
    return jnp.mean(x, axis=(1, 2))


def make_feature_fn(
    output_layer: str = 'pool3', resize: int | None = 299) -> FeatureFn:
  """Returns pure `features(variables, images) -> [B, D]`, safe to jit.

  The variables are an explicit argument (pass them in, don't close over
  them), and are treated as frozen: BatchNorm uses the running statistics.
  """
  model = InceptionV3(output_layer, resize)

  def features(variables: Variables, images: jax.Array) -> jax.Array:
    return model.apply(variables, images)

  return features


@functools.cache
def _expected_shapes(
    output_layer: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
  """Cached (key, shape) pairs behind `expected_shapes`; immutable."""
  model = InceptionV3(output_layer, resize=None)
  dummy = jax.ShapeDtypeStruct((1, _MIN_SIZE, _MIN_SIZE, 3), jnp.float32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), dummy)
  flat = {
      '/'.join(path[1:]): tuple(leaf.shape)
      for path, leaf in traverse_util.flatten_dict(shapes).items()}
  keys = sorted(flat, key=lambda k: (LAYERS.index(k.split('/')[0]), k))
  return tuple((key, flat[key]) for key in keys)


def expected_shapes(output_layer: str = 'pool3') -> dict[str, tuple[int, ...]]:
  """Flat .npz key (e.g. 'Mixed_5b/branch1x1/conv/kernel') -> array shape.

  Lists exactly the arrays `InceptionV3(output_layer)` uses, ordered by layer.
  Computed once per layer with `jax.eval_shape` (no FLOPs).
  """
  _check_layer(output_layer)
  return dict(_expected_shapes(output_layer))


def variables_from_arrays(
    arrays: Mapping[str, np.ndarray],
    output_layer: str = 'pool3',
    source: str = 'arrays',
) -> Variables:
  """Validates flat arrays and nests them into flax variables.

  Args:
    arrays: flat key -> array (keys as in `expected_shapes`); keys not used by
      `output_layer` are ignored.
    output_layer: one of `LAYERS`.
    source: name of where the arrays came from, used in error messages.

  Returns:
    `{'params': ..., 'batch_stats': ...}` of float32 arrays.

  Raises:
    ValueError: unknown layer, a missing key, or a shape mismatch.
  """
  _check_layer(output_layer)
  collections: dict[str, dict[tuple[str, ...], jax.Array]] = {
      'params': {}, 'batch_stats': {}}
  for key, shape in expected_shapes(output_layer).items():
    if key not in arrays:
      raise ValueError(
          f'{source}: missing key {key!r} (needed for output_layer='
          f'{output_layer!r})')
    value = np.asarray(arrays[key], np.float32)
    if value.shape != shape:
      raise ValueError(
          f'{source}: key {key!r} has shape {value.shape}, expected {shape}')
    path = tuple(key.split('/'))
    kind = 'batch_stats' if path[-1] in _BATCH_STATS_LEAVES else 'params'
    collections[kind][path] = jnp.asarray(value)
  return {k: traverse_util.unflatten_dict(v) for k, v in collections.items()}


def load_params(
    path: str | os.PathLike[str], output_layer: str = 'pool3') -> Variables:
  """Loads InceptionV3 variables for `output_layer` from an .npz file.

  The format is described in docs/inception_weights.md; keys for layers
  above `output_layer` are ignored.

  Raises:
    ValueError: unreadable or corrupt file (naming the path), unknown layer,
      missing key or wrong shape (naming the key).
  """
  _check_layer(output_layer)
  try:
    data = np.load(path, allow_pickle=False)
    if not isinstance(data, np.lib.npyio.NpzFile):
      raise ValueError('not an .npz archive')
    with data:
      arrays = {key: data[key] for key in data.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise ValueError(
        f'cannot read Inception weights from {path} (expected an .npz '
        f'archive): {e}') from e
  return variables_from_arrays(arrays, output_layer, source=os.fspath(path))
