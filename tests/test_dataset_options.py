"""Tests for data_pipelines.dataset_options: the options declared once."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from data_pipelines import dataset_options as do
from data_pipelines.motion import procedural as pm
from data_pipelines.render import synthesize as syn
from data_pipelines.tfds import builder as tb


def test_the_tfds_config_is_the_options_with_the_same_defaults():
  config = tb.make_config("procedural")
  assert isinstance(config, do.DatasetOptions)
  defaults = do.DatasetOptions()
  for name in do.OPTION_NAMES:
    assert getattr(config, name) == getattr(defaults, name), name
  # Every config field but the TFDS ones and the source is an option.
  own = {f.name for f in dataclasses.fields(tb.StructnetH36mConfig)} - set(
      do.OPTION_NAMES)
  assert own - {f.name for f in dataclasses.fields(
      tb.tfds.core.BuilderConfig)} == {"source", "motion_path",
                                       "source_digest"}


def test_make_canonicalises_and_refuses_unknown_fields():
  options = do.make(cameras=[np.int64(2), 1], train_subjects="S1",
                    actions=["walking"], fps=np.float32(25.0))
  assert options.cameras == (2, 1) and options.train_subjects == ("S1",)
  assert options.actions == ("walking",) and type(options.fps) is float
  assert do.make(options, frame_step=3).cameras == (2, 1)
  with pytest.raises(ValueError, match=r"\['frame_stepp'\].*frame_step"):
    do.make(frame_stepp=3)


def test_check_options_normalises_and_names_the_bad_field():
  checked = do.check_options(do.make(fps=25, margin=0, pixel_noise=np.True_))
  assert type(checked.fps) is float and type(checked.margin) is float
  assert checked.pixel_noise is True
  for fields, match in (
      (dict(frame_step=0), "where: frame_step must be an integer >= 1"),
      (dict(crop_size=4), "where: crop_size must be an integer >= 8"),
      (dict(fps=0.0), "where: fps must be a finite positive number"),
      (dict(pixel_noise=1), "where: pixel_noise must be True or False"),
      (dict(placement="middle"), "where: placement must be one of"),
      (dict(rig_subject="S4"), "where: rig_subject 'S4' has no cameras"),
      (dict(cameras=(1, 5)), "cameras must be distinct camera numbers"),
      (dict(actions=()), "where: actions must be None"),
      (dict(test_subjects=None), "where: test_subjects must be a non-empty"),
      (dict(test_subjects=("S1",)), r"where: subject\(s\) \['S1'\] are in "
       "both")):
    with pytest.raises(ValueError, match=match):
      do.check_options(do.make(**fields), "where: ")
  # Positions: open splits and any subject names of a file.
  do.check_options(do.make(train_subjects=(), test_subjects=None),
                   open_splits=True, any_subject_names=True)
  with pytest.raises(ValueError, match="is not a subject name"):
    do.check_options(do.make(train_subjects=("P 3",)), any_subject_names=True)
  # Only the filming fields: the subjects are the source's business.
  do.check_options(do.make(test_subjects=None), only=do.FILMING)


def test_render_sequence_examples_takes_the_options_object():
  walk = pm.generate_motion(["S1"], ["walking"], sequences_per_action=1,
                            frames_per_sequence=8, seed=0)[0]
  options = do.DatasetOptions(cameras=(3,), crop_size=32, supersample=1,
                              appearance_seed=2)
  got = list(syn.render_sequence_examples(walk, options, frames=[5],
                                          batch_size=4))
  want = list(syn.render_sequence_examples(
      walk, frames=[5], batch_size=4, cameras=(3,), crop_size=32,
      supersample=1, appearance_seed=2))
  assert [(e["camera"], e["frame"]) for e in got] == [(3, 5)]
  for a, b in zip(got, want):
    for key in ("image", "pose", "pose_2d"):
      np.testing.assert_array_equal(a[key], b[key])
