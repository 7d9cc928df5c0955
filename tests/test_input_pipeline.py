"""Tests of the tf.data input pipeline (data_pipelines/tfds/input_pipeline.py).

Small synthetic datasets made here; references are exact numpy crops, numpy
statistics and set arithmetic on the ``frame`` ids of the examples.
"""

import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import tensorflow as tf

from data_pipelines.tfds import input_pipeline as ip  # noqa: E402
from structnet_jax import sharding  # noqa: E402

ACTIONS = ("Walking", "Eating", "Sitting")
COV = np.array([[0.040, 0.030, 0.020],
                [0.030, 0.040, 0.030],
                [0.020, 0.030, 0.050]])


def make_examples(n, size=128, seed=0):
  rng = np.random.default_rng(seed)
  return {
      "image": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
      "pose": rng.normal(scale=300, size=(n, 17, 3)).astype(np.float32),
      "pose_2d": rng.uniform(size=(n, 17, 2)).astype(np.float32),
      "subject": np.array([f"S{1 + i % 3}" for i in range(n)]),
      "action": np.array([ACTIONS[i % 3] for i in range(n)]),
      "subaction": np.ones(n, np.int32),
      "camera": (np.arange(n) % 4).astype(np.int32),
      "camera_id": np.array(["54138969"] * n),
      "frame": np.arange(n, dtype=np.int32),
  }


def as_ds(examples):
  return tf.data.Dataset.from_tensor_slices(examples)


@pytest.fixture(scope="module")
def examples():
  return make_examples(24)


def batches(ds, n=None):
  return list(ds.take(n).as_numpy_iterator() if n else ds.as_numpy_iterator())


def test_module_imports_without_tensorflow():
  code = ("import sys; import data_pipelines.tfds.input_pipeline; "
          "assert 'tensorflow' not in sys.modules")
  subprocess.run([sys.executable, "-c", code], check=True,
                 env={"JAX_PLATFORMS": "cpu", "PATH": ""})


def test_train_shapes_dtypes(examples):
  ds = ip.train_dataset(as_ds(examples), batch_size=8, rgb_cov=COV, seed=0,
                        process_index=0, process_count=1,
                        extra_keys=("frame",))
  (b,) = batches(ds, 1)
  assert set(b) == {"image", "pose", "frame"}
  assert b["image"].dtype == np.float32 and b["image"].shape == (8, 112, 112, 3)
  assert b["pose"].dtype == np.float32 and b["pose"].shape == (8, 17, 3)
  np.testing.assert_array_equal(b["pose"], examples["pose"][b["frame"]])
  assert -0.5 < b["image"].min() and b["image"].max() < 1.5


def find_window(source, crop):
  """All (y, x) where ``crop`` (uint8 [c, c, 3]) equals a window of source."""
  c = crop.shape[0]
  windows = np.lib.stride_tricks.sliding_window_view(source, (c, c, 3))[:, :, 0]
  return np.argwhere((windows == crop).all(axis=(2, 3, 4)))


def test_random_crop_is_a_window_and_varies(examples):
  ds = ip.train_dataset(as_ds(examples), batch_size=12, rgb_cov=COV,
                        pca_noise_std=0.0, seed=1, process_index=0,
                        process_count=1, extra_keys=("frame",))
  offsets = []
  for b in batches(ds, 2):
    for image, frame in zip(b["image"], b["frame"]):
      crop = np.round(image * 255).astype(np.uint8)
      np.testing.assert_array_equal(crop.astype(np.float32) / 255, image)
      found = find_window(examples["image"][frame], crop)
      assert len(found) == 1, "the crop must be a window of its source image"
      offsets.append(tuple(found[0]))
  assert len(set(offsets)) > 10  # 24 draws from 17 x 17 positions


def test_pose_2d_moves_with_the_crop(examples):
  """The 2D joints of a training crop are the stored ones minus the window's
  top-left corner, found by searching the source image (independent of the
  pipeline's own offsets); evaluation's centre crop shifts them by its own
  corner."""
  ds = ip.train_dataset(as_ds(examples), batch_size=12, rgb_cov=COV,
                        pca_noise_std=0.0, seed=2, process_index=0,
                        process_count=1, extra_keys=("frame", "pose_2d"))
  (b,) = batches(ds, 1)
  for image, frame, pose_2d in zip(b["image"], b["frame"], b["pose_2d"]):
    crop = np.round(image * 255).astype(np.uint8)
    (y, x), = find_window(examples["image"][frame], crop)
    np.testing.assert_allclose(pose_2d, examples["pose_2d"][frame] - [x, y],
                               rtol=0, atol=1e-5)
  ev = ip.eval_dataset(as_ds(examples), batch_size=8, process_index=0,
                       process_count=1, label_keys=("frame", "pose_2d"))
  (e,) = batches(ev, 1)
  np.testing.assert_allclose(e["pose_2d"],
                             examples["pose_2d"][e["frame"]] - [8, 8],
                             rtol=0, atol=1e-5)


def test_eval_centre_crop_every_example_once_with_mask():
  ex = make_examples(21)
  ds = ip.eval_dataset(as_ds(ex), batch_size=8, process_index=0,
                       process_count=1)
  got = batches(ds)
  assert len(got) == 3
  assert set(got[0]) == {"image", "pose", "mask", "action", "subject", "camera"}
  mask = np.concatenate([b["mask"] for b in got])
  assert mask.dtype == bool
  np.testing.assert_array_equal(mask, np.arange(24) < 21)
  images = np.concatenate([b["image"] for b in got])[:21]
  assert images.dtype == np.float32 and images.shape == (21, 112, 112, 3)
  np.testing.assert_array_equal(
      images, ex["image"][:, 8:120, 8:120].astype(np.float32) / 255)
  np.testing.assert_array_equal(np.concatenate([b["pose"] for b in got])[:21],
                                ex["pose"])
  actions = np.concatenate([b["action"] for b in got])
  assert [a.decode() for a in actions[:21]] == list(ex["action"])
  assert all(a == b"" for a in actions[21:])
  # Exact multiple of the batch: no padded batch at all.
  got = batches(ip.eval_dataset(as_ds(make_examples(16)), batch_size=8,
                                process_count=1, process_index=0))
  assert len(got) == 2 and all(b["mask"].all() for b in got)


def test_pca_noise_statistics():
  n, std = 4000, 0.5
  image = np.full((1, 16, 16, 3), 128, np.uint8)
  ex = {"image": image, "pose": np.zeros((1, 17, 3), np.float32)}
  ds = ip.train_dataset(as_ds(ex), batch_size=1000, crop_size=8, rgb_cov=COV,
                        pca_noise_std=std, seed=3, shuffle_buffer=1,
                        process_index=0, process_count=1)
  imgs = np.concatenate([b["image"] for b in batches(ds, n // 1000)])
  offset = imgs - np.float32(128 / 255)
  # One RGB offset per image, the same at every pixel.
  np.testing.assert_allclose(offset, np.broadcast_to(offset[:, :1, :1],
                                                     offset.shape), atol=1e-6)
  shifts = offset[:, 0, 0].astype(np.float64)
  target = std ** 2 * COV
  np.testing.assert_allclose(np.cov(shifts, rowvar=False), target,
                             atol=0.08 * np.abs(target).max())
  assert np.all(np.abs(shifts.mean(0)) < 4 * np.sqrt(np.diag(target) / n))


def test_per_host_shards_are_disjoint_and_cover(examples):
  n = len(examples["frame"])
  seen = []
  for pi in range(2):
    ds = ip.train_dataset(as_ds(examples), batch_size=8, rgb_cov=COV, seed=0,
                          num_epochs=1, process_index=pi, process_count=2,
                          extra_keys=("frame",))
    got = batches(ds)
    assert len(got) == 3 and all(len(b["frame"]) == 4 for b in got)
    seen.append(np.concatenate([b["frame"] for b in got]))
    # The indexed batch_fn: one epoch of this host's shard in 3 steps.
    fn = ip.batch_fn_from_dataset(as_ds(examples), batch_size=8, rgb_cov=COV,
                                  seed=0, process_index=pi, process_count=2,
                                  extra_keys=("frame",))
    frames = np.concatenate([fn(s)["frame"] for s in range(3)])
    np.testing.assert_array_equal(np.sort(frames), np.sort(seen[-1]))
  assert not set(seen[0]) & set(seen[1])
  assert sorted(np.concatenate(seen)) == list(range(n))
  # Eval: 21 examples over 2 hosts, batch 4 per host: same batch count, each
  # example exactly once.
  ex = make_examples(21)
  got = [batches(ip.eval_dataset(as_ds(ex), batch_size=8, process_index=pi,
                                 process_count=2, label_keys=("camera",)))
         for pi in range(2)]
  assert len(got[0]) == len(got[1]) == 3
  frames = [f for host in got for b in host
            for f, m in zip(b["pose"][:, 0, 0], b["mask"]) if m]
  assert sorted(frames) == sorted(ex["pose"][:, 0, 0])


def test_same_seed_same_batches(examples):
  def run(seed):
    ds = ip.train_dataset(as_ds(examples), batch_size=8, rgb_cov=COV,
                          seed=seed, shuffle_buffer=8, process_index=0,
                          process_count=1, extra_keys=("frame",))
    return batches(ds, 5)

  a, b, c = run(0), run(0), run(1)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["frame"], y["frame"])
  assert not all(np.array_equal(x["image"], z["image"]) for x, z in zip(a, c))
  # start_step=k gives batch k of the run from 0.
  ds = ip.train_dataset(as_ds(examples), batch_size=8, rgb_cov=COV, seed=0,
                        shuffle_buffer=8, process_index=0, process_count=1,
                        extra_keys=("frame",), start_step=3)
  np.testing.assert_array_equal(batches(ds, 1)[0]["image"], a[3]["image"])


@pytest.mark.parametrize("in_memory", [True, False])
def test_batch_fn_restart_is_bit_identical(examples, in_memory):
  kwargs = dict(batch_size=8, rgb_cov=COV, seed=5, process_index=0,
                process_count=1, in_memory=in_memory, shuffle_buffer=16,
                extra_keys=("frame",))
  fn = ip.batch_fn_from_dataset(as_ds(examples), **kwargs)
  straight = [fn(s) for s in range(7)]
  restarted = ip.batch_fn_from_dataset(as_ds(examples), **kwargs)
  for s in (4, 5, 6, 2):  # resume at 4, then a jump back
    got = restarted(s)
    assert set(got) == {"image", "pose", "frame"}
    np.testing.assert_array_equal(got["image"], straight[s]["image"])
    np.testing.assert_array_equal(got["pose"], straight[s]["pose"])
  if in_memory:
    # Every epoch (3 steps of 8) visits each example once, reshuffled.
    epochs = [np.concatenate([straight[s]["frame"] for s in range(e, e + 3)])
              for e in (0, 3)]
    assert all(sorted(e) == list(range(24)) for e in epochs)
    assert not np.array_equal(epochs[0], epochs[1])


def test_device_batches_shards_over_data_axis():
  mesh = sharding.make_mesh(jax.devices()[:8])
  ex = make_examples(20)
  ds = ip.eval_dataset(as_ds(ex), batch_size=16, process_index=0,
                       process_count=1)
  host = batches(ds)
  got = list(ip.device_batches(ds, mesh))
  assert len(got) == 2
  for h, d in zip(host, got):
    for k in ("image", "pose", "mask"):
      assert isinstance(d[k], jax.Array)
      assert d[k].sharding.is_equivalent_to(NamedSharding(mesh, P("data")),
                                            d[k].ndim)
      assert len(d[k].addressable_shards) == 8
      np.testing.assert_array_equal(np.asarray(d[k]), h[k])
    assert isinstance(d["action"], np.ndarray) and d["action"].dtype.kind == "U"
    assert list(d["action"]) == [a.decode() for a in h["action"]]
  # host_keys keeps a numeric field on the host.
  d = next(ip.device_batches(ds, mesh, host_keys=("mask",)))
  assert isinstance(d["mask"], np.ndarray)


def test_rgb_stats_from_images():
  images = np.random.default_rng(0).integers(0, 256, (6, 9, 7, 3), np.uint8)
  mean, cov = ip.rgb_stats_from_images(images)
  pixels = images.reshape(-1, 3) / 255.0
  np.testing.assert_allclose(mean, pixels.mean(0), rtol=1e-12)
  np.testing.assert_allclose(cov, np.cov(pixels, rowvar=False), rtol=1e-10)
  mean2, cov2 = ip.rgb_stats_from_images(iter([images[:2], images[2:]]))
  np.testing.assert_allclose(mean2, mean, rtol=1e-12)
  np.testing.assert_allclose(cov2, cov, rtol=1e-10)


def test_builder_wrappers(tmp_path, examples):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=(128, 128, 3)),
      "pose": tfds.features.Tensor(shape=(17, 3), dtype=np.float32),
      "action": tfds.features.Text(),
      "subject": tfds.features.Text(),
      "camera": np.int32,
      "frame": np.int32,
  })
  keys = ("image", "pose", "action", "subject", "camera", "frame")
  small = {k: examples[k][:12] for k in keys}
  builder = tfds.dataset_builders.store_as_tfds_dataset(
      name="tiny_h36m", version="1.0.0", features=features,
      split_datasets={"train": as_ds(small), "test": as_ds(small)},
      data_dir=str(tmp_path), disable_shuffling=True)
  mean, cov = ip.rgb_stats_from_images(small["image"])
  import json  # pylint: disable=g-import-not-at-top
  with open(f"{builder.data_dir}/rgb_stats.json", "w") as f:
    json.dump({"mean": mean.tolist(), "cov": cov.tolist()}, f)
  np.testing.assert_allclose(ip.read_rgb_mean_cov(builder.data_dir)[1], cov)
  train = ip.train_dataset_from_builder(builder, batch_size=4, seed=0,
                                        process_index=1, process_count=2,
                                        num_epochs=1, extra_keys=("frame",))
  frames = np.concatenate([b["frame"] for b in batches(train)])
  assert sorted(frames) == list(range(6, 12))  # host 1's half
  fn = ip.batch_fn_from_builder(builder, batch_size=4, seed=0,
                                process_index=0, process_count=1)
  assert fn(2)["image"].shape == (4, 112, 112, 3)
  evals = batches(ip.eval_dataset_from_builder(builder, batch_size=8,
                                               process_index=0,
                                               process_count=1))
  assert [int(m.sum()) for m in (b["mask"] for b in evals)] == [8, 4]


def test_bad_inputs(examples):
  ds = as_ds(examples)
  common = dict(rgb_cov=COV, seed=0)
  with pytest.raises(ValueError, match="not divisible by the 4 processes"):
    ip.train_dataset(ds, batch_size=10, process_index=0, process_count=4,
                     **common)
  with pytest.raises(ValueError, match="crop_size 130 does not fit"):
    ip.train_dataset(ds, batch_size=8, crop_size=130, process_count=1,
                     process_index=0, **common)
  with pytest.raises(ValueError, match="crop_size 130 does not fit"):
    ip.eval_dataset(ds, batch_size=8, crop_size=130, process_count=1,
                    process_index=0)
  float_images = dict(examples, image=examples["image"].astype(np.float32))
  with pytest.raises(ValueError, match="must be uint8"):
    ip.train_dataset(as_ds(float_images), batch_size=8, process_count=1,
                     process_index=0, **common)
  gray = dict(examples, image=examples["image"][..., 0])
  with pytest.raises(ValueError, match=r"uint8 \[H, W, 3\]"):
    ip.eval_dataset(as_ds(gray), batch_size=8, process_count=1,
                    process_index=0)
  with pytest.raises(ValueError, match=r"\[3, 3\]"):
    ip.train_dataset(ds, batch_size=8, rgb_cov=np.eye(2), seed=0,
                     process_count=1, process_index=0)
  with pytest.raises(ValueError, match="positive semi-definite"):
    ip.train_dataset(ds, batch_size=8, rgb_cov=np.diag([0.1, -0.1, 0.1]),
                     seed=0, process_count=1, process_index=0)
  with pytest.raises(ValueError, match="symmetric"):
    ip.batch_fn_from_dataset(ds, batch_size=8, rgb_cov=np.triu(COV), seed=0,
                             process_count=1, process_index=0)
  with pytest.raises(ValueError, match="process_index"):
    ip.train_dataset(ds, batch_size=8, process_index=2, process_count=2,
                     **common)
  with pytest.raises(ValueError, match="lack the keys"):
    ip.eval_dataset(as_ds({"image": examples["image"]}), batch_size=8,
                    process_count=1, process_index=0)
  with pytest.raises(ValueError, match="must be uint8"):
    ip.rgb_stats_from_images(examples["image"] / 255.0)
  mesh = sharding.make_mesh(jax.devices()[:8])
  eval_ds = ip.eval_dataset(ds, batch_size=12, process_count=1,
                            process_index=0)
  with pytest.raises(ValueError, match="not divisible by the 8 devices"):
    next(ip.device_batches(eval_ds, mesh))
