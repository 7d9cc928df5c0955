"""Data-parallel placement over a ``jax.sharding.Mesh`` with one ``data`` axis.

The train and eval steps take a global batch sharded over ``data`` (one device
is the special case) and replicated parameters/state; XLA's partitioner inserts
the cross-device reductions.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh over ``devices`` (default: all devices) with axis ``"data"``."""
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("make_mesh needs at least one device.")
  return Mesh(np.array(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of an array's leading axis over ``data``: a batch's examples,
  or a table's rows (``shard_rows``)."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Full replication over the mesh."""
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  """Raises a clear error when the global batch does not split over the mesh."""
  n = mesh.shape[DATA_AXIS]
  if batch_size % n:
    raise ValueError(
        f"global batch size {batch_size} is not divisible by the {n} devices "
        f"of the mesh's '{DATA_AXIS}' axis; use a multiple of {n}.")


def shard_batch(batch: dict[str, Any], mesh: Mesh) -> dict[str, jax.Array]:
  """Places a host batch (this process's share) on the mesh as global arrays.

  Each leaf ``[B_local, ...]`` becomes one ``[B_global, ...]`` array sharded
  over ``data``; on one host ``B_global = B_local``.
  """
  sharding = data_sharding(mesh)
  leaves = jax.tree_util.tree_leaves(batch)
  if leaves:
    check_batch_size(np.shape(leaves[0])[0] * jax.process_count(), mesh)
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  return jax.tree_util.tree_map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
      batch)


def shard_rows(table, mesh: Mesh) -> jax.Array:
  """Places ``table [N, ...]`` on the mesh split along N (each device holds
  ``N / d`` rows), for pose spaces too large to replicate."""
  table = np.asarray(table)
  n, d = table.shape[0], mesh.shape[DATA_AXIS]
  if n % d:
    raise ValueError(
        f"the pose space has {n} poses, which do not split over the {d} "
        f"devices of the mesh; keep a multiple of {d} poses (drop the last "
        f"{n % d}) or set config.train.shard_pose_space=False.")
  return jax.device_put(table, data_sharding(mesh))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a pytree (params, train state, pose table) on every device."""
  return jax.device_put(tree, replicated(mesh))
