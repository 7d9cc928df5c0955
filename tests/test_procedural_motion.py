"""Tests of the procedural motion source and its kinematic body.

The checks measure the generated joint positions directly (bone vectors,
angles between bones, frames rebuilt from the joints) and compare them with
hand-computed values, never with the generator's own internals.
"""

from __future__ import annotations

import numpy as np
import pytest

from data_pipelines.motion import procedural as pm
from data_pipelines.rig import body_model as bm
from structnet_jax import poses as poses_lib

FPS = 50.0
J = bm.JOINT


@pytest.fixture(scope="module")
def all_actions():
  """Every action for three subjects, 4 s at 50 fps."""
  return pm.generate_motion(["S1", "S9", "P3"], None, sequences_per_action=1,
                            frames_per_sequence=200, fps=FPS, seed=3)


@pytest.fixture(scope="module")
def walks():
  return pm.generate_motion(["S1", "S5", "S11"], ["walking", "walk_curve"],
                            sequences_per_action=2, frames_per_sequence=300,
                            fps=FPS, seed=11)


def _unit(v):
  return v / np.linalg.norm(v, axis=-1, keepdims=True)


# --- Kinematic body -----------------------------------------------------------


def test_rest_pose_and_hinges_match_hand_computed_positions():
  body = bm.BodyShape()  # the 1.7 m reference adult
  offsets = bm.rest_offsets(body)
  rest = bm.forward_kinematics(np.zeros((17, 3)), offsets)
  hip = 130.0 * np.array([0.0, -1.0, -0.08]) / np.hypot(1.0, 0.08)
  np.testing.assert_allclose(rest[J["right_hip"]], hip, atol=1e-3)
  np.testing.assert_allclose(rest[J["right_ankle"]], hip + [0, 0, -890.0],
                             atol=1e-3)
  np.testing.assert_allclose(rest[J["thorax"]], [0, 0, 480.0], atol=1e-3)
  shoulder = rest[J["left_shoulder"]]
  np.testing.assert_allclose(rest[J["left_wrist"]], shoulder + [0, 0, -530.0],
                             atol=1e-3)

  a = np.zeros((17, 3))
  a[J["right_hip"], bm.FLEX] = np.pi / 2  # thigh straight forward
  a[J["right_knee"], bm.FLEX] = np.pi / 2  # shin straight down again
  a[J["left_shoulder"], bm.ABD] = np.pi / 2  # arm straight out to the left
  a[J["left_elbow"], bm.FLEX] = np.pi / 2  # forearm straight forward
  p = bm.forward_kinematics(a, offsets)
  np.testing.assert_allclose(p[J["right_knee"]], hip + [440.0, 0, 0], atol=1e-3)
  np.testing.assert_allclose(p[J["right_ankle"]], hip + [440.0, 0, -450.0],
                             atol=1e-3)
  np.testing.assert_allclose(p[J["left_elbow"]], shoulder + [0, 280.0, 0],
                             atol=1e-3)
  np.testing.assert_allclose(p[J["left_wrist"]], shoulder + [250.0, 280.0, 0],
                             atol=1e-3)

  # Pelvis twist is the heading: a quarter turn makes the person face +y.
  a = np.zeros((17, 3))
  a[J["right_hip"], bm.FLEX] = np.pi / 2
  a[J["pelvis"], bm.TWIST] = np.pi / 2
  p = bm.forward_kinematics(a, offsets, root_position=[100.0, 200.0, 900.0])
  knee = p[J["right_knee"]] - p[J["right_hip"]]
  np.testing.assert_allclose(knee, [0, 440.0, 0], atol=1e-3)
  np.testing.assert_allclose(p[0], [100.0, 200.0, 900.0], atol=1e-3)


def test_forward_kinematics_is_vectorised_over_leading_axes():
  rng = np.random.default_rng(0)
  a = bm.clip_to_limits(rng.uniform(-1, 1, (2, 5, 17, 3)))
  offsets = bm.rest_offsets(bm.subject_body("S7"))
  batched = bm.forward_kinematics(a, offsets)
  assert batched.shape == (2, 5, 17, 3)
  for i in range(2):
    for k in range(5):
      np.testing.assert_allclose(batched[i, k],
                                 bm.forward_kinematics(a[i, k], offsets),
                                 atol=1e-3)


def test_subject_bodies_are_deterministic_distinct_and_human():
  names = [f"S{i}" for i in range(1, 12)] + [f"P{i}" for i in range(8)]
  bodies = [bm.subject_body(n) for n in names]
  assert bm.subject_body("S1") == bodies[0]
  assert bm.subject_body("S1", seed=1) != bodies[0]
  statures = np.array([b.stature_mm for b in bodies])
  assert np.all((statures >= 1500) & (statures <= 1900))
  assert statures.std() > 20.0
  for b in bodies:
    for f in ("legs", "arms", "torso", "head", "shoulder", "hip"):
      assert 0.92 <= getattr(b, f) <= 1.08
  lengths = np.stack([bm.body_bone_lengths(b) for b in bodies])  # [19, 16]
  # Every pair of subjects differs in its bones.
  diff = np.abs(lengths[:, None] - lengths[None]).max(-1)
  assert (diff + np.eye(len(names)) * 1e9).min() > 1.0
  # Hand-computed thigh and upper-arm lengths from the stated proportions.
  b = bodies[0]
  bone = {c: i for i, (_, c) in enumerate(poses_lib.BONES)}
  scale = b.stature_mm / 1700.0
  np.testing.assert_allclose(lengths[0, bone[J["left_knee"]]],
                             440.0 * scale * b.legs, rtol=1e-9)
  np.testing.assert_allclose(lengths[0, bone[J["right_elbow"]]],
                             280.0 * scale * b.arms, rtol=1e-9)


# --- Generated motion ---------------------------------------------------------


def test_bone_lengths_constant_and_equal_to_the_body(all_actions):
  assert {s.action for s in all_actions} == set(pm.ACTION_NAMES)
  for s in all_actions:
    measured = poses_lib.bone_lengths(s.world_joints)  # [T, 16]
    expected = bm.body_bone_lengths(s.body)
    err = np.abs(measured - expected).max()
    assert err < 1e-3, (s.subject, s.action, err)


def test_fk_of_stored_angles_reproduces_the_world_joints(all_actions):
  for s in all_actions[::4]:
    p = bm.forward_kinematics(s.joint_angles, bm.rest_offsets(s.body),
                              s.root_position)
    np.testing.assert_allclose(p, s.world_joints, atol=0.05)


def _knee_elbow_hip_measures(w):
  """Hinge bend angles (deg), hinge-side cosines, and hip angles (deg)."""
  out = {}
  hip_lat = _unit(w[:, J["left_hip"]] - w[:, J["right_hip"]])
  sh_lat = _unit(w[:, J["left_shoulder"]] - w[:, J["right_shoulder"]])
  up = _unit(w[:, J["spine"]] - w[:, J["pelvis"]])
  fwd = np.cross(hip_lat, up)
  for side in ("left", "right"):
    for a, b, c, lat, name in ((f"{side}_hip", f"{side}_knee",
                                f"{side}_ankle", hip_lat, "knee"),
                               (f"{side}_shoulder", f"{side}_elbow",
                                f"{side}_wrist", sh_lat, "elbow")):
      u = _unit(w[:, J[b]] - w[:, J[a]])
      v = _unit(w[:, J[c]] - w[:, J[b]])
      bend = np.degrees(np.arccos(np.clip((u * v).sum(-1), -1, 1)))
      side_cos = (np.cross(u, v) * lat).sum(-1)
      out[f"{side}_{name}"] = (bend, side_cos)
    d = _unit(w[:, J[f"{side}_knee"]] - w[:, J[f"{side}_hip"]])
    dx, dy, dz = ((d * fwd).sum(-1), (d * hip_lat).sum(-1), (d * up).sum(-1))
    flex = np.degrees(np.arctan2(dx, -dz))
    abd = np.degrees(np.arcsin(np.clip(dy if side == "left" else -dy, -1, 1)))
    out[f"{side}_hip"] = (flex, abd)
  return out


def _limit_violations(w):
  """Names of the joint-limit checks that frames of ``w`` [T, 17, 3] break."""
  bad = []
  for name, (x, y) in _knee_elbow_hip_measures(w).items():
    if name.endswith("knee") or name.endswith("elbow"):
      if x.max() > 150.5:
        bad.append(f"{name} bends over 150 deg")
      # Knees bend backwards (shin behind the thigh's plane): the bend normal
      # points to the person's left; elbows bend forward: it points right.
      sign = 1.0 if name.endswith("knee") else -1.0
      if (sign * y).min() < -1e-4:
        bad.append(f"{name} bends the wrong way")
    else:
      if x.min() < -30.5 or x.max() > 125.5:
        bad.append(f"{name} flexion {x.min():.0f}..{x.max():.0f}")
      if y.min() < -30.5 or y.max() > 45.5:
        bad.append(f"{name} abduction {y.min():.0f}..{y.max():.0f}")
  return bad


def test_joint_limits_hold_in_every_action(all_actions):
  for s in all_actions:
    assert not _limit_violations(s.world_joints), (s.action,
                                                   _limit_violations(
                                                       s.world_joints))
  # The hinges do bend a lot somewhere (squats, sitting, phoning).
  bends = {k: max(_knee_elbow_hip_measures(s.world_joints)[k][0].max()
                  for s in all_actions) for k in ("left_knee", "right_elbow")}
  assert bends["left_knee"] > 80 and bends["right_elbow"] > 80


def test_limit_check_catches_hyperextension():
  offsets = bm.rest_offsets(bm.BodyShape())
  a = np.zeros((3, 17, 3))
  a[0, J["left_knee"], bm.FLEX] = np.radians(-25)  # unclipped: hyperextended
  a[1, J["right_elbow"], bm.FLEX] = np.radians(-25)
  a[2, J["left_hip"], bm.FLEX] = np.radians(-50)
  for i, what in enumerate(("left_knee bends the wrong way",
                            "right_elbow bends the wrong way",
                            "left_hip flexion")):
    w = bm.forward_kinematics(a[i:i + 1], offsets)
    assert any(v.startswith(what) for v in _limit_violations(w)), what
  # clip_to_limits repairs the same angles.
  w = bm.forward_kinematics(bm.clip_to_limits(a), offsets)
  assert not _limit_violations(w)


def test_same_seed_same_motion_other_seed_or_subject_differs():
  kw = dict(actions=["walking", "reaching"], sequences_per_action=2,
            frames_per_sequence=40, fps=FPS)
  a = pm.generate_motion(["S1", "S5"], seed=7, **kw)
  b = pm.generate_motion(["S1", "S5"], seed=7, **kw)
  c = pm.generate_motion(["S1", "S5"], seed=8, **kw)
  assert [(s.subject, s.action, s.subaction) for s in a] == [
      ("S1", "walking", 1), ("S1", "walking", 2), ("S1", "reaching", 1),
      ("S1", "reaching", 2), ("S5", "walking", 1), ("S5", "walking", 2),
      ("S5", "reaching", 1), ("S5", "reaching", 2)]
  for x, y, z in zip(a, b, c):
    np.testing.assert_array_equal(x.world_joints, y.world_joints)
    assert np.abs(x.world_joints - z.world_joints).max() > 10.0
  # A clip does not depend on which other clips are generated with it.
  alone = pm.generate_motion(["S5"], seed=7, **kw)
  np.testing.assert_array_equal(alone[0].world_joints, a[4].world_joints)
  # Subactions and subjects differ from each other.
  assert np.abs(a[0].world_joints - a[1].world_joints).max() > 10.0
  assert not np.allclose(poses_lib.bone_lengths(a[0].world_joints[0]),
                         poses_lib.bone_lengths(a[4].world_joints[0]))
  # The body belongs to the subject, not to the motion seed.
  assert a[0].body == c[0].body == bm.subject_body("S1")


def _forward(w):
  """Horizontal facing direction [T, 3] from the hip line (z up)."""
  lat = w[:, J["left_hip"]] - w[:, J["right_hip"]]
  f = np.stack([lat[:, 1], -lat[:, 0], np.zeros(len(lat))], -1)
  return _unit(f)


def test_walking_alternates_feet_moves_and_stays_on_the_floor(walks):
  for s in walks:
    w = s.world_joints
    steady = slice(int(1.2 * FPS), len(w) - int(1.2 * FPS))
    gap = ((w[:, J["left_ankle"]] - w[:, J["right_ankle"]]) *
           _forward(w)).sum(-1)[steady]
    crossings = np.flatnonzero(np.diff(np.sign(gap)) != 0)
    # ~0.5-0.65 s per step: 4+ alternations in 3.6 s, evenly spaced.
    assert len(crossings) >= 4, (s.action, len(crossings))
    spacing = np.diff(crossings) / FPS
    assert spacing.min() > 0.35 and spacing.max() < 0.8, spacing
    assert np.abs(gap).max() > 300.0  # real steps, not shuffling
    root = w[:, J["pelvis"], :2]
    path = np.linalg.norm(np.diff(root, axis=0), axis=-1).sum()
    assert path > 2000.0, path  # ~0.8-1.4 m/s for 6 s
    assert np.abs(w[..., 2].min(axis=1)).max() < 30.0
    # The supporting (lowest) foot does not skate during steady walking.
    ankles = w[:, [J["right_ankle"], J["left_ankle"]]]
    low = ankles[..., 2].argmin(axis=1)
    speed = np.linalg.norm(np.diff(ankles[..., :2], axis=0), axis=-1) * FPS
    support = speed[np.arange(len(speed)), low[1:]][steady]
    assert np.median(support) < 50.0 and np.percentile(support, 90) < 300.0


def test_headings_cover_the_circle_and_turning_turns():
  seqs = pm.generate_motion([f"P{i}" for i in range(20)], ["idle", "pointing"],
                            sequences_per_action=5, frames_per_sequence=4,
                            fps=FPS, seed=0)
  assert len(seqs) == 200
  f = np.stack([_forward(s.world_joints[:1])[0] for s in seqs])
  yaw = np.arctan2(f[:, 1], f[:, 0])
  counts, _ = np.histogram(yaw, bins=8, range=(-np.pi, np.pi))
  assert counts.min() > 0, counts
  turns = pm.generate_motion(["S1", "S6"], ["turning"], 2, 250, FPS, seed=2)
  for s in turns:
    f = _forward(s.world_joints)
    step = np.arctan2(np.cross(f[:-1], f[1:])[:, 2], (f[:-1] * f[1:]).sum(-1))
    assert np.abs(np.cumsum(step)).max() > np.radians(45)
    root = s.world_joints[:, 0, :2]
    assert np.linalg.norm(root - root[0], axis=-1).max() < 500.0  # on the spot


def _smoothness(w, fps):
  """(max joint speed m/s, max acceleration m/s^2, roughness ratio)."""
  v = np.diff(w, axis=0)
  acc = np.diff(w, 2, axis=0)
  speed = np.linalg.norm(v, axis=-1).max() * fps / 1000.0
  accel = np.linalg.norm(acc, axis=-1).max() * fps**2 / 1000.0
  rough = np.linalg.norm(acc, axis=-1).mean() / max(
      np.linalg.norm(v, axis=-1).mean(), 1e-9)
  return speed, accel, rough


def test_motion_is_smooth_not_noise(all_actions):
  for s in all_actions:
    speed, accel, rough = _smoothness(s.world_joints, FPS)
    # Human limbs: < ~6 m/s (a walking foot's swing), accelerations well
    # under 100 m/s^2, i.e. no frame-to-frame jump over 120 mm at 50 fps;
    # |second difference| / |first difference| is 2 pi f / fps for a sine of
    # f Hz (0.25 for a 2 Hz wave) and ~1.7 for white noise.
    assert speed < 6.0 and accel < 100.0 and rough < 0.35, (
        s.action, speed, accel, rough)
  # The same check rejects jittered motion (so it can fail).
  rng = np.random.default_rng(0)
  noisy = all_actions[0].world_joints + rng.normal(0, 15.0, (200, 17, 3))
  assert _smoothness(noisy, FPS)[2] > 1.0
  # And still holds at 25 fps.
  for s in pm.generate_motion(["S2"], ["walking", "waving"], 1, 100, 25.0, 1):
    speed, accel, _ = _smoothness(s.world_joints, 25.0)
    assert speed < 6.0 and accel < 100.0


def test_people_stay_in_a_plausible_volume(all_actions):
  for s in all_actions:
    w = s.world_joints
    assert np.linalg.norm(w[..., :2], axis=-1).max() < 2500.0
    assert np.linalg.norm(s.root_position[:, :2], axis=-1).max() < 2000.0
    assert w[..., 2].min() > -30.0 and w[..., 2].max() < 2400.0
    # Pelvis between squatting and standing height.
    assert 300.0 < w[:, J["pelvis"], 2].min() and w[:, J["pelvis"], 2].max(
    ) < 1200.0
    # Start and end in a neutral stance: upright, both feet on the floor.
    for i in (0, -1):
      assert w[i, J["head"], 2] - w[i, J["pelvis"], 2] > 500.0
      assert np.abs(w[i, [J["left_ankle"], J["right_ankle"]], 2]).max() < 15.0


def test_bad_arguments_get_clear_errors():
  with pytest.raises(ValueError, match="unknown action"):
    pm.generate_motion(["S1"], ["moonwalk"], 1, 10, FPS, 0)
  with pytest.raises(ValueError, match="subjects"):
    pm.generate_motion([], None, 1, 10, FPS, 0)
  with pytest.raises(ValueError, match="subjects"):
    pm.generate_motion("S1", None, 1, 10, FPS, 0)
  with pytest.raises(ValueError, match="frames_per_sequence"):
    pm.generate_motion(["S1"], None, 1, 1, FPS, 0)
  with pytest.raises(ValueError, match="fps"):
    pm.generate_motion(["S1"], None, 1, 10, 0.0, 0)
  with pytest.raises(ValueError, match="angles must have shape"):
    bm.forward_kinematics(np.zeros((4, 16, 3)), np.zeros((17, 3)))
  with pytest.raises(ValueError, match="subject_name"):
    bm.subject_body("")
  with pytest.raises(ValueError, match="stature_mm"):
    bm.BodyShape(stature_mm=-1.0)


def test_plot_sequences_writes_a_png(tmp_path):
  pytest.importorskip("matplotlib")
  seqs = pm.generate_motion(["S1"], ["walking", "sitting"], 1, 30, FPS, 0)
  path = tmp_path / "sheet.png"
  pm.plot_sequences(seqs, str(path), frames_per_row=3)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
