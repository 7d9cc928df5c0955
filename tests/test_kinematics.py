"""Tests for data_pipelines.rig.kinematics (Rodrigues, 32-joint FK, frames)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data_pipelines.rig import kinematics
from structnet_jax import poses as poses_lib


def synthetic_skeleton32(seed: int = 0) -> dict:
  """A made-up 32-joint tree in the format of h36m_skeleton32.json.

  The 17 evaluation joints form the tree of ``structnet_jax.poses`` (each of
  their bones is a direct parent-child pair); 15 extra leaf joints hang off
  them. Joints are listed in a random order that keeps parents first.
  """
  rng = np.random.default_rng(seed)
  parents = list(poses_lib.PARENTS) + list(
      rng.choice(poses_lib.NUM_JOINTS, size=15))
  num = len(parents)
  order, placed = [], set()
  while len(order) < num:
    ready = [j for j in range(num)
             if j not in placed and (parents[j] < 0 or parents[j] in placed)]
    j = int(rng.choice(ready))
    order.append(j)
    placed.add(j)
  new_index = {old: new for new, old in enumerate(order)}
  offsets = np.zeros((num, 3))
  new_parents = []
  for new, old in enumerate(order):
    new_parents.append(-1 if parents[old] < 0 else new_index[parents[old]])
    if parents[old] >= 0:
      direction = rng.normal(size=3)
      offsets[new] = rng.uniform(80, 450) * direction / np.linalg.norm(direction)
  return {
      "parents_1based_0_is_root": [p + 1 for p in new_parents],
      "offsets_mm": offsets.round(3).tolist(),
      "position_channels_1based": [[] for _ in range(num)],
      "h36m17_from_32": [new_index[j] for j in range(poses_lib.NUM_JOINTS)],
  }


def write_skeleton(path, seed=0):
  path.write_text(json.dumps(synthetic_skeleton32(seed)))
  return path


# ---------------------------------------------------------------------------
# expmap_to_rotmat


def test_expmap_matches_scipy_on_random_vectors():
  rng = np.random.default_rng(1)
  axes = rng.normal(size=(64, 3))
  axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
  angles = np.concatenate([rng.uniform(0, 3 * np.pi, 48),
                           10.0 ** rng.uniform(-7, -2, 16)])
  r = axes * angles[:, None]
  got = np.asarray(kinematics.expmap_to_rotmat(jnp.asarray(r, jnp.float32)))
  want = Rotation.from_rotvec(r).as_matrix()
  np.testing.assert_allclose(got, want, atol=2e-6)
  # Batched leading axes are kept.
  assert kinematics.expmap_to_rotmat(jnp.zeros((2, 5, 3))).shape == (2, 5, 3, 3)


def test_expmap_at_zero_is_identity_with_finite_gradient():
  np.testing.assert_array_equal(
      np.asarray(kinematics.expmap_to_rotmat(jnp.zeros(3))), np.eye(3))
  # dR/dr_k at 0 is the cross-product matrix of the unit vector e_k.
  jac = np.asarray(jax.jacfwd(kinematics.expmap_to_rotmat)(jnp.zeros(3)))
  assert np.all(np.isfinite(jac))
  for k in range(3):
    x, y, z = np.eye(3)[k]
    skew = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    np.testing.assert_allclose(jac[..., k], skew, atol=1e-7)
  grad = jax.grad(lambda r: kinematics.expmap_to_rotmat(r)[0, 1])(jnp.zeros(3))
  assert np.all(np.isfinite(np.asarray(grad)))


# ---------------------------------------------------------------------------
# forward_kinematics


def test_fk_three_joint_chain_by_hand():
  # Root turned 90 degrees about z, joint 1 turned 90 degrees about x.
  # Row vectors: x_i = offset_i @ R_p + x_p, R_i = expmap(rot_i) @ R_p.
  # R_0 = [[0,-1,0],[1,0,0],[0,0,1]], so (100,0,0) @ R_0 = (0,-100,0);
  # R_1 = Rx(90) @ R_0 and (0,50,0) @ R_1 = (0,0,-50) @ R_0 = (0,0,-50).
  parents = (-1, 0, 1)
  offsets = np.array([[0.0, 0, 0], [100, 0, 0], [0, 50, 0]])
  angles = np.zeros((1, 3, 3))
  angles[0, 0] = [0, 0, np.pi / 2]
  angles[0, 1] = [np.pi / 2, 0, 0]
  root = np.array([[10.0, 20, 30]])
  want = np.array([[10.0, 20, 30], [10, -80, 30], [10, -80, -20]])
  got = kinematics.forward_kinematics(angles, root, None, offsets, parents)
  np.testing.assert_allclose(np.asarray(got)[0], want, atol=1e-4)
  # An explicit root rotation replaces the root's angle row.
  angles2 = angles.copy()
  angles2[0, 0] = [0.3, -0.2, 0.1]
  r0 = np.array([[[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]])
  got2 = kinematics.forward_kinematics(angles2, root, r0, offsets, parents)
  np.testing.assert_allclose(np.asarray(got2)[0], want, atol=1e-4)


def test_fk_keeps_bone_lengths_of_the_17_joints():
  skel = synthetic_skeleton32()
  parents = tuple(p - 1 for p in skel["parents_1based_0_is_root"])
  offsets = np.asarray(skel["offsets_mm"], np.float32)
  rng = np.random.default_rng(2)
  angles = rng.normal(scale=1.2, size=(6, 32, 3)).astype(np.float32)
  roots = rng.normal(scale=500, size=(6, 3)).astype(np.float32)
  pos32 = jax.jit(kinematics.forward_kinematics,
                  static_argnames="parents")(
                      angles, roots, None, offsets, parents=parents)
  pos17 = np.asarray(kinematics.reduce_to_h36m17(pos32, skel["h36m17_from_32"]))
  assert pos17.shape == (6, 17, 3)
  lengths = poses_lib.bone_lengths(pos17)  # [6, 16]
  sel = skel["h36m17_from_32"]
  want = np.array([np.linalg.norm(offsets[sel[c]]) for _, c in poses_lib.BONES])
  np.testing.assert_allclose(lengths, np.broadcast_to(want, lengths.shape),
                             rtol=1e-5)
  # Roots land where asked (the root offset is zero) and the pose varies.
  np.testing.assert_allclose(pos17[:, 0], roots, atol=1e-3)
  assert np.ptp(pos17[:, 10] - pos17[:, 0], axis=0).max() > 50.0


def test_fk_rejects_bad_shapes():
  with pytest.raises(ValueError, match=r"angles must have shape \[T, 3, 3\]"):
    kinematics.forward_kinematics(np.zeros((2, 4, 3)), None, None,
                                  np.zeros((3, 3)), (-1, 0, 1))
  with pytest.raises(ValueError, match="parents must have exactly one root"):
    kinematics.forward_kinematics(np.zeros((2, 3, 3)), None, None,
                                  np.zeros((3, 3)), (-1, 2, 0))
  with pytest.raises(ValueError, match="root_positions"):
    kinematics.forward_kinematics(np.zeros((2, 3, 3)), np.zeros((3, 3)), None,
                                  np.zeros((3, 3)), (-1, 0, 1))


# ---------------------------------------------------------------------------
# Frames and helpers


def test_y_up_to_z_up_is_a_rotation_that_keeps_left_on_the_left():
  # A right-handed y-up body at rest: up +y, facing +z, left hip at +x.
  up, forward, left = np.eye(3)[1], np.eye(3)[2], np.eye(3)[0]
  assert np.allclose(np.cross(left, up), forward)  # right-handed body
  z_up, z_fwd, z_left = (kinematics.y_up_to_z_up(v) for v in (up, forward, left))
  np.testing.assert_array_equal(z_up, [0, 0, 1])
  np.testing.assert_allclose(np.cross(z_left, z_up), z_fwd)
  pts = np.random.default_rng(3).normal(size=(5, 3))
  np.testing.assert_array_equal(kinematics.y_up_to_z_up(pts),
                                pts[:, [0, 2, 1]] * [1, -1, 1])
  # The README's literal swap is a mirror (left ends up on the right).
  swapped = kinematics.y_up_to_z_up(pts, keep_handedness=False)
  np.testing.assert_array_equal(swapped, pts[:, [0, 2, 1]])
  s_up, s_fwd, s_left = (kinematics.y_up_to_z_up(v, keep_handedness=False)
                         for v in (up, forward, left))
  np.testing.assert_allclose(np.cross(s_left, s_up), -s_fwd)
  # jax in, jax out.
  assert isinstance(kinematics.y_up_to_z_up(jnp.ones((2, 3))), jax.Array)


def test_reduce_to_h36m17_picks_the_listed_joints():
  pos = np.arange(2 * 32 * 3, dtype=np.float32).reshape(2, 32, 3)
  idx = list(range(31, 14, -1))
  np.testing.assert_array_equal(kinematics.reduce_to_h36m17(pos, idx),
                                pos[:, idx])
  with pytest.raises(ValueError, match="17 indices"):
    kinematics.reduce_to_h36m17(pos, idx[:5])
  with pytest.raises(ValueError, match=r"\[\.\.\., 32, 3\]"):
    kinematics.reduce_to_h36m17(pos[:, :20], idx)


def test_load_skeleton32_reads_the_format(tmp_path):
  path = write_skeleton(tmp_path / "h36m_skeleton32.json")
  raw = synthetic_skeleton32()
  skel = kinematics.load_skeleton32(path)
  assert skel.parents == tuple(p - 1 for p in raw["parents_1based_0_is_root"])
  assert skel.parents.count(-1) == 1
  np.testing.assert_allclose(skel.offsets, raw["offsets_mm"], rtol=1e-6)
  assert skel.h36m17_from_32 == tuple(raw["h36m17_from_32"])


def test_load_skeleton32_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="h36m_skeleton32.json"):
    kinematics.load_skeleton32(tmp_path / "nope.json")
  bad = tmp_path / "bad.json"
  bad.write_text("{not json")
  with pytest.raises(ValueError, match="not readable JSON"):
    kinematics.load_skeleton32(bad)
  raw = synthetic_skeleton32()
  short = dict(raw, parents_1based_0_is_root=raw["parents_1based_0_is_root"][:31])
  bad.write_text(json.dumps(short))
  with pytest.raises(ValueError, match="32 parents"):
    kinematics.load_skeleton32(bad)
  order = list(raw["parents_1based_0_is_root"])
  order[1] = 32  # a parent listed after its child
  bad.write_text(json.dumps(dict(raw, parents_1based_0_is_root=order)))
  with pytest.raises(ValueError, match="parent must come before"):
    kinematics.load_skeleton32(bad)
  bad.write_text(json.dumps({"offsets_mm": raw["offsets_mm"]}))
  with pytest.raises(ValueError, match="must be a JSON object with fields"):
    kinematics.load_skeleton32(bad)
