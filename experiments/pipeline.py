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


from experiments.configs import default as default_config
from structnet_jax import config_utils
from structnet_jax import evaluate as evaluate_lib
from structnet_jax import models
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
    variables = trainer.load_final_variables(self.model, self.config,
                                             self.workdir,
                                             self.source.pose_space)
    result = evaluate_lib.evaluate(
        self.model, variables,
        self.source.eval_batches(self.config.eval.batch_size, split),
        self.source.pose_space, self.config.eval.avg_sizes,
        self.config.eval.top_k)
    tables = {k: evaluate_lib.summary_table(result, k)
              for k in ("mpjpe", "pa_mpjpe")}
    md = (f"# StructNet results ({split}, {len(result['poses'])} examples)\n\n"
          + evaluate_lib.markdown_table(tables["mpjpe"], "MPJPE (mm)") +
          "\n\n" + evaluate_lib.markdown_table(tables["pa_mpjpe"],
                                               "PA-MPJPE (mm)") + "\n")
    with open(os.path.join(self.workdir, "results.md"), "w") as f:
      f.write(md)
    with open(os.path.join(self.workdir, "results.json"), "w") as f:
      json.dump(tables, f, indent=1, default=float)
    return {"markdown": md, "tables": tables, "result": result}
