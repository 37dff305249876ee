"""The ``unrolled`` estimator (training/unrolled.py): the gradient of the
validation loss through a short inner training (of the smooth MNIST net:
softplus, average pooling) agrees with finite differences of that loss,
and a step moves the generator."""

import functools

import jax
import numpy as np
import optax
import pytest

from experiments.configs import mnist as mnist_config
from metasim_jax import pipeline as pipeline_lib
from metasim_jax.training import steps, unrolled


@pytest.fixture(scope="module")
def problem():
  c = mnist_config.get_config("rot,smoke")
  c.transformer.affine = True
  c.mmd.grad = "autodiff"  # the rasterizer's own gradient
  c.tasknet.kwargs = {**c.tasknet.kwargs, "smooth": True, "dropout": 0.0}
  pipe, _ = pipeline_lib.build(c)
  pools, sets = pipeline_lib.build_data(c, pipe)
  params = pipe.init_transformer(jax.random.key(0), jax.random.key(1), pools)
  return c, pipe, pools, sets["val"], params


def test_gradient_agrees_with_finite_differences(problem):
  c, pipe, pools, val, params = problem
  loss = jax.jit(lambda p: unrolled.validation_loss(
      pipe, p, jax.random.key(2), jax.random.key(3), pools, val,
      task_tx=optax.sgd(0.1), num_scenes=16, inner_steps=3,
      inner_batch=8)[0])
  grads = jax.grad(loss)(params)
  yaw = pipe.prior.col("yaw")
  digit = list(pipe.prior.classes).index("digit")
  for name in ("class_shift", "log_spread"):
    # Small steps: the bilinear sampling's kinks curve the loss (log_spread:
    # central differences -0.00223 / -0.00255 / -0.00274 at h = 0.003 /
    # 0.02 / 0.1 against the gradient's -0.00211); float32 noise is ~2 %.
    h = 0.002
    shifted = lambda s: {**params, name: params[name].at[digit, yaw].add(s)}
    fd = (loss(shifted(h)) - loss(shifted(-h))) / (2 * h)
    g = grads[name][digit, yaw]
    assert abs(fd) > 1e-4, (name, fd)  # the loss does depend on it
    np.testing.assert_allclose(g, fd, rtol=0.1, err_msg=name)


def test_step_moves_the_generator(problem):
  c, pipe, pools, val, params = problem
  tx = steps.adam(0.1)
  step = unrolled.make_unrolled_step(
      pipe, tx, optax.sgd(0.1), num_scenes=16, inner_steps=2,
      inner_batch=8, task_weight=1.0, mmd_weight=0.0, fixed_task_init=True)
  state = steps.init_state(jax.random.key(4), jax.tree.map(
      lambda x: x[None], params), tx)
  new, metrics = step(state, pools, None, None, val)
  assert np.isfinite(float(metrics["val_loss"]))
  after = jax.tree.map(lambda x: x[0], new.params)
  assert np.abs(np.asarray(after["class_shift"] - params["class_shift"])
                ).max() > 0
