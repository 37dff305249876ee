"""Downstream tasks by name: what a task network learns from renders.

A task owns everything that depends on what is learned: the targets it
reads from a rendered batch, the training loss, the score on a labelled
set (with its ``headline`` metric, used in tables and as the reward of the
task meta-objective), a log line of its metrics, the rows it adds to the
sample grid, and how an exported example is labelled.  The training loop
and the exporters only call these.

``create(name, config, prior, semantic_names)`` builds one; register
another with ``register(name, factory)`` (same signature as ``create``
without the name).  Tasks here: ``classification`` (the class attribute of
one slot, MNIST), ``segmentation`` (the semantic map, Aerial2D) and
``detection`` (car boxes, driving; ``detection.py``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from metasim_jax.grammar.spec import Grammar
from metasim_jax.registry import Registry
from metasim_jax.render.labels import NONE, colorize
from metasim_jax.tasknet import detection, segmentation
from metasim_jax.tasknet.train import cross_entropy, evaluate
from metasim_jax.types import LabeledSet, Renders, SceneGraph

GridRows = list[tuple[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class SceneLabel:
  """An exported example's one class label: ``num_classes`` classes,
  described by ``doc``."""
  num_classes: int
  doc: str


class Task(Protocol):
  headline: str       # metric in tables and the task reward, e.g. "miou"
  num_outputs: int    # classes the task network predicts
  scene_label: SceneLabel | None  # None: the labels are maps (per pixel)

  def targets(self, scene: SceneGraph, renders: Renders) -> jax.Array:
    ...

  def loss(self, logits: jax.Array, targets: jax.Array) -> jax.Array:
    ...

  def score(self, params, model: nn.Module,
            data: LabeledSet) -> dict[str, jax.Array]:
    """Metrics over a labelled set; holds ``headline`` and ``loss``."""

  def describe(self, metrics: dict[str, float]) -> str:
    """Extra log line of a score ('' for none)."""

  def grid_rows(self, prior: Renders, metasim: Renders,
                test: LabeledSet) -> GridRows:
    """Titled image rows [n, H, W, C] of the sample grid."""

  def feature_maps(self, logits: jax.Array) -> jax.Array:
    """What the task network sees in an image, as smooth maps [B, h, w, F]
    (or [B, F]) of its outputs: the learned MMD features
    (``metasim_jax/task_features.py``) pool them."""


@dataclasses.dataclass(frozen=True)
class Classification:
  """One class per image: categorical attribute ``col`` of slot ``slot``."""
  slot: int
  col: int
  num_outputs: int
  scene_label: SceneLabel
  headline: str = "accuracy"

  def targets(self, scene: SceneGraph, renders: Renders) -> jax.Array:
    del renders
    return scene.attrs[:, self.slot, self.col].astype(jnp.int32)

  def loss(self, logits, targets):
    return cross_entropy(logits, targets)

  def score(self, params, model, data: LabeledSet):
    return evaluate(params, model, data.images, data.labels)

  def feature_maps(self, logits):
    return jax.nn.softmax(logits, -1)  # class probabilities [B, K]

  def describe(self, metrics):
    return ""

  def grid_rows(self, prior, metasim, test):
    n = prior.image.shape[0]
    # A target set may be sorted by label: show evenly spaced examples.
    pick = np.linspace(0, len(test.labels) - 1, n).astype(int)
    return [("input (prior)", np.asarray(prior.image)),
            ("Meta-Sim", np.asarray(metasim.image)),
            ("target", np.asarray(test.images)[pick])]


def classification(config, prior: Grammar,
                   semantic_names: Sequence[str]) -> Classification:
  """From ``config.label``: ``slot`` (a slot path) and ``attr`` (a
  categorical attribute)."""
  del semantic_names
  slot, attr = config.label.slot, config.label.attr
  col = prior.col(attr)
  if prior.attr_kinds[col] != "categorical":
    raise ValueError(f"config.label.attr {attr!r} must be a categorical "
                     "attribute")
  n = prior.slot(slot)
  if not prior.has_attr[n, col]:
    raise ValueError(f"config.label: slot {slot!r} has no attribute {attr!r}")
  k = int(prior.num_cats[col])
  return Classification(slot=n, col=col, num_outputs=k, scene_label=SceneLabel(
      k, f"attribute {attr!r} of slot {slot!r}"))


@dataclasses.dataclass(frozen=True)
class Segmentation:
  """Semantic segmentation: the renderer's semantic map, ids of the
  problem's table ``class_names``; ``miou`` is the mean IoU over
  ``mean_over``."""
  class_names: tuple[str, ...]
  mean_over: tuple[str, ...]
  headline: str = "miou"
  scene_label: None = None

  @property
  def num_outputs(self) -> int:
    return len(self.class_names)

  def targets(self, scene, renders):
    del scene
    return renders.semantic

  def loss(self, logits, targets):
    return cross_entropy(logits, targets)

  def score(self, params, model, data):
    return segmentation.evaluate(params, model, data.images, data.labels,
                                 self.class_names, self.mean_over)

  def feature_maps(self, logits):
    return jax.nn.softmax(logits, -1)  # class probabilities per pixel

  def describe(self, metrics):
    return "IoU " + " ".join(f"{n}={metrics['iou_' + n]:.3f}"
                             for n in self.class_names if n != NONE)

  def grid_rows(self, prior, metasim, test):
    n = prior.image.shape[0]
    return [("input (prior)", np.asarray(prior.image)),
            ("  its labels", colorize(prior.semantic)),
            ("Meta-Sim", np.asarray(metasim.image)),
            ("  its labels", colorize(metasim.semantic)),
            ("target", np.asarray(test.images[:n])),
            ("  its labels", colorize(test.labels[:n]))]


def segmentation_task(config, prior: Grammar,
                      semantic_names: Sequence[str]) -> Segmentation:
  """From ``config.mean_over``: the classes of the headline mean IoU."""
  del prior
  names = tuple(semantic_names)
  mean_over = tuple(config.mean_over)
  missing = sorted(set(mean_over) - set(names))
  if not mean_over or missing:
    raise ValueError(f"config.mean_over {mean_over} must name classes of the "
                     f"grammar {list(names[1:])}; unknown: {missing}")
  return Segmentation(class_names=names, mean_over=mean_over)


Factory = Callable[[Any, Grammar, Sequence[str]], Task]
REGISTRY = Registry("task")  # names valid as config.task_type
REGISTRY.update(classification=classification, segmentation=segmentation_task,
                detection=detection.detection_task)
register = REGISTRY.register




def create(name: str, config, prior: Grammar,
           semantic_names: Sequence[str]) -> Task:
  return REGISTRY.lookup(name)(config, prior, semantic_names)
