"""Tests for data_pipelines.rig.cameras (the Human3.6M rig and projection)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data_pipelines.rig import cameras

SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9", "S11")


def _toolkit_projection(points_cam, f, c, k, p):
  """Human3.6M toolkit's ProjectPointRadTan, one point at a time (numpy)."""
  out = []
  for x, y, z in np.asarray(points_cam, np.float64):
    xx, yy = x / z, y / z
    r2 = xx * xx + yy * yy
    radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
    tan = p[0] * yy + p[1] * xx
    xd = xx * (radial + tan) + p[1] * r2
    yd = yy * (radial + tan) + p[0] * r2
    out.append([f[0] * xd + c[0], f[1] * yd + c[1]])
  return np.array(out)


def test_quaternion_to_rotmat_matches_scipy():
  rng = np.random.default_rng(0)
  for q in rng.normal(size=(10, 4)):
    want = Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix()
    np.testing.assert_allclose(cameras.quaternion_to_rotmat(q), want, atol=1e-12)
  with pytest.raises(ValueError, match="quaternion"):
    cameras.quaternion_to_rotmat([0, 0, 0, 0])


def test_published_rig_has_four_cameras_per_subject():
  rig = cameras.load_h36m_cameras()
  assert sorted(rig) == sorted(SUBJECTS)
  ids = [c.id for c in rig["S1"]]
  assert ids == ["54138969", "55011271", "58860488", "60457274"]
  for subject in SUBJECTS:
    assert [c.id for c in rig[subject]] == ids
    for cam in rig[subject]:
      r = np.asarray(cam.rotation)
      np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-5)
      assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-5)
      # Upright cameras: world up (z) points up in the image (camera -y).
      assert (r @ [0, 0, 1])[1] < -0.9
  cam = cameras.camera_for("S9", 2)
  assert cam.id == "58860488"
  np.testing.assert_array_equal(np.asarray(cam.res), [1000, 1000])


def test_camera_is_a_pytree_usable_under_jit_and_vmap():
  rig = cameras.load_h36m_cameras()
  cam = rig["S1"][0]
  leaves = jax.tree_util.tree_leaves(cam)
  assert len(leaves) == 7  # id is static metadata
  f = jax.jit(lambda x, c: cameras.world_to_image(x, c))
  x = jnp.array([[0.0, 0.0, 900.0]])
  np.testing.assert_allclose(f(x, cam), cameras.world_to_image(x, cam),
                             atol=1e-3)
  stacked = cameras.stack_cameras(rig["S1"])
  assert stacked.id == ",".join(c.id for c in rig["S1"])
  uv = jax.vmap(lambda c: cameras.world_to_image(x, c))(stacked)
  assert uv.shape == (4, 1, 2)
  for i in range(4):
    np.testing.assert_allclose(uv[i], cameras.world_to_image(x, rig["S1"][i]),
                               atol=1e-3)


def test_pinhole_projection_by_hand():
  # u = fx X/Z + cx = 1000 * 100/2000 + 500; v = fy Y/Z + cy = 1100 * -0.025 + 400.
  uv = cameras.project(jnp.array([100.0, -50.0, 2000.0]), jnp.array([1000.0, 1100.0]),
                       jnp.array([500.0, 400.0]))
  np.testing.assert_allclose(np.asarray(uv), [550.0, 372.5], rtol=1e-6)


def test_distortion_with_zero_coefficients_is_the_pinhole():
  pts = np.random.default_rng(1).normal(size=(6, 3)) * [800, 800, 300] + [0, 0, 4000]
  f, c = jnp.array([1145.0, 1143.0]), jnp.array([512.0, 515.0])
  plain = cameras.project(pts, f, c)
  zero = cameras.project(pts, f, c, jnp.zeros(3), jnp.zeros(2))
  np.testing.assert_allclose(np.asarray(zero), np.asarray(plain), atol=1e-4)


def test_distortion_matches_the_toolkit_formula():
  pts = np.random.default_rng(2).normal(size=(20, 3)) * [900, 900, 400] + [0, 0, 4500]
  f, c = np.array([1145.05, 1143.78]), np.array([512.54, 515.45])
  k, p = np.array([-0.207, 0.248, -0.003]), np.array([-0.00098, -0.00142])
  got = cameras.project(pts.astype(np.float32), f, c, k, p)
  np.testing.assert_allclose(np.asarray(got), _toolkit_projection(pts, f, c, k, p),
                             atol=2e-3)
  # Radial only, by hand for one point: x = y = 0.1, r2 = 0.02.
  d = 1 + 0.1 * 0.02
  uv = cameras.project(jnp.array([200.0, 200.0, 2000.0]), jnp.array([1000.0, 1000.0]),
                       jnp.zeros(2), radial=jnp.array([0.1, 0.0, 0.0]))
  np.testing.assert_allclose(np.asarray(uv), [100.0 * d, 100.0 * d], rtol=1e-6)


def test_world_camera_round_trip_and_convention():
  cam = cameras.camera_for("S5", 3)
  pts = np.random.default_rng(3).normal(size=(4, 5, 3)) * 1000
  q = np.asarray(cam.rotation, np.float64).T  # camera-to-world
  want = (pts - np.asarray(cam.translation)) @ q  # rows of Q^T (x - t)
  got = cameras.world_to_camera(jnp.asarray(pts, jnp.float32), cam)
  np.testing.assert_allclose(np.asarray(got), want, atol=2e-2)
  back = cameras.camera_to_world(got, cam)
  np.testing.assert_allclose(np.asarray(back), pts, atol=2e-2)
  # The camera centre maps to the camera-frame origin; extrinsics agree.
  np.testing.assert_allclose(
      np.asarray(cameras.world_to_camera(cam.translation, cam)), 0, atol=1e-3)
  r, t = cameras.extrinsics(cam)
  np.testing.assert_allclose(np.asarray(pts @ np.asarray(r).T + np.asarray(t)),
                             want, atol=2e-2)


def test_person_at_the_origin_is_inside_every_image():
  rig = cameras.load_h36m_cameras()
  for subject in SUBJECTS:
    for cam in rig[subject]:
      for height in (0.0, 900.0, 1700.0):
        point = jnp.array([0.0, 0.0, height])
        assert float(cameras.world_to_camera(point, cam)[2]) > 3000.0
        u, v = np.asarray(cameras.world_to_image(point, cam))
        w, h = np.asarray(cam.res)
        assert 0 <= u < w and 0 <= v < h, (subject, cam.id, height, u, v)
      # Higher points appear higher in the image.
      v_low = cameras.world_to_image(jnp.array([0.0, 0, 0]), cam)[1]
      v_high = cameras.world_to_image(jnp.array([0.0, 0, 1700]), cam)[1]
      assert float(v_high) < float(v_low) - 300


def test_camera_for_errors_name_the_valid_choices():
  with pytest.raises(ValueError, match=r"unknown subject 'S2'.*S1.*S11"):
    cameras.camera_for("S2", 0)
  with pytest.raises(ValueError, match=r"camera index 4 .*0\.\.3.*54138969"):
    cameras.camera_for("S1", 4)
  with pytest.raises(ValueError, match="camera index"):
    cameras.camera_for("S1", "0")


def test_bad_calibration_file_and_bad_shapes(tmp_path):
  with pytest.raises(FileNotFoundError, match="not found"):
    cameras.load_h36m_cameras(tmp_path / "missing.json")
  bad = tmp_path / "cams.json"
  bad.write_text(json.dumps({"intrinsics": []}))
  with pytest.raises(ValueError, match="not a Human3.6M camera calibration"):
    cameras.load_h36m_cameras(bad)
  with pytest.raises(ValueError, match=r"points_cam must have shape \[\.\.\., 3\]"):
    cameras.project(jnp.zeros((4, 2)), jnp.ones(2), jnp.zeros(2))
  with pytest.raises(ValueError, match=r"radial must have shape \[\.\.\., 3\]"):
    cameras.project(jnp.ones((4, 3)), jnp.ones(2), jnp.zeros(2), jnp.zeros(2))
