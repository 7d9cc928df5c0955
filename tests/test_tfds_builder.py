"""Tests for data_pipelines.tfds.builder (the ``structnet_h36m`` TFDS builder).

Datasets are tiny (2-3 subjects, one action, 2 frames, 1-2 cameras, 32 x 32
crops rendered with one ray per pixel in batches of 4: the compiled shape of
tests/test_synthesize.py) and built into pytest's tmp_path. The real-data
configs are driven through stand-ins of their readers (``h36m_motion``'s
loader, a fake ``h36m_release`` module), so no Human3.6M file is needed.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types

import numpy as np
import pytest

import tensorflow_datasets as tfds

import data_pipelines.motion  # pylint: disable=g-import-not-at-top
from data_pipelines.motion import h36m as h36m_motion
from data_pipelines.motion import procedural as pm
from data_pipelines.render import synthesize as syn
from data_pipelines.sources import core as sources
from data_pipelines.tfds import builder as tb
from data_pipelines.tfds import input_pipeline as ip
from structnet_jax import poses as poses_lib

BATCH = 4  # render batch: the one compiled shape, with crop 32 / supersample 1
SMALL = dict(train_subjects=("S1", "S5"), test_subjects=("S9",),
             actions=("walking",), sequences_per_action=1,
             frames_per_sequence=6, frame_step=3, cameras=(1, 2),
             crop_size=32, supersample=1)


def _read(builder, split):
  """All examples of a split as ``{key: example}`` (numpy, strings decoded)."""
  out = {}
  for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
    ex = {k: v.decode() if isinstance(v, bytes) else v for k, v in ex.items()}
    ex = {k: int(v) if k in ("subaction", "camera", "frame") else v
          for k, v in ex.items()}
    out[syn.example_key(ex)] = ex
  return out


def _tree(path):
  """``{relative path: (size, mtime_ns)}`` of every file under ``path``."""
  out = {}
  for root, _, files in os.walk(path):
    for f in files:
      p = os.path.join(root, f)
      st = os.stat(p)
      out[os.path.relpath(p, path)] = (st.st_size, st.st_mtime_ns)
  return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  builder = tb.build_dataset("procedural", data_dir, batch_size=BATCH, **SMALL)
  return builder, data_dir, _read(builder, "train"), _read(builder, "test")


def test_splits_hold_the_right_subjects_and_examples(built):
  builder, _, train, test = built
  assert builder.info.splits["train"].num_examples == len(train) == 8
  assert builder.info.splits["test"].num_examples == len(test) == 4
  assert {e["subject"] for e in train.values()} == {"S1", "S5"}
  assert {e["subject"] for e in test.values()} == {"S9"}
  for ex in list(train.values()) + list(test.values()):
    assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8
    assert ex["pose"].shape == (17, 3) and ex["pose"].dtype == np.float32
    assert ex["pose_2d"].shape == (17, 2) and ex["pose_2d"].dtype == np.float32
    assert ex["camera"] in (1, 2) and ex["frame"] in (0, 3)
    assert ex["action"] == "walking" and ex["subaction"] == 1
    np.testing.assert_array_equal(ex["pose"][0], 0.0)
  # The poses are the subjects' own bodies seen from the camera.
  for ex in test.values():
    np.testing.assert_allclose(poses_lib.bone_lengths(ex["pose"]),
                               syn.subject_bone_lengths("S9"), atol=0.05)


def test_examples_equal_the_synthesizer_output(built):
  _, _, train, _ = built
  seq = pm.generate_motion(["S5"], ["walking"], 1, 6, seed=0)[0]
  for ex in syn.render_sequence_examples(seq, cameras=(1, 2), frame_step=3,
                                         batch_size=BATCH, crop_size=32,
                                         supersample=1):
    got = train[syn.example_key(ex)]
    np.testing.assert_array_equal(got["image"], ex["image"])
    np.testing.assert_array_equal(got["pose"], ex["pose"])
    np.testing.assert_array_equal(got["pose_2d"], ex["pose_2d"])
    assert got["camera_id"] == ex["camera_id"]


def test_pose_space_and_rgb_stats_are_saved_with_the_dataset(built):
  builder, data_dir, train, _ = built
  files = os.listdir(builder.data_dir)
  assert (sources.POSE_SPACE_FILENAME in files
          and ip.RGB_STATS_FILENAME in files)
  space = tb.load_pose_space(builder)
  assert space.shape == (8, 17, 3) and space.dtype == np.float32
  # Every training pose, in order sequence, camera, frame.
  order = sorted(train, key=lambda k: (
      f"{train[k]['subject']}/walking/1", train[k]["camera"],
      train[k]["frame"]))
  np.testing.assert_array_equal(space, np.stack([train[k]["pose"]
                                                 for k in order]))
  # The same files through a data_dir and a config name.
  np.testing.assert_array_equal(
      tb.load_pose_space(data_dir, builder.builder_config.name), space)

  stats = tb.load_rgb_stats(builder)
  pixels = np.concatenate([e["image"].reshape(-1, 3) for e in train.values()]
                          ).astype(np.float64) / 255
  np.testing.assert_allclose(stats["mean"], pixels.mean(0), atol=1e-9)
  np.testing.assert_allclose(stats["cov"], np.cov(pixels.T), atol=1e-9)
  assert np.all((stats["mean"] > 0.05) & (stats["mean"] < 0.95))
  np.testing.assert_allclose(stats["cov"], stats["cov"].T)
  assert np.linalg.eigvalsh(stats["cov"]).min() > 0
  assert stats["num_pixels"] == 8 * 32 * 32


def test_features_and_default_config():
  info = tb.StructnetH36m(data_dir="/nonexistent/unused").info
  assert info.features["image"].shape == (128, 128, 3)
  assert info.features["pose"].shape == (17, 3)
  assert info.features["pose_2d"].shape == (17, 2)
  for k in ("subaction", "camera", "frame"):
    assert info.features[k].np_dtype == np.int32
  config = tb.StructnetH36m(data_dir="/nonexistent/unused").builder_config
  assert config.name == "procedural"
  assert config.train_subjects == ("S1", "S5", "S6", "S7", "S8")
  assert config.test_subjects == ("S9", "S11")
  assert config.cameras == (1, 2, 3, 4)
  # Named options give a stable, distinct config.
  a = tb.make_config("procedural", frame_step=10, cameras=[1])
  b = tb.make_config("structnet_h36m/procedural", cameras=(1,), frame_step=10)
  assert a.name == b.name != "procedural" and a.name.startswith("procedural_")


def test_rerun_of_a_finished_dataset_does_nothing(built, monkeypatch):
  _, data_dir, _, _ = built
  before = _tree(data_dir)
  def boom(*args, **kwargs):
    raise AssertionError("nothing may be generated or rendered on a re-run")
  monkeypatch.setattr(tb.synthesize, "render_sequence_examples", boom)
  monkeypatch.setattr(tb.procedural_motion, "generate_motion", boom)
  builder = tb.build_dataset("procedural", data_dir, batch_size=BATCH,
                             **SMALL)
  assert _tree(data_dir) == before
  assert builder.info.splits["train"].num_examples == 8
  # The render cache went away after the successful build.
  cache_root = os.path.join(data_dir, "downloads", tb.CACHE_DIRNAME)
  assert not os.path.exists(cache_root) or not os.listdir(cache_root)


def test_interrupted_build_resumes_from_the_cache(built, tmp_path,
                                                  monkeypatch):
  _, _, train, test = built
  data_dir = str(tmp_path / "tfds")
  real = tb.synthesize.render_sequence_examples
  rendered = []

  def flaky(seq, **kwargs):
    rendered.append(seq.subject)
    if seq.subject == "S5":
      raise RuntimeError("interrupted")
    return real(seq, **kwargs)

  monkeypatch.setattr(tb.synthesize, "render_sequence_examples", flaky)
  with pytest.raises(RuntimeError, match="interrupted"):
    tb.build_dataset("procedural", data_dir, batch_size=BATCH, **SMALL)
  assert rendered == ["S1", "S5"]
  config_dir = os.path.join(data_dir, "structnet_h36m",
                            tb.make_config("procedural", **SMALL).name)
  assert not os.path.exists(os.path.join(config_dir, "1.0.0"))
  (cache,) = os.listdir(os.path.join(data_dir, "downloads", tb.CACHE_DIRNAME))
  assert os.listdir(os.path.join(data_dir, "downloads", tb.CACHE_DIRNAME,
                                 cache)) == ["S1__walking__1.npz"]

  # Resume: only the sequences missing from the cache are rendered.
  rendered.clear()
  monkeypatch.setattr(tb.synthesize, "render_sequence_examples",
                      lambda seq, **kw: rendered.append(seq.subject) or real(
                          seq, **kw))
  builder = tb.build_dataset("procedural", data_dir, batch_size=BATCH,
                             **SMALL)
  assert sorted(rendered) == ["S5", "S9"]
  for split, want in (("train", train), ("test", test)):
    got = _read(builder, split)
    assert sorted(got) == sorted(want)
    for k, ex in got.items():
      for name in ("image", "pose", "pose_2d"):
        np.testing.assert_array_equal(ex[name], want[k][name])
  np.testing.assert_array_equal(tb.load_pose_space(builder),
                                tb.load_pose_space(built[0]))


def test_h36m_motion_config_retargets_the_loaded_motion(tmp_path, monkeypatch):
  motion_file = tmp_path / "motion.npz"
  motion_file.write_bytes(b"stand-in")
  shared = pm.generate_motion(["P3"], ["walking"], 1, 6, seed=2)[0]
  calls = []

  def fake_load(path, skeleton_path=None, *, subjects=None, step=1, **kw):
    calls.append((path, skeleton_path, list(subjects), step))
    return {f"{s}/walking/1": h36m_motion.MotionSequence(
        subject=s, action="walking", subaction=1, fps=25.0 / step,
        frame_indices=np.array([10, 10 + step]),
        world_joints=shared.world_joints[::3].astype(np.float32))
            for s in subjects}

  monkeypatch.setattr(h36m_motion, "load_expmap_motion", fake_load)
  builder = tb.build_dataset(
      "h36m_motion", str(tmp_path / "tfds"), motion_path=str(motion_file),
      batch_size=BATCH, train_subjects=("S1",), test_subjects=("S9",),
      cameras=(1,), crop_size=32, supersample=1, frame_step=3)
  assert calls == [(str(motion_file), None, ["S1", "S9"], 3)]
  for split, subject in (("train", "S1"), ("test", "S9")):
    examples = _read(builder, split)
    assert sorted(e["frame"] for e in examples.values()) == [10, 13]
    for ex in examples.values():
      assert ex["subject"] == subject
      np.testing.assert_allclose(poses_lib.bone_lengths(ex["pose"]),
                                 syn.subject_bone_lengths(subject), atol=0.05)
  assert tb.load_pose_space(builder).shape == (2, 17, 3)


def test_h36m_release_config_reads_manual_dir_through_h36m_release(
    tmp_path, monkeypatch):
  manual = tmp_path / "manual"
  (manual / "S1").mkdir(parents=True)
  calls = {}

  @dataclasses.dataclass
  class FakeSequence:
    subject: str
    action: str
    subaction: int
    camera: int

  def find_sequences(manual_dir, subjects=None, actions=None,
                     cameras=(1, 2, 3, 4)):
    calls["find"] = (os.fspath(manual_dir), subjects, actions, cameras)
    return [FakeSequence(s, "walking", 1, c) for s in subjects
            for c in cameras]

  def sequence_examples(seq, *, frame_step=1, crop_size=128, margin=0.2):
    calls.setdefault("examples", []).append((frame_step, crop_size, margin))
    rng = np.random.default_rng(seq.camera)
    for frame in range(0, 4, frame_step):
      yield {"image": rng.integers(0, 255, (crop_size, crop_size, 3),
                                   dtype=np.uint8),
             "pose": rng.normal(size=(17, 3)).astype(np.float32),
             "pose_2d": rng.normal(size=(17, 2)).astype(np.float32),
             "subject": seq.subject, "action": seq.action,
             "subaction": seq.subaction, "camera": seq.camera,
             "camera_id": "54138969", "frame": frame}

  fake = types.ModuleType("data_pipelines.motion.h36m_release")
  fake.find_sequences, fake.sequence_examples = find_sequences, (
      sequence_examples)
  monkeypatch.setitem(sys.modules, "data_pipelines.motion.h36m_release", fake)
  monkeypatch.setattr(data_pipelines.motion, "h36m_release", fake,
                      raising=False)
  builder = tb.build_dataset(
      "h36m_release", str(tmp_path / "tfds"), manual_dir=str(manual),
      train_subjects=("S1", "S5"), test_subjects=("S11",), actions=("walking",),
      cameras=(1, 3), crop_size=32, frame_step=2, margin=0.25)
  assert calls["find"] == (str(manual), ["S1", "S5", "S11"], ["walking"],
                           (1, 3))
  assert set(calls["examples"]) == {(2, 32, 0.25)}
  train, test = _read(builder, "train"), _read(builder, "test")
  assert len(train) == 8 and len(test) == 4
  assert {e["subject"] for e in test.values()} == {"S11"}
  assert tb.load_pose_space(builder).shape == (8, 17, 3)


def _positions_file(path):
  """S1 (train), S9 and P3 (test): a standing person walking a short line."""
  from test_position_motion import walk  # pylint: disable=g-import-not-at-top
  seqs = {"S1/walking/1": walk(5, seed=0), "S9/walking/1": walk(5, seed=1),
          "P3/jumping/2": walk(5, seed=2) * np.array([1.0, 1.0, 0.9])}
  np.savez(path, **seqs)
  return seqs


def test_positions_config_renders_the_joints_as_given(tmp_path):
  from data_pipelines.motion import positions as position_motion  # pylint: disable=g-import-not-at-top
  motion = tmp_path / "positions.npz"
  seqs = _positions_file(motion)
  builder = tb.build_dataset(
      "positions", str(tmp_path / "tfds"), motion_path=str(motion),
      batch_size=BATCH, train_subjects=("S1",), cameras=(1,), crop_size=32,
      supersample=1, frame_step=2)
  train, test = _read(builder, "train"), _read(builder, "test")
  # test_subjects=None: every subject of the file not in train.
  assert {e["subject"] for e in train.values()} == {"S1"}
  assert {e["subject"] for e in test.values()} == {"S9", "P3"}
  assert sorted(e["frame"] for e in train.values()) == [0, 2, 4]
  loaded = position_motion.load_position_motion(motion, step=2)
  for key, seq in loaded.items():
    split = train if seq.subject == "S1" else test
    for ex in syn.render_sequence_examples(
        seq, cameras=(1,), batch_size=BATCH, crop_size=32, supersample=1):
      got = split[syn.example_key(ex)]
      for name in ("image", "pose", "pose_2d"):
        np.testing.assert_array_equal(got[name], ex[name])
    # Not retargeted: the bones are the file's own, frame by frame.
    poses = np.stack([e["pose"] for e in sorted(
        split.values(), key=lambda e: e["frame"])
                      if e["subject"] == seq.subject])
    np.testing.assert_allclose(poses_lib.bone_lengths(poses),
                               poses_lib.bone_lengths(seqs[key][::2]),
                               atol=0.05)
  # P3 is no Human3.6M subject: S9's camera 1 films it.
  p3 = [e for e in test.values() if e["subject"] == "P3"]
  assert {e["camera_id"] for e in p3} == {
      syn.cameras_lib.camera_for("S9", 0).id}
  assert tb.load_pose_space(builder).shape == (3, 17, 3)
  # Another file with the same options is other data: its own dataset (the
  # same joints with P3 renamed P4, which has another look).
  other = tmp_path / "renamed.npz"
  np.savez(other, **{k.replace("P3/", "P4/"): v for k, v in seqs.items()})
  again = tb.build_dataset(
      "positions", str(tmp_path / "tfds"), motion_path=str(other),
      batch_size=BATCH, train_subjects=("S1",), cameras=(1,), crop_size=32,
      supersample=1, frame_step=2)
  assert again.builder_config.name != builder.builder_config.name
  assert {e["subject"] for e in _read(again, "test").values()} == {"S9", "P4"}


def test_positions_evaluation_only_dataset_has_a_test_split_alone(tmp_path):
  motion = tmp_path / "positions.npz"
  _positions_file(motion)
  builder = tb.build_dataset(
      "positions", str(tmp_path / "tfds"), motion_path=str(motion),
      batch_size=BATCH, train_subjects=(), test_subjects=("P3", "S9"),
      cameras=(1,), crop_size=32, supersample=1, frame_step=4)
  assert set(builder.info.splits) == {"test"}
  assert {e["subject"] for e in _read(builder, "test").values()} == {"P3", "S9"}
  assert tb.load_pose_space(builder).shape == (0, 17, 3)
  with pytest.raises(FileNotFoundError, match="no train split"):
    tb.load_rgb_stats(builder)


def test_new_config_fields_keep_the_names_of_datasets_built_before():
  # Names of datasets built before placement / random_yaw / rig_subject.
  assert tb.make_config("procedural", crop_size=64).name == (
      "procedural_2c67e57310")
  assert tb.make_config("h36m_motion", frame_step=25, crop_size=64).name == (
      "h36m_motion_4f68ade889")
  assert tb.make_config("procedural", crop_size=64, random_yaw=True).name != (
      "procedural_2c67e57310")
  assert tb.make_config("procedural", crop_size=64,
                        looks_per_subject=4).name != "procedural_2c67e57310"


def test_bad_positions_inputs_are_refused_before_anything_is_written(tmp_path):
  data_dir = tmp_path / "tfds"
  data_dir.mkdir()
  motion = tmp_path / "positions.npz"
  seqs = _positions_file(motion)
  with pytest.raises(ValueError, match="no motion_path was given.*positions"):
    tb.build_dataset("positions", str(data_dir))
  with pytest.raises(ValueError, match=r"none of the subjects.*\['P3', 'S1', "
                     r"'S9'\]"):
    tb.build_dataset("positions", str(data_dir), motion_path=str(motion),
                     train_subjects=("S5",), test_subjects=("S11",))
  with pytest.raises(ValueError, match="no sequences for the train split"):
    tb.build_dataset("positions", str(data_dir), motion_path=str(motion),
                     train_subjects=("S5",))
  with pytest.raises(ValueError, match="placement must be one of"):
    tb.build_dataset("positions", str(data_dir), motion_path=str(motion),
                     placement="middle")
  with pytest.raises(ValueError, match="rig_subject 'S4' has no cameras"):
    tb.build_dataset("positions", str(data_dir), motion_path=str(motion),
                     rig_subject="S4")
  metres = tmp_path / "metres.npz"
  np.savez(metres, **{k: v / 1000 for k, v in seqs.items()})
  with pytest.raises(ValueError, match=r"P3/jumping/2.*metres"):
    tb.build_dataset("positions", str(data_dir), motion_path=str(metres),
                     train_subjects=("S1",))
  assert _tree(data_dir) == {}


def test_bad_inputs_are_refused_before_anything_is_written(built, tmp_path):
  _, data_dir, _, _ = built
  before = _tree(data_dir)
  with pytest.raises(ValueError, match=r"unknown subject\(s\) \['P3'\]"):
    tb.build_dataset("procedural", data_dir, train_subjects=("S1", "P3"))
  with pytest.raises(ValueError, match=r"\['S9'\] are in both"):
    tb.build_dataset("procedural", data_dir, train_subjects=("S1", "S9"))
  with pytest.raises(ValueError, match="unknown procedural action"):
    tb.build_dataset("procedural", data_dir, actions=("flying",))
  with pytest.raises(ValueError, match=r"frame_stepp.*frame_step"):
    tb.build_dataset("procedural", data_dir, frame_stepp=2)
  with pytest.raises(ValueError, match="unknown structnet_h36m config"):
    tb.build_dataset("h36m", data_dir)
  with pytest.raises(ValueError, match="no motion_path was given"):
    tb.build_dataset("h36m_motion", data_dir)
  missing = str(tmp_path / "nope.npz")
  with pytest.raises(FileNotFoundError, match=r"nope\.npz.*does not exist"):
    tb.build_dataset("h36m_motion", data_dir, motion_path=missing)
  with pytest.raises(FileNotFoundError, match=r"manual_dir.*does not exist or "
                     r"is empty(.|\n)*Register at"):
    tb.build_dataset("h36m_release", data_dir,
                     manual_dir=str(tmp_path / "no_manual"))
  with pytest.raises(FileNotFoundError, match="no built structnet_h36m/"
                     "h36m_motion dataset"):
    tb.load_pose_space(data_dir, "h36m_motion")
  assert _tree(data_dir) == before


def test_tfds_source_serves_the_built_dataset_to_the_trainer(built):
  from data_pipelines.tfds import source as tfds_source  # pylint: disable=g-import-not-at-top
  builder, data_dir, train, test = built
  source = tfds_source.TfdsSource.create("procedural", data_dir, crop=28,
                                         pca_noise_std=0.1, **SMALL)
  assert source.builder.data_dir == builder.data_dir  # reused, not rebuilt
  np.testing.assert_array_equal(source.pose_space, tb.load_pose_space(builder))
  b0 = source.train_batch(0, 4, seed=3)
  b1 = source.train_batch(1, 4, seed=3)
  assert b0["image"].shape == (4, 28, 28, 3) and b0["image"].dtype == np.float32
  assert b0["pose"].shape == (4, 17, 3)
  # A pure function of the step: a fresh source re-reads the same batch 1.
  again = tfds_source.TfdsSource.create("procedural", data_dir, crop=28,
                                        pca_noise_std=0.1, **SMALL)
  np.testing.assert_array_equal(again.train_batch(1, 4, seed=3)["image"],
                                b1["image"])
  train_poses = {e["pose"].tobytes() for e in train.values()}
  assert all(p.tobytes() in train_poses for p in b0["pose"])
  # Evaluation: every test example exactly once, padded batches masked.
  seen = []
  for batch in source.eval_batches(3, "test"):
    assert batch["image"].shape == (3, 28, 28, 3)
    for pose, action, keep in zip(batch["pose"], batch["action"],
                                  batch["mask"]):
      if keep:
        assert action == "walking"
        seen.append(pose.tobytes())
  assert sorted(seen) == sorted(e["pose"].tobytes() for e in test.values())
  with pytest.raises(ValueError, match="image_size=40"):
    tfds_source.TfdsSource.create("procedural", data_dir, crop=40,
                                  pca_noise_std=0.1, **SMALL)


def test_looks_per_subject_dresses_training_sequences_only(monkeypatch):
  from data_pipelines.rig import appearance  # pylint: disable=g-import-not-at-top
  worn = {}
  monkeypatch.setattr(tb.synthesize, "render_sequence_examples",
                      lambda seq, **kw: worn.setdefault(
                          f"{seq.subject}/{seq.subaction}", kw["look"]))
  seqs = pm.generate_motion(["S1", "S9"], ["walking"], sequences_per_action=6,
                            frames_per_sequence=4, seed=0)
  jobs = tb._render_jobs(seqs, dict(cameras=(1,)), frame_step=1,
                         looks_per_subject=3, train_subjects=("S1",))
  for job in jobs:
    job.make()
  for seq in seqs:
    want = (appearance.look_name("S1", seq.action, seq.subaction, 3)
            if seq.subject == "S1" else "S9")
    assert worn[f"{seq.subject}/{seq.subaction}"] == want
  assert len({worn[f"S1/{s.subaction}"] for s in seqs if s.subject == "S1"}) > 1
  with pytest.raises(ValueError, match="looks_per_subject must be an integer"):
    tb.make_config("procedural", looks_per_subject=0)
