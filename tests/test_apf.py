"""Tests for structnet_jax.apf: joint angles, templates, APF fitting."""

import jax
import numpy as np
import pytest

from structnet_jax import apf
from structnet_jax import poses as poses_lib

# A plausible template (mm), in the order of poses.BONES.
LENGTHS = np.array([132, 442, 454, 132, 442, 454, 233, 257, 121, 115, 151,
                    278, 251, 151, 278, 251], np.float32)
# Standing, arms down, facing the camera (x right, y down, z forward); bone
# directions indexed by child joint.
_STAND = {1: (-1, 0, 0), 2: (0, 1, 0), 3: (0, 1, 0), 4: (1, 0, 0),
          5: (0, 1, 0), 6: (0, 1, 0), 7: (0, -1, -.1), 8: (0, -1, 0),
          9: (0, -1, -.4), 10: (0, -1, 0), 11: (1, -.2, 0), 12: (.15, 1, 0),
          13: (0, 1, -.3), 14: (-1, -.2, 0), 15: (-.15, 1, 0), 16: (0, 1, -.3)}
# Test-time APF budget (one compiled configuration for all tests): the
# defaults, annealing then gradient refinement.
APF_KW = dict(num_particles=200, num_layers=10)


def _rot(axis, angle):
  axis = np.asarray(axis, float) / np.linalg.norm(axis)
  k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]],
                [-axis[1], axis[0], 0]])
  return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _fk(dirs, lengths):
  """Independent numpy FK: child = parent + length * unit direction."""
  joints = np.zeros((17, 3))
  for b, (p, c) in enumerate(poses_lib.BONES):
    joints[c] = joints[p] + lengths[b] * dirs[c] / np.linalg.norm(dirs[c])
  return joints


def _random_dirs(rng, jitter=0.35):
  dirs = {c: _rot(rng.normal(size=3), rng.normal() * jitter) @ np.asarray(v)
          for c, v in _STAND.items()}
  turn = _rot((0, 1, 0), rng.uniform(-np.pi, np.pi)) @ _rot(
      (1, 0, 0), rng.normal() * 0.15)
  return {c: turn @ d for c, d in dirs.items()}


def _mpjpe(a, b):
  return np.linalg.norm(np.asarray(a) - np.asarray(b), axis=-1).mean(-1)


def _problems(seed, batch, lo=80.0, hi=150.0):
  """Valid targets with LENGTHS, and inits lo..hi mm MPJPE away from them."""
  rng = np.random.default_rng(seed)
  targets, inits = [], []
  while len(targets) < batch:
    dirs = _random_dirs(rng)
    target = _fk(dirs, LENGTHS)
    init_dirs = {c: _rot(rng.normal(size=3), rng.normal() * 0.3) @ d
                 for c, d in dirs.items()}
    init = _fk(init_dirs, LENGTHS * rng.uniform(0.9, 1.1, size=16))
    if lo <= _mpjpe(init, target) <= hi:
      targets.append(target)
      inits.append(init)
  return np.float32(targets), np.float32(inits), rng


@pytest.fixture(scope="module")
def noisy_fit():
  targets, inits, rng = _problems(0, 6)
  noisy = targets + rng.normal(scale=12.0, size=targets.shape).astype(
      np.float32)
  noisy[:, 0] = 0.0  # root-relative
  out, err = apf.fit(noisy, inits, LENGTHS, jax.random.key(0),
                     return_error=True, **APF_KW)
  return targets, inits, noisy, np.asarray(out), np.asarray(err)


def test_angles_round_trip_is_exact():
  rng = np.random.default_rng(1)
  poses = np.float32([_fk(_random_dirs(rng, 0.6), LENGTHS) for _ in range(64)])
  angles = apf.angles_from_pose(poses)
  assert angles.shape == (64, 16, 2)
  back = np.asarray(apf.pose_from_angles(angles, LENGTHS))
  np.testing.assert_allclose(back, poses, atol=2e-3)
  np.testing.assert_allclose(poses_lib.bone_lengths(back),
                             np.broadcast_to(LENGTHS, (64, 16)), atol=1e-3)
  # Another template: same directions, exactly the new lengths.
  other = LENGTHS * 1.17
  moved = np.asarray(apf.pose_from_angles(angles, other))
  np.testing.assert_allclose(poses_lib.bone_lengths(moved),
                             np.broadcast_to(other, (64, 16)), atol=1e-3)


def test_t_pose_and_templates():
  tp = np.asarray(apf.t_pose(LENGTHS))
  np.testing.assert_allclose(poses_lib.bone_lengths(tp), LENGTHS, atol=1e-3)
  np.testing.assert_allclose(tp[0], 0.0)
  names = poses_lib.JOINT_NAMES
  assert tp[names.index("head"), 1] < tp[names.index("thorax"), 1] < 0  # up
  assert tp[names.index("right_ankle"), 1] > 0  # legs down
  assert tp[names.index("left_wrist"), 0] > 600 > -600 > tp[
      names.index("right_wrist"), 0]  # arms out, person faces the camera
  np.testing.assert_allclose(
      np.asarray(apf.angles_from_pose(tp)), 0.0, atol=1e-5)
  rng = np.random.default_rng(2)
  frames = np.float32([_fk(_random_dirs(rng), LENGTHS * rng.uniform(
      0.98, 1.02, 16)) for _ in range(21)])
  np.testing.assert_allclose(apf.subject_bone_lengths(frames), LENGTHS,
                             rtol=0.02)
  np.testing.assert_allclose(apf.template_from_pose(frames[0]),
                             poses_lib.bone_lengths(frames[0]), rtol=1e-5)


def test_apf_output_has_template_bone_lengths(noisy_fit):
  _, _, _, out, _ = noisy_fit
  assert out.shape == (6, 17, 3) and np.all(np.isfinite(out))
  np.testing.assert_allclose(out[:, 0], 0.0, atol=1e-4)
  np.testing.assert_allclose(poses_lib.bone_lengths(out),
                             np.broadcast_to(LENGTHS, (6, 16)), atol=1e-3)


def test_apf_reduces_error_to_near_noise_floor(noisy_fit):
  targets, inits, noisy, out, err = noisy_fit
  init_err = _mpjpe(inits, noisy)
  floor = _mpjpe(targets, noisy)  # the true valid pose's error
  fit_err = _mpjpe(out, noisy)
  print("init", init_err.round(1), "floor", floor.round(1), "apf",
        fit_err.round(1), "apf->clean", _mpjpe(out, targets).round(1))
  np.testing.assert_allclose(err, fit_err, rtol=1e-4, atol=1e-3)
  assert np.all(fit_err < 0.5 * init_err)
  assert fit_err.mean() < floor.mean() + 15.0


def test_apf_recovers_valid_target():
  targets, inits, _ = _problems(3, 6)
  out = np.asarray(apf.fit(targets, inits, LENGTHS, jax.random.key(1),
                           **APF_KW))
  err = _mpjpe(out, targets)
  init_err = _mpjpe(inits, targets)
  print("clean target: init", init_err.round(1), "apf", err.round(1))
  # Annealing finds the basin, the refinement lands on the target.
  assert np.all(err < 0.1 * init_err)
  assert np.median(err) < 5.0
  pure = np.asarray(apf.fit(targets, inits, LENGTHS, jax.random.key(1),
                            refine_steps=0, **APF_KW))
  assert np.all(_mpjpe(pure, targets) < init_err)  # pure APF: part of the way


def test_apf_is_deterministic_for_a_key(noisy_fit):
  _, inits, noisy, out, _ = noisy_fit
  again = np.asarray(apf.fit(noisy, inits, LENGTHS, jax.random.key(0),
                             **APF_KW))
  np.testing.assert_array_equal(again, out)
  other = np.asarray(apf.fit(noisy, inits, LENGTHS, jax.random.key(5),
                             **APF_KW))
  assert not np.array_equal(other, out)


def test_padding_to_a_power_of_two_leaves_each_fit_unchanged():
  # fit compiles for 4 rows here; the 3 real ones must be what the unpadded
  # program gives them with the same per-row keys.
  targets, inits, _ = _problems(7, 3)
  kw = dict(num_particles=8, num_layers=1, init_std=0.1, diffusion_scale=0.5,
            min_std=1e-3, survival_rate=0.2, refine_steps=0,
            refine_learning_rate=0.01)
  key = jax.random.key(3)
  out, err = apf.fit(targets, inits, LENGTHS, key, return_error=True, **kw)
  assert apf._padded_size(3) == 4 and out.shape == (3, 17, 3)
  want, want_err = apf._fit_batch(
      targets, inits, np.broadcast_to(LENGTHS, (3, 16)),
      jax.random.split(key, 3), **kw)
  np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-4)
  np.testing.assert_allclose(err, want_err, rtol=1e-6, atol=1e-5)
  assert [apf._padded_size(b) for b in (1, 2, 5, 64, 65)] == [1, 2, 8, 64, 128]


def test_fit_avg_apf_targets_the_average():
  targets, inits, _ = _problems(4, 6)
  # Top-2 "candidates": the mean of (target + d, target - d) is the target.
  d = inits - targets
  top = np.stack([targets + d, targets - d], axis=1)
  out = np.asarray(apf.fit_avg_apf(top, LENGTHS, jax.random.key(2),
                                   init="best", **APF_KW))
  assert np.all(_mpjpe(out, targets) < 0.5 * _mpjpe(inits, targets))


@pytest.mark.parametrize("kwargs, match", [
    (dict(target=np.zeros((2, 16, 3))), r"\[\.\.\., 17, 3\]"),
    (dict(target=np.zeros((17, 3))), r"batch \[B, 17, 3\]"),
    (dict(init=np.zeros((3, 17, 3))), "same shape"),
    (dict(target=np.full((2, 17, 3), np.nan)), "NaN"),
    (dict(bone_lengths=-LENGTHS), "positive"),
    (dict(bone_lengths=LENGTHS[:15]), r"\[\.\.\., 16\]"),
    (dict(bone_lengths=np.ones((3, 16))), r"\[B, 16\]"),
    (dict(num_particles=0), "num_particles must be a positive int"),
    (dict(num_layers=0), "num_layers"),
    (dict(survival_rate=1.5), "survival_rate"),
    (dict(key=7), "PRNG key"),
])
def test_bad_inputs_raise(kwargs, match):
  args = dict(target=np.zeros((2, 17, 3)), init=np.zeros((2, 17, 3)),
              bone_lengths=LENGTHS, key=jax.random.key(0))
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    apf.fit(args.pop("target"), args.pop("init"), args.pop("bone_lengths"),
            args.pop("key"), **args)


def test_bad_template_inputs_raise():
  with pytest.raises(ValueError, match="non-empty"):
    apf.subject_bone_lengths(np.zeros((0, 17, 3)))
  with pytest.raises(ValueError, match="length <= 0"):
    apf.template_from_pose(np.zeros((17, 3)))
  with pytest.raises(ValueError, match=r"\[\.\.\., 16, 2\]"):
    apf.pose_from_angles(np.zeros((16, 3)), LENGTHS)
  with pytest.raises(ValueError, match="'closest' or 'best'"):
    apf.fit_avg_apf(np.zeros((1, 2, 17, 3)), LENGTHS, jax.random.key(0),
                    init="mean")
