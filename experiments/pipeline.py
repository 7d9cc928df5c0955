"""One run, end to end: data source, both training stages, evaluation, report.

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


from data_pipelines import sources
from experiments.configs import default as default_config
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

SOURCES = ("blobs", "tfds", "render")
REGRESSION_ROW = "Regression net (stage 1)"
LINKDE_ROW = "LinKDE"
EVAL_DIRNAME = "eval"
# Data fields that do not change which examples a split holds.
_DATA_FIELDS_NOT_IN_IDENTITY = ("data_dir", "pca_noise_std")


def make_source(config):
  """The data source named by ``config.data.source``.

  ``"blobs"``: generated image-pose pairs (``data_pipelines/blobs.py``), no
  files. ``"tfds"``: the ``structnet_h36m`` TFDS dataset of config
  ``config.data.tfds_config`` (procedural, h36m_motion, positions or
  h36m_release) in ``config.data.data_dir``, rendered from the motion or
  joint positions of ``config.data.motion_path`` (or read from the official
  release in ``config.data.manual_dir``) first when it is not there.
  ``"render"``: the same people rendered and augmented in JAX on the device
  at every step (``data_pipelines/device_source.py``; no TensorFlow, for
  accelerators), from ``config.data.motion_path`` (an exp-map ``.npz`` or
  folder, or a joint-positions ``.npz``) or, when that is empty, from
  procedural motion.
  """
  d = config.data
  options = {k: d[k] for k in ("frame_step", "sequences_per_action",
                               "frames_per_sequence", "looks_per_subject")
             if d[k]}
  if d.actions:
    options["actions"] = _names(d.actions)
  for field in ("train_subjects", "test_subjects"):
    if d[field].strip():
      options[field] = (() if d[field].strip().lower() == "none"
                        else _names(d[field]))
  options.update(validation_split(d))
  positions_options = {k: d[k] for k in ("placement", "random_yaw",
                                         "rig_subject") if d[k]}
  if positions_options and not (
      d.source == "tfds" and d.tfds_config == "positions"
      or d.source == "render" and d.motion_path and _holds_positions(
          d.motion_path)):
    raise ValueError(
        f"config.data.{'/'.join(positions_options)} only apply to joint "
        "positions (config.data.tfds_config='positions', or source 'render' "
        f"with a positions file), not to {d.source!r} / {d.tfds_config!r} "
        "data; leave them empty.")
  if d.source == "blobs":
    if config.model.detection_grid:
      raise ValueError(
          "config.model.detection_grid > 0 trains stage 1 with joint "
          "detection, which needs 2D joints; the 'blobs' toy data has none. "
          "Set --config.model.detection_grid=0.")
    if d.looks_per_subject > 1:
      raise ValueError(
          "config.data.looks_per_subject dresses rendered people (source "
          "'tfds' or 'render'); the 'blobs' toy data has none. Leave it at 0.")
    if d.validation_subjects.strip():
      raise ValueError(
          "config.data.validation_subjects needs data with subjects (source "
          "'tfds' or 'render'); the 'blobs' toy data has none. Leave it empty.")
    from data_pipelines import blobs  # pylint: disable=g-import-not-at-top
    return blobs.BlobSource.create(
        num_train=d.pose_space_size, num_test=d.num_test,
        image_size=d.image_size, crop=config.model.image_size,
        seed=config.seed)
  if d.source == "tfds":
    from data_pipelines import tfds_source  # pylint: disable=g-import-not-at-top
    if d.image_size != 128:  # the datasets' default crop side
      options["crop_size"] = int(d.image_size)
    options.update(positions_options)
    if d.tfds_config in ("h36m_motion", "positions") and not d.motion_path:
      raise ValueError(
          f"config.data.tfds_config={d.tfds_config!r} renders motion from a "
          "file, but config.data.motion_path is empty. Pass it on the command "
          "line: --config.data.motion_path=/path/to/"
          + ("h36m_expmap_25fps.npz" if d.tfds_config == "h36m_motion"
             else "positions.npz ('{subject}/{action}/{subaction}' -> "
             "[T, 17, 3] mm, z up)") + ".")
    return tfds_source.TfdsSource.create(
        d.tfds_config, d.data_dir, crop=config.model.image_size,
        pca_noise_std=d.pca_noise_std, motion_path=d.motion_path or None,
        manual_dir=d.manual_dir or None, **options)
  if d.source == "render":
    from data_pipelines import device_source  # pylint: disable=g-import-not-at-top
    return device_source.RenderSource.create(
        d.motion_path or "procedural", image_size=d.image_size,
        crop=config.model.image_size, pca_noise_std=d.pca_noise_std,
        **options, **positions_options)
  raise ValueError(f"config.data.source={config.data.source!r} is unknown; use "
                   f"one of {SOURCES}.")


# The Human3.6M protocol's subjects (tfds_builder / device_source defaults).
PROTOCOL_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
PROTOCOL_TEST_SUBJECTS = ("S9", "S11")


def validation_split(data) -> dict[str, tuple[str, ...]]:
  """The subjects of a validation run (``config.data.validation_subjects``).

  Settings are chosen on a validation split and the test subjects are
  reported once, for the final settings. With ``validation_subjects = "S8"``
  the run trains on the training subjects without S8 and evaluates on S8
  (its "test" split); the test subjects (S9, S11 by default) are not in the
  data at all.

  Returns:
    ``{}`` when no validation subjects are set, else ``{"train_subjects":
    ..., "test_subjects": validation subjects}``.

  Raises:
    ValueError: a validation subject is a test subject, is not a training
      subject, or leaves no training subject.
  """
  val = _names(data.validation_subjects)
  if not val:
    return {}
  train = _names(data.train_subjects) or PROTOCOL_TRAIN_SUBJECTS
  test = _names(data.test_subjects) or PROTOCOL_TEST_SUBJECTS
  leaked = sorted(set(val) & set(test))
  if leaked:
    raise ValueError(
        f"config.data.validation_subjects={data.validation_subjects!r} "
        f"includes test subject(s) {leaked}: settings chosen on them would "
        "tune on the test set. Hold out training subjects (e.g. S8).")
  unknown = sorted(set(val) - set(train))
  if unknown:
    raise ValueError(
        f"config.data.validation_subjects: {unknown} are not training "
        f"subjects ({', '.join(train)}); validate on one of those.")
  rest = tuple(s for s in train if s not in val)
  if not rest:
    raise ValueError(
        "config.data.validation_subjects holds out every training subject; "
        "keep at least one to train on.")
  return {"train_subjects": rest, "test_subjects": val}


def _holds_positions(path: str) -> bool:
  from data_pipelines import position_motion  # pylint: disable=g-import-not-at-top
  return position_motion.holds_positions(os.path.expanduser(path))


def _names(text: str) -> tuple[str, ...]:
  """``"S1, S5"`` -> ``("S1", "S5")``."""
  return tuple(n.strip() for n in text.split(",") if n.strip())


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
    return cls(config, workdir, model, make_source(config))

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
      return cls(effective, workdir, model, make_source(effective))
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
    return cls(effective, workdir, model, make_source(effective),
               out_dir=out_dir, trained_config=trained)

  @property
  def train_source(self):
    """The data the model was trained on: ``source``, or for an evaluation
    on other data the trained run's source (opened on first use)."""
    if self.trained_config is None:
      return self.source
    if self._train_source is None:
      logging.info("opening the training data of %s", self.workdir)
      self._train_source = make_source(self.trained_config)
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
    (``distributed.process_rows``; all of it on one process)."""
    size = int(self.config.train.batch_size)
    return distributed.process_rows(
        self.source.train_batch(step, size, seed=self.config.seed), size)

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
    and poses) with the alignment statistic.
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
    tables = {k: evaluate_lib.summary_table(result, k)
              for k in ("mpjpe", "pa_mpjpe")}
    md = (f"# StructNet results ({split}, {len(result['poses'])} examples)\n\n"
          + self._data_note() + learned_md
          + evaluate_lib.markdown_table(tables["mpjpe"], "MPJPE (mm)") + "\n\n"
          + evaluate_lib.markdown_table(tables["pa_mpjpe"], "PA-MPJPE (mm)")
          + "\n")
    report = {"tables": tables}
    if cfg.eval.figures:
      extra_md, report["figures"] = self._figures(variables, table, result)
      md += extra_md
    if distributed.is_main_process():
      _write_eval_summaries(self.out_dir, self.config, tables,
                            report.get("figures"))
      files.write_atomic(os.path.join(self.out_dir, "results.md"), md)
      files.write_atomic(os.path.join(self.out_dir, "results.json"),
                         json.dumps(report, indent=1, default=float))
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
    trend = learning_checks.violated_trend(history)
    report = {"errors": errors, "warnings": warnings,
              "violated_fraction_eval_start_end": trend}
    if distributed.is_main_process():
      files.write_atomic(os.path.join(self.out_dir, "learning_report.json"),
                         json.dumps(report, indent=1))
    summaries = _summary_writer(self.out_dir)
    if summaries is not None:
      step = int(cfg.stage1.num_steps) + int(cfg.stage2.num_steps)
      summaries.scalars(step, {
          f"learning/{stage}/{sp}/{k}": v for stage, rows in errors.items()
          for sp, row in rows.items() for k, v in row.items()})
      summaries.close()
    report["markdown"] = learning_checks.markdown(errors, warnings)
    return report

  def _data_note(self) -> str:
    """For other data, a line naming the data evaluated and trained on."""
    if self.trained_config is None:
      return ""
    d, t = self.config.data, self.trained_config.data
    what = lambda c: (f"`{c.tfds_config}`" if c.source == "tfds" else
                      f"`{c.source}`") + (f" (`{c.motion_path}`)"
                                          if c.motion_path else "")
    return (f"Evaluated on {what(d)} data, test split; the model of "
            f"`{self.workdir}` was trained on {what(t)} data and scores its "
            f"{len(self.candidates)} training poses.\n\n")

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


def _summary_writer(workdir: str):
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


def _write_eval_summaries(workdir: str, config, tables, figures) -> None:
  """Eval MPJPE / PA-MPJPE of every method (``eval/<metric>/<method>``), the
  Figure 3 curve and the alignment statistic, at the last training step; the
  figures' PNGs as images (``figures/<name>``) and the config as text."""
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
  for name in ("figure3", "figure4a", "figure4b", "figure4c", "figure4d"):
    path = os.path.join(workdir, name + ".png")
    if figures and files.exists(path):
      summaries.png(step, f"figures/{name}", files.read_bytes(path))
  summaries.text(step, "config", "```json\n" + config.to_json_best_effort(
      indent=2) + "\n```")
  summaries.close()

