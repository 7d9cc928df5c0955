"""A pure-JAX ray caster that renders a volumetric person from 17 joints.

Human3.6M images cannot be redistributed, so the project renders its own person
crops from motion capture. The body is a fixed set of 19 convex primitives
attached to the 17 joints of ``structnet_jax.poses`` (capsules for limbs, neck,
hands and feet, flattened capsules for chest and abdomen, an ellipsoid head
with a nose); the room is a textured box (checker floor, panelled walls).

Geometry. Everything is in the camera frame of Human3.6M (x right, y down,
z forward, millimetres); the camera centre is the origin. The ray of image
point ``(u, v)`` (pixels) is ``t * d`` with ``d = ((u - cx)/fx, (v - cy)/fy,
1)``, so the ray parameter ``t`` is the z-depth in mm. Every body primitive is
"a capsule in an ellipsoidal metric": with a local map ``x' = M (x - c)``
(``M = diag(1/s) R^T``, ``R``'s columns the primitive's left/axis/forward
directions, ``s`` three semi-axes in mm) the primitive is the set of points
within distance 1 of the segment ``{(0, y, 0): |y| <= h}``. ``h = 0`` is an
ellipsoid, ``s = (r, r, r)`` a round capsule of radius ``r``. Rays are
intersected analytically (infinite cylinder, then the sphere around the
clamped axial point of its entry, which is exact for capsules) and each pixel
keeps the nearest hit, so self-occlusion is right. Square tiles of the crop
only test the primitives whose conservative image footprint reaches them.

Image coordinates. Image points are continuous pixel coordinates of the full
camera image (``u = fx * x / z + cx``). A crop is ``box = (x0, y0, size)`` in
those coordinates; crop pixel ``(row i, col j)`` covers
``[x0 + j * size / S, x0 + (j + 1) * size / S)`` horizontally (likewise
vertically) and its colour is the mean over a regular grid of
``supersample**2`` rays through that square. ``joints_2d`` are in the same
continuous crop coordinates, ``(u - x0) * S / size``: ``floor(joints_2d)`` is
the pixel (column, row) that contains the joint.

Shading: Lambert plus ambient plus a little camera-side fill light, from a
light direction fixed in the room. Front/back cues: face (skin, eyes, brows,
mouth, nose) on the front of the head and hair on its top and back, a collar
and a chest logo on the front of the shirt. Left and right body parts are
always coloured alike, so the image of a mirrored pose is the mirrored image.

Speed (2 CPU cores, 128 x 128, see benchmarks/bench_render.py and
benchmarks/RESULTS.md): about 1.3 ms of CPU time per image with one ray per
pixel, about 2.6 ms with 2 x 2 supersampling. XLA's CPU fusion decides much of
that; the comments at ``_cast_body``, ``_pack`` and ``_render`` say which
structure keeps it from redoing per-pixel work.

Public API: ``Floor``, ``floor_from_extrinsics``, ``floor_under_pose``,
``check_floor``, ``RenderOutput``, ``render_person`` (jittable, one pose),
``render_batch`` (jitted and vmapped over a batch), ``project``,
``crop_box``, ``body_frame``, ``body_primitives`` (the primitive geometry,
for tests and debugging) and ``contact_sheet`` (numpy).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines.rig.appearance import Appearance, check_appearance
from structnet_jax import poses as poses_lib

# Joint indices (structnet_jax.poses.JOINT_NAMES order).
PELVIS, R_HIP, R_KNEE, R_ANKLE = poses_lib.joint_index(
    ["pelvis", "right_hip", "right_knee", "right_ankle"])
L_HIP, L_KNEE, L_ANKLE = poses_lib.joint_index(
    ["left_hip", "left_knee", "left_ankle"])
SPINE, THORAX, NECK_NOSE, HEAD = poses_lib.joint_index(
    ["spine", "thorax", "neck_nose", "head"])
L_SHOULDER, L_ELBOW, L_WRIST = poses_lib.joint_index(
    ["left_shoulder", "left_elbow", "left_wrist"])
R_SHOULDER, R_ELBOW, R_WRIST = poses_lib.joint_index(
    ["right_shoulder", "right_elbow", "right_wrist"])

# Body dimensions in millimetres for ``Appearance.thickness == 1``.
# Limb radii scale with thickness; head and hand/foot sizes barely do.
LIMB_RADIUS = {
    "neck": 52.0,
    "upper_arm": 47.0,
    "forearm": 39.0,
    "hand": 38.0,
    "thigh": 68.0,
    "shin": 50.0,
    "foot": 40.0,
    "shoulders": 56.0,
    "hips": 76.0,
}
HEAD_SEMI_AXES = (80.0, 112.0, 98.0)  # left-right, up-down, back-front.

# Primitive order, grouped by material (the shading relies on the groups).
PRIMITIVES: tuple[str, ...] = (
    # Skin.
    "head", "nose", "neck", "left_hand", "right_hand",
    # Shirt.
    "chest", "shoulders",
    # Two materials split along the segment (belt line, sleeves, trousers).
    "abdomen", "left_upper_arm", "right_upper_arm", "left_forearm",
    "right_forearm", "left_thigh", "right_thigh", "left_shin", "right_shin",
    # Trousers, shoes.
    "hips", "left_foot", "right_foot")
NUM_PRIMITIVES = len(PRIMITIVES)
_P = {name: i for i, name in enumerate(PRIMITIVES)}


class Floor(NamedTuple):
  """The room: a floor plane and a box of walls, in camera coordinates.

  Attributes:
    origin: ``[3]`` mm, a point on the floor at the room's centre.
    up: ``[3]`` unit vector, the room's up direction (camera frame).
    axis: ``[3]`` unit vector perpendicular to ``up``: the room's first
      horizontal axis (walls are perpendicular to ``axis`` and to
      ``cross(up, axis)``).
    half_size: ``[2]`` mm, distance from ``origin`` to the walls along
      ``axis`` and along ``cross(up, axis)``.
    height: ``[]`` mm, ceiling height above the floor.
  """
  origin: jax.Array
  up: jax.Array
  axis: jax.Array
  half_size: jax.Array
  height: jax.Array


class RenderOutput(NamedTuple):
  """What ``render_person`` returns (leading batch axis from ``render_batch``).

  Attributes:
    image: ``uint8 [S, S, 3]`` RGB crop.
    box: ``float32 [3]`` crop box ``(x0, y0, size)`` in full-image pixels.
    joints_2d: ``float32 [17, 2]`` projected joints, continuous crop pixel
      coordinates ``(x, y)`` (pixel ``j`` spans ``[j, j + 1)``).
    mask: ``bool [S, S]`` body silhouette: at least half of the pixel's
      rays hit the body.
    depth: ``float32 [S, S]`` z-depth (mm) of the nearest body surface among
      the pixel's rays; 0 where no ray hits the body.
  """
  image: jax.Array
  box: jax.Array
  joints_2d: jax.Array
  mask: jax.Array
  depth: jax.Array


class Primitives(NamedTuple):
  """Body primitives (see module docstring). N = ``NUM_PRIMITIVES``.

  Attributes:
    centre: ``[N, 3]`` mm, camera frame.
    frame: ``[N, 3, 3]``; ``frame[k, :, i]`` is local axis i (0 left,
      1 along the segment, 2 forward) of primitive k, camera frame.
    semi_axes: ``[N, 3]`` mm, scale of each local axis.
    half_length: ``[N]`` half segment length in local (scaled) units.
  """
  centre: jax.Array
  frame: jax.Array
  semi_axes: jax.Array
  half_length: jax.Array


# --------------------------------------------------------------------------
# Rooms.


def _normalize(v, fallback=None, eps=1e-6):
  n = jnp.linalg.norm(v, axis=-1, keepdims=True)
  out = v / jnp.maximum(n, eps)
  if fallback is not None:
    out = jnp.where(n > eps, out, fallback)
  return out


def floor_from_extrinsics(rotation, translation, *, half_size=(4500.0, 6500.0),
                          height=4000.0) -> Floor:
  """The room of a world frame with z up and the floor at z = 0.

  Args:
    rotation: ``[3, 3]`` world-to-camera rotation R.
    translation: ``[3]`` mm, t in ``x_cam = R @ x_world + t``. (For
      Human3.6M's camera-to-world orientation Q and camera centre C, pass
      ``R = Q.T`` and ``t = -Q.T @ C``.)
    half_size: room half extents along world x and world y, mm (Human3.6M's
      cameras stand about 5 m from the world origin; the room must contain
      the camera).
    height: ceiling height, mm.

  Returns:
    A ``Floor`` centred on the world origin.
  """
  rotation = jnp.asarray(rotation, jnp.float32)
  translation = jnp.asarray(translation, jnp.float32)
  if rotation.shape != (3, 3) or translation.shape != (3,):
    raise ValueError(
        f"rotation must be [3, 3] and translation [3], got {rotation.shape} "
        f"and {translation.shape}. Call once per camera (vmap for batches).")
  return Floor(origin=translation, up=rotation[:, 2], axis=rotation[:, 0],
               half_size=jnp.asarray(half_size, jnp.float32),
               height=jnp.asarray(height, jnp.float32))


def floor_under_pose(joints_cam, up, *, clearance=70.0,
                     half_size=(4500.0, 6500.0), height=4000.0) -> Floor:
  """A room whose floor lies ``clearance`` mm below the pose's lowest joint.

  Use when no extrinsics are at hand. The room is centred under the pelvis
  and its first axis is the camera's x axis projected onto the floor.

  Args:
    joints_cam: ``[17, 3]`` mm, camera frame.
    up: ``[3]`` the world's up direction in the camera frame (need not be
      unit length; for an upright camera it is close to ``(0, -1, 0)``).
    clearance: height of the lowest joint (normally an ankle) above the floor.
    half_size, height: as in ``floor_from_extrinsics``.

  Returns:
    A ``Floor``.
  """
  joints_cam = jnp.asarray(joints_cam, jnp.float32)
  up = jnp.asarray(up, jnp.float32)
  if joints_cam.shape != (poses_lib.NUM_JOINTS, 3) or up.shape != (3,):
    raise ValueError(
        f"joints_cam must be [17, 3] and up [3], got {joints_cam.shape} and "
        f"{up.shape}.")
  up = _normalize(up)
  low = jnp.min(joints_cam @ up) - clearance
  pelvis = joints_cam[PELVIS]
  origin = pelvis + (low - pelvis @ up) * up
  ex = jnp.array([1.0, 0.0, 0.0])
  axis = _normalize(ex - (ex @ up) * up,
                    fallback=_normalize(jnp.cross(up, jnp.array([0., 0., 1.]))))
  return Floor(origin=origin, up=up, axis=axis,
               half_size=jnp.asarray(half_size, jnp.float32),
               height=jnp.asarray(height, jnp.float32))


def check_floor(floor: Floor, name: str = "floor") -> int:
  """Checks a ``Floor``'s leaf shapes; returns its number of batch axes.

  Raises:
    ValueError: not a ``Floor`` or inconsistent leaf shapes.
  """
  if not isinstance(floor, Floor):
    raise ValueError(
        f"{name} must be a render.Floor (build it with floor_from_extrinsics "
        f"or floor_under_pose), got {type(floor)}.")
  lead = np.shape(floor.height)
  for field, tail in (("origin", (3,)), ("up", (3,)), ("axis", (3,)),
                      ("half_size", (2,))):
    shape = np.shape(getattr(floor, field))
    if shape != lead + tail:
      raise ValueError(
          f"{name}.{field} must have shape {list(lead + tail)} (batch shape "
          f"{list(lead)} from {name}.height), got {list(shape)}.")
  return len(lead)


# --------------------------------------------------------------------------
# Body geometry.


def _frame(axis_dir, fwd_hint, left_hint):
  """Orthonormal ``[3, 3]`` frame, columns (left, axis, forward)."""
  y = axis_dir
  z = fwd_hint - jnp.dot(fwd_hint, y) * y
  alt = _normalize(jnp.cross(left_hint, y), fallback=jnp.array([0., 0., 1.]))
  z = _normalize(z, fallback=alt, eps=1e-3)
  x = jnp.cross(y, z)
  return jnp.stack([x, y, z], axis=-1)


def _segment(a, b, semi, fwd_hint, left_hint, up_hint):
  """Capsule from a to b with semi-axes (left, cap, forward) in mm."""
  length = jnp.linalg.norm(b - a)
  y = _normalize(b - a, fallback=up_hint)
  frame = _frame(y, fwd_hint, left_hint)
  semi = jnp.asarray(semi, jnp.float32)
  return (a + b) / 2, frame, semi, length / (2 * semi[1])


def body_frame(joints_cam):
  """Body orientation from hips and shoulders.

  Args:
    joints_cam: ``[17, 3]`` mm.

  Returns:
    ``[3, 3]`` orthonormal columns (left, up, forward) of the torso: left
    from right to left hip/shoulder, up from pelvis to thorax, forward =
    left x up (the way the chest faces).
  """
  j = joints_cam
  left = (j[L_HIP] - j[R_HIP]) + (j[L_SHOULDER] - j[R_SHOULDER])
  up = _normalize(j[THORAX] - j[PELVIS], fallback=jnp.array([0., -1., 0.]))
  left = _normalize(left - jnp.dot(left, up) * up,
                    fallback=jnp.array([1., 0., 0.]))
  fwd = jnp.cross(left, up)
  return jnp.stack([left, up, fwd], axis=-1)


def body_primitives(joints_cam, appearance: Appearance) -> Primitives:
  """The body's primitives (order ``PRIMITIVES``) for one pose.

  Args:
    joints_cam: ``[17, 3]`` mm, camera frame.
    appearance: unbatched ``Appearance`` (only ``thickness`` is used).

  Returns:
    ``Primitives`` with ``N = NUM_PRIMITIVES``.
  """
  j = jnp.asarray(joints_cam, jnp.float32)
  th = jnp.asarray(appearance.thickness, jnp.float32)
  bf = body_frame(j)
  left, up, fwd = bf[:, 0], bf[:, 1], bf[:, 2]
  r = {k: v * th for k, v in LIMB_RADIUS.items()}
  prims = {}

  def seg(name, a, b, radius):
    prims[name] = _segment(a, b, (radius, radius, radius), fwd, left, up)

  # Head: ellipsoid around the head joint, axis from neck/nose to head.
  head_up = _normalize(j[HEAD] - j[NECK_NOSE], fallback=up)
  head_frame = _frame(head_up, fwd, left)
  head_semi = jnp.asarray(HEAD_SEMI_AXES) * (0.9 + 0.1 * th)
  head_c = j[HEAD] - 12.0 * head_up + 12.0 * head_frame[:, 2]
  prims["head"] = (head_c, head_frame, head_semi, jnp.zeros(()))
  hf, hu = head_frame[:, 2], head_frame[:, 1]
  nose_a = head_c + head_semi[2] * 0.82 * hf + head_semi[1] * 0.02 * hu
  nose_b = head_c + head_semi[2] * 0.98 * hf - head_semi[1] * 0.22 * hu
  seg("nose", nose_a, nose_b, 14.0)
  seg("neck", j[THORAX] - 20.0 * up, j[NECK_NOSE] - 30.0 * head_up, r["neck"])

  # Torso: flattened capsules pelvis->spine and spine->thorax.
  shoulder_w = jnp.linalg.norm(j[L_SHOULDER] - j[R_SHOULDER])
  hip_w = jnp.linalg.norm(j[L_HIP] - j[R_HIP])
  chest_semi = jnp.stack([0.5 * shoulder_w + 15.0 * th, 95.0 * th, 105.0 * th])
  chest_a = j[SPINE] + 0.3 * (j[THORAX] - j[SPINE])
  chest_b = j[THORAX] - 0.25 * (j[THORAX] - j[SPINE])
  prims["chest"] = _segment(chest_a, chest_b, chest_semi, fwd, left, up)
  abdomen_semi = jnp.stack([0.5 * hip_w + 30.0 * th, 100.0 * th, 100.0 * th])
  abd_a = j[PELVIS] + 0.15 * (j[SPINE] - j[PELVIS])
  abd_b = j[SPINE] + 0.2 * (j[THORAX] - j[SPINE])
  prims["abdomen"] = _segment(abd_a, abd_b, abdomen_semi, fwd, left, up)
  prims["shoulders"] = _segment(
      j[R_SHOULDER], j[L_SHOULDER],
      (r["shoulders"],) * 3, fwd, -up, left)
  prims["hips"] = _segment(j[R_HIP], j[L_HIP], (r["hips"],) * 3, fwd, -up,
                           left)

  # Limbs. Hands continue the forearm, feet point forward from the ankle.
  for side, (sh, el, wr, hp, kn, an) in (
      ("left", (L_SHOULDER, L_ELBOW, L_WRIST, L_HIP, L_KNEE, L_ANKLE)),
      ("right", (R_SHOULDER, R_ELBOW, R_WRIST, R_HIP, R_KNEE, R_ANKLE))):
    seg(f"{side}_upper_arm", j[sh], j[el], r["upper_arm"])
    seg(f"{side}_forearm", j[el], j[wr], r["forearm"])
    fore = _normalize(j[wr] - j[el], fallback=-up)
    hand_len = 0.18 * jnp.linalg.norm(j[wr] - j[el]) + 50.0
    seg(f"{side}_hand", j[wr] + 25.0 * fore, j[wr] + (25.0 + hand_len) * fore,
        LIMB_RADIUS["hand"] * (0.9 + 0.1 * th))
    seg(f"{side}_thigh", j[hp], j[kn], r["thigh"])
    seg(f"{side}_shin", j[kn], j[an], r["shin"])
    shin = _normalize(j[an] - j[kn], fallback=-up)
    foot_dir = _normalize(fwd - jnp.dot(fwd, shin) * shin, fallback=fwd)
    foot_r = LIMB_RADIUS["foot"] * (0.9 + 0.1 * th)
    seg(f"{side}_foot", j[an] - 35.0 * foot_dir + 30.0 * shin,
        j[an] + 150.0 * foot_dir + 45.0 * shin, foot_r)

  parts = [prims[name] for name in PRIMITIVES]
  return Primitives(
      centre=jnp.stack([p[0] for p in parts]),
      frame=jnp.stack([p[1] for p in parts]),
      semi_axes=jnp.stack([jnp.broadcast_to(p[2], (3,)) for p in parts]),
      half_length=jnp.stack([jnp.asarray(p[3], jnp.float32) for p in parts]))


# --------------------------------------------------------------------------
# Crop box and rays.


def project(joints_cam, focal, center):
  """Pinhole projection ``[..., 3]`` mm -> ``[..., 2]`` full-image pixels."""
  return focal * joints_cam[..., :2] / joints_cam[..., 2:3] + center


def crop_box(joints_2d_image, margin):
  """Square box ``(x0, y0, size)`` around projected joints ``[17, 2]``.

  The box is centred on the joints' 2D bounding box; its side is the
  bounding box's longer side times ``1 + 2 * margin`` (at least 1 pixel).
  """
  lo = jnp.min(joints_2d_image, axis=0)
  hi = jnp.max(joints_2d_image, axis=0)
  size = jnp.maximum(jnp.max(hi - lo) * (1.0 + 2.0 * margin), 1.0)
  centre = (lo + hi) / 2
  return jnp.concatenate([centre - size / 2, size[None]])


def _ray_grid(box, focal, center, size, supersample):
  """Ray direction components of a crop's subsamples.

  Returns X ``[ss, S]`` and Y ``[ss, S]`` (the ray's z component is 1):
  subsample (sy, sx) of pixel (row i, column j) has direction
  ``(X[sx, j], Y[sy, i], 1)``, through the point at fraction
  ``((sx + 0.5) / ss, (sy + 0.5) / ss)`` of the pixel's square.
  """
  ss = supersample
  pixel = box[2] / size
  offsets = (jnp.arange(ss, dtype=jnp.float32) + 0.5) / ss
  steps = jnp.arange(size, dtype=jnp.float32)[None, :] + offsets[:, None]
  xs = (box[0] + steps * pixel - center[0]) / focal[0]
  ys = (box[1] + steps * pixel - center[1]) / focal[1]
  return xs, ys


# --------------------------------------------------------------------------
# Ray casting.


def _local_maps(prims: Primitives):
  """``M [N, 3, 3]`` (camera -> local) and local ray origin ``o' [N, 3]``."""
  m = jnp.swapaxes(prims.frame, -1, -2) / prims.semi_axes[:, :, None]
  o = -jnp.einsum("nij,nj->ni", m, prims.centre)
  return m, o


_MISS = 3.0e38  # Encoded depth of a ray that hits no primitive.
_TILE = 8  # Side of the culling tiles, in pixels.
_PAIR_BLOCK = 64  # (tile, primitive) pairs per step of the culled cast.
_ID_BITS = 5  # Low mantissa bits of the encoded depth that hold the id.
assert NUM_PRIMITIVES <= 1 << _ID_BITS


def _encode(t, k):
  """Depth ``t > 0`` with primitive id ``k`` in its low mantissa bits.

  Positive floats order like their bit patterns, so the minimum of encoded
  values is the nearest hit and carries its id; the depth loses 5 of 24
  mantissa bits (relative error < 4e-6, 0.02 mm at 5 m).
  """
  bits = jax.lax.bitcast_convert_type(t, jnp.int32)
  return jax.lax.bitcast_convert_type(
      (bits & ~((1 << _ID_BITS) - 1)) | k, jnp.float32)


def _decode(e):
  """Inverse of ``_encode``: (depth, id); misses give (``_MISS``, junk)."""
  bits = jax.lax.bitcast_convert_type(e, jnp.int32)
  return e, jnp.minimum(bits & ((1 << _ID_BITS) - 1), NUM_PRIMITIVES - 1)


def _primitive_params(prims: Primitives):
  """``[N, 13]`` rows (M row-major, local ray origin o', half length h)."""
  m, o = _local_maps(prims)
  return jnp.concatenate(
      [m.reshape(-1, 9), o, prims.half_length[:, None]], axis=1)


def _encoded_hit(p, k, rx, ry):
  """Encoded first hit of the rays ``(rx, ry, 1)`` with one primitive.

  ``p`` is a list of the 13 parameters of ``_primitive_params`` (scalars or
  arrays broadcasting against the rays), ``k`` the primitive id. Returns
  ``_encode(t, k)``, or ``_MISS`` where the ray misses.
  """
  dx = p[0] * rx + p[1] * ry + p[2]
  dy = p[3] * rx + p[4] * ry + p[5]
  dz = p[6] * rx + p[7] * ry + p[8]
  ox, oy, oz, h = p[9], p[10], p[11], p[12]
  cxz = ox * ox + oz * oz - 1.0
  # Infinite cylinder around the local y axis; its entry point's axial
  # coordinate, clamped to the segment, picks the sphere to test.
  a = dx * dx + dz * dz + 1e-30
  b = ox * dx + oz * dz
  disc = b * b - a * cxz
  tc = (-b - jnp.sqrt(jnp.maximum(disc, 0.0))) / a
  oys = oy - jnp.clip(oy + tc * dy, -h, h)
  # The sphere around that axial point: its first hit is the capsule's (the
  # cylinder hit itself when that lies within the segment).
  aa = a + dy * dy
  bb = b + oys * dy
  disc2 = bb * bb - aa * (cxz + oys * oys)
  t = (-bb - jnp.sqrt(jnp.maximum(disc2, 0.0))) / aa
  hit = (disc >= 0.0) & (disc2 >= 0.0)
  return jnp.where(hit, _encode(t, k), _MISS)


def _cast_body(prims: Primitives, rx, ry):
  """Nearest-hit depth (``_MISS`` on a miss) and primitive id of all rays.

  ``rx``, ``ry`` broadcast to the ray grid. A ``fori_loop`` over the
  primitives folds each primitive's encoded hit depth into a running
  minimum: each iteration is one fused pass over the rays, and the loop's
  result is materialised, so XLA cannot fuse the cast into (and redo it
  for every element of) later per-pixel stages. Assumes the body is in
  front of the camera (every hit has t > 0).
  """
  table = _primitive_params(prims)

  def body(k, best):
    return jnp.minimum(best, _encoded_hit(list(table[k]), k, rx, ry))

  best = jnp.full(jnp.broadcast_shapes(rx.shape, ry.shape), _MISS, jnp.float32)
  return _decode(jax.lax.fori_loop(0, NUM_PRIMITIVES, body, best))


def _screen_bounds(prims: Primitives, box, focal, center, size):
  """Conservative crop-pixel footprint of each primitive.

  Every primitive lies within a round capsule of radius ``max(semi_axes)``
  around its world segment [A, B]; the image of a ball of radius r centred
  at P (z > r) lies within ``f r |P| / (z (z - r))`` of P's image, so the
  primitive's image lies within ``radius`` of the image segment [a, b].

  Returns ``(a [N, 2], b [N, 2], radius [N])`` in crop pixels.
  """
  axis = prims.frame[:, :, 1]
  half = (prims.half_length * prims.semi_axes[:, 1])[:, None]
  ends = jnp.stack([prims.centre - half * axis, prims.centre + half * axis])
  r = jnp.max(prims.semi_axes, axis=1)
  scale = size / box[2]
  uv = (project(ends, focal, center) - box[:2]) * scale  # [2, N, 2]
  z = jnp.min(ends[..., 2], axis=0)
  dist = jnp.max(jnp.linalg.norm(ends, axis=-1), axis=0)
  radius = jnp.where(
      z > 1.01 * r,
      jnp.max(focal) * scale * r * dist / (z * jnp.maximum(z - r, 1e-3)),
      jnp.inf)
  return uv[0], uv[1], radius


def _tile_footprints(prims: Primitives, box, focal, center, size, tile):
  """``covers [T, N]``: may primitive n's image reach tile t (row-major)?

  Tiles are ``tile x tile`` squares of a ``size x size`` crop
  (``T = ceil(size / tile) ** 2``); the test is ``_screen_bounds``'s
  conservative footprint against the circle around the tile.
  """
  nt = -(-size // tile)
  a, b, radius = _screen_bounds(prims, box, focal, center, size)
  centres = (jnp.arange(nt, dtype=jnp.float32) + 0.5) * tile
  cy, cx = jnp.meshgrid(centres, centres, indexing="ij")
  q = jnp.stack([cx.ravel(), cy.ravel()], -1)[:, None, :]  # [T, 1, 2]
  ab = b - a
  s = jnp.clip(jnp.sum((q - a) * ab, -1) / jnp.maximum(
      jnp.sum(ab * ab, -1), 1e-12), 0.0, 1.0)
  dist = jnp.linalg.norm(q - (a + s[..., None] * ab), axis=-1)  # [T, N]
  return dist <= radius + tile * 0.7072


def _cast_body_tiled(prims: Primitives, xs, ys, box, focal, center, size,
                     tile, block=_PAIR_BLOCK):
  """``_cast_body`` on a ``size x size`` grid, culled per square tile.

  Rays ``(xs[j], ys[i], 1)`` for ``i, j < size``. The grid is split into
  ``tile x tile`` tiles, and only the (tile, primitive) pairs whose
  conservative footprints meet (``_tile_footprints``) are tested: the pairs
  are compacted into one list and a loop takes ``block`` of them at a time
  (a data-dependent trip count, so the result is exact whatever the pose),
  each pair testing its tile's rays and folding them into the tile's
  running minimum. On typical crops about one 8 x 8 tile-primitive pair in
  ten meets, so this tests several times fewer rays than a loop over each
  tile's longest list. Returns ``(t, k)`` ``[size, size]``.
  """
  nt = -(-size // tile)
  pad = nt * tile - size
  if pad:
    step_x = xs[1] - xs[0] if size > 1 else 1.0
    step_y = ys[1] - ys[0] if size > 1 else 1.0
    more = jnp.arange(1, pad + 1, dtype=jnp.float32)
    xs = jnp.concatenate([xs, xs[-1] + step_x * more])
    ys = jnp.concatenate([ys, ys[-1] + step_y * more])
  xs_t = xs.reshape(nt, tile)
  ys_t = ys.reshape(nt, tile)

  covers = _tile_footprints(prims, box, focal, center, size, tile).ravel()
  num_pairs = jnp.sum(covers, dtype=jnp.int32)
  total = covers.shape[0]
  # The meeting pairs (flat index tile * N + primitive), compacted in order;
  # slots from num_pairs on are masked below.
  slot = jnp.where(covers, jnp.cumsum(covers) - 1, total + block)
  pairs = jnp.zeros((total + block,), jnp.int32).at[slot].set(
      jnp.arange(total, dtype=jnp.int32), mode="drop")
  table = _primitive_params(prims)

  def body(state):
    i, best = state
    pair = jax.lax.dynamic_slice(pairs, (i * block,), (block,))
    valid = i * block + jnp.arange(block) < num_pairs
    row, col = pair // NUM_PRIMITIVES // nt, pair // NUM_PRIMITIVES % nt
    k = pair % NUM_PRIMITIVES
    params = table[k].reshape(block, 1, 1, -1)
    hit = _encoded_hit([params[..., n] for n in range(13)],
                       k.reshape(block, 1, 1), xs_t[col][:, None, :],
                       ys_t[row][:, :, None])  # [pair, row, column in tile]
    hit = jnp.where(valid[:, None, None], hit, _MISS)
    # A scatter-min: a block may hold several pairs of one tile.
    return i + 1, best.at[row, :, col, :].min(hit)

  # [tile row, row in tile, tile column, column in tile]: a reshape (no
  # transpose) of the [size, size] grid.
  best = jnp.full((nt, tile, nt, tile), _MISS, jnp.float32)
  _, best = jax.lax.while_loop(lambda st: st[0] * block < num_pairs, body,
                               (jnp.int32(0), best))
  best = best.reshape(nt * tile, nt * tile)
  return _decode(best[:size, :size])


# --------------------------------------------------------------------------
# Shading.

# Materials: indices into the per-image palette of ``_palette``.
(_SKIN, _SHIRT, _TROUSERS, _SHOES, _HAIR, _SHIRT_FRONT, _EYES, _MOUTH,
 _FLOOR_A, _FLOOR_B, _WALL, _WALL_TRIM, _CEILING) = range(13)
_FIRST_SHIRT = _P["chest"]
_FIRST_SPLIT = _P["abdomen"]
_FIRST_TROUSERS = _P["hips"]
_FIRST_SHOES = _P["left_foot"]
_SPLIT = tuple(range(_FIRST_SPLIT, _FIRST_TROUSERS))


def _palette(appearance: Appearance):
  """``[13, 3]`` material colours (order ``_SKIN`` ... ``_CEILING``)."""
  a = appearance
  return jnp.stack([
      a.skin, a.shirt, a.trousers, a.shoes, a.hair, a.shirt_front,
      0.25 * a.hair + 0.05, a.skin * jnp.array([0.75, 0.45, 0.45]),
      a.floor_a, a.floor_b, a.wall, a.wall_trim, jnp.full((3,), 0.9)])


def _pack(material, level):
  """One float per pixel: material id + sqrt(level) / 2, level in [0, 4).

  The renderer's per-pixel stages each end in one such plane and colour is
  expanded to RGB only at the end. XLA fuses cheap per-pixel work into every
  consumer, so expanding to three channels earlier would redo it per
  channel; the square root (a gamma-like encoding of the light level) also
  marks the plane as expensive, which keeps XLA from fusing it into the
  three-channel consumer.
  """
  return material.astype(jnp.float32) + 0.5 * jnp.sqrt(
      jnp.clip(level, 0.0, 3.99))


def _unpack_colour(packed, palette):
  """``[..., 3]`` colour ``palette[material] * level`` of packed pixels."""
  material = jnp.floor(packed)
  level = jnp.square(2.0 * (packed - material))
  index = jnp.clip(material.astype(jnp.int32), 0, palette.shape[0] - 1)
  albedo = jnp.take(palette, index, axis=0, mode="clip")
  return albedo * level[..., None]


def _split_rules(appearance: Appearance):
  """Per split primitive (``_SPLIT``): (material below, above, threshold).

  The threshold is on the axial position ``s`` in [0, 1] from the
  primitive's first joint; ``sleeve`` and ``trouser_length`` are fractions
  of the whole arm/leg, i.e. of two segments.
  """
  sleeve = 2.0 * jnp.clip(appearance.sleeve, 0.0, 1.0)
  legs = 2.0 * jnp.clip(appearance.trouser_length, 0.0, 1.0)
  rules = {
      "abdomen": (_TROUSERS, _SHIRT, jnp.float32(0.3)),
      "upper_arm": (_SHIRT, _SKIN, sleeve),
      "forearm": (_SHIRT, _SKIN, sleeve - 1.0),
      "thigh": (_TROUSERS, _SKIN, legs),
      "shin": (_TROUSERS, _SKIN, legs - 1.0),
  }
  return [rules[PRIMITIVES[n].replace("left_", "").replace("right_", "")]
          for n in _SPLIT]


def _value_noise(u, v, seed):
  """Smooth value noise in [0, 1] on the integer lattice of (u, v)."""
  iu = jnp.floor(u)
  iv = jnp.floor(v)
  fu = u - iu
  fv = v - iv
  iu = iu.astype(jnp.int32).astype(jnp.uint32)
  iv = iv.astype(jnp.int32).astype(jnp.uint32)
  s = seed.astype(jnp.int32).astype(jnp.uint32)

  def hash2(a, b):
    x = a * jnp.uint32(0x8DA6B343) ^ b * jnp.uint32(0xD8163841) ^ (
        s * jnp.uint32(0xCB1AB31F))
    x = (x ^ (x >> 15)) * jnp.uint32(0x2C1B3C6D)
    x = (x ^ (x >> 12)) * jnp.uint32(0x297A2D39)
    x = x ^ (x >> 15)
    return (x >> 8).astype(jnp.float32) * (1.0 / (1 << 24))

  su = fu * fu * (3.0 - 2.0 * fu)
  sv = fv * fv * (3.0 - 2.0 * fv)
  n00 = hash2(iu, iv)
  n10 = hash2(iu + 1, iv)
  n01 = hash2(iu, iv + 1)
  n11 = hash2(iu + 1, iv + 1)
  return (n00 * (1 - su) + n10 * su) * (1 - sv) + (
      n01 * (1 - su) + n11 * su) * sv


def _light_dir(appearance: Appearance, floor: Floor):
  a2 = jnp.cross(floor.up, floor.axis)
  ce = jnp.cos(appearance.light_elevation)
  light = ce * (jnp.cos(appearance.light_azimuth) * floor.axis +
                jnp.sin(appearance.light_azimuth) * a2) + (
                    jnp.sin(appearance.light_elevation) * floor.up)
  return _normalize(light)


def _shade(normal_dot_light, normal_dot_view, ambient):
  return ambient + (1.0 - ambient) * (
      0.75 * jnp.maximum(normal_dot_light, 0.0) +
      0.35 * jnp.maximum(normal_dot_view, 0.0))


def _background(appearance: Appearance, floor: Floor, prims: Primitives, rx,
                ry, light):
  """Packed (material, light level) ``[H, W]`` of the room along the rays.

  Assumes the camera is inside the room.
  """
  a = appearance
  a1 = floor.axis
  a2 = jnp.cross(floor.up, floor.axis)

  def along(vec):
    return vec[0] * rx + vec[1] * ry + vec[2], jnp.dot(floor.origin, vec)

  def exit_t(d, o, lo, hi):
    # The ray t*d leaves the slab lo <= (p - origin).vec <= hi through the
    # bound it moves towards.
    bound = jnp.where(d > 0, o + hi, o + lo)
    t = bound / jnp.where(jnp.abs(d) > 1e-12, d, 1e-12)
    return jnp.where(t > 0, t, 1e12)

  d1, o1 = along(a1)
  d2, o2 = along(a2)
  du, ou = along(floor.up)
  t1 = exit_t(d1, o1, -floor.half_size[0], floor.half_size[0])
  t2 = exit_t(d2, o2, -floor.half_size[1], floor.half_size[1])
  tu = exit_t(du, ou, 0.0, floor.height)
  t = jnp.minimum(jnp.minimum(t1, t2), tu)
  # Room coordinates of the hit point.
  q1 = t * d1 - o1
  q2 = t * d2 - o2
  qu = t * du - ou
  on_floor = (tu <= t) & (du < 0)
  on_ceiling = (tu <= t) & (du >= 0)
  on_wall1 = (t1 <= t) & ~on_floor & ~on_ceiling  # walls normal to a1
  # Surface coordinates (mm): floor (q1, q2), walls (along the wall, height).
  su = jnp.where(on_floor, q1, jnp.where(on_wall1, q2, q1))
  sv = jnp.where(on_floor, q2, qu)
  noise = 0.6 * _value_noise(su * (1 / 160.0), sv * (1 / 160.0),
                             a.texture_seed) + 0.4 * _value_noise(
                                 su * (1 / 41.0), sv * (1 / 41.0),
                                 a.texture_seed + 1)
  texture = 1.0 + a.texture_contrast * (2.0 * noise - 1.0)

  # Floor: checker tiles with grout lines and soft contact shadows.
  inv_tile = 1.0 / a.floor_tile
  fu = q1 * inv_tile
  fv = q2 * inv_tile
  cu = jnp.floor(fu)
  cv = jnp.floor(fv)
  fu = fu - cu
  fv = fv - cv
  odd = (cu + cv) * 0.5 - jnp.floor((cu + cv) * 0.5) > 0.25
  grout = jnp.minimum(jnp.minimum(fu, 1 - fu), jnp.minimum(fv, 1 - fv)) < (
      8.0 * inv_tile)
  # Blob shadows under feet, shins and hips: a smooth bump (1 - d^2/R^2)^2
  # in floor distance, fading with the body part's height above the floor.
  pts = prims.centre[jnp.array([
      _P["left_foot"], _P["right_foot"], _P["left_shin"], _P["right_shin"],
      _P["hips"]])] - floor.origin
  inv_radius2 = 1.0 / jnp.array([220.0, 220.0, 320.0, 320.0, 520.0]) ** 2
  strength = 0.55 * jnp.clip(1.0 - (pts @ floor.up) / 1200.0, 0.0, 1.0)
  p1 = pts @ a1
  p2 = pts @ a2
  occl = jnp.zeros_like(q1)
  for i in range(pts.shape[0]):
    bump = jnp.maximum(
        1.0 - ((q1 - p1[i]) ** 2 + (q2 - p2[i]) ** 2) * inv_radius2[i], 0.0)
    occl = jnp.maximum(occl, strength[i] * bump * bump)
  floor_light = _shade(jnp.dot(floor.up, light), 0.6, a.ambient) * (
      1.0 - occl) * jnp.where(grout, 0.7, 1.0)

  # Walls: panels with seams, a skirting band and a dado rail.
  panel = su * (1.0 / a.wall_panel)
  seam = jnp.abs(panel - jnp.floor(panel) - 0.5) > 0.485
  trim = (qu < 140.0) | (jnp.abs(qu - 1000.0) < 25.0) | seam
  wall_n_dot_l = jnp.where(on_wall1, -jnp.sign(d1) * jnp.dot(a1, light),
                           -jnp.sign(d2) * jnp.dot(a2, light))
  wall_light = _shade(wall_n_dot_l, 0.5, a.ambient)

  light_level = texture * jnp.where(
      on_floor, floor_light, jnp.where(on_ceiling, a.ambient, wall_light))
  mat = jnp.where(on_floor, jnp.where(odd, _FLOOR_B, _FLOOR_A), jnp.where(
      on_ceiling, _CEILING, jnp.where(trim, _WALL_TRIM, _WALL)))
  return _pack(mat, light_level)


def _dot(a, b):
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _local_coords(prims: Primitives, n: int, p):
  """Local coordinates ``M (p - c)`` of points ``p`` (3 planes) in prim n."""
  m, o = _local_maps(prims)
  return [m[n, i, 0] * p[0] + m[n, i, 1] * p[1] + m[n, i, 2] * p[2] + o[n, i]
          for i in range(3)]


def _normal_and_axial(prims: Primitives, k, p):
  """Unit surface normal (3 planes) and axial position s in [0, 1] at hits.

  For a primitive with local map M and centre c, the hit q = p - c has
  clamped axial coordinate ys = clip(g . q, -h, h) with g = M^T e_y, and
  normal direction M^T (M q - ys e_y) = G q - ys g with G = M^T M. The 13
  per-primitive constants (c, G, g, h) are looked up per pixel by the
  primitive id, one small gather per constant (a chain of selects over all
  19 primitives per constant cost XLA:CPU about twice as much).
  """
  m, _ = _local_maps(prims)
  gram = jnp.einsum("nji,njk->nik", m, m)
  g = m[:, 1, :]
  table = jnp.concatenate([
      prims.centre, gram[:, 0, 0:3], gram[:, 1, 1:3], gram[:, 2, 2:3], g,
      prims.half_length[:, None]], axis=1)  # [N, 13]
  cols = [jnp.take(table[:, f], k, mode="clip") for f in range(13)]
  cx, cy, cz, gxx, gxy, gxz, gyy, gyz, gzz, g0, g1, g2, h = cols
  q = (p[0] - cx, p[1] - cy, p[2] - cz)
  ys = jnp.clip(g0 * q[0] + g1 * q[1] + g2 * q[2], -h, h)
  n = (gxx * q[0] + gxy * q[1] + gxz * q[2] - ys * g0,
       gxy * q[0] + gyy * q[1] + gyz * q[2] - ys * g1,
       gxz * q[0] + gyz * q[1] + gzz * q[2] - ys * g2)
  inv = jax.lax.rsqrt(jnp.maximum(_dot(n, n), 1e-30))
  s = jnp.where(h > 0, (ys + h) / jnp.maximum(2.0 * h, 1e-6), 0.5)
  return tuple(c * inv for c in n), s


def _body_colour(appearance: Appearance, prims: Primitives, t, k, rx, ry,
                 light):
  """Packed (material, light level) ``[H, W]`` of the body at hits (t, k).

  Per-pixel work uses only the depth, the primitive id and per-image
  constants (looked up by the id where they are per-primitive): materials come
  from the primitive id, the hit's axial position on split primitives, and
  local coordinates on the head and chest.
  """
  a = appearance
  t = jnp.minimum(t, 1e9)
  view = (rx + 0.0 * ry, ry + 0.0 * rx, jnp.ones_like(t))
  p = (t * view[0], t * view[1], t)
  normal, s = _normal_and_axial(prims, k, p)
  n_dot_l = _dot(normal, light)
  n_dot_v = -_dot(normal, view) * jax.lax.rsqrt(_dot(view, view))
  shade = _shade(n_dot_l, n_dot_v, a.ambient)

  # Base materials by primitive id range.
  mat = jnp.where(k < _FIRST_SHIRT, _SKIN,
                  jnp.where(k < _FIRST_SPLIT, _SHIRT,
                            jnp.where(k < _FIRST_SHOES, _TROUSERS, _SHOES)))
  # Split primitives: the rule (materials below/above a threshold on the
  # axial position s) chosen by id.
  thr, below, above = jnp.float32(0.0), jnp.int32(0), jnp.int32(0)
  for n, (m_below, m_above, threshold) in zip(_SPLIT, _split_rules(a)):
    sel = k == n
    thr = jnp.where(sel, threshold, thr)
    below = jnp.where(sel, m_below, below)
    above = jnp.where(sel, m_above, above)
  split = (k >= _FIRST_SPLIT) & (k < _FIRST_TROUSERS)
  mat = jnp.where(split, jnp.where(s < thr, below, above), mat)

  # Head: hair on top and back, face (eyes, brows, mouth) on the front.
  x, y, z = _local_coords(prims, _P["head"], p)
  ax = jnp.abs(x)
  back_level = -0.3 - 0.6 * jnp.clip(a.hair_style, 0, 1)
  hair = (y > 0.42 - 0.1 * z + 0.12 * ax) | ((z < -0.1) & (y > back_level)) | (
      (z < 0.25) & (y > 0.05) & (ax > 0.55))
  face = z > 0.5
  eyes = face & (((ax - 0.36) ** 2 + (y - 0.12) ** 2 < 0.02) | (
      (jnp.abs(ax - 0.36) < 0.17) & (jnp.abs(y - 0.3) < 0.045)))
  mouth = face & (ax < 0.22) & (jnp.abs(y + 0.45) < 0.06)
  head_mat = jnp.where(hair, _HAIR, jnp.where(
      eyes, _EYES, jnp.where(mouth, _MOUTH, _SKIN)))
  mat = jnp.where(k == _P["head"], head_mat, mat)

  # Shirt front: a collar band at the top and a round chest logo.
  x, y, z = _local_coords(prims, _P["chest"], p)
  top = prims.half_length[_P["chest"]] + 0.55
  front = ((z > 0.0) & (y > top) & (jnp.abs(x) < 0.45)) | (
      (z > 0.6) & (x * x + y * y < 0.09))
  mat = jnp.where((k == _P["chest"]) & front, _SHIRT_FRONT, mat)

  return _pack(mat, shade)


# --------------------------------------------------------------------------
# Public entry points.


def _check_inputs(joints_cam, focal, center, appearance, floor, out_size,
                  margin, supersample, batched):
  lead = "[B, ...]" if batched else ""
  jshape = tuple(np.shape(joints_cam))
  want = ((-1,) if batched else ()) + (poses_lib.NUM_JOINTS, 3)
  if len(jshape) != len(want) or jshape[-2:] != want[-2:]:
    hint = "" if batched else " Use render_batch for batches."
    raise ValueError(
        f"joints_cam must have shape {lead}[17, 3] (camera-frame joints, mm), "
        f"got {jshape}.{hint}")
  for name, arr in (("focal", focal), ("center", center)):
    shape = tuple(np.shape(arr))
    if shape != (2,) and not (batched and len(shape) == 2 and shape[1] == 2):
      also = " or [B, 2]" if batched else ""
      raise ValueError(
          f"{name} must have shape [2] (pixels){also}, got {shape}.")
  if check_appearance(appearance) and not batched:
    raise ValueError(
        "appearance has a batch axis; render_person takes one Appearance "
        "(use render_batch for batches).")
  check_floor(floor)
  if not isinstance(out_size, (int, np.integer)) or out_size < 2:
    raise ValueError(f"out_size must be an int >= 2, got {out_size!r}.")
  if not isinstance(supersample, (int, np.integer)) or supersample < 1:
    raise ValueError(
        f"supersample must be an int >= 1 (rays per pixel side), got "
        f"{supersample!r}.")
  if not isinstance(margin, jax.core.Tracer) and not np.all(
      np.asarray(margin) >= 0):
    raise ValueError(
        f"margin must be >= 0 (fraction of the box), got {margin}.")
  if not isinstance(joints_cam, jax.core.Tracer):
    z = np.asarray(joints_cam)[..., 2]
    if not np.all(np.isfinite(np.asarray(joints_cam))) or not np.all(z > 1.0):
      raise ValueError(
          "joints_cam must be finite with every joint in front of the camera "
          "(z > 1 mm; camera frame, not root-relative: add the root's "
          f"camera-frame position). Got z in [{np.nanmin(z)}, {np.nanmax(z)}].")


def _render(joints_cam, focal, center, appearance, floor, margin, key, *,
            out_size, supersample):
  joints_cam = jnp.asarray(joints_cam, jnp.float32)
  focal = jnp.asarray(focal, jnp.float32)
  center = jnp.asarray(center, jnp.float32)
  appearance = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), appearance)
  floor = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), floor)
  uv = project(joints_cam, focal, center)
  box = crop_box(uv, margin)
  joints_2d = (uv - box[:2]) * (out_size / box[2])

  xs, ys = _ray_grid(box, focal, center, out_size, supersample)
  prims = body_primitives(joints_cam, appearance)
  light = _light_dir(appearance, floor)
  ss = supersample

  def subsample_plane(index):
    # One ray per pixel: cast, shade, and pack into one float per pixel.
    row_x, col_y = xs[index % ss], ys[index // ss]
    t, k = _cast_body_tiled(prims, row_x, col_y, box, focal, center,
                            out_size, _TILE)
    rx, ry = row_x[None, :], col_y[:, None]
    hit = t < _MISS
    body = _body_colour(appearance, prims, t, k, rx, ry, light)
    bg = _background(appearance, floor, prims, rx, ry, light)
    return jnp.where(hit, body, bg), t

  # A loop over the ss * ss subsample planes: besides bounding memory, its
  # outputs are materialised, which stops XLA from fusing the per-pixel
  # stages into the pooling (and redoing them per channel and subsample).
  packed, t = jax.lax.map(subsample_plane, jnp.arange(ss * ss))
  hit = t < _MISS
  palette = _palette(appearance)
  colour = sum(_unpack_colour(packed[i], palette) for i in range(ss * ss))
  colour = colour / (ss * ss)
  cover = sum(hit[i].astype(jnp.float32) for i in range(ss * ss)) / (ss * ss)
  depth = functools.reduce(jnp.minimum, [t[i] for i in range(ss * ss)])
  depth = jnp.where(depth < _MISS, depth, 0.0)
  if key is not None:
    colour = colour + appearance.noise_std * jax.random.normal(
        key, colour.shape)
  image = jnp.round(jnp.clip(colour, 0.0, 1.0) * 255.0).astype(jnp.uint8)
  return RenderOutput(image=image, box=box, joints_2d=joints_2d,
                      mask=cover >= 0.5, depth=depth)


def render_person(joints_cam, focal, center, appearance: Appearance,
                  floor: Floor, *, out_size: int = 128, margin=0.2,
                  key=None, supersample: int = 2) -> RenderOutput:
  """Renders one person crop by ray casting (pure; jit it with static sizes).

  Args:
    joints_cam: ``[17, 3]`` joints in mm, camera frame (not root-relative;
      every joint must be in front of the camera).
    focal: ``[2]`` focal lengths (fx, fy), pixels.
    center: ``[2]`` principal point (cx, cy), pixels.
    appearance: unbatched ``Appearance``.
    floor: unbatched ``Floor`` (room geometry).
    out_size: output side S in pixels (static).
    margin: box margin on each side as a fraction of the joints' 2D extent.
    key: optional PRNG key; when given, Gaussian pixel noise of std
      ``appearance.noise_std`` is added. ``None`` renders deterministically.
    supersample: rays per pixel side (static); 1 disables anti-aliasing.

  Returns:
    ``RenderOutput`` (image uint8 ``[S, S, 3]``, box ``[3]``, joints_2d
    ``[17, 2]``, mask bool ``[S, S]``, depth ``[S, S]``).

  Raises:
    ValueError: wrong shapes, sizes, or (for concrete inputs) joints behind
      the camera.
  """
  _check_inputs(joints_cam, focal, center, appearance, floor, out_size, margin,
                supersample, batched=False)
  return _render(joints_cam, focal, center, appearance, floor, margin, key,
                 out_size=out_size, supersample=supersample)


@functools.partial(jax.jit, static_argnames=(
    "out_size", "supersample", "axes", "with_key", "chunk"))
def _render_batch_jit(joints_cam, focal, center, appearance, floor, margin, key,
                      *, out_size, supersample, axes, with_key, chunk):
  """vmap over chunks of ``chunk`` examples, ``lax.map`` over the chunks.

  Chunking bounds XLA's temporary buffers (a few per-pixel planes per
  example): small buffers stay in cache and are reused by the allocator
  instead of being mapped afresh (page faults) on every call.
  """
  fn = functools.partial(_render, out_size=out_size, supersample=supersample)
  b = joints_cam.shape[0]
  keys = jax.random.split(key, b) if with_key else None
  args = (joints_cam, focal, center, appearance, floor, keys)
  in_axes = axes + ((0 if with_key else None),)
  chunk = max(1, min(chunk, b))
  n_chunks = -(-b // chunk)
  pad = n_chunks * chunk - b

  def split(x, axis):
    if axis is None:
      return x
    x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) if pad else x
    return x.reshape((n_chunks, chunk) + x.shape[1:])

  batched = [jax.tree.map(lambda x, ax=ax: split(x, ax), arg)
             for arg, ax in zip(args, in_axes)]
  mapped = [i for i, ax in enumerate(in_axes) if ax is not None]

  def one_chunk(xs):
    full = list(args)
    for i, x in zip(mapped, xs):
      full[i] = x
    call_args = full[:5] + [margin] + full[5:]
    return jax.vmap(fn, in_axes=in_axes[:5] + (None,) + in_axes[5:])(
        *call_args)

  out = jax.lax.map(one_chunk, [batched[i] for i in mapped])
  return jax.tree.map(
      lambda x: x.reshape((n_chunks * chunk,) + x.shape[2:])[:b], out)


def render_batch(joints_cam, focal, center, appearance: Appearance,
                 floor: Floor, *, out_size: int = 128, margin=0.2, key=None,
                 supersample: int = 2, chunk: int = 8) -> RenderOutput:
  """``jit(vmap(render_person))`` over a batch of poses.

  Args:
    joints_cam: ``[B, 17, 3]`` mm, camera frame.
    focal, center: ``[2]`` (shared) or ``[B, 2]`` pixels.
    appearance: unbatched (shared) or batched (leading axis B) ``Appearance``.
    floor: unbatched (shared) or batched ``Floor``.
    out_size, margin, supersample: as in ``render_person`` (margin is one
      scalar for the batch).
    key: optional PRNG key, split into one key per example.
    chunk: examples rendered together (vmap) per step of a ``lax.map`` over
      the batch; bounds temporary memory (see ``_render_batch_jit``). The
      results do not depend on it.

  Returns:
    ``RenderOutput`` with a leading axis B on every field.
  """
  _check_inputs(joints_cam, focal, center, appearance, floor, out_size, margin,
                supersample, batched=True)
  b = np.shape(joints_cam)[0]
  app_batched = check_appearance(appearance)
  floor_batched = check_floor(floor)
  if app_batched not in (0, 1) or (
      app_batched and np.shape(appearance.thickness)[0] != b):
    raise ValueError(
        f"appearance must be unbatched or have batch shape [{b}], got leaf "
        f"shape {np.shape(appearance.thickness)} for thickness.")
  if floor_batched and np.shape(floor.up)[0] != b:
    raise ValueError(
        f"floor must be unbatched or batched with {b} rooms, got floor.up of "
        f"shape {np.shape(floor.up)}.")
  for name, arr in (("focal", focal), ("center", center)):
    if np.ndim(arr) == 2 and np.shape(arr)[0] != b:
      raise ValueError(f"{name} has batch {np.shape(arr)[0]}, poses have {b}.")
  if np.ndim(margin) != 0:
    raise ValueError(f"margin must be a scalar, got shape {np.shape(margin)}.")
  if not isinstance(chunk, (int, np.integer)) or chunk < 1:
    raise ValueError(f"chunk must be an int >= 1, got {chunk!r}.")
  axes = (0, 0 if np.ndim(focal) == 2 else None,
          0 if np.ndim(center) == 2 else None, 0 if app_batched else None,
          0 if floor_batched else None)
  return _render_batch_jit(
      jnp.asarray(joints_cam, jnp.float32), focal, center, appearance, floor,
      jnp.asarray(margin, jnp.float32), key, out_size=int(out_size),
      supersample=int(supersample), axes=axes, with_key=key is not None,
      chunk=int(chunk))


def contact_sheet(images, ncols: int, pad: int = 2, pad_value: int = 255):
  """Tiles images ``[N, H, W, C]`` uint8 into one ``[rows*(H+pad)+pad, ...]``.

  Pure numpy. Missing cells of the last row are filled with ``pad_value``.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.dtype != np.uint8:
    raise ValueError(
        f"images must be uint8 [N, H, W, C], got {images.dtype} "
        f"{images.shape}.")
  if ncols < 1:
    raise ValueError(f"ncols must be >= 1, got {ncols}.")
  n, h, w, c = images.shape
  rows = -(-n // ncols)
  sheet = np.full((rows * (h + pad) + pad, ncols * (w + pad) + pad, c),
                  pad_value, np.uint8)
  for i in range(n):
    r, col = divmod(i, ncols)
    y0 = pad + r * (h + pad)
    x0 = pad + col * (w + pad)
    sheet[y0:y0 + h, x0:x0 + w] = images[i]
  return sheet
