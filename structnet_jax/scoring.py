"""Inference by scoring images against a fixed candidate pose set (paper section 5.2).

Because f_S(x, y) = <f_I(x), f_J(y)>, the pose embeddings of a fixed candidate
set (all training poses) are computed once, offline, into a ``[N, D]`` table;
scoring a batch of images is then one ``[B, D] x [D, N]`` matrix product.

  table = embed_candidate_poses(model, variables, candidates)      # once
  predict = make_predictor(model, avg_sizes=(20, 500), top_k=10)   # jitted
  out = predict(variables, images, table, candidates)
  out["max"], out["avg"][500], out["pred"], out["top_indices"], out["top_scores"]

The host-side wrappers check their inputs (shapes, NaNs, empty sets, A > N)
before anything is traced.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from structnet_jax import models
from structnet_jax import poses as poses_lib
from structnet_jax import xla_cpu

Array = jax.Array


def check_candidates(candidates) -> np.ndarray:
  """Validates a candidate pose set ``[N, 17, 3]`` mm (host side)."""
  arr = poses_lib.check_poses(candidates, "candidate pose set")
  if arr.ndim != 3:
    raise ValueError(
        f"candidate pose set must be [N, 17, 3], got shape {arr.shape}.")
  if arr.shape[0] == 0:
    raise ValueError(
        "candidate pose set is empty (N=0): pass at least one pose, e.g. the "
        "training poses saved with the dataset.")
  return arr


def check_avg_sizes(avg_sizes: Sequence[int], num_candidates: int) -> tuple[int, ...]:
  """Validates the A of StructNet-Avg(A) against the candidate count N."""
  sizes = tuple(int(a) for a in avg_sizes)
  for a in sizes:
    if a < 1:
      raise ValueError(f"StructNet-Avg(A) needs A >= 1, got A={a}.")
    if a > num_candidates:
      raise ValueError(
          f"StructNet-Avg(A) with A={a} averages more poses than the candidate "
          f"set holds (N={num_candidates}); use A <= {num_candidates} or a "
          "larger candidate set.")
  return sizes


def embed_candidate_poses(model: models.StructNet, variables: dict[str, Any],
                          candidates, chunk_size: int = 8192) -> Array:
  """The pose-embedding table f_J(Y) of a candidate set, computed once.

  Args:
    model: the network.
    variables: its variables (``params``, ``pose_stats``, ...).
    candidates: ``[N, 17, 3]`` mm.
    chunk_size: poses embedded per jitted call (bounds memory).

  Returns:
    ``[N, D]`` float32 table, D the embedding width.
  """
  cands = check_candidates(candidates).astype(np.float32)
  n = cands.shape[0]
  chunk = min(chunk_size, n)
  pad = (-n) % chunk
  padded = np.concatenate([cands, np.repeat(cands[:1], pad, axis=0)])
  chunks = padded.reshape(-1, chunk, poses_lib.NUM_JOINTS, 3)
  table = _embed_chunks(model, variables, jnp.asarray(chunks))
  return table.reshape(-1, table.shape[-1])[:n]


@functools.partial(jax.jit, static_argnums=0)
def _embed_chunks(model, variables, chunks):
  return jax.lax.map(
      lambda c: model.apply(variables, c, method=models.StructNet.embed_pose),
      chunks)


def score_images(image_embeddings: Array, table: Array) -> Array:
  """Scores f_S ``[B, N]`` of image embeddings ``[B, D]`` against a table ``[N, D]``."""
  return image_embeddings @ table.T


def structnet_max(scores: Array, candidates: Array) -> Array:
  """StructNet-Max: the best-scoring candidate, ``[B, N], [N, 17, 3] -> [B, 17, 3]``."""
  return candidates[jnp.argmax(scores, axis=-1)]


def structnet_avg(scores: Array, candidates: Array, num_average: int) -> Array:
  """StructNet-Avg(A): mean of the top-A candidates, ``-> [B, 17, 3]`` mm."""
  _, idx = jax.lax.top_k(scores, num_average)
  return jnp.mean(candidates[idx], axis=1)


def avg_of_top(top_idx: Array, candidates: Array,
               avg_sizes: Sequence[int]) -> dict[int, Array]:
  """Avg(A) for several A from one sorted top list ``[B, >= max(A)]`` of
  candidate indices, via a running sum: ``{A: [B, 17, 3]}`` mm."""
  top_poses = candidates[top_idx]  # [B, Amax, 17, 3]
  running = jnp.cumsum(top_poses, axis=1)
  return {a: running[:, a - 1] / a for a in avg_sizes}


def make_predictor(model: models.StructNet, avg_sizes: Sequence[int] = (500,),
                   top_k: int = 10):
  """A jitted predictor for a batch of images against a candidate table.

  Returns ``predict(variables, images [B, H, W, 3], table [N, D],
  candidates [N, 17, 3]) -> dict`` with ``max [B, 17, 3]``, ``avg`` (``{A:
  [B, 17, 3]}``), ``pred [B, 17, 3]`` (the auxiliary head, StructNet-Pred),
  ``top_indices [B, top_k]`` and ``top_scores [B, top_k]`` (best first), and
  ``image_embedding [B, D]``. Poses in mm.
  """
  avg_sizes = tuple(sorted(set(int(a) for a in avg_sizes)))
  depth = max(avg_sizes + (top_k, 1))

  @xla_cpu.network_jit
  def predict(variables, images, table, candidates):
    emb, pred = image_side(model, variables, images)
    scores = score_images(emb, table)
    top_scores, top_idx = jax.lax.top_k(scores, depth)
    return {
        "max": candidates[top_idx[:, 0]],
        "avg": avg_of_top(top_idx, candidates, avg_sizes),
        "pred": pred,
        "top_indices": top_idx[:, :top_k],
        "top_scores": top_scores[:, :top_k],
        "image_embedding": emb,
    }

  def checked_predict(variables, images, table, candidates):
    images = check_images(images)
    candidates = jnp.asarray(candidates)
    n = table.shape[0]
    if n == 0:
      raise ValueError("the candidate table is empty (N=0).")
    if candidates.shape[0] != n:
      raise ValueError(
          f"the candidate table has {n} rows but {candidates.shape[0]} "
          "candidate poses were given; embed the same set you score against.")
    check_depths(n, avg_sizes, top_k)
    return predict(variables, images, table, candidates)

  return checked_predict


def check_images(images) -> Array:
  """A predictor's images, checked to be ``[B, H, W, 3]`` (host side)."""
  images = jnp.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(
        f"images must be [B, H, W, 3], got shape {tuple(images.shape)}.")
  return images


def check_depths(num_candidates: int, avg_sizes: Sequence[int],
                 top_k: int) -> None:
  """Every A of Avg(A) and ``top_k`` at most the candidate count N."""
  check_avg_sizes(avg_sizes, num_candidates)
  if top_k > num_candidates:
    raise ValueError(f"top_k={top_k} exceeds the candidate count "
                     f"N={num_candidates}.")


def image_side(model: models.StructNet, variables, images: Array
               ) -> tuple[Array, Array]:
  """``(f_I [B, D], StructNet-Pred [B, 17, 3] mm)`` of images ``[B, H, W, 3]``
  (dropout off), from one pass through the trunk and h1-h3."""
  h3 = model.apply(variables, images, method=_hidden_eval)
  emb = model.apply(variables, h3, method=models.StructNet.embed_hidden)
  pred = model.apply(
      variables, model.apply(variables, h3,
                             method=models.StructNet.predict_hidden),
      method=models.StructNet.denormalise_pose)
  return emb, pred


def _hidden_eval(module: models.StructNet, images):
  return module.hidden(*module.features(images), train=False)
