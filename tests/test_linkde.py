"""Tests of the LinKDE baseline: HOG, random Fourier features, ridge, end to end.

References are independent: hand-made images with known gradient orientation,
a per-pixel numpy-loop HOG, the exact Gaussian kernel, numpy least squares on
the augmented ridge system, and the mean-training-pose baseline on blobs.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines.sources import blobs
from structnet_jax import linkde
from structnet_jax import metrics


def _gray(img2d):
  return np.repeat(np.asarray(img2d, np.float32)[None, :, :, None], 3, axis=-1)


def _ramp(theta_deg, size=32):
  """A linear ramp whose gradient points along ``theta`` (x right, y down)."""
  y, x = np.mgrid[:size, :size].astype(np.float32)
  t = np.deg2rad(theta_deg)
  return _gray(0.5 + 0.01 * (x * np.cos(t) + y * np.sin(t)))


def _numpy_hog(img, cell, block, bins, clip=0.2, eps=1e-5):
  """Per-pixel loop HOG of one ``[H, W, 3]`` image (max-channel gradients)."""
  h, w, _ = img.shape
  img = img.astype(np.float64)
  cy, cx = h // cell, w // cell
  hist = np.zeros((cy, cx, bins))
  for r in range(cy * cell):
    for c in range(cx * cell):
      best = (-1.0, 0.0, 0.0)
      for ch in range(3):
        gx = img[r, c + 1, ch] - img[r, c - 1, ch] if 0 < c < w - 1 else 0.0
        gy = img[r + 1, c, ch] - img[r - 1, c, ch] if 0 < r < h - 1 else 0.0
        if gx * gx + gy * gy > best[0]:
          best = (gx * gx + gy * gy, gx, gy)
      mag2, gx, gy = best
      mag = math.sqrt(mag2)
      deg = math.degrees(math.atan2(gy, gx)) % 180.0
      pos = deg / (180.0 / bins)
      lo = int(math.floor(pos))
      frac = pos - lo
      hist[r // cell, c // cell, lo % bins] += mag * (1 - frac)
      hist[r // cell, c // cell, (lo + 1) % bins] += mag * frac
  out = []
  for i in range(cy - block + 1):
    for j in range(cx - block + 1):
      v = hist[i:i + block, j:j + block].reshape(-1)
      v = v / math.sqrt(np.sum(v**2) + eps**2)
      v = np.minimum(v, clip)
      out.append(v / math.sqrt(np.sum(v**2) + eps**2))
  return np.concatenate(out)


# ---------------------------------------------------------------------------
# HOG


def test_vertical_step_edge_is_all_in_the_zero_degree_bin():
  img = np.zeros((32, 32), np.float32)
  img[:, 16:] = 1.0
  for images in (_gray(img), _gray(1 - img)):   # both polarities (unsigned)
    cells = np.asarray(linkde.hog_cells(images, cell_size=8))
    assert cells.shape == (1, 4, 4, 9)
    total = cells.sum()
    assert total > 0
    np.testing.assert_allclose(cells[..., 0].sum(), total, rtol=1e-6)
    desc = np.asarray(linkde.hog(images, cell_size=8)).reshape(3, 3, 4, 9)
    assert np.all(desc[..., 1:] == 0)
    assert np.all(desc[..., 0].sum(-1) > 0)   # every block sees the edge


def test_rotated_edges_move_bins():
  horizontal = np.zeros((32, 32), np.float32)
  horizontal[16:] = 1.0                        # gradient along y: 90 degrees
  cells = np.asarray(linkde.hog_cells(_gray(horizontal))).sum((0, 1, 2))
  np.testing.assert_allclose(cells / cells.sum(),
                             np.eye(9)[4] * 0.5 + np.eye(9)[5] * 0.5, atol=1e-6)
  # A hard diagonal edge, bright above-right: gradient (+x, -y), i.e. 135 deg
  # unsigned, which is 6.75 bins: 1/4 to bin 6 (120), 3/4 to bin 7 (140).
  # (Inner cells only: the zeroed border gradient distorts the outer ones.)
  y, x = np.mgrid[:32, :32]
  cells = np.asarray(linkde.hog_cells(_gray(x > y)))[:, 1:3, 1:3].sum((0, 1, 2))
  np.testing.assert_allclose(cells / cells.sum(),
                             np.eye(9)[6] * 0.25 + np.eye(9)[7] * 0.75,
                             atol=1e-6)


@pytest.mark.parametrize("theta,expected", [
    (40.0, {2: 1.0}), (30.0, {1: 0.5, 2: 0.5}), (125.0, {6: 0.75, 7: 0.25}),
    (170.0, {8: 0.5, 0: 0.5}), (-20.0, {8: 1.0})])
def test_orientation_interpolates_linearly_between_bins(theta, expected):
  # Inner cells: the border pixels' gradients are zeroed on one axis.
  cells = np.asarray(linkde.hog_cells(_ramp(theta), cell_size=8))[:, 1:3, 1:3]
  frac = cells / cells.sum(-1, keepdims=True)
  want = np.zeros(9)
  for k, v in expected.items():
    want[k] = v
  np.testing.assert_allclose(frac, np.broadcast_to(want, frac.shape), atol=2e-4)


def test_hog_matches_a_numpy_loop_reference():
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(2, 20, 27, 3)).astype(np.float32)
  got = np.asarray(linkde.hog(images, cell_size=5, block_size=2, num_bins=7))
  want = np.stack([_numpy_hog(im, 5, 2, 7) for im in images])
  assert got.shape == want.shape == (2, 3 * 4 * 4 * 7)
  np.testing.assert_allclose(got, want, atol=2e-5)


@pytest.mark.parametrize("channel", ["max", "grey"])
def test_hog_is_contrast_and_brightness_invariant(channel):
  rng = np.random.default_rng(1)
  images = rng.uniform(size=(2, 32, 32, 3)).astype(np.float32)
  base = np.asarray(linkde.hog(images, channel=channel))
  for scale, offset in ((0.3, 0.2), (2.0, -0.5)):
    other = np.asarray(linkde.hog(images * scale + offset, channel=channel))
    np.testing.assert_allclose(other, base, atol=1e-4)
  # Block normalisation: each block has unit norm, its entries clipped then
  # renormalised.
  blocks = base.reshape(2, -1, 36)
  np.testing.assert_allclose(np.linalg.norm(blocks, axis=-1), 1.0, atol=1e-4)


@pytest.mark.parametrize("h,w,cell,block,bins", [
    (36, 44, 8, 2, 9), (32, 32, 4, 3, 6), (112, 112, 8, 2, 9)])
def test_hog_shape_formula(h, w, cell, block, bins):
  f = ((h // cell - block + 1) * (w // cell - block + 1) * block * block * bins)
  assert linkde.hog_dim(h, w, cell_size=cell, block_size=block,
                        num_bins=bins) == f
  model = linkde.LinKDE(cell_size=cell, block_size=block, num_bins=bins)
  out = jax.eval_shape(model.descriptors,
                       jax.ShapeDtypeStruct((2, h, w, 3), jnp.float32))
  assert out.shape == (2, f) and out.dtype == jnp.float32


def test_hog_of_flat_images_is_zero():
  out = linkde.hog(jnp.full((2, 36, 44, 3), 0.7))
  assert out.shape == (2, linkde.hog_dim(36, 44))
  assert not np.any(np.asarray(out))          # no gradients, no NaN


# ---------------------------------------------------------------------------
# Random Fourier features


def test_rff_approximates_the_gaussian_kernel():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(24, 6)).astype(np.float32)
  sigma = 2.0
  d2 = np.sum((x[:, None] - x[None]) ** 2, -1)
  exact = np.exp(-d2 / (2 * sigma**2))
  errs = {}
  full = linkde.rff_params(jax.random.PRNGKey(0), 6, 16384, sigma)
  # The first D of the i.i.d. features are themselves a D-feature RFF.
  for d in (256, 16384):
    params = linkde.RFFParams(full.w[:, :d], full.b[:d], full.sigma)
    z = np.asarray(linkde.rff(x, params))
    assert z.shape == (24, d)
    errs[d] = np.mean(np.abs(z @ z.T - exact))
    # The error of a D-feature estimate is O(1/sqrt(D)) (std ~ 0.7/sqrt(D)).
    assert 0.05 < errs[d] * math.sqrt(d) < 2.0, (d, errs[d])
  assert 2.5 < errs[256] / errs[16384] < 16   # 8 expected for 64x features


def test_median_bandwidth_is_the_median_pairwise_distance():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(41, 5)).astype(np.float32) * 3.0
  i, j = np.triu_indices(41, k=1)
  want = np.median(np.linalg.norm(x[i] - x[j], axis=-1))
  assert linkde.median_bandwidth(x) == pytest.approx(want, rel=1e-4)
  # Subsampling draws distinct rows.
  sub = linkde.median_bandwidth(x, jax.random.PRNGKey(0), max_samples=20)
  assert 0.5 * want < sub < 2 * want


# ---------------------------------------------------------------------------
# Ridge regression


def _ridge_data(n=120, d=9, k=4, seed=4):
  rng = np.random.default_rng(seed)
  x = (rng.normal(size=(n, d)) + 5.0).astype(np.float32)    # far from 0
  w = rng.normal(size=(d, k))
  y = (x @ w + 30.0 + rng.normal(size=(n, k))).astype(np.float32)
  return x, y


def test_ridge_matches_numpy_lstsq_on_the_augmented_system():
  x, y = _ridge_data()
  n, d = x.shape
  ridge = 0.05
  stats = linkde.ridge_update(linkde.ridge_init(d, y.shape[1]), x, y)
  w, b = linkde.ridge_solve(stats, ridge)
  xc = x.astype(np.float64) - x.mean(0)
  yc = y.astype(np.float64) - y.mean(0)
  aug_x = np.concatenate([xc, math.sqrt(n * ridge) * np.eye(d)])
  aug_y = np.concatenate([yc, np.zeros((d, y.shape[1]))])
  w_ref = np.linalg.lstsq(aug_x, aug_y, rcond=None)[0]
  b_ref = y.mean(0) - x.mean(0) @ w_ref
  np.testing.assert_allclose(np.asarray(w), w_ref, rtol=2e-3, atol=2e-3)
  np.testing.assert_allclose(np.asarray(b), b_ref, rtol=1e-3, atol=1e-2)
  # The same as the closed form (X_c^T X_c / n + ridge I)^-1 X_c^T Y_c / n.
  w_cf = np.linalg.solve(xc.T @ xc / n + ridge * np.eye(d), xc.T @ yc / n)
  np.testing.assert_allclose(w_ref, w_cf, rtol=1e-8, atol=1e-10)


def test_chunked_and_masked_accumulation_equals_one_shot():
  x, y = _ridge_data()
  one = linkde.ridge_solve(
      linkde.ridge_update(linkde.ridge_init(9, 4), x, y), 0.01)
  stats = linkde.ridge_init(9, 4)
  for start in range(0, 120, 50):             # chunks of 50, 50, 20 (+ pad)
    xs, ys = x[start:start + 50], y[start:start + 50]
    mask = np.arange(50) < len(xs)
    pad = 50 - len(xs)
    xs = np.concatenate([xs, np.full((pad, 9), 1e3, np.float32)])
    ys = np.concatenate([ys, np.full((pad, 4), -1e3, np.float32)])
    stats = linkde.ridge_update(stats, xs, ys, mask)
  assert float(stats.count) == 120
  chunked = linkde.ridge_solve(stats, 0.01)
  for a, b in zip(one, chunked):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4,
                               atol=1e-4)


def _tiny_set(n=30, size=16, seed=5):
  rng = np.random.default_rng(seed)
  images = rng.uniform(size=(n, size, size, 3)).astype(np.float32)
  poses = rng.normal(size=(n, 17, 3)).astype(np.float32) * 100
  return images, poses


_TINY = dict(num_features=64, num_pose_features=32, ridge=1e-3)


def _tiny_model():
  return linkde.LinKDE(cell_size=4, top_k=3)


def test_fit_chunk_size_does_not_change_the_model():
  images, poses = _tiny_set()
  key = jax.random.PRNGKey(0)
  # 30 images in chunks of 7: the last chunk overlaps and masks 5 rows.
  a = _tiny_model().fit(images, poses, key, chunk=7, **_TINY)
  b = _tiny_model().fit(jnp.asarray(images), poses, key, chunk=30, **_TINY)
  assert a.output == "kde" and a.candidate_table.shape == (30, 32)
  np.testing.assert_allclose(np.asarray(a.weights), np.asarray(b.weights),
                             rtol=1e-3, atol=1e-4)
  pa, pb = a.predict(images[:11], chunk=4), b.predict(images[:11], chunk=4)
  assert pa.shape == (11, 17, 3)
  np.testing.assert_allclose(np.asarray(pa), np.asarray(pb), atol=1e-2)


def test_linear_output_interpolates_the_training_set():
  images, poses = _tiny_set()
  model = linkde.LinKDE(output="linear", cell_size=4).fit(
      images, poses, jax.random.PRNGKey(1), num_features=64, ridge=1e-7,
      chunk=30)
  assert model.pose_rff is None and model.weights.shape == (64, 51)
  pred = np.asarray(model.predict(images, chunk=30))
  spread = np.abs(poses - poses.mean(0)).mean()
  assert np.abs(pred - poses).mean() < 0.05 * spread


# ---------------------------------------------------------------------------
# End to end on blobs


@pytest.fixture(scope="module")
def blob_source():
  # BlobSource.create samples poses op by op; one jitted draw is much faster
  # on CPU and gives the same generator.
  cfg = blobs.BlobConfig(image_size=36, seed=0)
  poses, actions = jax.jit(blobs.sample_poses, static_argnums=(1, 2))(
      jax.random.PRNGKey(1), 2300, cfg)
  poses, actions = np.asarray(poses), np.asarray(actions)
  return blobs.BlobSource(cfg, poses[:2000], actions[:2000], poses[2000:],
                          actions[2000:], np.ones(3, np.float32),
                          np.eye(3, dtype=np.float32), crop=32)


def test_linkde_beats_the_mean_pose_on_blobs(blob_source):
  src = blob_source
  model = linkde.LinKDE(cell_size=4, top_k=5).fit_from_batches(
      src.eval_batches(500, "train"), jax.random.PRNGKey(0),
      num_features=1024, num_pose_features=512)
  assert model.output == "kde"
  assert model.candidates.shape == (2000, 51)   # padding masked out
  (batch,) = src.eval_batches(500, "test")     # 300 test poses, padded
  keep = batch["mask"]
  mpjpe = jax.jit(metrics.mpjpe)
  pred = model.predict(batch["image"])
  err = np.asarray(mpjpe(pred, batch["pose"]))[keep].mean()
  base = np.asarray(mpjpe(src.pose_space.mean(0), batch["pose"]))[keep].mean()
  print(f"blobs MPJPE: LinKDE {err:.1f} mm, mean pose {base:.1f} mm")
  assert err < 0.7 * base, (err, base)


# ---------------------------------------------------------------------------
# Bad input


def test_bad_inputs_raise_value_errors():
  images, poses = _tiny_set()
  key = jax.random.PRNGKey(0)
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    linkde.hog(images[0])
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    linkde.hog(np.zeros((2, 16, 16, 4), np.float32))
  bad = images.copy()
  bad[3, 2, 2, 1] = np.nan
  with pytest.raises(ValueError, match="NaN.*first indices \\[3\\]"):
    linkde.hog(bad)
  with pytest.raises(ValueError, match="fewer than one"):
    linkde.hog(images[:, :7, :7])
  with pytest.raises(ValueError, match="channel"):
    linkde.hog(images, channel="red")
  with pytest.raises(ValueError, match="sigma"):
    linkde.rff_params(key, 4, 8, 0.0)
  x, y = _ridge_data()
  stats = linkde.ridge_update(linkde.ridge_init(9, 4), x, y)
  with pytest.raises(ValueError, match="ridge"):
    linkde.ridge_solve(stats, 0.0)
  with pytest.raises(ValueError, match="no examples"):
    linkde.ridge_solve(linkde.ridge_init(9, 4), 1.0)
  with pytest.raises(ValueError, match="equal B"):
    linkde.ridge_update(stats, x, y[:-1])

  model = _tiny_model()
  kw = dict(_TINY, chunk=30)
  batch_kw = dict(_TINY)
  with pytest.raises(ValueError, match="ridge"):
    model.fit(images, poses, key, **dict(kw, ridge=-1.0))
  with pytest.raises(ValueError, match="30 images but 29 poses"):
    model.fit(images, poses[:29], key, **kw)
  with pytest.raises(ValueError, match="NaN"):
    model.fit(bad, poses, key, **kw)
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    model.fit(images[..., :1], poses, key, **kw)
  with pytest.raises(ValueError, match="17"):
    model.fit(images, poses.reshape(30, 51), key, **kw)
  with pytest.raises(ValueError, match="output"):
    linkde.LinKDE(output="svr").fit(images, poses, key, **kw)
  with pytest.raises(ValueError, match="not fitted"):
    model.predict(images)
  with pytest.raises(ValueError, match="empty"):
    model.fit_from_batches(iter([]), key, **batch_kw)
  with pytest.raises(ValueError, match="'image'"):
    model.fit_from_batches([{"images": images, "pose": poses}], key,
                           **batch_kw)
  fitted = model.fit(images, poses, key, **kw)
  with pytest.raises(ValueError, match="fitted on"):
    fitted.predict(np.zeros((2, 24, 24, 3), np.float32))
  with pytest.raises(ValueError, match="NaN"):
    fitted.predict(bad)
