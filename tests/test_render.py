"""Tests for data_pipelines.render.core and data_pipelines.rig.appearance.

References are independent of the renderer: a numpy pinhole projection, a
numpy ray march of the primitives' implicit inside-test (no quadratic
formulas), and symmetry arguments (mirroring the scene, turning the person).
All renders share a few compiled shapes (batches of 4 at 48x48 pixels) so
that the file runs in well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines.render import core as render
from data_pipelines.rig import appearance as app_lib
from structnet_jax import poses as poses_lib

FOCAL = np.array([1145.0, 1143.0])
CENTER = np.array([512.5, 515.5])
SIZE = 48  # Crop side used by most tests (one compiled shape).
BATCH = 4

# Human3.6M bone lengths (mm).
_BONE = dict(hip=133.0, thigh=443.0, shin=454.0, spine=233.0, spine2=257.0,
             neck=121.0, head=115.0, sho=151.0, uarm=279.0, farm=252.0)


def _unit(v):
  v = np.asarray(v, np.float64)
  return v / np.linalg.norm(v)


def body_pose(thigh_l=(0, 0, -1), shin_l=(0, 0, -1), thigh_r=(0, 0, -1),
              shin_r=(0, 0, -1), uarm_l=(0.15, 0, -1), farm_l=(0.1, 0.1, -1),
              uarm_r=(-0.15, 0, -1), farm_r=(-0.1, 0.1, -1), spine=(0, 0, 1),
              neck=(0, 0.1, 1), pelvis_height=960.0):
  """Joints ``[17, 3]`` in a body frame (x left, y forward, z up), mm."""
  j = np.zeros((17, 3))
  left = np.array([1.0, 0, 0])
  j[0] = (0, 0, pelvis_height)
  j[1], j[4] = j[0] - _BONE["hip"] * left, j[0] + _BONE["hip"] * left
  j[2] = j[1] + _BONE["thigh"] * _unit(thigh_r)
  j[3] = j[2] + _BONE["shin"] * _unit(shin_r)
  j[5] = j[4] + _BONE["thigh"] * _unit(thigh_l)
  j[6] = j[5] + _BONE["shin"] * _unit(shin_l)
  j[7] = j[0] + _BONE["spine"] * _unit(spine)
  j[8] = j[7] + _BONE["spine2"] * _unit(spine)
  j[9] = j[8] + _BONE["neck"] * _unit(neck)
  j[10] = j[9] + _BONE["head"] * _unit((0, 0, 1))
  j[11], j[14] = j[8] + _BONE["sho"] * left, j[8] - _BONE["sho"] * left
  j[12] = j[11] + _BONE["uarm"] * _unit(uarm_l)
  j[13] = j[12] + _BONE["farm"] * _unit(farm_l)
  j[15] = j[14] + _BONE["uarm"] * _unit(uarm_r)
  j[16] = j[15] + _BONE["farm"] * _unit(farm_r)
  return j


def random_body_pose(rng):
  """A plausible random pose: limbs swung about the standing pose."""
  def jitter(v, s):
    return _unit(np.asarray(v, float) + s * rng.normal(size=3))
  return body_pose(
      thigh_l=jitter((0, 0, -1), 0.3), shin_l=jitter((0, -0.1, -1), 0.3),
      thigh_r=jitter((0, 0, -1), 0.3), shin_r=jitter((0, -0.1, -1), 0.3),
      uarm_l=jitter((0.3, 0, -1), 0.8), farm_l=jitter((0.2, 0.3, -1), 1.0),
      uarm_r=jitter((-0.3, 0, -1), 0.8), farm_r=jitter((-0.2, 0.3, -1), 1.0),
      spine=jitter((0, 0, 1), 0.1))


def place(j_body, heading, cam_distance, cam_azimuth=0.0, cam_height=1500.0):
  """World (z up) placement facing ``heading`` and a look-at camera.

  Returns ``(joints_cam [17, 3], rotation [3, 3], translation [3])`` with
  ``x_cam = rotation @ x_world + translation`` (x right, y down, z forward).
  """
  fwd = np.array([np.cos(heading), np.sin(heading), 0.0])
  left = np.array([-np.sin(heading), np.cos(heading), 0.0])
  up = np.array([0.0, 0.0, 1.0])
  world = j_body[:, :1] * left + j_body[:, 1:2] * fwd + j_body[:, 2:3] * up
  cam = np.array([cam_distance * np.cos(cam_azimuth),
                  cam_distance * np.sin(cam_azimuth), cam_height])
  z = _unit(np.array([0.0, 0.0, 900.0]) - cam)
  x = _unit(np.cross(z, up))
  y = np.cross(z, x)
  rot = np.stack([x, y, z])
  trans = -rot @ cam
  return world @ rot.T + trans, rot, trans


def facing_camera(j_body, cam_distance=4500.0, cam_azimuth=0.3):
  """Placement with the person facing the camera."""
  return place(j_body, cam_azimuth, cam_distance, cam_azimuth)


def stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def render4(joints, appearances, floors, margin=0.2, **kwargs):
  """Renders up to 4 examples as one batch of 4 (one compiled shape)."""
  n = len(joints)
  pad = BATCH - n
  joints = list(joints) + [joints[-1]] * pad
  appearances = list(appearances) + [appearances[-1]] * pad
  floors = list(floors) + [floors[-1]] * pad
  out = render.render_batch(
      np.stack(joints).astype(np.float32), FOCAL, CENTER, stack(appearances),
      stack(floors), out_size=kwargs.pop("out_size", SIZE), margin=margin,
      supersample=kwargs.pop("supersample", 1), **kwargs)
  return jax.tree.map(lambda x: np.asarray(x)[:n], out)


def plain_appearance(**overrides):
  """A fixed, hand-written Appearance (no random draws), with overrides."""
  fields = dict(
      thickness=1.0, skin=[0.9, 0.7, 0.55], hair=[0.2, 0.12, 0.05],
      shirt=[0.2, 0.35, 0.7], shirt_front=[0.95, 0.95, 0.9],
      trousers=[0.15, 0.15, 0.2], shoes=[0.1, 0.08, 0.08], sleeve=0.3,
      trouser_length=1.0, hair_style=0.3, floor_a=[0.6, 0.55, 0.5],
      floor_b=[0.4, 0.38, 0.35], floor_tile=500.0, wall=[0.5, 0.5, 0.45],
      wall_trim=[0.3, 0.3, 0.28], wall_panel=1200.0, texture_seed=7.0,
      texture_contrast=0.2, light_azimuth=0.5, light_elevation=0.9,
      ambient=0.35, noise_std=0.0)
  fields.update(overrides)
  return app_lib.Appearance(**{k: np.asarray(v, np.float32)
                               for k, v in fields.items()})


def pinhole(joints_cam):
  joints_cam = np.asarray(joints_cam, np.float64)
  return FOCAL * joints_cam[:, :2] / joints_cam[:, 2:3] + CENTER


def pixel_ray(box, row, col, size=SIZE):
  """Ray direction (z = 1) through the centre of crop pixel (row, col)."""
  x0, y0, side = (float(v) for v in box)
  u = x0 + (col + 0.5) * side / size
  v = y0 + (row + 0.5) * side / size
  return np.array([(u - CENTER[0]) / FOCAL[0], (v - CENTER[1]) / FOCAL[1], 1.0])


def inside(prims: render.Primitives, points, which=None):
  """Boolean ``[..., N]``: is each point inside each primitive (numpy)."""
  centre = np.asarray(prims.centre, np.float64)
  frame = np.asarray(prims.frame, np.float64)
  semi = np.asarray(prims.semi_axes, np.float64)
  half = np.asarray(prims.half_length, np.float64)
  idx = np.arange(len(centre)) if which is None else np.asarray(which)
  rel = points[..., None, :] - centre[idx]
  local = np.einsum("...ni,nij->...nj", rel, frame[idx]) / semi[idx]
  axial = np.clip(local[..., 1], -half[idx], half[idx])
  dist2 = local[..., 0] ** 2 + (local[..., 1] - axial) ** 2 + local[..., 2] ** 2
  return dist2 <= 1.0


def march_depth(prims, rays, which=None, step=4.0, near=2000.0, far=9000.0):
  """First z-depth along each ray ``[R, 3]`` inside the union (numpy).

  A coarse march of the implicit inside-test followed by bisection; inf on a
  miss.
  """
  ts = np.arange(near, far, step)
  pts = ts[None, :, None] * rays[:, None, :]
  hits = inside(prims, pts, which).any(-1)
  first = np.where(hits.any(1), hits.argmax(1), -1)
  depth = np.full(len(rays), np.inf)
  for r in np.flatnonzero(first >= 0):
    lo, hi = ts[first[r]] - step, ts[first[r]]
    for _ in range(30):
      mid = 0.5 * (lo + hi)
      if inside(prims, mid * rays[r], which).any():
        hi = mid
      else:
        lo = mid
    depth[r] = hi
  return depth


def test_projection_and_box_match_pinhole():
  rng = np.random.default_rng(0)
  joints, floors = [], []
  for i in range(BATCH):
    jc, rot, trans = place(random_body_pose(rng), rng.uniform(0, 2 * np.pi),
                           rng.uniform(3000, 6000), rng.uniform(0, 2 * np.pi))
    joints.append(jc)
    floors.append(render.floor_from_extrinsics(rot, trans))
  out = render4(joints, [plain_appearance()] * BATCH, floors, margin=0.2)
  for jc, box, j2d in zip(joints, out.box, out.joints_2d):
    uv = pinhole(jc)
    lo, hi = uv.min(0), uv.max(0)
    side = (hi - lo).max() * 1.4
    corner = (lo + hi) / 2 - side / 2
    np.testing.assert_allclose(box, [*corner, side], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(j2d, (uv - corner) * SIZE / side, atol=2e-3)
    assert (j2d > 0).all() and (j2d < SIZE).all()


def test_mask_contains_projected_joints_and_is_empty_far_away():
  rng = np.random.default_rng(1)
  joints, floors = [], []
  for i in range(BATCH):
    jc, rot, trans = place(random_body_pose(rng), rng.uniform(0, 2 * np.pi),
                           [3000.0, 4000.0, 5000.0, 6000.0][i],
                           rng.uniform(0, 2 * np.pi))
    joints.append(jc)
    floors.append(render.floor_from_extrinsics(rot, trans))
  apps = [plain_appearance()] * BATCH
  out = render4(joints, apps, floors, margin=0.2)
  for mask, j2d, depth in zip(out.mask, out.joints_2d, out.depth):
    cols, rows = np.floor(j2d).astype(int).T
    assert mask[rows, cols].all(), np.flatnonzero(~mask[rows, cols])
    assert (depth[rows, cols] > 2000).all()
    assert 0.05 < mask.mean() < 0.6
  # A wide margin leaves the crop's corners far from any body part.
  wide = render4(joints, apps, floors, margin=1.0)
  for mask, depth in zip(wide.mask, wide.depth):
    for corner in (mask[:4, :4], mask[:4, -4:], mask[-4:, :4], mask[-4:, -4:]):
      assert not corner.any()
    assert (depth[~mask] == 0).all() or mask.all()
    assert mask.any()


def test_depth_and_silhouette_match_numpy_ray_march():
  rng = np.random.default_rng(2)
  jc, rot, trans = place(random_body_pose(rng), 1.0, 4200.0, 0.4)
  appearance = plain_appearance()
  out = render4([jc], [appearance], [render.floor_from_extrinsics(rot, trans)])
  prims = render.body_primitives(jnp.asarray(jc, jnp.float32), appearance)
  # Every other pixel of the crop.
  rows, cols = np.meshgrid(np.arange(0, SIZE, 2), np.arange(1, SIZE, 2),
                           indexing="ij")
  rows, cols = rows.ravel(), cols.ravel()
  rays = np.stack([pixel_ray(out.box[0], r, c) for r, c in zip(rows, cols)])
  ref = march_depth(prims, rays, near=jc[:, 2].min() - 300,
                    far=jc[:, 2].max() + 300)
  got = out.depth[0][rows, cols]
  ref_hit = np.isfinite(ref)
  got_hit = got > 0
  # The march steps 4 mm, so it can only miss rays that graze a primitive.
  assert (ref_hit != got_hit).sum() <= 3
  both = ref_hit & got_hit
  assert both.sum() > 50
  err = np.abs(got[both] - ref[both])
  assert np.median(err) < 0.05
  assert np.quantile(err, 0.95) < 1.0
  # The mask (ss=1: centre ray) agrees with the depth.
  np.testing.assert_array_equal(out.mask[0], out.depth[0] > 0)


def test_tile_culling_matches_testing_every_primitive():
  # The renderer tests each tile only against the primitives whose image
  # footprint may reach it; an unculled cast over the same rays is the
  # reference. 37 px does not divide into tiles (exercises the padding).
  size = 37

  @jax.jit
  def casts(joints_cam, appearance):
    focal = jnp.asarray(FOCAL, jnp.float32)
    center = jnp.asarray(CENTER, jnp.float32)
    box = render.crop_box(render.project(joints_cam, focal, center), 0.05)
    xs, ys = render._ray_grid(box, focal, center, size, 1)
    prims = render.body_primitives(joints_cam, appearance)
    full = render._cast_body(prims, xs[0][None, :], ys[0][:, None])
    # Small tiles make the footprint bound, not the tile size, decide.
    culled = render._cast_body_tiled(prims, xs[0], ys[0], box, focal, center,
                                     size, 4)
    return full, culled

  rng = np.random.default_rng(6)
  for i in range(3):
    jc, _, _ = place(random_body_pose(rng), rng.uniform(0, 6),
                     rng.uniform(2500, 7000), rng.uniform(0, 6))
    (t_full, k_full), (t_cull, k_cull) = casts(
        jnp.asarray(jc, jnp.float32), plain_appearance(thickness=1.2))
    hit = np.asarray(t_full) < 1e30
    np.testing.assert_array_equal(hit, np.asarray(t_cull) < 1e30)
    assert hit.mean() > 0.05
    np.testing.assert_array_equal(np.asarray(k_full)[hit],
                                  np.asarray(k_cull)[hit])
    np.testing.assert_allclose(np.asarray(t_cull)[hit],
                               np.asarray(t_full)[hit], atol=0.5)


def _arm_across_chest():
  return body_pose(uarm_r=(0.1, 0.55, -0.83), farm_r=(1.0, 0.1, 0.15))


def test_arm_in_front_of_torso_occludes_it():
  green_skin = plain_appearance(skin=[0.1, 0.9, 0.1], shirt=[0.9, 0.1, 0.1],
                                shirt_front=[0.9, 0.1, 0.1], sleeve=0.2)
  across, rot, trans = facing_camera(_arm_across_chest())
  down, _, _ = facing_camera(body_pose())
  floor = render.floor_from_extrinsics(rot, trans)
  out = render4([across, down], [green_skin] * 2, [floor] * 2)
  # Pixel on the middle of the right forearm, in the arm-across render.
  mid = 0.5 * (across[render.R_ELBOW] + across[render.R_WRIST])
  uv = pinhole(mid[None])[0]
  col, row = np.floor((uv - out.box[0][:2]) * SIZE / out.box[0][2]).astype(int)
  prims = render.body_primitives(jnp.asarray(across, jnp.float32), green_skin)
  ray = pixel_ray(out.box[0], row, col)[None]
  forearm = render.PRIMITIVES.index("right_forearm")
  chest = render.PRIMITIVES.index("chest")
  arm_depth = march_depth(prims, ray, which=[forearm], step=1.0)[0]
  chest_depth = march_depth(prims, ray, which=[chest], step=1.0)[0]
  # Both primitives are on the ray, the forearm in front.
  assert np.isfinite(arm_depth) and np.isfinite(chest_depth)
  assert arm_depth < chest_depth - 30
  assert abs(out.depth[0][row, col] - arm_depth) < 1.0
  r, g, b = out.image[0][row, col].astype(int)
  assert g > r + 40, (r, g, b)  # Green skin of the bare forearm.
  # With the arm hanging down the same ray meets the red shirt, further away.
  ray_down = pixel_ray(out.box[1], row, col)
  prims_down = render.body_primitives(jnp.asarray(down, jnp.float32),
                                      green_skin)
  ref_down = march_depth(prims_down, ray_down[None], step=1.0)[0]
  assert abs(out.depth[1][row, col] - ref_down) < 1.0
  r, g, b = out.image[1][row, col].astype(int)
  assert r > g + 40, (r, g, b)


def test_batch_equals_per_example_and_is_deterministic():
  rng = np.random.default_rng(3)
  joints, apps, floors = [], [], []
  for i in range(BATCH):
    jc, rot, trans = place(random_body_pose(rng), rng.uniform(0, 6),
                           rng.uniform(3500, 5500), rng.uniform(0, 6))
    joints.append(jc)
    apps.append(app_lib.sample_appearance(jax.random.PRNGKey(i)))
    floors.append(render.floor_from_extrinsics(rot, trans))
  batch = render4(joints, apps, floors)
  again = render4(joints, apps, floors)
  for a, b in zip(jax.tree.leaves(batch), jax.tree.leaves(again)):
    np.testing.assert_array_equal(a, b)
  single = jax.jit(render.render_person,
                   static_argnames=("out_size", "supersample"))
  for i in range(BATCH):
    one = single(joints[i].astype(np.float32), FOCAL, CENTER, apps[i],
                 floors[i], out_size=SIZE, supersample=1)
    assert one.image.shape == (SIZE, SIZE, 3) and one.image.dtype == np.uint8
    diff = np.abs(np.asarray(one.image, int) - batch.image[i].astype(int))
    assert diff.max() <= 2 and (diff > 0).mean() < 0.01
    assert (np.asarray(one.mask) != batch.mask[i]).mean() < 0.005
    np.testing.assert_allclose(one.box, batch.box[i], rtol=1e-6)
    np.testing.assert_allclose(one.joints_2d, batch.joints_2d[i], atol=1e-4)


def test_output_types_supersampling_and_noise_key():
  jc, rot, trans = facing_camera(body_pose())
  floor = render.floor_from_extrinsics(rot, trans)
  noisy = plain_appearance(noise_std=0.03)
  clean = plain_appearance(noise_std=0.0)

  def run(appearance, key):
    return render4([jc] * BATCH, [appearance] * BATCH, [floor] * BATCH,
                   out_size=SIZE // 2, supersample=2,
                   key=jax.random.PRNGKey(key))

  a, b, c = run(noisy, 0), run(noisy, 0), run(noisy, 1)
  assert a.image.shape == (BATCH, 24, 24, 3) and a.image.dtype == np.uint8
  assert a.mask.shape == (BATCH, 24, 24) and a.mask.dtype == np.bool_
  assert a.depth.shape == (BATCH, 24, 24) and a.depth.dtype == np.float32
  assert a.box.shape == (BATCH, 3) and a.joints_2d.shape == (BATCH, 17, 2)
  np.testing.assert_array_equal(a.image, b.image)
  assert (a.image != c.image).mean() > 0.3
  # One key per example: the noise differs, the geometry does not.
  assert (a.image[0] != a.image[1]).mean() > 0.3
  np.testing.assert_array_equal(a.mask[0], a.mask[1])
  # Supersampling 2x2 at 24 px casts exactly the pixel-centre rays of a
  # 48 px render of the same box: the 24 px outputs are 2x2 poolings of it.
  ss2 = jax.tree.map(lambda x: x[0], run(clean, 0))
  ss1 = jax.tree.map(lambda x: x[0], render4([jc], [clean], [floor]))
  np.testing.assert_allclose(ss1.box, ss2.box, rtol=1e-6)
  np.testing.assert_allclose(ss1.joints_2d / 2, ss2.joints_2d, atol=1e-4)
  blocks = lambda x: x.reshape(24, 2, 24, 2, *x.shape[2:])
  pooled = blocks(ss1.image.astype(float)).mean((1, 3))
  assert np.abs(pooled - ss2.image).max() <= 1.0
  cover = blocks(ss1.mask.astype(float)).mean((1, 3))
  np.testing.assert_array_equal(cover >= 0.5, ss2.mask)
  depth = blocks(np.where(ss1.depth > 0, ss1.depth, np.inf)).min((1, 3))
  np.testing.assert_allclose(np.where(np.isfinite(depth), depth, 0),
                             ss2.depth, rtol=1e-6)
  # Edge pixels are blends of body and room.
  assert ((cover > 0) & (cover < 1)).sum() > 5


def test_turning_around_changes_the_head_but_not_the_silhouette():
  hair_dark = plain_appearance(hair=[0.03, 0.03, 0.03], skin=[0.95, 0.8, 0.7],
                               hair_style=0.0)
  pose = body_pose(uarm_l=(0.1, 0, -1), farm_l=(0.1, 0, -1),
                   uarm_r=(-0.1, 0, -1), farm_r=(-0.1, 0, -1), neck=(0, 0, 1))
  front, rot, trans = place(pose, 0.0, 4500.0, 0.0)
  back, _, _ = place(pose, np.pi, 4500.0, 0.0)
  floor = render.floor_from_extrinsics(rot, trans)
  out = render4([front, back], [hair_dark] * 2, [floor] * 2)
  iou = (out.mask[0] & out.mask[1]).sum() / (out.mask[0] | out.mask[1]).sum()
  assert iou > 0.85

  # The pose is left/right symmetric and seen along its plane of symmetry,
  # so turning it around changes the geometry little: the legs look the same
  # from behind, the head does not (face and hair).
  both = out.mask[0] & out.mask[1]
  diff = np.abs(out.image[0].astype(float) - out.image[1]).mean(-1)
  rows, cols = np.mgrid[:SIZE, :SIZE] + 0.5
  hx, hy = out.joints_2d[0][render.HEAD]
  head = both & ((rows - hy) ** 2 + (cols - hx) ** 2 < 2.0 ** 2)
  legs = both & (rows > out.joints_2d[0][render.PELVIS][1] + 2)
  assert head.sum() >= 8 and legs.sum() >= 40
  assert diff[head].mean() > 30
  assert diff[legs].mean() < 5
  # Face skin in front, dark hair behind.
  brightness = out.image[..., :].astype(float).mean(-1)
  assert brightness[0][head].mean() > brightness[1][head].mean() + 30


def test_mirrored_scene_renders_mirrored_image():
  # A symmetric room (one floor colour, no noise, light in a mirror-invariant
  # direction) so that only the body could break the symmetry.
  appearance = plain_appearance(floor_b=[0.5, 0.45, 0.4],
                                floor_a=[0.5, 0.45, 0.4], texture_contrast=0.0,
                                light_azimuth=0.0)
  pose = body_pose(uarm_l=(0.4, 0.2, 1), farm_l=(0.1, 0.3, 1),
                   uarm_r=(-0.3, 0.4, -1), farm_r=(0.2, 1.0, 0.1),
                   thigh_l=(0, 0.5, -1), shin_l=(0, 0.1, -1))
  jc, rot, trans = place(pose, 2.0, 4000.0, 0.5)
  floor = render.floor_from_extrinsics(rot, trans)
  flip = np.array([-1.0, 1.0, 1.0])
  swap = np.arange(17)
  swap[list(poses_lib.LEFT_JOINTS)] = poses_lib.RIGHT_JOINTS
  swap[list(poses_lib.RIGHT_JOINTS)] = poses_lib.LEFT_JOINTS
  mirrored = (jc * flip)[swap]
  mirrored_floor = floor._replace(origin=floor.origin * flip,
                                  up=floor.up * flip, axis=floor.axis * flip)
  # Mirroring about x = 0 maps image column u to 2 cx - u: use a principal
  # point on a pixel-grid symmetric position by keeping CENTER (the box
  # moves accordingly).
  out = render4([jc, mirrored], [appearance] * 2, [floor, mirrored_floor])
  x0, y0, side = out.box[0]
  np.testing.assert_allclose(out.box[1],
                             [2 * CENTER[0] - x0 - side, y0, side], rtol=1e-5)
  img, img_m = out.image[0].astype(int), out.image[1][:, ::-1].astype(int)
  diff = np.abs(img - img_m).max(-1)
  assert (diff > 3).mean() < 0.01
  assert (out.mask[0] != out.mask[1][:, ::-1]).mean() < 0.01
  # The pose is asymmetric, so the check is not vacuous.
  assert (np.abs(img - img[:, ::-1]).max(-1) > 30).mean() > 0.05


def test_bad_inputs_raise_clear_errors():
  jc, rot, trans = facing_camera(body_pose())
  floor = render.floor_from_extrinsics(rot, trans)
  appearance = plain_appearance()
  with pytest.raises(ValueError, match="17, 3"):
    render.render_person(jc[:16], FOCAL, CENTER, appearance, floor)
  with pytest.raises(ValueError, match="in front of the camera"):
    render.render_person(jc - [0, 0, 6000], FOCAL, CENTER, appearance, floor)
  with pytest.raises(ValueError, match="focal"):
    render.render_person(jc, FOCAL[:1], CENTER, appearance, floor)
  with pytest.raises(ValueError, match="out_size"):
    render.render_person(jc, FOCAL, CENTER, appearance, floor, out_size=0)
  with pytest.raises(ValueError, match="render_batch"):
    render.render_person(jc, FOCAL, CENTER, stack([appearance] * 2), floor)
  with pytest.raises(ValueError, match="batch"):
    render.render_batch(np.stack([jc] * 3), FOCAL, CENTER,
                        stack([appearance] * 2), floor)
  with pytest.raises(ValueError, match="Floor"):
    render.render_person(jc, FOCAL, CENTER, appearance, None)
  with pytest.raises(ValueError, match="Appearance"):
    render.render_person(jc, FOCAL, CENTER, {"skin": 1}, floor)


def test_contact_sheet_layout():
  images = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones(
      (1, 4, 6, 3), np.uint8) + 1
  sheet = render.contact_sheet(images, ncols=2, pad=1, pad_value=200)
  assert sheet.shape == (3 * 5 + 1, 2 * 7 + 1, 3) and sheet.dtype == np.uint8
  for i in range(5):
    r, c = divmod(i, 2)
    cell = sheet[1 + r * 5:1 + r * 5 + 4, 1 + c * 7:1 + c * 7 + 6]
    assert (cell == i + 1).all()
  assert (sheet[11:15, 8:14] == 200).all()  # The empty sixth cell.
  assert (sheet[0] == 200).all()
  with pytest.raises(ValueError):
    render.contact_sheet(images.astype(np.float32), ncols=2)


def test_appearances():
  s1 = app_lib.subject_appearance("S1", seed=0)
  again = app_lib.subject_appearance("S1", seed=0)
  s9 = app_lib.subject_appearance("S9", seed=0)
  for a, b in zip(s1, again):
    np.testing.assert_array_equal(a, b)
  assert not np.allclose(s1.shirt, s9.shirt) or not np.allclose(
      s1.skin, s9.skin)
  # Subjects of one seed share the room; another seed changes the room.
  np.testing.assert_array_equal(s1.floor_a, s9.floor_a)
  other = app_lib.subject_appearance("S1", seed=1)
  assert not np.allclose(s1.floor_a, other.floor_a)
  batch = jax.jit(jax.vmap(app_lib.sample_appearance))(
      jax.random.split(jax.random.PRNGKey(0), 64))
  assert app_lib.check_appearance(batch) == 1
  for field in app_lib._COLOUR_FIELDS:
    v = np.asarray(getattr(batch, field))
    assert v.shape == (64, 3) and (v >= 0).all() and (v <= 1).all()
  assert len(np.unique(np.asarray(batch.shirt)[:, 0])) > 32
  with pytest.raises(ValueError, match="subject_name"):
    app_lib.subject_appearance("")


def test_floor_from_extrinsics_puts_world_floor_on_the_plane():
  _, rot, trans = place(body_pose(), 0.0, 4500.0, 1.0)
  floor = render.floor_from_extrinsics(rot, trans)
  rng = np.random.default_rng(4)
  world = np.concatenate([rng.uniform(-3000, 3000, (10, 2)),
                          np.zeros((10, 1))], 1)
  cam = world @ rot.T + trans
  heights = (cam - np.asarray(floor.origin)) @ np.asarray(floor.up)
  np.testing.assert_allclose(heights, 0.0, atol=1e-2)
  # A point 1 m above the world floor is 1 m above the plane.
  above = (np.array([0.0, 0.0, 1000.0]) @ rot.T + trans - floor.origin)
  np.testing.assert_allclose(above @ np.asarray(floor.up), 1000.0, rtol=1e-5)
  # The floor under a pose lies `clearance` below its lowest joint.
  jc, _, _ = place(body_pose(), 0.0, 4500.0, 1.0)
  under = render.floor_under_pose(jc, floor.up, clearance=70.0)
  low = ((jc - np.asarray(under.origin)) @ np.asarray(under.up)).min()
  np.testing.assert_allclose(low, 70.0, rtol=1e-4)
