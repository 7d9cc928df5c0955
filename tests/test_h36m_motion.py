"""Tests for data_pipelines.motion.h36m (root integration, loaders, errors).

Fixtures are generated here: a made-up 32-joint skeleton in the format of
h36m_skeleton32.json and random motion rows, written as .npz and as the text
release's S*/<action>_<subaction>.txt files.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data_pipelines.motion import h36m as h36m_motion
from data_pipelines.rig import kinematics
from structnet_jax import poses as poses_lib


def synthetic_skeleton32(seed: int = 0) -> dict:
  """32 joints: the 17-joint tree of ``poses`` plus 15 leaves, shuffled."""
  rng = np.random.default_rng(seed)
  parents = list(poses_lib.PARENTS) + list(rng.choice(17, size=15))
  order, placed = [], set()
  while len(order) < 32:
    ready = [j for j in range(32)
             if j not in placed and (parents[j] < 0 or parents[j] in placed)]
    order.append(int(rng.choice(ready)))
    placed.add(order[-1])
  new = {old: i for i, old in enumerate(order)}
  offsets = np.zeros((32, 3))
  for i, old in enumerate(order):
    if parents[old] >= 0:
      d = rng.normal(size=3)
      offsets[i] = rng.uniform(80, 450) * d / np.linalg.norm(d)
  return {
      "parents_1based_0_is_root": [
          0 if parents[old] < 0 else new[parents[old]] + 1 for old in order],
      "offsets_mm": offsets.round(3).tolist(),
      "position_channels_1based": [[] for _ in range(32)],
      "h36m17_from_32": [new[j] for j in range(17)],
  }


def random_rows(frames: int, seed: int) -> np.ndarray:
  rng = np.random.default_rng(seed)
  rows = np.zeros((frames, 99), np.float32)
  rows[:, 0:3] = rng.normal(scale=[8.0, 1.0, 20.0], size=(frames, 3))
  rows[:, 3:6] = rng.normal(scale=0.03, size=(frames, 3))
  rows[:, 6:] = rng.normal(scale=0.4, size=(frames, 93))
  rows[0, :6] = 0.0  # as in the release
  return rows


def reference_joints(rows, skel, substeps=1):
  """The data README's recipe as a plain numpy loop (float64)."""
  parents = [p - 1 for p in skel["parents_1based_0_is_root"]]
  offsets = np.asarray(skel["offsets_mm"])
  expmap = lambda r: Rotation.from_rotvec(r).as_matrix()
  rot, pos = np.eye(3), np.zeros(3)
  out = []
  for c in np.asarray(rows, np.float64):
    for _ in range(substeps):
      pos = pos + rot.T @ c[0:3]
      rot = expmap(c[3:6]) @ rot
    x, r = [None] * 32, [None] * 32
    for i, p in enumerate(parents):
      if p < 0:
        r[i], x[i] = rot, offsets[i] + pos
      else:
        x[i] = offsets[i] @ r[p] + x[p]
        r[i] = expmap(c[3 + 3 * i:6 + 3 * i]) @ r[p]
    joints = np.array(x)[skel["h36m17_from_32"]]
    out.append(np.stack([joints[:, 0], -joints[:, 2], joints[:, 1]], -1))
  return np.array(out)


SEQUENCES = {"S1/walking/1": 40, "S1/walking/2": 35, "S5/eating/1": 30}


@pytest.fixture()
def dataset(tmp_path):
  """The same motion as an .npz and as a text folder, skeleton beside both."""
  skel = synthetic_skeleton32()
  (tmp_path / "h36m_skeleton32.json").write_text(json.dumps(skel))
  rows = {k: random_rows(n, seed=i) for i, (k, n) in enumerate(SEQUENCES.items())}
  np.savez(tmp_path / "motion.npz", **rows)
  for key, r in rows.items():
    subject, action, sub = key.split("/")
    folder = tmp_path / "release" / subject
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / f"{action}_{sub}.txt", r, delimiter=",", fmt="%.9g")
  return {"root": tmp_path, "npz": tmp_path / "motion.npz",
          "text": tmp_path / "release", "rows": rows, "skeleton": skel}


# ---------------------------------------------------------------------------
# Root integration


def test_forward_and_yaw_increments_trace_a_circle():
  # Each frame: step v along the root's x, then turn by w about y (up).
  # Positions are the vertices of a regular 12-gon of side v, radius
  # v / (2 sin(w / 2)); after 12 frames the heading is back where it started.
  v, w, frames = 30.0, 2 * np.pi / 12, 24
  inc = np.tile([v, 0.0, 0.0, 0.0, w, 0.0], (frames, 1))
  pos, rot = h36m_motion.integrate_root(inc.astype(np.float32))
  pos, rot = np.asarray(pos, np.float64), np.asarray(rot, np.float64)
  np.testing.assert_allclose(pos[:, 1], 0.0, atol=1e-4)
  radius = np.linalg.norm(pos - pos.mean(axis=0), axis=-1)
  np.testing.assert_allclose(radius, v / (2 * np.sin(w / 2)), rtol=1e-4)
  np.testing.assert_allclose(np.linalg.norm(np.diff(pos, axis=0), axis=-1), v,
                             rtol=1e-4)
  np.testing.assert_allclose(rot[11], np.eye(3), atol=1e-5)
  # Frame 0 steps along +x from R = I; frame 1 along (v, 0, 0) @ Ry(w), the
  # first row of Ry(w) = [[cos w, 0, sin w], [0, 1, 0], [-sin w, 0, cos w]].
  np.testing.assert_allclose(pos[0], [v, 0, 0], atol=1e-5)
  np.testing.assert_allclose(pos[1], [v + v * np.cos(w), 0, v * np.sin(w)],
                             atol=1e-4)


def test_zero_increments_keep_the_root_fixed():
  r0 = Rotation.from_rotvec([0.2, -0.5, 0.9]).as_matrix().astype(np.float32)
  t0 = np.array([100.0, -20.0, 35.0], np.float32)
  pos, rot = h36m_motion.integrate_root(np.zeros((10, 6), np.float32),
                                        initial_rotation=r0, initial_position=t0)
  np.testing.assert_allclose(np.asarray(pos), np.tile(t0, (10, 1)), atol=1e-5)
  np.testing.assert_allclose(np.asarray(rot), np.tile(r0, (10, 1, 1)), atol=1e-6)


def test_integration_matches_a_numpy_loop_with_substeps():
  rng = np.random.default_rng(5)
  inc = np.concatenate([rng.normal(scale=20, size=(30, 3)),
                        rng.normal(scale=0.2, size=(30, 3))], 1)
  for substeps in (1, 2):
    rot, pos = np.eye(3), np.zeros(3)
    want_pos, want_rot = [], []
    for c in inc:
      for _ in range(substeps):
        pos = pos + rot.T @ c[:3]
        rot = Rotation.from_rotvec(c[3:]).as_matrix() @ rot
      want_pos.append(pos)
      want_rot.append(rot)
    got_pos, got_rot = h36m_motion.integrate_root(inc.astype(np.float32),
                                                  substeps=substeps)
    np.testing.assert_allclose(np.asarray(got_pos), want_pos, atol=2e-3)
    np.testing.assert_allclose(np.asarray(got_rot), want_rot, atol=2e-5)


def test_rows_to_world_joints_match_the_readme_recipe(tmp_path):
  skel = synthetic_skeleton32()
  path = tmp_path / "skel.json"
  path.write_text(json.dumps(skel))
  skeleton = kinematics.load_skeleton32(path)
  rows = random_rows(37, seed=9)
  for substeps in (1, 2):
    got = h36m_motion.world_joints_from_rows(rows, skeleton,
                                             root_substeps=substeps)
    assert got.shape == (37, 17, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference_joints(rows, skel, substeps),
                               atol=0.05)


# ---------------------------------------------------------------------------
# Loaders


def test_text_folder_and_npz_give_the_same_sequences(dataset):
  from_npz = h36m_motion.load_expmap_motion(dataset["npz"], root_substeps=1,
                                            align=False)
  from_text = h36m_motion.load_expmap_motion(dataset["text"], root_substeps=1,
                                             align=False)
  assert sorted(from_npz) == sorted(from_text) == sorted(SEQUENCES)
  for key, n in SEQUENCES.items():
    a, b = from_npz[key], from_text[key]
    assert (a.subject, a.action, a.subaction) == (b.subject, b.action,
                                                  b.subaction)
    assert a.key == key and a.num_frames == n
    np.testing.assert_array_equal(a.frame_indices, np.arange(n))
    np.testing.assert_allclose(a.world_joints, b.world_joints, atol=1e-3)
    np.testing.assert_allclose(
        a.world_joints, reference_joints(dataset["rows"][key],
                                         dataset["skeleton"]), atol=0.05)
  # Frame rates of the two forms: the .npz copy is 25 fps, the release 50.
  assert from_npz["S1/walking/1"].fps == 25.0
  assert from_text["S1/walking/1"].fps == 50.0


def test_default_npz_integration_uses_two_root_steps_per_row(dataset):
  seqs = h36m_motion.load_expmap_motion(dataset["npz"], subjects=["S5"],
                                        align=False)
  want = reference_joints(dataset["rows"]["S5/eating/1"], dataset["skeleton"],
                          substeps=2)
  np.testing.assert_allclose(seqs["S5/eating/1"].world_joints, want, atol=0.05)


def test_subjects_filter_and_frame_step(dataset):
  full = h36m_motion.load_expmap_motion(dataset["npz"], subjects=["S1"])
  assert sorted(full) == ["S1/walking/1", "S1/walking/2"]
  sub = h36m_motion.load_expmap_motion(dataset["npz"], subjects=["S1"], step=3)
  for key, seq in sub.items():
    np.testing.assert_array_equal(seq.frame_indices,
                                  np.arange(0, SEQUENCES[key], 3))
    # The root is integrated over every frame before sub-sampling.
    np.testing.assert_allclose(seq.world_joints, full[key].world_joints[::3],
                               atol=1e-4)
    assert seq.fps == pytest.approx(25.0 / 3)


def test_align_stands_the_sequence_upright_on_the_floor():
  # A walker on a floor tilted by a known rotation: ankles alternate on the
  # floor while the pelvis moves over a 2 m square; the trunk leans a little
  # (so the trunk alone would give a wrong up).
  rng = np.random.default_rng(4)
  frames = 200
  joints = np.zeros((frames, 17, 3))
  centre = np.stack([np.cos(np.linspace(0, 4, frames)),
                     np.sin(np.linspace(0, 6, frames)), np.zeros(frames)], 1)
  joints[:] = rng.normal(scale=60, size=(1, 17, 3)) + [0, 0, 900]
  joints += 1000 * centre[:, None]
  lift = np.where(np.arange(frames) % 20 < 10, 0.0, 120.0)
  joints[:, 3] = 1000 * centre + np.stack([0 * lift, -100 + 0 * lift, lift], 1)
  joints[:, 6] = 1000 * centre + np.stack([0 * lift, 100 + 0 * lift, 120 - lift], 1)
  joints[:, 0] = 1000 * centre + [0, 0, 900]
  joints[:, 8] = 1000 * centre + [80, 0, 1400]  # leaning forward ~9 degrees
  tilt = Rotation.from_rotvec([0.25, -0.15, 0.6]).as_matrix()
  seen = joints @ tilt.T + [300, -200, -700]
  np.testing.assert_allclose(h36m_motion.estimate_up(seen), tilt @ [0, 0, 1],
                             atol=1e-6)
  aligned = h36m_motion.align_to_floor(seen).astype(np.float64)
  lowest = np.minimum(aligned[:, 3, 2], aligned[:, 6, 2])
  np.testing.assert_allclose(lowest, 0.0, atol=1e-2)
  np.testing.assert_allclose(aligned[:, 0, 2], 900.0, atol=1e-2)
  pelvis = aligned[:, 0, :2]
  np.testing.assert_allclose(pelvis.min(0) + pelvis.max(0), 0.0, atol=1e-2)
  # A rigid motion: all pairwise distances are unchanged.
  d = lambda j: np.linalg.norm(j[:, :, None] - j[:, None], axis=-1)
  np.testing.assert_allclose(d(aligned), d(joints), atol=1e-2)
  # Standing still on one foot, legs along the trunk: no horizontal cue, so
  # the mean trunk (and shin) direction is up.
  still = np.repeat(joints[:1], 5, axis=0)
  trunk_dir = still[0, 8] - still[0, 0]
  for hip, knee, ankle in ((1, 2, 3), (4, 5, 6)):
    still[:, knee] = still[:, ankle] + 0.5 * trunk_dir
    still[:, hip] = still[:, ankle] + trunk_dir
  still = still @ tilt.T
  trunk = (joints[0, 8] - joints[0, 0]) / np.linalg.norm(joints[0, 8] - joints[0, 0])
  np.testing.assert_allclose(h36m_motion.estimate_up(still), tilt @ trunk,
                             atol=1e-6)


def test_floor_window_removes_slow_drift_and_keeps_short_moves():
  frames = 120
  joints = np.zeros((frames, 17, 3))
  joints[:] = np.random.default_rng(6).normal(scale=50, size=(17, 3)) + [0, 0, 900]
  joints[:, 3] = [0, -100, 0]
  joints[:, 6] = [0, 100, 0]
  joints[:, 0] = [0, 0, 900]
  joints[:, 8] = [0, 0, 1400]
  joints[:, [1, 2, 4, 5]] = [[0, -100, 900], [0, -100, 450], [0, 100, 900],
                             [0, 100, 450]]  # legs straight
  joints[50:58, 0, 2] -= 300  # a short crouch; the feet stay down
  drift = np.linspace(0, 600, frames)  # the root drifting up 0.6 m
  seen = joints + np.stack([0 * drift, 0 * drift, drift], 1)[:, None]
  aligned = h36m_motion.align_to_floor(seen, floor_window=25).astype(np.float64)
  np.testing.assert_allclose(aligned[:, [3, 6], 2], 0.0, atol=1e-3)
  np.testing.assert_allclose(aligned[:, 0, 2], joints[:, 0, 2], atol=1e-3)
  # One constant floor leaves the drift in.
  const = h36m_motion.align_to_floor(seen)
  assert np.ptp(const[:, 3, 2]) == pytest.approx(600.0, abs=1e-2)


def test_align_recovers_the_floor_of_a_seated_person():
  # Seated: trunk leaning back 30 degrees, thighs forward, shins vertical,
  # feet planted apart with small sway; the whole sequence tilted at random.
  rng = np.random.default_rng(11)
  frames = 150
  t = np.arange(frames)[:, None]
  joints = np.zeros((frames, 17, 3))
  joints[:] = rng.normal(scale=30, size=(17, 3)) + [0, 0, 700]
  joints[:, 0] = [0, 0, 450]
  joints[:, 1], joints[:, 4] = [0, -100, 450], [0, 100, 450]
  joints[:, 2], joints[:, 5] = [420, -120, 450], [420, 120, 450]
  joints[:, 3], joints[:, 6] = [420, -130, 0], [420, 130, 0]
  lean = np.radians(30)
  joints[:, 8] = [-500 * np.sin(lean), 0, 450 + 500 * np.cos(lean)]
  joints[:, 10] = [-700 * np.sin(lean), 0, 450 + 700 * np.cos(lean)]
  joints[:, [0, 7, 8, 9, 10]] += 15 * np.sin(0.1 * t)[:, None] * [1, 0.5, 0]
  joints += rng.normal(scale=2.0, size=joints.shape)
  tilt = Rotation.from_rotvec(rng.normal(scale=0.5, size=3)).as_matrix()
  seen = joints @ tilt.T + [100, 200, -300]
  up = h36m_motion.estimate_up(seen)
  error = np.degrees(np.arccos(np.clip(up @ (tilt @ [0, 0, 1]), -1, 1)))
  assert error < 3.0
  aligned = h36m_motion.align_to_floor(seen).astype(np.float64)
  np.testing.assert_allclose(aligned[:, [3, 6], 2], 0.0, atol=15.0)
  assert np.median(aligned[:, 0, 2]) == pytest.approx(450.0, abs=15.0)


def test_loaded_sequences_are_aligned_by_default(dataset):
  seqs = h36m_motion.load_expmap_motion(dataset["text"])
  skeleton = kinematics.load_skeleton32(dataset["root"] / "h36m_skeleton32.json")
  for key, seq in seqs.items():
    raw = h36m_motion.world_joints_from_rows(dataset["rows"][key], skeleton)
    want = h36m_motion.align_to_floor(raw, floor_window=100)  # 2 s at 50 fps
    np.testing.assert_allclose(seq.world_joints, want, atol=1e-3)


# ---------------------------------------------------------------------------
# Errors


def test_missing_inputs(dataset, tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    h36m_motion.load_expmap_motion(tmp_path / "nowhere.npz")
  lone = tmp_path / "lone"
  lone.mkdir()
  np.savez(lone / "m.npz", **{"S1/walking/1": random_rows(5, 0)})
  with pytest.raises(FileNotFoundError, match="skeleton_path="):
    h36m_motion.load_expmap_motion(lone / "m.npz")
  seqs = h36m_motion.load_expmap_motion(
      lone / "m.npz", skeleton_path=dataset["root"] / "h36m_skeleton32.json")
  assert list(seqs) == ["S1/walking/1"]
  with pytest.raises(ValueError, match="holds no Human3.6M motion text files"):
    h36m_motion.load_expmap_motion(lone, skeleton_path=dataset["root"] /
                                   "h36m_skeleton32.json")


def test_unreadable_npz(dataset):
  bad = dataset["root"] / "broken.npz"
  bad.write_bytes(b"this is not a zip archive")
  with pytest.raises(ValueError, match="broken.npz is not a readable .npz"):
    h36m_motion.load_expmap_motion(bad)


def test_wrong_column_count(dataset):
  bad = dataset["root"] / "short.npz"
  np.savez(bad, **{"S1/walking/1": np.zeros((5, 98), np.float32)})
  with pytest.raises(ValueError, match=r"short.npz \[S1/walking/1\]: expected "
                     r"rows of 99 numbers.*\(5, 98\)"):
    h36m_motion.load_expmap_motion(bad)
  txt = dataset["text"] / "S1" / "walking_1.txt"
  np.savetxt(txt, np.zeros((4, 97)), delimiter=",")
  with pytest.raises(ValueError, match=r"walking_1.txt: expected rows of 99"):
    h36m_motion.load_expmap_motion(dataset["text"])
  txt.write_text("1,2,3\n1,2\n")
  with pytest.raises(ValueError, match=r"walking_1.txt: not comma-separated"):
    h36m_motion.load_expmap_motion(dataset["text"])


def test_nan_names_the_sequence_and_frame(dataset):
  rows = dict(dataset["rows"])
  rows["S5/eating/1"] = rows["S5/eating/1"].copy()
  rows["S5/eating/1"][17, 40] = np.nan
  bad = dataset["root"] / "nan.npz"
  np.savez(bad, **rows)
  with pytest.raises(ValueError, match=r"\[S5/eating/1\]: 1 frame\(s\) contain "
                     r"NaN.*frame 17, columns \[40\]"):
    h36m_motion.load_expmap_motion(bad)


def test_unknown_subject_and_bad_options(dataset):
  with pytest.raises(ValueError, match=r"unknown subject\(s\) \['S9'\].*"
                     r"\['S1', 'S5'\]"):
    h36m_motion.load_expmap_motion(dataset["npz"], subjects=["S1", "S9"])
  with pytest.raises(ValueError, match="step must be"):
    h36m_motion.load_expmap_motion(dataset["npz"], step=0)
  with pytest.raises(ValueError, match="root_substeps must be"):
    h36m_motion.load_expmap_motion(dataset["npz"], root_substeps=0)
  with pytest.raises(ValueError, match="floor_window_s must be positive"):
    h36m_motion.load_expmap_motion(dataset["npz"], floor_window_s=0.0)
  bad = dataset["root"] / "keys.npz"
  np.savez(bad, **{"walking_1": random_rows(5, 0)})
  with pytest.raises(ValueError, match="key 'walking_1' is not of the form"):
    h36m_motion.load_expmap_motion(bad)
