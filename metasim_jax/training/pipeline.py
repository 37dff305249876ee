"""The Meta-Sim pipeline as pure functions, and its jitted training steps.

``Pipeline`` holds the static pieces (grammars, canvas, networks, feature
function, gradient mode); arrays (texture pools, feature-net params, target
features, validation set) are passed to every jitted function as arguments,
so nothing large is baked into a compiled program and one compilation serves
every seed.

Steps (each one ``jax.jit``; the host loop only calls them):
  * ``pretrain_step``: autoencoder (identity) pre-training of G_theta;
  * ``mmd_step``: sample -> transform -> render (autodiff or finite
    differences) -> features -> MMD^2 -> Adam, vmapped over K starts;
  * ``task_step``: Algorithm 1, REINFORCE with a trained-and-scored task
    network inside, plus an optional MMD term.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from metasim_jax import grammar as grammar_lib
from metasim_jax import render as render_lib
from metasim_jax import tasknet as tasknet_lib
from metasim_jax import transformer as transformer_lib
from metasim_jax.features import FeatureFn, MMDTarget
from metasim_jax.tasknet import segmentation
from metasim_jax.grammar.spec import Grammar
from metasim_jax.training import losses
from metasim_jax.types import SceneGraph, TexturePool

Pools = Mapping[str, TexturePool]
TASKS = ("classification", "segmentation")
REWARDS = ("score", "accuracy", "neg_loss")  # "accuracy": old name of score


@struct.dataclass
class MetaSimState:
  """Everything that changes during training: one pytree.

  Attributes:
    params: transformer params with a leading [K] axis (one per start).
    opt_state: optax state of the transformer optimiser, [K]-batched.
    baseline: [K] moving-average reward of REINFORCE.
    has_baseline: [K] bool, a reward has been seen.
    step: scalar int32 global step.
    key: PRNG key of the training loop.
  """
  params: Any
  opt_state: Any
  baseline: jax.Array
  has_baseline: jax.Array
  step: jax.Array
  key: jax.Array


@struct.dataclass
class LabeledSet:
  """A labelled image set: images [M, H, W, C] and int32 labels, [M]
  (classification) or [M, H, W] (segmentation, semantic ids)."""
  images: jax.Array
  labels: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class Pipeline:
  """Static description of one Meta-Sim problem (hashed by identity).

  ``task`` is ``"classification"`` (label = attribute ``label_col`` of slot
  ``label_slot``; headline metric ``accuracy``) or ``"segmentation"``
  (label = the renderer's semantic map, ids named by ``class_names``;
  headline ``miou``, the mean IoU over ``mean_over``).
  """
  prior: Grammar
  target: Grammar
  canvas: render_lib.Canvas
  transformer: transformer_lib.DistributionTransformer
  feature_fn: FeatureFn
  tasknet: nn.Module
  label_slot: int = -1
  label_col: int = -1
  grad_mode: str = "finite_diff"
  mmd_batch: int = 50
  task_sigma: np.ndarray | None = None
  task: str = "classification"
  class_names: tuple[str, ...] = ()
  mean_over: tuple[str, ...] = ()

  def __post_init__(self):
    if self.task not in TASKS:
      raise ValueError(f"unknown task {self.task!r}; valid: {TASKS}")
    if self.task == "classification" and self.label_slot < 0:
      raise ValueError("a classification pipeline needs label_slot/label_col")
    if self.task == "segmentation":
      missing = set(self.mean_over) - set(self.class_names)
      if not self.class_names or missing:
        raise ValueError(f"segmentation needs class_names containing "
                         f"mean_over; missing {sorted(missing)}")

  @property
  def headline(self) -> str:
    """The metric reported in tables and used as the task reward."""
    return "accuracy" if self.task == "classification" else "miou"

  # ----------------------------------------------------------- generation
  def labels(self, scene: SceneGraph) -> jax.Array:
    return scene.attrs[:, self.label_slot, self.label_col].astype(jnp.int32)

  def targets(self, scene: SceneGraph,
              renders: render_lib.Renders) -> jax.Array:
    """Task labels of rendered scenes: [B] classes or [B, H, W] ids."""
    if self.task == "segmentation":
      return renders.semantic
    return self.labels(scene)

  def transform(self, params, scene: SceneGraph) -> SceneGraph:
    return transformer_lib.transform(params, self.transformer, self.prior,
                                     scene)[0]

  def sample(self, key, batch: int, pools: Pools, params=None,
             source: str = "metasim") -> SceneGraph:
    """Scenes from the prior ('prior'), G_theta ('metasim') or 'target'."""
    if source == "target":
      return grammar_lib.sample(key, self.target, batch, pools)
    scene = grammar_lib.sample(key, self.prior, batch, pools)
    if source == "prior":
      return scene
    if source == "metasim":
      if params is None:
        raise ValueError("source 'metasim' needs transformer params")
      return self.transform(params, scene)
    raise ValueError(f"unknown source {source!r}; valid: prior, metasim, "
                     "target")

  def render(self, scene: SceneGraph, pools: Pools,
             grammar: Grammar | None = None) -> render_lib.Renders:
    return render_lib.render(scene, grammar or self.prior, pools, self.canvas)

  def image_fn(self, pools: Pools):
    """attrs, node_mask -> image, with the configured gradient path."""
    fn = lambda attrs, mask: render_lib.render_image(
        attrs, mask, self.prior, pools, self.canvas)
    return render_lib.with_gradient(fn, self.prior.fd_step, self.grad_mode)

  def images_and_labels(self, key, batch, pools, params, source):
    grammar = self.target if source == "target" else self.prior
    scene = self.sample(key, batch, pools, params, source)
    renders = self.render(scene, pools, grammar)
    return renders.image, self.targets(scene, renders)

  # -------------------------------------------------------------- losses
  def mmd_loss(self, params, key, pools: Pools, feat_params,
               target: MMDTarget) -> jax.Array:
    scene = self.sample(key, self.mmd_batch, pools, params)
    image = self.image_fn(pools)(scene.attrs, scene.node_mask)
    return target.mmd2(self.feature_fn(feat_params, image))

  def pretrain_loss(self, params, key, pools: Pools, batch: int):
    scene = grammar_lib.sample(key, self.prior, batch, pools)
    new, logits = transformer_lib.transform(params, self.transformer,
                                            self.prior, scene)
    return losses.autoencoder_loss(new, logits, scene, self.prior)

  # ---------------------------------------------------------- task model
  def train_tasknet(self, key, tx, batch_fn, steps):
    shape = (self.canvas.height, self.canvas.width, self.canvas.channels)
    return tasknet_lib.train(key, self.tasknet, tx, batch_fn, steps, shape)

  def score(self, task_params, data: LabeledSet) -> dict[str, jax.Array]:
    if self.task == "segmentation":
      return segmentation.evaluate(task_params, self.tasknet, data.images,
                                   data.labels, self.class_names,
                                   self.mean_over)
    return tasknet_lib.evaluate(task_params, self.tasknet, data.images,
                                data.labels)


def adam(lr: float, clip: float = 1.0, decay_steps: int | None = None
         ) -> optax.GradientTransformation:
  """Adam with global-norm clipping; cosine decay to 0 over decay_steps."""
  if decay_steps:
    lr = optax.cosine_decay_schedule(lr, decay_steps)
  return optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr))


def init_state(key: jax.Array, params_k, tx: optax.GradientTransformation
               ) -> MetaSimState:
  """State for K stacked transformer parameter sets."""
  k = jax.tree.leaves(params_k)[0].shape[0]
  return MetaSimState(params=params_k, opt_state=jax.vmap(tx.init)(params_k),
                      baseline=jnp.zeros((k,)),
                      has_baseline=jnp.zeros((k,), bool),
                      step=jnp.zeros((), jnp.int32), key=key)


def _apply(tx, grads, opt_state, params):
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def make_pretrain_step(pipe: Pipeline, tx, batch: int):
  """(params, opt_state, key, pools) -> (params, opt_state, loss); jitted."""

  @jax.jit
  def step(params, opt_state, key, pools):
    loss, grads = jax.value_and_grad(pipe.pretrain_loss)(params, key, pools,
                                                         batch)
    params, opt_state = _apply(tx, grads, opt_state, params)
    return params, opt_state, loss

  return step


def _check_batch(n: int, what: str):
  if n < 2:
    raise ValueError(f"{what} must be >= 2 for the unbiased MMD, got {n}")


def make_mmd_step(pipe: Pipeline, tx):
  """(state, pools, feat_params, target) -> (state, metrics); one jit.

  Every start sees the same scenes (common random numbers), so their MMDs
  are comparable.
  """
  _check_batch(pipe.mmd_batch, "mmd.batch_size")

  @functools.partial(jax.jit, donate_argnums=0)
  def step(state: MetaSimState, pools, feat_params, target: MMDTarget):
    key = jax.random.fold_in(state.key, state.step)

    def one(params, opt_state):
      loss, grads = jax.value_and_grad(pipe.mmd_loss)(params, key, pools,
                                                      feat_params, target)
      params, opt_state = _apply(tx, grads, opt_state, params)
      return params, opt_state, loss, optax.global_norm(grads)

    params, opt_state, loss, gnorm = jax.vmap(one)(state.params,
                                                   state.opt_state)
    state = state.replace(params=params, opt_state=opt_state,
                          step=state.step + 1)
    return state, {"mmd2": loss, "grad_norm": gnorm}

  return step


def make_mmd_eval(pipe: Pipeline, batch: int):
  """MMD^2 of each start on a fresh batch: (params_k, key, ...) -> [K]."""
  _check_batch(batch, "mmd.select_batch")

  @jax.jit
  def evaluate(params_k, key, pools, feat_params, target: MMDTarget):
    def one(params):
      scene = pipe.sample(key, batch, pools, params)
      image = pipe.render(scene, pools).image
      return target.mmd2(pipe.feature_fn(feat_params, image))
    return jax.vmap(one)(params_k)

  return evaluate


def make_task_step(pipe: Pipeline, tx, task_tx, *, num_scenes: int,
                   inner_steps: int, inner_batch: int, task_weight: float,
                   mmd_weight: float, baseline_decay: float, reward: str,
                   fixed_task_init: bool, noise: str = "per_scene"):
  """Algorithm 1 (+ optional MMD term) as one jitted step, K = 1 start.

  ``noise="per_scene"`` is the paper's Algorithm 1: every mutable attribute
  of every scene gets its own Gaussian noise and log p is summed over the
  attributes; the surrogate averages over scenes (so ``task_weight`` is per
  scene and does not scale with ``num_scenes``).
  ``"per_dataset"`` (ours) draws one shared offset per attribute for the
  whole dataset, so the reward sees a whole-distribution perturbation; log p
  is that of the shared offset.  (state, pools, feat_params, target, val)
  -> (state, metrics).
  """
  if reward not in REWARDS:
    raise ValueError(f"unknown task reward {reward!r}; valid: {REWARDS}")
  if noise not in ("per_scene", "per_dataset"):
    raise ValueError(f"unknown task noise {noise!r}; valid: per_scene, "
                     "per_dataset")
  if pipe.task_sigma is None:
    raise ValueError("task_step needs Pipeline.task_sigma")
  sigma = pipe.task_sigma

  @functools.partial(jax.jit, donate_argnums=0)
  def step(state: MetaSimState, pools, feat_params, target: MMDTarget,
           val: LabeledSet):
    key = jax.random.fold_in(state.key, state.step)
    k_scene, k_noise, k_task, k_mmd = jax.random.split(key, 4)
    if fixed_task_init:  # common random numbers across meta-epochs
      k_task = jax.random.fold_in(state.key, 2**31 - 1)
    params = jax.tree.map(lambda x: x[0], state.params)
    opt_state = jax.tree.map(lambda x: x[0], state.opt_state)

    scene = grammar_lib.sample(k_scene, pipe.prior, num_scenes, pools)
    mean = pipe.transform(params, scene)
    if noise == "per_scene":
      drawn = losses.gaussian_sample(k_noise, mean, sigma, pipe.prior)
    else:
      drawn = losses.shared_gaussian_sample(k_noise, mean, sigma, pipe.prior)
    renders = pipe.render(drawn, pools)
    images, labels = renders.image, pipe.targets(drawn, renders)

    def batch_fn(k):
      idx = jax.random.randint(k, (inner_batch,), 0, num_scenes)
      return images[idx], labels[idx]

    task_params, _ = pipe.train_tasknet(k_task, task_tx, batch_fn, inner_steps)
    scores = pipe.score(task_params, val)
    r = -scores["loss"] if reward == "neg_loss" else scores[pipe.headline]
    b = jnp.where(state.has_baseline[0], state.baseline[0], r)

    log_prob = (losses.gaussian_log_prob if noise == "per_scene"
                else losses.shared_gaussian_log_prob)

    def surrogate(p):
      logp = log_prob(drawn.attrs, pipe.transform(p, scene), sigma,
                      pipe.prior)
      return jnp.mean(losses.reinforce_surrogate(logp, r, b))

    loss, grads = jax.value_and_grad(surrogate)(params)
    grads = jax.tree.map(lambda g: task_weight * g, grads)
    mmd = jnp.zeros(())
    if mmd_weight:
      mmd, g_mmd = jax.value_and_grad(pipe.mmd_loss)(params, k_mmd, pools,
                                                     feat_params, target)
      grads = jax.tree.map(lambda a, c: a + mmd_weight * c, grads, g_mmd)
    params, opt_state = _apply(tx, grads, opt_state, params)
    new_b = baseline_decay * b + (1 - baseline_decay) * r
    state = state.replace(
        params=jax.tree.map(lambda x: x[None], params),
        opt_state=jax.tree.map(lambda x: x[None], opt_state),
        baseline=new_b[None], has_baseline=jnp.ones((1,), bool),
        step=state.step + 1)
    return state, {"reward": r, "baseline": b, "val_score":
                   scores[pipe.headline], "val_loss": scores["loss"],
                   "surrogate": loss, "mmd2": mmd}

  return step


def make_train_and_score(pipe: Pipeline, tx, *, steps: int, batch: int,
                         source: str):
  """Trains the task net on fresh scenes from ``source``; scores it.

  Returns ``run(key, params, pools, data) -> {'accuracy', 'loss',
  'train_loss'}``.  The loop runs on the host around one jitted step: XLA's
  CPU backend runs convolutions inside ``lax.scan`` bodies about 2x slower
  than in a top-level program (measured in ``benchmarks/``).  The same key
  gives every source the same scene draws and task-net initialisation
  (common random numbers).
  """
  shape = (1, pipe.canvas.height, pipe.canvas.width, pipe.canvas.channels)

  @jax.jit
  def init(key):
    p = pipe.tasknet.init(key, jnp.zeros(shape))["params"]
    return p, tx.init(p)

  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def step(task_params, opt_state, key, params, pools):
    k_data, k_drop = jax.random.split(key)
    x, y = pipe.images_and_labels(k_data, batch, pools, params, source)

    def loss_fn(p):
      logits = pipe.tasknet.apply({"params": p}, x, train=True,
                                  rngs={"dropout": k_drop})
      return tasknet_lib.cross_entropy(logits, y)

    loss, grads = jax.value_and_grad(loss_fn)(task_params)
    task_params, opt_state = _apply(tx, grads, opt_state, task_params)
    return task_params, opt_state, loss

  score = jax.jit(pipe.score)

  def run(key, params, pools, data: LabeledSet):
    k_init, k_loop = jax.random.split(key)
    task_params, opt_state = init(k_init)
    loss = jnp.zeros(())
    for i in range(steps):
      task_params, opt_state, loss = step(task_params, opt_state,
                                          jax.random.fold_in(k_loop, i),
                                          params, pools)
    return {**score(task_params, data), "train_loss": loss}

  return run
