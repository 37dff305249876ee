"""Downstream task networks, by name."""

from metasim_jax.tasknet import classifier, segmentation, unet
from metasim_jax.tasknet.train import cross_entropy, evaluate, train

REGISTRY = {"small_cnn": classifier.SmallCNN, "unet": unet.UNet}


def create(name: str, **kwargs):
  if name not in REGISTRY:
    raise ValueError(f"unknown task network {name!r}; valid: {sorted(REGISTRY)}")
  return REGISTRY[name](**kwargs)


__all__ = ["REGISTRY", "create", "cross_entropy", "evaluate", "segmentation",
           "train"]
