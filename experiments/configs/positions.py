r"""Your own motion as 17-joint positions: train on it, or test a model on it.

The data are people rendered from a positions ``.npz``
(``data_pipelines/motion/positions.py``: keys ``"{subject}/{action}/
{subaction}"``, values ``[T, 17, 3]`` mm, z up, Human3.6M joint order; see
README.md), filmed through the Human3.6M rig (TFDS config ``positions``). The
file is given on the command line.

Test a trained model on it (every sequence of the file is a test sequence;
the network, its candidate poses and its training come from the workdir, the
report goes to ``<workdir>/eval/<data name>/``):

  python -m experiments.main --mode=evaluate --workdir=/tmp/structnet \
      --config=experiments/configs/positions.py:evaluate \
      --config.data.motion_path=/path/to/my_motion.npz

Train and test on it (``cpu``: ``h36m_motion.py:cpu``'s network and
schedule, the default config's with its FC layers twice as wide;
``paper``: Figure 1's), with subjects split by name:

  python -m experiments.main --config=experiments/configs/positions.py:cpu \
      --workdir=/tmp/my_motion --config.data.motion_path=/path/to/my_motion.npz \
      --config.data.train_subjects=P1,P2,P3 --config.data.test_subjects=P4

Without ``train_subjects`` the split is Human3.6M's (train S1, S5, S6, S7, S8;
test every other subject). Other options: ``--config.data.frame_step`` (sub-
sampling; default every 10th frame of the file, ``paper`` every 5th),
``--config.data.placement`` (auto | centre | per_frame | as_given),
``--config.data.random_yaw=True``, ``--config.data.rig_subject``.
"""

from __future__ import annotations

from experiments.configs import h36m_motion

VARIANTS = ("cpu", "paper", "evaluate")


def get_config(variant: str = "cpu"):
  if variant not in VARIANTS:
    raise ValueError(f"positions config argument {variant!r} is unknown; use "
                     f"one of {VARIANTS} (e.g. positions.py:evaluate).")
  c = h36m_motion.protocol_config(
      "positions", "cpu" if variant == "evaluate" else variant,
      {"paper": 5, "cpu": 10})
  if variant == "evaluate":
    c.data.train_subjects = "none"
  return c
