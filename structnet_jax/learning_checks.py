"""Did the run learn? Train-vs-test errors at the end of each stage, and
loud warnings when a stage did not learn.

Two failure modes are easy to miss in a normal-looking results table:

* stage 1 (pose regression) ends predicting the mean training pose: the
  "Regression net (stage 1)" row then equals the mean-pose row, and every
  later number rests on conv features that encode nothing;
* stage 2 (max-margin) never separates the true pose from the candidates:
  the violated fraction stays at 1 and the max-score pose of a *training*
  image is rarely near its ground truth (the paper's alignment: 97% within
  30 mm).

``stage_errors`` measures the first on a subset of the training and test
images; ``check`` turns both into warnings, which the pipeline writes to the
log, ``learning_report.json`` and the top of ``results.md``.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable

import numpy as np

from structnet_jax import evaluate as evaluate_lib
from structnet_jax import metrics

# Stage 1 has not learned when its pose head is not clearly better than the
# mean training pose (MPJPE on training images, ratio above this).
STAGE1_MAX_RATIO_TO_MEAN = 0.9
# Stage 2 has not learned when the violated fraction (dropout off) at the
# end is not below this share of its value at the start.
STAGE2_MAX_VIOLATED_RATIO = 0.95
ALIGNMENT_MM = metrics.ALIGNMENT_MM


def stage_errors(model, variables, splits: dict[str, Iterable[dict[str, Any]]],
                 candidates: np.ndarray, avg_size: int = 500,
                 max_images: int = 1000, batch_size: int = 128,
                 structnet: bool = True) -> dict[str, dict[str, float]]:
  """MPJPE (mm) of the network on the first ``max_images`` of each split.

  Args:
    model, variables: the network after a stage.
    splits: ``{name: eval batches}`` (``image``, ``pose`` mm, ``mask``,
      ``action``), e.g. ``{"train": ..., "test": ...}``.
    candidates: ``[N, 17, 3]`` mm, the pose space Y.
    avg_size: the A of the StructNet-Avg(A) column (clipped to N).
    max_images: examples used per split (batches are taken until reached).
    batch_size: the batches' size (to know how many to take).
    structnet: also score the candidates (Max, Avg(A), alignment); False
      after stage 1, whose pose embedding is untrained.

  Returns:
    ``{split: {"pred", "mean_pose", "pred_vs_mean"[, "max", "avg",
    "alignment_30mm"], "images"}}``.
  """
  avg = int(min(avg_size, len(candidates)))
  out = {}
  for name, batches in splits.items():
    taken = itertools.islice(batches, max(1, -(-int(max_images) // batch_size)))
    result = evaluate_lib.evaluate(model, variables, taken, candidates,
                                   avg_sizes=(avg,), top_k=1)
    err = {k: v[:max_images] for k, v in result["mpjpe"].items()}
    row = {"pred": float(np.mean(err["StructNet-Pred"])),
           "mean_pose": float(np.mean(err[evaluate_lib.MEAN_POSE])),
           "images": int(len(err["StructNet-Pred"]))}
    row["pred_vs_mean"] = row["pred"] / max(row["mean_pose"], 1e-9)
    if structnet:
      row["max"] = float(np.mean(err["StructNet-Max"]))
      row["avg"] = float(np.mean(err[f"StructNet-Avg({avg})"]))
      row["alignment_30mm"] = float(np.mean(err["StructNet-Max"] <=
                                            ALIGNMENT_MM))
    out[name] = row
  return out


def stage2_trend(history: list[dict[str, Any]], key: str =
                   "violated_fraction_eval") -> tuple[float, float] | None:
  """``(start, end)`` of a stage-2 metric: the mean over the first and the
  last fifth of the logged steps (at least one each); None if not logged."""
  values = [float(r[key]) for r in history
            if r.get("stage") == "stage2" and key in r]
  if not values:
    return None
  n = max(1, len(values) // 5)
  return float(np.mean(values[:n])), float(np.mean(values[-n:]))


def check(errors: dict[str, dict[str, dict[str, float]]],
          history: list[dict[str, Any]]) -> list[str]:
  """Warnings for a run that did not learn (empty when it did).

  Args:
    errors: ``{"stage1": stage_errors(...), "stage2": stage_errors(...)}``
      (either may be missing).
    history: the logged metrics (``metrics.jsonl`` records).
  """
  warnings = []
  s1 = errors.get("stage1", {}).get("train")
  if s1 and s1["pred_vs_mean"] > STAGE1_MAX_RATIO_TO_MEAN:
    warnings.append(
        f"STAGE 1 DID NOT LEARN: its pose head is {s1['pred']:.1f} mm on "
        f"training images against {s1['mean_pose']:.1f} mm for the mean "
        f"training pose (ratio {s1['pred_vs_mean']:.2f} > "
        f"{STAGE1_MAX_RATIO_TO_MEAN}); the conv features that stage 2 and "
        "every StructNet row build on encode (almost) nothing. Try another "
        "seed or the stage-1 settings of experiments/results/learning_study.")
  trend = stage2_trend(history)
  if trend is not None and trend[1] > STAGE2_MAX_VIOLATED_RATIO * trend[0]:
    warnings.append(
        f"STAGE 2 DID NOT LOWER THE VIOLATED FRACTION: {trend[0]:.2f} at the "
        f"start, {trend[1]:.2f} at the end (dropout off, training batches): "
        "the score never separates the true pose from the candidates.")
  s2 = errors.get("stage2", {}).get("train")
  if s2 and s1 and s2["max"] >= s1["pred"]:
    warnings.append(
        f"STAGE 2 IS NO BETTER THAN STAGE 1 ON ITS OWN TRAINING IMAGES: "
        f"StructNet-Max {s2['max']:.1f} mm against the stage-1 pose head's "
        f"{s1['pred']:.1f} mm (alignment {100 * s2['alignment_30mm']:.1f}% "
        f"within {ALIGNMENT_MM:.0f} mm).")
  return warnings


def markdown(errors: dict[str, dict[str, dict[str, float]]],
             warnings: list[str],
             alignment_trend: tuple[float, float] | None = None) -> str:
  """The report's "Did it learn?" section: warnings, then a table of MPJPE
  (mm) by stage and split.

  ``alignment_trend``: ``stage2_trend(history, "heldout_alignment_30mm")``,
  the training probe's alignment over the first and last fifth of stage 2.
  """
  lines = ["## Did it learn?", ""]
  lines += [f"> **WARNING: {w}**\n" for w in warnings] or [
      "Both stages learned by this report's checks (stage-1 pose head below "
      f"{STAGE1_MAX_RATIO_TO_MEAN}x the mean pose on training images; "
      "stage-2 violated fraction falling).", ""]
  if alignment_trend is not None:
    lines += [
        f"Alignment during stage 2 (training batches, max-score pose of all "
        f"of Y within {ALIGNMENT_MM:.0f} mm; `heldout_alignment_30mm` in "
        f"metrics.jsonl): {100 * alignment_trend[0]:.1f}% over the first "
        f"fifth of the logged steps, {100 * alignment_trend[1]:.1f}% over the "
        "last (the paper: 97% after training).", ""]
  lines += ["| stage | split | images | Pred | mean pose | Pred / mean | Max "
            "| Avg | alignment (30 mm) |", "|---|---|---|---|---|---|---|---|---|"]
  for stage, splits in errors.items():
    for split, row in splits.items():
      scored = ("max" in row and
                f"{row['max']:.1f} | {row['avg']:.1f} | "
                f"{100 * row['alignment_30mm']:.1f}%") or "- | - | -"
      lines.append(
          f"| {stage} | {split} | {row['images']} | {row['pred']:.1f} | "
          f"{row['mean_pose']:.1f} | {row['pred_vs_mean']:.2f} | {scored} |")
  return "\n".join(lines) + "\n"
