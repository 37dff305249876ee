"""Downstream tasks (``tasks``), task networks by name, and the one
task-net trainer (``train``)."""

from metasim_jax.tasknet import (classifier, detector, segmentation, tasks,
                                 unet)
from metasim_jax.tasknet.tasks import Task
from metasim_jax.tasknet.train import (HostTrainer, PopulationTrainer,
                                       cross_entropy, evaluate, train)

NETWORKS = {"small_cnn": classifier.SmallCNN, "unet": unet.UNet,
            "centernet": detector.CenterNet}


def create(name: str, **kwargs):
  """A task network by name (``NETWORKS``)."""
  if name not in NETWORKS:
    raise ValueError(f"unknown task network {name!r}; valid: "
                     f"{sorted(NETWORKS)}")
  return NETWORKS[name](**kwargs)


__all__ = ["HostTrainer", "NETWORKS", "PopulationTrainer", "Task", "create", "cross_entropy",
           "evaluate", "segmentation", "tasks", "train"]
