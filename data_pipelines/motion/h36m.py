"""Human3.6M motion from the exponential-map release, as 17 world joints.

Reads the joint-angle motion capture of Human3.6M in either of two forms:

* an ``.npz`` with keys ``"S1/walking/1"`` and float arrays ``[frames, 99]``
  (the 25 fps copy described in ``../shared/data/README.md``), or
* a folder of the widely circulated release, ``S*/<action>_<subaction>.txt``
  (comma-separated rows of 99 numbers, 50 fps), e.g. ``S1/walking_1.txt``.

A row holds the root's translation increment (columns 0..2, mm, in the previous
frame's root frame), the root's rotation increment (3..5) and the 31 other
joints' rotations relative to their parents (exponential maps, radians). The
increments are integrated with ``jax.lax.scan`` exactly as the data README
says, ``R_t = expmap(c[3:6]) @ R_{t-1}`` and ``T_t = T_{t-1} + R_{t-1}^T
c[0:3]``, so the person turns and walks as captured; forward kinematics on the
32-joint skeleton (``kinematics``) gives the joints, reduced to the 17
Human3.6M joints and turned into the z-up world frame, in millimetres.

Two properties of the data shape the defaults. The release sets the first
frame's root to ``R_0 = I``, ``T_0 = 0``, which leaves the body tilted (the
pelvis' true orientation is lost) with the pelvis at floor height; by default
each sequence is turned upright and stood on the floor ``z = 0`` in the middle
of the capture volume (``align_to_floor``). And the shared 25 fps ``.npz``
dropped every 2nd row, increments included, so its rows are integrated with
two steps each (``root_substeps``); what is still lost makes the root drift
slowly up or down, which the floor alignment removes.

The skeleton is never part of the package: pass ``skeleton_path`` or put
``h36m_skeleton32.json`` beside the motion file or folder.

  seqs = load_expmap_motion("../shared/data/h36m_expmap_25fps.npz",
                            subjects=["S1", "S5"], step=2)
  seqs["S1/walking/1"].world_joints  # [T, 17, 3] mm, z up
"""

from __future__ import annotations

import functools
import os
import re
import zipfile
from typing import Iterable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines import checks
from data_pipelines.motion import core as motion_lib
from data_pipelines.motion import npz_files
from data_pipelines.rig import kinematics

NUM_COLUMNS = 99
SKELETON_FILENAME = "h36m_skeleton32.json"
NPZ_FPS = 25.0   # the shared .npz keeps every 2nd frame of the 50 Hz capture
TEXT_FPS = 50.0  # the text release is at the capture rate
# Root increments applied per row (see load_expmap_motion's root_substeps).
NPZ_ROOT_SUBSTEPS = 2
TEXT_ROOT_SUBSTEPS = 1

# Joints of the 17-joint skeleton used to stand a sequence on the floor.
_PELVIS, _R_ANKLE, _L_ANKLE, _THORAX = 0, 3, 6, 8
_R_HIP, _R_KNEE, _L_HIP, _L_KNEE = 1, 2, 4, 5
# A direction along which the planted feet spread at least this far (RMS, mm)
# is taken as exactly horizontal when estimating the up direction.
_MIN_FEET_SPREAD_MM = 150.0

_SUBJECT_RE = re.compile(r"^S\d+$")
_TEXT_NAME_RE = re.compile(r"^([A-Za-z]+)_(\d+)\.txt$")


# The former name of this loader's sequences: each is a ``motion.Motion``
# (``retarget`` True: one skeleton for everybody; lifted by the ankle height).
MotionSequence = motion_lib.Motion


# ---------------------------------------------------------------------------
# Root integration and the row -> joints pipeline (jax).


def integrate_root(increments, *, substeps: int = 1, initial_rotation=None,
                   initial_position=None):
  """Integrates root increments into a global trajectory (``lax.scan``).

  Per row ``c``: ``T_t = T_{t-1} + R_{t-1}^T c[0:3]`` and ``R_t =
  expmap(c[3:6]) @ R_{t-1}`` (row-vector rotations, as in ``kinematics``),
  applied ``substeps`` times per row.

  Args:
    increments: ``[T, 6]`` (or ``[T, >=6]``: only columns 0..5 are read);
      columns 0..2 translation increment (mm, previous root frame), 3..5
      rotation increment (exponential map, radians).
    substeps: how many times each row's increment is applied. 1 follows the
      data README; 2 approximates a file that keeps every 2nd row of a
      per-frame increment stream (the dropped increment is taken equal to the
      kept one).
    initial_rotation: ``R_0`` before the first row, ``[3, 3]`` (default I).
    initial_position: ``T_0`` before the first row, ``[3]`` mm (default 0).

  Returns:
    ``(positions [T, 3] mm, rotations [T, 3, 3])``, the state after each row.
  """
  increments = jnp.asarray(increments)
  if not jnp.issubdtype(increments.dtype, jnp.floating):
    increments = increments.astype(jnp.float32)
  if increments.ndim != 2 or increments.shape[1] < 6:
    raise ValueError(f"increments must have shape [T, 6] (translation mm, "
                     f"rotation rad), got {increments.shape}.")
  if int(substeps) < 1:
    raise ValueError(f"substeps must be a positive integer, got {substeps}.")
  dtype = increments.dtype
  r0 = (jnp.eye(3, dtype=dtype) if initial_rotation is None
        else jnp.asarray(initial_rotation, dtype))
  t0 = (jnp.zeros(3, dtype) if initial_position is None
        else jnp.asarray(initial_position, dtype))
  if r0.shape != (3, 3) or t0.shape != (3,):
    raise ValueError(f"initial_rotation must be [3, 3] and initial_position "
                     f"[3], got {r0.shape} and {t0.shape}.")

  def step(carry, c):
    rot, pos = carry
    delta = kinematics.expmap_to_rotmat(c[3:6])
    for _ in range(int(substeps)):
      pos = pos + c[0:3] @ rot  # R^T c for column vectors
      rot = delta @ rot
    return (rot, pos), (pos, rot)

  _, (positions, rotations) = jax.lax.scan(step, (r0, t0), increments[:, :6])
  return positions, rotations


@functools.partial(jax.jit, static_argnames=("parents", "select", "substeps"))
def _rows_to_joints(rows, offsets, parents, select, substeps):
  """``[N, 99]`` rows -> ``[N, 17, 3]`` mm, z up, from R_0 = I, T_0 = 0."""
  positions, rotations = integrate_root(rows[:, :6], substeps=substeps)
  angles = rows[:, 3:].reshape(rows.shape[0], kinematics.NUM_JOINTS_32, 3)
  joints32 = kinematics.forward_kinematics(
      angles, positions, rotations, offsets=offsets, parents=parents)
  return kinematics.y_up_to_z_up(kinematics.reduce_to_h36m17(joints32, select))


def world_joints_from_rows(rows, skeleton: kinematics.Skeleton32, *,
                           root_substeps: int = 1) -> np.ndarray:
  """The raw integration of one sequence: rows -> 17 world joints.

  Starts from ``R_0 = I``, ``T_0 = 0`` (see ``align_to_floor`` for a start
  that stands the person on the floor). Jitted; the frame count is padded to
  a power of two so that few shapes get compiled.

  Args:
    rows: ``[T, 99]`` motion rows (see the module docstring), finite.
    skeleton: the 32-joint tree (``kinematics.load_skeleton32``).
    root_substeps: see ``integrate_root``'s ``substeps``.

  Returns:
    ``[T, 17, 3]`` float32 mm, z-up world frame.
  """
  rows = np.asarray(rows, np.float32)
  if rows.ndim != 2 or rows.shape[1] != NUM_COLUMNS:
    raise ValueError(f"rows must have shape [T, {NUM_COLUMNS}] (root "
                     f"increments + 32 exponential maps), got {rows.shape}.")
  if not np.all(np.isfinite(rows)):
    bad = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
    raise ValueError(f"rows contain NaN or infinite values (first at frame "
                     f"{bad}); repair or drop the sequence.")
  if int(root_substeps) < 1:
    raise ValueError(f"root_substeps must be a positive integer, got "
                     f"{root_substeps}.")
  n = rows.shape[0]
  if n == 0:
    return np.zeros((0, kinematics.NUM_JOINTS_17, 3), np.float32)
  padded = max(64, 1 << (n - 1).bit_length())
  # Zero rows after the end change nothing before it (the scan is causal).
  rows = np.concatenate([rows, np.zeros((padded - n, NUM_COLUMNS), np.float32)])
  out = _rows_to_joints(jnp.asarray(rows), jnp.asarray(skeleton.offsets),
                        skeleton.parents, skeleton.h36m17_from_32,
                        int(root_substeps))
  return np.asarray(out[:n])


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """The smallest rotation matrix ``M`` (column vectors) with ``M a = b``."""
  a = a / np.linalg.norm(a)
  b = b / np.linalg.norm(b)
  axis = np.cross(a, b)
  s, c = np.linalg.norm(axis), float(np.dot(a, b))
  if s < 1e-12:
    if c > 0:
      return np.eye(3)
    # Opposite vectors: a half turn about any axis orthogonal to a.
    ortho = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
    ortho /= np.linalg.norm(ortho)
    return 2.0 * np.outer(ortho, ortho) - np.eye(3)
  k = axis / s
  kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
  return np.eye(3) + s * kx + (1.0 - c) * (kx @ kx)


def estimate_up(world_joints, *, still_mm_per_frame: float = 8.0,
                height_noise_mm: float = 30.0, lags=(12, 25, 50),
                iterations: int = 4) -> np.ndarray:
  """The world's up direction ``[3]`` (unit) seen in a sequence's joints.

  The release resets the root to ``R_0 = I`` at the first frame, discarding
  the pelvis' true tilt, so the integrated world is tilted by a constant
  rotation. Only cues that hold for standing and seated people alike are
  used:

  * horizontal vectors: the ankle-to-ankle vector of frames where both
    ankles are still (moving less than ``still_mm_per_frame``) and near the
    lower ankle's height (both feet planted), and the displacement of the
    lower ankle over ``lags`` frames (the floor foot travelling; short lags
    keep the slow vertical drift of the integrated root out);
  * a prior up: the mean unit shin (ankle -> knee) direction plus the mean
    unit trunk (pelvis -> thorax) direction of the frames where the person
    stands (thighs along the trunk); in seated frames (thighs across the
    trunk) the shins alone, which a seated person keeps near vertical while
    the trunk leans back.

  With ``S`` the second moment of the horizontal vectors, every eigen
  direction ``d`` of ``S`` with eigenvalue ``e`` shrinks the prior's
  component along ``d`` by ``e / (e + height_noise_mm**2)``, and removes it
  exactly where the vectors spread at least 150 mm RMS; so up is the normal
  of the floor when the feet cover an area, is made orthogonal to the
  ankle-to-ankle vector when only that is seen, and is the prior when the
  feet are never planted. Vectors more than ``3 * height_noise_mm`` out of
  the current horizontal plane (a crossed leg, a lifted foot) are dropped,
  and the estimate is refined ``iterations`` times. Pure numpy,
  deterministic.

  Args:
    world_joints: ``[T, 17, 3]`` mm, joint order of ``structnet_jax.poses``.
    still_mm_per_frame: ankle speed (mm per frame) below which a foot counts
      as planted.
    height_noise_mm: expected scatter (mm) of a planted ankle's height.
    lags: frame lags of the lower ankle's displacements.
    iterations: refinement passes.

  Returns:
    ``[3]`` unit vector, pointing from the feet towards the head.
  """
  joints = np.asarray(world_joints, np.float64)
  unit = lambda v: v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True),
                                  1e-9)
  num = joints.shape[0]
  trunk = unit(joints[:, _THORAX] - joints[:, _PELVIS])
  thighs = unit(joints[:, [_R_KNEE, _L_KNEE]] - joints[:, [_R_HIP, _L_HIP]])
  shins = unit(joints[:, [_R_KNEE, _L_KNEE]] - joints[:, [_R_ANKLE, _L_ANKLE]])
  # cos(trunk, thigh) is about -1 standing and about 0 seated.
  cos = np.einsum("tc,tkc->tk", trunk, thighs).mean(axis=1)
  standing = np.clip((-0.55 - cos) / 0.35, 0.0, 1.0)
  prior = unit(shins.mean(axis=(0, 1)) +
               (standing[:, None] * trunk).sum(axis=0) / num)
  ankles = joints[:, [_R_ANKLE, _L_ANKLE]]
  if num > 1:
    step = np.linalg.norm(np.diff(ankles, axis=0), axis=-1)
    speed = np.maximum(np.concatenate([step[:1], step]),
                       np.concatenate([step, step[-1:]]))
  else:
    speed = np.zeros((num, 2))
  still = speed < still_mm_per_frame
  up = prior
  for _ in range(int(iterations)):
    height = ankles @ up
    lower = ankles[np.arange(num), np.argmin(height, axis=1)]
    planted = still & (height - height.min(axis=1, keepdims=True)
                       < 3 * height_noise_mm)
    groups = [(ankles[:, 0] - ankles[:, 1])[planted.all(axis=1)],
              np.concatenate([np.zeros((0, 3))] +
                             [lower[lag:] - lower[:-lag]
                              for lag in lags if 0 < lag < num])]
    moment = np.zeros((3, 3))
    for vectors in groups:  # each cue's second moment, summed
      vectors = vectors[np.abs(vectors @ up) < 3 * height_noise_mm]
      if vectors.shape[0]:
        moment += vectors.T @ vectors / vectors.shape[0]
    if not moment.any():
      return prior
    eigvals, eigvecs = np.linalg.eigh(moment)
    up = prior.copy()
    for e, d in zip(eigvals, eigvecs.T):
      shrink = (1.0 if e >= _MIN_FEET_SPREAD_MM ** 2
                else e / (e + height_noise_mm ** 2))
      up = up - shrink * (up @ d) * d
    up = unit(up)
  return up


def _running_median(x: np.ndarray, window: int) -> np.ndarray:
  """Median of ``x`` [T] over a centred window of ``window`` samples."""
  window = max(1, min(int(window), x.shape[0]))
  before = window // 2
  padded = np.pad(x, (before, window - 1 - before), mode="edge")
  return np.median(np.lib.stride_tricks.sliding_window_view(padded, window),
                   axis=-1)


def align_to_floor(world_joints, *, floor_window: int | None = None
                   ) -> np.ndarray:
  """Stands a sequence upright on the floor ``z = 0``, centred at the origin.

  One rotation takes ``estimate_up`` to +z (the heading is kept) and one
  translation puts the middle of the pelvis' horizontal range at ``x = y =
  0`` and the lowest joint at ``z = 0``: with ``floor_window=None`` the median
  over frames of the lowest joint's height, which amounts to integrating from
  a chosen start ``(R_0, T_0)`` instead of ``(I, 0)``. With ``floor_window``
  frames, the running median of the lowest joint's height over that many
  frames is removed instead, which also takes out the slow vertical drift of
  a root integrated from lossy increments (the shared 25 fps ``.npz``) while
  keeping movements shorter than the window (steps, sitting down). Bone
  lengths, turns and horizontal steps are unchanged.

  Args:
    world_joints: ``[T, 17, 3]`` mm, z-up world frame.
    floor_window: frames in the running median, or None for one offset.

  Returns:
    ``[T, 17, 3]`` float32 mm.
  """
  joints = np.asarray(world_joints, np.float64)
  if joints.ndim != 3 or joints.shape[1:] != (kinematics.NUM_JOINTS_17, 3):
    raise ValueError(f"world_joints must have shape [T, 17, 3] mm, got "
                     f"{joints.shape}.")
  if joints.shape[0] == 0:
    return joints.astype(np.float32)
  rot = _rotation_between(estimate_up(joints), np.array([0.0, 0.0, 1.0]))
  joints = joints @ rot.T
  lowest = joints[..., 2].min(axis=1)
  if floor_window is None:
    floor = np.full_like(lowest, np.median(lowest))
  else:
    if int(floor_window) < 1:
      raise ValueError(f"floor_window must be a positive number of frames or "
                       f"None, got {floor_window!r}.")
    floor = _running_median(lowest, int(floor_window))
  pelvis = joints[:, _PELVIS, :2]
  centre = 0.5 * (pelvis.min(axis=0) + pelvis.max(axis=0))
  joints[..., :2] -= centre
  joints[..., 2] -= floor[:, None]
  return joints.astype(np.float32)


# ---------------------------------------------------------------------------
# Reading the two file forms (host side, numpy).


def _check_rows(rows: np.ndarray, where: str) -> np.ndarray:
  if rows.ndim != 2 or rows.shape[1] != NUM_COLUMNS:
    raise ValueError(
        f"{where}: expected rows of {NUM_COLUMNS} numbers (root translation "
        f"increment, root rotation increment, 31 joint exponential maps), got "
        f"an array of shape {rows.shape}. Is this a Human3.6M exponential-map "
        "file? Joint positions [T, 17, 3] go through the positions source "
        "(data_pipelines/motion/positions.py, TFDS config 'positions').")
  if rows.shape[0] == 0:
    raise ValueError(f"{where}: the sequence has no frames; drop the file.")
  finite = np.isfinite(rows)
  if not finite.all():
    bad_frames = np.flatnonzero(~finite.all(axis=1))
    raise ValueError(
        f"{where}: {bad_frames.size} frame(s) contain NaN or infinite values "
        f"(first: frame {int(bad_frames[0])}, columns "
        f"{np.flatnonzero(~finite[bad_frames[0]]).tolist()[:6]}). Repair the "
        "file or leave the sequence out.")
  return rows


def _parse_npz_key(key: str, path: str) -> tuple[str, str, int]:
  parts = key.split("/")
  if (len(parts) != 3 or not _SUBJECT_RE.match(parts[0]) or not parts[1]
      or not parts[2].isdigit()):
    raise ValueError(
        f"{path}: key {key!r} is not of the form 'S<n>/<action>/<subaction>' "
        "(e.g. 'S1/walking/1').")
  return parts[0], parts[1].lower(), int(parts[2])


def _npz_index(path: str) -> tuple[dict[tuple[str, str, int], str], object]:
  archive = npz_files.open_archive(
      path, "Pass the h36m_expmap_25fps.npz of the shared data (keys "
      "'S<n>/<action>/<subaction>'), or a folder of "
      "S*/<action>_<subaction>.txt files.")
  index = {_parse_npz_key(k, path): k for k in archive.files}
  return index, archive


def _text_index(folder: str) -> dict[tuple[str, str, int], str]:
  index = {}
  for subject in sorted(os.listdir(folder)):
    sub_dir = os.path.join(folder, subject)
    if not (_SUBJECT_RE.match(subject) and os.path.isdir(sub_dir)):
      continue
    for name in sorted(os.listdir(sub_dir)):
      m = _TEXT_NAME_RE.match(name)
      if m:
        index[(subject, m.group(1).lower(), int(m.group(2)))] = os.path.join(
            sub_dir, name)
  if not index:
    raise ValueError(
        f"{folder} holds no Human3.6M motion text files: expected "
        "S<n>/<action>_<subaction>.txt (e.g. S1/walking_1.txt) below it. "
        "Pass the release's folder that contains S1, S5, ...")
  return index


def _read_text(path: str) -> np.ndarray:
  try:
    rows = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
  except OSError as e:
    raise ValueError(f"{path} cannot be read ({e}).") from e
  except ValueError as e:
    raise ValueError(
        f"{path}: not comma-separated rows of {NUM_COLUMNS} numbers ({e}). "
        "Repair the file or leave the sequence out.") from e
  return rows


def _find_skeleton(path: str) -> str:
  parent = os.path.dirname(os.path.abspath(path))
  candidates = [os.path.join(parent, SKELETON_FILENAME)]
  if os.path.isdir(path):
    candidates.insert(0, os.path.join(path, SKELETON_FILENAME))
  for c in candidates:
    if os.path.isfile(c):
      return c
  raise FileNotFoundError(
      f"no skeleton given and no {SKELETON_FILENAME} beside {path} (looked "
      f"at {candidates}). Pass skeleton_path= (--skeleton on the command "
      f"line) with the {SKELETON_FILENAME} that comes with the motion, or put "
      "it beside the motion file/folder.")


def load_expmap_motion(
    path: str | os.PathLike,
    skeleton_path: str | os.PathLike | None = None,
    *,
    subjects: Iterable[str] | None = None,
    step: int = 1,
    fps: float | None = None,
    root_substeps: int | None = None,
    align: bool = True,
    floor_window_s: float | None = 2.0,
) -> dict[str, motion_lib.Motion]:
  """Loads Human3.6M exponential-map motion as 17 z-up world joints (mm).

  Args:
    path: an ``.npz`` with keys ``"S1/walking/1"`` and ``[frames, 99]``
      arrays, or a folder of ``S*/<action>_<subaction>.txt`` files.
    skeleton_path: ``h36m_skeleton32.json``; default: the file of that name
      beside ``path`` (or inside it, for a folder).
    subjects: keep only these subjects (e.g. ``["S1", "S5"]``); default all.
    step: keep every ``step``-th frame (after integrating the root over all
      frames, so no root increment is lost).
    fps: the file's frame rate; default 25 for an ``.npz`` (the shared copy
      keeps every 2nd frame of the capture) and 50 for the text release.
    root_substeps: how many times each row's root increment is applied
      (``integrate_root``); default 2 for an ``.npz``, 1 for the text
      release. The shared 25 fps ``.npz`` kept every 2nd row of the 50 Hz
      rows, increments included, so one step per row covers about half the
      captured distance and turn (in walking the supporting foot then slides
      at the pelvis' own speed); two steps per row stand in for the dropped
      increment (the foot slides 3-7 times less). Pass 1 for the data
      README's formula applied once per row.
    align: stand each sequence upright on the floor z = 0, centred at the
      origin (``align_to_floor``); False keeps the raw integration from
      ``R_0 = I``, ``T_0 = 0``.
    floor_window_s: with ``align``, the seconds over which the lowest joint's
      height is taken as the floor (a running median, which removes the slow
      vertical drift of the root); None for one constant floor per sequence,
      i.e. only a choice of the start ``(R_0, T_0)``.

  Returns:
    ``{"S1/walking/1": motion.Motion, ...}`` sorted by key: ``fps`` the
    file rate / ``step``, ``frame_indices`` the file rows, ``world_joints``
    float32, filmed retargeted to each subject's body (``retarget`` True)
    and lifted by ``motion.ANKLE_HEIGHT_MM``.

  Raises:
    FileNotFoundError: no motion at ``path`` or no skeleton found.
    ValueError: unreadable file, rows that are not 99 numbers, NaNs (naming
      the sequence and frame), an unknown subject, a bad option.
  """
  path = checks.existing_path(
      "motion path", path, "Pass the h36m_expmap_25fps.npz of the shared "
      "data or the folder of the exponential-map release (the one holding "
      "S1/walking_1.txt, ...).")
  step = checks.int_at_least("step", step, 1, " (keep every step-th frame)")
  if root_substeps is not None:
    checks.int_at_least("root_substeps", root_substeps, 1,
                        " (or None for the source's default)")
  if fps is not None:
    checks.positive_number("fps", fps, " (frames per second)")
  if floor_window_s is not None and not floor_window_s > 0:
    raise ValueError(f"floor_window_s must be positive seconds or None, got "
                     f"{floor_window_s!r}.")
  skeleton = kinematics.load_skeleton32(
      _find_skeleton(path) if skeleton_path is None else skeleton_path)

  archive = None
  if os.path.isdir(path):
    index = _text_index(path)
    file_fps = TEXT_FPS if fps is None else float(fps)
    substeps = TEXT_ROOT_SUBSTEPS if root_substeps is None else root_substeps
  else:
    index, archive = _npz_index(path)
    file_fps = NPZ_FPS if fps is None else float(fps)
    substeps = NPZ_ROOT_SUBSTEPS if root_substeps is None else root_substeps
  floor_window = (None if floor_window_s is None
                  else max(1, int(round(floor_window_s * file_fps))))

  out = {}
  try:
    available = sorted({s for s, _, _ in index}, key=lambda s: int(s[1:]))
    if subjects is not None:
      wanted = [subjects] if isinstance(subjects, str) else list(subjects)
      unknown = [s for s in wanted if s not in available]
      if unknown:
        raise ValueError(
            f"unknown subject(s) {unknown} for {path}; it holds {available}.")
      index = {k: v for k, v in index.items() if k[0] in set(wanted)}
    for (subject, action, subaction), source in sorted(index.items()):
      key = f"{subject}/{action}/{subaction}"
      if archive is not None:
        where = f"{path} [{source}]"
        try:
          rows = np.asarray(archive[source])
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
          raise ValueError(f"{where} cannot be read ({e}).") from e
        if not np.issubdtype(rows.dtype, np.number):
          raise ValueError(f"{where}: expected a numeric array, got dtype "
                           f"{rows.dtype}.")
      else:
        where = source
        rows = _read_text(source)
      rows = _check_rows(rows.astype(np.float64), where)
      joints = world_joints_from_rows(rows, skeleton,
                                      root_substeps=int(substeps))
      if align:
        joints = align_to_floor(joints, floor_window=floor_window)
      frames = np.arange(0, rows.shape[0], step)
      out[key] = motion_lib.Motion(
          subject=subject, action=action, subaction=subaction,
          fps=file_fps / step, frame_indices=frames,
          world_joints=np.ascontiguousarray(joints[frames], np.float32))
  finally:
    if archive is not None:
      archive.close()
  return out


def select_actions(sequences: Mapping[str, motion_lib.Motion],
                   actions: Iterable[str] | None,
                   path: str) -> dict[str, motion_lib.Motion]:
  """The sequences of ``load_expmap_motion`` whose action is in ``actions``.

  Args:
    sequences: ``{"S1/walking/1": motion.Motion, ...}``.
    actions: action names in any case (``"Walking"`` = ``"walking"``); None
      keeps every sequence.
    path: the motion file or folder, named in the error.

  Raises:
    ValueError: an action that none of ``sequences`` has, naming those it has.
  """
  if actions is None:
    return dict(sequences)
  available = sorted({s.action for s in sequences.values()})
  unknown = [a for a in actions if a.lower() not in available]
  if unknown:
    raise ValueError(
        f"unknown action(s) {unknown} for {path}; it holds {available}.")
  wanted = {a.lower() for a in actions}
  return {k: s for k, s in sequences.items() if s.action in wanted}
