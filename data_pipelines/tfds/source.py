"""A training/evaluation source over a ``structnet_h36m`` TFDS dataset.

The experiments layer (``experiments/pipeline.py``) asks every source for
the same things, whatever the data is: the contract
``data_pipelines.sources.core.Source`` (``pose_space [N, 17, 3]`` mm, the
training poses saved with the dataset;
``train_batch(step, batch_size, seed)``, pure in ``(seed, step)``, with the
2D joints ``pose_2d``; ``eval_batches(batch_size, split)``;
``num_examples(split)``). ``sources.core.from_config`` opens this one for
``config.data.source = "tfds"``. It lives here, beside the builder and
the tf.data pipeline it reads with, because it is the one source that needs
TensorFlow (imported when a dataset is built or read, not at import).

``TfdsSource`` serves them from the dataset written by
``builder.build_dataset`` (building it first when it is not there) from
any of its sources (``builder.SOURCES``): procedural motion, Human3.6M
exponential-map motion, a joint-positions ``.npz``, or the official release;
with the tf.data pipeline of ``input_pipeline``: random ``crop x crop``
windows and PCA colour noise from the dataset's stored RGB covariance for
training, the centre crop for evaluation.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator

import numpy as np


@dataclasses.dataclass
class TfdsSource:
  """Batches of a built ``structnet_h36m`` dataset (see module docstring).

  Attributes:
    builder: the TFDS builder (its dataset already prepared).
    pose_space: ``[N, 17, 3]`` float32 mm, all training poses.
    crop: network input side (pixels), e.g. 112.
    pca_noise_std: standard deviation of the PCA colour-noise coefficients.
  """
  builder: Any
  pose_space: np.ndarray
  crop: int
  pca_noise_std: float
  _batch_fns: dict = dataclasses.field(default_factory=dict, repr=False)

  @classmethod
  def create(cls, dataset_config: str, data_dir: str, *, crop: int,
             pca_noise_std: float, motion_path: str | None = None,
             manual_dir: str | None = None,
             **dataset_options) -> "TfdsSource":
    """Builds (or reuses) the dataset and opens it.

    Args:
      dataset_config: ``"procedural"``, ``"h36m_motion"``, ``"positions"``
        or ``"h36m_release"`` (``tfds_builder.BUILDER_CONFIGS``).
      data_dir: TFDS data directory (``~`` is expanded).
      crop: network input side, at most the dataset's crop size.
      pca_noise_std: colour-noise strength for training batches.
      motion_path: the motion file or folder of ``h36m_motion``, the joint
        positions ``.npz`` of ``positions``.
      manual_dir: the official release's folder for ``h36m_release``.
      **dataset_options: ``StructnetH36mConfig`` fields to override (e.g.
        ``frame_step=10``); the dataset then gets its own folder.
    """
    from data_pipelines.tfds import builder as tfds_builder  # pylint: disable=g-import-not-at-top
    builder = tfds_builder.build_dataset(
        dataset_config, os.path.expanduser(data_dir),
        motion_path=motion_path or None, manual_dir=manual_dir or None,
        **dataset_options)
    size = int(builder.builder_config.crop_size)
    if not 0 < crop <= size:
      raise ValueError(
          f"config.model.image_size={crop} must be in [1, {size}] (the "
          f"dataset's crops are {size}x{size}); lower it or rebuild the "
          "dataset with a larger crop_size.")
    pose_space = tfds_builder.load_pose_space(builder)
    return cls(builder, np.asarray(pose_space, np.float32), int(crop),
               float(pca_noise_std))

  def num_examples(self, split: str = "train") -> int:
    """Examples in ``split``."""
    self._check_split(split)
    return int(self.builder.info.splits[split].num_examples)

  def _check_split(self, split: str) -> None:
    if split not in self.builder.info.splits:
      raise ValueError(f"split {split!r} is not in the dataset; it has "
                       f"{sorted(self.builder.info.splits)}.")

  def train_batch(self, step: int, batch_size: int, seed: int = 0
                  ) -> dict[str, np.ndarray]:
    """The training batch of ``step`` for this host (pure in ``(seed, step)``)."""
    from data_pipelines.tfds import input_pipeline  # pylint: disable=g-import-not-at-top
    key = (int(batch_size), int(seed))
    if key not in self._batch_fns:
      self._batch_fns[key] = input_pipeline.batch_fn_from_builder(
          self.builder, split="train", batch_size=int(batch_size),
          seed=int(seed), crop_size=self.crop,
          pca_noise_std=self.pca_noise_std, extra_keys=("pose_2d",))
    batch = self._batch_fns[key](step)
    return {"image": batch["image"], "pose": batch["pose"],
            "pose_2d": batch["pose_2d"]}

  def eval_batches(self, batch_size: int, split: str = "test"
                   ) -> Iterator[dict[str, np.ndarray]]:
    """Every example of ``split`` once, centre-cropped, padded and masked."""
    from data_pipelines.tfds import input_pipeline  # pylint: disable=g-import-not-at-top
    self._check_split(split)
    ds = input_pipeline.eval_dataset_from_builder(
        self.builder, split=split, batch_size=int(batch_size),
        crop_size=self.crop)
    for batch in ds.as_numpy_iterator():
      out = dict(batch)
      for name in ("action", "subject"):
        if name in out:
          out[name] = np.asarray([v.decode() if isinstance(v, bytes) else str(v)
                                  for v in out[name]])
      yield out
