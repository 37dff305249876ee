"""Converts pytorch-fid's FID Inception weights (.pth) to our .npz format.

    python -m metasim_jax.features.convert_inception \\
        --src pt_inception-2015-12-05-6726825d.pth --dst inception_fid.npz

Renaming (see docs/inception_weights.md), for every BasicConv2d `<m>`:
  <m>.conv.weight [O, I, H, W]  -> <m>/conv/kernel [H, W, I, O]
  <m>.bn.weight / .bn.bias      -> <m>/bn/scale / <m>/bn/bias
  <m>.bn.running_mean / _var    -> <m>/bn/mean / <m>/bn/var
`*.num_batches_tracked`, `fc.*` and `AuxLogits.*` are dropped. Needs PyTorch
(CPU build) for reading the .pth file only.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

import numpy as np

from metasim_jax.features import inception

_DROPPED_PREFIXES = ('fc.', 'AuxLogits.')
_BN_LEAVES = {
    'weight': 'scale', 'bias': 'bias',
    'running_mean': 'mean', 'running_var': 'var'}


def npz_key(torch_key: str) -> str | None:
  """Maps a PyTorch state_dict key to its .npz key, or None if dropped.

  Raises:
    ValueError: a key that is neither a conv weight nor a BatchNorm entry.
  """
  if (torch_key.startswith(_DROPPED_PREFIXES)
      or torch_key.endswith('.num_batches_tracked')):
    return None
  *module, kind, leaf = torch_key.split('.')
  if module and kind == 'conv' and leaf == 'weight':
    return '/'.join([*module, 'conv', 'kernel'])
  if module and kind == 'bn' and leaf in _BN_LEAVES:
    return '/'.join([*module, 'bn', _BN_LEAVES[leaf]])
  raise ValueError(f'unexpected state_dict key {torch_key!r}')


def convert_state_dict(
    state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Renames a PyTorch InceptionV3 state_dict and transposes conv kernels.

  Args:
    state_dict: key -> array (NumPy), conv weights in OIHW.

  Returns:
    .npz key -> float32 array, conv kernels in HWIO.
  """
  arrays = {}
  for torch_key, value in state_dict.items():
    key = npz_key(torch_key)
    if key is None:
      continue
    value = np.asarray(value, np.float32)
    if key.endswith('/kernel'):
      if value.ndim != 4:
        raise ValueError(
            f'{torch_key!r}: conv weight must be 4-D OIHW, got shape '
            f'{value.shape}')
      value = value.transpose(2, 3, 1, 0)
    arrays[key] = value
  return arrays


def read_torch_state_dict(
    path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
  """Reads a PyTorch state_dict file into NumPy arrays (needs torch).

  Raises:
    ImportError: PyTorch is not installed.
    ValueError: the file cannot be read or is not a dict of tensors.
  """
  try:
    import torch  # Optional dependency, needed only here.
  except ImportError as e:
    raise ImportError(
        'reading .pth weights needs PyTorch; install it (the CPU build is '
        'enough), e.g. `pip install torch`') from e
  try:
    state = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # torch.load raises many unrelated types.
    raise ValueError(f'cannot read PyTorch state_dict from {path}: {e}') from e
  if not isinstance(state, Mapping):
    raise ValueError(
        f'{path}: expected a state_dict (dict of tensors), got '
        f'{type(state).__name__}')
  arrays = {}
  for key, value in state.items():
    if not isinstance(value, torch.Tensor):
      raise ValueError(f'{path}: {key!r} is not a tensor')
    arrays[key] = value.detach().cpu().float().numpy()
  return arrays


def convert(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> int:
  """Converts `src` (.pth) to `dst` (.npz); returns the number of arrays.

  The result is checked against the full network (`output_layer='pool3'`)
  before anything is written: missing, misshapen or unknown keys raise
  ValueError.
  """
  arrays = convert_state_dict(read_torch_state_dict(src))
  inception.variables_from_arrays(arrays, 'pool3', source=os.fspath(src))
  unknown = sorted(set(arrays) - set(inception.expected_shapes('pool3')))
  if unknown:
    raise ValueError(
        f'{src}: {len(unknown)} keys not in the FID InceptionV3, e.g. '
        f'{unknown[0]!r}')
  with open(dst, 'wb') as f:  # A file object keeps numpy from adding '.npz'.
    np.savez(f, **arrays)
  return len(arrays)


def main(argv: Sequence[str] | None = None) -> None:
  """Command-line entry point; exits with a message on any error."""
  parser = argparse.ArgumentParser(
      description='Convert pytorch-fid Inception weights (.pth) to .npz.')
  parser.add_argument(
      '--src', required=True,
      help='PyTorch state_dict, e.g. pt_inception-2015-12-05-6726825d.pth')
  parser.add_argument('--dst', required=True, help='output .npz path')
  args = parser.parse_args(argv)
  try:
    count = convert(args.src, args.dst)
  except (ImportError, ValueError, OSError) as e:
    sys.exit(f'convert_inception: error: {e}')
  print(f'wrote {count} arrays to {args.dst}')


if __name__ == '__main__':
  main()
