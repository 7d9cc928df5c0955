"""Input-pipeline throughput next to the training step's consumption rate.

  python benchmarks/bench_input_pipeline.py [--batch 128] [--num_images 1024]
      [--batches 20] [--tiny] [--tfds_dir DIR] [--skip_step]

Prints one table of images/s, each pipeline row with its ratio to the rate at
which one stage-2 max-margin training step (Algorithm 1: C=2000 candidates,
35-trial line search, frozen convs; as in benchmarks/bench_core.py) consumes
images on this machine; a ratio above 1 means the pipeline keeps up.

Pipelines, all from ``data_pipelines/tfds/input_pipeline.py`` on
``--num_images`` synthetic uint8 images held in memory (128x128 cropped to 112, or the tiny
config's 36 -> 32 with ``--tiny``):
  * ``train_dataset``: streaming shuffle + random crop + PCA noise + batch;
  * ``batch_fn_from_dataset`` (in memory, index-based): the trainer's
    ``batch_fn(step)``, called for consecutive steps;
  * ``eval_dataset``: centre crop, padded batches;
  * with ``--tfds_dir``: ``train_dataset_from_builder`` reading TFRecords of a
    prepared TFDS dataset version directory (e.g. ``.../structnet_h36m/1.0.0``);
    an empty or missing directory gets a synthetic TFRecord dataset written
    into it first.
The step row uses the default network (``--tiny``: experiments/configs/tiny.py)
at ``--batch`` on ``jax.devices()[0]``; TensorFlow sees no accelerator.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402

import bench_core  # noqa: E402  (benchmarks/bench_core.py)
from data_pipelines.tfds import input_pipeline as ip  # noqa: E402
from experiments.configs import default as default_config  # noqa: E402
from experiments.configs import tiny as tiny_config  # noqa: E402


def synthetic_examples(n: int, size: int,
                       seed: int = 0) -> dict[str, np.ndarray]:
  """``n`` examples shaped like ``structnet_h36m``'s (smooth-ish images)."""
  rng = np.random.default_rng(seed)
  cells = -(-size // 8)
  base = rng.integers(0, 256, (n, cells, cells, 3), dtype=np.uint8)
  images = np.repeat(np.repeat(base, 8, axis=1), 8, axis=2)[:, :size, :size]
  noise = rng.integers(0, 16, images.shape, dtype=np.uint8)
  return {
      "image": (images // 2 + noise).astype(np.uint8),
      "pose": rng.normal(scale=300, size=(n, 17, 3)).astype(np.float32),
      "action": np.array([("Walking", "Eating")[i % 2] for i in range(n)]),
      "subject": np.array(["S1"] * n),
      "camera": np.zeros(n, np.int32),
      "frame": np.arange(n, dtype=np.int32),
  }


def images_per_second(iterator, batch: int, num_batches: int,
                      warmup: int = 3) -> float:
  """Rate at which ``iterator`` yields numpy batches of ``batch`` images."""
  for _ in range(warmup):
    next(iterator)
  t = time.perf_counter()
  for _ in range(num_batches):
    next(iterator)
  return num_batches * batch / (time.perf_counter() - t)


def step_rate(config, batch: int, repeats: int) -> float:
  """Images/s of one jitted stage-2 max-margin step (median of ``repeats``)."""
  return batch / bench_core.jax_stage2_step(batch, repeats, config)


def tfds_builder(path: str, examples: dict[str, np.ndarray], size: int):
  """The TFDS builder of version dir ``path``; writes a synthetic one there
  first when it holds no dataset."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if os.path.exists(os.path.join(path, "dataset_info.json")):
    return tfds.builder_from_directory(path)
  root = os.path.dirname(os.path.dirname(os.path.abspath(path)))
  name = os.path.basename(os.path.dirname(os.path.abspath(path)))
  version = os.path.basename(os.path.abspath(path))
  features = tfds.features.FeaturesDict({
      "image": tfds.features.Image(shape=(size, size, 3)),
      "pose": tfds.features.Tensor(shape=(17, 3), dtype=np.float32),
      "action": tfds.features.Text(), "subject": tfds.features.Text(),
      "camera": np.int32, "frame": np.int32})
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ds = tf.data.Dataset.from_tensor_slices(examples)
  builder = tfds.dataset_builders.store_as_tfds_dataset(
      name=name, version=version, features=features,
      split_datasets={"train": ds}, data_dir=root)
  mean, cov = ip.rgb_stats_from_images(examples["image"])
  with open(os.path.join(builder.data_dir, ip.RGB_STATS_FILENAME), "w") as f:
    json.dump({"mean": mean.tolist(), "cov": cov.tolist()}, f)
  return tfds.builder_from_directory(builder.data_dir)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--batch", type=int, default=128, help="global batch size")
  p.add_argument("--num_images", type=int, default=1024,
                 help="synthetic in-memory examples")
  p.add_argument("--batches", type=int, default=20, help="batches timed")
  p.add_argument("--repeats", type=int, default=3, help="training steps timed")
  p.add_argument("--tiny", action="store_true",
                 help="tiny config (36 px images, 32 px crops, small net)")
  p.add_argument("--tfds_dir", default=None,
                 help="TFDS dataset version dir (written if empty)")
  p.add_argument("--skip_step", action="store_true",
                 help="pipelines only, no training step")
  args = p.parse_args()
  config = (tiny_config if args.tiny else default_config).get_config()
  size, crop = config.data.image_size, config.model.image_size
  print(f"machine: {platform.machine()} {os.cpu_count()} cores; jax "
        f"{jax.__version__} on {jax.devices()[0].platform}; images {size}px "
        f"-> {crop}px crops, batch {args.batch}, "
        f"{'tiny' if args.tiny else 'default'} network")

  examples = synthetic_examples(args.num_images, size)
  _, cov = ip.rgb_stats_from_images(examples["image"])
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  ds = tf.data.Dataset.from_tensor_slices(examples)
  common = dict(batch_size=args.batch, crop_size=crop, rgb_cov=cov, seed=0,
                process_index=0, process_count=1)
  rows = []
  train_it = ip.train_dataset(ds, shuffle_buffer=args.num_images,
                              **common).as_numpy_iterator()
  rows.append(("train_dataset (in-memory source)",
               images_per_second(train_it, args.batch, args.batches)))
  fn = ip.batch_fn_from_dataset(ds, **common)
  steps = iter(fn(s) for s in range(10**9))
  rows.append(("batch_fn_from_dataset (indexed, in memory)",
               images_per_second(steps, args.batch, args.batches)))
  eval_it = ip.eval_dataset(ds.repeat(), batch_size=args.batch,
                            crop_size=crop, process_index=0,
                            process_count=1).as_numpy_iterator()
  rows.append(("eval_dataset (centre crop)",
               images_per_second(eval_it, args.batch, args.batches)))
  if args.tfds_dir:
    builder = tfds_builder(args.tfds_dir, examples, size)
    it = ip.train_dataset_from_builder(
        builder, batch_size=args.batch, crop_size=crop, seed=0,
        process_index=0, process_count=1,
        shuffle_buffer=args.num_images).as_numpy_iterator()
    rows.append((f"train_dataset_from_builder (TFRecord, {builder.name})",
                 images_per_second(it, args.batch, args.batches)))

  consume = None
  if not args.skip_step:
    consume = step_rate(config, args.batch, args.repeats)
  width = max(len(r[0]) for r in rows + [("stage-2 max-margin step", 0)])
  print(f"{'what':<{width}}  {'images/s':>10}  {'x step rate':>11}")
  step_name = "stage-2 max-margin step (consumer)"
  if consume is not None:
    print(f"{step_name:<{width}}  {consume:10.1f}  {1.0:11.2f}")
  for name, rate in rows:
    ratio = f"{rate / consume:11.2f}" if consume else f"{'n/a':>11}"
    print(f"{name:<{width}}  {rate:10.1f}  {ratio}")


if __name__ == "__main__":
  main()
