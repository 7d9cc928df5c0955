"""The source contract, and the registry that opens a run's source.

A *source* is what the experiments layer (``experiments/pipeline.py``)
trains and evaluates on, whatever the data is. Every source has the
interface of ``Source`` (a ``typing.Protocol``; the three below satisfy it
structurally):

* ``pose_space``: the candidate pose space Y, ``[N, 17, 3]`` float32 mm,
  every training pose label (root-relative, camera frame);
* ``train_batch(step, batch_size, seed)``: the augmented training batch of
  ``step``, a pure function of ``(seed, step)`` (so a resumed run is
  bit-identical): ``{"image": float32 [B, crop, crop, 3] in [0, 1], "pose":
  float32 [B, 17, 3] mm}`` and, where the data has them, the 2D joints
  ``"pose_2d": float32 [B, 17, 2]`` in the crop's pixels (stage 1's joint
  detection needs them; ``blobs`` has none);
* ``eval_batches(batch_size, split)``: centre-cropped batches covering every
  example of ``split`` (``"train"`` or ``"test"``) once, in order, the last
  padded, with ``mask [B] bool`` and ``action [B] str`` (and, for rendered
  people, ``subject`` and ``camera``);
* ``num_examples(split)``: how many examples ``eval_batches`` covers (for the
  evaluation's progress lines).

The sources (``SOURCES``, the values of ``config.data.source``):

* ``"blobs"``: ``sources.blobs.BlobSource``, generated image-pose pairs, no
  files;
* ``"tfds"``: ``tfds.source.TfdsSource``, the ``structnet_h36m`` TFDS dataset
  (``tfds.builder``: procedural, h36m_motion, positions or h36m_release),
  built first when it is not there, read with tf.data
  (``tfds.input_pipeline``); the only source that needs TensorFlow, imported
  when it is asked for;
* ``"render"``: ``sources.device.RenderSource``, the same people rendered and
  augmented in JAX on the device at every step (no TensorFlow).

``from_config(config)`` opens the source of a run config (the fields of
``experiments/configs/default.py``); each source checks the config fields
that concern it.

``POSE_SPACE_FILENAME``: the file of the pose space (``np.save``), in a
built TFDS dataset's version directory (``tfds.builder``) and in a run's
workdir (``experiments/pipeline.py``).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Mapping, Protocol

import numpy as np

POSE_SPACE_FILENAME = "pose_space.npy"
# The Human3.6M protocol's subjects (section 6): the default splits of the
# TFDS datasets and the on-device source.
TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")


class Source(Protocol):
  """What the experiments layer asks of a data source (module docstring)."""

  pose_space: np.ndarray  # [N, 17, 3] float32 mm, the candidate poses Y

  def train_batch(self, step: int, batch_size: int,
                  seed: int = 0) -> Mapping[str, Any]:
    """The training batch of ``step``, pure in ``(seed, step)``: ``image``
    ``[B, crop, crop, 3]`` float32 in [0, 1], ``pose`` ``[B, 17, 3]`` mm and,
    where the data has 2D joints, ``pose_2d`` ``[B, 17, 2]`` crop pixels."""
    ...

  def eval_batches(self, batch_size: int,
                   split: str = "test") -> Iterator[Mapping[str, Any]]:
    """Every example of ``split`` once, centre-cropped, in order; the last
    batch padded, ``mask [B] bool`` marking the real examples, ``action [B]``
    str labels."""
    ...

  def num_examples(self, split: str = "test") -> int:
    """Examples ``eval_batches(..., split)`` covers."""
    ...


# ----------------------------------------------------------------------------
# The config's data section -> source options.
# ----------------------------------------------------------------------------


def _names(text: str) -> tuple[str, ...]:
  """``"S1, S5"`` -> ``("S1", "S5")``."""
  return tuple(n.strip() for n in text.split(",") if n.strip())


def validation_split(data) -> dict[str, tuple[str, ...]]:
  """The subjects of a validation run (``config.data.validation_subjects``).

  Settings are chosen on a validation split and the test subjects are
  reported once, for the final settings. With ``validation_subjects = "S8"``
  the run trains on the training subjects without S8 and evaluates on S8
  (its "test" split); the test subjects (S9, S11 by default) are not in the
  data at all.

  Returns:
    ``{}`` when no validation subjects are set, else ``{"train_subjects":
    ..., "test_subjects": validation subjects}``.

  Raises:
    ValueError: a validation subject is a test subject, is not a training
      subject, or leaves no training subject.
  """
  val = _names(data.validation_subjects)
  if not val:
    return {}
  train = _names(data.train_subjects) or TRAIN_SUBJECTS
  test = _names(data.test_subjects) or TEST_SUBJECTS
  leaked = sorted(set(val) & set(test))
  if leaked:
    raise ValueError(
        f"config.data.validation_subjects={data.validation_subjects!r} "
        f"includes test subject(s) {leaked}: settings chosen on them would "
        "tune on the test set. Hold out training subjects (e.g. S8).")
  unknown = sorted(set(val) - set(train))
  if unknown:
    raise ValueError(
        f"config.data.validation_subjects: {unknown} are not training "
        f"subjects ({', '.join(train)}); validate on one of those.")
  rest = tuple(s for s in train if s not in val)
  if not rest:
    raise ValueError(
        "config.data.validation_subjects holds out every training subject; "
        "keep at least one to train on.")
  return {"train_subjects": rest, "test_subjects": val}


def _dataset_options(data) -> dict[str, Any]:
  """The rendered sources' ``dataset_options.DatasetOptions`` fields set in
  ``config.data`` (0 / "": the options' default), with the validation split
  applied; the TFDS builder config and ``RenderSource.create`` take them."""
  options = {k: data[k] for k in ("frame_step", "sequences_per_action",
                                  "frames_per_sequence", "looks_per_subject")
             if data[k]}
  if data.actions:
    options["actions"] = _names(data.actions)
  for field in ("train_subjects", "test_subjects"):
    if data[field].strip():
      options[field] = (() if data[field].strip().lower() == "none"
                        else _names(data[field]))
  options.update(validation_split(data))
  return options


def _positions_options(data, positions: Callable[[], bool]) -> dict[str, Any]:
  """``placement`` / ``random_yaw`` / ``rig_subject`` as set in
  ``config.data``, refused unless ``positions()`` says the data are joint
  positions (asked only when one of them is set)."""
  options = {k: data[k] for k in ("placement", "random_yaw", "rig_subject")
             if data[k]}
  if options and not positions():
    raise ValueError(
        f"config.data.{'/'.join(options)} only apply to joint "
        "positions (config.data.tfds_config='positions', or source 'render' "
        f"with a positions file), not to {data.source!r} / "
        f"{data.tfds_config!r} data; leave them empty.")
  return options


def _holds_positions(path: str) -> bool:
  from data_pipelines.motion import positions as position_motion  # pylint: disable=g-import-not-at-top
  return position_motion.holds_positions(os.path.expanduser(path))


# ----------------------------------------------------------------------------
# The sources, each checking its own fields.
# ----------------------------------------------------------------------------


def _blobs(config, options) -> Source:
  """``sources.blobs.BlobSource``: no 2D joints, subjects or looks."""
  del options  # the rendered sources' options; blobs have none
  d = config.data
  _positions_options(d, lambda: False)
  if config.model.detection_grid:
    raise ValueError(
        "config.model.detection_grid > 0 trains stage 1 with joint "
        "detection, which needs 2D joints; the 'blobs' toy data has none. "
        "Set --config.model.detection_grid=0.")
  if d.looks_per_subject > 1:
    raise ValueError(
        "config.data.looks_per_subject dresses rendered people (source "
        "'tfds' or 'render'); the 'blobs' toy data has none. Leave it at 0.")
  if d.hue_jitter_deg or d.saturation_jitter:
    raise ValueError(
        "config.data.hue_jitter_deg / saturation_jitter turn the colours of "
        "training images, but the 'blobs' toy data codes each joint's depth "
        "in its colour. Set --config.data.hue_jitter_deg=0 "
        "--config.data.saturation_jitter=0 (as tiny.py does).")
  if d.validation_subjects.strip():
    raise ValueError(
        "config.data.validation_subjects needs data with subjects (source "
        "'tfds' or 'render'); the 'blobs' toy data has none. Leave it empty.")
  from data_pipelines.sources import blobs  # pylint: disable=g-import-not-at-top
  return blobs.BlobSource.create(
      num_train=d.pose_space_size, num_test=d.num_test,
      image_size=d.image_size, crop=config.model.image_size,
      seed=config.seed)


def _tfds(config, options) -> Source:
  """``tfds.source.TfdsSource`` of ``config.data.tfds_config``."""
  d = config.data
  positions = _positions_options(d, lambda: d.tfds_config == "positions")
  from data_pipelines.tfds import source as tfds_source  # pylint: disable=g-import-not-at-top
  if d.image_size != 128:  # the datasets' default crop side
    options["crop_size"] = int(d.image_size)
  options.update(positions)
  if d.tfds_config in ("h36m_motion", "positions") and not d.motion_path:
    raise ValueError(
        f"config.data.tfds_config={d.tfds_config!r} renders motion from a "
        "file, but config.data.motion_path is empty. Pass it on the command "
        "line: --config.data.motion_path=/path/to/"
        + ("h36m_expmap_25fps.npz" if d.tfds_config == "h36m_motion"
           else "positions.npz ('{subject}/{action}/{subaction}' -> "
           "[T, 17, 3] mm, z up)") + ".")
  return tfds_source.TfdsSource.create(
      d.tfds_config, d.data_dir, crop=config.model.image_size,
      pca_noise_std=d.pca_noise_std, motion_path=d.motion_path or None,
      manual_dir=d.manual_dir or None, **options)


def _render(config, options) -> Source:
  """``sources.device.RenderSource`` of ``config.data.motion_path`` (an
  exp-map ``.npz`` or folder, a joint-positions ``.npz``; "": procedural)."""
  d = config.data
  positions = _positions_options(
      d, lambda: bool(d.motion_path) and _holds_positions(d.motion_path))
  from data_pipelines.sources import device as device_source  # pylint: disable=g-import-not-at-top
  return device_source.RenderSource.create(
      d.motion_path or "procedural", image_size=d.image_size,
      crop=config.model.image_size, pca_noise_std=d.pca_noise_std,
      **options, **positions)


SOURCES: dict[str, Callable[[Any, dict[str, Any]], Source]] = {
    "blobs": _blobs, "tfds": _tfds, "render": _render}


def from_config(config) -> Source:
  """The source named by ``config.data.source`` (``SOURCES``), opened with
  the run config's data fields (building or rendering what it needs).

  Raises:
    ValueError: an unknown source, or fields that do not fit it (each source
      names the field and the fix).
  """
  d = config.data
  options = _dataset_options(d)
  if d.source not in SOURCES:
    _positions_options(d, lambda: False)
    raise ValueError(f"config.data.source={d.source!r} is unknown; use one "
                     f"of {tuple(SOURCES)}.")
  return SOURCES[d.source](config, options)
