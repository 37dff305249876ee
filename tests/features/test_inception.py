"""Tests for the FID InceptionV3 feature net, its .npz loader and converter."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from metasim_jax.features import convert_inception
from metasim_jax.features import inception

LAYER = 'Mixed_5b'
RESIZE = 75  # Smallest size the full network accepts; keeps tests fast.
_TORCH_LEAVES = {
    'kernel': 'weight', 'scale': 'weight', 'bias': 'bias',
    'mean': 'running_mean', 'var': 'running_var'}


def _random_arrays(output_layer: str, seed: int = 0) -> dict[str, np.ndarray]:
  """Seeded weights of the right shapes, scaled to keep activations O(1)."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for key, shape in inception.expected_shapes(output_layer).items():
    leaf = key.rsplit('/', 1)[1]
    if leaf == 'kernel':
      value = rng.normal(0.0, math.sqrt(2.0 / math.prod(shape[:3])), shape)
    elif leaf == 'var':
      value = rng.uniform(0.5, 1.5, shape)
    else:
      value = rng.normal(0.0, 0.1, shape)
    arrays[key] = value.astype(np.float32)
  return arrays


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
  with open(path, 'wb') as f:
    np.savez(f, **arrays)
  return path


def _torch_key(npz_key: str) -> str:
  """Inverse of `convert_inception.npz_key`, for building fake state_dicts."""
  *module, leaf = npz_key.split('/')
  return '.'.join([*module, _TORCH_LEAVES[leaf]])


def _images(shape: tuple[int, ...], seed: int = 1) -> jax.Array:
  return jax.random.uniform(jax.random.key(seed), shape)


@pytest.fixture(scope='module')
def arrays() -> dict[str, np.ndarray]:
  return _random_arrays(LAYER)


@pytest.fixture(scope='module')
def weights_file(tmp_path_factory, arrays) -> Path:
  return _write_npz(tmp_path_factory.mktemp('w') / 'inception.npz', arrays)


def test_layers_and_feature_dims():
  assert len(inception.LAYERS) == 19
  assert inception.LAYERS[0] == 'Conv2d_1a_3x3'
  assert inception.LAYERS[-1] == 'pool3'
  assert tuple(inception.FEATURE_DIMS) == inception.LAYERS


@pytest.mark.parametrize('layer', inception.LAYERS)
def test_output_shape_per_layer(layer):
  model = inception.InceptionV3(layer, resize=None)
  out, _ = jax.eval_shape(
      model.init_with_output, jax.random.key(0),
      jax.ShapeDtypeStruct((2, RESIZE, RESIZE, 3), jnp.float32))
  assert out.shape == (2, inception.FEATURE_DIMS[layer])


def test_full_network_parameter_count():
  # InceptionV3 without fc and AuxLogits: 21.8M weights incl. BN statistics.
  shapes = inception.expected_shapes('pool3')
  assert sum(math.prod(s) for s in shapes.values()) == 21_820_000


def test_load_params_round_trip(weights_file, arrays):
  variables = inception.load_params(weights_file, LAYER)
  flat = {
      '/'.join(path[1:]): value
      for path, value in traverse_util.flatten_dict(variables).items()}
  assert flat.keys() == arrays.keys()
  for key, value in arrays.items():
    np.testing.assert_array_equal(flat[key], value, err_msg=key)
  assert variables['batch_stats'][LAYER]['branch1x1']['bn'].keys() == {
      'mean', 'var'}

  model = inception.InceptionV3(LAYER, resize=RESIZE)
  images = _images((2, 64, 64, 3))
  init = model.init(jax.random.key(0), images)
  assert jax.tree.structure(init) == jax.tree.structure(variables)

  expected = model.apply(variables, images)
  features = jax.jit(inception.make_feature_fn(LAYER, RESIZE))(
      variables, images)
  chex.assert_shape(features, (2, inception.FEATURE_DIMS[LAYER]))
  chex.assert_tree_all_finite(features)
  assert float(jnp.std(features)) > 0
  np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)


def test_full_network_runs_at_minimum_size():
  variables = inception.variables_from_arrays(_random_arrays('pool3'))
  images = _images((2, 40, 40, 1))  # Upsampled to 75x75.
  pool3 = jax.jit(inception.make_feature_fn('pool3', RESIZE))(
      variables, images)
  chex.assert_shape(pool3, (2, 2048))
  chex.assert_tree_all_finite(pool3)
  mixed_7c = jax.jit(inception.make_feature_fn('Mixed_7c', RESIZE))(
      variables, images)
  np.testing.assert_allclose(pool3, mixed_7c, rtol=1e-5, atol=1e-6)


def test_features_are_differentiable(weights_file):
  layer = 'Conv2d_4a_3x3'
  variables = inception.load_params(weights_file, layer)
  features = inception.make_feature_fn(layer, resize=RESIZE)
  images = _images((2, 40, 40, 3))
  grad = jax.grad(lambda x: features(variables, x).sum())(images)
  chex.assert_shape(grad, images.shape)
  chex.assert_tree_all_finite(grad)
  assert float(jnp.abs(grad).max()) > 0


def test_grayscale_matches_repeated_rgb(weights_file):
  variables = inception.load_params(weights_file, 'Conv2d_4a_3x3')
  features = jax.jit(inception.make_feature_fn('Conv2d_4a_3x3', RESIZE))
  gray = _images((2, 32, 32, 1))
  out = features(variables, gray)
  chex.assert_shape(out, (2, 192))
  np.testing.assert_allclose(
      out, features(variables, jnp.repeat(gray, 3, axis=-1)), atol=1e-6)


def test_preprocess():
  x = inception.preprocess(jnp.full((2, 10, 12, 1), 0.5), resize=20)
  chex.assert_shape(x, (2, 20, 20, 3))
  np.testing.assert_allclose(x, 0.0, atol=1e-6)
  images = _images((1, 8, 8, 3))
  np.testing.assert_allclose(
      inception.preprocess(images, resize=None), 2 * images - 1, atol=1e-6)
  np.testing.assert_allclose(
      inception.preprocess(images, resize=8), 2 * images - 1, atol=1e-6)

  # PyTorch interpolate(mode='bilinear', align_corners=False), as in
  # pytorch-fid: edge-clamped upsampling, 2-tap (unfiltered) downsampling.
  def resize_row(row: list[float], size: int) -> np.ndarray:
    image = jnp.tile(jnp.array(row)[None, None, :, None], (1, 2, 1, 1))
    return np.asarray(inception.preprocess(image, size) + 1)[0, 0, :, 0] / 2
  np.testing.assert_allclose(
      resize_row([0, 1], 4), [0, 0.25, 0.75, 1], atol=1e-6)
  np.testing.assert_allclose(
      resize_row([0, 1 / 3, 2 / 3, 1], 2), [1 / 6, 5 / 6], atol=1e-6)
  with pytest.raises(ValueError, match='B, H, W'):
    inception.preprocess(jnp.zeros((1, 8, 8, 4)), resize=None)


def test_fid_pools_ignore_padding():
  # FIDInceptionA/C/E_1 average without padded cells; E_2 pads max with -inf.
  ones = jnp.ones((1, 4, 5, 2))
  np.testing.assert_allclose(inception._avg_pool_3x3_same(ones), ones)
  np.testing.assert_allclose(inception._max_pool_3x3_same(-ones), -ones)


def test_too_small_input_raises():
  model = inception.InceptionV3('pool3', resize=None)
  with pytest.raises(ValueError, match='Mixed_7a'):
    jax.eval_shape(
        model.init, jax.random.key(0),
        jax.ShapeDtypeStruct((1, 74, 74, 3), jnp.float32))


def test_unknown_output_layer(weights_file):
  with pytest.raises(ValueError, match='Mixed_5b'):
    inception.InceptionV3('fc')
  with pytest.raises(ValueError, match='unknown Inception output_layer'):
    inception.load_params(weights_file, 'pool4')
  with pytest.raises(ValueError, match='unknown Inception output_layer'):
    inception.make_feature_fn('logits')


def test_lower_layer_tree_has_no_later_layers(weights_file):
  layer = 'Conv2d_4a_3x3'
  variables = inception.load_params(weights_file, layer)  # Extras ignored.
  allowed = set(inception.LAYERS[:inception.LAYERS.index(layer) + 1])
  for collection in ('params', 'batch_stats'):
    assert set(variables[collection]) == allowed - {'MaxPool_1'}
  model = inception.InceptionV3(layer, resize=None)
  init = jax.eval_shape(
      model.init, jax.random.key(0),
      jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
  assert set(init['params']) == allowed - {'MaxPool_1'}
  upto_5b = inception.LAYERS[:inception.LAYERS.index(LAYER) + 1]
  for key in inception.expected_shapes(LAYER):
    assert key.split('/')[0] in upto_5b


def test_missing_key_raises(tmp_path, arrays):
  key = 'Mixed_5b/branch_pool/bn/var'
  path = _write_npz(
      tmp_path / 'w.npz', {k: v for k, v in arrays.items() if k != key})
  with pytest.raises(ValueError, match='missing key') as info:
    inception.load_params(path, LAYER)
  assert key in str(info.value) and str(path) in str(info.value)


def test_wrong_shape_raises(tmp_path, arrays):
  key = 'Mixed_5b/branch5x5_2/conv/kernel'
  bad = dict(arrays, **{key: np.zeros((3, 3, 48, 64), np.float32)})
  path = _write_npz(tmp_path / 'w.npz', bad)
  with pytest.raises(ValueError) as info:
    inception.load_params(path, LAYER)
  message = str(info.value)
  assert key in message
  assert '(3, 3, 48, 64)' in message and '(5, 5, 48, 64)' in message


@pytest.mark.parametrize('content', ['garbage', 'truncated', 'npy', 'absent'])
def test_unreadable_file_raises(tmp_path, weights_file, content):
  path = tmp_path / 'bad.npz'
  if content == 'garbage':
    path.write_bytes(b'this is not a zip archive')
  elif content == 'truncated':
    path.write_bytes(weights_file.read_bytes()[:100_000])
  elif content == 'npy':
    with open(path, 'wb') as f:
      np.save(f, np.zeros(3))
  with pytest.raises(ValueError, match='cannot read') as info:
    inception.load_params(path, LAYER)
  assert str(path) in str(info.value)


def test_npz_key_mapping():
  assert (convert_inception.npz_key('Mixed_5b.branch1x1.conv.weight')
          == 'Mixed_5b/branch1x1/conv/kernel')
  assert (convert_inception.npz_key('Conv2d_1a_3x3.bn.running_var')
          == 'Conv2d_1a_3x3/bn/var')
  assert convert_inception.npz_key('Mixed_7c.branch_pool.bn.weight') == (
      'Mixed_7c/branch_pool/bn/scale')
  for dropped in ('fc.weight', 'fc.bias', 'AuxLogits.conv0.conv.weight',
                  'Mixed_5b.branch1x1.bn.num_batches_tracked'):
    assert convert_inception.npz_key(dropped) is None
  with pytest.raises(ValueError, match='Mixed_5b.branch1x1.conv.bias'):
    convert_inception.npz_key('Mixed_5b.branch1x1.conv.bias')


def test_convert_state_dict(arrays):
  state_dict = {
      _torch_key(k): (v.transpose(3, 2, 0, 1) if v.ndim == 4 else v)
      for k, v in arrays.items()}
  state_dict['fc.weight'] = np.zeros((1008, 2048), np.float32)
  state_dict['Mixed_5b.branch1x1.bn.num_batches_tracked'] = np.array(0)
  converted = convert_inception.convert_state_dict(state_dict)
  assert converted.keys() == arrays.keys()
  variables = inception.variables_from_arrays(converted, LAYER)
  np.testing.assert_array_equal(
      variables['params'][LAYER]['branch5x5_2']['conv']['kernel'],
      state_dict['Mixed_5b.branch5x5_2.conv.weight'].transpose(2, 3, 1, 0))


def test_converter_without_torch_fails_clearly(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` fails.
  with pytest.raises(ImportError, match='PyTorch'):
    convert_inception.read_torch_state_dict(tmp_path / 'x.pth')
  with pytest.raises(SystemExit, match='PyTorch'):
    convert_inception.main(
        ['--src', str(tmp_path / 'x.pth'), '--dst', str(tmp_path / 'y.npz')])
  assert not (tmp_path / 'y.npz').exists()


class _FakeTensor:
  """Just enough of torch.Tensor for `read_torch_state_dict`."""

  def __init__(self, value: np.ndarray):
    self._value = value

  def detach(self) -> _FakeTensor:
    return self

  def cpu(self) -> _FakeTensor:
    return self

  def float(self) -> _FakeTensor:
    return _FakeTensor(self._value.astype(np.float32))

  def numpy(self) -> np.ndarray:
    return self._value


def _fake_torch(state_dict: dict[str, np.ndarray]) -> types.SimpleNamespace:
  def load(path, map_location, weights_only):
    assert map_location == 'cpu' and weights_only
    Path(path).read_bytes()  # Raises like torch.load for a missing file.
    return {k: _FakeTensor(v) for k, v in state_dict.items()}
  return types.SimpleNamespace(Tensor=_FakeTensor, load=load)


@pytest.fixture(scope='module')
def full_state_dict() -> dict[str, np.ndarray]:
  """A pytorch-fid-like state_dict: OIHW kernels, fc, num_batches_tracked."""
  rng = np.random.default_rng(0)
  state = {'fc.weight': np.zeros((1008, 2048), np.float32),
           'fc.bias': np.zeros(1008, np.float32)}
  for key, shape in inception.expected_shapes('pool3').items():
    if len(shape) == 4:
      shape = (shape[3], shape[2], shape[0], shape[1])  # HWIO -> OIHW
    state[_torch_key(key)] = rng.standard_normal(shape, dtype=np.float32)
    if key.endswith('/bn/var'):
      module = key.removesuffix('/bn/var').replace('/', '.')
      state[f'{module}.bn.num_batches_tracked'] = np.array(0)
  return state


def _check_converted(dst: Path, state_dict) -> None:
  variables = inception.load_params(dst, 'pool3')
  np.testing.assert_array_equal(
      variables['params']['Mixed_7c']['branch3x3_2a']['conv']['kernel'],
      np.asarray(state_dict['Mixed_7c.branch3x3_2a.conv.weight']).transpose(
          2, 3, 1, 0))
  np.testing.assert_array_equal(
      variables['batch_stats']['Conv2d_1a_3x3']['bn']['var'],
      np.asarray(state_dict['Conv2d_1a_3x3.bn.running_var']))


def test_converter_cli_with_fake_torch(tmp_path, monkeypatch, full_state_dict):
  monkeypatch.setitem(sys.modules, 'torch', _fake_torch(full_state_dict))
  src, dst = tmp_path / 'fid.pth', tmp_path / 'fid.npz'
  src.write_bytes(b'')
  convert_inception.main(['--src', str(src), '--dst', str(dst)])
  _check_converted(dst, full_state_dict)


@pytest.mark.parametrize('edit, message', [
    ('drop', 'missing key .Mixed_6e/branch_pool/bn/mean'),
    ('extra', 'not in the FID InceptionV3'),
    ('no_src', 'cannot read PyTorch state_dict'),
])
def test_converter_rejects_bad_input(
    tmp_path, monkeypatch, full_state_dict, edit, message):
  state = dict(full_state_dict)
  if edit == 'drop':
    del state['Mixed_6e.branch_pool.bn.running_mean']
  elif edit == 'extra':
    state['Mixed_8a.branch1x1.conv.weight'] = np.zeros((8, 8, 1, 1))
  monkeypatch.setitem(sys.modules, 'torch', _fake_torch(state))
  src, dst = tmp_path / 'fid.pth', tmp_path / 'fid.npz'
  if edit != 'no_src':
    src.write_bytes(b'')
  with pytest.raises(SystemExit, match=message):
    convert_inception.main(['--src', str(src), '--dst', str(dst)])
  assert not dst.exists()


def test_converter_cli_with_torch(tmp_path, full_state_dict):
  torch = pytest.importorskip('torch')
  state_dict = {k: torch.from_numpy(v) for k, v in full_state_dict.items()}
  src, dst = tmp_path / 'fid.pth', tmp_path / 'fid.npz'
  torch.save(state_dict, src)
  convert_inception.main(['--src', str(src), '--dst', str(dst)])
  _check_converted(dst, full_state_dict)
