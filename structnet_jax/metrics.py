"""Pose-error metrics: MPJPE (paper Eq. 8), Procrustes-aligned MPJPE, tables.

The array metrics are ``jax.numpy`` functions that work under ``jit`` and
``vmap``; poses are millimetres ``[..., 17, 3]`` in the joint order of
``structnet_jax.poses`` and errors come back in millimetres. Shapes are checked
when the function is traced (shapes are static), so bad input gets a
``ValueError`` naming the problem rather than a shape error from inside XLA.

``per_action_stats`` and ``format_mean_std`` are host-side numpy helpers for
the result tables ("mean (std)" cells of the paper's Table 1).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from structnet_jax.poses import NUM_JOINTS

Array = jax.Array

ALL = "All"
# Section 6's alignment: "97% of the training images have their max-score
# pose within 30 mm" (MPJPE) of the ground truth.
ALIGNMENT_MM = 30.0


def _check_pose_shape(shape: tuple[int, ...], name: str) -> None:
  """Trace-time check that a static ``shape`` is ``[..., 17, 3]``."""
  if len(shape) < 2 or tuple(shape[-2:]) != (NUM_JOINTS, 3):
    raise ValueError(
        f"{name} must have shape [..., {NUM_JOINTS}, 3] (17 Human3.6M joints, "
        f"x/y/z in millimetres), got shape {tuple(shape)}. Reshape flat "
        f"[..., 51] poses with .reshape(-1, {NUM_JOINTS}, 3).")


def _pose_pair(pred, target, fn: str) -> tuple[Array, Array, tuple[int, ...]]:
  """Validates a (pred, target) pair; returns float arrays and the batch shape."""
  pred, target = jnp.asarray(pred), jnp.asarray(target)
  _check_pose_shape(pred.shape, f"{fn}: pred")
  _check_pose_shape(target.shape, f"{fn}: target")
  try:
    batch = np.broadcast_shapes(pred.shape[:-2], target.shape[:-2])
  except ValueError:
    raise ValueError(
        f"{fn}: the leading (batch) dimensions of pred {pred.shape[:-2]} and "
        f"target {target.shape[:-2]} do not broadcast. Give them equal leading "
        "shapes, or insert size-1 axes (e.g. pred[:, None], target[None]) to "
        "compare every pred with every target.") from None
  dtype = jnp.result_type(pred.dtype, target.dtype, jnp.float32)
  return pred.astype(dtype), target.astype(dtype), tuple(batch)


def _safe_norm(x: Array, axis: int = -1) -> Array:
  """Euclidean norm with a zero (not NaN) gradient where the norm is 0."""
  sq = jnp.sum(jnp.square(x), axis=axis)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def joint_errors(pred, target) -> Array:
  """Per-joint Euclidean distances ``[..., 17]`` mm between ``[..., 17, 3]`` poses.

  Leading dimensions broadcast. The gradient is finite (zero) where a joint
  coincides exactly with its target.
  """
  pred, target, _ = _pose_pair(pred, target, "joint_errors")
  return _safe_norm(pred - target)


def mpjpe(pred, target) -> Array:
  """Mean per-joint position error, paper Eq. 8.

  ``Delta(y, y') = 1/J sum_j ||y_j - y'_j||`` with J = 17.

  Args:
    pred: ``[..., 17, 3]`` mm.
    target: ``[..., 17, 3]`` mm; leading dimensions broadcast against
      ``pred`` (``mpjpe(y[:, None], cands[None])`` gives ``[B, N]``).

  Returns:
    ``[...]`` (the broadcast leading shape) errors in mm.

  Raises:
    ValueError: at trace time, if a trailing shape is not ``[17, 3]`` or the
      leading shapes do not broadcast.
  """
  pred, target, _ = _pose_pair(pred, target, "mpjpe")
  return jnp.mean(_safe_norm(pred - target), axis=-1)


def pairwise_mpjpe(poses_a, poses_b, *, chunk_size: int | None = None) -> Array:
  """MPJPE between every pose of ``poses_a`` and every pose of ``poses_b``.

  Used for the margin Delta between a batch of ground-truth poses and the
  candidate set (paper Eq. 7-8).

  Memory: with ``chunk_size=None`` this is a broadcast
  ``mpjpe(poses_a[:, None], poses_b[None])``, whose difference array is
  ``[B, N, 17, 3]`` in the program (XLA usually fuses it into the reduction,
  but it is not guaranteed to). With ``chunk_size=c`` the rows of ``poses_a``
  are processed ``c`` at a time by ``lax.map``, so at most a
  ``[c, N, 17, 3]`` difference exists at once. The per-joint differences are
  always taken directly (not via ``|a|^2 + |b|^2 - 2 a.b``), so identical
  poses give exactly 0 mm.

  Args:
    poses_a: ``[B, 17, 3]`` mm.
    poses_b: ``[N, 17, 3]`` mm.
    chunk_size: rows of ``poses_a`` per step, or None for one broadcast.

  Returns:
    ``[B, N]`` errors in mm.

  Raises:
    ValueError: at trace time, on shapes other than ``[B, 17, 3]`` and
      ``[N, 17, 3]`` or a non-positive ``chunk_size``.
  """
  poses_a, poses_b = jnp.asarray(poses_a), jnp.asarray(poses_b)
  for name, p in (("poses_a", poses_a), ("poses_b", poses_b)):
    if p.ndim != 3 or p.shape[1:] != (NUM_JOINTS, 3):
      raise ValueError(
          f"pairwise_mpjpe: {name} must have shape [B, {NUM_JOINTS}, 3] "
          f"(one batch axis, millimetres), got shape {p.shape}. Use mpjpe() "
          "with explicit broadcasting for other layouts.")
  if chunk_size is None:
    return mpjpe(poses_a[:, None], poses_b[None])
  if int(chunk_size) < 1:
    raise ValueError(
        f"pairwise_mpjpe: chunk_size must be a positive int or None, got "
        f"{chunk_size}.")
  return jax.lax.map(lambda a: mpjpe(a[None], poses_b), poses_a,
                     batch_size=int(chunk_size))


def procrustes_transform(pred, target) -> tuple[Array, Array, Array]:
  """Similarity transform that best maps ``pred`` onto ``target`` (least squares).

  Finds scale ``s >= 0``, proper rotation ``R`` (``det R = +1``; reflections
  are excluded) and translation ``t`` minimising
  ``sum_j ||s R pred_j + t - target_j||^2`` (Umeyama 1991), per pose.
  Apply as ``s[..., None, None] * pred @ R.mT + t[..., None, :]``.

  A pose whose joints all coincide gets ``s = 0`` (it is mapped onto the
  target's centroid) instead of NaN. The gradient through the SVD is not
  defined at repeated singular values; use this for evaluation.

  Args:
    pred: ``[..., 17, 3]`` mm.
    target: ``[..., 17, 3]`` mm; leading dimensions broadcast.

  Returns:
    ``(s [...], R [..., 3, 3], t [..., 3])`` with ``t`` in mm.
  """
  pred, target, batch = _pose_pair(pred, target, "procrustes_transform")
  pred = jnp.broadcast_to(pred, batch + pred.shape[-2:])
  target = jnp.broadcast_to(target, batch + target.shape[-2:])
  mu_p = jnp.mean(pred, axis=-2, keepdims=True)
  mu_t = jnp.mean(target, axis=-2, keepdims=True)
  x, y = pred - mu_p, target - mu_t
  # Cross-covariance H = sum_j x_j y_j^T; with H = U S V^T the best rotation
  # of column vectors is R = V D U^T, D = diag(1, 1, sign det(V U^T)).
  h = jnp.einsum("...ji,...jk->...ik", x, y)
  u, sv, vt = jnp.linalg.svd(h)
  d = jnp.sign(jnp.linalg.det(vt.mT @ u.mT))
  d = jnp.where(d == 0, 1.0, d).astype(sv.dtype)
  signs = jnp.concatenate([jnp.ones_like(sv[..., :2]), d[..., None]], axis=-1)
  rot = vt.mT @ (signs[..., :, None] * u.mT)
  var_x = jnp.sum(jnp.square(x), axis=(-2, -1))
  trace = jnp.sum(sv * signs, axis=-1)
  scale = jnp.where(var_x > 0, trace / jnp.where(var_x > 0, var_x, 1.0), 0.0)
  trans = mu_t[..., 0, :] - scale[..., None] * jnp.einsum(
      "...ik,...k->...i", rot, mu_p[..., 0, :])
  return scale, rot, trans


def procrustes_align(pred, target) -> Array:
  """``pred`` after the similarity Procrustes alignment onto ``target``.

  Args:
    pred: ``[..., 17, 3]`` mm.
    target: ``[..., 17, 3]`` mm; leading dimensions broadcast.

  Returns:
    ``[..., 17, 3]`` aligned poses in the target's frame, mm (the broadcast
    leading shape).
  """
  scale, rot, trans = procrustes_transform(pred, target)
  pred = jnp.asarray(pred).astype(rot.dtype)
  return (scale[..., None, None] * (pred @ rot.mT)) + trans[..., None, :]


def pa_mpjpe(pred, target) -> Array:
  """Procrustes-aligned MPJPE: ``mpjpe(procrustes_align(pred, target), target)``.

  Args:
    pred: ``[..., 17, 3]`` mm.
    target: ``[..., 17, 3]`` mm; leading dimensions broadcast.

  Returns:
    ``[...]`` errors in mm.
  """
  return mpjpe(procrustes_align(pred, target), target)


def per_action_stats(errors, actions: Sequence[str]) -> dict[str, dict[str, Any]]:
  """Mean, population std and count of per-example errors for each action.

  Host-side numpy, for result tables. ``std`` is ``ddof=0`` as in the paper's
  "mean (std)" cells.

  Args:
    errors: ``[M]`` per-example errors (e.g. MPJPE in mm), finite.
    actions: ``M`` action names, one per example.

  Returns:
    ``{action: {"mean": float, "std": float, "count": int}}`` for each action
    in order of first appearance, then ``"All"`` over all ``M`` examples.

  Raises:
    ValueError: if ``errors`` is not a non-empty 1-D finite numeric array, if
      the lengths differ, if an action is not a string, or if an action is
      named ``"All"``.
  """
  err = np.asarray(errors)
  if err.ndim != 1:
    raise ValueError(
        f"per_action_stats: errors must be a 1-D array [M] of per-example "
        f"errors, got shape {err.shape}. Flatten it, or reduce over joints "
        "first (e.g. with mpjpe).")
  if err.size == 0:
    raise ValueError("per_action_stats: errors is empty; there is nothing to "
                     "aggregate. Pass at least one example.")
  if not (np.issubdtype(err.dtype, np.floating) or
          np.issubdtype(err.dtype, np.integer)):
    raise ValueError(
        f"per_action_stats: errors must be numeric, got dtype {err.dtype}.")
  err = err.astype(np.float64)
  if not np.all(np.isfinite(err)):
    idx = np.flatnonzero(~np.isfinite(err))
    raise ValueError(
        f"per_action_stats: errors has {idx.size} NaN/infinite value(s) (first "
        f"indices: {idx[:5].tolist()}). Drop padded or failed examples first.")
  if isinstance(actions, str):
    raise ValueError("per_action_stats: actions must be a sequence of M "
                     "strings, got a single string.")
  actions = list(actions)
  if len(actions) != err.size:
    raise ValueError(
        f"per_action_stats: got {err.size} errors but {len(actions)} actions; "
        "give one action name per example.")
  bad = [i for i, a in enumerate(actions) if not isinstance(a, str)]
  if bad:
    raise ValueError(
        f"per_action_stats: actions must be strings, entry {bad[0]} is "
        f"{actions[bad[0]]!r} ({type(actions[bad[0]]).__name__}). Decode bytes "
        "with .decode() first.")
  if ALL in actions:
    raise ValueError(
        f"per_action_stats: {ALL!r} is reserved for the entry over all "
        "examples; rename that action.")

  def stats(x: np.ndarray) -> dict[str, Any]:
    return {"mean": float(np.mean(x)), "std": float(np.std(x)),
            "count": int(x.size)}

  names = np.asarray(actions, dtype=object)
  out = {a: stats(err[names == a]) for a in dict.fromkeys(actions)}
  out[ALL] = stats(err)
  return out


def format_mean_std(mean: float, std: float, decimals: int = 2) -> str:
  """A "mean (std)" table cell: ``format_mean_std(83.641, 27.44) == "83.64 (27.44)"``."""
  return f"{float(mean):.{decimals}f} ({float(std):.{decimals}f})"
