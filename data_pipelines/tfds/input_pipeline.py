"""tf.data input pipeline: training and evaluation batches for the JAX loop.

TensorFlow is only the input pipeline here: it is imported lazily inside the
functions (the core library imports without it) and every pipeline hides all
GPUs/TPUs from TF at construction, so JAX owns the accelerators.

Examples are dicts as decoded by TFDS from the ``structnet_h36m`` builder::

  {"image": uint8 [128, 128, 3], "pose": float32 [17, 3] mm,
   "pose_2d": float32 [17, 2], "subject": string, "action": string,
   "subaction": int32, "camera": int32, "camera_id": string, "frame": int32}

Training augmentation is the one of ``data_pipelines/sources/augment.py`` (paper
section 5.1), on the host: a random ``crop x crop`` window of the stored image,
conversion to float32 in [0, 1], and PCA colour noise ``V (alpha *
sqrt(lambda))`` per image, ``alpha ~ N(0, std^2)`` per eigenvector, with
``(lambda, V)`` the eigen-decomposition of the training RGB covariance (from
the dataset's ``rgb_stats.json``). Images are not mean-subtracted and not
clipped after the noise, as in ``augment.py``.

Entry points:
  * ``train_dataset``: streaming, seeded ``tf.data.Dataset`` of training
    batches (per-host shard, shuffle, repeat, augment, batch, prefetch).
  * ``eval_dataset``: centre crop, fixed order, every example exactly once;
    the last batch is padded and ``"mask"`` marks the real examples.
  * ``device_batches``: numpy batches -> global ``jax.Array`` s sharded over
    the mesh's ``data`` axis, prefetched to the devices.
  * ``batch_fn_from_dataset``: the trainer's ``batch_fn(step)``, a pure
    function of the step (see its docstring for the design).
  * ``rgb_stats_from_images`` / ``read_rgb_mean_cov``: the RGB statistics
    (``tfds_builder.load_rgb_stats`` reads a built dataset's whole file).
  * ``*_from_builder``: the same, reading a TFDS builder with per-host splits.

Randomness never comes from stateful TF ops: example ``g`` of this host's
stream is augmented with stateless ops seeded by ``(seed, process_index, g)``,
and the example order comes from a seeded shuffle (streaming) or a stateless
permutation of indices per epoch (indexed), so the batches are a function of
the seed alone.
"""

from __future__ import annotations

import collections
import inspect
import itertools
import json
import os
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from absl import logging
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from data_pipelines import checks
from data_pipelines.sources import augment
from structnet_jax import sharding as sharding_lib

NUM_JOINTS = 17
# The std of the per-image PCA coefficients alpha; the default of augment.py.
DEFAULT_PCA_NOISE_STD = float(
    inspect.signature(augment.pca_colour_noise).parameters["sigma"].default)
EVAL_LABEL_KEYS = ("action", "subject", "camera")
RGB_STATS_FILENAME = "rgb_stats.json"

# Salts so the streams of different purposes never share a stateless seed.
_SALT_AUGMENT = 0x5354_4155  # "STAU"
_SALT_PERMUTE = 0x5354_5045  # "STPE"


# ----------------------------------------------------------------------------
# TensorFlow, lazily, without accelerators.
# ----------------------------------------------------------------------------


def _tf():
  """Imports TensorFlow and hides every GPU/TPU from it (JAX owns them)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  for kind in ("GPU", "TPU"):
    try:
      tf.config.set_visible_devices([], kind)
    except (RuntimeError, ValueError) as e:
      # RuntimeError: TF's runtime already started with the devices visible.
      try:
        visible = tf.config.get_visible_devices(kind)
      except (RuntimeError, ValueError):
        visible = []
      if visible:
        logging.warning(
            "TensorFlow already initialised and sees %s devices (%s); it may "
            "take memory JAX needs. Build the input pipeline before running "
            "any other TF code.", kind, e)
  return tf


# ----------------------------------------------------------------------------
# Argument checks (host side, clear errors).
# ----------------------------------------------------------------------------


def _processes(process_index, process_count) -> tuple[int, int]:
  pi = jax.process_index() if process_index is None else process_index
  pc = jax.process_count() if process_count is None else process_count
  pc = checks.int_at_least("process_count", pc, 1)
  pi = checks.int_at_least("process_index", pi, 0)
  if pi >= pc:
    raise ValueError(f"need 0 <= process_index < process_count, got "
                     f"process_index={pi}, process_count={pc}.")
  return pi, pc


def _local_batch(batch_size, process_count: int) -> int:
  b = checks.int_at_least("batch_size", batch_size, 1,
                          " (the global batch size)")
  if b % process_count:
    raise ValueError(
        f"the global batch_size {b} is not divisible by the {process_count} "
        f"processes (hosts); use a multiple of {process_count}.")
  return b // process_count


def _check_spec(ds, crop_size: int,
                keys: Sequence[str] = ()) -> tuple[int, int]:
  """Checks ``ds``'s example structure; returns the stored image ``(H, W)``."""
  tf = _tf()
  if not isinstance(ds, tf.data.Dataset):
    raise ValueError(f"expected a tf.data.Dataset of example dicts, got "
                     f"{type(ds).__name__}.")
  spec = ds.element_spec
  if not isinstance(spec, Mapping):
    raise ValueError("dataset elements must be dicts with 'image' and 'pose' "
                     f"(as decoded by tfds), got {spec}.")
  missing = [k for k in ("image", "pose", *keys) if k not in spec]
  if missing:
    raise ValueError(f"dataset elements lack the keys {missing} (they have "
                     f"{sorted(spec)}); pass a dataset of decoded examples or "
                     "drop those keys from the request.")
  image, pose = spec["image"], spec["pose"]
  shape = image.shape
  if (image.dtype != tf.uint8 or shape.rank != 3 or shape[-1] != 3 or
      shape[0] is None or shape[1] is None):
    raise ValueError(
        f"'image' must be uint8 [H, W, 3] with a static size (one example, "
        f"not a batch; decoded by tfds), got {image.dtype.name} {shape}; "
        "unbatch the dataset or decode the images to uint8.")
  if pose.shape != (NUM_JOINTS, 3) or not pose.dtype.is_floating:
    raise ValueError(f"'pose' must be float [{NUM_JOINTS}, 3] mm per example, "
                     f"got {pose.dtype.name} {pose.shape}.")
  h, w = int(shape[0]), int(shape[1])
  c = checks.int_at_least("crop_size", crop_size, 1)
  if c > min(h, w):
    raise ValueError(f"crop_size {c} does not fit the stored {h}x{w} images; "
                     f"use 1 <= crop_size <= {min(h, w)} (the network input is "
                     "config.model.image_size).")
  return h, w


def pca_noise_basis(rgb_cov) -> tuple[np.ndarray, np.ndarray]:
  """Eigenvalues ``[3]`` and eigenvectors ``[3, 3]`` (columns) of the RGB
  covariance, after checking it is a symmetric positive semi-definite 3x3."""
  cov = np.asarray(rgb_cov, np.float64)
  if cov.shape != (3, 3) or not np.all(np.isfinite(cov)):
    raise ValueError(f"rgb_cov must be a finite [3, 3] RGB covariance (of "
                     f"pixels in [0, 1]), got shape {cov.shape}.")
  scale = max(float(np.abs(cov).max()), 1e-12)
  if not np.allclose(cov, cov.T, atol=1e-6 * scale):
    raise ValueError(f"rgb_cov must be symmetric, got {cov.tolist()}; use the "
                     "'cov' of rgb_stats.json (rgb_stats_from_images).")
  if np.linalg.eigvalsh((cov + cov.T) / 2).min() < -1e-6 * scale:
    raise ValueError(f"rgb_cov must be positive semi-definite, got eigenvalues "
                     f"{np.linalg.eigvalsh((cov + cov.T) / 2).tolist()}; use "
                     "the 'cov' of rgb_stats.json (rgb_stats_from_images).")
  return augment.pca_basis(cov)


# ----------------------------------------------------------------------------
# Per-example maps.
# ----------------------------------------------------------------------------


def _element_seed(tf, seed: int, process_index: int, position):
  """Stateless seed ``[2]`` of stream position ``position`` on this host."""
  fold = tf.random.experimental.stateless_fold_in
  base = tf.constant([seed, _SALT_AUGMENT], tf.int64)
  return fold(fold(base, process_index, alg="philox"),
              tf.cast(position, tf.int64), alg="philox")


def _train_example(tf, example, elem_seed, crop: int, eigvals, eigvecs,
                   std: float, keys: Sequence[str]):
  """Random crop, [0, 1] float32, PCA colour noise of one example."""
  s_y, s_x, s_noise = tf.unstack(
      tf.random.experimental.stateless_split(elem_seed, 3, alg="philox"))
  image = example["image"]
  h, w = image.shape[0], image.shape[1]
  y = tf.random.stateless_uniform([], s_y, 0, h - crop + 1, tf.int32,
                                  alg="philox")
  x = tf.random.stateless_uniform([], s_x, 0, w - crop + 1, tf.int32,
                                  alg="philox")
  image = tf.slice(image, tf.stack([y, x, 0]), [crop, crop, 3])
  image = tf.cast(image, tf.float32) / 255.0
  if std > 0:
    alpha = std * tf.random.stateless_normal([3], s_noise, alg="philox")
    shift = tf.linalg.matvec(tf.constant(eigvecs),
                             alpha * tf.sqrt(tf.constant(eigvals)))
    image = image + shift  # broadcast over [crop, crop, 3]
  out = {"image": image, "pose": tf.cast(example["pose"], tf.float32)}
  out.update({k: example[k] for k in keys})
  if "pose_2d" in out:  # into the crop's pixel frame
    out["pose_2d"] = _shift_2d(tf, out["pose_2d"], x, y)
  return out


def _shift_2d(tf, pose_2d, x0, y0):
  """``pose_2d [..., 17, 2]`` (x, y) pixels of the stored image -> pixels of
  the crop whose top-left corner is ``(x0, y0)``."""
  return tf.cast(pose_2d, tf.float32) - tf.cast(tf.stack([x0, y0]), tf.float32)


def _numeric_extras(ds, extra_keys: Sequence[str]) -> tuple[str, ...]:
  spec = ds.element_spec
  for k in extra_keys:
    if k in ("image", "pose"):
      continue
    if k not in spec:
      raise ValueError(f"extra key {k!r} is not in the examples "
                       f"({sorted(spec)}).")
    if spec[k].dtype.name == "string":
      raise ValueError(f"extra key {k!r} is a string; training batches carry "
                       "only numeric fields (they go to the devices).")
  return tuple(k for k in extra_keys if k not in ("image", "pose"))


def _options(tf, ds):
  opts = tf.data.Options()
  opts.deterministic = True
  opts.experimental_optimization.map_parallelization = True
  return ds.with_options(opts)


# ----------------------------------------------------------------------------
# Training and evaluation datasets.
# ----------------------------------------------------------------------------


def _train_setup(ds, batch_size, crop_size, rgb_cov, pca_noise_std, seed,
                 process_index, process_count, extra_keys):
  """Checks and derives the settings shared by the two training pipelines:
  ``(process_index, process_count, local batch, PCA eigvals [3], eigvecs
  [3, 3], noise std, seed, numeric extra keys)``."""
  _check_spec(ds, crop_size)
  pi, pc = _processes(process_index, process_count)
  local = _local_batch(batch_size, pc)
  eigvals, eigvecs = pca_noise_basis(rgb_cov)
  std = checks.number_at_least("pca_noise_std", pca_noise_std, 0)
  seed = checks.int_at_least("seed", seed, 0)
  return (pi, pc, local, eigvals, eigvecs, std, seed,
          _numeric_extras(ds, extra_keys))


def train_dataset(ds, *, batch_size: int, crop_size: int = 112, rgb_cov,
                  pca_noise_std: float = DEFAULT_PCA_NOISE_STD, seed: int,
                  shuffle_buffer: int = 10_000, num_epochs: int | None = None,
                  process_index: int | None = None,
                  process_count: int | None = None, shard_input: bool = True,
                  start_step: int = 0, extra_keys: Sequence[str] = ()):
  """Streaming training batches: shard, shuffle, repeat, augment, batch.

  Order: this host's shard (``ds.shard(process_count, process_index)``) ->
  seeded shuffle (reshuffled every epoch) -> repeat -> random ``crop x crop``
  window, float32 [0, 1], PCA colour noise (stateless, seeded by ``(seed,
  process_index, position in the stream)``) -> batch (drop remainder) ->
  prefetch. A new iterator replays the same batches for the same arguments.

  Args:
    ds: ``tf.data.Dataset`` of example dicts (module docstring); at least
      ``image`` uint8 ``[H, W, 3]`` and ``pose`` ``[17, 3]`` mm.
    batch_size: GLOBAL batch size; each host yields ``batch_size /
      process_count`` examples per batch.
    crop_size: side of the random window (the network input), <= H, W.
    rgb_cov: ``[3, 3]`` covariance of the training RGB in [0, 1]
      (``rgb_stats.json``'s ``"cov"``); eigen-decomposed once here.
    pca_noise_std: std of the PCA coefficients alpha (0 turns the noise off).
    seed: int seed of the shuffle and the augmentation.
    shuffle_buffer: examples in the shuffle buffer.
    num_epochs: passes over the data (None: forever).
    process_index, process_count: this host and the number of hosts (default:
      JAX's).
    shard_input: False when ``ds`` is already this host's share (e.g. a tfds
      split from ``tfds.split_for_jax_process``).
    start_step: skip this many batches (before augmentation, so cheaply);
      batch ``k`` of the result is batch ``start_step + k`` of a run from 0.
    extra_keys: numeric example fields to keep besides image and pose (e.g.
      ``("frame", "camera")``); ``"pose_2d"`` is moved into the crop's pixel
      frame (minus the crop's top-left corner), the rest kept as they are.

  Returns:
    ``tf.data.Dataset`` of ``{"image": float32 [b, crop, crop, 3], "pose":
    float32 [b, 17, 3] mm, **extra}`` with ``b = batch_size / process_count``.
  """
  tf = _tf()
  (pi, pc, local, eigvals, eigvecs, std, seed,
   extras) = _train_setup(ds, batch_size, crop_size, rgb_cov, pca_noise_std,
                          seed, process_index, process_count, extra_keys)
  shuffle_buffer = checks.int_at_least("shuffle_buffer", shuffle_buffer, 1)
  if num_epochs is not None:
    num_epochs = checks.int_at_least("num_epochs", num_epochs, 1,
                                     " (or None: forever)")
  start = checks.int_at_least("start_step", start_step, 0)
  crop = int(crop_size)  # checked by _train_setup

  if shard_input and pc > 1:
    ds = ds.shard(pc, pi)
  keep = ("image", "pose", *extras)
  ds = ds.map(lambda ex: {k: ex[k] for k in keep})
  ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  ds = ds.repeat(num_epochs)
  if start:
    ds = ds.skip(start * local)
  ds = ds.enumerate(start=start * local)
  ds = ds.map(
      lambda g, ex: _train_example(tf, ex, _element_seed(tf, seed, pi, g),
                                   crop, eigvals, eigvecs, std, extras),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(local, drop_remainder=True)
  return _options(tf, ds.prefetch(tf.data.AUTOTUNE))


def _count(ds) -> int:
  tf = _tf()
  n = int(ds.cardinality())
  if n >= 0:
    return n
  if n == tf.data.INFINITE_CARDINALITY:
    raise ValueError("the evaluation dataset is infinite (repeated?); pass a "
                     "finite one.")
  return int(ds.map(lambda ex: 0).reduce(np.int64(0), lambda c, _: c + 1))


def eval_dataset(ds, *, batch_size: int, crop_size: int = 112,
                 label_keys: Sequence[str] = EVAL_LABEL_KEYS,
                 process_index: int | None = None,
                 process_count: int | None = None, shard_input: bool = True,
                 num_examples: int | None = None):
  """Evaluation batches: centre crop, fixed order, every example once.

  The last batch is padded to full size with zero images/poses and empty
  labels; ``"mask"`` is True for real examples. With several hosts, each takes
  its shard and all hosts yield the same number of batches (padding the
  shorter shards), so sharded eval steps stay in lockstep.

  Args:
    ds: ``tf.data.Dataset`` of example dicts (module docstring), finite.
    batch_size: GLOBAL batch size (``batch_size / process_count`` per host).
    crop_size: side of the central window, <= H, W.
    label_keys: example fields kept as they are (strings stay strings);
      ``"pose_2d"`` is moved into the crop's pixel frame.
    process_index, process_count: this host and the number of hosts.
    shard_input: False when ``ds`` is already this host's share; then
      ``num_examples`` (the total over all hosts) is needed for several hosts.
    num_examples: examples in the whole split (default: counted from ``ds``).

  Returns:
    ``tf.data.Dataset`` of ``{"image": float32 [b, crop, crop, 3] in [0, 1],
    "pose": float32 [b, 17, 3] mm, "mask": bool [b], **labels}``.
  """
  tf = _tf()
  h, w = _check_spec(ds, crop_size, label_keys)
  pi, pc = _processes(process_index, process_count)
  local = _local_batch(batch_size, pc)
  crop = int(crop_size)  # checked by _check_spec
  y0, x0 = (h - crop) // 2, (w - crop) // 2
  labels = tuple(k for k in label_keys if k not in ("image", "pose", "mask"))

  steps = None
  if pc > 1:
    if num_examples is None:
      if not shard_input:
        raise ValueError(
            "with several hosts and shard_input=False, pass num_examples (the "
            "size of the whole split) so every host yields as many batches.")
      num_examples = _count(ds)
    per_host = -(-checks.int_at_least("num_examples", num_examples, 0) // pc)
    steps = max(1, -(-per_host // local))
    if shard_input:
      ds = ds.shard(pc, pi)

  def prepare(ex):
    image = tf.cast(ex["image"][y0:y0 + crop, x0:x0 + crop], tf.float32) / 255.0
    out = {"image": image, "pose": tf.cast(ex["pose"], tf.float32),
           "mask": tf.constant(True)}
    out.update({k: ex[k] for k in labels})
    if "pose_2d" in out:  # into the crop's pixel frame
      out["pose_2d"] = _shift_2d(tf, out["pose_2d"], x0, y0)
    return out

  ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  pad = tf.data.Dataset.from_tensors(tf.nest.map_structure(
      lambda s: tf.zeros(s.shape, s.dtype), ds.element_spec))
  if steps is None:
    # n = q b + r real examples then b - 1 pads: q full batches, one padded
    # batch when r > 0, and the leftover pads (< b) are dropped.
    ds = ds.concatenate(pad.repeat(local - 1))
  else:
    ds = ds.concatenate(pad.repeat()).take(steps * local)
  ds = ds.batch(local, drop_remainder=True)
  return _options(tf, ds.prefetch(tf.data.AUTOTUNE))


# ----------------------------------------------------------------------------
# Device placement.
# ----------------------------------------------------------------------------


def _host_array(x) -> np.ndarray:
  """numpy array; byte strings decoded to ``str``."""
  x = np.asarray(x)
  if x.dtype.kind in "OS":
    flat = [s.decode("utf-8") if isinstance(s, bytes) else str(s)
            for s in x.ravel()]
    return np.array(flat, dtype=str).reshape(x.shape)
  return x


def _is_host_field(key: str, x: np.ndarray, host_keys) -> bool:
  return key in host_keys or x.dtype.kind in "OSU"


def device_batches(batches, mesh: Mesh, *, prefetch: int = 2,
                   host_keys: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
  """Places each batch on the mesh, ``prefetch`` batches ahead.

  Every numeric field of this host's batch ``[b, ...]`` becomes one GLOBAL
  ``jax.Array`` ``[b * process_count, ...]`` sharded over the mesh's ``data``
  axis (``jax.make_array_from_process_local_data``); string fields (and
  ``host_keys``) stay numpy on the host, strings decoded to ``str``. Transfers
  are started ``prefetch`` batches ahead (the idea of flax's
  ``jax_utils.prefetch_to_device``).

  Args:
    batches: a ``tf.data.Dataset`` of batches (``train_dataset`` /
      ``eval_dataset``) or any iterable of dicts of arrays.
    mesh: mesh with a ``data`` axis (``structnet_jax.sharding.make_mesh``).
    prefetch: batches placed ahead of the consumer (>= 1).
    host_keys: numeric fields to keep on the host too (e.g. ``"mask"``).

  Yields:
    dicts like the input batches, numeric fields as sharded ``jax.Array``.
  """
  if sharding_lib.DATA_AXIS not in mesh.shape:
    raise ValueError(f"the mesh needs a '{sharding_lib.DATA_AXIS}' axis, got "
                     f"axes {tuple(mesh.shape)}; use sharding.make_mesh().")
  checks.int_at_least("prefetch", prefetch, 1)
  sharding = NamedSharding(mesh, P(sharding_lib.DATA_AXIS))
  host_keys = frozenset(host_keys)
  if hasattr(batches, "as_numpy_iterator"):
    iterator = batches.as_numpy_iterator()
  else:
    iterator = iter(batches)

  def place(batch):
    out, sizes = {}, set()
    for k, v in batch.items():
      v = np.asarray(v)
      if _is_host_field(k, v, host_keys):
        out[k] = _host_array(v)
        continue
      if v.ndim == 0:
        raise ValueError(f"batch field {k!r} is a scalar; every field needs "
                         "a leading batch axis.")
      sizes.add(v.shape[0])
      sharding_lib.check_batch_size(v.shape[0] * jax.process_count(), mesh)
      out[k] = jax.make_array_from_process_local_data(sharding, v)
    if len(sizes) > 1:
      raise ValueError(f"batch fields have different leading sizes {sizes}.")
    return out

  queue = collections.deque()

  def enqueue(n):
    for batch in itertools.islice(iterator, n):
      queue.append(place(batch))

  enqueue(prefetch)
  while queue:
    yield queue.popleft()
    enqueue(1)


# ----------------------------------------------------------------------------
# batch_fn(step) for the trainer.
# ----------------------------------------------------------------------------


class StepBatches:
  """``batch_fn(step) -> host batch``, a pure function of ``step``.

  Wraps ``make_dataset(start_step)``, a deterministic dataset whose batch
  ``k`` is global step ``start_step + k``. Sequential calls read one running
  iterator; a call for any other step (first call, resume, jump) starts a new
  iterator at that step.
  """

  def __init__(self, make_dataset: Callable[[int], Any]):
    self._make_dataset = make_dataset
    self._iterator = None
    self._next_step = None

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    step = checks.int_at_least("step", step, 0)
    if self._iterator is None or step != self._next_step:
      self._iterator = self._make_dataset(step).as_numpy_iterator()
    try:
      batch = next(self._iterator)
    except StopIteration:
      self._iterator = None
      raise ValueError(f"the training data ran out at step {step}; use "
                       "num_epochs=None (repeat forever).") from None
    self._next_step = step + 1
    return batch


def _materialize(ds, keys: Sequence[str],
                 max_bytes: int) -> dict[str, np.ndarray]:
  """This dataset's fields ``keys`` as numpy arrays (one pass)."""
  spec = ds.element_spec
  n = int(ds.cardinality())
  per_example = sum(int(np.prod(spec[k].shape)) * spec[k].dtype.size
                    for k in keys)
  if n >= 0 and n * per_example > max_bytes:
    raise ValueError(
        f"the training set ({n} examples, {n * per_example / 2**30:.1f} GiB) "
        f"exceeds max_memory_bytes={max_bytes}; raise it, or use "
        "in_memory=False (streaming; resuming skips the examples before the "
        "step).")
  chunks = {k: [] for k in keys}
  total = 0
  for batch in ds.map(lambda ex: {k: ex[k] for k in keys}).batch(
      1024).as_numpy_iterator():
    for k in keys:
      chunks[k].append(batch[k])
    total += len(batch["image"]) * per_example
    if total > max_bytes:
      raise ValueError(f"the training set exceeds max_memory_bytes="
                       f"{max_bytes}; raise it or use in_memory=False.")
  if not chunks["image"]:
    raise ValueError("the training set is empty (for this host).")
  return {k: np.concatenate(v) for k, v in chunks.items()}


def _indexed_train_dataset(tf, arrays, *, local: int, crop: int, eigvals,
                           eigvecs, std: float, seed: int, process_index: int,
                           start_step: int, extras: Sequence[str]):
  """Element ``g`` is a pure function of ``g``: example ``perm_e(g mod n)`` of
  epoch ``e = g div n``, augmented with the seed of ``g``."""
  n = len(arrays["image"])
  tensors = {k: tf.convert_to_tensor(v) for k, v in arrays.items()}
  fold = tf.random.experimental.stateless_fold_in
  perm_base = fold(tf.constant([seed, _SALT_PERMUTE], tf.int64), process_index,
                   alg="philox")

  def element(g):
    epoch, pos = g // n, g % n
    index = tf.random.experimental.index_shuffle(
        pos, fold(perm_base, epoch, alg="philox"), tf.constant(n - 1, tf.int64))
    ex = {k: tf.gather(t, index) for k, t in tensors.items()}
    return _train_example(tf, ex, _element_seed(tf, seed, process_index, g),
                          crop, eigvals, eigvecs, std, extras)

  ds = tf.data.Dataset.counter(start=start_step * local)
  ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(local, drop_remainder=True)
  return _options(tf, ds.prefetch(tf.data.AUTOTUNE))


def batch_fn_from_dataset(ds, *, batch_size: int, crop_size: int = 112,
                          rgb_cov, pca_noise_std: float = DEFAULT_PCA_NOISE_STD,
                          seed: int, process_index: int | None = None,
                          process_count: int | None = None,
                          shard_input: bool = True, in_memory: bool = True,
                          shuffle_buffer: int = 10_000,
                          extra_keys: Sequence[str] = (),
                          max_memory_bytes: int = 16 * 2**30) -> StepBatches:
  """The trainer's ``batch_fn(step)``: this host's batch of step ``step``.

  Design: ``batch_fn(step)`` depends on ``(seed, step)`` only, so a run
  resumed at step ``k`` reads exactly the batches of an uninterrupted run.

  * ``in_memory=True`` (default): this host's examples (image, pose, extras)
    are read once into memory, and stream element ``g = step * b + j`` is
    example ``perm_e(g mod n)`` with ``perm_e`` a stateless permutation
    (``tf.random.experimental.index_shuffle``) seeded by ``(seed, host,
    epoch e = g div n)``, augmented with stateless ops seeded by ``(seed,
    host, g)``. Starting at any step costs nothing; every epoch visits every
    example once.
  * ``in_memory=False``: ``train_dataset`` (seeded streaming shuffle);
    starting at step ``k`` re-reads and skips the ``k * b`` examples before it
    (without augmenting them), so resuming costs a pass over them.

  Either way the running iterator is cached, so sequential steps (the
  trainer's loop) cost one batch each. Batches are numpy, ``{"image": float32
  [b, crop, crop, 3] in [0, 1], "pose": float32 [b, 17, 3] mm, **extras}``
  with ``b = batch_size / process_count`` (the trainer's ``shard_batch``
  assembles the global batch).

  Args: as ``train_dataset``; ``max_memory_bytes`` bounds the in-memory copy.
  """
  tf = _tf()
  (pi, pc, local, eigvals, eigvecs, std, seed,
   extras) = _train_setup(ds, batch_size, crop_size, rgb_cov, pca_noise_std,
                          seed, process_index, process_count, extra_keys)
  crop = int(crop_size)  # checked by _train_setup
  if not in_memory:
    return StepBatches(lambda step: train_dataset(
        ds, batch_size=batch_size, crop_size=crop, rgb_cov=rgb_cov,
        pca_noise_std=std, seed=seed, shuffle_buffer=shuffle_buffer,
        process_index=pi, process_count=pc, shard_input=shard_input,
        start_step=step, extra_keys=extras))
  if shard_input and pc > 1:
    ds = ds.shard(pc, pi)
  arrays = _materialize(ds, ("image", "pose", *extras), max_memory_bytes)
  arrays["pose"] = arrays["pose"].astype(np.float32)
  return StepBatches(lambda step: _indexed_train_dataset(
      tf, arrays, local=local, crop=crop, eigvals=eigvals, eigvecs=eigvecs,
      std=std, seed=seed, process_index=pi, start_step=step, extras=extras))


# ----------------------------------------------------------------------------
# RGB statistics.
# ----------------------------------------------------------------------------


def rgb_stats_from_images(images) -> tuple[np.ndarray, np.ndarray]:
  """Mean ``[3]`` and covariance ``[3, 3]`` of uint8 images' RGB in [0, 1].

  Args:
    images: uint8 ``[N, H, W, 3]``, or an iterable of such chunks (streamed in
      float64 sums, so the whole set need not fit in memory).

  Returns:
    ``(mean [3], cov [3, 3])`` float64 over all pixels, ``cov`` with ``N - 1``
    normalisation like ``np.cov`` (``augment.rgb_covariance``).
  """
  if isinstance(images, np.ndarray) or not isinstance(images, Iterable):
    chunks: Iterable[Any] = [images]
  else:
    chunks = images
  count, total, outer = 0, np.zeros(3), np.zeros((3, 3))
  shift = None  # centre on the first chunk's mean for numerical stability
  for chunk in chunks:
    chunk = np.asarray(chunk)
    if chunk.dtype != np.uint8 or chunk.ndim != 4 or chunk.shape[-1] != 3:
      raise ValueError(f"images must be uint8 [N, H, W, 3], got "
                       f"{chunk.dtype} {chunk.shape}; convert float images "
                       "with np.round(255 * x).astype(np.uint8).")
    pixels = chunk.reshape(-1, 3).astype(np.float64) / 255.0
    if not len(pixels):
      continue
    if shift is None:
      shift = pixels.mean(0)
    d = pixels - shift
    count += len(d)
    total += d.sum(0)
    outer += d.T @ d
  if count < 2:
    raise ValueError(f"rgb_stats_from_images needs at least 2 pixels, got "
                     f"{count}.")
  mean_d = total / count
  cov = (outer - count * np.outer(mean_d, mean_d)) / (count - 1)
  return shift + mean_d, (cov + cov.T) / 2


def read_rgb_mean_cov(path: str) -> tuple[np.ndarray, np.ndarray]:
  """``(mean [3], cov [3, 3])`` float64 from ``rgb_stats.json`` (a file, or
  the dataset version directory holding it, e.g. ``builder.data_dir``;
  ``gs://...`` paths through ``tf.io.gfile``), the covariance checked as
  ``pca_noise_basis`` needs it."""
  path = os.fspath(path)
  if not path.endswith(".json"):
    path = os.path.join(path, RGB_STATS_FILENAME)
  if "://" in path:
    opener = _tf().io.gfile.GFile
  else:
    opener = open
  try:
    with opener(path, "r") as f:
      stats = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(
        f"cannot read the RGB statistics {path} ({e}); the dataset writer "
        "stores them with rgb_stats_from_images.") from e
  mean = np.asarray(stats.get("mean"), np.float64)
  cov = np.asarray(stats.get("cov"), np.float64)
  if mean.shape != (3,) or not np.all(np.isfinite(mean)):
    raise ValueError(f"{path}: 'mean' must be 3 finite numbers, got "
                     f"{stats.get('mean')}.")
  pca_noise_basis(cov)
  return mean, cov


# ----------------------------------------------------------------------------
# TFDS builders (per-host splits).
# ----------------------------------------------------------------------------


def _host_split(split: str, process_index, process_count):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  pi, pc = _processes(process_index, process_count)
  return tfds.split_for_jax_process(split, process_index=pi,
                                    process_count=pc), pi, pc


def _may_shuffle_files(builder) -> bool:
  """False for ordered datasets (``disable_shuffling``), which tfds refuses to
  read with shuffled files."""
  return not getattr(builder.info, "disable_shuffling", False)


def _rgb_cov(builder, rgb_cov):
  return read_rgb_mean_cov(os.fspath(builder.data_dir))[1] if rgb_cov is None \
      else rgb_cov


def train_dataset_from_builder(builder, *, split: str = "train",
                               batch_size: int, seed: int, rgb_cov=None,
                               process_index: int | None = None,
                               process_count: int | None = None, **kwargs):
  """``train_dataset`` over ``builder.as_dataset`` of this host's share of
  ``split`` (``tfds.split_for_jax_process``), files shuffled with ``seed``
  (unless the dataset is ordered);
  ``rgb_cov`` defaults to the dataset's ``rgb_stats.json``. ``kwargs`` go to
  ``train_dataset``."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  _tf()
  host_split, pi, pc = _host_split(split, process_index, process_count)
  ds = builder.as_dataset(split=host_split,
                          shuffle_files=_may_shuffle_files(builder),
                          read_config=tfds.ReadConfig(shuffle_seed=seed))
  return train_dataset(ds, batch_size=batch_size, seed=seed,
                       rgb_cov=_rgb_cov(builder, rgb_cov), process_index=pi,
                       process_count=pc, shard_input=False, **kwargs)


def eval_dataset_from_builder(builder, *, split: str = "test",
                              batch_size: int, process_index: int | None = None,
                              process_count: int | None = None, **kwargs):
  """``eval_dataset`` over this host's share of ``split``, in file order."""
  _tf()
  host_split, pi, pc = _host_split(split, process_index, process_count)
  ds = builder.as_dataset(split=host_split, shuffle_files=False)
  kwargs.setdefault("num_examples", builder.info.splits[split].num_examples)
  return eval_dataset(ds, batch_size=batch_size, process_index=pi,
                      process_count=pc, shard_input=False, **kwargs)


def batch_fn_from_builder(builder, *, split: str = "train", batch_size: int,
                          seed: int, rgb_cov=None,
                          process_index: int | None = None,
                          process_count: int | None = None,
                          **kwargs) -> StepBatches:
  """``batch_fn_from_dataset`` over this host's share of ``split`` (read in
  file order; the order comes from the seeded index permutation, or, with
  ``in_memory=False``, from the seeded streaming shuffle)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  _tf()
  host_split, pi, pc = _host_split(split, process_index, process_count)
  if kwargs.get("in_memory", True):
    ds = builder.as_dataset(split=host_split, shuffle_files=False)
  else:
    ds = builder.as_dataset(split=host_split,
                            shuffle_files=_may_shuffle_files(builder),
                            read_config=tfds.ReadConfig(shuffle_seed=seed))
  return batch_fn_from_dataset(ds, batch_size=batch_size, seed=seed,
                               rgb_cov=_rgb_cov(builder, rgb_cov),
                               process_index=pi, process_count=pc,
                               shard_input=False, **kwargs)
