r"""The real-release protocol: the official Human3.6M videos and 3D poses.

Same protocol as ``h36m_motion.py`` (train S1, S5, S6, S7, S8; test S9, S11;
four cameras as separate views), on the official release's frames (person
crops from its ground-truth boxes) and ``D3_Positions`` poses. Point it at
the release folder (see
``data_pipelines.tfds.builder.MANUAL_DOWNLOAD_INSTRUCTIONS``):

  python -m experiments.main \
      --config=experiments/configs/h36m_release.py[:paper|cpu] --workdir=DIR \
      --config.data.manual_dir=/path/to/human3.6m

The dataset is read once into ``data.data_dir`` (every 5th frame of the 50
fps videos; ``cpu``: every 50th frame and ``h36m_motion.py:cpu``'s network).
"""

from __future__ import annotations

from experiments.configs import h36m_motion


def get_config(variant: str = "paper"):
  c = h36m_motion.protocol_config("h36m_release", variant,
                                  {"paper": 5, "cpu": 50})
  c.data.looks_per_subject = 0  # filmed people wear what they wore
  return c
