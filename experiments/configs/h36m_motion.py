r"""The Human3.6M-motion protocol: real motion capture, our rendered people.

Train on S1, S5, S6, S7, S8 and test on S9, S11, each of the four cameras a
separate view, poses in that camera's frame (the paper's protocol, section
6), with people rendered from the Human3.6M exponential-map motion capture
(``data_pipelines/tfds/builder.py``, config ``h36m_motion``). The motion file
is given on the command line:

  python -m experiments.main \
      --config=experiments/configs/h36m_motion.py[:paper|cpu] --workdir=DIR \
      --config.data.motion_path=/path/to/h36m_expmap_25fps.npz

``paper`` (the default argument): Figure-1 network and the paper's
choices, every 5th frame of the 25 fps file (5 fps, five times the ``cpu``
variant's crops). ``cpu``: the default config's short-schedule choices and
convolutions on 64x64 crops at 1 fps (every 25th frame; its crop counts are
in experiments/results/h36m_motion_cpu/README.md), with the five FC widths
at ``CPU_FC_WIDTH`` = 512 (the default config: 256; Figure 1: 1024; chosen
on the validation split, experiments/results/learning_study/, section 14),
3000 + 4500 steps (stage 2 three times the 1500 of rounds one to five:
chosen on the validation split, section 13).
``quick``: the ``cpu`` run at half the frames (every 50th) and half the
steps (1500 + 2250), without the APF rows, to compare ideas in minutes.
``cpu_val`` / ``quick_val``: the same with S8 held out as the validation
split (train S1, S5, S6, S7; evaluate on S8): choose settings there and
report S9/S11 once. Measured times are in
experiments/results/.
"""

from __future__ import annotations

from experiments.configs import default
from experiments.configs import paper

VARIANTS = ("paper", "cpu", "quick", "cpu_val", "quick_val")

# h1, h2, h3, the image embedding and the pose embedding's hidden layer of
# the cpu and quick variants: half of Figure 1's 1024, twice the default
# config's 256 (learning study, section 14: on S8, two seeds, every
# StructNet row better than at 256).
CPU_FC_WIDTH = 512


def protocol_config(tfds_config: str, variant: str, frame_steps: dict[str, int]):
  """The train S1/S5/S6/S7/S8, test S9/S11 protocol on ``tfds_config`` data.

  ``variant`` (``VARIANTS``): ``paper`` (Figure-1 network, every
  ``frame_steps["paper"]``-th frame), ``cpu`` (the default network with
  ``CPU_FC_WIDTH``-wide FC layers, every ``frame_steps["cpu"]``-th frame,
  3000 + 4500 steps), ``quick`` (``cpu`` at half the frames and steps, no
  APF rows); a ``_val`` suffix holds S8 out as the validation split.
  """
  if variant not in VARIANTS:
    raise ValueError(f"{tfds_config} config argument {variant!r} is unknown; "
                     f"use one of {VARIANTS} (e.g. {tfds_config}.py:cpu).")
  c = paper.get_config() if variant == "paper" else default.get_config()
  c.data.source = "tfds"
  c.data.tfds_config = tfds_config
  base = variant.removesuffix("_val")
  if base != "paper":
    m = c.model
    m.h1_width = m.h2_width = m.h3_width = CPU_FC_WIDTH
    m.embed_dim = m.pose_hidden = CPU_FC_WIDTH
  if base == "quick":
    c.data.frame_step = 2 * frame_steps["cpu"]
    c.stage1.num_steps = 1500
    c.stage2.num_steps = 2250
    c.eval.apf_sizes = ()
  else:
    c.data.frame_step = frame_steps[base]
  if base == "cpu":
    c.stage1.num_steps = 3000
    c.stage2.num_steps = 4500
  if variant.endswith("_val"):
    c.data.validation_subjects = "S8"
  return c


def get_config(variant: str = "paper"):
  return protocol_config("h36m_motion", variant, {"paper": 5, "cpu": 25})
