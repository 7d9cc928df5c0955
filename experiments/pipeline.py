"""One run, end to end: data source, both training stages, evaluation, report.

Used by ``experiments.main`` (absl) and by notebooks/tests directly:

  run = Run.create(config, workdir)
  run.train()
  report = run.evaluate()   # writes results.md / results.json
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from absl import logging
import jax
import numpy as np


from experiments.configs import default as default_config
from structnet_jax import config_utils
from structnet_jax import evaluate as evaluate_lib
from structnet_jax import models
from structnet_jax import scoring
from structnet_jax import trainer

SOURCES = ("blobs", "tfds", "render")
REGRESSION_ROW = "Regression net (stage 1)"
LINKDE_ROW = "LinKDE"
POSE_SPACE_FILE = "pose_space.npy"


def make_source(config):
  """The data source named by ``config.data.source``.

  ``"blobs"``: generated image-pose pairs (``data_pipelines/blobs.py``), no
  files. ``"tfds"``: the ``structnet_h36m`` TFDS dataset of config
  ``config.data.tfds_config`` in ``config.data.data_dir``, rendered (or read
  from the official release) first when it is not there. ``"render"``: the
  same people rendered and augmented in JAX on the device at every step
  (``data_pipelines/device_source.py``; no TensorFlow, for accelerators),
  from ``config.data.motion_path`` (an exp-map ``.npz`` or folder) or, when
  that is empty, from procedural motion.
  """
  d = config.data
  options = {k: d[k] for k in ("frame_step", "sequences_per_action",
                               "frames_per_sequence") if d[k]}
  if d.actions:
    options["actions"] = tuple(a.strip() for a in d.actions.split(",")
                               if a.strip())
  if d.source == "blobs":
    from data_pipelines import blobs  # pylint: disable=g-import-not-at-top
    return blobs.BlobSource.create(
        num_train=d.pose_space_size, num_test=d.num_test,
        image_size=d.image_size, crop=config.model.image_size,
        seed=config.seed)
  if d.source == "tfds":
    from data_pipelines import tfds_source  # pylint: disable=g-import-not-at-top
    if d.image_size != 128:  # the datasets' default crop side
      options["crop_size"] = int(d.image_size)
    return tfds_source.TfdsSource.create(
        d.tfds_config, d.data_dir, crop=config.model.image_size,
        pca_noise_std=d.pca_noise_std, motion_path=d.motion_path or None,
        manual_dir=d.manual_dir or None, **options)
  if d.source == "render":
    from data_pipelines import device_source  # pylint: disable=g-import-not-at-top
    return device_source.RenderSource.create(
        d.motion_path or "procedural", image_size=d.image_size,
        crop=config.model.image_size, pca_noise_std=d.pca_noise_std,
        **options)
  raise ValueError(f"config.data.source={config.data.source!r} is unknown; use "
                   f"one of {SOURCES}.")


@dataclasses.dataclass
class Run:
  config: Any
  workdir: str
  model: models.StructNet
  source: Any

  @classmethod
  def create(cls, config, workdir: str) -> "Run":
    """Checks the config, writes it to ``<workdir>/config.json`` (what
    ``experiments.predict`` reads back) and opens the data source."""
    config_utils.check_config(config, default_config.get_config())
    os.makedirs(workdir, exist_ok=True)
    _write_atomic(os.path.join(workdir, "config.json"),
                  config.to_json_best_effort(indent=2))
    model = models.StructNet.from_config(config.model)
    return cls(config, workdir, model, make_source(config))

  def batch_fn(self, step: int):
    return self.source.train_batch(step, self.config.train.batch_size,
                                   seed=self.config.seed)

  def train(self, stop_after: int | None = None):
    """Both stages; metrics go to ``metrics.jsonl``, the log and TensorBoard
    (``<workdir>/tensorboard``: losses, chosen step sizes, violations)."""
    self.save_pose_space()
    summaries = _summary_writer(self.workdir)
    writer = trainer.MetricWriter(
        self.workdir, extra_writers=[summaries.stage_metrics] if summaries
        else ())
    try:
      return trainer.train_both_stages(self.model, self.config, self.workdir,
                                       self.batch_fn, self.source.pose_space,
                                       writer=writer, stop_after=stop_after)
    finally:
      if summaries:
        summaries.close()

  def save_pose_space(self) -> str:
    """``<workdir>/pose_space.npy``: the candidate poses ``[N, 17, 3]`` mm,
    so ``experiments.predict`` needs only the workdir."""
    path = os.path.join(self.workdir, POSE_SPACE_FILE)
    if not os.path.exists(path):
      tmp = f"{path}.tmp-{os.getpid()}.npy"
      np.save(tmp, np.asarray(self.source.pose_space, np.float32))
      os.replace(tmp, path)
    return path

  def evaluate(self, split: str = "test") -> dict[str, Any]:
    """Evaluates the trained model on ``split`` and writes the report.

    Writes ``results.md`` (Table-1 layout: MPJPE and PA-MPJPE, methods by
    actions, mean (std) mm) and ``results.json`` to the workdir and, with
    ``config.eval.figures``, ``figure3.png`` (MPJPE against A) and
    ``figure4a.png`` ... ``figure4d.png`` (embedding maps of training images
    and poses) with the alignment statistic.
    """
    cfg = self.config
    self.save_pose_space()
    variables = trainer.load_final_variables(self.model, cfg, self.workdir,
                                             self.source.pose_space)
    candidates = np.asarray(self.source.pose_space, np.float32)
    table = scoring.embed_candidate_poses(self.model, variables, candidates)
    result = evaluate_lib.evaluate(
        self.model, variables,
        self.source.eval_batches(cfg.eval.batch_size, split), candidates,
        cfg.eval.avg_sizes, cfg.eval.top_k, table=table,
        baselines=self._baselines(),
        apf_sizes=cfg.eval.apf_sizes,
        apf_key=jax.random.PRNGKey(cfg.seed),
        apf_options={"num_particles": cfg.eval.apf_particles,
                     "num_layers": cfg.eval.apf_layers,
                     "refine_steps": cfg.eval.apf_refine_steps})
    tables = {k: evaluate_lib.summary_table(result, k)
              for k in ("mpjpe", "pa_mpjpe")}
    md = (f"# StructNet results ({split}, {len(result['poses'])} examples)\n\n"
          + evaluate_lib.markdown_table(tables["mpjpe"], "MPJPE (mm)") +
          "\n\n" + evaluate_lib.markdown_table(tables["pa_mpjpe"],
                                               "PA-MPJPE (mm)") + "\n")
    report = {"tables": tables}
    if cfg.eval.figures:
      extra_md, report["figures"] = self._figures(variables, table, result)
      md += extra_md
    _write_eval_summaries(self.workdir, self.config, tables,
                          report.get("figures"))
    _write_atomic(os.path.join(self.workdir, "results.md"), md)
    _write_atomic(os.path.join(self.workdir, "results.json"),
                  json.dumps(report, indent=1, default=float))
    return {"markdown": md, "tables": tables, "result": result,
            "figures": report.get("figures")}

  def _baselines(self) -> dict[str, Any]:
    """The rows besides StructNet's own: ``{name: images -> poses mm}``.

    "Regression net (stage 1)": the network after stage 1 alone, its tanh
    pose head trained by regression only (the DconvMP-HML-style baseline;
    StructNet-Pred is the same head after max-margin training). "LinKDE":
    HOG + random Fourier features + ridge regression with a KDE pre-image
    (``structnet_jax/linkde.py``), fitted here on the training split.
    """
    cfg = self.config
    rows = {}
    if cfg.eval.regression_row and (cfg.stage1.num_steps > 0 or
                                    cfg.stage1.init_from):
      stage1 = trainer.load_stage1_variables(self.model, cfg, self.workdir,
                                             self.source.pose_space)
      pose_head = jax.jit(lambda x: self.model.apply(
          stage1, x, method=models.StructNet.predict_pose))
      rows[REGRESSION_ROW] = pose_head
    if cfg.eval.linkde:
      rows[LINKDE_ROW] = self._fit_linkde().predict
    return rows

  def _fit_linkde(self):
    from structnet_jax import linkde  # pylint: disable=g-import-not-at-top
    cfg = self.config
    batch = int(cfg.eval.batch_size)
    max_batches = max(1, -(-int(cfg.eval.linkde_train_images) // batch))
    logging.info("fitting the LinKDE baseline on up to %d training images",
                 max_batches * batch)
    model = linkde.LinKDE(cell_size=int(cfg.eval.linkde_cell_size))
    return model.fit_from_batches(
        self.source.eval_batches(batch, "train"),
        jax.random.PRNGKey(cfg.seed + 1),
        num_features=int(cfg.eval.linkde_features),
        candidates=np.asarray(self.source.pose_space, np.float32),
        max_batches=max_batches)

  def _figures(self, variables, table, result) -> tuple[str, dict[str, Any]]:
    """Figure 3, Figure 4 a-d and the alignment statistic (section 6)."""
    from experiments import figures  # pylint: disable=g-import-not-at-top
    cfg = self.config
    candidates = np.asarray(self.source.pose_space, np.float32)
    a_values = figures.default_a_values(
        min(len(candidates), int(cfg.eval.figure3_max_a)))
    curve = figures.mpjpe_vs_a(result["image_embeddings"], candidates,
                               result["poses"], a_values, table=table)
    fig3 = figures.plot_mpjpe_vs_a(curve,
                                   os.path.join(self.workdir, "figure3.png"))
    # Training images: their embeddings (Figure 4a, c) and the alignment.
    images, poses, embeddings = [], [], []
    embed = jax.jit(lambda v, x: self.model.apply(
        v, x, method=models.StructNet.embed_image))
    wanted = int(cfg.eval.figure4_num_images)
    for batch in self.source.eval_batches(cfg.eval.batch_size, "train"):
      keep = np.asarray(batch["mask"], bool)
      images.append(np.asarray(batch["image"])[keep])
      poses.append(np.asarray(batch["pose"], np.float32)[keep])
      embeddings.append(np.asarray(embed(variables, batch["image"]))[keep])
      if sum(len(p) for p in poses) >= wanted:
        break
    images = np.concatenate(images)[:wanted]
    poses = np.concatenate(poses)[:wanted]
    embeddings = np.concatenate(embeddings)[:wanted]
    pose_emb = np.asarray(scoring.embed_candidate_poses(self.model, variables,
                                                        poses))
    aligned = figures.alignment_fraction(embeddings, table, candidates, poses)
    fig4 = figures.plot_figure4(embeddings, pose_emb, np.clip(images, 0, 1),
                                poses, self.workdir)
    md = ("\n## Figure 3: MPJPE of StructNet-Avg(A) against A\n\n"
          "| A | " + " | ".join(str(a) for a in curve) + " |\n|---|" +
          "---|" * len(curve) + "\n| MPJPE (mm) | " +
          " | ".join(f"{v:.1f}" for v in curve.values()) + " |\n\n"
          f"![Figure 3]({os.path.basename(fig3)})\n\n"
          "## Figure 4: the image-pose embedding\n\n"
          f"Alignment: {100 * aligned:.1f}% of {len(poses)} training images "
          "have their max-score pose within 30 mm (MPJPE) of the ground "
          "truth (paper: 97%).\n\n" +
          "".join(f"![Figure 4{c}]({os.path.basename(p)})\n"
                  for c, p in zip("abcd", fig4)))
    return md, {"figure3": {int(a): float(v) for a, v in curve.items()},
                "alignment_fraction_30mm": float(aligned),
                "alignment_images": int(len(poses))}


def _summary_writer(workdir: str):
  """A TensorBoard writer in ``<workdir>/tensorboard``, or None (logged) when
  the tensorboard package is missing."""
  from structnet_jax import tensorboard  # pylint: disable=g-import-not-at-top
  try:
    return tensorboard.SummaryWriter(os.path.join(workdir, "tensorboard"))
  except ImportError as e:
    logging.warning("no TensorBoard summaries: %s", e)
    return None


def _write_eval_summaries(workdir: str, config, tables, figures) -> None:
  """Eval MPJPE / PA-MPJPE of every method (``eval/<metric>/<method>``), the
  Figure 3 curve and the alignment statistic, at the last training step."""
  summaries = _summary_writer(workdir)
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
  summaries.close()


def _write_atomic(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` via a temporary file and ``os.replace``."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)
