"""One Meta-Sim problem, built from a config: grammars, world, renderer,
Distribution Transformer, features, task.

``build(config) -> (Pipeline, feature params)`` resolves every plug-in by
name (``config.world``, ``config.renderer``, ``config.task_type``,
``config.tasknet.name``, ``config.features.name``) and checks that the
target grammar fits the prior: same structure, same semantic classes.
``Pipeline`` holds the static pieces and the pure functions of the
pipeline (sample, transform, render, losses); arrays (texture pools,
feature-net params, target features, validation set) are always passed as
arguments, so nothing large is baked into a compiled program.  Training
(``training/``) and export (``export/``) both build on this module; it
imports neither.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from metasim_jax import data as data_lib
from metasim_jax import features as features_lib
from metasim_jax import grammar as grammar_lib
from metasim_jax import keys
from metasim_jax import parallel
from metasim_jax import render as render_lib
from metasim_jax import tasknet as tasknet_lib
from metasim_jax import transformer as transformer_lib
from metasim_jax.features import FeatureFn, MMDTarget
from metasim_jax.grammar.spec import Grammar
from metasim_jax.transformer import losses
from metasim_jax.types import LabeledSet, SceneGraph, TexturePool

Pools = Mapping[str, TexturePool]
SOURCES = ("prior", "metasim", "target")


@dataclasses.dataclass(frozen=True, eq=False)
class Pipeline:
  """Static description of one Meta-Sim problem (hashed by identity, so it
  can be a static jit argument).

  Attributes:
    prior, target: the input grammar and the target's (same structure).
    world: where assets and target data come from (``data.World``).
    renderer: ``render.Renderer``; semantic ids from ``semantic_names``.
    semantic_names: the problem's one semantic table (from the prior).
    transformer: the Distribution Transformer module.
    feature_fn: features of images for MMD^2.
    task: the downstream task (``tasknet.tasks.Task``).
    tasknet: the task network module.
    grad_mode: gradient path through the renderer (``render.MODES``).
    mmd_batch: scenes per MMD step.
    task_sigma: [N, A] REINFORCE sampling sigma, or None.
    mesh: devices the scene batches are split over (``parallel``), or
      None for one device.
    full: the grammar with every group mutable, where ``for_groups``
      restricted ``prior``; None otherwise.
    held: for a training stage that trains some groups only
      (``for_groups``), the grammar whose mutable attributes are the
      *other* groups': the MMD loss keeps the transformer's outputs for
      them at the identity (autoencoder loss times ``hold_weight``), so
      that they do not drift while hidden and jump when a later stage
      switches them on.  None otherwise.
    applied: for a stage after others (``for_groups(..., learned=...)``),
      the grammar whose mutable attributes the transformer writes: this
      stage's groups and those an earlier stage learned, which keep their
      learned values (outputs applied, gradients stopped: a stage trains
      its own groups only) instead of falling back to the prior.  None:
      ``prior``'s.
  """
  prior: Grammar
  target: Grammar
  world: data_lib.World
  renderer: render_lib.Renderer
  semantic_names: tuple[str, ...]
  transformer: transformer_lib.DistributionTransformer
  feature_fn: FeatureFn
  task: tasknet_lib.Task
  tasknet: nn.Module
  grad_mode: str = "finite_diff"
  mmd_batch: int = 50
  task_sigma: np.ndarray | None = None
  mesh: Mesh | None = None
  held: Grammar | None = None
  hold_weight: float = 1.0
  full: Grammar | None = None
  applied: Grammar | None = None

  def for_groups(self, groups, hold_weight: float = 1.0,
                 learned=()) -> "Pipeline":
    """This pipeline with only ``groups``' attributes mutable (a stage of
    the paper's schedule: cars, then + camera, ...; None: all of them);
    the transformer's parameters fit every stage's pipeline.  ``learned``:
    the groups earlier stages trained; their attributes keep the
    transformer's values (``applied``), the other groups are held at the
    identity (``held``) until a stage switches them on."""
    full = self.held_full()
    if groups is None or set(groups) == set(full.groups):
      return self if self.full is None else dataclasses.replace(
          self, prior=full, held=None, full=None, applied=None)
    groups = tuple(groups)
    kept = tuple(g for g in full.groups if g in set(learned) - set(groups))
    rest = tuple(g for g in full.groups
                 if g not in groups and g not in kept)
    return dataclasses.replace(
        self, prior=full.with_mutable_groups(groups),
        held=full.with_mutable_groups(rest) if rest else None,
        hold_weight=hold_weight, full=full,
        applied=full.with_mutable_groups(groups + kept) if kept else None)

  def held_full(self) -> Grammar:
    """The grammar with every group mutable (this pipeline's before
    ``for_groups``)."""
    return self.prior if self.full is None else self.full

  @property
  def headline(self) -> str:
    """The task's metric reported in tables and used as its reward."""
    return self.task.headline

  @property
  def canvas(self) -> render_lib.Canvas:
    return self.renderer.canvas

  @property
  def input_shape(self) -> tuple[int, int, int]:
    return self.renderer.canvas.shape

  # ----------------------------------------------------------- generation
  def grammar(self, source: str) -> Grammar:
    return self.target if source == "target" else self.prior

  def transform(self, params, scene: SceneGraph) -> SceneGraph:
    if self.applied is None:
      return transformer_lib.transform(params, self.transformer, self.prior,
                                       scene)[0]
    new = transformer_lib.transform(params, self.transformer, self.applied,
                                    scene)[0]
    return new.replace(attrs=self._stop_kept(new.attrs))

  def _stop_kept(self, attrs: jax.Array) -> jax.Array:
    """``attrs`` with the gradient stopped on the attributes that earlier
    stages learned and this one keeps (``applied``, not ``prior``)."""
    if self.applied is None:
      return attrs
    kept = np.asarray(self.applied.mutable) & ~np.asarray(self.prior.mutable)
    return jnp.where(kept, jax.lax.stop_gradient(attrs), attrs)

  def sample(self, key, batch: int, pools: Pools, params=None,
             source: str = "metasim") -> SceneGraph:
    """Scenes from the prior ('prior'), G_theta ('metasim') or 'target'."""
    if source not in SOURCES:
      raise ValueError(f"unknown source {source!r}; valid: {SOURCES}")
    scene = self.shard(
        grammar_lib.sample(key, self.grammar(source), batch, pools))
    if source != "metasim":
      return scene
    if params is None:
      raise ValueError("source 'metasim' needs transformer params")
    return self.transform(params, scene)

  def shard(self, tree):
    """Splits leading (batch) axes over the mesh's data devices."""
    return parallel.shard_batch(tree, self.mesh)

  def render(self, scene: SceneGraph, pools: Pools,
             grammar: Grammar | None = None) -> render_lib.Renders:
    return self.renderer.render(scene, grammar or self.prior, pools)

  def image_fn(self, pools: Pools):
    """attrs, node_mask -> image, with the configured gradient path."""
    fn = lambda attrs, mask: self.renderer.render_image(attrs, mask,
                                                        self.prior, pools)
    directional = None
    if hasattr(self.renderer, "finite_difference_vjp"):
      directional = lambda attrs, mask, g: (
          self.renderer.finite_difference_vjp(attrs, mask, g, self.prior,
                                              self.prior.fd_step))
    return render_lib.with_gradient(fn, self.prior.fd_step, self.grad_mode,
                                    directional)

  def images_and_targets(self, key, batch: int, pools: Pools, params,
                         source: str):
    """A fresh batch of ``source`` scenes: (images, task targets)."""
    scene = self.sample(key, batch, pools, params, source)
    renders = self.render(scene, pools, self.grammar(source))
    return renders.image, self.task.targets(scene, renders)

  # -------------------------------------------------------------- losses
  def mmd_loss(self, params, key, pools: Pools, feat_params,
               target: MMDTarget) -> jax.Array:
    if self.held is None:
      scene = self.sample(key, self.mmd_batch, pools, params)
      hold = 0.0
    else:  # one transform for both: the held groups' outputs, unmasked
      raw = self.shard(grammar_lib.sample(key, self.prior, self.mmd_batch,
                                          pools))
      full = self.held_full()
      new, logits = transformer_lib.transform(params, self.transformer,
                                              full, raw)
      applied = self.prior if self.applied is None else self.applied
      scene = raw.replace(attrs=jnp.where(
          applied.mutable, self._stop_kept(new.attrs), raw.attrs))
      hold = self.hold_weight * losses.autoencoder_loss(new, logits, raw,
                                                        self.held)
    image = self.image_fn(pools)(scene.attrs, scene.node_mask)
    return target.mmd2(self.feature_fn(feat_params, image)) + hold

  def pretrain_loss(self, params, key, pools: Pools, batch: int):
    scene = self.shard(grammar_lib.sample(key, self.prior, batch, pools))
    new, logits = transformer_lib.transform(params, self.transformer,
                                            self.prior, scene)
    return losses.autoencoder_loss(new, logits, scene, self.prior)

  # ---------------------------------------------------------- task model
  def task_trainer(self, tx, *, steps: int, batch: int, source: str
                   ) -> tasknet_lib.HostTrainer:
    """Trains the task net on fresh ``source`` scenes (host loop):
    ``.run(key, params, pools) -> (task params, last loss)``."""
    fn = lambda k, params, pools: self.images_and_targets(k, batch, pools,
                                                          params, source)
    return tasknet_lib.HostTrainer(self.tasknet, self.task.loss, tx, fn,
                                   steps, self.input_shape)

  def score(self, task_params, data: LabeledSet) -> dict[str, jax.Array]:
    return self.task.score(task_params, self.tasknet, data)

  def init_transformer(self, k_scene, k_params, pools: Pools):
    """Fresh transformer params (shapes from two sampled scenes)."""
    scene = grammar_lib.sample(k_scene, self.prior, 2, pools)
    return transformer_lib.init(k_params, self.transformer, self.prior, scene)


# ------------------------------------------------------------- building
def grammar_dict(config, which: str) -> dict:
  """``config.<which>`` (a dict), or the JSON file ``config.<which>_file``
  if set (``which``: "grammar" or "target")."""
  path = config[f"{which}_file"]
  if not path:
    return config[which].to_dict()
  try:
    with open(path) as f:
      return json.load(f)
  except OSError as e:
    raise ValueError(f"config.{which}_file: cannot read {path!r}: "
                     f"{e.strerror}") from None
  except json.JSONDecodeError as e:
    raise ValueError(f"config.{which}_file: {path!r} is not valid JSON: "
                     f"{e}") from None


def check_target(prior: Grammar, target: Grammar) -> None:
  """Raises ``ValueError`` unless ``target`` has the prior's structure
  (slots, attributes) and semantic classes."""
  why = ""
  if prior.attr_names != target.attr_names:
    why = (f"attributes {list(target.attr_names)} vs the grammar's "
           f"{list(prior.attr_names)}")
  else:
    for a, b in zip(prior.slots, target.slots):
      if (a.path, a.cls) != (b.path, b.cls):
        why = f"slot {b.path!r} ({b.cls}) where the grammar has {a.path!r}"
        break
    else:
      if len(prior.slots) != len(target.slots):
        why = f"{len(target.slots)} slots, the grammar {len(prior.slots)}"
      elif not (prior.has_attr == target.has_attr).all():
        i, j = np.argwhere(prior.has_attr != target.has_attr)[0]
        why = (f"slot {prior.slots[i].path!r} and attribute "
               f"{prior.attr_names[j]!r}")
  if why:
    raise ValueError("config.target must have the structure of "
                     "config.grammar (same classes, children, attributes); "
                     f"it differs in {why}")
  render_lib.check_same_semantics(prior, target, "config.target")


def _mesh(config) -> Mesh | None:
  """The mesh of ``config.parallel`` (None when it has one device)."""
  mesh = parallel.make_mesh(config.parallel.devices, config.parallel.starts)
  return None if mesh.size == 1 else mesh


def build(config) -> tuple[Pipeline, Any]:
  """(pipeline, frozen feature-net params) of ``config``."""
  prior = grammar_lib.compile_grammar(grammar_dict(config, "grammar"))
  target = grammar_lib.compile_grammar(grammar_dict(config, "target"))
  check_target(prior, target)
  world = data_lib.get(config.world)
  names = render_lib.semantic_names(prior)
  renderer = render_lib.create(config.renderer,
                               canvas=render_lib.Canvas(**config.canvas),
                               semantic_names=names,
                               **config.renderer_options)
  if config.mmd.grad not in render_lib.MODES:
    raise ValueError(f"config.mmd.grad {config.mmd.grad!r} is not one of "
                     f"{render_lib.MODES}")
  if config.mmd.grad == "autodiff" and not renderer.differentiable:
    raise ValueError(f"config.mmd.grad 'autodiff': renderer "
                     f"{config.renderer!r} has no JAX gradient; use "
                     "'finite_diff'")
  task = tasknet_lib.tasks.create(config.task_type, config, prior, names)
  # Lists (a config read back from results.json) as tuples: a Flax module
  # is a jit cache key, and its attributes must hash.
  kwargs = {k: tuple(v) if isinstance(v, list) else v
            for k, v in config.tasknet.kwargs.items()}
  kwargs.setdefault("num_classes", task.num_outputs)
  feat_params, feat_fn = features_lib.create(**config.features)
  sigma = (losses.sigma_table(prior, dict(config.task.sigma))
           if config.task.weight else None)
  pipe = Pipeline(
      prior=prior, target=target, world=world, renderer=renderer,
      semantic_names=names,
      transformer=transformer_lib.build(prior, **config.transformer),
      feature_fn=feat_fn, task=task,
      tasknet=tasknet_lib.create(config.tasknet.name, **kwargs),
      grad_mode=config.mmd.grad, mmd_batch=config.mmd.batch_size,
      task_sigma=sigma, mesh=_mesh(config))
  return pipe, feat_params


def build_data(config, pipe: Pipeline):
  """(grammar pools, {'real', 'val', 'test'} target sets) of the world."""
  pools = dict(pipe.world.grammar_pools(config))
  sets = pipe.world.target_sets(keys.root(config.data_seed, "data"), config,
                                pipe)
  data_lib.check_sets(sets, config.world)
  return pools, {k: LabeledSet(jnp.asarray(v.images), jnp.asarray(v.labels))
                 for k, v in sets.items()}
