"""Tests for data_pipelines.motion.core: one motion type, one ``load``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_pipelines import dataset_options
from data_pipelines.motion import core as motion
from data_pipelines.motion import h36m as h36m_motion
from data_pipelines.motion import h36m_release
from data_pipelines.motion import procedural as pm
from test_h36m_motion import random_rows  # pylint: disable=g-bad-import-order
from test_h36m_motion import synthetic_skeleton32
from test_position_motion import walk


def test_motion_defaults_are_retargeted_lifted_and_filmed_by_the_subject():
  joints = np.zeros((3, 17, 3))
  seq = motion.Motion(subject="S9", action="walking", subaction=2, fps=25.0,
                      world_joints=joints)
  assert seq.key == "S9/walking/2" and seq.num_frames == 3
  np.testing.assert_array_equal(seq.frame_indices, [0, 1, 2])
  assert seq.retarget and seq.lift_mm == motion.ANKLE_HEIGHT_MM
  assert seq.rig_subject == "S9"
  # The exp-map loader's former name is the same type.
  assert h36m_motion.MotionSequence is motion.Motion
  # The release's videos share the name part.
  video = h36m_release.ReleaseSequence("S9", "walking", 1, 2, "55011271",
                                       "a.cdf", "a.mp4", None)
  assert isinstance(video, motion.Take) and video.key == "S9/walking/1"


def test_procedural_load_keeps_every_step_th_generated_frame():
  full = pm.generate_motion(["S1"], ["walking"], 1, 10, seed=3)[0]
  options = dataset_options.DatasetOptions(
      actions=("walking",), sequences_per_action=1, frames_per_sequence=10,
      seed=3)
  (seq,) = motion.load("procedural", options, subjects=["S1"], step=4)
  assert isinstance(seq, pm.ProceduralSequence)
  assert not seq.retarget and seq.lift_mm == motion.ANKLE_HEIGHT_MM
  np.testing.assert_array_equal(seq.frame_indices, [0, 4, 8])
  np.testing.assert_array_equal(seq.world_joints, full.world_joints[::4])
  np.testing.assert_array_equal(seq.joint_angles, full.joint_angles[::4])
  assert seq.fps == full.fps / 4


def test_files_load_as_motion_of_their_kind(tmp_path):
  positions = tmp_path / "positions.npz"
  np.savez(positions, **{"P3/jumping/1": walk(9),
                       "S9/walking/1": walk(9, seed=1)})
  assert motion.kind_of(positions) == "positions"
  seqs = motion.load(positions, step=2, subjects=["P3"])
  assert [s.key for s in seqs] == ["P3/jumping/1"]
  assert not seqs[0].retarget and seqs[0].lift_mm == 0.0
  assert seqs[0].rig_subject == "S9"  # not a Human3.6M subject: S9's rig
  np.testing.assert_array_equal(seqs[0].frame_indices, [0, 2, 4, 6, 8])

  (tmp_path / "h36m_skeleton32.json").write_text(json.dumps(
      synthetic_skeleton32()))
  expmap = tmp_path / "expmap.npz"
  np.savez(expmap, **{"S1/walking/1": random_rows(12, seed=0),
                      "S1/eating/1": random_rows(12, seed=1)})
  assert motion.kind_of(expmap) == "h36m_motion"
  assert motion.kind_of("procedural") == "procedural"
  (seq,) = motion.load(expmap, dataset_options.DatasetOptions(
      actions=("Walking",)), step=5)
  assert type(seq) is motion.Motion and seq.key == "S1/walking/1"
  assert seq.retarget and seq.lift_mm == motion.ANKLE_HEIGHT_MM
  np.testing.assert_array_equal(seq.frame_indices, [0, 5, 10])
  with pytest.raises(ValueError, match="kind must be one of"):
    motion.load(expmap, kind="bvh")
