"""Reader of the official Human3.6M release: poses, videos and person boxes.

Human3.6M cannot be redistributed; users who have it (registration at
http://vision.imar.ro/human3.6m/) point ``manual_dir`` at the extracted
per-subject archives. Expected layout, one folder per subject::

  <manual_dir>/S9/MyPoseFeatures/D3_Positions/Directions 1.cdf
  <manual_dir>/S9/Videos/Directions 1.54138969.mp4          (one per camera)
  <manual_dir>/S9/MySegmentsMat/ground_truth_bb/Directions 1.54138969.mat
                                                            (optional)

* ``D3_Positions/<name>.cdf``: a NASA CDF file whose variable ``Pose`` has
  shape ``[1, T, 96]``: 32 joints x (x, y, z) in world millimetres (z up),
  50 Hz. ``H36M17_FROM_32`` picks the 17 joints of ``structnet_jax.poses``.
  (``D2_Positions`` has 64 columns, ``D3_Angles`` 78; ``D3_Positions_mono``
  has 96 but in camera coordinates, so it must not be passed here.)
* ``Videos/<name>.<camera id>.mp4``: 50 fps video of that camera, 1000 x 1002
  or 1000 x 1000 pixels (the calibrated size,
  ``data_pipelines/rig/cameras.py``); frame ``t`` shows pose ``t``.
* ``ground_truth_bb/<name>.<camera id>.mat``: MATLAB v7.3 (HDF5) file whose
  dataset ``Masks`` holds one object reference per frame, each a binary mask
  (stored column-major, i.e. transposed) that is 1 inside the person's box.

File names are an action's base name with an optional `` N`` suffix
("Directions", "Directions 1", "TakingPhoto", "WalkDog 1", ...). They map to
the 15 lower-case ``ACTIONS`` (S1's "Photo"/"WalkDog" are "takingphoto"/
"walkingdog", "WalkTogether" is "walkingtogether"); the files of one action of
one subject, sorted by name, are subactions 1, 2, ... ("_ALL" files and
unknown names are skipped with a warning).

Crops follow ``render.crop_box``, so real and synthetic examples look alike:
a square box centred on the person, its side the longer side of the person's
box times ``1 + 2 * margin``, resampled bilinearly (PIL, antialiased when
shrinking) to ``crop_size`` pixels, zeros outside the frame. The person's box
is the ground-truth mask box when its ``.mat`` file is there and readable,
otherwise the box of the 2D joints (projected with the camera's distortion);
the mask box contains the whole body surface, so its crops are a little wider
than joint-box crops (the fallback is said once per sequence in a warning).
Pixel convention: frame pixel (column c, row r) covers the square
``[c, c + 1) x [r, r + 1)`` of the calibration's continuous image coordinates
(the calibration's own convention may differ by half a pixel, about 0.1 crop
pixel); crop pixel (row i, col j) covers ``[x0 + j s, x0 + (j + 1) s)`` with
``s = size / crop_size``, so ``floor(pose_2d)`` is the crop pixel (column,
row) holding a joint, as in ``render``.

  seqs = find_sequences("/data/h36m", subjects=["S9"], actions=["walking"])
  for ex in sequence_examples(seqs[0], frame_step=5):
    ex["image"]  # uint8 [128, 128, 3]; ex["pose"] float32 [17, 3] mm

Public API: ``ReleaseSequence``, ``find_sequences``, ``load_world_poses``,
``sequence_examples``, ``crop_and_resize``, ``action_from_filename``,
``ACTIONS`` and ``H36M17_FROM_32``. Needs the optional packages cdflib, av
(PyAV), h5py (for the mask files) and pillow, imported when first used.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import warnings
from typing import Iterator, Sequence

import jax
import numpy as np

from data_pipelines import checks
from data_pipelines.motion import core as motion_lib
from data_pipelines.render import core as render
from data_pipelines.rig import cameras as cameras_lib
from data_pipelines.rig import kinematics
from structnet_jax import poses as poses_lib

RELEASE_URL = "http://vision.imar.ro/human3.6m/"
POSE_VARIABLE = "Pose"
NUM_POSE_COLUMNS = 96  # 32 joints x (x, y, z)
VIDEO_EXTENSION = ".mp4"
BBOX_DATASET = "Masks"

# The 17 joints of ``structnet_jax.poses`` among the release's 32 (the same
# tree as the exponential-map release's, see ``h36m_skeleton32.json``).
H36M17_FROM_32 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

ACTIONS: tuple[str, ...] = (
    "directions", "discussion", "eating", "greeting", "phoning", "posing",
    "purchases", "sitting", "sittingdown", "smoking", "takingphoto",
    "waiting", "walking", "walkingdog", "walkingtogether")

# Base file names (lower-cased, spaces removed) -> our action names.
_ACTION_ALIASES = {a: a for a in ACTIONS}
_ACTION_ALIASES.update(
    photo="takingphoto", walkdog="walkingdog", walktogether="walkingtogether")

_LAYOUT = (
    "Expected <manual_dir>/<subject>/MyPoseFeatures/D3_Positions/<Action>.cdf "
    "and <manual_dir>/<subject>/Videos/<Action>.<camera id>.mp4 (optionally "
    "<manual_dir>/<subject>/MySegmentsMat/ground_truth_bb/<Action>.<camera id>"
    ".mat), i.e. the subjects' 'D3 Positions' pose and 'Videos' archives of "
    f"the official release ({RELEASE_URL}, registration required) extracted "
    "into manual_dir.")

_SUBJECT_RE = re.compile(r"^S\d+$")
_NAME_RE = re.compile(r"^(?P<base>.*?)(?: (?P<num>\d+))?$")


@dataclasses.dataclass(frozen=True)
class ReleaseSequence(motion_lib.Take):
  """One (subject, action, subaction, camera) video of the release.

  A ``motion.Take`` (its ``subject``, ``action``, ``subaction`` and ``key``)
  with the files that hold it: the filmed video, not joints to render, so
  not a ``motion.Motion`` (its world joints are ``load_world_poses(
  cdf_path)``).

  Attributes:
    subject: e.g. ``"S9"``.
    action: one of ``ACTIONS``.
    subaction: 1-based rank of the pose file among the subject's files of the
      action, sorted by name.
    camera: 1..4, the camera's index in the calibration.
    camera_id: the camera's serial number, e.g. ``"54138969"``.
    cdf_path: the ``D3_Positions`` pose file (world joints, all cameras).
    video_path: this camera's video.
    bbox_path: this camera's ``ground_truth_bb`` mask file, ``None`` when the
      release copy has none.
  """
  camera: int
  camera_id: str
  cdf_path: str
  video_path: str
  bbox_path: str | None


def _optional(module: str):
  """Imports an optional dependency, saying how to install it."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    package = {"PIL.Image": "pillow"}.get(module, module)
    raise ImportError(
        f"reading the Human3.6M release needs {package!r}: pip install "
        f"{package} (or pip install -e '.[data]').") from e


def action_from_filename(stem: str) -> str | None:
  """Our action name of a release file name without extension, or ``None``.

  ``"Directions 1"`` -> ``"directions"``, ``"WalkDog"`` -> ``"walkingdog"``,
  ``"TakingPhoto 1"`` -> ``"takingphoto"``; ``"_ALL 1"`` and unknown names
  give ``None``.
  """
  match = _NAME_RE.match(stem.strip())
  base = match.group("base") if match else stem
  return _ACTION_ALIASES.get(base.replace(" ", "").lower())


def _subject_key(subject: str):
  return (len(subject), subject)


def _as_list(values, name: str) -> list:
  if isinstance(values, str):
    return [values]
  try:
    return list(values)
  except TypeError as e:
    raise ValueError(f"{name} must be a sequence, got {values!r}.") from e


def _check_camera_index(camera, rig_ids: Sequence[str]) -> int:
  if (isinstance(camera, bool) or not isinstance(camera, (int, np.integer))
      or not 1 <= camera <= len(rig_ids)):
    ids = ", ".join(f"{i + 1}: {c}" for i, c in enumerate(rig_ids))
    raise ValueError(f"unknown camera {camera!r}; cameras are numbered "
                     f"1..{len(rig_ids)} ({ids}).")
  return int(camera)


def find_sequences(manual_dir: str | os.PathLike,
                   subjects: Sequence[str] | None = None,
                   actions: Sequence[str] | None = None,
                   cameras: Sequence[int] = (1, 2, 3, 4)
                   ) -> list[ReleaseSequence]:
  """Every (subject, action, subaction, camera) video with poses of a release.

  Args:
    manual_dir: the folder holding the extracted release (``S1/``, ``S5/``...).
    subjects: subject folders to read, e.g. ``["S9", "S11"]``; default every
      ``S<n>`` folder of ``manual_dir`` that the camera calibration knows.
    actions: names from ``ACTIONS`` to keep; default all.
    cameras: camera indices 1..4 to keep.

  Returns:
    Sequences sorted by subject, action, subaction and camera. Their
    ``video_path`` exists; ``bbox_path`` is ``None`` where there is no
    ground-truth box file.

  Raises:
    FileNotFoundError: ``manual_dir``, a subject folder, its ``D3_Positions``
      folder or a video of a pose file is missing (the message says which file
      and how to get it).
    ValueError: an unknown subject, action or camera is requested.
  """
  rig = cameras_lib.load_h36m_cameras()
  any_subject = next(iter(rig.values()))
  rig_ids = [c.id for c in any_subject]
  known_subjects = sorted(rig, key=_subject_key)
  cameras = [_check_camera_index(c, rig_ids) for c in _as_list(cameras,
                                                               "cameras")]
  if actions is not None:
    actions = _as_list(actions, "actions")
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
      raise ValueError(f"unknown action(s) {unknown}; use names from "
                       f"h36m_release.ACTIONS: {list(ACTIONS)}.")
  if subjects is not None:
    subjects = _as_list(subjects, "subjects")
    unknown = [s for s in subjects if s not in rig]
    if unknown:
      raise ValueError(f"unknown subject(s) {unknown}; the camera calibration "
                       f"(data_pipelines/rig/h36m_cameras.json) has "
                       f"{known_subjects}.")

  root = checks.existing_path(
      "Human3.6M folder", manual_dir, "Download the official release and "
      f"pass its folder as manual_dir. {_LAYOUT}", kind="dir")
  if subjects is None:
    present = [d for d in os.listdir(root)
               if _SUBJECT_RE.match(d) and os.path.isdir(os.path.join(root, d))]
    strangers = sorted(s for s in present if s not in rig)
    if strangers:
      warnings.warn(f"skipping subject folder(s) {strangers} of {root!r}: the "
                    f"camera calibration has no such subject "
                    f"({known_subjects}).", stacklevel=2)
    subjects = sorted((s for s in present if s in rig), key=_subject_key)
    if not subjects:
      raise FileNotFoundError(
          f"no subject folders ({', '.join(known_subjects)}) in {root!r}. "
          + _LAYOUT)

  sequences = []
  for subject in subjects:
    sequences.extend(_subject_sequences(root, subject, actions, cameras,
                                        rig_ids))
  return sequences


def _subject_sequences(root, subject, actions, cameras, rig_ids):
  subject_dir = checks.existing_path(
      "subject folder", os.path.join(root, subject),
      f"Extract {subject}'s archives of the release there, or leave "
      f"{subject} out of subjects. " + _LAYOUT, kind="dir")
  pose_dir = checks.existing_path(
      "pose folder", os.path.join(subject_dir, "MyPoseFeatures",
                                  "D3_Positions"),
      f"Extract {subject}'s 'D3 Positions' pose archive of the release into "
      f"{root!r}. " + _LAYOUT, kind="dir")
  stems = sorted(f[:-4] for f in os.listdir(pose_dir)
                 if f.lower().endswith(".cdf"))
  if not stems:
    raise FileNotFoundError(
        f"no .cdf pose files in {pose_dir!r}. Extract {subject}'s 'D3 "
        f"Positions' pose archive of the release there. " + _LAYOUT)
  by_action: dict[str, list[str]] = {}
  skipped = []
  for stem in stems:
    action = action_from_filename(stem)
    if action is None:
      skipped.append(stem + ".cdf")
    else:
      by_action.setdefault(action, []).append(stem)
  if skipped:
    warnings.warn(f"skipping {len(skipped)} pose file(s) of {pose_dir!r} that "
                  f"name no single action of h36m_release.ACTIONS: {skipped}.",
                  stacklevel=3)
  video_dir = os.path.join(subject_dir, "Videos")
  bbox_dir = os.path.join(subject_dir, "MySegmentsMat", "ground_truth_bb")
  sequences, missing = [], []
  for action in sorted(by_action):
    if actions is not None and action not in actions:
      continue
    for subaction, stem in enumerate(by_action[action], start=1):
      for camera in cameras:
        cam_id = rig_ids[camera - 1]
        video = os.path.join(video_dir, f"{stem}.{cam_id}{VIDEO_EXTENSION}")
        if not os.path.isfile(video):
          missing.append(video)
          continue
        bbox = os.path.join(bbox_dir, f"{stem}.{cam_id}.mat")
        sequences.append(ReleaseSequence(
            subject=subject, action=action, subaction=subaction,
            camera=camera, camera_id=cam_id,
            cdf_path=os.path.join(pose_dir, stem + ".cdf"),
            video_path=video,
            bbox_path=bbox if os.path.isfile(bbox) else None))
  if missing:
    raise FileNotFoundError(
        f"video {missing[0]!r} is missing ({len(missing)} video(s) of "
        f"{subject} missing in all) although its poses are there. Extract "
        f"{subject}'s 'Videos' archive of the release into {root!r}, or "
        "restrict actions= / cameras= to the videos you have. " + _LAYOUT)
  return sequences


def load_world_poses(cdf_path: str | os.PathLike) -> np.ndarray:
  """The 17 world joints of a ``D3_Positions`` pose file.

  Args:
    cdf_path: ``<subject>/MyPoseFeatures/D3_Positions/<Action>.cdf``.

  Returns:
    ``[T, 17, 3]`` float32, world millimetres (z up), joint order of
    ``structnet_jax.poses``.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a CDF file, no ``Pose`` variable, not 96 columns, no
      frames, or NaN/infinite values (the message names the file).
  """
  cdflib = _optional("cdflib")

  path = checks.existing_path(
      "pose file", cdf_path, "Pass a file of <subject>/MyPoseFeatures/"
      f"D3_Positions/ of the official Human3.6M release ({RELEASE_URL}).",
      kind="file")
  try:
    cdf = cdflib.CDF(path)
    info = cdf.cdf_info()
    names = list(info.zVariables) + list(info.rVariables)
    pose = None if POSE_VARIABLE not in names else cdf.varget(POSE_VARIABLE)
  except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
    raise ValueError(
        f"pose file {path!r} is not a readable CDF file ({type(e).__name__}: "
        f"{e}). Re-extract it from the subject's 'D3 Positions' archive of the "
        "release.") from e
  if pose is None:
    raise ValueError(
        f"pose file {path!r} has no variable {POSE_VARIABLE!r} (it has "
        f"{names}). Pass a D3_Positions file of the release "
        "(MyPoseFeatures/D3_Positions/*.cdf).")
  pose = np.asarray(pose)
  if pose.ndim < 1 or pose.shape[-1] != NUM_POSE_COLUMNS:
    raise ValueError(
        f"pose file {path!r}: variable {POSE_VARIABLE!r} has shape "
        f"{pose.shape}, expected [1, T, {NUM_POSE_COLUMNS}] (32 joints x "
        "x/y/z mm). D2_Positions files have 64 columns and D3_Angles 78; pass "
        "the D3_Positions file of this sequence.")
  pose = pose.reshape(-1, NUM_POSE_COLUMNS)
  if pose.shape[0] == 0:
    raise ValueError(f"pose file {path!r} holds no frames. Re-extract it from "
                     "the subject's 'D3 Positions' archive of the release.")
  bad = np.flatnonzero(~np.all(np.isfinite(pose), axis=-1))
  if bad.size:
    raise ValueError(
        f"pose file {path!r} has {bad.size} frame(s) with NaN or infinite "
        f"values (first: {bad[:5].tolist()}). Re-extract it from the release, "
        "or leave this sequence out (actions= / subjects= of find_sequences).")
  joints = kinematics.reduce_to_h36m17(pose.reshape(-1, 32, 3), H36M17_FROM_32)
  return joints.astype(np.float32)


def crop_and_resize(image: np.ndarray, box, crop_size: int) -> np.ndarray:
  """A square crop of a frame, resampled to ``crop_size`` pixels.

  Args:
    image: ``[H, W, C]`` uint8 frame.
    box: ``(x0, y0, size)`` in the frame's continuous pixel coordinates
      (pixel (c, r) covers ``[c, c + 1) x [r, r + 1)``); may reach outside
      the frame, which reads as zeros.
    crop_size: output side in pixels.

  Returns:
    ``[crop_size, crop_size, C]`` uint8, bilinear (PIL; antialiased when
    shrinking).
  """
  Image = _optional("PIL.Image")  # pylint: disable=invalid-name

  x0, y0, side = (float(v) for v in box)
  h, w = image.shape[:2]
  if not (np.isfinite([x0, y0, side]).all() and 0 < side <= 16 * max(h, w)):
    raise ValueError(f"crop box {(x0, y0, side)} is not a plausible box of a "
                     f"{w} x {h} frame.")
  pad = int(np.ceil(side / crop_size)) + 2  # room for the filter's support
  ix0, iy0 = int(np.floor(x0)) - pad, int(np.floor(y0)) - pad
  ix1, iy1 = int(np.ceil(x0 + side)) + pad, int(np.ceil(y0 + side)) + pad
  canvas = np.zeros((iy1 - iy0, ix1 - ix0) + image.shape[2:], np.uint8)
  sx0, sx1, sy0, sy1 = max(ix0, 0), min(ix1, w), max(iy0, 0), min(iy1, h)
  if sx0 < sx1 and sy0 < sy1:
    canvas[sy0 - iy0:sy1 - iy0, sx0 - ix0:sx1 - ix0] = image[sy0:sy1, sx0:sx1]
  out = Image.fromarray(canvas).resize(
      (crop_size, crop_size), Image.Resampling.BILINEAR,
      box=(x0 - ix0, y0 - iy0, x0 - ix0 + side, y0 - iy0 + side))
  return np.asarray(out)


class _MaskBoxes:
  """Per-frame person boxes ``(x_lo, y_lo, x_hi, y_hi)`` of a mask file."""

  def __init__(self, path: str, frame_shape):
    h5py = _optional("h5py")

    self.path = path
    self.frame_shape = tuple(frame_shape)  # (H, W)
    self.file = h5py.File(path, "r")
    try:
      refs = np.asarray(self.file[BBOX_DATASET][()]).reshape(-1)
      if refs.size and not isinstance(refs[0], h5py.Reference):
        raise ValueError(f"dataset {BBOX_DATASET!r} holds {refs.dtype}, not "
                         "object references")
      self.refs = refs
    except BaseException:
      self.file.close()
      raise

  def __len__(self):
    return len(self.refs)

  def box(self, t: int):
    """The mask's box in continuous pixel coordinates, or None if empty."""
    mask = np.asarray(self.file[self.refs[t]][()]).T  # MATLAB: column-major
    if mask.shape != self.frame_shape:
      raise ValueError(f"mask {t} has shape {mask.shape}, expected "
                       f"{self.frame_shape} (H, W)")
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    if not cols.size:
      return None
    return cols[0], rows[0], cols[-1] + 1.0, rows[-1] + 1.0

  def close(self):
    self.file.close()


def _square_box(lo, hi, margin: float) -> np.ndarray:
  """``render.crop_box``'s square ``(x0, y0, size)`` around a box ``lo..hi``."""
  lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
  size = max(float(np.max(hi - lo)) * (1.0 + 2.0 * margin), 1.0)
  centre = (lo + hi) / 2
  return np.array([centre[0] - size / 2, centre[1] - size / 2, size])


def sequence_examples(seq: ReleaseSequence, *, frame_step: int = 1,
                      crop_size: int = 128, margin: float = 0.2
                      ) -> Iterator[dict]:
  """Person crops and poses of one release video, decoded in order.

  Frame ``t`` is kept when ``t % frame_step == 0`` and ``t`` is below both
  the video's and the pose file's frame counts (they can differ by a few
  frames in the release). The video is decoded sequentially with PyAV.
  Arguments, the camera and the pose file are checked when this is called;
  the video and the mask file are opened on the first ``next()``.

  Args:
    seq: a sequence of ``find_sequences``.
    frame_step: keep every ``frame_step``-th frame (50 fps / frame_step).
    crop_size: side of the square crops, pixels.
    margin: box margin on each side as a fraction of the person's box (as
      ``render.crop_box``).

  Yields:
    Per kept frame: ``image`` uint8 ``[crop_size, crop_size, 3]`` (RGB);
    ``pose`` float32 ``[17, 3]`` root-relative camera-frame mm (pelvis 0);
    ``pose_2d`` float32 ``[17, 2]`` the distorted projections of the joints
    in the crop's pixel coordinates; ``subject``, ``action``, ``subaction``,
    ``camera`` (1..4), ``camera_id`` and ``frame`` (the video frame index).

  Raises:
    FileNotFoundError / ValueError: a missing or unreadable pose file or
      video, joints behind the camera, a video whose size is not the
      calibrated one, or bad arguments (messages name the file and the fix).
  """
  if not isinstance(seq, ReleaseSequence):
    raise ValueError(f"seq must be a ReleaseSequence from find_sequences, got "
                     f"{type(seq).__name__}.")
  frame_step = checks.int_at_least("frame_step", frame_step, 1)
  crop_size = checks.int_at_least("crop_size", crop_size, 1)
  margin = checks.number_at_least("margin", margin, 0,
                                  " (fraction of the box)")
  rig = cameras_lib.load_h36m_cameras()
  if seq.subject not in rig:
    raise ValueError(f"unknown subject {seq.subject!r}; the camera calibration "
                     f"has {sorted(rig, key=_subject_key)}.")
  rig_ids = [c.id for c in rig[seq.subject]]
  _check_camera_index(seq.camera, rig_ids)
  cam = cameras_lib.camera_for(seq.subject, seq.camera - 1, rig)
  if str(seq.camera_id) != cam.id:
    raise ValueError(
        f"{seq.video_path!r}: camera {seq.camera} of {seq.subject} has id "
        f"{cam.id}, not {seq.camera_id}. Build sequences with find_sequences.")
  checks.existing_path(
      "video", seq.video_path, f"Extract {seq.subject}'s 'Videos' archive of "
      f"the release ({RELEASE_URL}) into the subject folder, or call "
      "find_sequences again.", kind="file")

  world = load_world_poses(seq.cdf_path)  # [T, 17, 3]
  joints_cam = np.asarray(cameras_lib.world_to_camera(world, cam), np.float32)
  behind = np.flatnonzero(np.any(joints_cam[..., 2] <= 1.0, axis=-1))
  if behind.size:
    raise ValueError(
        f"pose file {seq.cdf_path!r}: joints of {behind.size} frame(s) (first "
        f"{behind[:5].tolist()}) are behind camera {seq.camera_id} of "
        f"{seq.subject}. Pass the subject's world-frame D3_Positions file (not "
        "D3_Positions_mono, not another subject's).")
  uv = np.asarray(cameras_lib.project(joints_cam, cam.focal, cam.center,
                                      cam.radial, cam.tangential), np.float64)
  joint_boxes = np.asarray(jax.vmap(lambda j: render.crop_box(j, margin))(
      uv.astype(np.float32)), np.float64)  # [T, 3] (x0, y0, size)
  pose = poses_lib.root_relative(joints_cam)
  poses_lib.check_poses(pose, f"poses of {seq.cdf_path!r}")
  res_w, res_h = (int(v) for v in np.asarray(cam.res))
  num_poses = pose.shape[0]
  meta = dict(subject=seq.subject, action=seq.action, subaction=seq.subaction,
              camera=seq.camera, camera_id=cam.id)
  return _decode(seq, frame_step, crop_size, margin, uv, joint_boxes, pose,
                 (res_h, res_w), num_poses, meta)


def _open_masks(seq: ReleaseSequence, frame_shape):
  if seq.bbox_path is None:
    warnings.warn(
        f"no ground_truth_bb mask file for {seq.video_path!r}; cropping "
        "around the projected joints instead (extract the subject's "
        "'Segments mat gt bb' archive into MySegmentsMat/ground_truth_bb to "
        "use the release's boxes).", stacklevel=2)
    return None
  try:
    return _MaskBoxes(seq.bbox_path, frame_shape)
  except (ImportError, OSError, KeyError, ValueError, TypeError) as e:
    warnings.warn(
        f"cannot read the person boxes of {seq.bbox_path!r} "
        f"({type(e).__name__}: {e}); cropping around the projected joints "
        "instead. Re-extract the file from the release to use its boxes.",
        stacklevel=2)
    return None


def _decode(seq, frame_step, crop_size, margin, uv, joint_boxes, pose,
            frame_shape, num_poses, meta):
  av = _optional("av")

  try:
    container = av.open(seq.video_path)
  except (OSError, ValueError, av.FFmpegError) as e:
    raise ValueError(
        f"video {seq.video_path!r} cannot be opened ({type(e).__name__}: "
        f"{e}). Re-extract it from the subject's 'Videos' archive of the "
        "release.") from e
  masks = None
  mask_failed = False
  try:
    if not container.streams.video:
      raise ValueError(f"video {seq.video_path!r} has no video stream. "
                       "Re-extract it from the release.")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    masks = _open_masks(seq, frame_shape)
    try:
      frames = container.decode(stream)
      for t, frame in enumerate(frames):
        if t >= num_poses:
          break
        if t % frame_step:
          continue
        if (frame.height, frame.width) != frame_shape:
          raise ValueError(
              f"video {seq.video_path!r} is {frame.width} x {frame.height} "
              f"pixels but camera {seq.camera_id} is calibrated at "
              f"{frame_shape[1]} x {frame_shape[0]}; the projections need the "
              "original release videos (not resized copies).")
        box = None
        if masks is not None:
          try:
            if t >= len(masks):
              raise IndexError(f"the file holds {len(masks)} masks")
            mask_box = masks.box(t)
            if mask_box is None:
              raise ValueError("the mask is empty")
            box = _square_box(mask_box[:2], mask_box[2:], margin)
          except (IndexError, KeyError, ValueError, TypeError, OSError) as e:
            if not mask_failed:
              warnings.warn(
                  f"no person box for frame {t} in {seq.bbox_path!r} "
                  f"({type(e).__name__}: {e}); cropping around the projected "
                  "joints for such frames.", stacklevel=2)
            mask_failed = True
        if box is None:
          box = joint_boxes[t]
        image = crop_and_resize(frame.to_ndarray(format="rgb24"), box,
                                crop_size)
        pose_2d = (uv[t] - box[:2]) * (crop_size / box[2])
        yield dict(image=image, pose=pose[t],
                   pose_2d=pose_2d.astype(np.float32), frame=t, **meta)
    except av.FFmpegError as e:
      raise ValueError(
          f"video {seq.video_path!r} cannot be decoded ({type(e).__name__}: "
          f"{e}). Re-extract it from the subject's 'Videos' archive of the "
          "release.") from e
  finally:
    if masks is not None:
      masks.close()
    container.close()
