"""Forward kinematics of the 32-joint Human3.6M exponential-map skeleton.

The joint-angle release of Human3.6M (the "h3.6m exponential map" files used by
motion-prediction work) stores, per frame, one axis-angle rotation per joint of
a 32-joint tree. This module turns those angles into joint positions.

Conventions (those of the release, row vectors):

* joint ``i`` with parent ``p``: ``x_i = offset_i @ R_p + x_p`` and
  ``R_i = expmap(rot_i) @ R_p``;
* root: ``x_0 = offset_0 + root_position`` and ``R_0 = root_rotation``
  (``expmap(rot_0)`` when no root rotation is given).

A rotation ``R`` therefore maps a row vector ``v`` in the joint's frame to
``v @ R`` in the world (``R^T v`` for column vectors). Positions come out in
millimetres in the release's y-up frame; ``y_up_to_z_up`` turns them into the
z-up frame of Human3.6M's world coordinates.

The skeleton (parents, bone offsets) is data, not code: ``load_skeleton32``
reads it from ``h36m_skeleton32.json`` at a path the caller gives.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines import checks

NUM_JOINTS_32 = 32
NUM_JOINTS_17 = 17

# Below this squared angle (rad^2) the Rodrigues coefficients use their Taylor
# series, which are exact to float32 precision there.
_SMALL_ANGLE_SQ = 1e-6


@dataclasses.dataclass(frozen=True, eq=False)
class Skeleton32:
  """The 32-joint kinematic tree behind the exponential-map angles.

  Attributes:
    parents: 32 parent indices, 0-based, -1 for the root; every parent comes
      before its children.
    offsets: ``[32, 3]`` float32 mm, each joint's offset from its parent in
      the parent's frame (y-up).
    h36m17_from_32: the 17 indices into the 32 joints that give the Human3.6M
      evaluation skeleton, in the joint order of ``structnet_jax.poses``.
  """
  parents: tuple[int, ...]
  offsets: np.ndarray
  h36m17_from_32: tuple[int, ...]


def load_skeleton32(path: str | os.PathLike) -> Skeleton32:
  """Reads ``h36m_skeleton32.json`` (the format of the shared data README).

  Uses the fields ``parents_1based_0_is_root`` (1-based, 0 for the root),
  ``offsets_mm`` (``[32, 3]``) and ``h36m17_from_32``. The file's
  ``position_channels_1based`` is not used: only the root carries a
  translation, and it comes from the integrated root increments (columns 0..2
  of a motion row), not from per-joint channels.

  Args:
    path: the JSON file.

  Returns:
    A validated ``Skeleton32``.

  Raises:
    FileNotFoundError: no file at ``path``.
    ValueError: unreadable JSON, missing fields, or a malformed tree.
  """
  path = checks.existing_path(
      "skeleton file", path, "Pass the path of h36m_skeleton32.json (the "
      "32-joint tree that comes with the exponential-map motion, e.g. "
      "--skeleton=../shared/data/h36m_skeleton32.json).", kind="file")
  try:
    with open(path, encoding="utf-8") as f:
      raw = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(
        f"skeleton file {path!r} is not readable JSON ({e}). Pass the "
        "h36m_skeleton32.json that comes with the motion data.") from e
  fields = ("parents_1based_0_is_root", "offsets_mm", "h36m17_from_32")
  if not isinstance(raw, dict) or any(k not in raw for k in fields):
    have = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
    raise ValueError(
        f"skeleton file {path!r} must be a JSON object with fields {fields}; "
        f"got {have}. Is this the h36m_skeleton32.json of the motion data?")
  try:
    parents = np.asarray(raw["parents_1based_0_is_root"], np.int64) - 1
    offsets = np.asarray(raw["offsets_mm"], np.float64)
    select = np.asarray(raw["h36m17_from_32"], np.int64)
  except (TypeError, ValueError) as e:
    raise ValueError(
        f"skeleton file {path!r} has non-numeric fields ({e}).") from e
  problem = None
  if parents.shape != (NUM_JOINTS_32,):
    problem = (f"parents_1based_0_is_root must list {NUM_JOINTS_32} parents, "
               f"got shape {parents.shape}")
  elif parents[0] != -1 or np.any(parents[1:] < 0):
    problem = "joint 1 must be the only root (parent 0); others need a parent"
  elif np.any(parents[1:] >= np.arange(1, NUM_JOINTS_32)):
    problem = "every joint's parent must come before it in the list"
  elif offsets.shape != (NUM_JOINTS_32, 3) or not np.all(np.isfinite(offsets)):
    problem = (f"offsets_mm must be finite [{NUM_JOINTS_32}, 3] millimetres, "
               f"got shape {offsets.shape}")
  elif (select.shape != (NUM_JOINTS_17,) or np.any(select < 0)
        or np.any(select >= NUM_JOINTS_32)):
    problem = (f"h36m17_from_32 must be {NUM_JOINTS_17} indices in "
               f"[0, {NUM_JOINTS_32}), got {select.tolist()}")
  if problem:
    raise ValueError(f"skeleton file {path!r}: {problem}.")
  return Skeleton32(parents=tuple(int(p) for p in parents),
                    offsets=offsets.astype(np.float32),
                    h36m17_from_32=tuple(int(i) for i in select))


def expmap_to_rotmat(r: jax.Array) -> jax.Array:
  """Rotation matrices from exponential maps (Rodrigues' formula).

  ``R = I + sin(t)/t K + (1 - cos(t))/t^2 K^2`` with ``t = |r|`` and ``K`` the
  cross-product matrix of ``r``; the coefficients switch to Taylor series near
  ``t = 0``, so values and gradients stay finite there. Same matrix as
  ``scipy.spatial.transform.Rotation.from_rotvec(r).as_matrix()``.

  Args:
    r: ``[..., 3]`` axis-angle vectors, radians.

  Returns:
    ``[..., 3, 3]`` rotation matrices.
  """
  r = jnp.asarray(r)
  if not jnp.issubdtype(r.dtype, jnp.floating):
    r = r.astype(jnp.float32)
  t2 = jnp.sum(r * r, axis=-1)
  small = t2 < _SMALL_ANGLE_SQ
  t2_safe = jnp.where(small, 1.0, t2)  # keeps sqrt/divisions off zero
  t = jnp.sqrt(t2_safe)
  half = 0.5 * t
  a = jnp.where(small, 1.0 - t2 / 6.0, jnp.sin(t) / t)
  # (1 - cos t) / t^2 written as 2 sin^2(t/2) / t^2, free of cancellation.
  b = jnp.where(small, 0.5 - t2 / 24.0, 0.5 * jnp.square(jnp.sin(half) / half))
  x, y, z = r[..., 0], r[..., 1], r[..., 2]
  zero = jnp.zeros_like(x)
  k = jnp.stack([
      jnp.stack([zero, -z, y], -1),
      jnp.stack([z, zero, -x], -1),
      jnp.stack([-y, x, zero], -1),
  ], -2)
  eye = jnp.eye(3, dtype=r.dtype)
  return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def _fk_frame(angles, root_position, root_rotation, offsets, parents):
  """One frame: ``[32, 3]``, ``[3]``, ``[3, 3]``, ``[32, 3]`` -> ``[32, 3]``."""
  local = expmap_to_rotmat(angles)
  pos = [None] * len(parents)
  rot = [None] * len(parents)
  for i, p in enumerate(parents):  # static loop over the joints
    if p < 0:
      rot[i] = local[i] if root_rotation is None else root_rotation
      pos[i] = offsets[i] + root_position
    else:
      pos[i] = offsets[i] @ rot[p] + pos[p]
      rot[i] = local[i] @ rot[p]
  return jnp.stack(pos)


def forward_kinematics(angles, root_positions, root_rotations, offsets,
                       parents: Sequence[int]) -> jax.Array:
  """World joint positions of a tree skeleton, vectorised over frames.

  Pure ``jax.numpy`` (jit-friendly: ``parents`` is static; wrap in ``jax.jit``
  with ``static_argnames="parents"`` passing a tuple).

  Args:
    angles: ``[T, J, 3]`` exponential maps (radians), row ``i`` the rotation
      of joint ``i`` relative to its parent. The root's row is used only when
      ``root_rotations`` is None.
    root_positions: ``[T, 3]`` mm, added to the root's offset; None for 0.
    root_rotations: ``[T, 3, 3]`` the root's orientation ``R_0`` (row-vector
      convention: local ``v`` -> world ``v @ R_0``); None for
      ``expmap(angles[:, root])``.
    offsets: ``[J, 3]`` mm, each joint's offset from its parent in the
      parent's frame.
    parents: ``J`` parent indices, -1 for the root, parents before children.

  Returns:
    ``[T, J, 3]`` joint positions, mm, in the frame of the root's parent
    (the y-up world of the Human3.6M release).
  """
  parents = tuple(int(p) for p in parents)
  angles = jnp.asarray(angles)
  offsets = jnp.asarray(offsets, angles.dtype)
  num_joints = len(parents)
  if angles.ndim != 3 or angles.shape[1:] != (num_joints, 3):
    raise ValueError(
        f"angles must have shape [T, {num_joints}, 3] (one exponential map per "
        f"joint and frame, radians), got {angles.shape}.")
  if offsets.shape != (num_joints, 3):
    raise ValueError(
        f"offsets must have shape [{num_joints}, 3] mm (one per joint in "
        f"parents), got {offsets.shape}.")
  if any(p >= i for i, p in enumerate(parents)) or sum(
      p < 0 for p in parents) != 1:
    raise ValueError(
        f"parents must have exactly one root (-1) and list every parent before "
        f"its child, got {parents}.")
  frames = angles.shape[0]
  if root_positions is None:
    root_positions = jnp.zeros((frames, 3), angles.dtype)
  root_positions = jnp.asarray(root_positions, angles.dtype)
  if root_positions.shape != (frames, 3):
    raise ValueError(f"root_positions must have shape [{frames}, 3] mm, got "
                     f"{root_positions.shape}.")
  if root_rotations is not None:
    root_rotations = jnp.asarray(root_rotations, angles.dtype)
    if root_rotations.shape != (frames, 3, 3):
      raise ValueError(f"root_rotations must have shape [{frames}, 3, 3], got "
                       f"{root_rotations.shape}.")
    return jax.vmap(lambda a, t, r: _fk_frame(a, t, r, offsets, parents))(
        angles, root_positions, root_rotations)
  return jax.vmap(lambda a, t: _fk_frame(a, t, None, offsets, parents))(
      angles, root_positions)


def reduce_to_h36m17(positions32, h36m17_from_32: Sequence[int]):
  """The 17 evaluation joints out of 32: ``[..., 32, 3]`` -> ``[..., 17, 3]``.

  Args:
    positions32: ``[..., 32, 3]`` joint positions (any units).
    h36m17_from_32: 17 indices into the 32 joints (``Skeleton32``'s field), in
      the joint order of ``structnet_jax.poses``.

  Returns:
    ``[..., 17, 3]``, same type family as the input (numpy or jax).
  """
  idx = np.asarray(h36m17_from_32, np.int64)
  if idx.shape != (NUM_JOINTS_17,):
    raise ValueError(f"h36m17_from_32 must hold {NUM_JOINTS_17} indices, got "
                     f"{idx.shape}.")
  shape = positions32.shape
  if len(shape) < 2 or shape[-2:] != (NUM_JOINTS_32, 3):
    raise ValueError(f"positions32 must have shape [..., {NUM_JOINTS_32}, 3], "
                     f"got {shape}.")
  return positions32[..., idx, :]


def y_up_to_z_up(points, *, keep_handedness: bool = True):
  """From the release's y-up frame to Human3.6M's z-up world frame.

  The data README's recipe is the column swap ``(x, y, z) -> (x, z, y)``.
  A swap of two axes is a reflection: it turns every person into their mirror
  image (the joints labelled left end up on the body's right, so a renderer
  that finds "forward" as ``cross(left, up)`` puts the face on the back of the
  head). The FK output of the release is a right-handed, anatomically correct
  body, so by default this function applies the proper rotation that also
  takes y up to z up: ``(x, y, z) -> (x, -z, y)`` (+90 degrees about x). It
  differs from the swap only in the sign of the new y, i.e. in a mirror.

  Args:
    points: ``[..., 3]`` in the y-up frame (any units).
    keep_handedness: True (default) for the rotation ``(x, -z, y)``; False for
      the README's literal (mirroring) swap ``(x, z, y)``.

  Returns:
    ``[..., 3]`` in the z-up frame, same array family as the input.
  """
  if points.shape[-1:] != (3,):
    raise ValueError(f"points must have shape [..., 3], got {points.shape}.")
  x, y, z = points[..., 0], points[..., 1], points[..., 2]
  xp = jnp if isinstance(points, jax.Array) else np
  return xp.stack([x, -z if keep_handedness else z, y], axis=-1)
