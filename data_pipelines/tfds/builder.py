"""TFDS builder ``structnet_h36m``: Human3.6M-style person crops with 3D poses.

Four builder configs, one example format (``synthesize`` module docstring):

* ``procedural`` (default, offline): procedural motion
  (``procedural_motion.generate_motion``) on each subject's seeded body,
  rendered through the Human3.6M camera rig (``synthesize``).
* ``h36m_motion``: the real exponential-map motion capture (an ``.npz`` or
  the text release's folder, ``h36m_motion.load_expmap_motion``), retargeted
  to each subject's body and rendered the same way. The motion's location is
  not part of the dataset's identity (like ``manual_dir``), so it is a
  builder argument: ``StructnetH36m(config="h36m_motion", data_dir=...,
  motion_path=".../h36m_expmap_25fps.npz")``, ``tfds.builder(
  "structnet_h36m/h36m_motion", motion_path=...)`` or ``build_dataset(
  "h36m_motion", data_dir, motion_path=...)``. (A custom config may carry
  ``motion_path`` too; the builder argument wins.)
* ``positions``: any 17-joint position sequences (an ``.npz`` of
  ``"{subject}/{action}/{subaction}"`` -> ``[T, 17, 3]`` mm, z up;
  ``position_motion``), rendered as given (no retargeting) after placing each
  in the capture volume (``placement``, optional ``random_yaw``). The file is
  the builder's ``motion_path`` as for ``h36m_motion``. Subjects may have any
  name (``rig_subject`` picks the cameras for non-Human3.6M ones);
  ``test_subjects=None`` (the default) takes every subject of the file not in
  ``train_subjects``, and ``train_subjects=()`` builds an evaluation-only
  dataset (a ``test`` split alone).
* ``h36m_release``: the official videos and poses, read by
  ``data_pipelines.motion.h36m_release`` from ``manual_dir``
  (``tfds.download.DownloadConfig(manual_dir=...)`` or ``build_dataset(...,
  manual_dir=...)``; see ``MANUAL_DOWNLOAD_INSTRUCTIONS``).

Every config's motion is loaded by ``motion.load`` (the release: its videos,
``h36m_release.ReleaseSequence``), every ``frame_step``-th frame.

Splits ``train`` (S1, S5, S6, S7, S8) and ``test`` (S9, S11), each camera a
separate view (``cameras``), every ``frame_step``-th frame. Other choices
(subjects, actions, clip counts, seeds, crop size, ...) are fields of
``StructnetH36mConfig``, a ``dataset_options.DatasetOptions`` (the options
the on-device ``RenderSource`` and ``synthesize`` take too) with a name and a
source; ``build_dataset(name, data_dir, **fields)`` makes a
config named ``<name>_<hash of the fields>``, so the same options always
land in the same dataset folder.

Written next to the TFDS files, in the dataset's version directory
(``builder.data_dir``), inside TFDS's atomic write:

* ``pose_space.npy``: all training poses ``float32 [N, 17, 3]`` mm (root-
  relative, camera frame), the candidate pose space; order: sequence,
  camera, frame (not the split's shuffled order). ``load_pose_space``.
* ``rgb_stats.json``: ``{"mean": [3], "cov": [3][3], "num_pixels": ...}`` of
  the training images' RGB in [0, 1] (sample covariance). ``load_rgb_stats``.

Resuming. Rendering (or video decoding) is the expensive part, so the
examples of each sequence are cached in ``<download_dir>/
structnet_h36m_render_cache/<config>-<version>-<fingerprint>/`` (default
``download_dir``: ``<data_dir>/downloads``; ``cache_dir=`` overrides the
root) as one ``.npz`` per sequence, written atomically (temp file +
``os.replace``). A re-run after an interruption renders only the sequences not
cached yet and TFDS writes the dataset afresh from the cache into its own
temporary folder, renamed into place at the end; the fingerprint (every config
field, the version, the motion file's path/size/mtime or ``manual_dir``)
keeps caches of different options apart. The cache is deleted after a
successful build unless ``keep_cache=True``. Re-running a finished dataset
does nothing (TFDS reuses it). Inputs are checked before anything is written.

  builder = build_dataset("procedural", "~/tensorflow_datasets")
  ds = builder.as_dataset(split="train")
  poses = load_pose_space(builder)           # [N, 17, 3] mm
  stats = load_rgb_stats(builder)            # {"mean": [3], "cov": [3, 3]}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import checks
from data_pipelines import dataset_options
from data_pipelines.motion import core as motion_lib
from data_pipelines.motion import npz_files
from data_pipelines.motion import positions as position_motion
from data_pipelines.motion import procedural as procedural_motion
from data_pipelines.render import synthesize
from data_pipelines.rig import appearance as appearance_lib
from data_pipelines.sources import core as sources
from data_pipelines.tfds import input_pipeline
from structnet_jax import poses as poses_lib

DATASET_NAME = "structnet_h36m"
SOURCES = ("procedural", "h36m_motion", "positions", "h36m_release")
CACHE_DIRNAME = "structnet_h36m_render_cache"
# Bump when the cached example format or the rendering changes.
_CACHE_FORMAT = 1
# Config fields that do not change the examples (left out of fingerprints).
_IDENTITY_FREE = ("name", "description", "release_notes", "supported_versions",
                  "tags")

_CITATION = """\
@inproceedings{li2015maximum,
  title={Maximum-margin structured learning with deep networks for 3D human
         pose estimation},
  author={Li, Sijin and Zhang, Weichen and Chan, Antoni B.},
  booktitle={ICCV}, year={2015}}
@article{ionescu2014human36m,
  title={Human3.6M: Large Scale Datasets and Predictive Methods for 3D Human
         Sensing in Natural Environments},
  author={Ionescu, Catalin and Papava, Dragos and Olaru, Vlad and
          Sminchisescu, Cristian},
  journal={IEEE TPAMI}, volume={36}, number={7}, pages={1325--1339},
  year={2014}}
"""

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Only the `h36m_release` config needs manual data (the others are generated).
Register at http://vision.imar.ro/human3.6m/ and download, for every subject
you build (S1, S5, S6, S7, S8 train; S9, S11 test), the "Videos" and the
"D3 Positions" (poses, world coordinates) archives; optionally "Segments"
(ground-truth person boxes, ground_truth_bb). Extract them so that
`manual_dir` holds one folder per subject:

  <manual_dir>/S9/Videos/Directions 1.54138969.mp4
  <manual_dir>/S9/MyPoseFeatures/D3_Positions/Directions 1.cdf
  <manual_dir>/S9/MySegmentsMat/ground_truth_bb/Directions 1.54138969.mat

and pass it with
`builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
manual_dir=...))` or `build_dataset("h36m_release", data_dir,
manual_dir=...)`. Reading the CDF and MP4 files needs `cdflib` and `av`
(`pip install -e '.[data]'`).
"""


# ---------------------------------------------------------------------------
# Configs.


@dataclasses.dataclass(eq=False)
class StructnetH36mConfig(tfds.core.BuilderConfig,
                          dataset_options.DatasetOptions):
  """Options of one ``structnet_h36m`` dataset.

  A ``dataset_options.DatasetOptions`` (every field that decides the
  examples: subjects, actions, cameras, ``frame_step``, ``crop_size``,
  procedural clips and seeds, rendering, positions placement, looks; its
  docstring) with a TFDS name, and where the motion comes from. For
  ``positions``, the subjects may have any names of the file,
  ``train_subjects`` may be ``()`` (an evaluation-only dataset) and
  ``test_subjects`` None (every other subject of the file); the others
  film Human3.6M subjects of the rig (S1, S5, S6, S7, S8, S9, S11).

  Attributes:
    source: ``"procedural"``, ``"h36m_motion"``, ``"positions"`` or
      ``"h36m_release"``.
    motion_path: ``h36m_motion``'s motion file or folder (``positions``:
      its ``.npz``), when not given to the builder (``StructnetH36m(...,
      motion_path=...)``).
    source_digest: ``positions``: a digest of the motion file's bytes, set
      by ``build_dataset``, so two different files never share a dataset
      (the Human3.6M motion is one file wherever it lives; a user's
      positions files are each their own data).
  """
  source: str = "procedural"
  motion_path: str | None = None
  source_digest: str | None = None


# Fields added after datasets were built: left out of the fingerprint while at
# these defaults, so the datasets built before keep their names and caches.
_ADDED_FIELDS = {"placement": "auto", "random_yaw": False, "rig_subject": None,
                 "looks_per_subject": 1, "source_digest": None}
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(StructnetH36mConfig))
_OPTION_NAMES = tuple(n for n in _FIELD_NAMES
                      if n not in _IDENTITY_FREE + ("version",))

BUILDER_CONFIGS = (
    StructnetH36mConfig(
        name="procedural", source="procedural",
        description="Procedural motion (11 actions, 2 clips of 5 s per "
        "subject and action) on seeded bodies, rendered through the 4 "
        "Human3.6M cameras; every 5th frame at 50 fps. Offline."),
    StructnetH36mConfig(
        name="h36m_motion", source="h36m_motion", frame_step=5,
        description="Human3.6M exponential-map motion capture (pass "
        "motion_path=), retargeted to seeded per-subject bodies and rendered "
        "through the 4 Human3.6M cameras; every 5th frame of the file."),
    StructnetH36mConfig(
        name="positions", source="positions", frame_step=5, test_subjects=None,
        description="17-joint position sequences (pass motion_path=, an .npz "
        "of '{subject}/{action}/{subaction}' -> [T, 17, 3] mm, z up), "
        "placed in the capture volume and rendered as given through the 4 "
        "Human3.6M cameras; every 5th frame of the file."),
    StructnetH36mConfig(
        name="h36m_release", source="h36m_release", frame_step=5,
        description="The official Human3.6M videos and 3D poses from "
        "manual_dir; every 5th frame at 50 fps."),
)


def _canonical(name: str, value):
  """Normalises a config option (``dataset_options.canonical``; paths ->
  ``str``)."""
  if name == "motion_path" and value is not None:
    return os.fspath(value)
  return dataset_options.canonical(name, value)


def check_config(config: StructnetH36mConfig) -> StructnetH36mConfig:
  """Validates a config; returns it (unchanged: its fields are its identity).

  Raises:
    ValueError: naming the bad field and what it should be.
  """
  if not isinstance(config, StructnetH36mConfig):
    raise ValueError(f"expected a StructnetH36mConfig, got {type(config)}.")
  if config.source not in SOURCES:
    raise ValueError(f"config {config.name!r}: source must be one of "
                     f"{SOURCES}, got {config.source!r}.")
  positions = config.source == "positions"
  dataset_options.check_options(config, f"config {config.name!r}: ",
                                any_subject_names=positions,
                                open_splits=positions)
  if not positions:
    rig = dataset_options.rig_subjects()
    for field in ("train_subjects", "test_subjects"):
      unknown = [s for s in getattr(config, field) if s not in rig]
      if unknown:
        raise ValueError(
            f"config {config.name!r}: unknown subject(s) {unknown} in "
            f"{field}; the Human3.6M camera rig has {rig}. Choose subjects "
            "from those.")
  if config.source == "procedural" and config.actions is not None:
    unknown = [a for a in config.actions
               if a not in procedural_motion.ACTION_NAMES]
    if unknown:
      raise ValueError(
          f"config {config.name!r}: unknown procedural action(s) {unknown};"
          f" choose from {procedural_motion.ACTION_NAMES}.")
  if config.looks_per_subject > 1 and config.source == "h36m_release":
    raise ValueError(f"config {config.name!r}: looks_per_subject dresses "
                     "rendered people; the h36m_release videos are filmed "
                     "people. Leave it at 1.")
  return config


def _fingerprint(config: StructnetH36mConfig, extra=None) -> str:
  fields = {n: getattr(config, n) for n in _FIELD_NAMES
            if n not in _IDENTITY_FREE and not (
                n in _ADDED_FIELDS and getattr(config, n) == _ADDED_FIELDS[n])}
  fields["version"] = str(fields["version"])
  blob = json.dumps([fields, extra, _CACHE_FORMAT], sort_keys=True,
                    default=repr)
  return hashlib.sha1(blob.encode("utf-8")).hexdigest()


def make_config(name_or_config: str | StructnetH36mConfig = "procedural",
                **options) -> StructnetH36mConfig:
  """A config: a registered one, or one with some fields changed.

  Args:
    name_or_config: ``"procedural"``, ``"h36m_motion"``, ``"h36m_release"``
      (optionally prefixed ``"structnet_h36m/"``) or a config.
    **options: ``StructnetH36mConfig`` fields to change, e.g.
      ``train_subjects=("S1",), frame_step=10``.

  Returns:
    The registered config when no option is given, otherwise a copy named
    ``<name>_<10 hex digits of its fingerprint>``, the same for the same
    options (so a re-run finds the dataset it built before).

  Raises:
    ValueError: unknown config name or field, or a bad value.
  """
  if isinstance(name_or_config, StructnetH36mConfig):
    base = name_or_config
  elif isinstance(name_or_config, str):
    name = name_or_config.split("/", 1)[1] if name_or_config.startswith(
        DATASET_NAME + "/") else name_or_config
    registered = {c.name: c for c in BUILDER_CONFIGS}
    if name not in registered:
      raise ValueError(
          f"unknown structnet_h36m config {name_or_config!r}; choose from "
          f"{sorted(registered)} (or pass a StructnetH36mConfig).")
    base = registered[name]
  else:
    raise ValueError(f"name_or_config must be a config name or a "
                     f"StructnetH36mConfig, got {type(name_or_config)}.")
  checks.known_names("structnet_h36m config option", options, _OPTION_NAMES)
  if not options:
    return check_config(base)
  changes = {k: _canonical(k, v) for k, v in options.items()}
  config = dataclasses.replace(base, **changes)
  base_name = re.sub(r"_[0-9a-f]{10}$", "", base.name)
  config = dataclasses.replace(
      config, name=f"{base_name}_{_fingerprint(config)[:10]}",
      description=f"{base_name} with {changes}")
  return check_config(config)


# ---------------------------------------------------------------------------
# Jobs: one cached unit of work per sequence.


@dataclasses.dataclass(frozen=True)
class _Job:
  """One sequence's examples: ``make()`` yields the example dicts."""
  key: str
  subject: str
  make: Callable[[], Iterable[dict]]


def _cache_filename(key: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]", "-", key.replace("/", "__")) + ".npz"


def _check_examples(examples: list[dict], job: _Job, crop_size: int):
  for ex in examples:
    if set(ex) != set(synthesize.EXAMPLE_KEYS):
      raise ValueError(
          f"sequence {job.key}: an example has keys {sorted(ex)}, expected "
          f"{sorted(synthesize.EXAMPLE_KEYS)}.")
    for name, shape, dtype in (("image", (crop_size, crop_size, 3), np.uint8),
                               ("pose", (17, 3), np.float32),
                               ("pose_2d", (17, 2), np.float32)):
      arr = np.asarray(ex[name])
      if arr.shape != shape or arr.dtype != dtype:
        raise ValueError(
            f"sequence {job.key}: example {name} is {arr.dtype} "
            f"{arr.shape}, expected {np.dtype(dtype)} {shape}.")


def _save_examples(path: str, examples: list[dict], crop_size: int):
  """Writes examples to ``path`` atomically (temp file + ``os.replace``)."""
  n = len(examples)
  arrays = {
      "image": np.zeros((n, crop_size, crop_size, 3), np.uint8),
      "pose": np.zeros((n, 17, 3), np.float32),
      "pose_2d": np.zeros((n, 17, 2), np.float32),
  }
  for i, ex in enumerate(examples):
    for k in arrays:
      arrays[k][i] = ex[k]
  for k in ("subject", "action", "camera_id"):
    arrays[k] = np.array([str(ex[k]) for ex in examples], dtype=np.str_)
  for k in ("subaction", "camera", "frame"):
    arrays[k] = np.array([int(ex[k]) for ex in examples], np.int64)
  npz_files.save_atomic(path, arrays)


def _load_examples(path: str) -> list[dict]:
  with np.load(path, allow_pickle=False) as z:
    data = {k: z[k] for k in z.files}
  out = []
  for i in range(data["image"].shape[0]):
    out.append({
        "image": data["image"][i], "pose": data["pose"][i],
        "pose_2d": data["pose_2d"][i], "subject": str(data["subject"][i]),
        "action": str(data["action"][i]),
        "subaction": int(data["subaction"][i]),
        "camera": int(data["camera"][i]),
        "camera_id": str(data["camera_id"][i]),
        "frame": int(data["frame"][i])})
  return out


def _file_digest(path: str) -> str:
  """First 16 hex digits of the SHA-1 of a file's bytes."""
  digest = hashlib.sha1()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()[:16]


def _source_identity(path: str) -> dict:
  st = os.stat(path)
  return {"path": os.path.abspath(path), "size": st.st_size,
          "mtime_ns": st.st_mtime_ns}


# ---------------------------------------------------------------------------
# The builder.


class StructnetH36m(tfds.core.GeneratorBasedBuilder):
  """Human3.6M-style person crops (synthetic or real) with 3D poses."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = list(BUILDER_CONFIGS)
  DEFAULT_CONFIG_NAME = "procedural"
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS

  def __init__(self, *, motion_path: str | os.PathLike | None = None,
               skeleton_path: str | os.PathLike | None = None,
               cache_dir: str | os.PathLike | None = None,
               keep_cache: bool = False, batch_size: int = 64, **kwargs):
    """Args (besides TFDS's ``config``, ``data_dir``, ``version``, ...):

      motion_path: ``h36m_motion``: the ``.npz`` or folder of exponential-map
        motion (overrides the config's ``motion_path``).
      skeleton_path: ``h36m_motion``: ``h36m_skeleton32.json`` (default:
        beside the motion).
      cache_dir: root of the per-sequence example cache (default
        ``<download_dir>/structnet_h36m_render_cache``).
      keep_cache: keep the cache after a successful build.
      batch_size: frames per render call (speed and memory only).
    """
    config = kwargs.get("config")
    if isinstance(config, StructnetH36mConfig):
      check_config(config)
    batch_size = checks.int_at_least("batch_size", batch_size, 1,
                                     " (frames per render call)")
    self._motion_path = None if motion_path is None else os.fspath(motion_path)
    self._skeleton_path = (None if skeleton_path is None
                           else os.fspath(skeleton_path))
    self._cache_root = None if cache_dir is None else os.fspath(cache_dir)
    self._keep_cache = bool(keep_cache)
    self._batch_size = batch_size
    self._jobs: dict[str, list[_Job]] | None = None
    self._cache_path: str | None = None
    super().__init__(**kwargs)

  # -- TFDS interface -------------------------------------------------------

  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.crop_size
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            "Person crops with root-relative 17-joint 3D poses (mm, camera "
            "frame) in the Human3.6M protocol (StructNet, ICCV 2015). "
            + (self.builder_config.description or "")),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(
                shape=(s, s, 3), encoding_format="png",
                doc="Person crop, RGB."),
            "pose": tfds.features.Tensor(
                shape=(17, 3), dtype=np.float32,
                doc="Root-relative camera-frame joints, mm (pelvis = 0; "
                "x right, y down, z forward), structnet_jax.poses order."),
            "pose_2d": tfds.features.Tensor(
                shape=(17, 2), dtype=np.float32,
                doc="Joints in the crop's continuous pixel coordinates "
                "(x, y)."),
            "subject": tfds.features.Text(doc="e.g. S1"),
            "action": tfds.features.Text(doc="e.g. walking"),
            "subaction": tfds.features.Scalar(dtype=np.int32),
            "camera": tfds.features.Scalar(
                dtype=np.int32, doc="camera number 1..4"),
            "camera_id": tfds.features.Text(doc="e.g. 54138969"),
            "frame": tfds.features.Scalar(
                dtype=np.int32, doc="frame of the source sequence"),
        }),
        supervised_keys=("image", "pose"),
        homepage="http://vision.imar.ro/human3.6m/",
        citation=_CITATION,
    )

  def download_and_prepare(self, *, download_dir=None, download_config=None,
                           **kwargs):
    """TFDS's ``download_and_prepare``, with inputs checked beforehand.

    Motion, manual data and subjects are checked (and the motion loaded)
    before TFDS writes anything, so bad input leaves the data directory as
    it was. A finished dataset is reused as is.
    """
    download_config = download_config or tfds.download.DownloadConfig()
    if (not self.data_path.exists()
        or download_config.download_mode.overwrite_dataset):
      self._plan(download_dir, download_config)
    super().download_and_prepare(download_dir=download_dir,
                                 download_config=download_config, **kwargs)

  def _split_generators(self, dl_manager):
    if self._jobs is None:  # download_and_prepare normally plans first.
      manual_dir = dl_manager._manual_dir  # pylint: disable=protected-access
      self._plan(dl_manager.download_dir, None, manual_dir=manual_dir)
    return {split: self._generate_examples(split)
            for split in ("train", "test") if self._jobs[split]}

  def _generate_examples(self, split: str) -> Iterator[tuple[str, dict]]:
    jobs = self._jobs[split]
    progress = _progress(jobs, f"{DATASET_NAME}/{self.builder_config.name} "
                         f"{split}")
    for i, job in enumerate(progress):
      for ex in self._job_examples(job, f"{split} {i + 1}/{len(jobs)}"):
        yield synthesize.example_key(ex), ex

  def _download_and_prepare(self, dl_manager, download_config=None):
    super()._download_and_prepare(dl_manager, download_config)
    # self.data_dir is TFDS's temporary folder here: the extra files are
    # renamed into place together with the splits.
    self._write_pose_space_and_rgb_stats(os.fspath(self.data_dir))

  def _post_download_and_prepare_hook(self):
    if not self._keep_cache and self._cache_path and os.path.isdir(
        self._cache_path):
      shutil.rmtree(self._cache_path)
      logging.info("Removed the render cache %s", self._cache_path)
      try:
        os.rmdir(os.path.dirname(self._cache_path))  # only if now empty
      except OSError:
        pass

  # -- Planning: sequences per split -----------------------------------------

  def _plan(self, download_dir, download_config, manual_dir=None):
    """Checks the inputs and lists one job per sequence for each split."""
    cfg = self.builder_config  # checked by __init__ or make_config
    download_dir = os.fspath(
        download_dir or os.path.join(os.fspath(self.data_dir_root),
                                     "downloads"))
    if cfg.source == "procedural":
      jobs, identity = self._procedural_jobs(cfg), None
    elif cfg.source == "h36m_motion":
      jobs, identity = self._motion_jobs(cfg)
    elif cfg.source == "positions":
      jobs, identity = self._positions_jobs(cfg)
    else:
      if manual_dir is None:
        manual_dir = (download_config.manual_dir if download_config is not None
                      and download_config.manual_dir else
                      os.path.join(download_dir, "manual"))
      jobs, identity = self._release_jobs(cfg, os.fspath(manual_dir))
    test_subjects = cfg.test_subjects
    if test_subjects is None:  # positions: every subject not in train
      test_subjects = tuple(sorted({j.subject for j in jobs}
                                   - set(cfg.train_subjects)))
    splits = {"train": cfg.train_subjects, "test": test_subjects}
    self._jobs = {}
    for split, subjects in splits.items():
      self._jobs[split] = sorted(
          (j for j in jobs if j.subject in subjects), key=lambda j: j.key)
      if not self._jobs[split] and not (split == "train" and not subjects):
        if cfg.source == "positions":
          raise ValueError(
              f"config {cfg.name!r}: no sequences for the {split} split: the "
              f"positions file has subjects "
              f"{sorted({j.subject for j in jobs})}, {split} wants "
              f"{list(subjects)}. Set train_subjects / test_subjects to "
              "subjects of the file (--config.data.train_subjects=P1,P2; "
              "'none' for an evaluation-only dataset).")
        raise ValueError(
            f"config {cfg.name!r}: no sequences for the {split} split "
            f"(subjects {list(subjects)}, actions "
            f"{'all' if cfg.actions is None else list(cfg.actions)}). Check "
            "the subjects and actions against the source.")
    root = self._cache_root or os.path.join(download_dir, CACHE_DIRNAME)
    self._cache_path = os.path.join(
        root, f"{cfg.name}-{self.version}-{_fingerprint(cfg, identity)[:12]}")

  def _jobs_for(self, seqs, cfg) -> list[_Job]:
    """``_render_jobs`` of ``seqs`` (every frame: the motion is loaded
    sub-sampled) filmed with ``cfg``'s options."""
    return _render_jobs(
        seqs, dict(options=cfg, batch_size=self._batch_size), frame_step=1,
        looks_per_subject=cfg.looks_per_subject,
        train_subjects=cfg.train_subjects)

  def _procedural_jobs(self, cfg) -> list[_Job]:
    seqs = motion_lib.load(motion_lib.PROCEDURAL, cfg, step=cfg.frame_step)
    return self._jobs_for(seqs, cfg)

  def _given_motion_path(self, cfg, what: str, fix: str) -> str:
    """The motion file of ``cfg`` (the builder's ``motion_path`` first, then
    the config's), ``~`` expanded; ``what`` and ``fix`` say in the error what
    the config renders and how to pass the file."""
    path = self._motion_path or cfg.motion_path
    if not path:
      raise ValueError(f"config {cfg.name!r} renders {what} but no "
                       f"motion_path was given. {fix}")
    return os.path.expanduser(path)

  def _motion_jobs(self, cfg):
    path = self._given_motion_path(
        cfg, "Human3.6M exponential-map motion", "Pass it to the builder: "
        "StructnetH36m(config='h36m_motion', motion_path='.../"
        "h36m_expmap_25fps.npz') or build_dataset('h36m_motion', data_dir, "
        "motion_path=...).")
    path = checks.existing_path(
        "motion_path", path, "Pass the "
        "h36m_expmap_25fps.npz of the shared data or the folder of the "
        "exponential-map release (the one holding S1/walking_1.txt, ...).")
    seqs = motion_lib.load(
        path, cfg, kind="h36m_motion",
        subjects=cfg.train_subjects + cfg.test_subjects, step=cfg.frame_step,
        skeleton_path=self._skeleton_path)
    return self._jobs_for(seqs, cfg), _source_identity(path)

  def _positions_jobs(self, cfg):
    path = self._given_motion_path(
        cfg, "17-joint position sequences", "Pass the .npz to the builder: "
        "build_dataset('positions', data_dir, motion_path='my_motion.npz') "
        "(experiments: --config.data.motion_path=my_motion.npz).")
    subjects = None if cfg.test_subjects is None else list(
        cfg.train_subjects + cfg.test_subjects)
    available = sorted({k[0] for k in position_motion.sequence_keys(path)})
    if subjects is not None:
      subjects = [s for s in subjects if s in available]
      if not subjects:
        raise ValueError(
            f"config {cfg.name!r}: none of the subjects "
            f"{list(cfg.train_subjects + cfg.test_subjects)} is in {path}; it "
            f"holds {available}. Set train_subjects / test_subjects "
            "(--config.data.train_subjects=..., 'none' for an "
            "evaluation-only dataset).")
    seqs = motion_lib.load(path, cfg, kind="positions", subjects=subjects,
                           step=cfg.frame_step)
    return self._jobs_for(seqs, cfg), _source_identity(path)

  def _release_jobs(self, cfg, manual_dir: str):
    if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
      raise FileNotFoundError(
          f"the h36m_release config reads the official Human3.6M files from "
          f"manual_dir, but {manual_dir!r} does not exist or is empty. "
          "Create it and put the data there, then pass it with "
          "build_dataset('h36m_release', data_dir, manual_dir=...) or "
          "DownloadConfig(manual_dir=...):\n" + MANUAL_DOWNLOAD_INSTRUCTIONS)
    try:
      # pylint: disable-next=g-import-not-at-top
      from data_pipelines.motion import h36m_release
    except ImportError as e:
      raise ImportError(
          "the h36m_release config needs data_pipelines.motion.h36m_release "
          f"and its readers ({e}). Install them with pip install -e '.[data]'.") from e
    seqs = motion_lib.load(manual_dir, cfg, kind="h36m_release",
                           subjects=cfg.train_subjects + cfg.test_subjects)
    jobs = [_Job(f"{seq.subject}/{seq.action}/{seq.subaction}/c{seq.camera}",
                 seq.subject, _bind(h36m_release.sequence_examples, seq,
                                    frame_step=cfg.frame_step,
                                    crop_size=cfg.crop_size,
                                    margin=cfg.margin))
            for seq in seqs]
    return jobs, {"manual_dir": os.path.abspath(manual_dir)}

  # -- Cache -------------------------------------------------------------------

  def _job_examples(self, job: _Job, where: str) -> list[dict]:
    os.makedirs(self._cache_path, exist_ok=True)
    path = os.path.join(self._cache_path, _cache_filename(job.key))
    if os.path.exists(path):
      try:
        examples = _load_examples(path)
        logging.info("[%s] %s: %d examples from the cache", where, job.key,
                     len(examples))
        return examples
      except (OSError, ValueError, KeyError) as e:
        logging.warning("[%s] %s: unreadable cache file %s (%s); rendering "
                        "again", where, job.key, path, e)
    start = time.perf_counter()
    examples = list(job.make())
    _check_examples(examples, job, self.builder_config.crop_size)
    _save_examples(path, examples, self.builder_config.crop_size)
    logging.info("[%s] %s: %d examples in %.1f s", where, job.key,
                 len(examples), time.perf_counter() - start)
    return examples

  def _write_pose_space_and_rgb_stats(self, out_dir: str):
    """Writes pose_space.npy and rgb_stats.json from the cached train split."""
    poses, num_pixels = [], 0

    def train_images():  # streamed: one cached sequence at a time
      nonlocal num_pixels
      for job in self._jobs["train"]:
        path = os.path.join(self._cache_path, _cache_filename(job.key))
        with np.load(path, allow_pickle=False) as z:
          poses.append(z["pose"])
          images = z["image"]
        num_pixels += images.shape[0] * images.shape[1] * images.shape[2]
        for start in range(0, images.shape[0], 256):
          yield images[start:start + 256]

    pose_file = sources.POSE_SPACE_FILENAME
    stats_file = input_pipeline.RGB_STATS_FILENAME
    if not self._jobs["train"]:  # an evaluation-only positions dataset
      with open(os.path.join(out_dir, pose_file), "wb") as f:
        np.save(f, np.zeros((0, poses_lib.NUM_JOINTS, 3), np.float32))
      logging.info("No train split: wrote an empty %s and no %s", pose_file,
                   stats_file)
      return
    mean, cov = input_pipeline.rgb_stats_from_images(train_images())
    pose_space = np.concatenate(poses).astype(np.float32)
    with open(os.path.join(out_dir, pose_file), "wb") as f:
      np.save(f, pose_space)
    stats = {"mean": mean.tolist(), "cov": cov.tolist(),
             "num_pixels": int(num_pixels), "num_images": int(pose_space.shape[0]),
             "description": "RGB in [0, 1] of all training-split pixels: "
                            "mean and sample covariance."}
    with open(os.path.join(out_dir, stats_file), "w", encoding="utf-8") as f:
      json.dump(stats, f, indent=1)
    logging.info("Wrote %s (%d training poses) and %s", pose_file,
                 pose_space.shape[0], stats_file)


def _bind(fn, *args, **kwargs) -> Callable[[], Iterable[dict]]:
  return lambda: fn(*args, **kwargs)


def _render_jobs(seqs: Iterable, render_kwargs: dict, *, frame_step: int,
                 looks_per_subject: int = 1,
                 train_subjects: Sequence[str] = ()) -> list[_Job]:
  """One job per motion sequence: its examples from
  ``synthesize.render_sequence_examples``, each sequence in its look
  (``appearance.sequence_look``)."""
  return [_Job(f"{s.subject}/{s.action}/{s.subaction}", s.subject,
               _bind(synthesize.render_sequence_examples, s,
                     frame_step=frame_step, look=appearance_lib.sequence_look(
                         s, looks_per_subject, train_subjects),
                     **render_kwargs))
          for s in seqs]


def _progress(items: Sequence, desc: str):
  try:
    from tqdm import auto as tqdm_auto  # pylint: disable=g-import-not-at-top
  except ImportError:
    return items
  return tqdm_auto.tqdm(items, desc=desc, unit="seq", leave=False)


# ---------------------------------------------------------------------------
# Entry points for the experiments layer.


def build_dataset(name_or_config: str | StructnetH36mConfig = "procedural",
                  data_dir: str | os.PathLike | None = None, *,
                  motion_path: str | os.PathLike | None = None,
                  skeleton_path: str | os.PathLike | None = None,
                  manual_dir: str | os.PathLike | None = None,
                  download_dir: str | os.PathLike | None = None,
                  cache_dir: str | os.PathLike | None = None,
                  keep_cache: bool = False, batch_size: int = 64,
                  prepare: bool = True, **config_options) -> StructnetH36m:
  """Builds (or reuses) a ``structnet_h36m`` dataset; returns its builder.

  Args:
    name_or_config: config name or ``StructnetH36mConfig`` (``make_config``).
    data_dir: TFDS data directory (default TFDS's, ``~/tensorflow_datasets``).
    motion_path, skeleton_path: ``h36m_motion``'s motion and skeleton.
    manual_dir: ``h36m_release``'s folder of the official data.
    download_dir: TFDS download folder (default ``<data_dir>/downloads``);
      holds the render cache.
    cache_dir, keep_cache, batch_size: see ``StructnetH36m``.
    prepare: run ``download_and_prepare`` (a no-op when already built).
    **config_options: ``StructnetH36mConfig`` fields to change (the config
      is then named ``<name>_<hash>``, see ``make_config``).

  Returns:
    The ``StructnetH36m`` builder; ``builder.as_dataset(split="train")``,
    ``load_pose_space(builder)``, ``load_rgb_stats(builder)``.

  Raises:
    ValueError / FileNotFoundError: bad options or missing inputs, naming the
      problem and the fix; nothing is written then.
  """
  config = make_config(name_or_config, **config_options)
  path = motion_path or config.motion_path
  path = path and os.path.expanduser(os.fspath(path))
  if config.source == "positions" and path and os.path.isfile(path):
    config = make_config(config, source_digest=_file_digest(path))
  builder = StructnetH36m(
      config=config, data_dir=None if data_dir is None else os.fspath(
          os.path.expanduser(data_dir)),
      motion_path=motion_path, skeleton_path=skeleton_path,
      cache_dir=cache_dir, keep_cache=keep_cache, batch_size=batch_size)
  if prepare:
    builder.download_and_prepare(
        download_dir=download_dir,
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def dataset_dir(data_dir_or_builder, config: str | StructnetH36mConfig =
                "procedural") -> str:
  """The version directory of a built dataset (holding its extra files).

  Args:
    data_dir_or_builder: a ``StructnetH36m`` builder, a version directory
      (holding ``pose_space.npy``), or a TFDS data directory (then the
      newest built version of ``config`` in it).
    config: config name (or config) when a data directory is given.
  """
  if isinstance(data_dir_or_builder, tfds.core.DatasetBuilder):
    return os.fspath(data_dir_or_builder.data_dir)
  path = os.path.expanduser(os.fspath(data_dir_or_builder))
  if os.path.isfile(os.path.join(path, sources.POSE_SPACE_FILENAME)):
    return path
  name = config.name if isinstance(config, tfds.core.BuilderConfig) else config
  config_dir = os.path.join(path, DATASET_NAME, name)
  versions = []
  if os.path.isdir(config_dir):
    for v in os.listdir(config_dir):
      try:
        version = tfds.core.Version(v)
      except ValueError:
        continue
      if os.path.isfile(os.path.join(config_dir, v,
                                     sources.POSE_SPACE_FILENAME)):
        versions.append((version, v))
  if not versions:
    raise FileNotFoundError(
        f"no built {DATASET_NAME}/{name} dataset under {path!r} (looked for "
        f"{config_dir}/<version>/{sources.POSE_SPACE_FILENAME}). Build it with "
        f"build_dataset({name!r}, {path!r}), or pass the builder or its "
        "version directory.")
  return os.path.join(config_dir, max(versions)[1])


def load_pose_space(data_dir_or_builder, config="procedural") -> np.ndarray:
  """All training poses ``float32 [N, 17, 3]`` mm of a built dataset.

  Args: as ``dataset_dir``.
  """
  path = os.path.join(dataset_dir(data_dir_or_builder, config),
                      sources.POSE_SPACE_FILENAME)
  return poses_lib.check_poses(np.load(path, allow_pickle=False),
                               path).astype(np.float32)


def load_rgb_stats(data_dir_or_builder, config="procedural") -> dict[str, Any]:
  """Training RGB statistics: ``{"mean": [3], "cov": [3, 3], ...}`` (numpy).

  Colours in [0, 1] over every pixel of the train split; ``cov`` is the
  sample covariance.

  Args: as ``dataset_dir``.
  """
  path = os.path.join(dataset_dir(data_dir_or_builder, config),
                      input_pipeline.RGB_STATS_FILENAME)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"{path} does not exist: the dataset has no train split (an "
        "evaluation-only positions dataset), so it has no training colour "
        "statistics. Train on a dataset with train_subjects.")
  with open(path, encoding="utf-8") as f:
    stats = json.load(f)
  stats["mean"] = np.asarray(stats["mean"], np.float64)
  stats["cov"] = np.asarray(stats["cov"], np.float64)
  if stats["mean"].shape != (3,) or stats["cov"].shape != (3, 3):
    raise ValueError(f"{path} is malformed: mean {stats['mean'].shape}, cov "
                     f"{stats['cov'].shape}; rebuild the dataset.")
  return stats
