"""One run, end to end: data source, both training stages, evaluation, report.

The orchestration only: the source comes from ``data_pipelines/sources/core.py``
(``sources.from_config``), training from ``structnet_jax/trainer.py``, the
numbers from ``structnet_jax/evaluate.py`` / ``learning_checks.py`` /
``experiments/figures.py``, and the files of the report are written by
``experiments/report.py``.

Used by ``experiments.main`` (absl) and by notebooks/tests directly:

  run = Run.create(config, workdir)
  run.train()
  report = run.evaluate()   # writes results.md / results.json

Evaluating a trained workdir (``Run.create(config, workdir,
mode="evaluate")``) takes the network and its training from the workdir's
``config.json`` and only ``eval`` (and ``data``) from ``config``. When
``config.data`` names other data than the model was trained on (e.g. a
positions file), the model is evaluated on that data's test split against
the candidate poses it was trained with (``pose_space.npy``), and the report
goes to ``<workdir>/eval/<data name>/``, leaving the run's own files as they
are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np


from data_pipelines.sources import core as sources
from experiments.configs import default as default_config
from experiments import report as report_lib
from structnet_jax import config_utils
from structnet_jax import distributed
from structnet_jax import evaluate as evaluate_lib
from structnet_jax import files
from structnet_jax import learning_checks
from structnet_jax import models
from structnet_jax import progress
from structnet_jax import scoring
from structnet_jax import sharding
from structnet_jax import trainer
from structnet_jax import xla_cpu

REGRESSION_ROW = "Regression net (stage 1)"
LINKDE_ROW = "LinKDE"
EVAL_DIRNAME = "eval"
# Data fields that do not change which examples a split holds.
_DATA_FIELDS_NOT_IN_IDENTITY = ("data_dir", "pca_noise_std", "hue_jitter_deg",
                                "saturation_jitter")


@dataclasses.dataclass
class Run:
  """A run: its config, workdir, network and data.

  Attributes:
    config: the run's config (when evaluating a trained workdir: the trained
      config with the given ``eval`` and, for other data, ``data``).
    workdir: checkpoints, ``config.json``, ``pose_space.npy``, reports.
    model: the ``StructNet`` of ``config.model``.
    source: the data evaluated (and, unless ``trained_config``, trained on).
    out_dir: where reports go: ``workdir``, or ``workdir/eval/<name>`` for
      other data.
    trained_config: for other data, the config the model was trained with
      (its ``data`` opens the training source when LinKDE or Figure 4 need
      training images); None otherwise.
  """
  config: Any
  workdir: str
  model: models.StructNet
  source: Any
  out_dir: str = ""
  trained_config: Any = None
  _train_source: Any = dataclasses.field(default=None, repr=False)
  _candidates: Any = dataclasses.field(default=None, repr=False)

  def __post_init__(self):
    self.out_dir = self.out_dir or self.workdir

  @classmethod
  def create(cls, config, workdir: str, *,
             mode: str = "train_and_evaluate") -> "Run":
    """Checks the config and opens the data source.

    For training, writes the config to ``<workdir>/config.json`` (what
    ``experiments.predict`` and evaluations read back). With ``mode=
    "evaluate"`` on a workdir that has one, see the module docstring.
    """
    config_utils.check_config(config, default_config.get_config())
    config_utils.check_values(config)
    files.makedirs(workdir)
    saved = os.path.join(workdir, "config.json")
    if mode == "evaluate" and files.exists(saved):
      return cls._for_evaluation(config, workdir, saved)
    if distributed.is_main_process():
      files.write_atomic(saved, config.to_json_best_effort(indent=2))
    model = models.StructNet.from_config(config.model)
    return cls(config, workdir, model, sources.from_config(config))

  @classmethod
  def _for_evaluation(cls, config, workdir: str, saved: str) -> "Run":
    """A trained workdir evaluated with ``config``'s eval (and data)."""
    trained = config_utils.config_from_json(saved, default_config.get_config())
    given, saved_fields = (config_utils.flatten(config),
                           config_utils.flatten(trained))
    ignored = sorted(k for k, v in given.items()
                     if not k.startswith(("data.", "eval."))
                     and saved_fields.get(k) != v)
    if ignored:
      logging.warning(
          "evaluating the model of %s as it was trained: ignoring %s of the "
          "given config (the workdir's config.json has %s)", workdir,
          ", ".join(f"{k}={given[k]!r}" for k in ignored),
          ", ".join(f"{k}={saved_fields[k]!r}" for k in ignored))
    effective = ml_collections.ConfigDict(trained.to_dict())
    effective.eval = ml_collections.ConfigDict(config.eval.to_dict())
    model = models.StructNet.from_config(effective.model)
    data = ml_collections.ConfigDict(config.data.to_dict())
    if _data_identity(data) == _data_identity(trained.data):
      effective.data = data  # the same examples (data_dir may have moved)
      return cls(effective, workdir, model, sources.from_config(effective))
    if data.image_size != trained.data.image_size:
      logging.warning("config.data.image_size=%d changed to %d, the crop side "
                      "the model was trained on", data.image_size,
                      trained.data.image_size)
      data.image_size = trained.data.image_size
    effective.data = data
    out_dir = os.path.join(workdir, EVAL_DIRNAME, _data_name(data))
    files.makedirs(out_dir)
    if distributed.is_main_process():
      files.write_atomic(os.path.join(out_dir, "eval_config.json"),
                         effective.to_json_best_effort(indent=2))
    logging.info("evaluating the model trained on %s data on %s data; the "
                 "report goes to %s", trained.data.tfds_config,
                 data.tfds_config, out_dir)
    return cls(effective, workdir, model, sources.from_config(effective),
               out_dir=out_dir, trained_config=trained)

  @property
  def train_source(self):
    """The data the model was trained on: ``source``, or for an evaluation
    on other data the trained run's source (opened on first use)."""
    if self.trained_config is None:
      return self.source
    if self._train_source is None:
      logging.info("opening the training data of %s", self.workdir)
      self._train_source = sources.from_config(self.trained_config)
    return self._train_source

  @property
  def candidates(self) -> np.ndarray:
    """The candidate pose space Y ``[N, 17, 3]`` float32 mm of the model:
    its training poses (``<workdir>/pose_space.npy`` when evaluating other
    data)."""
    if self._candidates is None:
      path = os.path.join(self.workdir, sources.POSE_SPACE_FILENAME)
      if self.trained_config is not None and files.exists(path):
        space = np.load(io.BytesIO(files.read_bytes(path)), allow_pickle=False)
      else:
        space = self.train_source.pose_space
      self._candidates = np.asarray(space, np.float32)
    return self._candidates

  def batch_fn(self, step: int):
    """This process's rows of the global training batch of ``step``
    (``distributed.process_rows``; all of it on one process), colour-jittered
    when ``config.data.hue_jitter_deg`` or ``saturation_jitter`` is set
    (``augment.colour_jitter_step``: a function of seed, step and global row,
    so resumed and multi-process runs see the same images)."""
    size = int(self.config.train.batch_size)
    batch = distributed.process_rows(
        self.source.train_batch(step, size, seed=self.config.seed), size)
    d = self.config.data
    if d.hue_jitter_deg or d.saturation_jitter:
      from data_pipelines.sources import augment  # pylint: disable=g-import-not-at-top
      rows = len(batch["image"])
      first = (0 if rows == size else
               jax.process_index() * (size // jax.process_count()))
      image = augment.colour_jitter_step(
          int(self.config.seed), int(step), first, batch["image"],
          hue_deg=float(d.hue_jitter_deg),
          saturation=float(d.saturation_jitter))
      if isinstance(batch["image"], np.ndarray):  # host batches stay on host
        image = np.asarray(image)
      batch = dict(batch, image=image)
    return batch

  def train(self, stop_after: int | None = None):
    """Both stages; metrics go to ``metrics.jsonl``, the log and TensorBoard
    (``<workdir>/tensorboard``: losses, chosen step sizes, violations)."""
    if self.trained_config is not None:
      raise ValueError(
          f"{self.workdir} is opened to evaluate its model on other data; "
          "train with the config it was trained with (mode train).")
    if len(self.source.pose_space) == 0:
      raise ValueError(
          "the dataset has no training examples (an evaluation-only dataset, "
          "config.data.train_subjects='none'); train on data with a train "
          "split, then evaluate this one with --mode=evaluate.")
    self.save_pose_space()
    summaries = report_lib.summary_writer(self.workdir)
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
    path = os.path.join(self.workdir, sources.POSE_SPACE_FILENAME)
    if not files.exists(path) and distributed.is_main_process():
      files.write_atomic(path, lambda f: np.save(f, self.candidates))
    return path

  def evaluate(self, split: str = "test") -> dict[str, Any]:
    """Evaluates the trained model on ``split`` and writes the report.

    Writes ``results.md`` (Table-1 layout: MPJPE and PA-MPJPE, methods by
    actions, mean (std) mm) and ``results.json`` to ``out_dir`` and, with
    ``config.eval.figures``, ``figure3.png`` (MPJPE against A) and
    ``figure4a.png`` ... ``figure4d.png`` (embedding maps of training images
    and poses) with the alignment statistic, and ``stage2_curves.png`` (the
    alignment, StructNet-Max on training images, the violated fraction and
    the score gap against stage-2 steps, from ``metrics.jsonl``).
    """
    cfg = self.config
    if self.trained_config is None:
      self.save_pose_space()
    candidates = self.candidates
    variables = trainer.load_final_variables(self.model, cfg, self.workdir,
                                             candidates)
    learned_md = ""
    if self.trained_config is None and cfg.eval.check_images > 0:
      learned_md = self.learning_report(variables, split)["markdown"] + "\n"
    table = scoring.embed_candidate_poses(self.model, variables, candidates)
    shard = bool(cfg.train.shard_pose_space)
    result = evaluate_lib.evaluate(
        self.model, variables,
        self.source.eval_batches(cfg.eval.batch_size, split), candidates,
        cfg.eval.avg_sizes, cfg.eval.top_k, table=table,
        # This process's devices; several processes split the batches.
        mesh=sharding.make_mesh(jax.local_devices()) if shard else None,
        shard_candidates=shard,
        num_examples=self.source.num_examples(split),
        baselines=self._baselines(),
        apf_sizes=cfg.eval.apf_sizes,
        apf_key=jax.random.PRNGKey(cfg.seed),
        apf_options={"num_particles": cfg.eval.apf_particles,
                     "num_layers": cfg.eval.apf_layers,
                     "refine_steps": cfg.eval.apf_refine_steps})
    tables = report_lib.summary_tables(result)
    md = report_lib.results_markdown(split, len(result["poses"]), tables,
                                     preface=self._data_note() + learned_md)
    report = {"tables": tables}
    if cfg.eval.figures:
      extra_md, report["figures"] = self._figures(variables, table, result)
      md += extra_md
    report_lib.write_results(self.out_dir, self.config, md, report)
    return {"markdown": md, "tables": tables, "result": result,
            "figures": report.get("figures")}

  def learning_report(self, variables, split: str = "test") -> dict[str, Any]:
    """Whether each stage learned: train- vs ``split``-set MPJPE after stage 1
    (pose head) and stage 2 (Max, Avg(A), Pred, alignment on training
    images) on ``eval.check_images`` images each, and warnings
    (``structnet_jax/learning_checks.py``) logged loudly and written to
    ``learning_report.json``, TensorBoard and the top of ``results.md``."""
    cfg = self.config
    n, bs = int(cfg.eval.check_images), int(cfg.eval.batch_size)
    avg = 500 if 500 in cfg.eval.avg_sizes else max(cfg.eval.avg_sizes)
    splits = lambda: {"train": self.source.eval_batches(bs, "train"),
                      split: self.source.eval_batches(bs, split)}
    errors = {}
    if cfg.stage1.num_steps > 0 or cfg.stage1.init_from:
      stage1 = trainer.load_stage1_variables(self.model, cfg, self.workdir,
                                             self.candidates)
      errors["stage1"] = learning_checks.stage_errors(
          self.model, stage1, splits(), self.candidates, avg, n, bs,
          structnet=False)
    errors["stage2"] = learning_checks.stage_errors(
        self.model, variables, splits(), self.candidates, avg, n, bs)
    history = trainer.read_metrics(self.workdir)
    warnings = learning_checks.check(errors, history)
    for w in warnings:
      logging.warning("%s\n%s\n%s", "!" * 72, w, "!" * 72)
    trend = learning_checks.stage2_trend(history)
    aligned = learning_checks.stage2_trend(history, "heldout_alignment_30mm")
    report = {"errors": errors, "warnings": warnings,
              "violated_fraction_eval_start_end": trend,
              "alignment_30mm_start_end": aligned}
    report_lib.write_learning_report(self.out_dir, cfg, report)
    report["markdown"] = learning_checks.markdown(errors, warnings, aligned)
    return report

  def _data_note(self) -> str:
    """For other data, a line naming the data evaluated and trained on."""
    if self.trained_config is None:
      return ""
    return report_lib.data_note(self.config.data, self.trained_config.data,
                                self.workdir, len(self.candidates))

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
                                             self.candidates)
      pose_head = xla_cpu.network_jit(lambda x: self.model.apply(
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
        self.train_source.eval_batches(batch, "train"),
        jax.random.PRNGKey(cfg.seed + 1),
        num_features=int(cfg.eval.linkde_features),
        candidates=self.candidates, max_batches=max_batches)

  def _figures(self, variables, table, result) -> tuple[str, dict[str, Any]]:
    """Figure 3, Figure 4 a-d and the alignment statistic (section 6)."""
    from experiments import figures  # pylint: disable=g-import-not-at-top
    cfg = self.config
    candidates = self.candidates
    a_values = figures.default_a_values(
        min(len(candidates), int(cfg.eval.figure3_max_a)))
    curve = figures.mpjpe_vs_a(result["image_embeddings"], candidates,
                               result["poses"], a_values, table=table)
    main = distributed.is_main_process()  # the others compute, not draw
    fig3 = os.path.join(self.out_dir, "figure3.png")
    if main:
      figures.plot_mpjpe_vs_a(curve, fig3)
    # Training images: their embeddings (Figure 4a, c) and the alignment.
    images, poses, embeddings = [], [], []
    embed = xla_cpu.network_jit(lambda v, x: self.model.apply(
        v, x, method=models.StructNet.embed_image))
    wanted = int(cfg.eval.figure4_num_images)
    counter = progress.Progress("figures: Figure 4 training images",
                                total=wanted)
    for batch in self.train_source.eval_batches(cfg.eval.batch_size, "train"):
      keep = np.asarray(batch["mask"], bool)
      images.append(np.asarray(batch["image"])[keep])
      poses.append(np.asarray(batch["pose"], np.float32)[keep])
      embeddings.append(np.asarray(embed(variables, batch["image"]))[keep])
      counter.update(min(int(keep.sum()), wanted - counter.count))
      if sum(len(p) for p in poses) >= wanted:
        break
    counter.done()
    images = np.concatenate(images)[:wanted]
    poses = np.concatenate(poses)[:wanted]
    embeddings = np.concatenate(embeddings)[:wanted]
    pose_emb = np.asarray(scoring.embed_candidate_poses(self.model, variables,
                                                        poses))
    aligned = figures.alignment_fraction(embeddings, table, candidates, poses)
    fig4 = (figures.plot_figure4(embeddings, pose_emb, np.clip(images, 0, 1),
                                 poses, self.out_dir) if main else
            [os.path.join(self.out_dir, f"figure4{c}.png") for c in "abcd"])
    markdown = report_lib.figures_markdown(curve, fig3, aligned, len(poses),
                                           fig4)
    stage2 = figures.stage2_curves(trainer.read_metrics(self.workdir))
    if stage2:
      path = os.path.join(self.out_dir, "stage2_curves.png")
      if main:
        figures.plot_stage2_curves(stage2, path)
      markdown += ("\n## Stage 2 against steps (training images)\n\n"
                   f"![Stage 2]({os.path.basename(path)})\n")
    return markdown, report_lib.figures_summary(curve, aligned, len(poses))


def _data_identity(data) -> dict[str, Any]:
  """The fields of ``config.data`` that decide which examples it holds."""
  return {k: v for k, v in config_utils.flatten(data).items()
          if k not in _DATA_FIELDS_NOT_IN_IDENTITY}


def _data_name(data) -> str:
  """A folder name for evaluations on ``data``: kind, file, options hash."""
  kind = data.tfds_config if data.source == "tfds" else data.source
  stem = os.path.splitext(os.path.basename(
      data.motion_path.rstrip("/")))[0] if data.motion_path else ""
  digest = hashlib.sha1(json.dumps(_data_identity(data), sort_keys=True,
                                   default=repr).encode()).hexdigest()[:8]
  name = "-".join(p for p in (kind, stem, digest) if p)
  return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
