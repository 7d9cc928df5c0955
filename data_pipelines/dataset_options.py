"""The options of a rendered Human3.6M-style dataset, declared and checked once.

``DatasetOptions`` holds what decides the examples of a rendered dataset:
whose motion (subjects, actions, how many procedural clips), which frames,
filmed by which cameras, rendered how (crop size, margin, supersampling,
sensor noise, looks) and placed how (joint positions). Three consumers take
it instead of declaring the options themselves:

* ``tfds.builder.StructnetH36mConfig`` *is* a ``DatasetOptions`` (plus its
  TFDS name, ``source``, ``motion_path`` and ``source_digest``); its fields
  keep their names, so dataset names and cache fingerprints do not change;
* ``sources.device.RenderSource.create(motion, options, ...)``;
* ``render.synthesize.render_sequence_examples(seq, options, ...)`` (the filming
  fields, ``FILMING``).

``make(options, **fields)`` changes fields (lists become tuples, numpy
scalars Python numbers); ``check_options`` validates at a public entry point,
once, and returns a normalised copy (ints ``int``, numbers ``float``,
switches ``bool``), with messages of ``checks``' form, e.g. ``config
'procedural_ab12': frame_step must be an integer >= 1, got 0.``. Which
subjects a source can film (the rig's, or any name of a positions file) is
the source's own check.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from data_pipelines import checks
from data_pipelines.motion import core as motion_lib
from data_pipelines.rig import cameras as cameras_lib
from data_pipelines.sources import core as sources


@dataclasses.dataclass(kw_only=True, eq=False)
class DatasetOptions:
  """Options of one rendered dataset (keyword-only; module docstring).

  Attributes:
    train_subjects, test_subjects: subjects of the two splits (disjoint;
      Human3.6M subjects of the rig, or any names of a positions file).
    actions: action names (procedural: ``motion.procedural.ACTION_NAMES``;
      Human3.6M: lower-case, e.g. ``"walking"``); None for all.
    cameras: camera numbers 1..4 (each a separate view).
    frame_step: keep every ``frame_step``-th frame of each sequence.
    crop_size: side of the square crops, pixels.
    margin: crop margin around the joints' 2D box (fraction of its side).
    sequences_per_action: procedural clips per (subject, action).
    frames_per_sequence: procedural frames per clip (before ``frame_step``).
    fps: procedural frame rate, Hz.
    seed: procedural motion seed; positions: seed of the random yaws.
    body_seed: seed of the subjects' bodies (``body_model.subject_body``).
    appearance_seed: seed of the subjects' looks, the room and pixel noise.
    supersample: rays per pixel side when rendering (2: anti-aliased).
    pixel_noise: add the appearance's Gaussian sensor noise.
    placement: positions: one of ``motion.positions.PLACEMENTS``.
    random_yaw: positions: turn each sequence by a random yaw (seeded by
      ``seed`` and its key).
    rig_subject: positions: whose cameras film every sequence (None: each
      Human3.6M subject its own, others ``S9``'s).
    looks_per_subject: outfits and builds per *training* subject
      (``appearance.look_name``: each sequence wears one); 1: one look per
      subject. Test subjects always keep their single look.
  """
  train_subjects: tuple[str, ...] = sources.TRAIN_SUBJECTS
  test_subjects: tuple[str, ...] | None = sources.TEST_SUBJECTS
  actions: tuple[str, ...] | None = None
  cameras: tuple[int, ...] = motion_lib.CAMERAS
  frame_step: int = 5
  crop_size: int = 128
  margin: float = 0.2
  sequences_per_action: int = 2
  frames_per_sequence: int = 250
  fps: float = 50.0
  seed: int = 0
  body_seed: int = 0
  appearance_seed: int = 0
  supersample: int = 2
  pixel_noise: bool = True
  placement: str = "auto"
  random_yaw: bool = False
  rig_subject: str | None = None
  looks_per_subject: int = 1


OPTION_NAMES: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(DatasetOptions))
# The fields ``synthesize.render_sequence_examples`` films and renders with.
FILMING: tuple[str, ...] = ("cameras", "crop_size", "margin", "supersample",
                            "pixel_noise", "appearance_seed", "body_seed")
_SEQUENCES = ("train_subjects", "test_subjects", "actions", "cameras")
# (field, minimum) of the integer fields.
_INTS = (("frame_step", 1), ("crop_size", 8), ("sequences_per_action", 1),
         ("frames_per_sequence", 2), ("seed", 0), ("body_seed", 0),
         ("appearance_seed", 0), ("supersample", 1), ("looks_per_subject", 1))


def canonical(name: str, value: Any) -> Any:
  """An option's value as stored: a name or number -> a 1-tuple and lists ->
  tuples for the sequence fields (None kept), numpy scalars -> Python."""
  if name in _SEQUENCES:
    if value is None:
      return None
    if isinstance(value, (str, int, np.integer)):
      value = (value,)
    try:
      value = tuple(value)
    except TypeError:
      raise ValueError(f"config field {name} must be a sequence, got "
                       f"{value!r}.") from None
    if name == "cameras":
      return tuple(int(c) if isinstance(c, np.integer) else c for c in value)
    return value
  if isinstance(value, np.generic):
    return value.item()
  return value


def make(options: DatasetOptions | None = None, **fields) -> DatasetOptions:
  """A ``DatasetOptions``: ``options`` (default: the defaults) with
  ``fields`` changed (``canonical``); not checked.

  Raises:
    ValueError: a field that is not an option (naming the closest ones).
  """
  checks.known_names("dataset option", fields, OPTION_NAMES)
  base = DatasetOptions() if options is None else options
  values = {n: getattr(base, n) for n in OPTION_NAMES}
  values.update({k: canonical(k, v) for k, v in fields.items()})
  return DatasetOptions(**values)


def check_cameras(cameras) -> tuple[int, ...]:
  """Validates camera numbers (1..4, Human3.6M's order); returns a tuple."""
  if isinstance(cameras, (int, np.integer)) and not isinstance(cameras, bool):
    cameras = (cameras,)
  try:
    cams = tuple(cameras)
  except TypeError:
    cams = None
  if (not cams or len(set(cams)) != len(cams) or any(
      isinstance(c, bool) or not isinstance(c, (int, np.integer))
      or c not in motion_lib.CAMERAS for c in cams)):
    raise ValueError(
        f"cameras must be distinct camera numbers from {motion_lib.CAMERAS} "
        "(1-based, the rig's order: 54138969, 55011271, 58860488, 60457274), "
        f"got {cameras!r}.")
  return tuple(int(c) for c in cams)


def rig_subjects() -> list[str]:
  """The subjects of the camera calibration, ``S1, S5, ..., S11``."""
  return sorted(cameras_lib.load_h36m_cameras(), key=lambda s: (len(s), s))


def _check_splits(options, where, any_subject_names, open_splits):
  """The two splits' subjects: distinct names, disjoint splits."""
  # pylint: disable-next=g-import-not-at-top
  from data_pipelines.motion import positions as position_motion
  out = {}
  for field in ("train_subjects", "test_subjects"):
    subjects = getattr(options, field)
    if open_splits and (subjects is None and field == "test_subjects"
                        or subjects == () and field == "train_subjects"):
      out[field] = subjects  # all subjects not in train / evaluation only
      continue
    if (isinstance(subjects, str) or not isinstance(subjects, tuple)
        or not subjects or len(set(subjects)) != len(subjects)):
      raise ValueError(
          f"{where}{field} must be a non-empty tuple of distinct subject "
          f"names such as ('S1', 'S5'), got {subjects!r}"
          + (" (positions: train_subjects may be () for an evaluation-only "
             "dataset, test_subjects None for every other subject)."
             if open_splits else "."))
    for s in subjects:
      if any_subject_names:
        position_motion.check_subject_name(s, f"{where}{field}")
      elif not isinstance(s, str):
        raise ValueError(f"{where}{field}: subject names must be strings, "
                         f"got {s!r}.")
    out[field] = subjects
  overlap = sorted(set(out["train_subjects"] or ())
                   & set(out["test_subjects"] or ()))
  if overlap:
    raise ValueError(
        f"{where}subject(s) {overlap} are in both train_subjects and "
        "test_subjects; the splits must not share people.")
  return out


def check_options(options: DatasetOptions, where: str = "", *,
                  only: Sequence[str] | None = None,
                  any_subject_names: bool = False,
                  open_splits: bool = False) -> DatasetOptions:
  """Validates options at a public entry point; returns a normalised copy.

  Args:
    options: the options (a ``DatasetOptions`` or a TFDS config).
    where: put in front of every message, e.g. ``"config 'procedural': "``.
    only: check just these fields (e.g. ``FILMING``); the others are passed
      through as they are. Default: all.
    any_subject_names: subjects may have any name of a positions file
      (``position_motion.check_subject_name``), not only strings.
    open_splits: ``train_subjects`` may be ``()`` (an evaluation-only
      dataset) and ``test_subjects`` None (every other subject of the file).

  Returns:
    A ``DatasetOptions`` with the checked fields as ``int`` / ``float`` /
    ``bool`` / tuples.

  Raises:
    ValueError: ``"<where><field> must be ..., got <value>."``.
  """
  # pylint: disable-next=g-import-not-at-top
  from data_pipelines.motion import positions as position_motion
  fields = set(OPTION_NAMES if only is None else only)
  out = {n: getattr(options, n) for n in OPTION_NAMES}
  if {"train_subjects", "test_subjects"} <= fields:
    out.update(_check_splits(options, where, any_subject_names, open_splits))
  actions = options.actions
  if "actions" in fields and actions is not None and (
      isinstance(actions, str) or not isinstance(actions, tuple)
      or not actions or not all(isinstance(a, str) and a for a in actions)):
    raise ValueError(f"{where}actions must be None (all) or a non-empty "
                     f"tuple of action names, got {actions!r}.")
  if "cameras" in fields:
    out["cameras"] = check_cameras(options.cameras)
  for field, minimum in _INTS:
    if field in fields:
      out[field] = checks.int_at_least(where + field, getattr(options, field),
                                       minimum)
  if "margin" in fields:
    out["margin"] = checks.number_at_least(
        where + "margin", options.margin, 0,
        " (fraction of the joints' 2D box)")
  if "fps" in fields:
    out["fps"] = checks.positive_number(where + "fps", options.fps,
                                        " (frames per second)")
  for field in ("pixel_noise", "random_yaw"):
    if field in fields:
      out[field] = checks.boolean(where + field, getattr(options, field))
  if "placement" in fields:
    checks.one_of(where + "placement", options.placement,
                  position_motion.PLACEMENTS)
  if "rig_subject" in fields and options.rig_subject is not None:
    rig = rig_subjects()
    if options.rig_subject not in rig:
      raise ValueError(f"{where}rig_subject {options.rig_subject!r} has no "
                       f"cameras; choose one of {rig} (or None).")
  return DatasetOptions(**out)
