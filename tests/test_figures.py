"""Tests for experiments.figures (Figure 3 curve, Figure 4 maps, alignment)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from experiments import figures
from structnet_jax import poses as poses_lib
from structnet_jax import scoring


def _random_poses(rng: np.random.Generator, n: int) -> np.ndarray:
  return rng.normal(0.0, 300.0, size=(n, 17, 3)).astype(np.float32)


def _np_mpjpe(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.mean(np.linalg.norm(a.astype(np.float64) - b, axis=-1)))


def _np_curve(scores, cands, targets, a_values) -> dict[int, float]:
  """Reference: argsort each row, mean of the top-A poses, MPJPE, mean."""
  out = {}
  for a in a_values:
    errs = []
    for i in range(scores.shape[0]):
      top = np.argsort(-scores[i], kind="stable")[:a]
      errs.append(_np_mpjpe(cands[top].astype(np.float64).mean(0), targets[i]))
    out[a] = float(np.mean(errs))
  return out


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  m, n, d = 37, 60, 8
  emb = rng.normal(size=(m, d)).astype(np.float32)
  table = rng.normal(size=(n, d)).astype(np.float32)
  scores = (emb.astype(np.float64) @ table.T.astype(np.float64))
  return {"emb": emb, "table": table, "scores": scores.astype(np.float32),
          "cands": _random_poses(rng, n), "targets": _random_poses(rng, m)}


def test_mpjpe_vs_a_matches_numpy_loop(data):
  a_values = (1, 2, 5, 20, 60)
  ref = _np_curve(data["scores"], data["cands"], data["targets"], a_values)
  from_scores = figures.mpjpe_vs_a(data["scores"], data["cands"],
                                   data["targets"], a_values, chunk_size=10)
  from_emb = figures.mpjpe_vs_a(data["emb"], data["cands"], data["targets"],
                                a_values, table=data["table"], chunk_size=16)
  order = np.argsort(-data["scores"], axis=1, kind="stable")
  from_idx = figures.mpjpe_vs_a(order[:, :60], data["cands"], data["targets"],
                                a_values)
  assert list(from_scores) == list(a_values)
  for curve in (from_scores, from_emb, from_idx):
    np.testing.assert_allclose([curve[a] for a in a_values],
                               [ref[a] for a in a_values], rtol=1e-5)


def test_mpjpe_vs_a_is_the_evaluation_avg_a(data):
  """Figure 3's curve is the Avg(A) rows of the evaluation: the mean MPJPE of
  scoring.structnet_avg (which Table 1 reports) for each A."""
  a_values = (1, 3, 20)
  curve = figures.mpjpe_vs_a(data["scores"], data["cands"], data["targets"],
                             a_values)
  for a in a_values:
    avg = np.asarray(scoring.structnet_avg(data["scores"], data["cands"], a))
    want = np.mean([_np_mpjpe(p, t) for p, t in zip(avg, data["targets"])])
    np.testing.assert_allclose(curve[a], want, rtol=1e-5)


def test_a1_is_structnet_max(data):
  curve = figures.mpjpe_vs_a(data["scores"], data["cands"], data["targets"],
                             [1])
  best = data["cands"][np.argmax(data["scores"], axis=1)]
  expected = np.mean([_np_mpjpe(b, t) for b, t in zip(best, data["targets"])])
  np.testing.assert_allclose(curve[1], expected, rtol=1e-5)


def test_default_a_values():
  assert figures.default_a_values(2000) == (
      1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1500, 2000)
  assert figures.default_a_values(30) == (1, 2, 5, 10, 20)


def test_mpjpe_vs_a_bad_inputs(data):
  s, c, t = data["scores"], data["cands"], data["targets"]
  with pytest.raises(ValueError, match="A=61"):
    figures.mpjpe_vs_a(s, c, t, [61])
  with pytest.raises(ValueError, match="target poses"):
    figures.mpjpe_vs_a(s, c, t[:5], [1])
  with pytest.raises(ValueError, match="columns"):
    figures.mpjpe_vs_a(s[:, :10], c, t, [1])
  with pytest.raises(ValueError, match="top_k >= max"):
    figures.mpjpe_vs_a(np.zeros((len(t), 3), np.int32), c, t, [5])
  with pytest.raises(ValueError, match="lie in"):
    figures.mpjpe_vs_a(np.full((len(t), 3), 99, np.int32), c, t, [1])
  with pytest.raises(ValueError, match="table has"):
    figures.mpjpe_vs_a(data["emb"], c, t, [1], table=data["table"][:5])
  with pytest.raises(ValueError, match="empty"):
    figures.mpjpe_vs_a(s, c, t, [])
  bad = s.copy()
  bad[3, 4] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    figures.mpjpe_vs_a(bad, c, t, [1])


def test_alignment_fraction_hand_case():
  # 3 candidates at distinct offsets; image i's embedding picks candidate
  # pick[i]; the ground truths are 10 mm, 50 mm, 0 mm and 30 mm away from the
  # picked candidate (30 counts: "within" is <=).
  base = np.zeros((17, 3), np.float32)
  cands = np.stack([base, base + [1000, 0, 0], base + [0, 1000, 0]])
  table = np.eye(3, dtype=np.float32)
  pick = np.array([0, 1, 2, 1])
  emb = table[pick] * 5.0
  offsets = np.array([10.0, 50.0, 0.0, 30.0], np.float32)
  targets = cands[pick] + offsets[:, None, None] * np.array([0, 0, 1],
                                                            np.float32)
  assert figures.alignment_fraction(emb, table, cands, targets) == 0.75
  assert figures.alignment_fraction(emb, table, cands, targets, 9.0,
                                    chunk_size=3) == 0.25
  with pytest.raises(ValueError, match="threshold_mm"):
    figures.alignment_fraction(emb, table, cands, targets, -1.0)


def test_embedding_plane_top_variance():
  rng = np.random.default_rng(1)
  stds = np.array([0.1, 3.0, 0.5, 5.0, 1.0])
  emb = rng.normal(size=(4000, 5)) * stds
  xy, info = figures.embedding_plane(emb, "top_variance")
  assert info["dims"] == (3, 1)
  np.testing.assert_array_equal(xy, emb[:, [3, 1]])
  xy2, info2 = figures.embedding_plane(emb, dims=(0, 2))
  np.testing.assert_array_equal(xy2, emb[:, [0, 2]])
  assert info2["dims"] == (0, 2)


def test_embedding_plane_pca_matches_svd():
  rng = np.random.default_rng(2)
  emb = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 3.0
  xy, info = figures.embedding_plane(emb, "pca")
  centred = emb - emb.mean(0)
  u, s, _ = np.linalg.svd(centred, full_matrices=False)
  ref = u[:, :2] * s[:2]
  for j in range(2):
    sign = np.sign(np.dot(xy[:, j], ref[:, j]))
    np.testing.assert_allclose(xy[:, j], sign * ref[:, j], atol=1e-8)
  np.testing.assert_allclose(info["explained_variance"], s[:2]**2 / 300)
  assert np.all(np.diff(info["explained_variance_ratio"]) <= 0)


def test_embedding_plane_bad_inputs():
  with pytest.raises(ValueError, match="method"):
    figures.embedding_plane(np.zeros((5, 3)), "tsne")
  with pytest.raises(ValueError, match="at least 2"):
    figures.embedding_plane(np.zeros((5, 1)))
  with pytest.raises(ValueError, match="dims"):
    figures.embedding_plane(np.zeros((5, 3)), dims=(0, 3))
  with pytest.raises(ValueError, match="NaN"):
    figures.embedding_plane(np.array([[0.0, np.nan], [1.0, 2.0]]))


def test_cell_averages_matches_loop():
  rng = np.random.default_rng(3)
  coords = rng.normal(size=(500, 2))
  values = rng.normal(size=(500, 4, 3))
  grid, min_count = (5, 4), 6
  out = figures.cell_averages(coords, values, grid, min_count)
  x0, x1 = coords[:, 0].min(), coords[:, 0].max()
  y0, y1 = coords[:, 1].min(), coords[:, 1].max()
  ref = {}
  for iy in range(4):
    for ix in range(5):
      xl, xh = x0 + (x1 - x0) * ix / 5, x0 + (x1 - x0) * (ix + 1) / 5
      yl, yh = y0 + (y1 - y0) * iy / 4, y0 + (y1 - y0) * (iy + 1) / 4
      sel = [i for i, (x, y) in enumerate(coords)
             if (xl <= x < xh or (ix == 4 and x == xh)) and
             (yl <= y < yh or (iy == 3 and y == yh))]
      if len(sel) >= min_count:
        ref[(ix, iy)] = (values[sel].mean(0), len(sel),
                         ((xl + xh) / 2, (yl + yh) / 2))
  assert [tuple(c) for c in out["cells"]] == sorted(ref, key=lambda k: (k[1], k[0]))
  assert len(out["counts"]) == len(ref)
  for k, cell in enumerate(map(tuple, out["cells"])):
    mean, count, centre = ref[cell]
    assert out["counts"][k] == count
    np.testing.assert_allclose(out["means"][k], mean, atol=1e-12)
    np.testing.assert_allclose(out["centers"][k], centre, atol=1e-12)
  total = figures.cell_averages(coords, values, grid, 1)["counts"].sum()
  assert total == 500


def test_cell_averages_bad_inputs():
  with pytest.raises(ValueError, match="one per"):
    figures.cell_averages(np.zeros((4, 2)), np.zeros((3, 2)))
  with pytest.raises(ValueError, match="grid"):
    figures.cell_averages(np.zeros((4, 2)), np.zeros(4), grid=0)
  with pytest.raises(ValueError, match="min_count"):
    figures.cell_averages(np.zeros((4, 2)), np.zeros(4), min_count=0)


def _check_png(path: str, min_size: tuple[int, int] = (200, 200)) -> None:
  img = np.asarray(Image.open(path).convert("RGB"), np.float32)
  assert img.shape[1] >= min_size[0] and img.shape[0] >= min_size[1]
  assert img.std() > 5.0  # not blank


def test_plot_mpjpe_vs_a(tmp_path, data):
  curve = figures.mpjpe_vs_a(data["scores"], data["cands"], data["targets"],
                             figures.default_a_values(60, marks=(20,)))
  path = figures.plot_mpjpe_vs_a(curve, str(tmp_path / "sub" / "fig3.png"),
                                 title="test")
  _check_png(path)
  assert [p.name for p in (tmp_path / "sub").iterdir()] == ["fig3.png"]
  with pytest.raises(ValueError, match="empty"):
    figures.plot_mpjpe_vs_a({}, str(tmp_path / "x.png"))


def test_stage2_curves_running_mean_against_a_loop(tmp_path):
  rng = np.random.default_rng(0)
  values = rng.uniform(size=9)
  history = ([{"stage": "stage1", "step": 10, "score_gap": 5.0}] +
             [{"stage": "stage2", "step": 100 * (i + 1),
               "heldout_alignment_30mm": v} for i, v in enumerate(values)])
  curves = figures.stage2_curves(history, window=4)
  assert set(curves) == {"heldout_alignment_30mm"}  # stage 1 is not drawn
  steps, mean = curves["heldout_alignment_30mm"]
  np.testing.assert_array_equal(steps, 100 * np.arange(1, 10))
  want = [np.mean(values[max(0, i - 3):i + 1]) for i in range(9)]
  np.testing.assert_allclose(mean, want, rtol=1e-12)
  path = figures.plot_stage2_curves(curves, str(tmp_path / "s2.png"))
  _check_png(path)
  with pytest.raises(ValueError, match="no stage-2 metric"):
    figures.plot_stage2_curves({}, str(tmp_path / "none.png"))
  with pytest.raises(ValueError, match="window must be >= 1"):
    figures.stage2_curves(history, window=0)


def test_draw_pose_segments():
  pose = np.zeros((17, 3), np.float32)
  pose[:, 1] = np.arange(17) * -10.0  # y down: joint 16 highest up
  segs = figures.pose_segments(pose, 100.0)
  assert len(segs) == len(poses_lib.BONES)
  ys = np.concatenate([s[:, 1] for s, _ in segs])
  assert ys.min() == pytest.approx(5.0) and ys.max() == pytest.approx(95.0)
  # y is flipped: the child of the last bone (joint 16, y = -160) is on top.
  assert segs[-1][0][1, 1] == pytest.approx(95.0)
  colours = {c for _, c in segs}
  assert len(colours) == 6


def test_plot_figure4_tiny(tmp_path):
  rng = np.random.default_rng(4)
  n = 40
  img_emb = rng.normal(size=(n, 6)).astype(np.float32)
  pose_emb = img_emb + 0.1 * rng.normal(size=(n, 6)).astype(np.float32)
  images = rng.uniform(size=(n, 12, 12, 3)).astype(np.float32)
  poses = _random_poses(rng, n)
  paths = figures.plot_figure4(img_emb, pose_emb, images, poses,
                               str(tmp_path), grid=3, min_count=2)
  assert [p.rsplit("/", 1)[1] for p in paths] == [
      f"figure4{c}.png" for c in "abcd"]
  for p in paths:
    _check_png(p, (500, 500))
  uint8 = (images * 255).astype(np.uint8)
  figures.plot_figure4(img_emb, pose_emb, uint8, poses, str(tmp_path / "u8"),
                       grid=2)
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    figures.plot_figure4(img_emb, pose_emb, images * 255, poses, str(tmp_path))
  with pytest.raises(ValueError, match="pose embeddings"):
    figures.plot_figure4(img_emb, pose_emb[:-1], images, poses, str(tmp_path))
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    figures.plot_figure4(img_emb, pose_emb, images[..., 0], poses,
                         str(tmp_path))
