"""The 17-joint Human3.6M evaluation skeleton and pose-array validation.

Every public interface of the project speaks of poses as root-relative joint
positions in the camera frame, in millimetres, with shape ``[..., 17, 3]`` and
the joint order of ``JOINT_NAMES``. Camera frame: x right, y down, z forward
(away from the camera), as in Human3.6M's camera coordinates.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

NUM_JOINTS = 17

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)

# Parent of each joint in the kinematic tree (-1 for the root, the pelvis).
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)

# The 16 bones as (parent, child) joint-index pairs.
BONES: tuple[tuple[int, int], ...] = tuple(
    (p, c) for c, p in enumerate(PARENTS) if p >= 0)

ROOT = 0

LEFT_JOINTS = tuple(i for i, n in enumerate(JOINT_NAMES) if n.startswith("left"))
RIGHT_JOINTS = tuple(i for i, n in enumerate(JOINT_NAMES) if n.startswith("right"))


def check_poses(poses, name: str = "poses", *, allow_nan: bool = False) -> np.ndarray:
  """Checks that ``poses`` is a finite ``[..., 17, 3]`` array of millimetres.

  This runs on the host (numpy), at the boundary of the library, so that bad
  input gets a message naming the problem instead of a shape error from inside
  XLA.

  Args:
    poses: array-like ``[..., 17, 3]``, millimetres.
    name: what the array is called in error messages.
    allow_nan: whether NaN/inf entries are allowed.

  Returns:
    ``poses`` as a numpy array (not copied when already one).

  Raises:
    ValueError: wrong rank or trailing shape, or non-finite values.
  """
  arr = np.asarray(poses)
  if arr.ndim < 2 or arr.shape[-2:] != (NUM_JOINTS, 3):
    raise ValueError(
        f"{name} must have shape [..., {NUM_JOINTS}, 3] (17 Human3.6M joints, "
        f"x/y/z in millimetres), got shape {arr.shape}. Reshape flat "
        f"[..., 51] poses with .reshape(-1, {NUM_JOINTS}, 3).")
  if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(
      arr.dtype, np.integer):
    raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}.")
  if not allow_nan:
    bad = ~np.isfinite(arr)
    if bad.any():
      flat = bad.reshape(-1, NUM_JOINTS * 3).any(axis=-1)
      idx = np.flatnonzero(flat)
      raise ValueError(
          f"{name} contains {idx.size} pose(s) with NaN or infinite values "
          f"(first indices: {idx[:5].tolist()}). Drop or repair those poses "
          "before using them.")
  return arr


def root_relative(poses):
  """Subtracts the root joint: ``[..., 17, 3]`` -> ``[..., 17, 3]`` (same units)."""
  return poses - poses[..., ROOT:ROOT + 1, :]


def bone_lengths(poses) -> np.ndarray:
  """Bone lengths ``[..., 16]`` of poses ``[..., 17, 3]``, in the poses' units."""
  poses = np.asarray(poses)
  parents = np.array([p for p, _ in BONES])
  children = np.array([c for _, c in BONES])
  return np.linalg.norm(poses[..., children, :] - poses[..., parents, :], axis=-1)


def joint_index(names: Sequence[str]) -> list[int]:
  """Indices of joints given by name."""
  return [JOINT_NAMES.index(n) for n in names]
