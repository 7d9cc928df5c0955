"""The Human3.6M camera rig: published calibration, frames and projection.

Human3.6M films each subject with four calibrated cameras. Their published
calibration ships with the package (``h36m_cameras.json``): per camera id the
intrinsics (focal length and principal point in pixels, radial and tangential
distortion, image size), per subject the extrinsics (a camera-to-world
quaternion ``Q`` and the camera centre ``C`` in world millimetres).

Frames (millimetres): the world has z up with the origin at the floor centre
of the capture volume; a camera frame has x right, y down, z forward (along
the optical axis). ``x_cam = Q^T (x_world - C)``.

  cam = camera_for("S9", 1)
  uv = project(world_to_camera(joints_world, cam), cam.focal, cam.center,
               cam.radial, cam.tangential)       # [..., 2] pixels
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

CAMERAS_FILENAME = "h36m_cameras.json"
NUM_CAMERAS = 4


@struct.dataclass
class Camera:
  """One calibrated camera (a JAX pytree; ``id`` is static metadata).

  Attributes:
    rotation: ``[3, 3]`` world-to-camera rotation, ``Q^T`` for the published
      camera-to-world quaternion ``Q``.
    translation: ``[3]`` mm, the camera centre ``C`` in world coordinates (as
      published), so ``x_cam = rotation @ (x_world - translation)``.
    focal: ``[2]`` focal lengths (fx, fy), pixels.
    center: ``[2]`` principal point (cx, cy), pixels.
    radial: ``[3]`` radial distortion (k1, k2, k3).
    tangential: ``[2]`` tangential distortion (p1, p2).
    res: ``[2]`` int image size (width, height), pixels.
    id: the camera's serial number, e.g. ``"54138969"``.
  """
  rotation: jax.Array
  translation: jax.Array
  focal: jax.Array
  center: jax.Array
  radial: jax.Array
  tangential: jax.Array
  res: jax.Array
  id: str = struct.field(pytree_node=False, default="")


def quaternion_to_rotmat(q_wxyz) -> np.ndarray:
  """``[3, 3]`` rotation of a quaternion ``(w, x, y, z)`` (normalised first)."""
  q = np.asarray(q_wxyz, np.float64)
  if q.shape != (4,) or not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-9:
    raise ValueError(f"a quaternion must be 4 finite numbers (w, x, y, z), not "
                     f"all zero; got {q_wxyz!r}.")
  w, x, y, z = q / np.linalg.norm(q)
  return np.array([
      [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
      [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
      [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
  ])


def _camera(intrinsics: dict, extrinsics: dict) -> Camera:
  q = quaternion_to_rotmat(extrinsics["orientation_wxyz"])  # camera -> world
  f32 = lambda v: jnp.asarray(np.asarray(v, np.float64), jnp.float32)
  return Camera(
      rotation=f32(q.T),
      translation=f32(extrinsics["translation_mm"]),
      focal=f32(intrinsics["focal_length"]),
      center=f32(intrinsics["center"]),
      radial=f32(intrinsics["radial_distortion"]),
      tangential=f32(intrinsics["tangential_distortion"]),
      res=jnp.asarray([intrinsics["res_w"], intrinsics["res_h"]], jnp.int32),
      id=str(intrinsics["id"]))


def load_h36m_cameras(path: str | os.PathLike | None = None
                      ) -> dict[str, list[Camera]]:
  """The published Human3.6M calibration: 4 cameras per subject.

  The shipped calibration is parsed once per process (the cameras are
  immutable); each call returns fresh dict and lists over them.

  Args:
    path: a calibration JSON in the package file's format; default the copy
      shipped in ``data_pipelines/rig/h36m_cameras.json``.

  Returns:
    ``{"S1": [Camera x 4], "S5": [...], ...}``; camera ``i`` of every subject
    has the ``i``-th camera id of the file's ``intrinsics``.

  Raises:
    FileNotFoundError / ValueError: a missing or malformed file.
  """
  rig = _shipped_cameras() if path is None else _parse_cameras(path)
  return {subject: list(cams) for subject, cams in rig.items()}


@functools.lru_cache(maxsize=1)
def _shipped_cameras() -> dict[str, list[Camera]]:
  return _parse_cameras(None)


def _parse_cameras(path) -> dict[str, list[Camera]]:
  """Reads and checks a calibration JSON (None: the shipped one)."""
  try:
    if path is None:
      text = (importlib.resources.files("data_pipelines.rig")
              / CAMERAS_FILENAME).read_text(encoding="utf-8")
      where = f"data_pipelines/rig/{CAMERAS_FILENAME}"
    else:
      where = os.fspath(path)
      with open(where, encoding="utf-8") as f:
        text = f.read()
  except FileNotFoundError as e:
    raise FileNotFoundError(
        f"camera calibration {path or CAMERAS_FILENAME!r} not found. Pass the "
        "path of a Human3.6M camera JSON, or reinstall the package (it ships "
        f"{CAMERAS_FILENAME}).") from e
  try:
    raw = json.loads(text)
    intrinsics = raw["intrinsics"]
    if len(intrinsics) != NUM_CAMERAS:
      raise ValueError(f"{len(intrinsics)} intrinsics entries, expected "
                       f"{NUM_CAMERAS}")
    rig = {}
    for subject, extrinsics in raw["extrinsics"].items():
      if len(extrinsics) != NUM_CAMERAS:
        raise ValueError(f"subject {subject} has {len(extrinsics)} cameras, "
                         f"expected {NUM_CAMERAS}")
      rig[subject] = [_camera(i, e) for i, e in zip(intrinsics, extrinsics)]
  except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
    raise ValueError(
        f"{where} is not a Human3.6M camera calibration ({type(e).__name__}: "
        f"{e}). Expected 'intrinsics' (4 cameras: id, center, focal_length, "
        "radial_distortion, tangential_distortion, res_w, res_h) and "
        "'extrinsics' {subject: 4 x (orientation_wxyz, translation_mm)}."
    ) from e
  return rig


def camera_for(subject: str, index: int,
               cameras: dict[str, list[Camera]] | None = None) -> Camera:
  """Camera ``index`` (0..3) of ``subject`` (default rig: the published one).

  Raises:
    ValueError: unknown subject or index, naming the valid ones.
  """
  rig = load_h36m_cameras() if cameras is None else cameras
  if subject not in rig:
    raise ValueError(f"unknown subject {subject!r}; the camera calibration has "
                     f"{sorted(rig, key=lambda s: (len(s), s))}.")
  cams = rig[subject]
  if (isinstance(index, bool) or not isinstance(index, (int, np.integer))
      or not 0 <= index < len(cams)):
    ids = ", ".join(f"{i}: {c.id}" for i, c in enumerate(cams))
    raise ValueError(f"camera index {index!r} is not valid for {subject}; use "
                     f"0..{len(cams) - 1} ({ids}).")
  return cams[int(index)]


def stack_cameras(cams) -> Camera:
  """One ``Camera`` whose arrays gain a leading axis, for ``jax.vmap``.

  ``id`` (static metadata) becomes the comma-joined ids.
  """
  cams = list(cams)
  if not cams:
    raise ValueError("stack_cameras needs at least one Camera.")
  fields = ("rotation", "translation", "focal", "center", "radial",
            "tangential", "res")
  return Camera(**{f: jnp.stack([getattr(c, f) for c in cams]) for f in fields},
                id=",".join(c.id for c in cams))


def extrinsics(cam: Camera) -> tuple[jax.Array, jax.Array]:
  """``(R [3, 3], t [3] mm)``: ``x_cam = R @ x_world + t``, ``t = -R C``."""
  return cam.rotation, -cam.rotation @ cam.translation


def _check_points(points, name: str):
  points = jnp.asarray(points)
  if points.ndim < 1 or points.shape[-1] != 3:
    raise ValueError(f"{name} must have shape [..., 3] (x, y, z in mm), got "
                     f"{points.shape}.")
  return points


def world_to_camera(points_world, cam: Camera) -> jax.Array:
  """World points ``[..., 3]`` mm -> camera frame ``[..., 3]`` mm."""
  points_world = _check_points(points_world, "points_world")
  return (points_world - cam.translation) @ cam.rotation.T


def camera_to_world(points_cam, cam: Camera) -> jax.Array:
  """Camera-frame points ``[..., 3]`` mm -> world ``[..., 3]`` mm."""
  points_cam = _check_points(points_cam, "points_cam")
  return points_cam @ cam.rotation + cam.translation


def project(points_cam, focal, center, radial=None, tangential=None
            ) -> jax.Array:
  """Pixels of camera-frame points: pinhole, optionally with distortion.

  With ``(x, y) = (X/Z, Y/Z)`` and ``r^2 = x^2 + y^2``, the distortion is the
  Human3.6M toolkit's (``ProjectPointRadTan``): ``d = 1 + k1 r^2 + k2 r^4 +
  k3 r^6 + p1 y + p2 x`` and ``(x', y') = (x d + p2 r^2, y d + p1 r^2)``;
  pixels are ``focal * (x', y') + center``. (VideoPose3D's ``project_to_2d``
  pairs p1 with x instead, and clamps x, y to [-1, 1]; with the published
  coefficients the two differ by well under a pixel inside the image.)
  Without ``radial`` and ``tangential`` it is the plain pinhole model. Points
  must be in front of the camera (Z > 0); nothing here checks values, so the
  function stays jittable.

  Args:
    points_cam: ``[..., 3]`` mm, camera frame.
    focal: ``[..., 2]`` (fx, fy) pixels, broadcast against the points.
    center: ``[..., 2]`` (cx, cy) pixels.
    radial: optional ``[..., 3]`` (k1, k2, k3).
    tangential: optional ``[..., 2]`` (p1, p2).

  Returns:
    ``[..., 2]`` pixel coordinates (u right, v down).
  """
  points_cam = _check_points(points_cam, "points_cam")
  focal, center = jnp.asarray(focal), jnp.asarray(center)
  for name, arr, n in (("focal", focal, 2), ("center", center, 2),
                       ("radial", radial, 3), ("tangential", tangential, 2)):
    if arr is not None and jnp.shape(arr)[-1:] != (n,):
      raise ValueError(f"{name} must have shape [..., {n}], got "
                       f"{jnp.shape(arr)}.")
  xy = points_cam[..., :2] / points_cam[..., 2:3]
  if radial is not None or tangential is not None:
    k = jnp.zeros(3, xy.dtype) if radial is None else jnp.asarray(radial)
    p = (jnp.zeros(2, xy.dtype) if tangential is None
         else jnp.asarray(tangential))
    x, y = xy[..., 0:1], xy[..., 1:2]
    r2 = x * x + y * y
    d = (1.0 + k[..., 0:1] * r2 + k[..., 1:2] * r2 ** 2 + k[..., 2:3] * r2 ** 3
         + p[..., 0:1] * y + p[..., 1:2] * x)
    xy = xy * d + jnp.concatenate([p[..., 1:2], p[..., 0:1]], -1) * r2
  return focal * xy + center


def world_to_image(points_world, cam: Camera, *, distort: bool = True
                   ) -> jax.Array:
  """Pixels ``[..., 2]`` of world points ``[..., 3]`` mm seen by ``cam``."""
  points_cam = world_to_camera(points_world, cam)
  if distort:
    return project(points_cam, cam.focal, cam.center, cam.radial,
                   cam.tangential)
  return project(points_cam, cam.focal, cam.center)
