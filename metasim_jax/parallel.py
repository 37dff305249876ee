"""Data parallelism over devices and hosts with ``jax.sharding``.

One ``Mesh`` with two axes:

* ``"data"``: every batch of scenes (MMD batches, the task objective's
  generated dataset, task-net minibatches) is split along its leading axis
  over these devices; each device samples, transforms, renders and
  featurises its own shard, and XLA all-reduces the losses and gradients;
* ``"starts"``: the K multi-start parameter sets of the MMD stage are split
  over these devices (``vmap(..., spmd_axis_name="starts")``).

Parameters and optimiser states are replicated along ``"data"``.  Nothing
else changes: the steps are the same ``jax.jit`` programs, annotated with
``with_sharding_constraint``, and random numbers are drawn with
partitionable threefry (JAX's default), so N devices draw the same scenes as
one and results agree up to float reduction order
(``tests/parallel/``).

Across hosts, ``initialize`` starts ``jax.distributed`` (coordinator,
process count, process id from flags) before anything touches a device;
``jax.devices()`` then lists every host's devices, the mesh spans them all,
and every process runs the same program on its own shard.  Host-side reads
go through ``to_host`` (a replicated array is read from the local copy) and
files are written by process 0 only (``is_writer``).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXES = ("starts", "data")


def initialize(coordinator: str = "", num_processes: int = 1,
               process_id: int = 0) -> None:
  """Starts ``jax.distributed`` for a multi-host run (no-op for one process).

  Must run before the first use of a device.  On CPU hosts the collectives
  go through gloo.
  """
  if num_processes <= 1:
    return
  if not coordinator:
    raise ValueError("parallel.num_processes > 1 needs "
                     "parallel.coordinator (host:port of process 0)")
  if not 0 <= process_id < num_processes:
    raise ValueError(f"parallel.process_id {process_id} is not in "
                     f"[0, {num_processes})")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator,
                             num_processes=num_processes,
                             process_id=process_id)


def make_mesh(devices: int = 0, starts: int = 1) -> Mesh:
  """A ("starts", "data") mesh over the first ``devices`` devices of every
  host (0: all of them); ``starts`` of them along the starts axis."""
  everything = jax.devices()
  n = devices or len(everything)
  if not 1 <= n <= len(everything):
    raise ValueError(f"parallel.devices={devices}, but there are "
                     f"{len(everything)} devices")
  if starts < 1 or n % starts:
    raise ValueError(f"parallel.starts={starts} must divide the {n} "
                     "devices of the mesh")
  grid = np.asarray(everything[:n], dtype=object).reshape(starts, n // starts)
  return Mesh(grid, AXES)


def size(mesh: Mesh | None, axis: str = "data") -> int:
  return 1 if mesh is None else int(mesh.shape[axis])


def shard_batch(tree: Any, mesh: Mesh | None) -> Any:
  """Constrains every leaf's leading axis to be split over ``"data"``.

  Inside ``jit`` only.  A no-op without a mesh or on one data device; a
  leaf whose leading axis does not divide (a picture grid's handful of
  scenes, the remainder of a rendered set) is left to the compiler
  (computed whole on every device).  The training batches are checked to
  divide at start-up (``check_batches``).
  """
  n = size(mesh)
  if n == 1:
    return tree

  def one(x):
    if x.ndim == 0 or x.shape[0] % n:
      return x
    spec = P("data", *([None] * (x.ndim - 1)))
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))

  return jax.tree.map(one, tree)


def check_batches(batches: dict[str, int], devices: int = 0,
                  starts: int = 1, num_starts: int = 1) -> None:
  """Raises ``ValueError`` naming the first batch size that does not split
  over the data devices (``devices``: 0 = all), or a start count that does
  not split over the starts devices."""
  n = (devices or jax.device_count()) // max(starts, 1)
  for name, b in batches.items():
    if n > 1 and b % n:
      raise ValueError(f"config.{name}={b} does not split over the {n} "
                       f"data devices; use a multiple of {n} or set "
                       "config.parallel.devices")
  if num_starts % max(starts, 1):
    raise ValueError(f"config.mmd.num_starts={num_starts} does not split "
                     f"over config.parallel.starts={starts} devices")


def shard_starts(tree: Any, mesh: Mesh | None) -> Any:
  """Splits stacked per-start leaves [K, ...] over the "starts" devices
  (inside ``jit``; a no-op unless that axis has several devices)."""
  n = size(mesh, "starts")
  if n == 1:
    return tree

  def one(x):
    if x.ndim == 0:
      return x
    if x.shape[0] % n:
      raise ValueError(f"{x.shape[0]} starts do not split over the {n} "
                       "devices of the mesh's starts axis "
                       "(--config.parallel.starts)")
    spec = P("starts", *([None] * (x.ndim - 1)))
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))

  return jax.tree.map(one, tree)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def to_host(tree: Any) -> Any:
  """NumPy copies of arrays, the same on every process.

  A replicated array spanning several hosts is not fully addressable; its
  local copy holds the whole value.  One split across hosts is gathered
  (a collective: every process must read it, in the same order, as the
  host loops do since every process runs the same program).
  """
  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      if x.sharding.is_fully_replicated:
        x = x.addressable_data(0)
      else:  # a collective: every process reads it at the same point
        from jax.experimental import multihost_utils
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))
  return jax.tree.map(one, tree)


def globalize(tree: Any) -> Any:
  """In a multi-host run, host-local leaves (made outside ``jit``, e.g. a
  fresh optimiser state) as replicated global arrays, which Orbax can
  save; unchanged for one process."""
  if jax.process_count() == 1:
    return tree
  every = NamedSharding(Mesh(np.asarray(jax.devices()), ("all",)), P())

  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return x
    return jax.make_array_from_process_local_data(every, np.asarray(x))

  return jax.tree.map(one, tree)


def replicated_like(target: Any) -> Any:
  """``jax.ShapeDtypeStruct``s of ``target`` with a replicated sharding
  over every device in a multi-host run (what Orbax restores into)."""
  if jax.process_count() == 1:
    return target
  every = NamedSharding(Mesh(np.asarray(jax.devices()), ("all",)), P())
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=every),
      target)


def barrier(name: str) -> None:
  """Waits until every process reaches ``name`` (no-op for one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def is_writer() -> bool:
  """True on the process that writes files (process 0)."""
  return jax.process_index() == 0
