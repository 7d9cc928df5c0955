"""StructNet-Avg(A)-APF: a valid pose close to the Avg(A) pose (paper section 5.2).

The average of the top-A candidate poses (StructNet-Avg(A)) need not be a valid
pose: its bones are shorter than anyone's. The paper fits a template skeleton
of the test subject to it with annealing particle filtering (APF, Deutscher,
Blake & Reid, CVPR 2000): the template's joint angles are adjusted to minimise
the MPJPE to the Avg(A) pose, starting from the joint angles of one of the top
A poses; the converged angles give the 3D joints.

  lengths = subject_bone_lengths(subject_poses)          # [16], the template
  fitted = fit(avg_pose, top_pose, lengths, key)          # [B, 17, 3]
  fitted = fit_avg_apf(top_poses, lengths, key)           # from [B, A, 17, 3]

Poses are root-relative joint positions in the camera frame (x right, y down,
z forward), millimetres, ``[..., 17, 3]`` in the joint order of
``structnet_jax.poses``.

Template
--------
On the 17-joint skeleton a subject's "neutral T-pose" template is fully
described by its 16 bone lengths (mm, in the order of ``poses.BONES``): the
T-pose itself is fixed (``t_pose``), so ``template = bone lengths``. They are
measured with ``subject_bone_lengths`` (median over a subject's frames) or
``template_from_pose`` (one frame).

Joint angles
------------
Every bone has a T-pose direction (the person faces the camera, right side at
-x, up = -y: legs point down, spine/neck/head up, hips, shoulders and arms
sideways) and two angles that rotate it away from that direction *in the frame
of its reference bone* (forward kinematics composes the rotations down the
tree, so a bone's angles are joint angles: bending the hip swings the whole
leg). ``angles[..., b, :]`` belongs to bone ``b`` of ``poses.BONES``:

* spine (pelvis->spine), reference = the camera frame, and every non-lateral
  bone (legs, thorax, neck, head, arms), reference = its parent bone: a
  *swing* ``w = a0 * e0 + a1 * e1`` (radians, axis-angle vector perpendicular
  to the rest direction): ``(e0, e1) = (x, z)`` for vertical bones (``a0``
  flexion/extension, ``a1`` abduction) and ``(y, z)`` for arm bones
  (horizontal swing, raise/lower). Singular only where the bone points
  opposite to its rest direction in its reference frame (a leg folded fully
  onto its thigh, an upside-down spine).
* the lateral bones (pelvis->hips, thorax->shoulders), reference = the spine
  resp. the spine->thorax bone: ``(yaw about the reference bone's axis,
  elevation towards it)``. This is where the body's heading lives (the whole
  circle of yaw is regular); singular only where a hip/shoulder bone is
  parallel to the torso.

Each bone's frame is its reference frame times its local rotation; its child
joint is ``parent + length * frame @ rest_direction``. Angles all zero give
the T-pose. The map is a bijection (away from the singular sets above)
between 32 angles and the poses with the given bone lengths, and the bone
lengths of ``pose_from_angles`` are exact by construction.

APF
---
``fit`` runs, per example and vmapped over the batch, ``num_layers`` annealing
layers on ``num_particles`` particles in the 32-dim angle space. Particles
start at the angles of ``init`` plus Gaussian noise (``init_std`` rad;
particle 0 is ``init`` itself). Layer m weights particles by
``exp(-beta_m * MPJPE(FK(particle), target))`` with ``beta_m`` chosen by the
survival-rate rule of Deutscher et al. (the effective particle fraction is
``survival_rate``; never below ``beta_{m-1}``), resamples systematically, and
diffuses each angle with Gaussian noise of std ``diffusion_scale`` times the
weighted spread of that angle over the particles, so the noise shrinks as
the particles concentrate. The best pose seen over all layers is returned;
it is never worse than ``init`` refitted to the template lengths.

Accuracy is a matter of budget: on synthetic problems (init 80-150 mm MPJPE
from the target) 200 particles x 10 layers reach ~40 mm, 400 x 25 ~20-30 mm
and 500 x 30 ~20 mm from an exactly reachable target; raise ``num_particles``
and ``num_layers`` where accuracy matters (the cost is linear in both and
tiny on an accelerator).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from structnet_jax import metrics
from structnet_jax import poses as poses_lib

Array = jax.Array

NUM_BONES = len(poses_lib.BONES)
NUM_ANGLES = 2

_UP = (0.0, -1.0, 0.0)
_DOWN = (0.0, 1.0, 0.0)
_RIGHT_SIDE = (-1.0, 0.0, 0.0)  # the person's right side, facing the camera
_LEFT_SIDE = (1.0, 0.0, 0.0)

_REST = {  # child joint name -> rest (T-pose) direction of the bone into it
    "right_hip": _RIGHT_SIDE, "right_knee": _DOWN, "right_ankle": _DOWN,
    "left_hip": _LEFT_SIDE, "left_knee": _DOWN, "left_ankle": _DOWN,
    "spine": _UP, "thorax": _UP, "neck_nose": _UP, "head": _UP,
    "left_shoulder": _LEFT_SIDE, "left_elbow": _LEFT_SIDE,
    "left_wrist": _LEFT_SIDE, "right_shoulder": _RIGHT_SIDE,
    "right_elbow": _RIGHT_SIDE, "right_wrist": _RIGHT_SIDE,
}
_LATERAL = ("right_hip", "left_hip", "left_shoulder", "right_shoulder")

_CHILD = tuple(c for _, c in poses_lib.BONES)
_PARENT = tuple(p for p, _ in poses_lib.BONES)
_BONE_INTO = {c: b for b, c in enumerate(_CHILD)}
_SPINE = _BONE_INTO[poses_lib.JOINT_NAMES.index("spine")]


def _reference_bone(b: int) -> int:
  """The bone whose frame bone ``b``'s angles live in (-1: the camera frame)."""
  if b == _SPINE:
    return -1
  if poses_lib.JOINT_NAMES[_CHILD[b]] in ("right_hip", "left_hip"):
    return _SPINE
  return _BONE_INTO[_PARENT[b]]


REST_DIRECTIONS = np.array(
    [_REST[poses_lib.JOINT_NAMES[c]] for c in _CHILD], np.float32)  # [16, 3]
REFERENCE_BONE: tuple[int, ...] = tuple(_reference_bone(b) for b in range(NUM_BONES))
LATERAL: tuple[bool, ...] = tuple(
    poses_lib.JOINT_NAMES[c] in _LATERAL for c in _CHILD)


def _depths() -> tuple[int, ...]:
  """Each bone's depth in the reference tree (0: the spine, the root)."""
  depth = {}
  while len(depth) < NUM_BONES:
    for b in range(NUM_BONES):
      ref = REFERENCE_BONE[b]
      if b not in depth and (ref < 0 or ref in depth):
        depth[b] = 0 if ref < 0 else depth[ref] + 1
  return tuple(depth[b] for b in range(NUM_BONES))


_DEPTHS = _depths()
NUM_LEVELS = max(_DEPTHS) + 1
# Bones by level of the reference tree: spine; hips, thorax; knees, neck,
# shoulders; ankles, head, elbows; wrists.
_LEVELS = tuple(tuple(b for b, d in enumerate(_DEPTHS) if d == level)
                for level in range(NUM_LEVELS))
_IS_ROOT = np.asarray([r < 0 for r in REFERENCE_BONE])  # [16]
_REF_INDEX = np.asarray([max(r, 0) for r in REFERENCE_BONE])  # [16]
# ANCESTORS[j, b] = 1 where bone b lies on the path from the root to joint j.
ANCESTORS = np.zeros((poses_lib.NUM_JOINTS, NUM_BONES), np.float32)
for _j in range(poses_lib.NUM_JOINTS):
  _k = _j
  while poses_lib.PARENTS[_k] >= 0:
    ANCESTORS[_j, _BONE_INTO[_k]] = 1.0
    _k = poses_lib.PARENTS[_k]


def _swing_axes(rest: np.ndarray) -> np.ndarray:
  """``[2, 3]``: the swing axes ``(e0, e1)`` of a bone with rest direction ``rest``."""
  if abs(rest[1]) > 0.5:  # vertical bone
    return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
  return np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)


SWING_AXES = np.stack([_swing_axes(r) for r in REST_DIRECTIONS])  # [16, 2, 3]
# Lateral bones: yaw about the pole (the reference bone's axis, up), then
# elevation about q = rest x pole, which tilts the rest direction to the pole.
_POLE = np.array(_UP, np.float32)
_TILT_AXES = np.cross(REST_DIRECTIONS, _POLE).astype(np.float32)  # [16, 3]


# ----------------------------------------------------------------------------
# Templates


def check_bone_lengths(bone_lengths, name: str = "bone_lengths") -> np.ndarray:
  """Checks a template ``[..., 16]`` of finite positive bone lengths (mm), host side."""
  arr = np.asarray(bone_lengths)
  if arr.ndim < 1 or arr.shape[-1] != NUM_BONES:
    raise ValueError(
        f"{name} must have shape [..., {NUM_BONES}] (one length in mm per bone "
        f"of poses.BONES), got shape {arr.shape}. Measure them with "
        "subject_bone_lengths(poses) or template_from_pose(pose).")
  if not (np.issubdtype(arr.dtype, np.floating) or
          np.issubdtype(arr.dtype, np.integer)):
    raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}.")
  if not np.all(np.isfinite(arr)):
    raise ValueError(
        f"{name} contains NaN or infinite values; measure the template from "
        "poses without missing joints.")
  if np.any(arr <= 0):
    bad = np.flatnonzero((arr <= 0).reshape(-1, NUM_BONES).any(axis=0))
    raise ValueError(
        f"{name} must be positive (mm), bone(s) {bad.tolist()} "
        f"({[poses_lib.BONES[b] for b in bad]}) have length <= 0. A template "
        "measured from a pose with coinciding joints is degenerate; use "
        "subject_bone_lengths over many frames.")
  return arr


def template_from_pose(pose) -> np.ndarray:
  """The template (bone lengths ``[..., 16]`` mm) of poses ``[..., 17, 3]`` mm."""
  pose = poses_lib.check_poses(pose, "pose")
  return check_bone_lengths(poses_lib.bone_lengths(pose).astype(np.float32),
                            "bone lengths of pose")


def subject_bone_lengths(poses) -> np.ndarray:
  """A subject's template: median bone lengths ``[16]`` mm over frames ``[N, 17, 3]``.

  The T-pose of the subject (``t_pose``) is fully described by these lengths
  in this parametrisation. The median ignores the odd badly-tracked frame.
  """
  arr = poses_lib.check_poses(poses, "subject poses")
  if arr.ndim != 3 or arr.shape[0] == 0:
    raise ValueError(
        f"subject poses must be a non-empty [N, 17, 3] array of one subject's "
        f"frames, got shape {arr.shape}.")
  lengths = np.median(poses_lib.bone_lengths(arr), axis=0).astype(np.float32)
  return check_bone_lengths(lengths, "median bone lengths of subject poses")


# ----------------------------------------------------------------------------
# Forward kinematics and its inverse (jax.numpy, jit/vmap-able)


def _rodrigues(w: Array) -> Array:
  """Rotation matrices ``[..., 3, 3]`` of axis-angle vectors ``[..., 3]`` (rad)."""
  # A safe norm: finite gradient at w = 0 (the rest angles), for refinement.
  t2 = jnp.sum(jnp.square(w), axis=-1)
  theta = jnp.where(t2 > 0, jnp.sqrt(jnp.where(t2 > 0, t2, 1.0)), 0.0)
  theta = theta[..., None, None]
  zero = jnp.zeros_like(w[..., 0])
  k = jnp.stack([
      jnp.stack([zero, -w[..., 2], w[..., 1]], -1),
      jnp.stack([w[..., 2], zero, -w[..., 0]], -1),
      jnp.stack([-w[..., 1], w[..., 0], zero], -1)], -2)
  # sin(t)/t and (1 - cos t)/t^2 = sinc(t/2)^2 / 2, both finite at t = 0.
  a = jnp.sinc(theta / jnp.pi)
  b = 0.5 * jnp.square(jnp.sinc(theta / (2 * jnp.pi)))
  return jnp.eye(3, dtype=w.dtype) + a * k + b * (k @ k)


def _local_rotations(angles: Array) -> Array:
  """Local rotations ``[..., 16, 3, 3]`` of every bone, angles ``[..., 16, 2]``."""
  dtype = angles.dtype
  swing = _rodrigues(jnp.einsum("...bk,bkd->...bd", angles,
                                jnp.asarray(SWING_AXES, dtype)))
  yaw = _rodrigues(angles[..., 0:1] * jnp.asarray(_POLE, dtype))
  tilt = _rodrigues(angles[..., 1:2] * jnp.asarray(_TILT_AXES, dtype))
  return jnp.where(np.asarray(LATERAL)[:, None, None], _matmul(yaw, tilt),
                   swing)


def _reference_frames(frames: Array) -> Array:
  """``[..., 16, 3, 3]``: each bone's reference frame (the camera's for the root)."""
  ref = frames[..., _REF_INDEX, :, :]
  return jnp.where(_IS_ROOT[:, None, None], jnp.eye(3, dtype=frames.dtype), ref)


def _matmul(a: Array, b: Array) -> Array:
  """Batched 3x3 products ``a @ b`` as a broadcast sum (cheap to compile)."""
  return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def _check_angles_shape(shape, name: str) -> None:
  if len(shape) < 2 or tuple(shape[-2:]) != (NUM_BONES, NUM_ANGLES):
    raise ValueError(
        f"{name} must have shape [..., {NUM_BONES}, {NUM_ANGLES}] (two joint "
        f"angles in radians per bone of poses.BONES), got shape "
        f"{tuple(shape)}. Get them from angles_from_pose(pose).")


def pose_from_angles(angles, bone_lengths) -> Array:
  """Forward kinematics: joint angles and a template to a pose.

  Args:
    angles: ``[..., 16, 2]`` radians (see the module docstring).
    bone_lengths: ``[..., 16]`` mm, broadcasting against ``angles[..., 0]``.

  Returns:
    ``[..., 17, 3]`` mm, root (pelvis) at the origin, bone lengths exactly
    ``bone_lengths`` (to float rounding, ~1e-4 mm).

  Raises:
    ValueError: at trace time, on wrong trailing shapes.
  """
  angles, lengths = jnp.asarray(angles), jnp.asarray(bone_lengths)
  _check_angles_shape(angles.shape, "pose_from_angles: angles")
  if lengths.ndim < 1 or lengths.shape[-1] != NUM_BONES:
    raise ValueError(
        f"pose_from_angles: bone_lengths must have shape [..., {NUM_BONES}] "
        f"(mm, one per bone of poses.BONES), got {lengths.shape}.")
  dtype = jnp.result_type(angles.dtype, lengths.dtype, jnp.float32)
  angles, lengths = angles.astype(dtype), lengths.astype(dtype)
  frames = _local_rotations(angles)
  # Unrolled per level (this is APF's inner loop: composing only the bones
  # of each level runs about 1.6x faster than a loop over all 16).
  for level in _LEVELS[1:]:  # compose with the reference frames, root first
    idx, ref = np.asarray(level), _REF_INDEX[np.asarray(level)]
    frames = frames.at[..., idx, :, :].set(
        _matmul(frames[..., ref, :, :], frames[..., idx, :, :]))
  directions = jnp.sum(frames * jnp.asarray(REST_DIRECTIONS, dtype)[:, None, :],
                       axis=-1)  # frame @ rest, [..., 16, 3]
  bones = lengths[..., None] * directions
  return jnp.einsum("jb,...bd->...jd", jnp.asarray(ANCESTORS, dtype), bones)


def angles_from_pose(pose) -> Array:
  """Inverse kinematics: the joint angles ``[..., 16, 2]`` (rad) of poses ``[..., 17, 3]``.

  Only bone directions are used; ``pose_from_angles(angles_from_pose(p),
  poses.bone_lengths(p))`` is ``p - p[..., :1, :]`` up to float rounding. A
  zero-length bone is read as pointing in its rest direction.

  Raises:
    ValueError: at trace time, on a trailing shape other than ``[17, 3]``.
  """
  pose = jnp.asarray(pose)
  metrics._check_pose_shape(pose.shape, "angles_from_pose: pose")
  dtype = jnp.result_type(pose.dtype, jnp.float32)
  pose = pose.astype(dtype)
  bones = (pose[..., np.asarray(_CHILD), :] -
           pose[..., np.asarray(_PARENT), :])  # [..., 16, 3] world
  rest = jnp.asarray(REST_DIRECTIONS, dtype)  # [16, 3]
  axes = jnp.asarray(SWING_AXES, dtype)  # [16, 2, 3]
  pole = jnp.asarray(_POLE, dtype)

  def chart(ref):  # the angles [..., 16, 2] of every bone, given its reference frame
    bone = jnp.sum(ref * bones[..., :, None], axis=-2)  # R^T bone
    norm = jnp.sqrt(jnp.sum(jnp.square(bone), axis=-1, keepdims=True))
    v = jnp.where(norm > 0, bone / jnp.where(norm > 0, norm, 1.0), rest)
    # Swing chart: w = theta * (rest x v) / |rest x v|, in the (e0, e1) basis.
    cos = jnp.sum(v * rest, axis=-1)
    axis = jnp.cross(jnp.broadcast_to(rest, v.shape), v)
    sin = jnp.sqrt(jnp.sum(jnp.square(axis), axis=-1))
    theta = jnp.arctan2(sin, cos)
    tiny = sin <= 1e-12
    w = jnp.where(tiny, 1.0, theta / jnp.where(tiny, 1.0, sin))[..., None] * axis
    # Exactly opposite to rest (the singular set): any perpendicular axis.
    w = jnp.where((tiny & (cos < 0))[..., None], jnp.pi * axes[:, 0], w)
    swing = jnp.einsum("...bd,bkd->...bk", w, axes)
    # Lateral chart: yaw about the pole, elevation towards it.
    up = v @ pole
    side = jnp.sqrt(jnp.sum(jnp.square(v - up[..., None] * pole), axis=-1))
    yaw = jnp.arctan2(jnp.sum(v * jnp.cross(pole, rest), axis=-1), cos)
    lateral = jnp.stack([yaw, jnp.arctan2(up, side)], axis=-1)
    return jnp.where(np.asarray(LATERAL)[:, None], lateral, swing)

  # IK passes over all 16 bones once per level: pass d makes the frames of
  # depth d exact, since their reference frames already are. One loop body
  # instead of a chain unrolled per level keeps the compiled APF program
  # small (IK runs once per fit, FK in every layer and refinement step).
  def descend(_, frames):  # pass d: the frames of depth d become exact
    ref = _reference_frames(frames)
    return _matmul(ref, _local_rotations(chart(ref)))

  frames = jnp.broadcast_to(jnp.eye(3, dtype=dtype),
                            pose.shape[:-2] + (NUM_BONES, 3, 3))
  frames = jax.lax.fori_loop(0, NUM_LEVELS - 1, descend, frames)
  return chart(_reference_frames(frames))


def t_pose(bone_lengths) -> Array:
  """The neutral T-pose ``[..., 17, 3]`` mm of a template ``[..., 16]`` (all angles 0).

  Facing the camera (-z), upright (-y up), arms stretched sideways; the
  subject's right side at -x.
  """
  lengths = jnp.asarray(check_bone_lengths(bone_lengths))
  return pose_from_angles(
      jnp.zeros(lengths.shape[:-1] + (NUM_BONES, NUM_ANGLES)), lengths)


# ----------------------------------------------------------------------------
# Annealed particle filtering


def _systematic_resample(key: Array, weights: Array) -> Array:
  """Indices ``[P]`` drawn systematically from normalised ``weights [P]``."""
  p = weights.shape[0]
  u = (jax.random.uniform(key, (), weights.dtype) + jnp.arange(p)) / p
  cdf = jnp.cumsum(weights)
  return jnp.clip(jnp.searchsorted(cdf, u * cdf[-1]), 0, p - 1)


def _survival_beta(cost: Array, survival_rate: float, iters: int = 40) -> Array:
  """``beta`` with ``ESS(exp(-beta * cost)) / P = survival_rate`` (bisection in log beta)."""
  p = cost.shape[0]
  c = cost - jnp.min(cost)
  scale = jnp.maximum(jnp.mean(c), 1e-6)
  c = c / scale  # beta in units of 1 / (mean excess cost)

  def ess_fraction(log_beta):
    w = jax.nn.softmax(-jnp.exp(log_beta) * c)
    return 1.0 / (p * jnp.sum(jnp.square(w)))

  def step(_, bounds):
    lo, hi = bounds
    mid = 0.5 * (lo + hi)
    too_sharp = ess_fraction(mid) < survival_rate
    return jnp.where(too_sharp, lo, mid), jnp.where(too_sharp, mid, hi)

  lo, hi = jax.lax.fori_loop(0, iters, step, (jnp.log(1e-3), jnp.log(1e4)))
  return jnp.exp(0.5 * (lo + hi)) / scale


def _refine(angles, target, lengths, *, steps: int, learning_rate: float):
  """Gradient descent (Adam) on the joint angles ``[D]`` of one pose towards
  ``target [17, 3]``; returns the best ``(pose [17, 3], MPJPE)`` seen."""

  def loss(x):
    pose = pose_from_angles(x.reshape(NUM_BONES, NUM_ANGLES), lengths)
    return metrics.mpjpe(pose, target), pose

  opt = optax.adam(learning_rate)

  def body(carry, _):
    x, state, best_pose, best_cost = carry
    (cost, pose), grad = jax.value_and_grad(loss, has_aux=True)(x)
    better = cost < best_cost
    best_pose = jnp.where(better, pose, best_pose)
    best_cost = jnp.where(better, cost, best_cost)
    updates, state = opt.update(grad, state)
    return (optax.apply_updates(x, updates), state, best_pose,
            best_cost), None

  cost0, pose0 = loss(angles)
  (x, _, best_pose, best_cost), _ = jax.lax.scan(
      body, (angles, opt.init(angles), pose0, cost0), None, length=steps)
  cost, pose = loss(x)
  better = cost < best_cost
  return (jnp.where(better, pose, best_pose),
          jnp.where(better, cost, best_cost))


def _apf_one(target, init_angles, lengths, key, *, num_particles, num_layers,
             init_std, diffusion_scale, min_std, survival_rate,
             refine_steps=0, refine_learning_rate=0.01):
  """APF for one example: target ``[17, 3]``, init ``[16, 2]``, lengths ``[16]``.

  Returns the best pose ``[17, 3]`` seen over all layers (then refined by
  ``refine_steps`` gradient steps) and its MPJPE.
  """
  dim = NUM_BONES * NUM_ANGLES
  x0 = init_angles.reshape(dim)
  key, k0 = jax.random.split(key)
  noise = init_std * jax.random.normal(k0, (num_particles, dim), x0.dtype)
  particles = x0 + noise.at[0].set(0.0)  # particle 0: the init itself

  def layer(carry, k):
    particles, beta_prev, best_pose, best_angles, best_cost = carry
    poses = pose_from_angles(
        particles.reshape(num_particles, NUM_BONES, NUM_ANGLES), lengths)
    cost = metrics.mpjpe(poses, target)
    i = jnp.argmin(cost)
    better = cost[i] < best_cost
    best_pose = jnp.where(better, poses[i], best_pose)
    best_angles = jnp.where(better, particles[i], best_angles)
    best_cost = jnp.where(better, cost[i], best_cost)
    # Weighting: beta by the survival rate, never decreasing.
    beta = jnp.maximum(_survival_beta(cost, survival_rate), beta_prev)
    w = jax.nn.softmax(-beta * (cost - cost[i]))
    # Resampling, then diffusion scaled to each angle's weighted spread.
    std = jnp.sqrt(w @ jnp.square(particles - w @ particles))
    k_res, k_diff = jax.random.split(k)
    resampled = particles[_systematic_resample(k_res, w)]
    sigma = jnp.maximum(diffusion_scale * std, min_std)
    particles = resampled + sigma * jax.random.normal(
        k_diff, particles.shape, particles.dtype)
    return (particles, beta, best_pose, best_angles, best_cost), None

  init = (particles, jnp.zeros((), x0.dtype),
          jnp.zeros((poses_lib.NUM_JOINTS, 3), x0.dtype), x0,
          jnp.asarray(jnp.inf, x0.dtype))
  # num_layers weighted layers, plus one that only scores the last diffusion.
  (_, _, best_pose, best_angles, best_cost), _ = jax.lax.scan(
      layer, init, jax.random.split(key, num_layers + 1))
  if refine_steps:
    return _refine(best_angles, target, lengths, steps=refine_steps,
                   learning_rate=refine_learning_rate)
  return best_pose, best_cost


@functools.partial(
    jax.jit, static_argnames=("num_particles", "num_layers", "init_std",
                              "diffusion_scale", "min_std", "survival_rate",
                              "refine_steps", "refine_learning_rate"))
def _fit_batch(target, init, lengths, keys, *, num_particles, num_layers,
               init_std, diffusion_scale, min_std, survival_rate,
               refine_steps, refine_learning_rate):
  run = functools.partial(
      _apf_one, num_particles=num_particles, num_layers=num_layers,
      init_std=init_std, diffusion_scale=diffusion_scale, min_std=min_std,
      survival_rate=survival_rate, refine_steps=refine_steps,
      refine_learning_rate=refine_learning_rate)
  return jax.vmap(run)(target, angles_from_pose(init), lengths, keys)


def _check_key(key) -> Array:
  key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape != ():
      raise ValueError(f"key must be a single PRNG key, got shape {key.shape}.")
    return key
  if key.shape != (2,) or key.dtype != jnp.uint32:
    raise ValueError(
        f"key must be a single PRNG key (jax.random.key(seed) or "
        f"jax.random.PRNGKey(seed)), got dtype {key.dtype} shape {key.shape}.")
  return key


def fit(target, init, bone_lengths, key, *, num_particles: int = 200,
        num_layers: int = 10, init_std: float = 0.1,
        diffusion_scale: float = 0.5, min_std: float = 1e-3,
        survival_rate: float = 0.2, refine_steps: int = 300,
        refine_learning_rate: float = 0.01, return_error: bool = False):
  """Fits the template's joint angles to ``target`` by APF, per example.

  Args:
    target: ``[B, 17, 3]`` mm, root-relative (e.g. StructNet-Avg(A) poses).
    init: ``[B, 17, 3]`` mm, the poses whose joint angles start the search
      (e.g. one of the top-A poses); their bone lengths do not matter.
    bone_lengths: the template, ``[B, 16]`` or ``[16]`` mm (positive).
    key: a PRNG key; the result is a deterministic function of it.
    num_particles: particles per example (P >= 1).
    num_layers: annealing layers (M >= 1).
    init_std: std (rad) of the noise on the initial particles.
    diffusion_scale: diffusion std per angle, as a multiple of the weighted
      spread of that angle over the particles of the layer.
    min_std: floor (rad) of the diffusion std.
    survival_rate: target effective fraction of particles, in (0, 1), that
      picks each layer's ``beta`` (Deutscher et al.).
    refine_steps: Adam steps on the joint angles of the best particle
      towards the target after the annealing (0: pure APF). APF finds the
      basin; its particles stall 15-30 mm from a reachable target (random
      search in 32 dimensions), which a few dozen gradient steps through the
      differentiable kinematic chain remove.
    refine_learning_rate: Adam's step size (radians) for the refinement.
    return_error: also return the MPJPE (mm) of each fit to its target.

  Returns:
    ``[B, 17, 3]`` mm, root at the origin, bone lengths exactly
    ``bone_lengths``; with ``return_error``, ``(poses, errors [B])``.

  Raises:
    ValueError: on bad shapes, NaNs, non-positive bone lengths, or invalid
      APF settings.
  """
  target = poses_lib.check_poses(target, "APF target")
  init = poses_lib.check_poses(init, "APF init")
  for name, arr in (("target", target), ("init", init)):
    if arr.ndim != 3:
      raise ValueError(
          f"APF {name} must be a batch [B, 17, 3], got shape {arr.shape}; use "
          "pose[None] for a single pose.")
  if target.shape != init.shape:
    raise ValueError(
        f"APF target {target.shape} and init {init.shape} must have the same "
        "shape [B, 17, 3]: one initial pose per target.")
  b = target.shape[0]
  if b == 0:
    raise ValueError("APF target is empty (B=0); pass at least one pose.")
  lengths = check_bone_lengths(bone_lengths, "APF bone_lengths")
  if lengths.ndim == 1:
    lengths = np.broadcast_to(lengths, (b, NUM_BONES))
  elif lengths.shape != (b, NUM_BONES):
    raise ValueError(
        f"APF bone_lengths must be [16] (one template) or [B, 16] = "
        f"[{b}, {NUM_BONES}], got shape {lengths.shape}.")
  for name, value in (("num_particles", num_particles),
                      ("num_layers", num_layers)):
    if int(value) != value or int(value) < 1:
      raise ValueError(f"APF {name} must be a positive int, got {value!r}.")
  for name, value in (("init_std", init_std), ("diffusion_scale", diffusion_scale),
                      ("min_std", min_std)):
    if not np.isfinite(value) or value < 0:
      raise ValueError(f"APF {name} must be finite and >= 0, got {value!r}.")
  if int(refine_steps) != refine_steps or int(refine_steps) < 0:
    raise ValueError(f"APF refine_steps must be an int >= 0, got "
                     f"{refine_steps!r}.")
  if not np.isfinite(refine_learning_rate) or refine_learning_rate <= 0:
    raise ValueError(f"APF refine_learning_rate must be > 0, got "
                     f"{refine_learning_rate!r}.")
  if not 0 < survival_rate < 1:
    raise ValueError(
        f"APF survival_rate must lie in (0, 1), got {survival_rate!r} "
        "(Deutscher et al. use 0.5).")
  key = _check_key(key)
  # One compiled program per power of two of B: the batch is padded with
  # copies of its last row (keys split for the B real rows, so their fits do
  # not depend on the padding), then cut back to B.
  rows = np.minimum(np.arange(_padded_size(b)), b - 1)
  poses, errors = _fit_batch(
      jnp.asarray(target[rows], jnp.float32),
      jnp.asarray(init[rows], jnp.float32),
      jnp.asarray(lengths[rows], jnp.float32), jax.random.split(key, b)[rows],
      num_particles=int(num_particles), num_layers=int(num_layers),
      init_std=float(init_std), diffusion_scale=float(diffusion_scale),
      min_std=float(min_std), survival_rate=float(survival_rate),
      refine_steps=int(refine_steps),
      refine_learning_rate=float(refine_learning_rate))
  poses, errors = poses[:b], errors[:b]
  return (poses, errors) if return_error else poses


def _padded_size(b: int) -> int:
  """The batch size ``fit`` compiles for: ``b`` rounded up to a power of two."""
  return 1 << (b - 1).bit_length()


def fit_avg_apf(top_poses, bone_lengths, key, *, init: str = "closest",
                **apf_kwargs):
  """StructNet-Avg(A)-APF from the top-A poses ``[B, A, 17, 3]`` (best first), mm.

  The target is their mean (StructNet-Avg(A)); APF starts from the joint
  angles of one of them: ``init="closest"`` (the top pose nearest the mean,
  MPJPE) or ``"best"`` (the best-scoring, index 0). ``apf_kwargs`` go to
  ``fit``.

  Returns:
    ``[B, 17, 3]`` mm (see ``fit``).
  """
  top = poses_lib.check_poses(top_poses, "top poses")
  if top.ndim != 4 or top.shape[1] == 0:
    raise ValueError(
        f"top poses must be [B, A, 17, 3] with A >= 1 (e.g. "
        f"candidates[out['top_indices']]), got shape {top.shape}.")
  avg = top.mean(axis=1)
  if init == "best":
    start = top[:, 0]
  elif init == "closest":
    err = np.linalg.norm(top - avg[:, None], axis=-1).mean(axis=-1)
    start = top[np.arange(top.shape[0]), np.argmin(err, axis=1)]
  else:
    raise ValueError(f"init must be 'closest' or 'best', got {init!r}.")
  return fit(avg, start, bone_lengths, key, **apf_kwargs)
