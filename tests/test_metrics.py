"""Tests for structnet_jax.metrics against numpy/scipy references."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from structnet_jax import metrics


def _random_poses(rng: np.random.Generator, *shape: int) -> np.ndarray:
  """Random ``[*shape, 17, 3]`` float32 poses, joints spread ~300 mm."""
  return rng.normal(0.0, 300.0, size=(*shape, 17, 3)).astype(np.float32)


def _np_mpjpe_loop(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Reference ``[B, N]`` MPJPE with explicit loops, float64."""
  a, b = a.astype(np.float64), b.astype(np.float64)
  out = np.zeros((a.shape[0], b.shape[0]))
  for i in range(a.shape[0]):
    for k in range(b.shape[0]):
      out[i, k] = np.mean([np.sqrt(np.sum((a[i, j] - b[k, j])**2))
                           for j in range(17)])
  return out


def _scipy_procrustes(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
  """Reference similarity alignment of one ``[17, 3]`` pose via scipy."""
  pred, target = pred.astype(np.float64), target.astype(np.float64)
  mu_p, mu_t = pred.mean(0), target.mean(0)
  pc, tc = pred - mu_p, target - mu_t
  # align_vectors(a, b) gives the proper rotation C minimising sum |a - C b|^2.
  rot, _ = Rotation.align_vectors(tc, pc)
  rotated = rot.apply(pc)
  scale = np.sum(tc * rotated) / np.sum(pc * pc)
  return scale * rotated + mu_t


def _np_mpjpe(pred: np.ndarray, target: np.ndarray) -> float:
  return float(np.mean(np.linalg.norm(pred - target, axis=-1)))


# ---------------------------------------------------------------- MPJPE


def test_mpjpe_hand_computed_shift():
  pose = _random_poses(np.random.default_rng(0))
  shifted = pose + np.array([3.0, 4.0, 0.0], np.float32)
  np.testing.assert_allclose(metrics.mpjpe(shifted, pose), 5.0, rtol=1e-5)
  # One joint 17 mm away and the rest exact -> 1 mm.
  moved = pose.copy()
  moved[5, 2] += 17.0
  np.testing.assert_allclose(metrics.mpjpe(moved, pose), 1.0, rtol=1e-4)


def test_mpjpe_broadcast_and_pairwise_match_numpy_loop():
  rng = np.random.default_rng(1)
  a, b = _random_poses(rng, 4), _random_poses(rng, 6)
  want = _np_mpjpe_loop(a, b)
  got_bcast = metrics.mpjpe(a[:, None], b[None])
  assert got_bcast.shape == (4, 6)
  np.testing.assert_allclose(got_bcast, want, rtol=1e-5)
  np.testing.assert_allclose(metrics.pairwise_mpjpe(a, b), want, rtol=1e-5)
  # Chunked path, with a chunk size that does not divide B.
  a5 = _random_poses(rng, 5)
  np.testing.assert_allclose(
      metrics.pairwise_mpjpe(a5, b, chunk_size=2), _np_mpjpe_loop(a5, b),
      rtol=1e-5)


def test_pairwise_identical_pose_is_exactly_zero():
  rng = np.random.default_rng(2)
  a = _random_poses(rng, 3) + 1000.0  # large coordinates, as in camera frame
  d = np.asarray(metrics.pairwise_mpjpe(a, a))
  assert np.all(np.diag(d) == 0.0)
  assert np.all(d[~np.eye(3, dtype=bool)] > 100.0)


def test_mpjpe_gradient_matches_formula_and_is_finite_at_zero():
  rng = np.random.default_rng(3)
  pred, target = _random_poses(rng), _random_poses(rng)
  pred[0] = target[0]  # one joint exactly on target: norm has a kink there
  grad = np.asarray(jax.grad(metrics.mpjpe)(pred, target))
  diff = (pred - target).astype(np.float64)
  norms = np.linalg.norm(diff, axis=-1, keepdims=True)
  want = np.where(norms > 0, diff / np.where(norms > 0, norms, 1) / 17, 0)
  assert np.all(np.isfinite(grad))
  np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------- Procrustes


def test_procrustes_recovers_similarity_transform():
  rng = np.random.default_rng(4)
  for seed in range(3):
    pose = _random_poses(rng).astype(np.float64)
    rot = Rotation.random(random_state=seed).as_matrix()
    scale = rng.uniform(0.5, 2.0)
    trans = rng.normal(0, 1000.0, size=3)
    target = (scale * pose @ rot.T + trans).astype(np.float32)
    pose = pose.astype(np.float32)
    assert metrics.mpjpe(pose, target) > 100.0
    assert float(metrics.pa_mpjpe(pose, target)) < 1e-3
    s, r, t = metrics.procrustes_transform(pose, target)
    np.testing.assert_allclose(s, scale, rtol=1e-5)
    np.testing.assert_allclose(r, rot, atol=1e-5)
    np.testing.assert_allclose(t, trans, rtol=1e-4, atol=1e-2)


def test_procrustes_does_not_use_reflections():
  rng = np.random.default_rng(5)
  pose = _random_poses(rng)
  mirrored = pose * np.array([-1.0, 1.0, 1.0], np.float32)
  # A reflection-allowing orthogonal Procrustes (scipy) maps it exactly...
  pc = pose - pose.mean(0)
  mc = mirrored - mirrored.mean(0)
  q, _ = orthogonal_procrustes(pc.astype(np.float64), mc.astype(np.float64))
  assert np.linalg.det(q) < 0
  assert _np_mpjpe(pc @ q, mc) < 1e-3
  # ... but the proper-rotation alignment cannot.
  pa = float(metrics.pa_mpjpe(pose, mirrored))
  assert pa > 50.0
  np.testing.assert_allclose(
      pa, _np_mpjpe(_scipy_procrustes(pose, mirrored), mirrored), rtol=1e-4)
  _, r, _ = metrics.procrustes_transform(pose, mirrored)
  np.testing.assert_allclose(np.linalg.det(np.asarray(r, np.float64)), 1.0,
                             atol=1e-5)


def test_procrustes_matches_scipy_reference_on_noisy_pairs():
  rng = np.random.default_rng(6)
  n = 16
  pred = _random_poses(rng, n)
  rots = Rotation.random(n, random_state=7).as_matrix()
  target = (np.einsum("nij,nkj->nki", rots, pred) * rng.uniform(0.7, 1.4, (n, 1, 1))
            + rng.normal(0, 500, (n, 1, 3))
            + rng.normal(0, rng.uniform(5, 200, (n, 1, 1)), (n, 17, 3))
            ).astype(np.float32)
  aligned = np.asarray(metrics.procrustes_align(pred, target))
  pa = np.asarray(metrics.pa_mpjpe(pred, target))
  _, r, _ = metrics.procrustes_transform(pred, target)
  r = np.asarray(r, np.float64)
  for i in range(n):
    ref = _scipy_procrustes(pred[i], target[i])
    np.testing.assert_allclose(aligned[i], ref, atol=2e-2)
    np.testing.assert_allclose(pa[i], _np_mpjpe(ref, target[i]), rtol=1e-4)
    np.testing.assert_allclose(np.linalg.det(r[i]), 1.0, atol=1e-5)
    np.testing.assert_allclose(r[i] @ r[i].T, np.eye(3), atol=1e-5)


def test_procrustes_error_bounded_by_centred_error():
  """Alignment is optimal in the least-squares (RMS) sense.

  pa_mpjpe <= RMS(aligned) <= RMS(centred) <= RMS(any other similarity).
  (pa_mpjpe <= centred mpjpe itself is NOT a theorem: Procrustes minimises
  the squared error, and on ~3% of random noisy pairs the mean joint distance
  after alignment exceeds the centred one by up to a few percent.)
  """
  rng = np.random.default_rng(8)
  n = 32
  pred = _random_poses(rng, n)
  target = (pred * rng.uniform(0.8, 1.2, (n, 1, 1))
            + rng.normal(0, rng.uniform(1, 300, (n, 1, 1)), (n, 17, 3))
            ).astype(np.float32)
  aligned = np.asarray(metrics.procrustes_align(pred, target), np.float64)
  pa = np.asarray(metrics.pa_mpjpe(pred, target), np.float64)

  def rms(x, y):
    return np.sqrt(np.mean(np.sum((x - y)**2, axis=-1), axis=-1))

  pc = pred - pred.mean(1, keepdims=True)
  tc = target - target.mean(1, keepdims=True)
  rms_aligned = rms(aligned, target)
  assert np.all(pa <= rms_aligned * (1 + 1e-5))
  assert np.all(rms_aligned <= rms(pc, tc) * (1 + 1e-5) + 1e-4)
  # Any perturbed similarity does no better.
  for seed in range(3):
    s, r, t = (np.asarray(v, np.float64)
               for v in metrics.procrustes_transform(pred, target))
    dr = Rotation.from_rotvec(rng.normal(0, 0.05, (n, 3))).as_matrix()
    s2 = s * rng.uniform(0.95, 1.05, n)
    t2 = t + rng.normal(0, 5, (n, 3))
    other = s2[:, None, None] * np.einsum("nij,njk,nlk->nli", dr, r, pred) + t2[:, None]
    assert np.all(rms_aligned <= rms(other, target) * (1 + 1e-5) + 1e-4), seed


def test_procrustes_degenerate_pose_gives_finite_error():
  rng = np.random.default_rng(9)
  target = _random_poses(rng)
  point = np.zeros((17, 3), np.float32)  # e.g. a zero-padded example
  want = _np_mpjpe(np.broadcast_to(target.mean(0), target.shape), target)
  np.testing.assert_allclose(metrics.pa_mpjpe(point, target), want, rtol=1e-5)


# ---------------------------------------------------------------- jit / vmap


def test_jit_and_vmap():
  rng = np.random.default_rng(10)
  pred, target = _random_poses(rng, 3, 2), _random_poses(rng, 3, 2)
  want_mpjpe = np.array([[_np_mpjpe(pred[i, k], target[i, k]) for k in range(2)]
                         for i in range(3)])
  want_pa = np.array(
      [[_np_mpjpe(_scipy_procrustes(pred[i, k], target[i, k]), target[i, k])
        for k in range(2)] for i in range(3)])
  np.testing.assert_allclose(jax.jit(metrics.mpjpe)(pred, target), want_mpjpe,
                             rtol=1e-5)
  np.testing.assert_allclose(
      jax.jit(jax.vmap(metrics.pa_mpjpe))(pred, target), want_pa, rtol=1e-4)
  np.testing.assert_allclose(
      jax.vmap(jax.vmap(metrics.mpjpe))(pred, target), want_mpjpe, rtol=1e-5)
  pairwise = jax.jit(functools.partial(metrics.pairwise_mpjpe, chunk_size=2))
  a, b = pred[:, 0], target[:, 1]
  np.testing.assert_allclose(pairwise(a, b), _np_mpjpe_loop(a, b), rtol=1e-5)


def test_bad_shapes_raise_value_error_at_trace_time():
  rng = np.random.default_rng(11)
  good = _random_poses(rng, 2)
  with pytest.raises(ValueError, match=r"\[\.\.\., 17, 3\].*\(2, 51\)"):
    jax.jit(metrics.mpjpe)(good.reshape(2, 51), good)
  with pytest.raises(ValueError, match=r"target.*\(2, 17, 2\)"):
    metrics.mpjpe(good, good[..., :2])
  with pytest.raises(ValueError, match="do not broadcast"):
    jax.jit(metrics.pa_mpjpe)(good, _random_poses(rng, 3))
  with pytest.raises(ValueError, match=r"poses_b.*\[B, 17, 3\]"):
    metrics.pairwise_mpjpe(good, good[None])
  with pytest.raises(ValueError, match="chunk_size"):
    metrics.pairwise_mpjpe(good, good, chunk_size=0)


# ---------------------------------------------------------------- aggregation


def test_per_action_stats_hand_example():
  errors = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
  actions = ["Walking", "Sitting", "Walking", "Sitting", "Eating"]
  stats = metrics.per_action_stats(errors, actions)
  assert list(stats) == ["Walking", "Sitting", "Eating", "All"]
  assert stats["Walking"] == {"mean": 2.0, "std": 1.0, "count": 2}
  assert stats["Sitting"] == {"mean": 3.0, "std": 1.0, "count": 2}
  assert stats["Eating"] == {"mean": 10.0, "std": 0.0, "count": 1}
  assert stats["All"]["count"] == 5
  assert stats["All"]["mean"] == pytest.approx(4.0)
  # Population std: sqrt(mean([9, 4, 1, 0, 36])) = sqrt(10).
  assert stats["All"]["std"] == pytest.approx(np.sqrt(10.0))
  assert stats["All"]["std"] == pytest.approx(np.std(errors, ddof=0))


def test_per_action_stats_random_against_numpy():
  rng = np.random.default_rng(12)
  errors = rng.gamma(4.0, 20.0, size=50).astype(np.float32)
  names = np.array(["A", "B", "C"])[rng.integers(0, 3, size=50)]
  stats = metrics.per_action_stats(errors, names.tolist())
  for a in ("A", "B", "C"):
    sel = errors[names == a].astype(np.float64)
    assert stats[a]["count"] == sel.size
    assert stats[a]["mean"] == pytest.approx(np.mean(sel), rel=1e-12)
    assert stats[a]["std"] == pytest.approx(np.std(sel), rel=1e-12)


@pytest.mark.parametrize("errors, actions, match", [
    ([1.0, 2.0], ["a"], "2 errors but 1 actions"),
    ([], [], "empty"),
    ([[1.0, 2.0]], ["a", "b"], "1-D"),
    ([1.0, np.nan], ["a", "b"], "NaN"),
    ([1.0, 2.0], "ab", "single string"),
    ([1.0, 2.0], ["a", b"b"], "entry 1"),
    ([1.0, 2.0], ["a", "All"], "reserved"),
])
def test_per_action_stats_bad_input(errors, actions, match):
  with pytest.raises(ValueError, match=match):
    metrics.per_action_stats(errors, actions)


def test_format_mean_std():
  assert metrics.format_mean_std(83.641, 27.4449) == "83.64 (27.44)"
  assert metrics.format_mean_std(np.float32(5.0), 0) == "5.00 (0.00)"
  assert metrics.format_mean_std(1.23456, 0.5, decimals=1) == "1.2 (0.5)"
