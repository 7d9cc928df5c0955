"""Scoring against a candidate table sharded over devices, for millions of poses.

``scoring.make_predictor`` keeps the whole ``[N, D]`` pose-embedding table
(and the ``[N, 17, 3]`` candidate poses) on every device. For large motion
collections that does not fit: here both are split along N over a mesh
axis, every device scores its slice and keeps its own top ``depth``
(``depth = max(A, top_k)``), and one merge gives the global answer:

  sharded = shard_candidates(table, candidates, mesh)          # once
  predict = make_sharded_predictor(model, mesh, avg_sizes=(500,), top_k=10)
  out = predict(variables, images, sharded)                    # as make_predictor

The merge is exact: the global top ``depth`` of ``N`` scores lies within the
union of the per-device top ``depth``, and ``lax.top_k`` breaks ties by the
lower index, so concatenating the per-device lists in device order (device
``i`` holds global rows ``[i * n_local, (i + 1) * n_local)``) and taking the
top ``depth`` of that gives the same poses in the same order as the
unsharded ``lax.top_k`` over all N, ties included. Avg(A) then sums, on each
device, those of its own top poses that made the global top A, and adds the
sums over devices (``psum``), so no pose crosses devices.

Per device: the table slice ``N / d x D``, the poses ``N / d x 51``, and
``[B, d * depth]`` scores and indices for the merge.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from structnet_jax import models
from structnet_jax import scoring
from structnet_jax import sharding as sharding_lib
from structnet_jax import xla_cpu

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class ShardedCandidates:
  """A candidate set split along N over ``axis`` of ``mesh``.

  Attributes:
    table: ``[N_pad, D]`` float32 pose embeddings f_J, sharded over rows.
    poses: ``[N_pad, 17, 3]`` float32 mm, sharded the same way.
    num: the real N; rows from ``num`` on are padding and never chosen.
    axis: the mesh axis the rows are split over.
  """
  table: Array
  poses: Array
  num: int
  axis: str


def shard_candidates(table, candidates, mesh: Mesh,
                     axis: str = sharding_lib.DATA_AXIS) -> ShardedCandidates:
  """Places a candidate table and its poses on ``mesh``, split along N.

  Args:
    table: ``[N, D]`` pose embeddings (``scoring.embed_candidate_poses``).
    candidates: ``[N, 17, 3]`` mm, the poses of the table's rows.
    mesh: the device mesh; ``axis`` names the axis to split over.

  Returns:
    ``ShardedCandidates`` with N padded to a multiple of the axis size.
  """
  poses = scoring.check_candidates(candidates).astype(np.float32)
  table = np.asarray(table, np.float32)
  if table.ndim != 2 or table.shape[0] != poses.shape[0]:
    raise ValueError(
        f"the candidate table must be [N, D] with one row per candidate pose "
        f"(N={poses.shape[0]}), got shape {table.shape}; embed the same set "
        "you score against.")
  if axis not in mesh.shape:
    raise ValueError(f"mesh has no axis {axis!r}; its axes are "
                     f"{tuple(mesh.shape)}.")
  n = poses.shape[0]
  pad = (-n) % mesh.shape[axis]
  table = np.concatenate([table, np.zeros((pad, table.shape[1]), np.float32)])
  poses = np.concatenate([poses, np.zeros((pad,) + poses.shape[1:],
                                          np.float32)])
  rows = NamedSharding(mesh, P(axis))
  return ShardedCandidates(jax.device_put(table, rows),
                           jax.device_put(poses, rows), n, axis)


def sharded_top(image_embeddings: Array, sharded: ShardedCandidates,
                mesh: Mesh, avg_sizes: Sequence[int], depth: int
                ) -> dict[str, Any]:
  """Max, Avg(A) and the top ``depth`` over a sharded candidate set.

  Args:
    image_embeddings: ``[B, D]`` f_I, replicated.
    sharded: the candidates (``shard_candidates``).
    avg_sizes: the A of Avg(A), each ``<= depth``.
    depth: how many best candidates to return, ``<= sharded.num``.

  Returns:
    ``{"max": [B, 17, 3], "avg": {A: [B, 17, 3]}, "top_indices": [B, depth]
    int32 (global rows), "top_scores": [B, depth]}``, replicated; equal to
    the unsharded ``lax.top_k`` of all N scores.
  """
  axis, num = sharded.axis, sharded.num
  n_local = sharded.table.shape[0] // mesh.shape[axis]
  local_depth = min(depth, n_local)
  avg_sizes = tuple(avg_sizes)

  def local(emb, table, poses):
    me = jax.lax.axis_index(axis)
    first = me * n_local
    scores = emb @ table.T                                   # [B, n_local]
    rows = first + jnp.arange(n_local)
    scores = jnp.where(rows[None] < num, scores, -jnp.inf)
    s_loc, i_loc = jax.lax.top_k(scores, local_depth)        # [B, d_loc]
    all_s = jax.lax.all_gather(s_loc, axis, axis=1, tiled=True)
    all_i = jax.lax.all_gather(i_loc + first, axis, axis=1, tiled=True)
    top_s, pos = jax.lax.top_k(all_s, depth)                 # [B, depth]
    top_i = jnp.take_along_axis(all_i, pos, axis=1)
    # The global rank of each of this device's local top entries (depth:
    # not in the global top).
    b = emb.shape[0]
    rank = jnp.full(all_s.shape, depth, jnp.int32).at[
        jnp.arange(b)[:, None], pos].set(jnp.arange(depth, dtype=jnp.int32))
    my_rank = jax.lax.dynamic_slice_in_dim(rank, me * local_depth,
                                           local_depth, axis=1)
    my_poses = poses[i_loc]                                  # [B, d_loc, 17, 3]

    def total_of_top(a):
      w = (my_rank < a).astype(my_poses.dtype)[..., None, None]
      return jax.lax.psum(jnp.sum(w * my_poses, axis=1), axis)

    return {"max": total_of_top(1),
            "avg": {a: total_of_top(a) / a for a in avg_sizes},
            "top_indices": top_i, "top_scores": top_s}

  # Every output is the same on all devices (built from all_gather / psum
  # results), which the replication check cannot infer through top_k.
  fn = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(axis), P(axis)),
                     out_specs=P(), check_vma=False)
  return fn(image_embeddings, sharded.table, sharded.poses)


def make_sharded_predictor(model: models.StructNet, mesh: Mesh,
                           avg_sizes: Sequence[int] = (500,), top_k: int = 10):
  """``scoring.make_predictor`` against a ``ShardedCandidates``.

  Returns ``predict(variables, images [B, H, W, 3], sharded) -> dict`` with
  the keys and values of ``make_predictor``'s (``max``, ``avg``, ``pred``,
  ``top_indices``, ``top_scores``, ``image_embedding``).
  """
  avg_sizes = tuple(sorted(set(int(a) for a in avg_sizes)))
  depth = max(avg_sizes + (top_k, 1))

  compiled: dict[tuple[int, str], Any] = {}  # one jit per (N, axis)

  def compile_for(num: int, axis: str):
    def run(variables, images, table, poses):
      emb, pred = scoring.image_side(model, variables, images)
      sharded = ShardedCandidates(table, poses, num, axis)
      out = sharded_top(emb, sharded, mesh, avg_sizes, depth)
      return {"max": out["max"], "avg": out["avg"], "pred": pred,
              "top_indices": out["top_indices"][:, :top_k],
              "top_scores": out["top_scores"][:, :top_k],
              "image_embedding": emb}
    return xla_cpu.network_jit(run)

  def checked_predict(variables, images, sharded: ShardedCandidates):
    images = scoring.check_images(images)
    scoring.check_depths(sharded.num, avg_sizes, top_k)
    key = (sharded.num, sharded.axis)
    if key not in compiled:
      compiled[key] = compile_for(*key)
    return compiled[key](variables, images, sharded.table, sharded.poses)

  return checked_predict
