"""Tests for data_pipelines.render.synthesize (motion -> rendered examples).

References are independent numpy computations: the camera frame from the
calibration JSON's quaternion and centre, a pinhole projection into the crop
box, bone lengths measured on the output poses. All renders share one compiled
shape (batches of 4 frames, 32 x 32 crops, one ray per pixel), the same as
tests/test_tfds_builder.py, so the file runs in well under a minute on 2 CPU
cores.
"""

from __future__ import annotations

import importlib.resources
import json

import numpy as np
import pytest

from data_pipelines.motion import h36m as h36m_motion
from data_pipelines.motion import procedural as pm
from data_pipelines.render import synthesize as syn
from structnet_jax import poses as poses_lib

# The one compiled render shape of the test suite's synthesis tests.
FAST = dict(crop_size=32, batch_size=4, supersample=1)
TRAIN = ("S1", "S5", "S6", "S7", "S8")
TEST = ("S9", "S11")


def _calibration():
  text = (importlib.resources.files("data_pipelines.rig")
          / "h36m_cameras.json").read_text(encoding="utf-8")
  return json.loads(text)


def _quat_to_rotmat(q):
  w, x, y, z = np.asarray(q, np.float64) / np.linalg.norm(q)
  return np.array([
      [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
      [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
      [2 * (x * z - w * y), 2 * (y * z + w * x),
       w * w - x * x - y * y + z * z]])


def _reference_camera_joints(world, subject, camera):
  """``x_cam = Q^T (x_world - C)`` straight from the JSON (camera 1..4)."""
  calib = _calibration()
  ext = calib["extrinsics"][subject][camera - 1]
  rot = _quat_to_rotmat(ext["orientation_wxyz"])  # camera -> world
  return (np.asarray(world, np.float64) - np.asarray(ext["translation_mm"])
          ) @ rot, calib["intrinsics"][camera - 1]


@pytest.fixture(scope="module")
def walk():
  """S1 walking, 8 frames at 50 fps, on S1's own procedural body."""
  return pm.generate_motion(["S1"], ["walking"], sequences_per_action=1,
                            frames_per_sequence=8, seed=0)[0]


@pytest.fixture(scope="module")
def walk_examples(walk):
  return list(syn.render_sequence_examples(walk, cameras=(1, 3), frame_step=4,
                                           **FAST))


def test_examples_have_the_documented_fields_shapes_and_order(
    walk, walk_examples):
  calib = _calibration()
  assert len(walk_examples) == 4  # 2 cameras x frames 0 and 4
  assert [(e["camera"], e["frame"]) for e in walk_examples] == [
      (1, 0), (1, 4), (3, 0), (3, 4)]
  for ex in walk_examples:
    assert set(ex) == set(syn.EXAMPLE_KEYS)
    assert ex["image"].dtype == np.uint8 and ex["image"].shape == (32, 32, 3)
    assert ex["pose"].dtype == np.float32 and ex["pose"].shape == (17, 3)
    assert ex["pose_2d"].dtype == np.float32 and ex["pose_2d"].shape == (17, 2)
    assert (ex["subject"], ex["action"], ex["subaction"]) == (
        "S1", "walking", 1)
    assert all(isinstance(ex[k], int) for k in ("subaction", "camera", "frame"))
    assert ex["camera_id"] == str(calib["intrinsics"][ex["camera"] - 1]["id"])
    assert ex["image"].std() > 5  # not a blank image
  keys = {syn.example_key(e) for e in walk_examples}
  assert len(keys) == len(walk_examples)
  # Deterministic: rendering again gives the same pixels (noise included).
  again = list(syn.render_sequence_examples(walk, cameras=(1, 3), frame_step=4,
                                            **FAST))
  for a, b in zip(walk_examples, again):
    np.testing.assert_array_equal(a["image"], b["image"])


def test_pose_is_root_relative_camera_frame_from_the_calibration(
    walk, walk_examples):
  for ex in walk_examples:
    world = walk.world_joints[ex["frame"]]
    cam, _ = _reference_camera_joints(world, "S1", ex["camera"])
    np.testing.assert_allclose(ex["pose"], cam - cam[0], atol=0.02)
    np.testing.assert_array_equal(ex["pose"][0], 0.0)


def test_pose_2d_is_the_pinhole_projection_into_the_crop(walk, walk_examples):
  for ex in walk_examples:
    world = walk.world_joints[ex["frame"]] + [0, 0, syn.ANKLE_HEIGHT_MM]
    cam, intr = _reference_camera_joints(world, "S1", ex["camera"])
    uv = (np.asarray(intr["focal_length"]) * cam[:, :2] / cam[:, 2:]
          + np.asarray(intr["center"]))
    lo, hi = uv.min(0), uv.max(0)
    size = (hi - lo).max() * (1 + 2 * 0.2)
    corner = (lo + hi) / 2 - size / 2
    np.testing.assert_allclose(ex["pose_2d"], (uv - corner) * 32 / size,
                               atol=0.01)
    # The joints fill the crop inside margins of 0.2 / 1.4 of its side.
    edge = 32 * 0.2 / 1.4
    assert ex["pose_2d"].min() > edge - 0.01
    assert ex["pose_2d"].max() < 32 - edge + 0.01
    assert (ex["pose_2d"].max(0) - ex["pose_2d"].min(0)).max() == (
        pytest.approx(32 - 2 * edge, abs=0.01))


def test_retarget_sets_bone_lengths_and_keeps_directions_root_and_floor():
  other = pm.generate_motion(["P3"], ["sitting"], sequences_per_action=1,
                             frames_per_sequence=8, seed=1)[0].world_joints
  target = syn.subject_bone_lengths("S9")
  out = syn.retarget_joints(other, target)
  np.testing.assert_allclose(poses_lib.bone_lengths(out),
                             np.broadcast_to(target, (8, 16)), rtol=1e-9)
  def dirs(j):
    v = np.stack([j[:, c] - j[:, p] for p, c in poses_lib.BONES], 1)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)
  np.testing.assert_allclose(dirs(out), dirs(other), atol=1e-9)
  np.testing.assert_allclose(out[:, 0, :2], other[:, 0, :2])
  np.testing.assert_allclose(out[..., 2].min(1), other[..., 2].min(1),
                             atol=1e-9)
  free = syn.retarget_joints(other, target, keep_floor_contact=False)
  np.testing.assert_allclose(free[:, 0], other[:, 0])


def test_subjects_have_their_own_bodies_and_test_subjects_differ():
  lengths = {s: syn.subject_bone_lengths(s) for s in TRAIN + TEST}
  for s in TEST:
    for t in TRAIN:
      assert np.abs(lengths[s] - lengths[t]).max() > 20.0, (s, t)
  np.testing.assert_allclose(syn.subject_bone_lengths("S9"), lengths["S9"])


def test_expmap_motion_is_retargeted_to_the_subject_when_rendered(walk):
  # One shared skeleton (here: S1's procedural body) for a test subject.
  seq = h36m_motion.MotionSequence(
      subject="S9", action="walking", subaction=2, fps=25.0,
      frame_indices=np.arange(8) * 2 + 10,
      world_joints=walk.world_joints.astype(np.float32))
  examples = list(syn.render_sequence_examples(seq, cameras=(2,), frame_step=4,
                                               **FAST))
  assert [e["frame"] for e in examples] == [10, 18]
  for ex in examples:
    np.testing.assert_allclose(poses_lib.bone_lengths(ex["pose"]),
                               syn.subject_bone_lengths("S9"), atol=0.05)
    assert ex["subject"] == "S9" and ex["camera"] == 2
  # Procedural motion is on its subject's body already: kept as it is.
  np.testing.assert_allclose(
      syn.subject_world_joints(walk), walk.world_joints)
  np.testing.assert_allclose(poses_lib.bone_lengths(walk.world_joints[0]),
                             syn.subject_bone_lengths("S1"), atol=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(cameras=(0,)), "cameras must be distinct camera numbers"),
    (dict(cameras=(1, 1)), "cameras must be distinct camera numbers"),
    (dict(cameras=("1",)), "cameras must be distinct camera numbers"),
    (dict(frame_step=0), "frame_step must be an integer >= 1"),
    (dict(crop_size=2.5), "crop_size must be an integer"),
    (dict(margin=-0.1), "margin must be a"),
    (dict(frames=[0, 99]), "frames must index the sequence's 8 frames"),
])
def test_bad_options_are_refused_at_the_call(walk, kwargs, match):
  with pytest.raises(ValueError, match=match):
    syn.render_sequence_examples(walk, **kwargs)


def test_bad_sequences_are_refused(walk):
  unknown = h36m_motion.MotionSequence(
      subject="P3", action="walking", subaction=1, fps=25.0,
      frame_indices=np.arange(8), world_joints=walk.world_joints)
  with pytest.raises(ValueError, match=r"unknown subject 'P3'.*S11"):
    syn.render_sequence_examples(unknown)
  flat = h36m_motion.MotionSequence(
      subject="S1", action="walking", subaction=1, fps=25.0,
      frame_indices=np.arange(8), world_joints=np.zeros((8, 17, 3)))
  with pytest.raises(ValueError, match="zero-length bone"):
    syn.render_sequence_examples(flat)
  with pytest.raises(ValueError, match="shape"):
    syn.retarget_joints(walk.world_joints, np.ones(15))
