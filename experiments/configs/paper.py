"""The paper's network and schedule (Figure 1, section 5.3) on rendered data.

128x128 crops, 112x112 network input, conv (32, 64, 64) with 9/5/5 kernels,
all FC widths 1024, batch 128, 3000 + 3000 steps. Meant for a GPU/TPU, where
``--config.data.source=render`` needs no TensorFlow; the step time of this
network on a 2-core CPU is in benchmarks/RESULTS.md ("Core").

  python -m experiments.main --config=experiments/configs/paper.py \
      --workdir=DIR [--config.data.source=render]
"""

from __future__ import annotations

from experiments.configs import default


def get_config():
  c = default.get_config()
  c.data.image_size = 128
  c.model.image_size = 112
  c.model.conv_features = (32, 64, 64)
  for name in ("h1_width", "h2_width", "h3_width", "embed_dim", "pose_hidden"):
    c.model[name] = 1024
  c.stage2.reinit_fc = True
  c.model.detection_grid = 8  # stage 1: regression + joint detection ([18])
  c.stage2.optimizer = "line_search"  # section 4 (default.py: adamw)
  c.data.hue_jitter_deg = 0.0  # section 5.1: crops and PCA noise only
  c.data.saturation_jitter = 0.0
  c.data.looks_per_subject = 0  # one look per subject, as filmed people have
  c.model.dropout_rate = 0.75  # section 5.3 (default.py: 0.5)
  c.loss.margin_unit_mm = 100.0
  c.stage1.num_steps = 3000
  c.stage2.num_steps = 3000
  c.train.batch_size = 128
  c.eval.linkde_train_images = 50000
  c.eval.apf_particles = 200
  c.eval.apf_layers = 10
  c.eval.apf_refine_steps = 300
  return c
