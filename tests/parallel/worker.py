"""The same steps on one device and split over a mesh, in a subprocess.

  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
      python -m tests.parallel.worker devices
  python -m tests.parallel.worker hosts PROCESS_ID PORT   # x2 processes

``devices``: one process, 4 forced CPU devices, a mesh of 2 starts x 2
data devices.  ``hosts``: one of 2 processes joined by ``jax.distributed``
on loopback (gloo collectives), 1 device each, a mesh over both (MMD
steps only).  The reference is the same computation without a mesh (on the
process's own device).  Prints ``RESULT {json}``: the largest absolute
difference of parameters (and metrics) between the two.
"""

import dataclasses
import json
import sys

import jax
import numpy as np

from experiments.configs import mnist as mnist_config
from metasim_jax import parallel
from metasim_jax import pipeline as pipeline_lib
from metasim_jax.features import MMDTarget
from metasim_jax.training import steps


def small_config():
  c = mnist_config.get_config("rot,smoke,both")
  c.mmd.batch_size = 16
  c.mmd.grad = "autodiff"  # compiles faster; the split is the same
  return c


def max_diff(a, b) -> float:
  a, b = parallel.to_host(a), parallel.to_host(b)
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - y)))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def run_steps(pipe, c, feat_params, pools, sets, mmd_only=False):
  """Parameters after 2 MMD steps (2 starts), 1 task step (Algorithm 1,
  MMD term off) and a 4-step task-net training on generated scenes (or
  after the MMD steps only)."""
  target = MMDTarget.create(pipe.feature_fn(feat_params, sets["real"].images),
                            c.mmd.median_multiples)
  params = pipe.init_transformer(jax.random.key(0), jax.random.key(1), pools)
  tx = steps.adam(c.mmd.lr)
  mmd_step = steps.make_mmd_step(pipe, tx)
  state = steps.init_state(jax.random.key(2), jax.tree.map(
      lambda x: np.stack([x, x + 0.01]), params), tx)
  for _ in range(2):
    state, m = mmd_step(state, pools, feat_params, target)
  out = {"mmd": state.params, "mmd2": m["mmd2"]}
  if mmd_only:
    return out
  gen_tx = steps.adam(c.task.gen_lr)
  task_step = steps.make_task_step(
      pipe, gen_tx, steps.adam(c.task.lr), num_scenes=c.task.num_scenes,
      inner_steps=c.task.inner_steps, inner_batch=c.task.inner_batch,
      # Without its MMD term: the MMD gradient's split is the MMD step's.
      task_weight=1.0, mmd_weight=0.0, baseline_decay=0.9, reward="score",
      fixed_task_init=True)
  state = steps.init_state(jax.random.key(3), jax.tree.map(
      lambda x: x[None], params), gen_tx)
  state, m = task_step(state, pools, feat_params, target, sets["val"])
  out.update(task=state.params, reward=m["reward"])
  trainer = pipe.task_trainer(steps.adam(c.eval.lr), steps=4,
                              batch=c.eval.batch_size, source="metasim")
  out["tasknet"], _ = trainer.run(jax.random.key(4), params, pools)
  return out


def compare(meshes, mmd_only=False):
  c = small_config()
  pipe, feat_params = pipeline_lib.build(c)
  pipe = dataclasses.replace(pipe, mesh=None)
  pools, sets = pipeline_lib.build_data(c, pipe)
  one = run_steps(pipe, c, feat_params, pools, sets, mmd_only)
  result = {}
  for name, mesh in meshes.items():
    many = run_steps(dataclasses.replace(pipe, mesh=mesh), c, feat_params,
                     pools, sets, mmd_only)
    result[name] = {k: max_diff(one[k], many[k]) for k in one}
  return result


def main(argv):
  if argv[1] == "devices":
    assert jax.device_count() == 4, jax.devices()
    result = compare({"2 starts x 2 data": parallel.make_mesh(4, 2)})
  else:
    process_id, port = int(argv[2]), int(argv[3])
    parallel.initialize(f"127.0.0.1:{port}", 2, process_id)
    assert jax.process_count() == 2 and jax.device_count() == 2
    # The task step and task-net training split the same way as in the
    # devices case; across hosts the MMD step shows the collectives work.
    result = compare({"2 hosts": parallel.make_mesh()}, mmd_only=True)
  print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
  main(sys.argv)
