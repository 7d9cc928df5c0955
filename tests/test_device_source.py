"""Tests of data_pipelines/sources/device.py (tiny renders, CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines.motion import procedural as pm
from data_pipelines.render import synthesize as syn
from data_pipelines.sources import device as ds
from structnet_jax import poses as poses_lib

TINY = dict(train_subjects=("S1", "S5"), test_subjects=("S9",),
            actions=("walking",), cameras=(1, 3), frame_step=4,
            sequences_per_action=1, frames_per_sequence=12, image_size=32,
            crop=28, supersample=1, rgb_sample_size=8)
# Every render has batch B (the covariance sample too), so that they all
# share one compilation of the renderer.
B = 8
N_TRAIN, N_TEST = 12, 6  # subjects x 2 cameras x 3 frames (0, 4, 8)


@pytest.fixture(scope="module")
def src():
  return ds.RenderSource.create("procedural", pixel_noise=False, **TINY)


def _synth(subjects):
  seqs = pm.generate_motion(list(subjects), ["walking"],
                            sequences_per_action=1, frames_per_sequence=12,
                            seed=0)
  out = []
  for seq in seqs:
    out += list(syn.render_sequence_examples(
        seq, cameras=(1, 3), frame_step=4, crop_size=32, supersample=1,
        pixel_noise=False, batch_size=4))
  return out


def test_shapes_and_dtypes(src):
  assert len(src) == N_TRAIN and src.num_examples("test") == N_TEST
  assert src.pose_space.shape == (N_TRAIN, 17, 3)
  assert src.pose_space.dtype == np.float32
  batch = src.train_batch(0, B, 0)
  assert set(batch) == {"image", "pose", "pose_2d"}
  assert batch["image"].shape == (B, 28, 28, 3)
  assert batch["pose_2d"].shape == (B, 17, 2)
  assert batch["image"].dtype == jnp.float32
  assert batch["pose"].shape == (B, 17, 3)
  assert batch["pose"].dtype == jnp.float32
  image = np.asarray(batch["image"])
  assert np.all(np.isfinite(image))
  assert -0.5 < image.min() and image.max() < 1.5 and image.std() > 0.02
  assert src.eigvals.shape == (3,) and src.eigvecs.shape == (3, 3)


def test_train_batch_pure_in_seed_and_step(src):
  first = jax.device_get(src.train_batch(5, B, 0))
  other = jax.device_get(src.train_batch(6, B, 0))
  again = jax.device_get(src.train_batch(5, B, 0))
  seeded = jax.device_get(src.train_batch(5, B, 1))
  for k in ("image", "pose"):
    np.testing.assert_array_equal(first[k], again[k])
  assert not np.array_equal(first["image"], other["image"])
  assert not np.array_equal(first["image"], seeded["image"])


def test_train_poses_come_from_pose_space_one_epoch_each(src):
  space = src.pose_space.reshape(N_TRAIN, -1)
  poses = np.concatenate([np.asarray(src.train_batch(step, B, 3)["pose"])
                          for step in range(3)]).reshape(3 * B, -1)
  match = [np.flatnonzero((space == p).all(axis=1)) for p in poses]
  assert all(m.size == 1 for m in match)
  order = [int(m[0]) for m in match]
  # Two epochs in three batches: each a permutation of the training set.
  assert sorted(order[:N_TRAIN]) == list(range(N_TRAIN))
  assert sorted(order[N_TRAIN:]) == list(range(N_TRAIN))


def test_epoch_indices_straddle_epochs():
  key = jax.random.PRNGKey(0)
  num, batch = 5, 3
  stream = np.concatenate([
      np.asarray(ds.epoch_indices(key, *ds.stream_position(s, batch, num),
                                  batch, num)) for s in range(10)])
  epochs = stream.reshape(6, num)
  for e in epochs:
    assert sorted(e) == list(range(num))
  assert len({tuple(e) for e in epochs}) > 1


def test_eval_visits_every_example_once(src):
  batches = list(src.eval_batches(B))
  assert len(batches) == 1
  b = batches[0]
  np.testing.assert_array_equal(b["mask"], [True] * N_TEST + [False] * 2)
  np.testing.assert_array_equal(b["pose"][:N_TEST], src.splits["test"].pose)
  assert b["image"].shape == (B, 28, 28, 3)
  assert b["action"].dtype.kind == "U" and set(b["action"]) == {"walking"}
  assert list(b["subject"][:N_TEST]) == ["S9"] * N_TEST
  train = list(src.eval_batches(B, "train"))
  assert len(train) == 2
  mask = np.concatenate([t["mask"] for t in train])
  np.testing.assert_array_equal(mask, np.arange(2 * B) < N_TRAIN)
  poses = np.concatenate([t["pose"] for t in train])[mask]
  np.testing.assert_array_equal(poses, src.pose_space)
  # Evaluation is deterministic.
  np.testing.assert_array_equal(np.asarray(next(src.eval_batches(B))["image"]),
                                np.asarray(b["image"]))


def test_matches_synthesize(src):
  train = _synth(("S1", "S5"))
  test = _synth(("S9",))
  # Same examples in the same order, labels bit for bit.
  np.testing.assert_array_equal(np.stack([e["pose"] for e in train]),
                                src.pose_space)
  for split, examples in (("train", train), ("test", test)):
    arrays = src.splits[split]
    np.testing.assert_array_equal(np.stack([e["pose"] for e in examples]),
                                  arrays.pose)
    assert [e["camera"] for e in examples] == list(arrays.camera)
    assert [e["frame"] for e in examples] == list(arrays.frame)
    assert [e["subject"] for e in examples] == list(arrays.subject)
  # Images: the full crops of the train split ...
  want = np.stack([e["image"] for e in train[:B]]).astype(np.int32)
  got = src.full_images(np.arange(B), "train").astype(np.int32)
  assert got.shape == want.shape
  assert np.abs(got - want).max() <= 2 and np.mean(got != want) < 0.01
  # ... and the centre crops of the test split's evaluation batches.
  want = np.stack([e["image"] for e in test])[:, 2:30, 2:30] / 255.0
  got = np.asarray(next(src.eval_batches(B))["image"])[:N_TEST]
  assert np.abs(got - want).max() <= 2.5 / 255


def test_pixel_noise_like_synthesize():
  images = jnp.full((2, 16, 16, 3), 128, jnp.uint8).at[1].set(250)
  out = np.asarray(ds._pixel_noise(jax.random.PRNGKey(0), images,
                                   jnp.asarray([0.02, 0.0])))
  np.testing.assert_array_equal(out, np.round(out))
  assert abs((out[0] - 128).std() - 255 * 0.02) < 0.6
  np.testing.assert_array_equal(out[1], 250)
  loud = np.asarray(ds._pixel_noise(jax.random.PRNGKey(1), images,
                                    jnp.asarray([0.5, 0.5])))
  assert loud.min() == 0 and loud.max() == 255


def test_noise_paths_of_the_jitted_finishers():
  images = jnp.full((3, 8, 8, 3), 100, jnp.uint8)
  key = jax.random.PRNGKey(7)
  std = jnp.asarray([0.05, 0.05, 0.0])
  # Evaluation noise is per example, whatever the batch.
  both = np.asarray(ds._eval_finish(images, jnp.asarray([0, 1, 2]), std, key,
                                    crop=6, pixel_noise=True))
  one = np.asarray(ds._eval_finish(images[1:2], jnp.asarray([1]), std[1:2],
                                   key, crop=6, pixel_noise=True))
  np.testing.assert_array_equal(both[1], one[0])
  assert both[0].std() > 0.02 and not np.array_equal(both[0], both[1])
  np.testing.assert_allclose(both[2], 100 / 255.0, rtol=1e-6)
  # Training: noise std per subject, pure in (key, step).
  pose = jnp.zeros((3, 17, 3))
  joints_2d = jnp.full((3, 17, 2), 4.5)
  args = (jax.random.PRNGKey(0), jnp.uint32(4), images, joints_2d,
          jnp.asarray([0, 1, 2]), pose, jnp.asarray([0, 0, 1]),
          jnp.asarray([0.05, 0.0]), jnp.ones(3), jnp.eye(3), jnp.float32(0.0))
  out = np.asarray(ds._train_finish(*args, crop=6, pixel_noise=True)["image"])
  again = np.asarray(ds._train_finish(*args, crop=6, pixel_noise=True)["image"])
  np.testing.assert_array_equal(out, again)
  assert out[0].std() > 0.02
  np.testing.assert_allclose(out[2], 100 / 255.0, rtol=1e-6)


def test_empty_split_refused():
  with pytest.raises(ValueError, match="the test split is empty"):
    ds._split_arrays([], (1,), {}, {}, body_seed=0, split="test")


@pytest.mark.parametrize("kwargs, message", [
    (dict(train_subjects=("S1", "S2")), "unknown subject 'S2'"),
    (dict(test_subjects=()), "test_subjects must be a non-empty"),
    (dict(test_subjects=("S1",)), "in both train_subjects and test_subjects"),
    (dict(cameras=(1, 5)), "cameras must be distinct camera numbers"),
    (dict(crop=40), "crop=40 is larger than image_size=32"),
    (dict(frame_step=0), "frame_step must be an integer >= 1"),
    (dict(pca_noise_std=-1.0), "pca_noise_std must be"),
    (dict(actions=("flying",)), "unknown action"),
    (dict(motion="/nonexistent/h36m_expmap.npz"), "does not exist"),
])
def test_bad_inputs_refused(kwargs, message):
  options = dict(TINY, **kwargs)
  motion = options.pop("motion", "procedural")
  with pytest.raises(ValueError, match=message):
    ds.RenderSource.create(motion, **options)


def test_joint_positions_are_filmed_as_given_like_synthesize(tmp_path):
  from data_pipelines.motion import positions as position_motion  # pylint: disable=g-import-not-at-top
  from test_position_motion import walk  # pylint: disable=g-import-not-at-top
  path = tmp_path / "positions.npz"
  np.savez(path, **{"S1/walking/1": walk(9, seed=0),
                    "P3/walking/1": walk(9, seed=1) * [1.0, 1.0, 0.9]})
  options = dict(TINY, train_subjects=("S1",), test_subjects=("P3",))
  for name in ("sequences_per_action", "frames_per_sequence"):
    options.pop(name)
  src = ds.RenderSource.create(str(path), pixel_noise=False, **options)
  seqs = position_motion.load_position_motion(path, step=4, cameras=(1, 3))
  for split, key in (("train", "S1/walking/1"), ("test", "P3/walking/1")):
    want = list(syn.render_sequence_examples(
        seqs[key], cameras=(1, 3), crop_size=32, supersample=1,
        pixel_noise=False, batch_size=4))
    arrays = src.splits[split]
    np.testing.assert_array_equal(np.stack([e["pose"] for e in want]),
                                  arrays.pose)
    assert [e["frame"] for e in want] == list(arrays.frame) == [0, 4, 8] * 2
    got = src.full_images(np.arange(len(want)), split).astype(np.int32)
    diff = np.abs(got - np.stack([e["image"] for e in want]).astype(np.int32))
    assert diff.max() <= 2 and np.mean(diff > 0) < 0.01
  # Not retargeted: the test person keeps the file's (shorter) bones.
  np.testing.assert_allclose(
      poses_lib.bone_lengths(src.splits["test"].pose[:3]),
      poses_lib.bone_lengths(walk(9, seed=1)[::4] * [1.0, 1.0, 0.9]),
      atol=0.05)
  with pytest.raises(ValueError, match="joint positions files only"):
    ds.RenderSource.create("procedural", placement="centre", **TINY)


def test_bad_call_arguments(src):
  with pytest.raises(ValueError, match="batch_size must be"):
    src.train_batch(0, 0)
  with pytest.raises(ValueError, match="step must be"):
    src.train_batch(-1, B)
  with pytest.raises(ValueError, match="split must be one of"):
    next(src.eval_batches(B, "validation"))
  with pytest.raises(ValueError, match="indices must be in"):
    src.full_images([N_TRAIN], "train")


def test_training_subjects_wear_several_looks_like_synthesize():
  """looks_per_subject=4: each training sequence wears the look that
  appearance.look_name gives it (several per subject), test subjects their
  own; the rendered crops equal synthesize's with the same look."""
  from data_pipelines.rig import appearance  # pylint: disable=g-import-not-at-top
  options = dict(TINY, sequences_per_action=4)
  src = ds.RenderSource.create("procedural", pixel_noise=False,
                               looks_per_subject=4, **options)
  assert src.looks[:3] == ("S1", "S5", "S9") and len(src.looks) == 3 + 2 * 3
  seqs = pm.generate_motion(["S1", "S5", "S9"], ["walking"],
                            sequences_per_action=4, frames_per_sequence=12,
                            seed=0)
  for split in ("train", "test"):
    arrays = src.splits[split]
    worn = [src.looks[i] for i in arrays.look_index]
    want = [appearance.look_name(s, a, int(u), 4 if split == "train" else 1)
            for s, a, u in zip(arrays.subject, arrays.action,
                               arrays.subaction)]
    assert worn == want
  s1 = {w for w, s in zip((src.looks[i] for i in src.splits["train"].look_index),
                          src.splits["train"].subject) if s == "S1"}
  assert len(s1) >= 2, s1  # 4 sequences of S1 in more than one look
  assert {src.looks[i] for i in src.splits["test"].look_index} == {"S9"}
  # The first training sequence's crops against synthesize with its look.
  seq = seqs[0]
  look = appearance.look_name(seq.subject, seq.action, seq.subaction, 4)
  examples = list(syn.render_sequence_examples(
      seq, cameras=(1, 3), frame_step=4, crop_size=32, supersample=1,
      pixel_noise=False, batch_size=4, look=look))
  rows = np.flatnonzero((src.splits["train"].subject == seq.subject)
                        & (src.splits["train"].subaction == seq.subaction))
  assert len(rows) == len(examples)
  got = src.full_images(rows, "train").astype(np.int32)
  want = np.stack([e["image"] for e in examples]).astype(np.int32)
  assert np.abs(got - want).max() <= 2 and np.mean(got != want) < 0.01
  own = np.stack([e["image"] for e in syn.render_sequence_examples(
      seq, cameras=(1, 3), frame_step=4, crop_size=32, supersample=1,
      pixel_noise=False, batch_size=4)]).astype(np.int32)
  assert (look == seq.subject) == (np.abs(own - want).max() <= 2)
