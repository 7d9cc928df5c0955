"""The paper's Figure 3 (error vs. A) and Figure 4 (embedding maps) as PNGs.

Figure 3 plots the test MPJPE of StructNet-Avg(A) against the number A of
top-scoring training poses averaged (A = 1 is StructNet-Max). ``mpjpe_vs_a``
computes the whole curve with one top-k of depth max(A) per chunk of test
images and a running sum over the sorted candidates (as
``scoring.avg_of_top``); ``plot_mpjpe_vs_a`` draws it.

Figure 4 (paper section 6) maps the learned embedding in 2-D: (a) the two
image-embedding dimensions of highest variance over the training images, with
the average input image of each region of the plane; (b) the same two
dimensions of the pose embedding, with the average pose of each region; (c)
and (d) the same with the first two principal components. ``plot_figure4``
writes the four panels; ``alignment_fraction`` is the section's alignment
statistic (97% of the training images' max-score poses within 30 mm).

Computation (numpy / JAX: ``mpjpe_vs_a``, ``alignment_fraction``,
``embedding_plane``, ``cell_averages``) is kept apart from plotting
(``plot_mpjpe_vs_a``, ``draw_pose``, ``plot_figure4``). Plots use
matplotlib's Agg canvas directly (no display, no pyplot state) and are saved
atomically (temporary file, then ``os.replace``).

Poses are ``[..., 17, 3]`` mm, camera frame (x right, y down, z forward), in
the joint order of ``structnet_jax.poses``.

  curve = mpjpe_vs_a(result["image_embeddings"], pose_space, result["poses"],
                     default_a_values(len(pose_space)), table=table)
  plot_mpjpe_vs_a(curve, "workdir/figure3.png")
  plot_figure4(train_image_emb, train_pose_emb, train_images, train_poses,
               "workdir/figures")
"""

from __future__ import annotations

import functools
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from structnet_jax import files
from structnet_jax import metrics
from structnet_jax import poses as poses_lib
from structnet_jax import progress
from structnet_jax import scoring

TABLE1_A = (20, 500, 1500)

# Bone colours of the paper's Figure 4: red/orange right arm/leg, purple/green
# left arm/leg, cyan "nose" (the forward direction), grey trunk and head.
_RIGHT_ARM, _RIGHT_LEG = "#d62728", "#ff7f0e"
_LEFT_ARM, _LEFT_LEG = "#9467bd", "#2ca02c"
_TRUNK, _NOSE = "#404040", "#17becf"


# ----------------------------------------------------------------------------
# Figure 3: MPJPE of StructNet-Avg(A) against A.
# ----------------------------------------------------------------------------


def default_a_values(num_candidates: int,
                     marks: Sequence[int] = TABLE1_A) -> tuple[int, ...]:
  """Log-spaced A (1, 2, 5, 10, 20, 50, ...) plus ``marks``, all <= N, sorted."""
  n = int(num_candidates)
  if n < 1:
    raise ValueError(f"default_a_values: need N >= 1 candidates, got {n}.")
  grid = {1}
  decade = 1
  while decade <= n:
    grid.update(m * decade for m in (1, 2, 5))
    decade *= 10
  grid.update(int(m) for m in marks)
  return tuple(sorted(a for a in grid if 1 <= a <= n))


@functools.partial(jax.jit, static_argnames=("a_values",))
def _errors_from_top(top_idx, candidates, targets, a_values):
  """MPJPE ``[c, len(A)]`` of Avg(A) from sorted top indices ``[c, >= max A]``."""
  avg = scoring.avg_of_top(top_idx[:, :max(a_values)], candidates, a_values)
  avg = jnp.stack([avg[a] for a in a_values], axis=1)  # [c, len(A), 17, 3]
  return metrics.mpjpe(avg, targets[:, None])


@functools.partial(jax.jit, static_argnames=("a_values",))
def _errors_from_scores(scores, candidates, targets, a_values):
  _, top_idx = jax.lax.top_k(scores, max(a_values))
  return _errors_from_top(top_idx, candidates, targets, a_values)


@functools.partial(jax.jit, static_argnames=("a_values",))
def _errors_from_embeddings(emb, table, candidates, targets, a_values):
  return _errors_from_scores(scoring.score_images(emb, table), candidates,
                             targets, a_values)


def _finite_2d(x, name: str, fn: str) -> np.ndarray:
  arr = np.asarray(x)
  if arr.ndim != 2:
    raise ValueError(f"{fn}: {name} must be 2-D, got shape {arr.shape}.")
  if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
    raise ValueError(f"{fn}: {name} must be real numbers, got {arr.dtype}.")
  if not np.all(np.isfinite(arr)):
    rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    raise ValueError(
        f"{fn}: {name} has {rows.size} row(s) with NaN/inf (first: "
        f"{rows[:5].tolist()}); drop or repair them first.")
  return arr


def _errors_vs_a(source, candidates, targets, a_values: Sequence[int], *,
                 table=None, chunk_size: int = 256,
                 fn: str = "mpjpe_vs_a") -> tuple[np.ndarray, tuple[int, ...]]:
  """Per-example MPJPE ``[M, len(A)]`` (float64, mm) of Avg(A), chunked.

  ``source`` is scores ``[M, N]`` (float), sorted top indices ``[M, K >= max
  A]`` (int), or image embeddings ``[M, D]`` when ``table [N, D]`` is given.
  At most ``chunk_size`` test images are processed at once, so the largest
  intermediate is ``[chunk_size, max(A), 17, 3]`` (plus ``[chunk_size, N]``
  scores).
  """
  cands = scoring.check_candidates(candidates).astype(np.float32)
  n = cands.shape[0]
  tgts = poses_lib.check_poses(targets, f"{fn}: targets").astype(np.float32)
  if tgts.ndim != 3:
    raise ValueError(f"{fn}: targets must be [M, 17, 3], got {tgts.shape}.")
  if isinstance(a_values, (int, np.integer)):
    a_values = (a_values,)
  if len(a_values) == 0:
    raise ValueError(f"{fn}: a_values is empty; pass e.g. (1, 20, 500).")
  a_values = tuple(sorted(set(scoring.check_avg_sizes(a_values, n))))
  if int(chunk_size) < 1:
    raise ValueError(f"{fn}: chunk_size must be >= 1, got {chunk_size}.")

  src = np.asarray(source)
  if src.ndim != 2:
    raise ValueError(
        f"{fn}: the first argument must be 2-D (scores [M, N], top indices "
        f"[M, K] or image embeddings [M, D] with table=), got shape "
        f"{tuple(src.shape)}.")
  m = src.shape[0]
  if m == 0:
    raise ValueError(f"{fn}: no test images (M=0).")
  if tgts.shape[0] != m:
    raise ValueError(
        f"{fn}: {m} rows of scores/indices/embeddings but {tgts.shape[0]} "
        "target poses; give one ground-truth pose per test image.")

  dev_cands = jnp.asarray(cands)
  if table is not None:
    emb = _finite_2d(src, "image embeddings", fn).astype(np.float32)
    tab = _finite_2d(table, "table", fn)
    if tab.shape[0] != n:
      raise ValueError(
          f"{fn}: the table has {tab.shape[0]} rows but there are {n} "
          "candidate poses; embed the same set you score against.")
    if tab.shape[1] != emb.shape[1]:
      raise ValueError(
          f"{fn}: image embeddings have width {emb.shape[1]} but the table "
          f"{tab.shape[1]}; use the same model for both.")
    dev_tab = jnp.asarray(tab, jnp.float32)
    step = lambda x, t: _errors_from_embeddings(x, dev_tab, dev_cands, t,
                                                a_values)
  elif np.issubdtype(src.dtype, np.integer):
    idx = np.asarray(src)
    if idx.shape[1] < max(a_values):
      raise ValueError(
          f"{fn}: top indices hold {idx.shape[1]} candidates per image but "
          f"A={max(a_values)} was asked for; keep top_k >= max(A) or pass "
          "the scores / image embeddings instead.")
    if idx.min() < 0 or idx.max() >= n:
      raise ValueError(
          f"{fn}: top indices must lie in [0, {n}) (the candidate set), got "
          f"range [{idx.min()}, {idx.max()}].")
    src = idx[:, :max(a_values)].astype(np.int32)
    step = lambda x, t: _errors_from_top(x, dev_cands, t, a_values)
  else:
    src = _finite_2d(src, "scores", fn).astype(np.float32)
    if src.shape[1] != n:
      raise ValueError(
          f"{fn}: scores have {src.shape[1]} columns but there are {n} "
          "candidate poses (for image embeddings [M, D], pass table=).")
    step = lambda x, t: _errors_from_scores(x, dev_cands, t, a_values)

  chunk = min(int(chunk_size), m)
  out = np.empty((m, len(a_values)), np.float64)
  counter = progress.Progress(
      f"figures: Avg(A) for {len(a_values)} values of A", total=m)
  for start in range(0, m, chunk):
    x, t = src[start:start + chunk], tgts[start:start + chunk]
    valid = x.shape[0]
    if valid < chunk:  # pad the last chunk so one compiled shape serves all
      pad = chunk - valid
      x = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)])
      t = np.concatenate([t, np.zeros((pad,) + t.shape[1:], t.dtype)])
    err = np.asarray(jax.device_get(step(jnp.asarray(x), jnp.asarray(t))))
    out[start:start + valid] = err[:valid]
    counter.update(valid)
  counter.done()
  return out, a_values


def mpjpe_vs_a(scores_or_top_indices, candidates, targets,
               a_values: Sequence[int], *, table=None,
               chunk_size: int = 256) -> dict[int, float]:
  """Mean test MPJPE of StructNet-Avg(A) for every A (the curve of Figure 3).

  For each test image the candidates are sorted by score once (a top-k of
  depth max(A)); Avg(A) for all A then comes from one running sum over the
  sorted candidate poses. A = 1 is StructNet-Max.

  Args:
    scores_or_top_indices: one of
      * scores ``[M, N]`` float, f_S of each test image with each candidate;
      * top indices ``[M, K]`` int, best first, ``K >= max(A)`` (e.g.
        ``evaluate(..., top_k=K)["top_indices"]``);
      * image embeddings ``[M, D]`` float, with ``table`` given.
    candidates: ``[N, 17, 3]`` mm, the candidate (training) poses.
    targets: ``[M, 17, 3]`` mm, the ground-truth test poses.
    a_values: the A to evaluate, each in ``[1, N]``.
    table: the ``[N, D]`` pose-embedding table of ``candidates``; makes the
      first argument image embeddings.
    chunk_size: test images per step (bounds memory to about
      ``chunk_size * (N + 51 * max(A))`` floats).

  Returns:
    ``{A: mean MPJPE in mm}`` in increasing A.

  Raises:
    ValueError: on mismatched shapes, NaNs, A outside ``[1, N]``, too few top
      indices, or indices outside the candidate set.
  """
  err, a_values = _errors_vs_a(scores_or_top_indices, candidates, targets,
                               a_values, table=table, chunk_size=chunk_size)
  return {a: float(e) for a, e in zip(a_values, err.mean(axis=0))}


def alignment_fraction(image_emb, table, candidates, targets,
                       threshold_mm: float = 30.0, *,
                       chunk_size: int = 1024) -> float:
  """Fraction of images whose max-score candidate is within a threshold.

  Section 6's check that image and pose embeddings are aligned: 97% of the
  training images' max-score poses are within 30 mm MPJPE of the ground
  truth.

  Args:
    image_emb: ``[M, D]`` image embeddings (e.g. of the training images).
    table: ``[N, D]`` pose-embedding table of ``candidates``.
    candidates: ``[N, 17, 3]`` mm.
    targets: ``[M, 17, 3]`` mm, the ground-truth poses of the images.
    threshold_mm: the MPJPE bound; an image counts when ``MPJPE <=
      threshold_mm``.
    chunk_size: images scored at once (bounds the ``[chunk, N]`` scores).

  Returns:
    The fraction in ``[0, 1]``.
  """
  if not np.isfinite(threshold_mm) or threshold_mm < 0:
    raise ValueError(
        f"alignment_fraction: threshold_mm must be a finite number >= 0, got "
        f"{threshold_mm}.")
  if table is None:
    raise ValueError("alignment_fraction: table is None; compute it with "
                     "scoring.embed_candidate_poses(model, variables, "
                     "candidates).")
  err, _ = _errors_vs_a(image_emb, candidates, targets, (1,), table=table,
                        chunk_size=chunk_size, fn="alignment_fraction")
  return float(np.mean(err[:, 0] <= threshold_mm))


# ----------------------------------------------------------------------------
# Figure 4 computations: 2-D planes of the embedding and per-cell averages.
# ----------------------------------------------------------------------------

PLANE_METHODS = ("top_variance", "pca")


def embedding_plane(emb, method: str = "top_variance", *,
                    dims: Sequence[int] | None = None
                    ) -> tuple[np.ndarray, dict[str, Any]]:
  """Two coordinates per embedding vector, for a 2-D map of the embedding.

  Args:
    emb: ``[N, D]`` embeddings (N >= 2, D >= 2), finite.
    method: ``"top_variance"``: the two dimensions of highest variance
      (highest first), as the raw embedding values; ``"pca"``: the
      coefficients of the centred vectors on the first two principal
      components (each component's sign fixed so its largest-magnitude
      loading is positive).
    dims: with ``"top_variance"``, use these two dimensions instead of
      choosing them (e.g. the image embedding's for the pose embedding, as
      Figure 4b).

  Returns:
    ``(coords [N, 2] float64, info)``; ``info`` has ``"method"`` and, for
    ``"top_variance"``, ``"dims"`` (2 ints) and ``"variance"`` [2]; for
    ``"pca"``, ``"components"`` [2, D], ``"mean"`` [D],
    ``"explained_variance"`` [2] and ``"explained_variance_ratio"`` [2].
  """
  x = _finite_2d(emb, "emb", "embedding_plane").astype(np.float64)
  if x.shape[0] < 2 or x.shape[1] < 2:
    raise ValueError(
        f"embedding_plane: need at least 2 vectors of at least 2 dimensions, "
        f"got shape {x.shape}.")
  if method not in PLANE_METHODS:
    raise ValueError(f"embedding_plane: method={method!r} is unknown; use one "
                     f"of {PLANE_METHODS}.")
  var = x.var(axis=0)
  if method == "top_variance":
    if dims is None:
      order = np.argsort(-var, kind="stable")
      dims = (int(order[0]), int(order[1]))
    else:
      dims = tuple(int(d) for d in dims)
      if len(dims) != 2 or not all(0 <= d < x.shape[1] for d in dims):
        raise ValueError(
            f"embedding_plane: dims must be 2 indices in [0, {x.shape[1]}), "
            f"got {dims}.")
    return x[:, list(dims)], {"method": method, "dims": dims,
                              "variance": var[list(dims)]}
  if dims is not None:
    raise ValueError("embedding_plane: dims is only used with "
                     "method='top_variance'.")
  mean = x.mean(axis=0)
  _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
  comps = vt[:2]
  flip = np.sign(comps[np.arange(2), np.argmax(np.abs(comps), axis=1)])
  comps = comps * np.where(flip == 0, 1.0, flip)[:, None]
  ev = sv**2 / x.shape[0]
  total = ev.sum()
  return (x - mean) @ comps.T, {
      "method": method, "components": comps, "mean": mean,
      "explained_variance": ev[:2],
      "explained_variance_ratio": ev[:2] / total if total > 0 else ev[:2]}


def _grid_shape(grid) -> tuple[int, int]:
  g = (grid, grid) if np.isscalar(grid) else tuple(grid)
  if len(g) != 2 or any(int(v) != v or v < 1 for v in g):
    raise ValueError(f"grid must be a positive int or (nx, ny) of them, got "
                     f"{grid!r}.")
  return int(g[0]), int(g[1])


def cell_averages(coords, values, grid=6, min_count: int = 1, *,
                  extent: Sequence[float] | None = None) -> dict[str, Any]:
  """Means of ``values`` over the cells of a regular grid laid on 2-D points.

  The grid spans ``extent = (xmin, xmax, ymin, ymax)`` (default: the points'
  bounding box) in ``nx * ny`` equal cells; a point on an upper edge belongs
  to the last cell, points outside the extent are ignored. Cells are numbered
  ``iy * nx + ix`` and returned in that order.

  Args:
    coords: ``[N, 2]`` points.
    values: ``[N, ...]`` per-point values (images, poses, ...); averaged in
      float64, one cell at a time (no ``[N, ...]`` float copy).
    grid: cells per side, or ``(nx, ny)``.
    min_count: cells with fewer points are dropped.
    extent: the ``(xmin, xmax, ymin, ymax)`` the grid covers.

  Returns:
    ``{"centers": [K, 2], "means": [K, ...] float64, "counts": [K] int,
    "cells": [K, 2] int (ix, iy), "edges_x": [nx + 1], "edges_y": [ny + 1]}``
    for the K cells with ``>= min_count`` points.
  """
  xy = _finite_2d(coords, "coords", "cell_averages").astype(np.float64)
  if xy.shape[1] != 2:
    raise ValueError(f"cell_averages: coords must be [N, 2], got {xy.shape}.")
  vals = np.asarray(values)
  if vals.ndim < 1 or vals.shape[0] != xy.shape[0]:
    raise ValueError(
        f"cell_averages: values must be [N, ...] with N={xy.shape[0]} (one per "
        f"point), got shape {vals.shape}.")
  if xy.shape[0] == 0:
    raise ValueError("cell_averages: no points (N=0).")
  nx, ny = _grid_shape(grid)
  if int(min_count) < 1:
    raise ValueError(f"cell_averages: min_count must be >= 1, got {min_count}.")
  if extent is None:
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    same = hi <= lo
    lo, hi = np.where(same, lo - 0.5, lo), np.where(same, hi + 0.5, hi)
    extent = (lo[0], hi[0], lo[1], hi[1])
  x0, x1, y0, y1 = (float(e) for e in extent)
  if not (x1 > x0 and y1 > y0):
    raise ValueError(f"cell_averages: extent must have xmin < xmax and "
                     f"ymin < ymax, got {tuple(extent)}.")
  edges_x, edges_y = np.linspace(x0, x1, nx + 1), np.linspace(y0, y1, ny + 1)
  inside = ((xy[:, 0] >= x0) & (xy[:, 0] <= x1) &
            (xy[:, 1] >= y0) & (xy[:, 1] <= y1))
  ix = np.clip(((xy[:, 0] - x0) / (x1 - x0) * nx).astype(np.int64), 0, nx - 1)
  iy = np.clip(((xy[:, 1] - y0) / (y1 - y0) * ny).astype(np.int64), 0, ny - 1)
  cell = np.where(inside, iy * nx + ix, -1)
  counts = np.bincount(cell[inside], minlength=nx * ny)
  keep = np.flatnonzero(counts >= int(min_count))
  means = np.empty((keep.size,) + vals.shape[1:], np.float64)
  for k, c in enumerate(keep):
    means[k] = vals[cell == c].mean(axis=0, dtype=np.float64)
  cells = np.stack([keep % nx, keep // nx], axis=1)
  centers = np.stack([(edges_x[cells[:, 0]] + edges_x[cells[:, 0] + 1]) / 2,
                      (edges_y[cells[:, 1]] + edges_y[cells[:, 1] + 1]) / 2],
                     axis=1)
  return {"centers": centers, "means": means, "counts": counts[keep],
          "cells": cells, "edges_x": edges_x, "edges_y": edges_y}


def _check_images(images, n: int) -> np.ndarray:
  """Images ``[N, H, W, 3]`` (float in [0, 1] or uint8) -> numpy, unconverted."""
  img = np.asarray(images)
  if img.ndim != 4 or img.shape[-1] != 3 or img.shape[0] != n:
    raise ValueError(
        f"plot_figure4: images must be [N, H, W, 3] with N={n} (one per "
        f"embedding), got shape {img.shape}.")
  if img.dtype == np.uint8:
    return img
  if not np.issubdtype(img.dtype, np.floating):
    raise ValueError(f"plot_figure4: images must be float in [0, 1] or uint8, "
                     f"got dtype {img.dtype}.")
  lo, hi = float(np.min(img)), float(np.max(img))
  if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
    raise ValueError(
        f"plot_figure4: float images must lie in [0, 1], got range [{lo:.3g}, "
        f"{hi:.3g}]; pass the raw (un-normalised) images, or uint8.")
  return img


# ----------------------------------------------------------------------------
# Plotting.
# ----------------------------------------------------------------------------


def _new_figure(figsize: tuple[float, float]):
  """A pyplot-free figure on the Agg canvas."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=figsize)
  FigureCanvasAgg(fig)
  return fig


def _save_figure(fig, path: str, dpi: int = 100) -> str:
  """Writes ``fig`` as a PNG to ``path`` atomically; returns ``path``."""
  path = os.fspath(path)
  files.makedirs(os.path.dirname(files.absolute(path)))
  return files.write_atomic(
      path, lambda f: fig.savefig(f, format="png", dpi=dpi))


def plot_mpjpe_vs_a(curve: dict[int, float], path: str, *,
                    title: str = "Pose error vs. number of averaged poses A",
                    marks: Sequence[int] = TABLE1_A,
                    label: str = "StructNet-Avg(A)") -> str:
  """Figure 3: mean MPJPE (mm) of StructNet-Avg(A) against A on a log axis.

  Args:
    curve: ``{A: mean MPJPE mm}`` (``mpjpe_vs_a``); A = 1, when present, is
      drawn as the StructNet-Max reference line.
    path: the PNG to write.
    title: the figure title.
    marks: the A to highlight and label (Table 1's A), where present.
    label: the legend entry of the curve.

  Returns:
    ``path``.
  """
  if not curve:
    raise ValueError("plot_mpjpe_vs_a: curve is empty; compute it with "
                     "mpjpe_vs_a.")
  a = np.array(sorted(int(k) for k in curve))
  if a[0] < 1:
    raise ValueError(f"plot_mpjpe_vs_a: A must be >= 1, got {a[0]}.")
  err = np.array([float(curve[k]) for k in a])
  if not np.all(np.isfinite(err)):
    raise ValueError("plot_mpjpe_vs_a: curve has NaN/inf errors.")
  fig = _new_figure((6.4, 4.2))
  ax = fig.add_subplot()
  ax.plot(a, err, "-o", ms=3.5, color="#1f77b4", label=label)
  if 1 in curve:
    ax.axhline(curve[1], color="#7f7f7f", ls="--", lw=1,
               label=f"StructNet-Max (A=1): {curve[1]:.1f} mm")
  for m in marks:
    if m in curve:
      ax.plot([m], [curve[m]], "s", ms=7, mfc="none", mec="#d62728", mew=1.5)
      ax.annotate(f"A={m}\n{curve[m]:.1f} mm", (m, curve[m]),
                  textcoords="offset points", xytext=(0, 9), ha="center",
                  fontsize=8, color="#d62728", zorder=5,
                  bbox={"boxstyle": "round,pad=0.15", "fc": "white",
                        "ec": "none", "alpha": 0.85})
  if 1 in curve:
    ax.annotate("Max", (1, curve[1]), textcoords="offset points",
                xytext=(4, -12), fontsize=8, color="#555555")
  best = int(a[np.argmin(err)])
  ax.plot([best], [curve[best]], "*", ms=10, color="#2ca02c",
          label=f"best: A={best}, {curve[best]:.1f} mm")
  ax.set_xscale("log")
  if a[-1] == a[0]:
    ax.set_xlim(a[0] / 2, a[0] * 2)
  span = float(err.max() - err.min()) or max(1.0, float(err.max()) * 0.05)
  ax.set_ylim(err.min() - 0.15 * span, err.max() + 0.3 * span)
  ax.set_xlabel("A (number of top-scoring training poses averaged)")
  ax.set_ylabel("MPJPE (mm)")
  ax.set_title(title)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8, loc="upper right")
  fig.tight_layout()
  return _save_figure(fig, path)


# The stage-2 curves: (metrics.jsonl key, panel title, y label, in percent).
STAGE2_CURVES = (
    ("heldout_alignment_30mm", "Alignment: max-score pose of Y within 30 mm",
     "training images (%)", True),
    ("heldout_max_mpjpe_mm", "StructNet-Max on training images (all of Y)",
     "MPJPE (mm)", False),
    ("violated_fraction_eval", "Violated fraction (dropout off)",
     "training batches (%)", True),
    ("score_gap", "Score gap: true pose - most violating", "score units",
     False),
)


def stage2_curves(history: Sequence[dict[str, Any]], window: int = 5
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Stage-2 metrics against steps, each with a trailing running mean.

  Args:
    history: ``metrics.jsonl`` records (``trainer.read_metrics``).
    window: logged steps in the trailing mean (the probe's batch is one
      batch, so single values are noisy).

  Returns:
    ``{key: (steps [n], running mean [n])}`` for the keys of
    ``STAGE2_CURVES`` that stage 2 logged (a key's first ``window - 1``
    points average what is there).
  """
  if window < 1:
    raise ValueError(f"stage2_curves: window must be >= 1, got {window}.")
  out = {}
  for key, *_ in STAGE2_CURVES:
    rows = [(int(r["step"]), float(r[key])) for r in history
            if r.get("stage") == "stage2" and key in r]
    if not rows:
      continue
    steps, values = (np.array(v) for v in zip(*rows))
    sums = np.concatenate([[0.0], np.cumsum(values)])
    lo = np.maximum(np.arange(len(values)) + 1 - window, 0)
    out[key] = (steps, (sums[1:] - sums[lo]) / (np.arange(1, len(values) + 1)
                                                - lo))
  return out


def plot_stage2_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]],
                       path: str) -> str:
  """Draws ``stage2_curves`` (one panel per metric) to the PNG ``path``."""
  panels = [c for c in STAGE2_CURVES if c[0] in curves]
  if not panels:
    raise ValueError("plot_stage2_curves: no stage-2 metric to draw; the "
                     "run's metrics.jsonl has no stage-2 records.")
  fig = _new_figure((4.2 * len(panels), 3.4))
  for i, (key, title, ylabel, percent) in enumerate(panels):
    ax = fig.add_subplot(1, len(panels), i + 1)
    steps, values = curves[key]
    ax.plot(steps, 100 * values if percent else values, color="#1f77b4")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("stage-2 step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
  fig.tight_layout()
  return _save_figure(fig, path)


def bone_colour(parent: int, child: int) -> str:
  name = poses_lib.JOINT_NAMES[child]
  if name == "neck_nose":
    return _NOSE
  if name.startswith("right"):
    return _RIGHT_LEG if name.endswith(("hip", "knee", "ankle")) else _RIGHT_ARM
  if name.startswith("left"):
    return _LEFT_LEG if name.endswith(("hip", "knee", "ankle")) else _LEFT_ARM
  return _TRUNK


def pose_segments(pose, size: float) -> list[tuple[np.ndarray, str]]:
  """Front-view (camera x/y) bone segments of a pose, fitted in a square.

  Args:
    pose: ``[17, 3]`` mm, camera frame (y down).
    size: the side of the square (any unit, e.g. points).

  Returns:
    16 ``(xy [2, 2], colour)``, y flipped to point up, the pose's 2-D
    bounding box centred in ``[0, size]^2`` with its longer side 90% of it.
  """
  p = poses_lib.check_poses(pose, "pose").astype(np.float64)
  if p.shape != (poses_lib.NUM_JOINTS, 3):
    raise ValueError(f"draw_pose: pose must be [17, 3], got {p.shape}.")
  xy = np.stack([p[:, 0], -p[:, 1]], axis=1)
  lo, hi = xy.min(axis=0), xy.max(axis=0)
  extent = float(np.max(hi - lo))
  k = 0.9 * size / extent if extent > 0 else 0.0
  xy = (xy - (lo + hi) / 2) * k + size / 2
  return [(xy[[a, b]], bone_colour(a, b)) for a, b in poses_lib.BONES]


def draw_pose(ax, pose, center: Sequence[float], scale: float = 60.0, *,
              linewidth: float = 1.6, zorder: int = 3):
  """Draws a small stick figure of ``pose`` on ``ax`` at data point ``center``.

  Front view of the camera frame (x right, y flipped to point up); the
  figure keeps its proportions whatever the axes' aspect, because it is drawn
  in points inside an ``AnnotationBbox``. Colours follow the paper: red/orange
  right arm/leg, purple/green left arm/leg, cyan thorax-to-nose bone (the
  forward direction), grey trunk and head.

  Args:
    ax: a matplotlib Axes.
    pose: ``[17, 3]`` mm.
    center: ``(x, y)`` in data coordinates.
    scale: the side of the figure's square box, in points.
    linewidth: bone width in points.
    zorder: drawing order.

  Returns:
    The ``AnnotationBbox`` added to ``ax``.
  """
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
  from matplotlib.offsetbox import AnnotationBbox, DrawingArea  # pylint: disable=g-import-not-at-top
  if not scale > 0:
    raise ValueError(f"draw_pose: scale (points) must be > 0, got {scale}.")
  area = DrawingArea(scale, scale, 0, 0)
  segments = pose_segments(pose, scale)
  for seg, colour in segments:
    area.add_artist(Line2D(seg[:, 0], seg[:, 1], color=colour, lw=linewidth,
                           solid_capstyle="round"))
  # Bone k ends at joint k + 1 (BONES follows PARENTS); mark the nose joint.
  nose = segments[poses_lib.JOINT_NAMES.index("neck_nose") - 1][0][1]
  area.add_artist(Line2D([nose[0]], [nose[1]], marker="o",
                         ms=linewidth * 1.8, color=_NOSE, lw=0))
  box = AnnotationBbox(area, tuple(center), xycoords="data", frameon=True,
                       pad=0.1, zorder=zorder,
                       bboxprops={"fc": (1, 1, 1, 0.75), "ec": "#bbbbbb",
                                  "lw": 0.5})
  ax.add_artist(box)
  return box


def _draw_thumbnail(ax, image: np.ndarray, center, size_pt: float,
                    zorder: int = 3):
  """An image ``[H, W, 3]`` in [0, 1] drawn ``size_pt`` points wide at ``center``."""
  from matplotlib.offsetbox import AnnotationBbox, OffsetImage  # pylint: disable=g-import-not-at-top
  zoom = size_pt / max(image.shape[:2])
  box = AnnotationBbox(OffsetImage(np.clip(image, 0, 1), zoom=zoom,
                                   dpi_cor=True),
                       tuple(center), xycoords="data", frameon=True, pad=0.05,
                       zorder=zorder, bboxprops={"ec": "#888888", "lw": 0.5})
  ax.add_artist(box)
  return box


def _figure4_panel(coords, cells, draw, path: str, title: str,
                   axis_labels: tuple[str, str], max_scatter: int,
                   seed: int) -> str:
  """One Figure 4 panel: scatter, faint grid, a glyph per kept cell."""
  fig = _new_figure((7.5, 7.5))
  ax = fig.add_subplot()
  pts = coords
  if len(pts) > max_scatter:
    pts = pts[np.random.default_rng(seed).choice(len(pts), max_scatter,
                                                 replace=False)]
  ax.scatter(pts[:, 0], pts[:, 1], s=3, c="#1f77b4", alpha=0.35, lw=0,
             zorder=1, rasterized=True)
  ex, ey = cells["edges_x"], cells["edges_y"]
  for e in ex:
    ax.axvline(e, color="#cccccc", lw=0.5, zorder=0)
  for e in ey:
    ax.axhline(e, color="#cccccc", lw=0.5, zorder=0)
  ax.set_xlim(ex[0], ex[-1])
  ax.set_ylim(ey[0], ey[-1])
  # Glyph size: 85% of the smaller cell side on a ~6-inch axes, in points.
  cell_pt = 0.85 * 72 * 6.0 / max(len(ex) - 1, len(ey) - 1)
  for center, mean in zip(cells["centers"], cells["means"]):
    draw(ax, mean, center, cell_pt)
  ax.set_xlabel(axis_labels[0])
  ax.set_ylabel(axis_labels[1])
  ax.set_title(title, fontsize=11)
  fig.subplots_adjust(left=0.1, right=0.96, bottom=0.08, top=0.93)
  return _save_figure(fig, path)


def figure4_data(image_emb, pose_emb, images, poses, *, grid=6,
                 min_count: int = 3) -> list[dict[str, Any]]:
  """The four panels of Figure 4 as data (no plotting).

  Returns:
    4 dicts ``{"name", "kind" ("image"|"pose"), "coords" [N, 2], "info",
    "cells" (cell_averages output), "title", "axis_labels"}`` for panels a-d.
    Average images are float in [0, 1]; average poses mm.
  """
  img_e = _finite_2d(image_emb, "image_emb", "plot_figure4")
  pose_e = _finite_2d(pose_emb, "pose_emb", "plot_figure4")
  if img_e.shape[0] != pose_e.shape[0]:
    raise ValueError(
        f"plot_figure4: {img_e.shape[0]} image embeddings but "
        f"{pose_e.shape[0]} pose embeddings; embed the images and the poses "
        "of the same training examples.")
  if img_e.shape[1] != pose_e.shape[1]:
    raise ValueError(
        f"plot_figure4: image and pose embeddings have widths {img_e.shape[1]} "
        f"and {pose_e.shape[1]}; they must share the joint space.")
  n = img_e.shape[0]
  imgs = _check_images(images, n)
  pos = poses_lib.check_poses(poses, "plot_figure4: poses")
  if pos.shape != (n, poses_lib.NUM_JOINTS, 3):
    raise ValueError(f"plot_figure4: poses must be [N, 17, 3] with N={n}, got "
                     f"{pos.shape}.")
  scale = 1 / 255.0 if imgs.dtype == np.uint8 else 1.0

  a_xy, a_info = embedding_plane(img_e, "top_variance")
  b_xy, b_info = embedding_plane(pose_e, "top_variance", dims=a_info["dims"])
  c_xy, c_info = embedding_plane(img_e, "pca")
  d_xy, d_info = embedding_plane(pose_e, "pca")
  # PCA signs are arbitrary: orient the pose components like the image ones
  # (positive correlation over the paired examples) so (c) and (d) compare.
  for j in range(2):
    if np.dot(c_xy[:, j] - c_xy[:, j].mean(), d_xy[:, j] - d_xy[:, j].mean()) < 0:
      d_xy[:, j] *= -1
      d_info["components"][j] *= -1
  d0, d1 = a_info["dims"]
  dim_labels = (f"embedding dim {d0}", f"embedding dim {d1}")
  pc_labels = lambda info: tuple(
      f"PC{j + 1} ({100 * info['explained_variance_ratio'][j]:.0f}% of var.)"
      for j in range(2))
  panels = [
      ("a", "image", a_xy, a_info,
       f"(a) image embedding: top-variance dims {d0}, {d1}", dim_labels),
      ("b", "pose", b_xy, b_info,
       f"(b) pose embedding: same dims {d0}, {d1}", dim_labels),
      ("c", "image", c_xy, c_info, "(c) image embedding: PCA", pc_labels(c_info)),
      ("d", "pose", d_xy, d_info, "(d) pose embedding: PCA", pc_labels(d_info)),
  ]
  out = []
  for name, kind, xy, info, title, labels in panels:
    cells = cell_averages(xy, imgs if kind == "image" else pos, grid, min_count)
    if kind == "image":
      cells["means"] = np.clip(cells["means"] * scale, 0.0, 1.0)
    out.append({"name": name, "kind": kind, "coords": xy, "info": info,
                "cells": cells, "title": title, "axis_labels": labels})
  return out


def plot_figure4(image_emb, pose_emb, images, poses, out_dir: str, *, grid=6,
                 min_count: int = 3, max_scatter: int = 20000,
                 seed: int = 0) -> list[str]:
  """Figure 4 a-d: 2-D maps of the image and pose embeddings, as 4 PNGs.

  (a) the two image-embedding dimensions of highest variance, one point per
  training image, with the average input image of each grid cell drawn at the
  cell centre; (b) the same two dimensions of the pose embedding with the
  average pose of each cell as a stick figure; (c), (d) the same with the
  first two principal components of the image / pose embeddings (the pose
  PCs' signs oriented to correlate positively with the image PCs).

  Args:
    image_emb: ``[N, D]`` image embeddings f_I of the training images.
    pose_emb: ``[N, D]`` pose embeddings f_J of the same examples' poses.
    images: ``[N, H, W, 3]``, float in [0, 1] or uint8.
    poses: ``[N, 17, 3]`` mm, camera frame.
    out_dir: folder for ``figure4a.png`` ... ``figure4d.png`` (created).
    grid: cells per side (or ``(nx, ny)``).
    min_count: cells with fewer points get no glyph.
    max_scatter: at most this many points are scattered (a random subset).
    seed: the subset's seed.

  Returns:
    The 4 paths written, a to d.
  """
  panels = figure4_data(image_emb, pose_emb, images, poses, grid=grid,
                        min_count=min_count)
  paths = []
  for p in panels:
    draw = _draw_thumbnail if p["kind"] == "image" else draw_pose
    paths.append(_figure4_panel(
        p["coords"], p["cells"], draw,
        os.path.join(os.fspath(out_dir), f"figure4{p['name']}.png"),
        p["title"], p["axis_labels"], max_scatter, seed))
  return paths
