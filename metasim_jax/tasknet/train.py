"""The one task-net trainer: a step function and its key schedule.

Every task network (inside the task meta-objective's jitted step, in the
probes and in the final evaluation) is trained by ``make_step``'s step with
the keys ``split_key`` derives: step ``i`` uses ``fold_in(k_loop, i)``.
Two drivers run it and give the same parameters (``tests/tasknet/
test_train.py``):

* ``train``: the whole loop as one ``lax.scan``, for use inside ``jit``;
* ``HostTrainer``: a host loop around two jitted programs, the batch and
  the update (``make_update``, compiled once per model, loss and optimiser
  and shared by every trainer of those); the next batch is drawn on a
  worker thread while the update runs.  XLA's CPU backend runs
  convolutions in a ``lax.scan`` body about 2x slower than in a top-level
  program (``benchmarks/meta_epoch.py``), so long trainings run this way.

``batch_fn(key, *args) -> (inputs, targets)`` draws a batch (fresh
generated scenes, or a minibatch of a fixed set); ``loss_fn(logits,
targets)`` is the task's loss.
"""

from __future__ import annotations

import functools
from concurrent import futures
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

BatchFn = Callable[..., tuple[jax.Array, jax.Array]]
LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy over every labelled position."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def init(key: jax.Array, model: nn.Module, tx: optax.GradientTransformation,
         input_shape: tuple[int, ...]):
  """(params, opt_state) of a freshly initialised ``model``."""
  params = model.init(key, jnp.zeros((1,) + tuple(input_shape)))["params"]
  return params, tx.init(params)


def make_update(model: nn.Module, loss_fn: LossFn,
                tx: optax.GradientTransformation):
  """``update((params, opt_state), k_drop, x, y) -> (carry, loss)``: one
  optimiser step on the batch (x, y)."""

  def update(carry, k_drop, x, y):
    params, opt_state = carry

    def loss(p):
      logits = model.apply({"params": p}, x, train=True,
                           rngs={"dropout": k_drop})
      return loss_fn(logits, y)

    value, grads = jax.value_and_grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), value

  return update


def make_step(model: nn.Module, loss_fn: LossFn,
              tx: optax.GradientTransformation, batch_fn: BatchFn):
  """``step((params, opt_state), key, *batch_args) -> (carry, loss)``."""
  update = make_update(model, loss_fn, tx)

  def step(carry, key, *batch_args):
    k_data, k_drop = jax.random.split(key)
    return update(carry, k_drop, *batch_fn(k_data, *batch_args))

  return step


def split_key(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(k_init, k_loop) of a training; step i uses fold_in(k_loop, i)."""
  k_init, k_loop = jax.random.split(key)
  return k_init, k_loop


def train(key: jax.Array, model: nn.Module, loss_fn: LossFn,
          tx: optax.GradientTransformation, batch_fn: BatchFn, num_steps: int,
          input_shape: tuple[int, ...], *batch_args):
  """Trains ``model`` from scratch in one ``lax.scan``; (params, losses)."""
  k_init, k_loop = split_key(key)
  step = make_step(model, loss_fn, tx, batch_fn)
  keys = jax.vmap(lambda i: jax.random.fold_in(k_loop, i))(
      jnp.arange(num_steps))
  (params, _), losses = jax.lax.scan(
      lambda carry, k: step(carry, k, *batch_args),
      init(k_init, model, tx, input_shape), keys)
  return params, losses


@functools.lru_cache(maxsize=None)
def _programs(model: nn.Module, loss_fn: LossFn,
              tx: optax.GradientTransformation, input_shape: tuple[int, ...],
              population: bool):
  """The jitted (init, update) of a task net, shared by every trainer of
  the same (model, loss, optimiser): the rows of a results table train on
  different data with one compiled update."""
  update = make_update(model, loss_fn, tx)
  if population:  # one member per leading index, the same dropout key
    update = jax.vmap(update, in_axes=(0, None, 0, 0))
  return (jax.jit(functools.partial(init, model=model, tx=tx,
                                    input_shape=input_shape)),
          jax.jit(update, donate_argnums=0))


class HostTrainer:
  """``train`` as a host loop (same keys, same result): each step runs two
  jitted programs, the batch (``batch_fn``, the trainer's own) and the
  update (shared by every trainer of the same model, loss and optimiser,
  so that training on another data source compiles only its batch).
  ``run(key, *batch_args) -> (params, last loss)``."""

  population = False
  prefetch = True  # False: each batch drawn just before its update

  def __init__(self, model: nn.Module, loss_fn: LossFn,
               tx: optax.GradientTransformation, batch_fn: BatchFn,
               num_steps: int, input_shape: tuple[int, ...]):
    self.num_steps = num_steps
    self._init, self._update = _programs(model, loss_fn, tx,
                                         tuple(input_shape), self.population)
    batch_fn = self._batch_fn(batch_fn)

    def batch(k_loop, i, args):
      """(k_drop, x, y) of step i."""
      k_data, k_drop = jax.random.split(jax.random.fold_in(k_loop, i))
      return (k_drop, *batch_fn(k_data, *args))

    self._batch = jax.jit(batch)

  def _batch_fn(self, batch_fn):
    return batch_fn

  def _loop(self, carry, k_loop, loss, batch_args):
    """The steps in order; step i+1's batch is drawn on a worker thread
    while step i's update runs, so that a batch's host work (an external
    renderer's round trip) overlaps the update.  Same keys, same programs,
    same result as drawing each batch just before its update."""

    def draw(i):
      return jax.block_until_ready(self._batch(k_loop, i, batch_args))

    if not self.prefetch or self.num_steps == 0:
      for i in range(self.num_steps):
        carry, loss = self._update(carry, *self._batch(k_loop, i, batch_args))
      return carry[0], loss
    with futures.ThreadPoolExecutor(1, "batch") as pool:
      pending = pool.submit(draw, 0)
      for i in range(self.num_steps):
        batch = pending.result()
        if i + 1 < self.num_steps:
          pending = pool.submit(draw, i + 1)
        carry, loss = self._update(carry, *batch)
    return carry[0], loss

  def run(self, key: jax.Array, *batch_args) -> tuple[Any, jax.Array]:
    k_init, k_loop = split_key(key)
    return self._loop(self._init(k_init), k_loop, jnp.zeros(()), batch_args)


class PopulationTrainer(HostTrainer):
  """``HostTrainer`` for a population of datasets: one task net per member,
  all from the same initialisation and with the same minibatch and dropout
  keys (common random numbers).  ``run(key, size, *batch_args)``: every
  batch argument has a leading [size] axis; returns (params, last losses),
  each [size]-batched.

  ``vmap=True`` maps the update over the members in one program;
  ``vmap=False`` trains them one after another with the single-net update.
  Same result.  vmap is the fast choice for small nets and on accelerators;
  on XLA's CPU backend, mapping a convolution over per-member weights
  becomes a grouped convolution that ran 4x slower per member for the
  Aerial2D U-Net (19x for its forward pass) than the plain one
  (``benchmarks/aerial_task_signal.py``'s docstring)."""

  def __init__(self, model: nn.Module, loss_fn: LossFn,
               tx: optax.GradientTransformation, batch_fn: BatchFn,
               num_steps: int, input_shape: tuple[int, ...],
               vmap: bool = True):
    self.population = vmap
    super().__init__(model, loss_fn, tx, batch_fn, num_steps, input_shape)

  def _batch_fn(self, batch_fn):
    """Every member's batch, with the same key."""
    if not self.population:
      return batch_fn
    return lambda k, *args: jax.vmap(lambda a: batch_fn(k, *a))(args)

  def run(self, key: jax.Array, size: int, *batch_args, start=None
          ) -> tuple[Any, jax.Array]:
    """``start``: the members' common (params, opt_state) to continue
    from (e.g. a net trained on the unperturbed data), instead of a fresh
    initialisation from ``key``."""
    k_init, k_loop = split_key(key)
    # A copy per member: the update donates its carry.
    first = ((lambda: self._init(k_init)) if start is None else
             (lambda: jax.tree.map(jnp.copy, start)))
    if not self.population:
      members = [self._loop(first(), k_loop, jnp.zeros(()),
                            tuple(a[j] for a in batch_args))
                 for j in range(size)]
      return jax.tree.map(lambda *x: jnp.stack(x), *members)
    carry = jax.tree.map(lambda x: jnp.broadcast_to(x, (size,) + x.shape),
                         first())
    return self._loop(carry, k_loop, jnp.zeros((size,)), batch_args)


def evaluate(params, model: nn.Module, images: jax.Array, labels: jax.Array,
             mask: jax.Array | None = None) -> dict[str, jax.Array]:
  """Accuracy and mean cross-entropy over a (padded, masked) labelled set."""
  logits = model.apply({"params": params}, images, train=False)
  if mask is None:
    mask = jnp.ones(labels.shape, bool)
  w = mask.astype(jnp.float32)
  n = jnp.maximum(w.sum(), 1.0)
  correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return {"accuracy": jnp.sum(correct * w) / n, "loss": jnp.sum(ce * w) / n}
