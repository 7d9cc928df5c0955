"""The start-of-run plan line (experiments/plan.py)."""

import math

import pytest

from experiments.configs import default
from experiments.configs import tiny
from experiments import plan


def test_estimate_against_a_hand_computed_cost():
  c = default.get_config()
  c.stage1.num_steps, c.stage2.num_steps = 100, 200
  c.eval.batch_size, c.eval.check_images = 100, 250
  c.eval.avg_sizes, c.eval.apf_sizes = (20, 500), (500, 1500)  # 1500: no row
  c.eval.apf_particles, c.eval.apf_layers, c.eval.apf_refine_steps = 50, 4, 0
  c.eval.linkde_train_images = 5000
  probe = plan.Probe(stage1_step_s=0.1, eval_batch_s=0.5)
  got = plan.estimate(c, probe, num_test=1050, num_train=3000)
  assert got["stage 1"] == pytest.approx(100 * 0.1)
  assert got["stage 2"] == pytest.approx(200 * 0.1 * 0.55)  # frozen, adamw
  scorer_pass = 11 * 0.5                           # ceil(1050 / 100) batches
  expected = (scorer_pass * (3.2 + 1.8)            # eval pass + figures
              + 1050 * 1 / 160 * (50 * 4) / 600    # APF at A=500 only
              + 3000 / 1100                        # LinKDE's HOG (3000 < 5000)
              + 4 * 3 * 0.5 * 3.0)                 # learning report
  assert got["evaluation"] == pytest.approx(expected)
  c.stage2.optimizer, c.stage2.freeze_trunk = "line_search", False
  assert plan.estimate(c, probe, 1050, 3000)["stage 2"] == pytest.approx(
      200 * 0.1 * 1.0 * 2.0)


def test_describe_counts_and_phases():
  c = tiny.get_config()
  line = plan.describe(c, num_train=2000, num_test=300, num_candidates=2000)
  assert line == (
      "plan: stage 1: 300 steps x 32 images (adamw); stage 2: 300 steps x 32 "
      "images (C=200 + K=10 candidates of 2000, adamw, conv trunk frozen); "
      "evaluate: 300 test images x 2000 candidates (Max, Avg(5/20/50), APF "
      "on A=20, regression net, LinKDE fit on <=2000 training images, "
      "figures)")
  only_eval = plan.describe(c, 2000, 300, 2000, train=False,
                            probe_result=plan.Probe(0.01, 0.2))
  assert only_eval.startswith("plan: evaluate: 300 test images")
  assert "(evaluation " in only_eval and "stage 1 " not in only_eval
  # An evaluation-only probe has no stage-1 step: the same estimate.
  untimed = plan.describe(c, 2000, 300, 2000, train=False,
                          probe_result=plan.Probe(None, 0.2))
  assert untimed.split("; from ")[0] == only_eval.split("; from ")[0]
  assert untimed.endswith("from a timed evaluation batch of 0.20 s; rough)")


def test_probe_times_the_real_step_and_scorer():
  from data_pipelines.sources import blobs  # pylint: disable=g-import-not-at-top
  from structnet_jax import models  # pylint: disable=g-import-not-at-top
  c = tiny.get_config()
  c.train.batch_size, c.eval.batch_size = 8, 16
  source = blobs.BlobSource.create(num_train=200, num_test=16, image_size=36,
                                   crop=32, seed=0)
  got = plan.probe(models.StructNet.from_config(c.model), c,
                   source.pose_space)
  assert math.isfinite(got.stage1_step_s) and got.stage1_step_s > 0
  assert math.isfinite(got.eval_batch_s) and got.eval_batch_s > 0
  only_eval = plan.probe(models.StructNet.from_config(c.model), c,
                         source.pose_space, train=False)
  assert only_eval.stage1_step_s is None and only_eval.eval_batch_s > 0
