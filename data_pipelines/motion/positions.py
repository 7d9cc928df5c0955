"""Motion as 17-joint positions: any capture, rendered through the rig.

Positions are the common denominator of motion capture collections, lab
systems and poses fitted to video, so they are a motion source of their own,
next to the procedural one and Human3.6M's exponential maps.

File format: an ``.npz`` whose keys name sequences ``"{subject}/{action}/
{subaction}"`` (e.g. ``"P03/jumping_jacks/1"``; subject: letters, digits,
``_ . -``; action: any name without ``/``; subaction: a non-negative integer)
and whose values are float arrays ``[T, 17, 3]``:

* joint positions in **millimetres**,
* in a **world frame with z up** whose plane ``z = 0`` is the floor under
  the soles (so ankles stand some 70-100 mm above it),
* in the **Human3.6M 17-joint order** of ``structnet_jax.poses.JOINT_NAMES``
  (0 pelvis, 1-3 right hip/knee/ankle, 4-6 left hip/knee/ankle, 7 spine,
  8 thorax, 9 neck/nose, 10 head, 11-13 left shoulder/elbow/wrist, 14-16
  right shoulder/elbow/wrist; README.md has a picture).

One optional extra entry, ``"fps"`` (a scalar), gives the frame rate;
``load_position_motion(fps=...)`` overrides it, and 50 Hz (Human3.6M's rate)
is assumed without either. ``save_position_motion`` writes such a file.

Bodies. Bone lengths may change from frame to frame and need not match any
skeleton of ours: the renderer fits its body volumes to the joints as given
(``render.body_primitives``) and nothing is retargeted.

Headings and placement. Each sequence keeps its own heading as captured,
optionally turned by a random yaw per sequence (``random_yaw``, seeded by the
sequence's key). It is then placed in the capture volume so that every joint
of every frame is inside the image of each camera used (``placement``):

* ``"auto"`` (default): kept where it is when it already stands on the floor
  (its lowest joint's median height within ``STANDING_RANGE_MM``) and is
  seen by every camera (so Human3.6M's own world positions keep their
  viewpoints); otherwise placed as ``"centre"`` and, when the cameras still
  do not all see every frame (a walk longer than the room), as
  ``"per_frame"`` (logged);
* ``"centre"``: moved horizontally so that the middle of the pelvis' range is
  at the centre of the rig (where the cameras' optical axes meet) and
  vertically so that the lowest joint's median height is
  ``synthesize.ANKLE_HEIGHT_MM``;
* ``"per_frame"``: as ``"centre"``, but every frame's pelvis is put over the
  rig's centre (for walks longer than the room; the path is lost);
* ``"as_given"``: never moved.

A sequence that the cameras do not all see after placement is refused with
its name and the fix.

  seqs = load_position_motion("my_motion.npz", step=2, random_yaw=True)
  seqs["P03/jumping_jacks/1"].world_joints   # [T', 17, 3] mm, z up
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from typing import Iterable, Mapping, Sequence

from absl import logging
import numpy as np

from data_pipelines import checks
from data_pipelines.motion import core as motion_lib
from data_pipelines.motion import npz_files
from data_pipelines.render import synthesize
from data_pipelines.rig import cameras as cameras_lib
from structnet_jax import poses as poses_lib

FPS_KEY = "fps"
DEFAULT_FPS = 50.0
PLACEMENTS = ("auto", "centre", "per_frame", "as_given")
# Rig whose cameras film subjects that are not Human3.6M subjects.
DEFAULT_RIG_SUBJECT = "S9"
# Median (over frames) of the mean thigh and shin length, mm, of a person.
LEG_BONE_RANGE_MM = (150.0, 700.0)
# No bone of a person is this long in any frame (a misplaced joint).
MAX_BONE_MM = 1200.0
# Median height (mm) of the lowest joint of a sequence standing on z = 0.
STANDING_RANGE_MM = (-50.0, 300.0)
# A joint counts as seen by a camera within its image enlarged by this
# fraction of the image's side on every side: an outstretched hand may leave
# the picture a little, as in the recordings (0.4% of the Human3.6M motion's
# S9/S11 frames reach up to 7% beyond an image edge).
VIEW_MARGIN = 0.1

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ACTION_RE = re.compile(r"^[^|\x00-\x1f]+$")  # a table column name
_KEY_FORM = ("'{subject}/{action}/{subaction}', e.g. 'S1/walking/1' or "
             "'P03/jumping_jacks/2' (subject: letters, digits, '_', '.', '-'; "
             "action: no '|' or control characters; subaction: an integer)")
_LEG_BONES = tuple(i for i, (p, c) in enumerate(poses_lib.BONES)
                   if poses_lib.JOINT_NAMES[c].endswith(("knee", "ankle")))


# ---------------------------------------------------------------------------
# Checking one sequence.


def parse_key(key: str, where: str = "positions file") -> tuple[str, str, int]:
  """``"S1/walking/1"`` -> ``("S1", "walking", 1)``; a clear error otherwise."""
  parts = key.split("/") if isinstance(key, str) else []
  if (len(parts) != 3 or not _NAME_RE.match(parts[0]) or not parts[1].strip()
      or not _ACTION_RE.match(parts[1]) or not parts[2].isdigit()):
    raise ValueError(
        f"{where}: key {key!r} does not name a sequence; keys must be "
        f"{_KEY_FORM}. Rename the entry (the only other entry allowed is "
        f"{FPS_KEY!r}, a scalar frame rate).")
  return parts[0], parts[1], int(parts[2])


def check_subject_name(name, where: str) -> str:
  """A subject name of a key (letters, digits, ``_ . -``); returns it."""
  if not isinstance(name, str) or not _NAME_RE.match(name):
    raise ValueError(f"{where}: {name!r} is not a subject name; use letters, "
                     "digits, '_', '.' and '-' (e.g. 'S1', 'P03').")
  return name


def check_positions(joints, where: str) -> np.ndarray:
  """Validates one sequence's joints; returns them as float64 ``[T, 17, 3]``.

  Args:
    joints: array-like ``[T, 17, 3]``, mm, z-up world, Human3.6M order.
    where: names the sequence in error messages (file and key).

  Raises:
    ValueError: not numeric, wrong shape or joint count, no frames, NaN or
      infinite values, bone lengths outside a person's (metres or
      centimetres instead of millimetres, a misplaced joint), each naming
      ``where`` and the fix.
  """
  arr = np.asarray(joints)
  if not (np.issubdtype(arr.dtype, np.floating)
          or np.issubdtype(arr.dtype, np.integer)):
    raise ValueError(f"{where}: expected a float array [T, 17, 3] of joint "
                     f"positions in mm, got dtype {arr.dtype}.")
  if arr.ndim != 3 or arr.shape[1:] != (poses_lib.NUM_JOINTS, 3):
    hint = ""
    if arr.ndim == 3 and arr.shape[2] == 3:
      hint = (f" It has {arr.shape[1]} joints: map them to the 17 Human3.6M "
              "joints (structnet_jax.poses.JOINT_NAMES) first.")
    elif arr.ndim == 2 and arr.shape[1] == 3 * poses_lib.NUM_JOINTS:
      hint = " Reshape flat rows with joints.reshape(-1, 17, 3)."
    elif arr.ndim == 2 and arr.shape[1] == 99:
      hint = (" [T, 99] rows are exponential maps: use the h36m_motion "
              "source (data_pipelines/motion/h36m.py) for those.")
    raise ValueError(f"{where}: expected shape [T, 17, 3] (frames, joints, "
                     f"xyz mm), got {arr.shape}.{hint}")
  if arr.shape[0] == 0:
    raise ValueError(f"{where}: the sequence has no frames; drop the entry.")
  arr = arr.astype(np.float64)
  finite = np.isfinite(arr).all(axis=-1)
  if not finite.all():
    frames = np.flatnonzero(~finite.all(axis=1))
    joint = int(np.flatnonzero(~finite[frames[0]])[0])
    raise ValueError(
        f"{where}: {frames.size} frame(s) hold NaN or infinite values (first: "
        f"frame {int(frames[0])}, joint {joint} "
        f"{poses_lib.JOINT_NAMES[joint]}). Fill the gaps (e.g. interpolate) "
        "or cut those frames out before building.")
  bones = poses_lib.bone_lengths(arr)  # [T, 16]
  leg = float(np.median(bones[:, _LEG_BONES].mean(axis=1)))
  low, high = LEG_BONE_RANGE_MM
  if not low <= leg <= high:
    if 0.15 <= leg <= 0.7:
      fix = "the values look like metres: multiply them by 1000"
    elif 15.0 <= leg <= 70.0:
      fix = "the values look like centimetres: multiply them by 10"
    else:
      fix = ("check the units (millimetres) and the joint order "
             "(structnet_jax.poses.JOINT_NAMES)")
    raise ValueError(
        f"{where}: the median thigh/shin length is {leg:.4g}, outside a "
        f"person's {low:.0f}-{high:.0f} mm; {fix}.")
  too_long = bones > MAX_BONE_MM
  if too_long.any():
    frame, bone = (int(v) for v in np.argwhere(too_long)[0])
    p, c = poses_lib.BONES[bone]
    raise ValueError(
        f"{where}: in frame {frame} the bone {poses_lib.JOINT_NAMES[p]} -> "
        f"{poses_lib.JOINT_NAMES[c]} is {bones[frame, bone]:.0f} mm long "
        f"({int(too_long.any(axis=1).sum())} frame(s) have a bone over "
        f"{MAX_BONE_MM:.0f} mm): a joint is misplaced or the joint order is "
        "not Human3.6M's. Repair or drop those frames.")
  trunk = arr[:, poses_lib.JOINT_NAMES.index("thorax")] - arr[:, poses_lib.ROOT]
  trunk = np.median(trunk / np.maximum(
      np.linalg.norm(trunk, axis=-1, keepdims=True), 1e-9), axis=0)
  axis = int(np.argmax(np.abs(trunk)))
  if axis != 2 and abs(trunk[axis]) > 0.8:
    logging.warning(
        "%s: the trunk (pelvis -> thorax) points along %s%s in most frames; "
        "if the person is not lying down, the file is not z-up (rotate it "
        "so that z points up).", where, "+-"[int(trunk[axis] < 0)], "xy"[axis])
  return arr


# ---------------------------------------------------------------------------
# Headings and placement.


def rig_subject_for(subject: str, rig_subject: str | None = None) -> str:
  """The Human3.6M subject whose cameras film ``subject``.

  ``rig_subject`` when given; else ``subject`` itself when it is a
  Human3.6M subject of the calibration, else ``DEFAULT_RIG_SUBJECT``.
  """
  rig = cameras_lib.load_h36m_cameras()
  if rig_subject is not None:
    return synthesize.check_subject(rig_subject)
  return subject if subject in rig else DEFAULT_RIG_SUBJECT


def rig_centre(rig_subject: str, cameras: Sequence[int] = synthesize.CAMERAS
               ) -> np.ndarray:
  """``[2]`` mm: the floor point under where the cameras' optical axes meet.

  The least-squares point closest to the optical axes of ``cameras``, its
  height dropped.
  """
  normal = np.zeros((3, 3))
  rhs = np.zeros(3)
  for camera in synthesize.check_cameras(cameras):
    cam = cameras_lib.camera_for(rig_subject, camera - 1)
    axis = np.asarray(cam.rotation, np.float64)[2]  # optical axis, world
    proj = np.eye(3) - np.outer(axis, axis)
    normal += proj
    rhs += proj @ np.asarray(cam.translation, np.float64)
  return np.linalg.lstsq(normal, rhs, rcond=None)[0][:2]


def frames_seen(world_joints, rig_subject: str,
                cameras: Sequence[int] = synthesize.CAMERAS,
                lift_mm: float = 0.0) -> np.ndarray:
  """``[T]`` bool: frames whose joints all lie in every camera's image.

  A joint lies in an image when it is in front of the camera and projects
  (pinhole) into the image enlarged by ``VIEW_MARGIN`` of its side.

  Args:
    world_joints: ``[T, 17, 3]`` mm, z-up world.
    rig_subject: a Human3.6M subject of the calibration.
    cameras: camera numbers 1..4.
    lift_mm: height added before filming (``synthesize``'s ankle lift).
  """
  joints = np.asarray(world_joints, np.float64) + np.array([0.0, 0.0, lift_mm])
  seen = np.ones(joints.shape[0], bool)
  for camera in synthesize.check_cameras(cameras):
    cam = cameras_lib.camera_for(rig_subject, camera - 1)
    local = synthesize.camera_frame_joints(joints, cam)
    depth = local[..., 2]
    safe = np.maximum(depth, 1.0)
    focal = np.asarray(cam.focal, np.float64)
    centre = np.asarray(cam.center, np.float64)
    width, height = (float(v) for v in np.asarray(cam.res))
    u = focal[0] * local[..., 0] / safe + centre[0]
    v = focal[1] * local[..., 1] / safe + centre[1]
    du, dv = VIEW_MARGIN * width, VIEW_MARGIN * height
    inside = ((depth > 100.0) & (u >= -du) & (u <= width + du) & (v >= -dv)
              & (v <= height + dv))
    seen &= inside.all(axis=1)
  return seen


def random_heading(world_joints, key: str, seed: int = 0) -> np.ndarray:
  """Turns a sequence about the vertical through the middle of its pelvis'
  range by a yaw drawn uniformly from ``[0, 2 pi)``, seeded by ``(seed,
  key)``; ``[T, 17, 3]`` mm in and out."""
  joints = np.asarray(world_joints, np.float64)
  rng = np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])
  yaw = rng.uniform(0.0, 2.0 * np.pi)
  c, s = np.cos(yaw), np.sin(yaw)
  rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
  pelvis = joints[:, poses_lib.ROOT, :2]
  pivot = np.append(0.5 * (pelvis.min(axis=0) + pelvis.max(axis=0)), 0.0)
  return (joints - pivot) @ rot.T + pivot


def _stands_on_floor(joints: np.ndarray) -> bool:
  lowest = float(np.median(joints[..., 2].min(axis=1)))
  return STANDING_RANGE_MM[0] <= lowest <= STANDING_RANGE_MM[1]


def _moved(joints: np.ndarray, rig_subject: str, cameras, *,
           per_frame: bool) -> np.ndarray:
  """``"centre"`` / ``"per_frame"`` placement (module docstring)."""
  pelvis = joints[:, poses_lib.ROOT, :2]
  centre = rig_centre(rig_subject, cameras)
  if per_frame:
    shift_xy = centre - pelvis
  else:
    shift_xy = np.broadcast_to(
        centre - 0.5 * (pelvis.min(axis=0) + pelvis.max(axis=0)), pelvis.shape)
  out = joints.copy()
  out[..., :2] += shift_xy[:, None, :]
  out[..., 2] += synthesize.ANKLE_HEIGHT_MM - float(
      np.median(joints[..., 2].min(axis=1)))
  return out


def place_in_capture_volume(world_joints, rig_subject: str, *,
                            placement: str = "auto",
                            cameras: Sequence[int] = synthesize.CAMERAS,
                            where: str = "sequence") -> np.ndarray:
  """Places a sequence where every camera sees it (module docstring).

  Args:
    world_joints: ``[T, 17, 3]`` mm, z-up world.
    rig_subject: a Human3.6M subject of the calibration.
    placement: one of ``PLACEMENTS``.
    cameras: camera numbers 1..4 that must see every frame.
    where: names the sequence in error messages.

  Returns:
    ``[T, 17, 3]`` float64 mm; the input itself (not a copy) when it is
    kept where it is.

  Raises:
    ValueError: an unknown placement, or frames not seen by every camera
      after placement (naming how many and the fix).
  """
  if placement not in PLACEMENTS:
    raise ValueError(f"placement must be one of {PLACEMENTS}, got "
                     f"{placement!r}.")
  joints = np.asarray(world_joints, np.float64)
  if placement == "as_given" or placement == "auto" and (
      _stands_on_floor(joints)
      and frames_seen(joints, rig_subject, cameras).all()):
    out = joints
  elif placement == "auto":
    out = _moved(joints, rig_subject, cameras, per_frame=False)
    if not frames_seen(out, rig_subject, cameras).all():
      logging.info("%s: the centred path leaves the cameras' view; placing "
                   "every frame's pelvis at the rig's centre", where)
      placement = "per_frame"
      out = _moved(joints, rig_subject, cameras, per_frame=True)
  else:
    out = _moved(joints, rig_subject, cameras,
                 per_frame=placement == "per_frame")
  unseen = ~frames_seen(out, rig_subject, cameras)
  if unseen.any():
    pelvis = out[:, poses_lib.ROOT, :2]
    extent = pelvis.max(axis=0) - pelvis.min(axis=0)
    raise ValueError(
        f"{where}: {int(unseen.sum())} of {unseen.size} frames (first: "
        f"{int(np.flatnonzero(unseen)[0])}) are not inside the images of all "
        f"cameras {tuple(cameras)} of {rig_subject}'s rig with placement "
        f"{placement!r} (the pelvis covers {extent[0] / 1000:.1f} m x "
        f"{extent[1] / 1000:.1f} m; the cameras all see about 3 m x 5 m). "
        "Use placement='auto' or 'per_frame' (--config.data.placement=...), "
        "split the sequence into shorter ones, or film with fewer cameras.")
  return out


# ---------------------------------------------------------------------------
# Files.


def _open_archive(path: str):
  """The ``np.load`` archive of a positions file, or a clear error."""
  checks.existing_path(
      "positions file", path, "Pass an .npz of '{subject}/{action}/"
      "{subaction}' -> [T, 17, 3] mm arrays (data_pipelines/motion/"
      "positions.py; save_position_motion writes one).", kind="file")
  return npz_files.open_archive(
      path, "Write '{subject}/{action}/{subaction}' sequences with numpy.savez("
      "path, **{'S1/walking/1': joints, ...}) or "
      "data_pipelines.motion.positions.save_position_motion.")


def sequence_keys(path: str | os.PathLike) -> list[tuple[str, str, int]]:
  """The ``(subject, action, subaction)`` of every sequence of a positions
  file, sorted, from the archive's index alone (no array is read)."""
  path = os.fspath(path)
  with _open_archive(path) as archive:
    names = [n for n in archive.files if n != FPS_KEY]
  if not names:
    raise ValueError(
        f"{path} holds no sequences. Add arrays [T, 17, 3] (mm) under keys "
        f"{_KEY_FORM}.")
  return sorted(parse_key(n, path) for n in names)


def holds_positions(path: str | os.PathLike) -> bool:
  """Whether ``path`` is an ``.npz`` whose first sequence is ``[T, 17, 3]``
  (a positions file rather than exponential-map rows ``[T, 99]``)."""
  path = os.fspath(path)
  if not (os.path.isfile(path) and zipfile.is_zipfile(path)):
    return False
  with np.load(path, allow_pickle=False) as archive:
    names = [n for n in archive.files if n != FPS_KEY]
    if not names:
      return False
    shape = archive[sorted(names)[0]].shape
  return len(shape) == 3 and shape[1:] == (poses_lib.NUM_JOINTS, 3)


def read_positions_file(path: str | os.PathLike
                        ) -> tuple[dict[tuple[str, str, int], np.ndarray],
                                   float | None]:
  """Reads and checks every sequence of a positions ``.npz``.

  Returns:
    ``({(subject, action, subaction): [T, 17, 3] float64 mm}, fps or None)``.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not an ``.npz``, no sequences, a malformed key, a bad
      ``fps`` entry or a bad sequence (``check_positions``).
  """
  path = os.fspath(path)
  with _open_archive(path) as archive:
    names = list(archive.files)
    fps = None
    if FPS_KEY in names:
      value = np.asarray(archive[FPS_KEY])
      if (value.size != 1 or not np.issubdtype(value.dtype, np.number)
          or not np.isfinite(value).all() or not float(value.reshape(())) > 0):
        raise ValueError(f"{path}: the {FPS_KEY!r} entry must be one "
                         f"positive number (frames per second), got {value!r}.")
      fps = float(value.reshape(()))
      names.remove(FPS_KEY)
    if not names:
      raise ValueError(
          f"{path} holds no sequences. Add arrays [T, 17, 3] (mm) under keys "
          f"{_KEY_FORM}.")
    out = {}
    for name in sorted(names):
      key = parse_key(name, path)
      if key in out:
        raise ValueError(f"{path}: two entries name the sequence {name!r}.")
      try:
        data = archive[name]
      except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path} [{name}] cannot be read ({e}).") from e
      out[key] = check_positions(data, f"{path} [{name}]")
  return out, fps


def save_position_motion(path: str | os.PathLike,
                         sequences: Mapping[str, np.ndarray] | Iterable,
                         fps: float | None = None) -> str:
  """Writes a positions ``.npz`` atomically (temp file + ``os.replace``).

  Args:
    path: the ``.npz`` to write.
    sequences: ``{"S1/walking/1": [T, 17, 3] mm}``, or objects with ``.key``
      and ``.world_joints`` (e.g. ``motion.Motion`` s).
    fps: stored as the ``"fps"`` entry when given.

  Returns:
    ``path``.

  Raises:
    ValueError: a malformed key or sequence (nothing is written then).
  """
  path = os.fspath(path)
  if not isinstance(sequences, Mapping):
    sequences = {s.key: s.world_joints for s in sequences}
  arrays = {}
  for key, joints in sequences.items():
    parse_key(key, path)
    arrays[key] = check_positions(joints, f"{path} [{key}]")
  if not arrays:
    raise ValueError(f"no sequences to write to {path}.")
  if fps is not None:
    arrays[FPS_KEY] = np.float64(checks.positive_number(
        "fps", fps, " (frames per second)"))
  return npz_files.save_atomic(path, arrays)


def load_position_motion(
    path: str | os.PathLike,
    *,
    subjects: Iterable[str] | None = None,
    actions: Iterable[str] | None = None,
    step: int = 1,
    fps: float | None = None,
    placement: str = "auto",
    random_yaw: bool = False,
    seed: int = 0,
    cameras: Sequence[int] = synthesize.CAMERAS,
    rig_subject: str | None = None,
) -> dict[str, motion_lib.Motion]:
  """Loads a positions ``.npz`` as sequences placed in the capture volume.

  Args:
    path: the ``.npz`` (module docstring).
    subjects: keep only these subjects; default all.
    actions: keep only these actions (as written in the keys); default all.
    step: keep every ``step``-th frame (the sub-sampling).
    fps: the file's frame rate; default its ``"fps"`` entry, else 50.
    placement: one of ``PLACEMENTS`` (module docstring).
    random_yaw: turn each sequence by a random yaw seeded by ``(seed, key)``.
    seed: seed of the random yaws.
    cameras: camera numbers 1..4 that must see every frame.
    rig_subject: whose calibrated cameras film every sequence; default each
      subject's own when it is a Human3.6M subject, else
      ``DEFAULT_RIG_SUBJECT``.

  Returns:
    ``{"S1/walking/1": motion.Motion}`` sorted by key, filmed as given:
    ``retarget`` False, ``lift_mm`` 0 (the floor is under the soles),
    ``rig_subject`` as above; ``frame_indices`` the file rows.

  Raises:
    FileNotFoundError / ValueError: see ``read_positions_file``; bad options,
      unknown subjects or actions, sequences the cameras cannot all see.
  """
  step = checks.int_at_least("step", step, 1, " (keep every step-th frame)")
  if fps is not None:
    checks.positive_number("fps", fps, " (frames per second)")
  checks.one_of("placement", placement, PLACEMENTS)
  checks.boolean("random_yaw", random_yaw)
  cameras = synthesize.check_cameras(cameras)
  if rig_subject is not None:
    synthesize.check_subject(rig_subject)
  data, file_fps = read_positions_file(path)
  rate = float(fps) if fps is not None else (file_fps or DEFAULT_FPS)
  for name, wanted, index in (("subject", subjects, 0), ("action", actions, 1)):
    if wanted is None:
      continue
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    available = sorted({k[index] for k in data})
    unknown = [w for w in wanted if w not in available]
    if unknown:
      raise ValueError(f"unknown {name}(s) {unknown} for {os.fspath(path)}; "
                       f"it holds {available}.")
    data = {k: v for k, v in data.items() if k[index] in set(wanted)}
  out = {}
  for (subject, action, subaction), joints in sorted(data.items()):
    key = f"{subject}/{action}/{subaction}"
    where = f"{os.fspath(path)} [{key}]"
    rig = rig_subject_for(subject, rig_subject)
    if random_yaw:
      joints = random_heading(joints, key, seed)
    frames = np.arange(0, joints.shape[0], int(step))
    placed = place_in_capture_volume(joints[frames], rig, placement=placement,
                                     cameras=cameras, where=where)
    out[key] = motion_lib.Motion(
        subject=subject, action=action, subaction=subaction, fps=rate / step,
        frame_indices=frames, world_joints=placed, retarget=False,
        lift_mm=0.0, rig_subject=rig)
  return out


def positions_from_sequences(seqs: Iterable, *, body_seed: int = 0,
                             retarget: bool | None = None
                             ) -> dict[str, np.ndarray]:
  """The world joints that ``synthesize`` films for other motion sources.

  For each ``motion.Motion`` (procedural or exponential maps), every
  frame of ``synthesize.filmed_world_joints``: its joints on the subject's
  body, lifted by ``synthesize.ANKLE_HEIGHT_MM``, i.e. positions in this
  module's convention (floor under the soles at ``z = 0``). Rendering them
  from a positions file reproduces the source's images and labels.

  Returns:
    ``{"S1/walking/1": [T, 17, 3] float64 mm}`` for ``save_position_motion``.
  """
  return {f"{seq.subject}/{seq.action}/{int(seq.subaction)}":
          synthesize.filmed_world_joints(seq, slice(None), body_seed=body_seed,
                                         retarget=retarget)
          for seq in seqs}
