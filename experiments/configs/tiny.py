"""A tiny StructNet that trains and evaluates in well under a minute on a CPU.

For tests, smoke runs and the notebook's quick mode; same code paths as the
default, smaller everything.
"""

from __future__ import annotations

from experiments.configs import default


def get_config():
  c = default.get_config()
  c.data.source = "blobs"
  c.data.image_size = 36
  c.data.num_test = 300
  c.data.pose_space_size = 2000
  c.data.looks_per_subject = 0  # blobs wear no clothes
  c.data.hue_jitter_deg = 0.0  # blobs code depth in colour
  c.data.saturation_jitter = 0.0
  c.model.image_size = 32
  c.model.conv_features = (8, 16, 16)
  c.model.conv_kernel_sizes = (5, 5, 3)
  c.model.h1_width = 128
  c.model.h2_width = 128
  c.model.h3_width = 128
  c.model.embed_dim = 64
  c.model.pose_hidden = 64
  c.model.dropout_rate = 0.0
  c.model.detection_grid = 0  # blobs have no 2D joints to detect
  c.stage1.num_steps = 300
  c.stage2.num_steps = 300
  c.stage2.num_candidates = 200
  c.train.batch_size = 32
  c.train.checkpoint_every = 300
  c.train.plan_probe = False  # the plan line without its timing probes
  c.eval.batch_size = 100
  c.eval.avg_sizes = (5, 20, 50)
  c.eval.figure4_num_images = 300
  c.eval.apf_sizes = (20,)
  c.eval.apf_particles = 32
  c.eval.apf_layers = 4
  c.eval.apf_refine_steps = 50
  c.eval.linkde_features = 512
  c.eval.linkde_cell_size = 4
  return c
