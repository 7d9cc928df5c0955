"""Tests for data_pipelines.motion.positions: the joint-positions motion source.

Sequences are generated here: a standing person (Human3.6M joint order, mm,
z up, ankles 80 mm above the floor) walking a short line, and exponential-map
rows on a made-up skeleton (``test_h36m_motion``) for the round trip.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_pipelines.motion import h36m as h36m_motion
from data_pipelines.motion import positions as position_motion
from data_pipelines.render import synthesize
from structnet_jax import poses as poses_lib
from test_h36m_motion import random_rows, synthetic_skeleton32

# A standing person facing +x (pelvis at 1114 mm), Human3.6M joint order.
STANDING = np.array([
    [0, 0, 1114], [0, -143, 1103], [0, -143, 597], [0, -143, 80],
    [0, 143, 1103], [0, 143, 597], [0, 143, 80], [0, 0, 1352],
    [0, 0, 1611], [42, 0, 1731], [30, 0, 1853], [-8, 155, 1593],
    [-8, 155, 1273], [-8, 155, 988], [-8, -155, 1593], [-8, -155, 1273],
    [-8, -155, 988]], np.float64)


def walk(frames: int = 12, start=(0.0, 0.0), speed_mm: float = 40.0,
         seed: int = 0) -> np.ndarray:
  """``[frames, 17, 3]`` mm: the standing pose moving along +x, jittered."""
  rng = np.random.default_rng(seed)
  out = np.repeat(STANDING[None], frames, axis=0)
  out[..., 0] += start[0] + speed_mm * np.arange(frames)[:, None]
  out[..., 1] += start[1]
  return out + rng.normal(scale=5.0, size=out.shape)


def test_sequences_load_with_keys_rate_and_sub_sampling(tmp_path):
  path = tmp_path / "motion.npz"
  np.savez(path, **{"P03/jumping jacks/1": walk(12),
                    "S9/walking/2": walk(9, seed=1)}, fps=np.float64(100.0))
  seqs = position_motion.load_position_motion(path, step=4)
  assert list(seqs) == ["P03/jumping jacks/1", "S9/walking/2"]
  p03, s9 = seqs["P03/jumping jacks/1"], seqs["S9/walking/2"]
  assert (p03.subject, p03.action, p03.subaction) == ("P03", "jumping jacks", 1)
  assert p03.fps == 25.0 and p03.frame_indices.tolist() == [0, 4, 8]
  assert p03.world_joints.shape == (3, 17, 3)
  # Human3.6M subjects are filmed by their own rig, others by the default's.
  assert p03.rig_subject == position_motion.DEFAULT_RIG_SUBJECT
  assert s9.rig_subject == "S9"
  # Standing on the floor near the origin, seen by all cameras: kept as is.
  np.testing.assert_array_equal(s9.world_joints, walk(9, seed=1)[::4])
  assert position_motion.load_position_motion(
      path, fps=50.0)["S9/walking/2"].fps == 50.0
  only = position_motion.load_position_motion(path, subjects=["S9"])
  assert list(only) == ["S9/walking/2"]


def test_placement_moves_a_sequence_into_the_volume_keeping_its_motion(
    tmp_path):
  # Captured 20 m away, 1 m below our floor.
  far = walk(12, start=(20000.0, -5000.0)) - np.array([0.0, 0.0, 1000.0])
  np.savez(tmp_path / "far.npz", **{"P1/walk/1": far})
  placed = position_motion.load_position_motion(
      tmp_path / "far.npz")["P1/walk/1"].world_joints
  rig = position_motion.DEFAULT_RIG_SUBJECT
  assert position_motion.frames_seen(placed, rig).all()
  # A pure translation: root-relative poses and steps are unchanged.
  np.testing.assert_allclose(placed - placed[:, :1], far - far[:, :1],
                             atol=1e-9)
  np.testing.assert_allclose(np.diff(placed[:, 0], axis=0),
                             np.diff(far[:, 0], axis=0), atol=1e-9)
  pelvis = placed[:, 0, :2]
  np.testing.assert_allclose(0.5 * (pelvis.min(0) + pelvis.max(0)),
                             position_motion.rig_centre(rig), atol=1e-6)
  lowest = np.median(placed[..., 2].min(axis=1))
  assert lowest == pytest.approx(synthesize.ANKLE_HEIGHT_MM)
  # The rig's centre: the cameras' optical axes pass near it (numpy check).
  for camera in synthesize.CAMERAS:
    cam = synthesize.cameras_lib.camera_for(rig, camera - 1)
    point = np.append(position_motion.rig_centre(rig), 900.0)
    local = synthesize.camera_frame_joints(point, cam)
    assert np.hypot(local[0], local[1]) < 0.35 * local[2]


def test_random_yaw_turns_each_sequence_about_the_vertical(tmp_path):
  seq = walk(10)
  np.savez(tmp_path / "m.npz", **{"S9/walking/1": seq, "S9/walking/2": seq})
  plain = position_motion.load_position_motion(tmp_path / "m.npz")
  turned = position_motion.load_position_motion(tmp_path / "m.npz",
                                                random_yaw=True, seed=3)
  again = position_motion.load_position_motion(tmp_path / "m.npz",
                                               random_yaw=True, seed=3)
  headings = []
  for key in plain:
    a, b = plain[key].world_joints, turned[key].world_joints
    np.testing.assert_array_equal(b, again[key].world_joints)
    # Same bone lengths and heights, a different heading.
    np.testing.assert_allclose(poses_lib.bone_lengths(a),
                               poses_lib.bone_lengths(b), atol=1e-6)
    np.testing.assert_allclose(a[..., 2] - a[:, :1, 2], b[..., 2] - b[:, :1, 2],
                               atol=1e-6)
    hips = b[0, 4, :2] - b[0, 1, :2]  # right hip -> left hip
    headings.append(np.arctan2(hips[1], hips[0]))
    assert position_motion.frames_seen(b, "S9").all()
  # Seeded per sequence: two copies of one motion get different yaws.
  assert abs(headings[0] - headings[1]) > 1e-3


def test_a_walk_longer_than_the_room_needs_per_frame_placement(tmp_path):
  long_walk = walk(40, speed_mm=250.0)  # 10 m
  np.savez(tmp_path / "long.npz", **{"P1/walk/1": long_walk})
  for placement in ("centre", "as_given"):
    with pytest.raises(ValueError, match=r"P1/walk/1\]: \d+ of 40 frames.*"
                       r"per_frame"):
      position_motion.load_position_motion(tmp_path / "long.npz",
                                           placement=placement)
  for placement in ("per_frame", "auto"):  # auto falls back to per_frame
    seq = position_motion.load_position_motion(
        tmp_path / "long.npz", placement=placement)["P1/walk/1"]
    pelvis = seq.world_joints[:, 0, :2]
    np.testing.assert_allclose(
        pelvis, np.broadcast_to(position_motion.rig_centre("S9"),
                                pelvis.shape), atol=1e-6)
    np.testing.assert_allclose(seq.world_joints - seq.world_joints[:, :1],
                               long_walk - long_walk[:, :1], atol=1e-9)


def test_round_trip_from_exponential_maps_gives_the_same_examples(tmp_path):
  """Exp-map motion -> positions file -> this source: same images, labels."""
  (tmp_path / "h36m_skeleton32.json").write_text(
      json.dumps(synthetic_skeleton32()))
  np.savez(tmp_path / "expmap.npz", **{"S9/walking/1": random_rows(10, 0)})
  expmap = h36m_motion.load_expmap_motion(tmp_path / "expmap.npz")
  position_motion.save_position_motion(
      tmp_path / "positions.npz",
      position_motion.positions_from_sequences(expmap.values()), fps=25.0)
  positions = position_motion.load_position_motion(tmp_path / "positions.npz",
                                                   step=3)
  seq = positions["S9/walking/1"]
  assert seq.fps == pytest.approx(expmap["S9/walking/1"].fps / 3)
  options = dict(crop_size=24, supersample=1, batch_size=4)
  want = list(synthesize.render_sequence_examples(
      expmap["S9/walking/1"], frame_step=3, **options))
  got = list(synthesize.render_sequence_examples(seq, **options))
  assert len(got) == len(want) == 4 * 4  # 4 cameras x frames 0, 3, 6, 9
  for a, b in zip(got, want):
    assert set(a) == set(b) == set(synthesize.EXAMPLE_KEYS)
    for name in synthesize.EXAMPLE_KEYS:
      np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# ---------------------------------------------------------------------------
# Bad input: one clear error each, naming the sequence and the fix.


def _write(tmp_path, **arrays):
  path = tmp_path / "bad.npz"
  np.savez(path, **arrays)
  return path


@pytest.mark.parametrize("arrays, message", [
    ({"S1/walking/1": walk()[:, :16]}, r"S1/walking/1.*16 joints: map them"),
    ({"S1/walking/1": walk().reshape(12, 51)},
     r"S1/walking/1.*\(12, 51\).*reshape"),
    ({"S1/walking/1": walk()[:, :, :2]}, r"S1/walking/1.*\[T, 17, 3\]"),
    ({"S1/walking/1": walk()[:0]}, r"S1/walking/1.*no frames"),
    ({"S1/walking/1": np.where(np.arange(12)[:, None, None] == 7, np.nan,
                               walk())},
     r"S1/walking/1.*NaN or infinite.*frame 7.*interpolate"),
    ({"S1/walking/1": np.where(np.arange(17)[None, :, None] == 3, np.inf,
                               walk())},
     r"S1/walking/1.*joint 3 right_ankle"),
    ({"S1/walking/1": walk() / 1000.0}, r"S1/walking/1.*metres.*1000"),
    ({"S1/walking/1": walk() / 10.0}, r"S1/walking/1.*centimetres.*10"),
    ({"S1/walking/1": np.where(
        (np.arange(12)[:, None, None] == 5) & (np.arange(17)[None, :, None]
                                               == 13), 9000.0, walk())},
     r"S1/walking/1.*frame 5.*left_elbow -> left_wrist.*misplaced"),
    ({"S1/walking/1": walk().astype(np.str_)}, r"S1/walking/1.*dtype"),
    ({}, r"holds no sequences"),
    ({"fps": np.float64(25.0)}, r"holds no sequences"),
    ({"S1_walking_1": walk()}, r"'S1_walking_1' does not name a sequence"),
    ({"S1/walking/one": walk()}, r"'S1/walking/one' does not name"),
    ({"/walking/1": walk()}, r"'/walking/1' does not name"),
    ({"S1/walking/1/c2": walk()}, r"'S1/walking/1/c2' does not name"),
    ({"S1/walking/1": walk(), "fps": np.float64(-5.0)},
     r"'fps' entry must be one positive number"),
])
def test_bad_input_is_refused_with_its_message(tmp_path, arrays, message):
  path = _write(tmp_path, **arrays)
  with pytest.raises(ValueError, match=message):
    position_motion.load_position_motion(path)


def test_bad_files_and_options_are_refused(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    position_motion.load_position_motion(tmp_path / "missing.npz")
  (tmp_path / "text.npz").write_text("not an archive")
  with pytest.raises(ValueError, match="not a readable .npz"):
    position_motion.load_position_motion(tmp_path / "text.npz")
  np.save(tmp_path / "single.npy", walk())
  with pytest.raises(ValueError, match="single array"):
    position_motion.load_position_motion(tmp_path / "single.npy")
  good = _write(tmp_path, **{"S1/walking/1": walk()})
  for kwargs, message in (({"step": 0}, "step"),
                          ({"placement": "middle"}, "placement"),
                          ({"rig_subject": "S4"}, "unknown subject 'S4'"),
                          ({"subjects": ["S2"]}, r"unknown subject\(s\)"),
                          ({"actions": ["eating"]}, r"unknown action\(s\)")):
    with pytest.raises(ValueError, match=message):
      position_motion.load_position_motion(good, **kwargs)
  with pytest.raises(ValueError, match="metres"):
    position_motion.save_position_motion(tmp_path / "out.npz",
                                         {"S1/walking/1": walk() / 1000})
  assert not (tmp_path / "out.npz").exists()
