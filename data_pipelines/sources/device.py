"""An on-device training/evaluation source: render and augment in JAX per step.

Machines without TensorFlow cannot read the ``structnet_h36m`` TFDS dataset
through ``input_pipeline``. ``RenderSource`` serves the same data without it:
the motion (procedural, Human3.6M exponential maps, or joint positions) is
filmed through the Human3.6M rig exactly as
``synthesize.render_sequence_examples`` films it (same retargeting and ankle
lift, or none for positions, same camera-frame joints, subject appearance,
room floor, crop box and renderer), but the images are rendered on the device,
every training step, instead of once into files.

It has the interface of the experiments layer (``sources.Source``, opened by
``sources.from_config`` for ``config.data.source = "render"``):

* ``pose_space``: ``[N, 17, 3]`` float32 mm, every training pose label (the
  candidate set Y), in the order sequence (subject, action, subaction), then
  camera, then frame -- the order of the TFDS dataset's ``pose_space.npy``;
* ``train_batch(step, batch_size, seed)``: ``{"image": float32 [B, crop, crop,
  3], "pose": float32 [B, 17, 3] mm, "pose_2d": float32 [B, 17, 2]}`` device
  arrays (the 2D joints in the crops' pixels), a pure function of ``(seed,
  step)``;
* ``eval_batches(batch_size, split)``: every example of ``split`` once, in
  order, centre-cropped, the last batch padded (repeating the last example)
  with ``mask [B] bool`` and the labels ``action``/``subject`` (numpy str)
  and ``camera`` (int).

Host side, once (``RenderSource.create``): load the motion (``motion.load``,
every ``frame_step``-th frame), put each ``motion.Motion`` on its subject's
body as it says (``retarget``, ``lift_mm``, ``rig_subject``), and build for
each split flat arrays over (sequence, camera, frame): the camera-frame
joints to render (``[M, 17, 3]``), the root-relative pose labels, a view
index (subject x camera: intrinsics and room floor), a subject index
(appearance), action/subject/camera/frame labels. The per-subject
``Appearance`` s are stacked into one batched ``Appearance``; intrinsics and
floors into ``[V, ...]`` tables. Everything is put on the device once.

Training step (three jitted device calls, dispatched asynchronously: indices,
renderer, augmentation; the renderer's compilation is shared with evaluation
batches of the same size): example indices from a per-epoch permutation of
the training examples (seeded by ``seed``; position ``step * B + i`` of the
endless stream), gather, ``render.render_batch`` at ``image_size``, Gaussian
sensor noise of the subject's ``noise_std`` as ``synthesize`` adds it
(on the uint8 image, rounded and clipped), ``[0, 1]`` float32, then
``augment.augment``: a random ``crop x crop`` window and PCA colour noise
from the RGB covariance of a sample of rendered training images (estimated
once at creation). The randomness of step ``s`` comes from
``fold_in(PRNGKey(seed), s)``.

Differences from the TFDS data: the sensor noise of a training image is
drawn afresh each time the example is drawn (the dataset freezes one draw per
example), and the RGB covariance comes from a sample of training images,
not all of them. With ``pixel_noise=False`` in both, an example renders like
``render_sequence_examples``' (same label bit for bit, image up to float
rounding of the batched renderer).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines import checks
from data_pipelines import dataset_options
from data_pipelines.motion import core as motion_lib
from data_pipelines.motion import positions as position_motion
from data_pipelines.render import core as render
from data_pipelines.render import synthesize
from data_pipelines.rig import appearance as appearance_lib
from data_pipelines.rig import cameras as cameras_lib
from data_pipelines.sources import augment
from structnet_jax import poses as poses_lib

SPLITS: tuple[str, ...] = ("train", "test")


@dataclasses.dataclass
class SplitArrays:
  """Flat per-example arrays of one split (host copies, numpy).

  Attributes:
    joints: ``[M, 17, 3]`` float32 mm, camera frame, what is rendered.
    pose: ``[M, 17, 3]`` float32 mm, root-relative camera-frame labels.
    view: ``[M]`` int32 index into the source's views (subject x camera).
    look_index: ``[M]`` int32 index into the source's ``looks`` (what the
      person of each example wears, ``appearance.look_name``).
    subject, action: ``[M]`` str labels.
    subaction, camera, frame: ``[M]`` int32 labels (camera 1..4; frame the
      row of the source sequence).
  """
  joints: np.ndarray
  pose: np.ndarray
  view: np.ndarray
  look_index: np.ndarray
  subject: np.ndarray
  action: np.ndarray
  subaction: np.ndarray
  camera: np.ndarray
  frame: np.ndarray

  def __len__(self) -> int:
    return int(self.pose.shape[0])


def _load_sequences(motion, kind, subjects, options, *, frame_step,
                    skeleton_path):
  """The motion of ``subjects`` (``motion.load``), every ``frame_step``-th
  frame; a positions file's sequences of those of ``subjects`` it holds."""
  if kind == "positions":
    subjects = [s for s in subjects if s in {
        k[0] for k in position_motion.sequence_keys(motion)}]
    if not subjects:
      return []
  return motion_lib.load(motion, options, kind=kind, subjects=subjects,
                         step=frame_step, skeleton_path=skeleton_path)


def _split_arrays(seqs, cams, look_of, view_index, *, body_seed,
                  split) -> SplitArrays:
  """Films every frame of the sequences as
  ``synthesize.render_sequence_examples`` does; ``look_of(seq)`` is the index
  of the look each sequence wears."""
  cols = {k: [] for k in ("joints", "pose", "view", "look_index",
                          "subject", "action", "subaction", "camera",
                          "frame")}
  for seq in seqs:
    # The loaders checked the joints: [T, 17, 3] mm, finite.
    subject, n = seq.subject, seq.num_frames
    for camera, _, cam_joints in synthesize.filmed_views(
        seq, np.arange(n), cams, body_seed=body_seed):
      cols["joints"].append(cam_joints.astype(np.float32))
      cols["pose"].append(poses_lib.root_relative(cam_joints).astype(
          np.float32))
      cols["view"].append(np.full(n, view_index[(subject, camera)], np.int32))
      cols["look_index"].append(np.full(n, look_of(seq), np.int32))
      cols["subject"].append(np.full(n, subject, object))
      cols["action"].append(np.full(n, str(seq.action), object))
      cols["subaction"].append(np.full(n, int(seq.subaction), np.int32))
      cols["camera"].append(np.full(n, camera, np.int32))
      cols["frame"].append(np.asarray(seq.frame_indices).astype(np.int32))
  if not cols["pose"]:
    raise ValueError(
        f"the {split} split is empty: no kept frames for its subjects, "
        "actions and cameras (check the subjects against the motion source, "
        "the actions, and frame_step against the sequence lengths).")
  out = {k: np.concatenate(v) for k, v in cols.items()}
  for k in ("subject", "action"):
    out[k] = out[k].astype(str)
  return SplitArrays(**out)


def _pixel_noise(key, images_u8, std):
  """``synthesize._pixel_noise`` in JAX: uint8 ``[B, H, W, 3]`` + N(0, (255
  std)^2) per pixel, rounded and clipped, as float32 in 0..255."""
  noise = jax.random.normal(key, images_u8.shape, jnp.float32)
  noisy = images_u8.astype(jnp.float32) + noise * (
      255.0 * std)[:, None, None, None]
  return jnp.clip(jnp.round(noisy), 0.0, 255.0)


def _render_u8(idx, arrays, tables, *, image_size, supersample, margin,
               chunk):
  """Renders examples ``idx`` [B] of a split: uint8 images ``[B, S, S, 3]``
  and their joints ``[B, 17, 2]`` in the rendered crop's pixels."""
  joints, view, look_idx = arrays
  appearance, focal, center, floor, _ = tables
  v, s = view[idx], look_idx[idx]
  look = jax.tree.map(lambda a: a[s], appearance)
  room = jax.tree.map(lambda a: a[v], floor)
  out = render.render_batch(joints[idx], focal[v], center[v], look, room,
                            out_size=image_size, margin=margin,
                            supersample=supersample, chunk=chunk)
  return out.image, out.joints_2d


def stream_position(step: int, batch_size: int, num: int) -> tuple[int, int]:
  """``(epoch, offset)`` of the first example of ``step`` in the endless
  stream of ``num``-example epochs (host-side Python ints: no overflow)."""
  start = int(step) * int(batch_size)
  return start // num, start % num


def epoch_indices(order_key, epoch, offset, batch_size: int, num: int):
  """Example indices ``[batch_size]`` from stream position ``(epoch,
  offset)`` on, in an endless stream of per-epoch permutations of ``num``
  examples (epoch ``e`` permuted by ``fold_in(order_key, e)``). ``epoch`` and
  ``offset`` may be traced; ``batch_size`` and ``num`` are static."""
  spans = batch_size // num + 2  # epochs one batch can touch, at most
  perms = jax.vmap(lambda e: jax.random.permutation(
      jax.random.fold_in(order_key, e), num))(epoch + jnp.arange(spans))
  return perms.reshape(-1)[offset + jnp.arange(batch_size)]


@functools.partial(jax.jit, static_argnames=("batch_size", "num"))
def _train_indices(base, epoch, offset, *, batch_size, num):
  return epoch_indices(jax.random.split(base)[0], epoch, offset, batch_size,
                       num)


@functools.partial(jax.jit, static_argnames=("crop", "pixel_noise"))
def _train_finish(base, step, images, joints_2d, idx, pose, look_idx, noise_std,
                  eigvals, eigvecs, pca_std, *, crop, pixel_noise):
  """Sensor noise (std ``noise_std[look_idx[idx]]``), [0, 1] floats, random crop
  and PCA colour noise, with the randomness of ``fold_in(base, step)``;
  gathers the pose labels and moves the 2D joints ``[B, 17, 2]`` into the
  crops' pixels."""
  k_pix, k_aug = jax.random.split(jax.random.fold_in(base, step))
  if pixel_noise:
    images = _pixel_noise(k_pix, images, noise_std[look_idx[idx]])
  images = images.astype(jnp.float32) / 255.0
  images, corners = augment.augment_with_corners(k_aug, images, crop, eigvals,
                                                 eigvecs, pca_std)
  return {"image": images, "pose": pose[idx],
          "pose_2d": joints_2d - corners[:, None, :].astype(jnp.float32)}


_render_u8_jit = jax.jit(_render_u8, static_argnames=(
    "image_size", "supersample", "margin", "chunk"))


@functools.partial(jax.jit, static_argnames=("crop", "pixel_noise"))
def _eval_finish(images, idx, std, noise_key, *, crop, pixel_noise):
  """uint8 renders -> centre crops float32 [0, 1]; the sensor noise (std
  ``std [B]``) of example ``idx[b]`` comes from ``fold_in(noise_key,
  idx[b])`` (independent of the batching)."""
  if pixel_noise:
    keys = jax.vmap(jax.random.fold_in, (None, 0))(noise_key, idx)
    images = jax.vmap(lambda k, im, s: _pixel_noise(k, im[None], s[None])[0])(
        keys, images, std)
  images = images.astype(jnp.float32) / 255.0
  return augment.center_crop(images, crop)


@dataclasses.dataclass
class RenderSource:
  """Renders and augments Human3.6M-rig examples on the device (module doc).

  Attributes:
    pose_space: ``[N, 17, 3]`` float32 mm, all training pose labels.
    splits: ``{"train": SplitArrays, "test": SplitArrays}`` (host copies).
    subjects: subject names, train then test.
    looks: the looks (``appearance.subject_appearance`` names) of the
      appearance table: every subject's own, then the extra looks of the
      training subjects (``looks_per_subject``).
    cameras: camera numbers (1..4) filmed with.
    image_size: side of the rendered crop (the TFDS dataset's ``crop_size``).
    crop: network input side (random window for training, centre for eval).
    pca_noise_std: std of the PCA colour-noise coefficients.
    pixel_noise: add the subjects' Gaussian sensor noise.
    eigvals, eigvecs: PCA basis of the training RGB covariance.
    rgb_cov: ``[3, 3]`` that covariance (of the sample of rendered images).
  """
  pose_space: np.ndarray
  splits: dict
  subjects: tuple
  looks: tuple
  cameras: tuple
  image_size: int
  crop: int
  supersample: int
  margin: float
  pca_noise_std: float
  pixel_noise: bool
  appearance_seed: int
  render_chunk: int
  eigvals: np.ndarray
  eigvecs: np.ndarray
  rgb_cov: np.ndarray
  _tables: Any = dataclasses.field(repr=False)
  _device: tuple = dataclasses.field(repr=False)

  @classmethod
  def create(cls, motion: str | os.PathLike = "procedural",
             options: dataset_options.DatasetOptions | None = None, *,
             image_size: int | None = None,
             crop: int = 112,
             pca_noise_std: float = 0.1,
             test_frame_step: int | None = None,
             skeleton_path: str | None = None,
             rgb_sample_size: int = 256,
             render_chunk: int = 8,
             **fields) -> "RenderSource":
    """Loads the motion, films it, and estimates the RGB covariance.

    Args:
      motion: ``"procedural"`` (``procedural_motion.generate_motion``), the
        path of a Human3.6M exponential-map ``.npz`` / folder
        (``h36m_motion.load_expmap_motion``) or of a joint-positions ``.npz``
        (``position_motion``, rendered as given); ``motion.load`` loads it.
      options: the dataset's ``dataset_options.DatasetOptions`` (the TFDS
        config's fields: subjects, actions, cameras, ``frame_step``,
        ``crop_size`` -- the side of the rendered crop --, procedural
        clips and seeds, margin, supersampling, sensor noise, looks, and
        for a positions file ``placement``, ``random_yaw`` (seeded by
        ``seed``) and ``rig_subject``); default: the defaults. The subjects
        are Human3.6M subjects of the rig, or any names of a positions file.
      image_size: ``options.crop_size`` (the rendered crop's side, pixels)
        by its name in this source.
      crop: network input side, ``<= image_size``.
      pca_noise_std: std of the PCA colour-noise coefficients (0: off).
      test_frame_step: the test split's frame step (default
        ``options.frame_step``).
      skeleton_path: ``h36m_skeleton32.json`` for exp-map motion (default:
        beside the motion file).
      rgb_sample_size: training images rendered to estimate the covariance.
      render_chunk: examples vmapped together per step of the renderer's
        ``lax.map`` (memory vs. parallelism; results do not depend on it).
      **fields: ``DatasetOptions`` fields to change in ``options``, e.g.
        ``frame_step=10, cameras=(1, 3)``.

    Raises:
      ValueError: bad options, unknown or overlapping subjects, unknown
        cameras or actions, a missing motion path, an empty split.
    """
    if image_size is not None:
      if "crop_size" in fields:
        raise ValueError("pass the rendered crop's side as image_size or "
                         "crop_size, not both.")
      fields["crop_size"] = image_size
    kind = (motion_lib.kind_of(motion)
            if isinstance(motion, (str, os.PathLike)) else None)
    positions = kind == "positions"
    options = dataset_options.check_options(
        dataset_options.make(options, **fields), any_subject_names=positions)
    train_subjects, test_subjects = (options.train_subjects,
                                     options.test_subjects)
    if not positions:  # joint positions may name anybody
      for s in train_subjects + test_subjects:
        synthesize.check_subject(s)
    cams, frame_step = options.cameras, options.frame_step
    if test_frame_step is None:
      test_frame_step = frame_step
    test_frame_step = checks.int_at_least("test_frame_step", test_frame_step,
                                          1)
    image_size = options.crop_size
    crop = checks.int_at_least("crop", crop, 1)
    if crop > image_size:
      raise ValueError(f"crop={crop} is larger than image_size={image_size}; "
                       "the network input is a window of the rendered crop.")
    render_chunk = checks.int_at_least("render_chunk", render_chunk, 1)
    rgb_sample_size = checks.int_at_least("rgb_sample_size", rgb_sample_size, 1)
    pca_noise_std = checks.number_at_least("pca_noise_std", pca_noise_std, 0)
    if not motion_lib.is_procedural(motion):
      if not isinstance(motion, (str, os.PathLike)):
        raise ValueError(f"motion must be 'procedural' or the path of an "
                         f"exponential-map .npz or folder, got {motion!r}.")
      motion = checks.existing_path(
          "motion path", os.path.expanduser(os.fspath(motion)),
          "Pass 'procedural' or the h36m_expmap_25fps.npz of the shared data "
          "or the folder of the exponential-map release (the one holding "
          "S1/walking_1.txt).")
    if (options.placement, options.random_yaw, options.rig_subject) != (
        "auto", False, None) and not positions:
      raise ValueError("placement, random_yaw and rig_subject apply to joint "
                       "positions files only; leave them at their defaults.")
    rig_subject = options.rig_subject
    looks_per_subject = options.looks_per_subject
    appearance_seed = options.appearance_seed
    subjects = train_subjects + test_subjects
    rigs = {s: position_motion.rig_subject_for(s, rig_subject) if positions
            else s for s in subjects}
    looks = tuple(subjects) + tuple(
        name for s in train_subjects
        for name in appearance_lib.look_names(s, looks_per_subject)[1:])
    look_index = {name: i for i, name in enumerate(looks)}

    def look_of(seq):
      return look_index[appearance_lib.sequence_look(seq, looks_per_subject,
                                                     train_subjects)]

    view_index = {(s, c): i * len(cams) + j for i, s in enumerate(subjects)
                  for j, c in enumerate(cams)}
    splits = {}
    for split, subs, step in (("train", train_subjects, frame_step),
                              ("test", test_subjects, test_frame_step)):
      seqs = _load_sequences(motion, kind, subs, options, frame_step=step,
                             skeleton_path=skeleton_path)
      splits[split] = _split_arrays(seqs, cams, look_of, view_index,
                                    body_seed=options.body_seed, split=split)

    # The looks, per-view intrinsics and rooms (device tables).
    dressed = [appearance_lib.subject_appearance(name, appearance_seed)
               for name in looks]
    appearance = jax.tree.map(
        lambda *v: jnp.asarray(np.stack([np.asarray(x, np.float32)
                                         for x in v])), *dressed)
    focal, center, floors = [], [], []
    for s in subjects:
      for c in cams:
        cam = cameras_lib.camera_for(rigs[s], c - 1)
        focal.append(np.asarray(cam.focal, np.float32))
        center.append(np.asarray(cam.center, np.float32))
        floors.append(render.floor_from_extrinsics(
            *cameras_lib.extrinsics(cam)))
    floor = jax.tree.map(lambda *v: jnp.stack(v), *floors)
    noise_std = jnp.asarray([float(l.noise_std) for l in dressed],
                            jnp.float32)
    tables = (appearance, jnp.asarray(np.stack(focal)),
              jnp.asarray(np.stack(center)), floor, noise_std)
    # All splits in one set of device arrays (train first, so training
    # indices need no offset): renders of one batch size compile once.
    device = tuple(jnp.asarray(np.concatenate(
        [getattr(splits[name], field) for name in SPLITS]))
                   for field in ("joints", "view", "look_index", "pose"))

    source = cls(
        pose_space=splits["train"].pose, splits=splits, subjects=subjects,
        looks=looks,
        cameras=cams, image_size=image_size, crop=crop,
        supersample=options.supersample, margin=options.margin,
        pca_noise_std=pca_noise_std, pixel_noise=options.pixel_noise,
        appearance_seed=appearance_seed, render_chunk=render_chunk,
        eigvals=np.ones(3, np.float32), eigvecs=np.eye(3, dtype=np.float32),
        rgb_cov=np.zeros((3, 3), np.float32), _tables=tables, _device=device)

    # RGB covariance of evenly spread rendered training images (full crops).
    n = len(splits["train"])
    sample = np.unique(np.linspace(0, n - 1, min(rgb_sample_size, n)
                                   ).round().astype(np.int64))
    chunk = min(64, sample.size)
    images = []
    for start in range(0, sample.size, chunk):
      idx = sample[start:start + chunk]
      real = idx.size
      idx = np.concatenate([idx, np.repeat(idx[-1:], chunk - real)])
      images.append(np.asarray(source._images(idx, "train",
                                               image_size))[:real])
    source.rgb_cov = augment.rgb_covariance(np.concatenate(images))
    source.eigvals, source.eigvecs = augment.pca_basis(source.rgb_cov)
    return source

  # -- Interface ---------------------------------------------------------------

  @property
  def train_poses(self) -> np.ndarray:
    return self.pose_space

  def __len__(self) -> int:
    return len(self.splits["train"])

  def num_examples(self, split: str = "train") -> int:
    return len(self._split(split))

  def _split(self, split: str) -> SplitArrays:
    if split not in self.splits:
      raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    return self.splits[split]

  def _images(self, idx, split: str, crop: int):
    # Rendering and finishing are two jits, so that the covariance sample
    # and evaluation batches of one size share the renderer's compilation.
    local = np.asarray(idx, np.int64)
    first = sum(len(self.splits[s]) for s in SPLITS[:SPLITS.index(split)])
    images, _ = _render_u8_jit(jnp.asarray(local + first, jnp.int32),
                               self._device[:3], self._tables,
                               image_size=self.image_size,
                               supersample=self.supersample,
                               margin=self.margin, chunk=self.render_chunk)
    std = self._tables[4][self._split(split).look_index[local]]
    key = jax.random.fold_in(jax.random.PRNGKey(self.appearance_seed),
                             SPLITS.index(split))
    return _eval_finish(images, jnp.asarray(local, jnp.int32), std, key,
                        crop=crop, pixel_noise=self.pixel_noise)

  def train_batch(self, step: int, batch_size: int, seed: int = 0
                  ) -> dict[str, jax.Array]:
    """The augmented training batch of ``step`` (pure in ``(seed, step)``).

    Returns ``{"image": float32 [B, crop, crop, 3], "pose": float32
    [B, 17, 3] mm, "pose_2d": float32 [B, 17, 2] crop pixels}`` as device
    arrays.
    """
    batch_size = checks.int_at_least("batch_size", batch_size, 1)
    step = checks.int_at_least("step", step, 0)
    seed = checks.int_at_least("seed", seed, 0)
    # Three jitted calls, all on the device (dispatched asynchronously): the
    # indices, the renderer (its compilation shared with evaluation batches
    # of the same size) and the augmentation.
    joints, view, look_idx, pose = self._device
    base = jax.random.PRNGKey(seed)
    epoch, offset = stream_position(step, batch_size, len(self))
    idx = _train_indices(base, jnp.int32(epoch), jnp.int32(offset),
                         batch_size=batch_size, num=len(self))
    images, joints_2d = _render_u8_jit(
        idx, (joints, view, look_idx), self._tables,
        image_size=self.image_size, supersample=self.supersample,
        margin=self.margin, chunk=self.render_chunk)
    return _train_finish(
        base, jnp.uint32(step), images, joints_2d, idx, pose, look_idx,
        self._tables[4],
        jnp.asarray(self.eigvals), jnp.asarray(self.eigvecs),
        jnp.float32(self.pca_noise_std), crop=self.crop,
        pixel_noise=self.pixel_noise)

  def eval_batches(self, batch_size: int, split: str = "test"
                   ) -> Iterator[dict]:
    """Every example of ``split`` once, in order, centre-cropped; the last
    batch is padded (repeating the last example) and ``mask`` marks the real
    ones. Sensor noise (if on) is fixed per example."""
    batch_size = checks.int_at_least("batch_size", batch_size, 1)
    arrays = self._split(split)
    n = len(arrays)
    for start in range(0, n, batch_size):
      idx = np.arange(start, start + batch_size)
      mask = idx < n
      idx = np.minimum(idx, n - 1)
      yield {"image": self._images(idx, split, self.crop),
             "pose": arrays.pose[idx], "mask": mask,
             "action": arrays.action[idx], "subject": arrays.subject[idx],
             "camera": arrays.camera[idx]}

  def full_images(self, indices, split: str = "train") -> np.ndarray:
    """Rendered ``image_size`` crops, uint8 ``[B, S, S, 3]``, of examples
    ``indices`` of ``split`` (with the fixed per-example sensor noise when
    ``pixel_noise``): what the TFDS dataset would store."""
    arrays = self._split(split)
    idx = np.asarray(indices, np.int64).reshape(-1)
    if idx.size == 0 or idx.min() < 0 or idx.max() >= len(arrays):
      raise ValueError(f"indices must be in [0, {len(arrays)}) for the "
                       f"{split} split, got {indices!r}.")
    images = np.asarray(self._images(idx, split, self.image_size))
    return np.round(images * 255.0).astype(np.uint8)
