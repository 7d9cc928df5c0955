"""Motion sequences -> rendered training examples through the Human3.6M rig.

A motion sequence (a ``motion.Motion`` of ``motion.load``: ``.subject
.action .subaction .fps .world_joints [T, 17, 3]`` mm, z-up world, and how it
is filmed: ``.retarget .lift_mm .rig_subject``) is filmed by the four
calibrated Human3.6M cameras of its ``.rig_subject`` (``cameras.camera_for``)
and rendered by the pure-JAX ray caster (``render.render_batch``, jitted,
frames in chunks) with the subject's look (``appearance.subject_appearance``)
in the room of the camera's floor (``render.floor_from_extrinsics``), with
the filming options of a ``dataset_options.DatasetOptions``. Each (camera,
kept frame) gives one example dict::

  {"image":     uint8   [S, S, 3]  the person crop (S = crop_size),
   "pose":      float32 [17, 3]    root-relative camera-frame joints, mm
                                   (pelvis = 0; x right, y down, z forward),
   "pose_2d":   float32 [17, 2]    joints in the crop's continuous pixel
                                   coordinates (x, y); floor() is the pixel,
   "subject": str, "action": str, "subaction": int,
   "camera": int (1..4), "camera_id": str (e.g. "54138969"),
   "frame": int (row of the source sequence)}

Bodies. Every subject has its own seeded proportions
(``body_model.subject_body``), so test subjects differ from training ones.
Procedural motion is generated on that body already (``.retarget`` False);
the real exponential-map motion has one skeleton for everybody, so its
joints are *retargeted* (``.retarget`` True): each
bone vector, from the root outwards along the kinematic tree, is rescaled to
the subject's bone length keeping its direction (``retarget_joints``), and
each frame is shifted vertically so that its lowest joint keeps its height
(the feet stay on the floor).

Geometry. The world floor is ``z = 0`` and the ankle joint stands for the
foot, so the rendered person is lifted by ``.lift_mm`` (``ANKLE_HEIGHT_MM``,
the height of the ankle joint above the sole) before filming; ``pose`` is
root-relative and does not change. Joint positions (``position_motion``)
have their floor under the soles already and are filmed as given (their
``.retarget`` is False and ``.lift_mm`` 0), by the cameras of their
``.rig_subject``. The renderer and ``pose_2d`` use the pinhole model of the
camera's focal length and principal point (no lens distortion): the crop is
a small window, and image and 2D joints agree exactly.
"""

from __future__ import annotations

import zlib
from typing import Iterator, Sequence

import jax
import numpy as np

from data_pipelines import checks
from data_pipelines import dataset_options
from data_pipelines.motion import core as motion_lib
from data_pipelines.render import core as render
from data_pipelines.rig import appearance as appearance_lib
from data_pipelines.rig import body_model
from data_pipelines.rig import cameras as cameras_lib
from structnet_jax import poses as poses_lib

CAMERAS: tuple[int, ...] = motion_lib.CAMERAS
# Height of the ankle joint above the floor (the sole), mm: the default
# ``Motion.lift_mm``.
ANKLE_HEIGHT_MM = motion_lib.ANKLE_HEIGHT_MM

EXAMPLE_KEYS: tuple[str, ...] = (
    "image", "pose", "pose_2d", "subject", "action", "subaction", "camera",
    "camera_id", "frame")

_PARENTS = np.array([p for p, _ in poses_lib.BONES])
_CHILDREN = np.array([c for _, c in poses_lib.BONES])


# ---------------------------------------------------------------------------
# Bodies.


def subject_bone_lengths(subject: str, body_seed: int = 0) -> np.ndarray:
  """Bone lengths ``[16]`` mm of ``subject``'s seeded body.

  In the order of ``structnet_jax.poses.BONES``; ``body_seed`` seeds
  ``body_model.subject_body``.
  """
  return body_model.body_bone_lengths(
      body_model.subject_body(subject, body_seed))


def retarget_joints(world_joints, bone_lengths, *,
                    keep_floor_contact: bool = True) -> np.ndarray:
  """Gives joints new bone lengths, keeping the root and every bone direction.

  Walks the kinematic tree from the root (the pelvis stays where it is): joint
  ``c`` with parent ``p`` moves to ``new[p] + L_c * unit(old[c] - old[p])``.

  Args:
    world_joints: ``[..., T, 17, 3]`` (or ``[17, 3]``) mm, z-up world frame.
    bone_lengths: ``[16]`` mm, in the order of ``structnet_jax.poses.BONES``
      (e.g. ``subject_bone_lengths("S9")``).
    keep_floor_contact: shift every frame along z so that its lowest joint
      keeps its height (a longer-legged person stands taller instead of
      sinking into the floor). Poses relative to the root are unaffected.

  Returns:
    ``[..., 17, 3]`` float64 mm, with ``poses.bone_lengths(out)`` equal to
    ``bone_lengths``.

  Raises:
    ValueError: wrong shapes, non-positive lengths, or a zero-length bone
      (whose direction is undefined).
  """
  joints = poses_lib.check_poses(world_joints, "world_joints").astype(
      np.float64)
  lengths = np.asarray(bone_lengths, np.float64)
  if lengths.shape != (len(poses_lib.BONES),) or not np.all(
      np.isfinite(lengths)) or np.any(lengths <= 0):
    raise ValueError(
        f"bone_lengths must be {len(poses_lib.BONES)} positive lengths in mm "
        f"in the order of structnet_jax.poses.BONES (e.g. "
        f"subject_bone_lengths('S1')), got shape {lengths.shape}.")
  vec = joints[..., _CHILDREN, :] - joints[..., _PARENTS, :]
  norm = np.linalg.norm(vec, axis=-1, keepdims=True)
  if np.any(norm < 1e-6):
    bad = np.argwhere(norm[..., 0].reshape(-1, len(poses_lib.BONES)) < 1e-6)
    frame, bone = (int(v) for v in bad[0])
    p, c = poses_lib.BONES[bone]
    raise ValueError(
        f"world_joints has a zero-length bone {poses_lib.JOINT_NAMES[p]} -> "
        f"{poses_lib.JOINT_NAMES[c]} (first at pose {frame}); its direction is "
        "undefined, so it cannot be retargeted. Repair or drop those frames.")
  vec = vec / norm * lengths[:, None]
  out = np.empty_like(joints)
  out[..., poses_lib.ROOT, :] = joints[..., poses_lib.ROOT, :]
  # Parents precede children in poses.PARENTS, so one pass over the bones
  # (ordered by child) places every parent before its children.
  for b, (p, c) in enumerate(poses_lib.BONES):
    out[..., c, :] = out[..., p, :] + vec[..., b, :]
  if keep_floor_contact:
    shift = joints[..., 2].min(axis=-1) - out[..., 2].min(axis=-1)
    out[..., 2] += shift[..., None]
  return out


def subject_world_joints(seq: motion_lib.Motion, *, body_seed: int = 0,
                         retarget: bool | None = None) -> np.ndarray:
  """World joints ``[T, 17, 3]`` mm of ``seq`` on its subject's own body.

  Args:
    seq: a ``motion.Motion``.
    body_seed: seed of ``body_model.subject_body``.
    retarget: whether to retarget to the subject's body; ``None``: the
      sequence's own ``.retarget``.

  Returns:
    ``[T, 17, 3]`` float64 mm, z-up world.
  """
  joints = np.asarray(seq.world_joints, np.float64)
  if retarget is None:
    retarget = seq.retarget
  if not retarget:
    return joints
  return retarget_joints(joints, subject_bone_lengths(seq.subject, body_seed))


def rig_subject(seq: motion_lib.Motion) -> str:
  """Whose calibrated cameras film ``seq`` (its ``.rig_subject``), checked
  against the calibration."""
  return check_subject(seq.rig_subject)


def filmed_world_joints(seq: motion_lib.Motion, keep, *, body_seed: int = 0,
                        retarget: bool | None = None,
                        lift_mm: float | None = None) -> np.ndarray:
  """The world joints ``[K, 17, 3]`` float64 mm the cameras film.

  The kept frames ``keep`` of ``subject_world_joints(seq)``, lifted by
  ``lift_mm``; None: the sequence's own ``.lift_mm`` (``ANKLE_HEIGHT_MM``
  for motion whose ankles stand on ``z = 0``, 0 for joint positions, whose
  floor is under the soles).
  """
  lift_mm = checks.finite("lift_mm", seq.lift_mm if lift_mm is None
                          else lift_mm, " (mm)")
  joints = subject_world_joints(seq, body_seed=body_seed, retarget=retarget)
  return joints[keep] + np.array([0.0, 0.0, lift_mm])


# ---------------------------------------------------------------------------
# Filming.


# Camera numbers 1..4 checked, as a tuple (``dataset_options``).
check_cameras = dataset_options.check_cameras


def check_subject(subject: str) -> str:
  """Checks that the published calibration has cameras for ``subject``."""
  rig = cameras_lib.load_h36m_cameras()
  if subject not in rig:
    raise ValueError(
        f"unknown subject {subject!r}: the Human3.6M camera rig is calibrated "
        f"for {sorted(rig, key=lambda s: (len(s), s))} only. Name the "
        "sequence's subject after one of them.")
  return subject


def camera_frame_joints(world_joints, cam: cameras_lib.Camera) -> np.ndarray:
  """World joints ``[..., 3]`` mm -> camera frame ``[..., 3]`` mm (float64)."""
  rotation = np.asarray(cam.rotation, np.float64)
  centre = np.asarray(cam.translation, np.float64)
  return (np.asarray(world_joints, np.float64) - centre) @ rotation.T


def filmed_views(seq: motion_lib.Motion, keep, cameras: Sequence[int], *,
                 body_seed: int = 0,
                 retarget: bool | None = None, lift_mm: float | None = None
                 ) -> list[tuple[int, cameras_lib.Camera, np.ndarray]]:
  """The kept frames of ``seq`` as each camera of its rig sees them.

  Args:
    seq: a ``motion.Motion``.
    keep: ``[K]`` positions in ``seq.world_joints`` to film.
    cameras: camera numbers 1..4 (checked by the caller).
    body_seed, retarget, lift_mm: as ``filmed_world_joints``.

  Returns:
    ``[(camera number, Camera, joints [K, 17, 3] float64 mm in that camera's
    frame), ...]`` in the order of ``cameras``.

  Raises:
    ValueError: joints behind (or within 1 mm of) a camera, naming the
      sequence and the camera.
  """
  lifted = filmed_world_joints(seq, keep, body_seed=body_seed,
                               retarget=retarget, lift_mm=lift_mm)
  rig = rig_subject(seq)
  views = []
  for camera in cameras:
    cam = cameras_lib.camera_for(rig, camera - 1)
    cam_joints = camera_frame_joints(lifted, cam)
    if not np.all(cam_joints[..., 2] > 1.0):
      raise ValueError(
          f"{seq.subject}/{seq.action}/{seq.subaction} camera {camera}: some "
          "joints are behind the camera. World joints must be in mm, z up, "
          "within the capture volume (a few metres around the origin).")
    views.append((camera, cam, cam_joints))
  return views


def _pixel_noise(image, std, seed_words):
  """Adds Gaussian pixel noise of ``std`` (colour units) to a uint8 image."""
  rng = np.random.default_rng(seed_words)
  noisy = image.astype(np.float32) + rng.normal(
      0.0, 255.0 * std, image.shape).astype(np.float32)
  return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def render_sequence_examples(
    seq: motion_lib.Motion,
    options: dataset_options.DatasetOptions | None = None, *,
    frame_step: int = 1,
    frames: Sequence[int] | None = None,
    batch_size: int = 64,
    retarget: bool | None = None,
    lift_mm: float | None = None,
    look: str | None = None,
    **fields,
) -> Iterator[dict]:
  """Renders a motion sequence through the Human3.6M rig, one dict per view.

  Returns an iterator over, camera by camera and within a camera frame by
  frame, the example dicts of the module docstring. The inputs are checked
  at the call; the rendering happens as the iterator is consumed. Rendering
  is jitted and batched: frames go through ``render.render_batch`` in chunks
  of ``batch_size`` (the last chunk is padded, so one shape is compiled per
  ``(batch_size, crop_size, supersample)``).

  Args:
    seq: a ``motion.Motion``: ``.world_joints [T, 17, 3]`` (mm, z-up world)
      filmed by the cameras of ``.rig_subject``, retargeted and lifted as
      it says (``.retarget``, ``.lift_mm``); ``.frame_indices [T]`` are
      reported as ``"frame"``.
    options: the dataset options it films with (``dataset_options.FILMING``:
      ``cameras`` 1..4; ``crop_size`` S, the crops' side in pixels;
      ``margin``, of the crop around the joints' 2D box, a fraction of its
      side; ``supersample``, rays per pixel side; ``pixel_noise``, the
      appearance's Gaussian sensor noise, seeded per example so images do
      not depend on ``batch_size``; ``appearance_seed``, of
      ``subject_appearance`` (look and room) and of the noise;
      ``body_seed``, of the subject's body for retargeting). Default:
      ``DatasetOptions()``. Its ``frame_step`` is not used: the motion
      loaders sub-sample (``motion.load``); this call's ``frame_step``
      picks frames of ``seq``.
    frame_step: keep every ``frame_step``-th frame (0, step, 2 step, ...).
    frames: explicit positions in ``seq.world_joints`` to keep instead.
    batch_size: frames per render call.
    retarget: override ``seq.retarget`` (None: the sequence's).
    lift_mm: override ``seq.lift_mm``, mm (None: the sequence's).
    look: the name of the look to dress the subject in
      (``appearance.subject_appearance``; ``appearance.look_name`` gives a
      training subject's several looks); None: the subject's own.
    **fields: ``DatasetOptions`` fields to change in ``options``, e.g.
      ``crop_size=64, cameras=(1,)``.

  Returns:
    An iterator of example dicts (keys ``EXAMPLE_KEYS``).

  Raises:
    ValueError: bad options, an unknown subject, malformed joints.
  """
  options = dataset_options.check_options(
      dataset_options.make(options, **fields), only=dataset_options.FILMING)
  frame_step = checks.int_at_least("frame_step", frame_step, 1)
  batch_size = checks.int_at_least("batch_size", batch_size, 1)
  subject = str(seq.subject)
  if look is not None and (not isinstance(look, str) or not look):
    raise ValueError(f"look must be None or a look's name such as 'S1~2', "
                     f"got {look!r}.")
  rig_subject(seq)  # checked before anything is rendered
  world = poses_lib.check_poses(seq.world_joints, f"{subject} world_joints")
  if world.ndim != 3:
    raise ValueError(f"world_joints must have shape [T, 17, 3] mm, got "
                     f"{world.shape}.")
  num = world.shape[0]
  if frames is None:
    keep = np.arange(0, num, frame_step)
  else:
    keep = np.asarray(frames, np.int64).reshape(-1)
    if keep.size and (keep.min() < 0 or keep.max() >= num):
      raise ValueError(f"frames must index the sequence's {num} frames, got "
                       f"range [{keep.min()}, {keep.max()}].")
  if keep.size == 0:
    return iter(())
  source_rows = np.asarray(seq.frame_indices).reshape(-1)
  if source_rows.shape[0] != num:
    raise ValueError(f"frame_indices has {source_rows.shape[0]} entries for "
                     f"{num} frames.")

  views = filmed_views(seq, keep, options.cameras,
                       body_seed=options.body_seed, retarget=retarget,
                       lift_mm=lift_mm)
  return _render_examples(seq, subject, views, keep, source_rows, options,
                          batch_size, look or subject)


def _render_examples(seq, subject, views, keep, source_rows, options,
                     batch_size, look_name) -> Iterator[dict]:
  """The generator behind ``render_sequence_examples`` (inputs checked)."""
  appearance_seed, crop_size = options.appearance_seed, options.crop_size
  look = appearance_lib.subject_appearance(look_name, appearance_seed)
  noise_std = float(look.noise_std)
  seq_words = [appearance_seed, zlib.crc32(
      f"{subject}/{seq.action}/{int(seq.subaction)}".encode("utf-8"))]
  for camera, cam, cam_joints in views:
    rotation, translation = cameras_lib.extrinsics(cam)
    floor = render.floor_from_extrinsics(rotation, translation)
    poses = poses_lib.root_relative(cam_joints).astype(np.float32)
    for start in range(0, keep.size, batch_size):
      stop = min(start + batch_size, keep.size)
      chunk = cam_joints[start:stop].astype(np.float32)
      if chunk.shape[0] < batch_size:  # pad: one compiled shape
        pad = np.repeat(chunk[-1:], batch_size - chunk.shape[0], axis=0)
        chunk = np.concatenate([chunk, pad])
      out = render.render_batch(chunk, cam.focal, cam.center, look, floor,
                                out_size=crop_size, margin=options.margin,
                                supersample=options.supersample)
      images, joints_2d = jax.device_get((out.image, out.joints_2d))
      for i in range(stop - start):
        t = int(keep[start + i])
        frame = int(source_rows[t])
        image = np.asarray(images[i])
        if options.pixel_noise and noise_std > 0:
          image = _pixel_noise(image, noise_std, seq_words + [camera, frame])
        yield {
            "image": image,
            "pose": poses[start + i],
            "pose_2d": np.asarray(joints_2d[i], np.float32),
            "subject": subject,
            "action": str(seq.action),
            "subaction": int(seq.subaction),
            "camera": camera,
            "camera_id": str(cam.id),
            "frame": frame,
        }


def example_key(example: dict) -> str:
  """A key unique per example: ``"S1/walking/1/c2/000123"``."""
  return (f"{example['subject']}/{example['action']}/{example['subaction']}/"
          f"c{example['camera']}/{example['frame']:06d}")
