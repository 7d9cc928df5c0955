"""A kinematic body on the 17 Human3.6M joints: shapes, joint angles, limits, FK.

Body frame (z-up, right-handed, millimetres): x = the person's forward, y = the
person's left, z = up. At rest (all angles zero) the person stands upright,
legs straight down, arms hanging straight down, facing +x.

Joint angles are ``[..., 17, 3]`` radians, one row per joint in the order of
``structnet_jax.poses.JOINT_NAMES``. The rotation of joint ``j`` turns the bones
from ``j`` to its children, relative to the frame of ``j``'s parent. The three
slots of a row are anatomical angles with mirrored signs on the two sides:

  slot 0 ``FLEX``  flexion (forward): hip = thigh forward, knee = shin
                   backward, shoulder = arm forward, elbow = forearm forward,
                   pelvis/spine/thorax/neck = bend forward;
  slot 1 ``ABD``   abduction (limb away from the midline) for hips and
                   shoulders; lateral bend to the person's left for the
                   pelvis/spine/thorax/neck;
  slot 2 ``TWIST`` rotation about the bone's long axis: external rotation for
                   hips and shoulders, turn to the person's left for the
                   pelvis/spine/thorax/neck. For the pelvis this slot is the
                   heading (yaw) of the whole body.

Limb joints compose ``R = R_flex @ R_abd @ R_twist`` (twist about the bone's own
axis); trunk joints compose ``R = R_twist @ R_flex @ R_abd`` (turn about the
vertical first). Knees and elbows are hinges (only ``FLEX``); leaf joints
(ankles, head, wrists) carry no rotation.

Forward kinematics runs in ``jax.numpy``, vmapped over frames and jitted.
"""

from __future__ import annotations

import dataclasses
import zlib

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines import checks
from structnet_jax import poses as poses_lib

NUM_JOINTS = poses_lib.NUM_JOINTS
PARENTS = poses_lib.PARENTS
JOINT = {name: i for i, name in enumerate(poses_lib.JOINT_NAMES)}

FLEX, ABD, TWIST = 0, 1, 2

# Reference stature for the base bone lengths below.
REFERENCE_STATURE_MM = 1700.0

# Anthropometric bone lengths (mm) of a 1.7 m adult (standard proportions of
# stature), with the limb group that scales each one. Keys are child joints.
_BASE_BONES: dict[str, tuple[float, str]] = {
    "right_hip": (130.0, "hip"),
    "left_hip": (130.0, "hip"),
    "right_knee": (440.0, "legs"),
    "left_knee": (440.0, "legs"),
    "right_ankle": (450.0, "legs"),
    "left_ankle": (450.0, "legs"),
    "spine": (230.0, "torso"),
    "thorax": (250.0, "torso"),
    "neck_nose": (120.0, "head"),
    "head": (115.0, "head"),
    "left_shoulder": (150.0, "shoulder"),
    "right_shoulder": (150.0, "shoulder"),
    "left_elbow": (280.0, "arms"),
    "right_elbow": (280.0, "arms"),
    "left_wrist": (250.0, "arms"),
    "right_wrist": (250.0, "arms"),
}

# Unit direction of each bone (child joint) in its parent's frame at rest.
_BASE_DIRECTIONS: dict[str, tuple[float, float, float]] = {
    "right_hip": (0.0, -1.0, -0.08),
    "left_hip": (0.0, 1.0, -0.08),
    "right_knee": (0.0, 0.0, -1.0),
    "left_knee": (0.0, 0.0, -1.0),
    "right_ankle": (0.0, 0.0, -1.0),
    "left_ankle": (0.0, 0.0, -1.0),
    "spine": (0.0, 0.0, 1.0),
    "thorax": (0.0, 0.0, 1.0),
    "neck_nose": (0.35, 0.0, 1.0),
    "head": (-0.1, 0.0, 1.0),
    "left_shoulder": (-0.05, 1.0, -0.12),
    "right_shoulder": (-0.05, -1.0, -0.12),
    "left_elbow": (0.0, 0.0, -1.0),
    "right_elbow": (0.0, 0.0, -1.0),
    "left_wrist": (0.0, 0.0, -1.0),
    "right_wrist": (0.0, 0.0, -1.0),
}

_X = (1.0, 0.0, 0.0)
_Y = (0.0, 1.0, 0.0)
_Z = (0.0, 0.0, 1.0)


def _neg(v):
  return tuple(-c for c in v)


# Rotation axis of each angle slot (flex, abd, twist) per joint, in the
# parent's frame at rest; see the module docstring for the sign conventions.
_TRUNK_AXES = (_Y, _neg(_X), _Z)
_AXES_BY_NAME = {
    "pelvis": _TRUNK_AXES,
    "right_hip": (_neg(_Y), _neg(_X), _neg(_Z)),
    "right_knee": (_Y, _X, _Z),
    "left_hip": (_neg(_Y), _X, _Z),
    "left_knee": (_Y, _X, _Z),
    "spine": _TRUNK_AXES,
    "thorax": _TRUNK_AXES,
    "neck_nose": _TRUNK_AXES,
    "left_shoulder": (_neg(_Y), _X, _Z),
    "left_elbow": (_neg(_Y), _X, _Z),
    "right_shoulder": (_neg(_Y), _neg(_X), _neg(_Z)),
    "right_elbow": (_neg(_Y), _X, _Z),
}
JOINT_AXES = np.array(
    [_AXES_BY_NAME.get(n, (_X, _Y, _Z)) for n in poses_lib.JOINT_NAMES],
    dtype=np.float32)  # [17, 3 slots, 3]
TWIST_OUTER = np.array(
    [n in ("pelvis", "spine", "thorax", "neck_nose")
     for n in poses_lib.JOINT_NAMES])  # [17] bool

_INF = np.inf
# Joint limits in degrees, [flex, abd, twist] x [low, high]; leaf joints and
# the unused slots of hinges are pinned to zero.
_LIMITS_BY_NAME = {
    "pelvis": ((-30, 90), (-25, 25), (-_INF, _INF)),
    "right_hip": ((-30, 125), (-30, 45), (-40, 45)),
    "left_hip": ((-30, 125), (-30, 45), (-40, 45)),
    "right_knee": ((0, 150), (0, 0), (0, 0)),
    "left_knee": ((0, 150), (0, 0), (0, 0)),
    "spine": ((-20, 45), (-25, 25), (-35, 35)),
    "thorax": ((-20, 40), (-20, 20), (-30, 30)),
    "neck_nose": ((-45, 60), (-35, 35), (-70, 70)),
    "left_shoulder": ((-60, 180), (-30, 80), (-75, 80)),
    "right_shoulder": ((-60, 180), (-30, 80), (-75, 80)),
    "left_elbow": ((0, 150), (0, 0), (0, 0)),
    "right_elbow": ((0, 150), (0, 0), (0, 0)),
}
JOINT_LIMITS_DEG = np.array(
    [_LIMITS_BY_NAME.get(n, ((0, 0), (0, 0), (0, 0)))
     for n in poses_lib.JOINT_NAMES], dtype=np.float64)  # [17, 3, 2]


@dataclasses.dataclass(frozen=True)
class BodyShape:
  """Proportions of one person.

  Attributes:
    stature_mm: standing height in mm; all bones scale with it.
    legs, arms, torso, head, shoulder, hip: extra multiplicative scales of
      each limb group (thigh+shin, upper arm+forearm, the two spine segments,
      neck+head, thorax-to-shoulder half width, pelvis-to-hip half width).
  """
  stature_mm: float = REFERENCE_STATURE_MM
  legs: float = 1.0
  arms: float = 1.0
  torso: float = 1.0
  head: float = 1.0
  shoulder: float = 1.0
  hip: float = 1.0

  def __post_init__(self):
    for f in dataclasses.fields(self):
      checks.positive_number(f"BodyShape.{f.name}", getattr(self, f.name))


def subject_body(subject_name: str, seed: int = 0) -> BodyShape:
  """Deterministic proportions of a named subject (e.g. ``"S1"``, ``"P3"``).

  The name (its CRC32) and ``seed`` seed the draw, so every subject gets its
  own stature (~N(1.70 m, 0.08 m) clipped to 1.5-1.9 m) and limb-group scales
  (uniform in 0.92-1.08), the same at every call.
  """
  if not isinstance(subject_name, str) or not subject_name:
    raise ValueError(
        f"subject_name must be a non-empty string such as 'S1', got "
        f"{subject_name!r}.")
  seed = checks.int_at_least("seed", seed, 0)
  rng = np.random.default_rng(
      [int(seed), zlib.crc32(subject_name.encode("utf-8"))])
  stature = float(np.clip(rng.normal(1700.0, 80.0), 1500.0, 1900.0))
  scales = rng.uniform(0.92, 1.08, size=6)
  return BodyShape(stature, *(float(s) for s in scales))


def _group_scale(body: BodyShape, group: str) -> float:
  return getattr(body, group) * body.stature_mm / REFERENCE_STATURE_MM


def rest_offsets(body: BodyShape) -> np.ndarray:
  """Bone vectors at rest ``[17, 3]`` mm (row j: parent(j) -> j, row 0 zero)."""
  out = np.zeros((NUM_JOINTS, 3), np.float64)
  for name, (length, group) in _BASE_BONES.items():
    d = np.asarray(_BASE_DIRECTIONS[name], np.float64)
    out[JOINT[name]] = d / np.linalg.norm(d) * length * _group_scale(body, group)
  return out


def body_bone_lengths(body: BodyShape) -> np.ndarray:
  """Bone lengths ``[16]`` mm in the order of ``structnet_jax.poses.BONES``."""
  offsets = rest_offsets(body)
  return np.array(
      [np.linalg.norm(offsets[c]) for _, c in poses_lib.BONES], np.float64)


def clip_to_limits(angles_rad: np.ndarray) -> np.ndarray:
  """Clips joint angles ``[..., 17, 3]`` (radians) to ``JOINT_LIMITS_DEG``."""
  lim = np.deg2rad(JOINT_LIMITS_DEG)
  return np.clip(angles_rad, lim[..., 0], lim[..., 1])


def _axis_angle(axis: jax.Array, angle: jax.Array) -> jax.Array:
  """Rodrigues: unit axes ``[..., 3]``, angles ``[...]`` -> ``[..., 3, 3]``."""
  x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
  c, s = jnp.cos(angle), jnp.sin(angle)
  t = 1.0 - c
  rows = [
      [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
      [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
      [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
  ]
  return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def local_rotations(angles: jax.Array) -> jax.Array:
  """Joint rotations ``[..., 17, 3, 3]`` from angles ``[..., 17, 3]`` (rad)."""
  axes = jnp.asarray(JOINT_AXES)
  r_flex = _axis_angle(axes[:, FLEX], angles[..., FLEX])
  r_abd = _axis_angle(axes[:, ABD], angles[..., ABD])
  r_twist = _axis_angle(axes[:, TWIST], angles[..., TWIST])
  inner = r_flex @ r_abd @ r_twist
  outer = r_twist @ r_flex @ r_abd
  return jnp.where(jnp.asarray(TWIST_OUTER)[:, None, None], outer, inner)


def _fk_frame(angles: jax.Array, offsets: jax.Array,
              root: jax.Array) -> jax.Array:
  """One frame: angles ``[17, 3]``, offsets ``[17, 3]``, root ``[3]`` -> ``[17, 3]``."""
  rot = local_rotations(angles)
  glob = [None] * NUM_JOINTS
  pos = [None] * NUM_JOINTS
  for j, p in enumerate(PARENTS):  # static loop over the 17 joints
    if p < 0:
      glob[j], pos[j] = rot[j], root
    else:
      pos[j] = pos[p] + glob[p] @ offsets[j]
      glob[j] = glob[p] @ rot[j]
  return jnp.stack(pos)


@jax.jit
def _fk_batch(angles: jax.Array, offsets: jax.Array,
              roots: jax.Array) -> jax.Array:
  return jax.vmap(_fk_frame)(angles, offsets, roots)


def forward_kinematics(angles, offsets, root_position=None) -> np.ndarray:
  """Joint positions from joint angles (jitted, vmapped over frames).

  Args:
    angles: ``[..., 17, 3]`` radians (see the module docstring); the pelvis row
      is the body orientation in the world (twist slot = heading about z).
    offsets: bone vectors at rest, ``[17, 3]`` or ``[..., 17, 3]`` mm (e.g.
      ``rest_offsets(body)``).
    root_position: pelvis position ``[..., 3]`` mm (default: the origin).

  Returns:
    Joint positions ``[..., 17, 3]`` mm, float32, z-up.
  """
  angles = np.asarray(angles, np.float32)
  if angles.ndim < 2 or angles.shape[-2:] != (NUM_JOINTS, 3):
    raise ValueError(
        f"angles must have shape [..., {NUM_JOINTS}, 3] (radians per joint and "
        f"slot flex/abd/twist), got {angles.shape}.")
  lead = angles.shape[:-2]
  offsets = np.asarray(offsets, np.float32)
  if offsets.shape[-2:] != (NUM_JOINTS, 3):
    raise ValueError(
        f"offsets must have shape [17, 3] or [..., 17, 3] mm (use "
        f"rest_offsets(body)), got {offsets.shape}.")
  if root_position is None:
    root_position = np.zeros(lead + (3,), np.float32)
  root_position = np.asarray(root_position, np.float32)
  try:
    offsets = np.broadcast_to(offsets, lead + (NUM_JOINTS, 3))
    root_position = np.broadcast_to(root_position, lead + (3,))
  except ValueError as e:
    raise ValueError(
        f"offsets {offsets.shape} / root_position {root_position.shape} do not "
        f"broadcast against angles {angles.shape}.") from e
  for name, arr in (("angles", angles), ("offsets", offsets),
                    ("root_position", root_position)):
    if not np.all(np.isfinite(arr)):
      raise ValueError(f"{name} contains NaN or infinite values.")
  n = int(np.prod(lead, dtype=np.int64))
  if n == 0:
    return np.zeros(lead + (NUM_JOINTS, 3), np.float32)
  # Pad the frame count to a power of two so that few shapes get compiled.
  padded = max(64, 1 << (n - 1).bit_length())
  def flat(a, tail):
    a = a.reshape((n,) + tail)
    return np.concatenate([a, np.zeros((padded - n,) + tail, a.dtype)])
  out = _fk_batch(flat(angles, (NUM_JOINTS, 3)), flat(offsets, (NUM_JOINTS, 3)),
                  flat(root_position, (3,)))
  return np.asarray(out)[:n].reshape(lead + (NUM_JOINTS, 3))
