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

import jax
import numpy as np


from experiments.configs import default as default_config
from structnet_jax import config_utils
from structnet_jax import evaluate as evaluate_lib
from structnet_jax import models
from structnet_jax import scoring
from structnet_jax import trainer

SOURCES = ("blobs", "tfds", "render")


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
    config_utils.check_config(config, default_config.get_config())
    model = models.StructNet.from_config(config.model)
    return cls(config, workdir, model, make_source(config))

  def batch_fn(self, step: int):
    return self.source.train_batch(step, self.config.train.batch_size,
                                   seed=self.config.seed)

  def train(self, stop_after: int | None = None):
    return trainer.train_both_stages(self.model, self.config, self.workdir,
                                     self.batch_fn, self.source.pose_space,
                                     stop_after=stop_after)

  def evaluate(self, split: str = "test") -> dict[str, Any]:
    """Evaluates the trained model on ``split`` and writes the report.

    Writes ``results.md`` (Table-1 layout: MPJPE and PA-MPJPE, methods by
    actions, mean (std) mm) and ``results.json`` to the workdir and, with
    ``config.eval.figures``, ``figure3.png`` (MPJPE against A) and
    ``figure4a.png`` ... ``figure4d.png`` (embedding maps of training images
    and poses) with the alignment statistic.
    """
    cfg = self.config
    variables = trainer.load_final_variables(self.model, cfg, self.workdir,
                                             self.source.pose_space)
    candidates = np.asarray(self.source.pose_space, np.float32)
    table = scoring.embed_candidate_poses(self.model, variables, candidates)
    result = evaluate_lib.evaluate(
        self.model, variables,
        self.source.eval_batches(cfg.eval.batch_size, split), candidates,
        cfg.eval.avg_sizes, cfg.eval.top_k, table=table,
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
    _write_atomic(os.path.join(self.workdir, "results.md"), md)
    _write_atomic(os.path.join(self.workdir, "results.json"),
                  json.dumps(report, indent=1, default=float))
    return {"markdown": md, "tables": tables, "result": result,
            "figures": report.get("figures")}

  def _figures(self, variables, table, result) -> tuple[str, dict[str, Any]]:
    """Figure 3, Figure 4 a-d and the alignment statistic (section 6)."""
    from experiments import figures  # pylint: disable=g-import-not-at-top
    cfg = self.config
    candidates = np.asarray(self.source.pose_space, np.float32)
    a_values = figures.default_a_values(len(candidates))
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


def _write_atomic(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` via a temporary file and ``os.replace``."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)
