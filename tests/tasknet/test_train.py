"""One task-net trainer: the in-jit scan and the host loop are the same
procedure (same keys, same steps), so they give the same network."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from metasim_jax import tasknet


class _Tiny(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    x = nn.Dropout(0.2, deterministic=not train)(x.reshape(x.shape[0], -1))
    return nn.Dense(3)(x)


def _batch(key, scale):
  x = jax.random.normal(key, (8, 4, 4, 1)) * scale
  y = (x.reshape(8, -1).sum(-1) > 0).astype(jnp.int32)
  return x, y


def test_scan_and_host_loop_train_the_same_network():
  key = jax.random.key(3)
  tx = optax.adam(1e-2)
  args = (
      _Tiny(), tasknet.cross_entropy, tx, _batch, 12, (4, 4, 1))
  scanned, losses = jax.jit(
      lambda k, s: tasknet.train(k, *args, s))(key, 2.0)
  host = tasknet.HostTrainer(*args)
  params, last = host.run(key, 2.0)
  chex_close = jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
      scanned, params)
  del chex_close
  np.testing.assert_allclose(last, losses[-1], rtol=1e-5)
  assert losses.shape == (12,) and float(losses[-1]) < float(losses[0])


def test_population_vmap_and_loop_train_the_same_networks():
  """Both member maps give each member the network HostTrainer trains on
  that member's data alone (same init, same minibatch and dropout keys)."""
  key = jax.random.key(5)
  args = (_Tiny(), tasknet.cross_entropy, optax.adam(1e-2), _batch, 6,
          (4, 4, 1))
  scales = jnp.asarray([0.5, 2.0, -1.0])
  mapped, _ = tasknet.PopulationTrainer(*args).run(key, 3, scales)
  looped, last = tasknet.PopulationTrainer(*args, vmap=False).run(
      key, 3, scales)
  assert last.shape == (3,)
  for j, s in enumerate(scales):
    alone, _ = tasknet.HostTrainer(*args).run(key, s)
    for tree in (mapped, looped):
      jax.tree.map(lambda a, b: np.testing.assert_allclose(
          a[j], b, rtol=1e-5, atol=1e-6), tree, alone)


def test_population_continues_from_a_common_start():
  """``start`` replaces the fresh initialisation for every member (e.g. a
  net trained on the unperturbed data), in both member maps."""
  key = jax.random.key(7)
  scales = jnp.asarray([0.5, 2.0])
  warm, _ = tasknet.HostTrainer(_Tiny(), tasknet.cross_entropy,
                                optax.adam(1e-2), _batch, 6,
                                (4, 4, 1)).run(jax.random.key(1), 1.0)
  frozen = optax.sgd(0.0)  # no step: every member stays at the start
  for vmap in (True, False):
    got, _ = tasknet.PopulationTrainer(
        _Tiny(), tasknet.cross_entropy, frozen, _batch, 3, (4, 4, 1),
        vmap=vmap).run(key, 2, scales, start=(warm, frozen.init(warm)))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[1], b),
                 got, warm)
  tx = optax.adam(1e-2)
  runs = [tasknet.PopulationTrainer(
      _Tiny(), tasknet.cross_entropy, tx, _batch, 3, (4, 4, 1),
      vmap=vmap).run(key, 2, scales, start=(warm, tx.init(warm)))[0]
          for vmap in (True, False)]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                       atol=1e-6), *runs)
  fresh, _ = tasknet.PopulationTrainer(
      _Tiny(), tasknet.cross_entropy, tx, _batch, 3, (4, 4, 1)).run(
          key, 2, scales)
  assert not np.allclose(fresh["Dense_0"]["kernel"],
                         runs[0]["Dense_0"]["kernel"])


def _host_batch(calls, fail_at=None):
  """``_batch`` at scale 1 through a host callback that records an id of
  the batch it draws (an integer from the batch's key) and fails on the
  id ``fail_at``."""

  def record(i):
    calls.append(int(i))
    if fail_at is not None and int(i) == fail_at:
      raise RuntimeError(f"renderer down at step {int(i)}")
    return np.float32(1.0)

  def batch(key, _):
    step = jax.random.randint(key, (), 0, 1 << 30)
    one = jax.pure_callback(record, jax.ShapeDtypeStruct((), jnp.float32),
                            step)
    return _batch(key, one)

  return batch


def test_host_loop_draws_each_batch_once_and_surfaces_host_errors():
  """The host loop draws the next batch on a worker thread during the
  update: every step's batch is drawn exactly once, the network is the
  scan's, and an error raised while drawing a batch reaches the caller."""
  key = jax.random.key(11)
  tx = optax.adam(1e-2)
  calls = []
  host = tasknet.HostTrainer(_Tiny(), tasknet.cross_entropy, tx,
                             _host_batch(calls), 5, (4, 4, 1))
  params, _ = host.run(key, 0.0)
  assert len(calls) == 5 and len(set(calls)) == 5
  scanned, _ = jax.jit(lambda k: tasknet.train(
      k, _Tiny(), tasknet.cross_entropy, tx,
      lambda kk, s: _batch(kk, 1.0), 5, (4, 4, 1), 0.0))(key)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, rtol=1e-5, atol=1e-6), scanned, params)
  host.prefetch = False  # each batch drawn just before its update
  serial, _ = host.run(key, 0.0)
  jax.tree.map(np.testing.assert_array_equal, serial, params)
  failing = tasknet.HostTrainer(_Tiny(), tasknet.cross_entropy, tx,
                                _host_batch([], fail_at=calls[2]), 5,
                                (4, 4, 1))
  with pytest.raises(Exception, match="renderer down"):  # XLA wraps it
    failing.run(key, 0.0)
