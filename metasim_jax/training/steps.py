"""The jitted training steps of the generator.

The host loops (``stages.py``) only call these:
  * ``pretrain_step``: autoencoder (identity) pre-training of G_theta;
  * ``mmd_step``: sample -> transform -> render (autodiff or finite
    differences) -> features -> MMD^2 -> Adam, vmapped over K starts;
  * ``task_step``: Algorithm 1, REINFORCE with a task network trained (the
    one task-net trainer, ``tasknet.train``) on the generated dataset and
    scored on V, plus an optional MMD term (three jitted programs).
Every step derives its keys from ``fold_in(state.key, state.step)``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from metasim_jax import grammar as grammar_lib
from metasim_jax import parallel
from metasim_jax import tasknet as tasknet_lib
from metasim_jax.features import MMDTarget
from metasim_jax.pipeline import Pipeline
from metasim_jax.transformer import losses
from metasim_jax.types import LabeledSet, MetaSimState

REWARDS = ("score", "neg_loss")  # and "score:METRIC" (reward_of)
OPTIMIZERS = ("adam", "sgd")
NOISES = ("per_scene", "per_dataset")


def check_reward(reward: str, metrics=None) -> None:
  """Raises ``ValueError`` unless ``reward`` is "score" (the task's
  headline metric on V), "neg_loss" (minus V's loss) or "score:METRIC"
  (that metric on V, e.g. "score:iou_car": one class's IoU where the
  headline averages it with classes the search cannot change); with
  ``metrics`` (the names ``Pipeline.score`` returns), METRIC must be one
  of them."""
  name, sep, metric = reward.partition(":")
  if name not in REWARDS or (sep and (name != "score" or not metric)):
    raise ValueError(f"unknown task reward {reward!r}; valid: {REWARDS} or "
                     "'score:METRIC'")
  if sep and metrics is not None and metric not in metrics:
    raise ValueError(f"task reward {reward!r}: V's scores have no metric "
                     f"{metric!r}; they have {sorted(metrics)}")


def reward_of(scores, reward: str, headline: str) -> jax.Array:
  """The task reward (higher is better) from V's ``scores``
  (``check_reward``'s forms)."""
  check_reward(reward, scores)
  if reward == "neg_loss":
    return -scores["loss"]
  return scores[reward.partition(":")[2] or headline]


def adam(lr: float, clip: float = 1.0, decay_steps: int | None = None,
         b1: float = 0.9, eps_root: float = 0.0
         ) -> optax.GradientTransformation:
  """Adam (momentum ``b1``) with global-norm clipping; cosine decay to 0
  over decay_steps.  ``eps_root`` > 0 keeps its square root differentiable
  where a gradient is 0 (for differentiating through a training:
  ``unrolled.py``)."""
  if decay_steps:
    lr = optax.cosine_decay_schedule(lr, decay_steps)
  return optax.chain(optax.clip_by_global_norm(clip),
                     optax.adam(lr, b1=b1, eps_root=eps_root))


def optimizer(name: str, lr: float, decay_steps: int | None = None
              ) -> optax.GradientTransformation:
  """The generator's MMD optimiser by name (``OPTIMIZERS``), clipped to
  global norm 1, cosine decay to 0 over ``decay_steps``:

  * ``adam``: every parameter moves at about ``lr`` a step whenever its
    gradient keeps its sign, however small the gradient: fast, but a
    near-zero, slightly biased gradient (a symmetric attribute such as a
    car's heading, from a symmetric prior) moves as fast as the
    attributes the loss really depends on;
  * ``sgd``: heavy-ball momentum 0.9, steps in proportion to the
    gradient: the strongly felt attributes move first (``lr`` depends on
    the loss's scale: ~10 lr x gradient a step).
  """
  if name not in OPTIMIZERS:
    raise ValueError(f"config.mmd.optimizer {name!r} is not one of "
                     f"{OPTIMIZERS}")
  if name == "adam":
    return adam(lr, decay_steps=decay_steps)
  if decay_steps:
    lr = optax.cosine_decay_schedule(lr, decay_steps)
  return optax.chain(optax.clip_by_global_norm(1.0),
                     optax.sgd(lr, momentum=0.9))


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


def _vmap_starts(pipe: Pipeline, fn):
  """vmap over the K starts, split over the mesh's "starts" devices."""
  return jax.vmap(fn, spmd_axis_name=(
      "starts" if parallel.size(pipe.mesh, "starts") > 1 else None))


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

    params, opt_state, loss, gnorm = _vmap_starts(pipe, one)(
        state.params, state.opt_state)
    params, opt_state = parallel.shard_starts((params, opt_state), pipe.mesh)
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
    return _vmap_starts(pipe, one)(params_k)

  return evaluate


INNER_LOOPS = ("auto", "host", "scan")


def make_task_step(pipe: Pipeline, tx, task_tx, *, num_scenes: int,
                   inner_steps: int, inner_batch: int, task_weight: float,
                   mmd_weight: float, baseline_decay: float, reward: str,
                   fixed_task_init: bool, noise: str = "per_scene",
                   inner_loop: str = "auto"):
  """Algorithm 1 (+ optional MMD term), K = 1 start: (state, pools,
  feat_params, target, val) -> (state, metrics).

  ``noise="per_scene"`` is the paper's Algorithm 1: every mutable attribute
  of every scene gets its own Gaussian noise and log p is summed over the
  attributes; the surrogate averages over scenes (so ``task_weight`` is per
  scene and does not scale with ``num_scenes``).
  ``"per_dataset"`` (ours) draws one shared offset per attribute for the
  whole dataset, so the reward sees a whole-distribution perturbation; log p
  is that of the shared offset.

  The step is three jitted programs: generate the dataset (sample,
  transform, noise, render), train the task net on it, score it on V and
  update the generator.  The REINFORCE gradient does not pass through the
  training, so the task net can be trained by either driver of the one
  trainer (same keys, same parameters): ``inner_loop="host"`` a host loop
  of jitted steps, ``"scan"`` one ``lax.scan`` inside a jitted program;
  ``"auto"`` takes "host" on the CPU (XLA's CPU backend runs the
  convolutions of a loop body several times slower) and "scan" on an
  accelerator (no per-step dispatch): ``benchmarks/meta_epoch.py``.
  """
  check_reward(reward)
  if noise not in NOISES:
    raise ValueError(f"unknown task noise {noise!r}; valid: {NOISES}")
  if inner_loop not in INNER_LOOPS:
    raise ValueError(f"unknown task inner loop {inner_loop!r}; valid: "
                     f"{INNER_LOOPS}")
  if pipe.task_sigma is None:
    raise ValueError("task_step needs Pipeline.task_sigma")
  if inner_loop == "auto":
    inner_loop = "host" if jax.default_backend() == "cpu" else "scan"
  sigma = pipe.task_sigma
  log_prob = (losses.gaussian_log_prob if noise == "per_scene"
              else losses.shared_gaussian_log_prob)

  def keys(state: MetaSimState):
    k_steps, k_fixed = jax.random.split(state.key)
    key = jax.random.fold_in(k_steps, state.step)
    k_scene, k_noise, k_task, k_mmd = jax.random.split(key, 4)
    if fixed_task_init:  # common random numbers across meta-epochs
      k_task = k_fixed
    return k_scene, k_noise, k_task, k_mmd

  def batch_fn(k, images, labels):
    idx = jax.random.randint(k, (inner_batch,), 0, num_scenes)
    return pipe.shard((images[idx], labels[idx]))

  @jax.jit
  def generate(state: MetaSimState, pools):
    """(scene, drawn scene, images, labels, task-net key)."""
    k_scene, k_noise, k_task, _ = keys(state)
    params = jax.tree.map(lambda x: x[0], state.params)
    scene = pipe.shard(
        grammar_lib.sample(k_scene, pipe.prior, num_scenes, pools))
    mean = pipe.transform(params, scene)
    if noise == "per_scene":
      drawn = losses.gaussian_sample(k_noise, mean, sigma, pipe.prior)
    else:
      drawn = losses.shared_gaussian_sample(k_noise, mean, sigma, pipe.prior)
    renders = pipe.render(drawn, pools)
    return (scene, drawn, renders.image, pipe.task.targets(drawn, renders),
            k_task)

  @functools.partial(jax.jit, donate_argnums=0)
  def update(state: MetaSimState, scene, drawn, task_params, pools,
             feat_params, target: MMDTarget, val: LabeledSet):
    _, _, _, k_mmd = keys(state)
    params = jax.tree.map(lambda x: x[0], state.params)
    opt_state = jax.tree.map(lambda x: x[0], state.opt_state)
    scores = pipe.score(task_params, val)
    r = reward_of(scores, reward, pipe.headline)
    b = jnp.where(state.has_baseline[0], state.baseline[0], r)

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

  if inner_loop == "host":
    trainer = tasknet_lib.HostTrainer(pipe.tasknet, pipe.task.loss, task_tx,
                                      batch_fn, inner_steps, pipe.input_shape)
    train = lambda k, images, labels: trainer.run(k, images, labels)[0]
  else:
    train = jax.jit(lambda k, images, labels: tasknet_lib.train(
        k, pipe.tasknet, pipe.task.loss, task_tx, batch_fn, inner_steps,
        pipe.input_shape, images, labels)[0])

  def step(state: MetaSimState, pools, feat_params, target: MMDTarget,
           val: LabeledSet):
    scene, drawn, images, labels, k_task = generate(state, pools)
    task_params = train(k_task, images, labels)
    return update(state, scene, drawn, task_params, pools, feat_params,
                  target, val)

  return step
