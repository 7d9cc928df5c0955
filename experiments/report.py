"""A run's report: ``results.md`` / ``results.json``, ``learning_report.json``
and the TensorBoard summaries of an evaluation.

``experiments/pipeline.py`` computes (evaluation, learning checks, figures);
this module turns the numbers into the report and writes it, through
``structnet_jax/files.py`` (atomic, local or ``gs://``), on the main process
only (``distributed.is_main_process()``):

* ``results.md``: a header naming the split and its size, an optional note
  on the data (an evaluation on other data), the "Did it learn?" section,
  the Table-1 layout for MPJPE and PA-MPJPE (``evaluate.markdown_table``:
  methods by actions, mean (std) mm) and, with figures, the Figure 3 curve
  as a table and the Figure 3 / 4 images;
* ``results.json``: ``{"tables": {"mpjpe": ..., "pa_mpjpe": ...},
  "figures": {"figure3": {A: mm}, "alignment_fraction_30mm": ...,
  "alignment_images": ...}}`` (``figures`` only with figures);
* ``learning_report.json``: the learning checks' errors, warnings and the
  violated-fraction trend;
* TensorBoard (``<dir>/tensorboard``): ``eval/<metric>/<method>``, the
  Figure 3 curve, the alignment, the figures as images, the config as text,
  and ``learning/<stage>/<split>/<error>``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging

from structnet_jax import distributed
from structnet_jax import evaluate as evaluate_lib
from structnet_jax import files

RESULTS_MD = "results.md"
RESULTS_JSON = "results.json"
LEARNING_REPORT_JSON = "learning_report.json"
FIGURES = ("figure3", "figure4a", "figure4b", "figure4c", "figure4d")


def summary_writer(workdir: str):
  """A TensorBoard writer in ``<workdir>/tensorboard``, or None on processes
  other than the main one, or (logged) when the tensorboard package is
  missing."""
  from structnet_jax import tensorboard  # pylint: disable=g-import-not-at-top
  if not distributed.is_main_process():
    return None
  try:
    return tensorboard.SummaryWriter(os.path.join(workdir, "tensorboard"))
  except ImportError as e:
    logging.warning("no TensorBoard summaries: %s", e)
    return None


def summary_tables(result: dict[str, Any]) -> dict[str, Any]:
  """``{"mpjpe": table, "pa_mpjpe": table}`` of an ``evaluate.evaluate``
  result (``evaluate.summary_table``: method -> action -> mean/std mm)."""
  return {k: evaluate_lib.summary_table(result, k)
          for k in ("mpjpe", "pa_mpjpe")}


def results_markdown(split: str, num_examples: int, tables: dict[str, Any],
                     preface: str = "") -> str:
  """The top of ``results.md``: header, ``preface`` (data note, "Did it
  learn?"), the MPJPE and PA-MPJPE tables (mm)."""
  return (f"# StructNet results ({split}, {num_examples} examples)\n\n"
          + preface
          + evaluate_lib.markdown_table(tables["mpjpe"], "MPJPE (mm)")
          + "\n\n"
          + evaluate_lib.markdown_table(tables["pa_mpjpe"], "PA-MPJPE (mm)")
          + "\n")


def data_note(data, trained_data, workdir: str, num_candidates: int) -> str:
  """For an evaluation on other data, a line naming the data evaluated
  (``data``, a config's data section) and trained on (``trained_data``)."""
  what = lambda c: (f"`{c.tfds_config}`" if c.source == "tfds" else
                    f"`{c.source}`") + (f" (`{c.motion_path}`)"
                                        if c.motion_path else "")
  return (f"Evaluated on {what(data)} data, test split; the model of "
          f"`{workdir}` was trained on {what(trained_data)} data and scores "
          f"its {num_candidates} training poses.\n\n")


def figures_markdown(curve: dict[int, float], figure3_path: str,
                     aligned: float, num_images: int,
                     figure4_paths: list[str]) -> str:
  """The figures' section of ``results.md``: the Figure 3 curve (``{A: mean
  MPJPE mm}``) as a table and image, the alignment statistic (fraction of
  ``num_images`` training images) and the four Figure 4 panels."""
  return ("\n## Figure 3: MPJPE of StructNet-Avg(A) against A\n\n"
          "| A | " + " | ".join(str(a) for a in curve) + " |\n|---|" +
          "---|" * len(curve) + "\n| MPJPE (mm) | " +
          " | ".join(f"{v:.1f}" for v in curve.values()) + " |\n\n"
          f"![Figure 3]({os.path.basename(figure3_path)})\n\n"
          "## Figure 4: the image-pose embedding\n\n"
          f"Alignment: {100 * aligned:.1f}% of {num_images} training images "
          "have their max-score pose within 30 mm (MPJPE) of the ground "
          "truth (paper: 97%).\n\n" +
          "".join(f"![Figure 4{c}]({os.path.basename(p)})\n"
                  for c, p in zip("abcd", figure4_paths)))


def figures_summary(curve: dict[int, float], aligned: float,
                    num_images: int) -> dict[str, Any]:
  """The ``figures`` entry of ``results.json``."""
  return {"figure3": {int(a): float(v) for a, v in curve.items()},
          "alignment_fraction_30mm": float(aligned),
          "alignment_images": int(num_images)}


def write_results(out_dir: str, config, markdown: str,
                  report: dict[str, Any]) -> None:
  """Writes ``results.md``, ``results.json`` (``report``: ``tables`` and
  optional ``figures``) and the evaluation's TensorBoard summaries to
  ``out_dir`` (main process only)."""
  if not distributed.is_main_process():
    return
  write_eval_summaries(out_dir, config, report["tables"], report.get("figures"))
  files.write_atomic(os.path.join(out_dir, RESULTS_MD), markdown)
  files.write_atomic(os.path.join(out_dir, RESULTS_JSON),
                     json.dumps(report, indent=1, default=float))


def write_eval_summaries(workdir: str, config, tables, figures) -> None:
  """Eval MPJPE / PA-MPJPE of every method (``eval/<metric>/<method>``), the
  Figure 3 curve and the alignment statistic, at the last training step; the
  figures' PNGs as images (``figures/<name>``) and the config as text."""
  summaries = summary_writer(workdir)
  if summaries is None:
    return
  values = {f"eval/{key}/{method}": cells["All"]["mean"]
            for key, table in tables.items() for method, cells in table.items()}
  if figures:
    values["eval/alignment_fraction_30mm"] = figures["alignment_fraction_30mm"]
  step = int(config.stage1.num_steps) + int(config.stage2.num_steps)
  summaries.scalars(step, values)
  for a, mpjpe in ((figures or {}).get("figure3") or {}).items():
    summaries.scalars(int(a), {"eval/figure3_mpjpe_vs_A": mpjpe})
  for name in FIGURES:
    path = os.path.join(workdir, name + ".png")
    if figures and files.exists(path):
      summaries.png(step, f"figures/{name}", files.read_bytes(path))
  summaries.text(step, "config", "```json\n" + config.to_json_best_effort(
      indent=2) + "\n```")
  summaries.close()


def write_learning_report(out_dir: str, config,
                          report: dict[str, Any]) -> None:
  """Writes ``learning_report.json`` (``report``: ``errors``, ``warnings``,
  the violated-fraction trend) on the main process, and the errors as
  TensorBoard scalars ``learning/<stage>/<split>/<error>`` at the last
  training step."""
  if distributed.is_main_process():
    files.write_atomic(os.path.join(out_dir, LEARNING_REPORT_JSON),
                       json.dumps(report, indent=1))
  summaries = summary_writer(out_dir)
  if summaries is not None:
    step = int(config.stage1.num_steps) + int(config.stage2.num_steps)
    summaries.scalars(step, {
        f"learning/{stage}/{sp}/{k}": v
        for stage, rows in report["errors"].items()
        for sp, row in rows.items() for k, v in row.items()})
    summaries.close()
