"""The command line: train, evaluate, resume, and refuse a misspelt field."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(workdir, *flags):
  env = {**os.environ, "PYTHONPATH": REPO}
  return subprocess.run(
      [sys.executable, "-m", "experiments.main",
       "--config=experiments/configs/tiny.py", f"--workdir={workdir}",
       "--config.stage1.num_steps=4", "--config.stage2.num_steps=4",
       "--config.train.log_every=2", "--config.data.pose_space_size=300",
       "--config.data.num_test=40", "--config.eval.batch_size=20", *flags],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_train_and_evaluate_then_resume(tmp_path):
  run = _main(tmp_path)
  assert run.returncode == 0, run.stderr[-3000:]
  assert "StructNet-Avg(20)" in run.stdout and "| All |" in run.stdout
  assert "| NN-oracle |" in run.stdout
  for name in ("results.md", "results.json", "config.json", "metrics.jsonl",
               "figure3.png", "figure4a.png", "figure4d.png"):
    assert (tmp_path / name).exists(), name
  assert "Alignment:" in (tmp_path / "results.md").read_text()
  logged = (tmp_path / "metrics.jsonl").read_text().count("\n")
  again = _main(tmp_path, "--mode=evaluate")
  assert again.returncode == 0, again.stderr[-3000:]
  resumed = _main(tmp_path, "--mode=train")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  # Finished stages are not trained again.
  assert (tmp_path / "metrics.jsonl").read_text().count("\n") == logged


def test_misspelt_config_field_is_refused(tmp_path):
  run = _main(tmp_path, "--config.train.bach_size=3")
  assert run.returncode != 0
  assert "bach_size" in run.stderr


def test_render_source_trains_and_evaluates_on_device(tmp_path):
  """config.data.source=render: people rendered in JAX, no TensorFlow."""
  from experiments import pipeline  # pylint: disable=g-import-not-at-top
  from experiments.configs import tiny  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.data.source = "render"
  config.data.actions = "walking"
  config.data.sequences_per_action = 1
  config.data.frames_per_sequence = 10
  config.data.frame_step = 5
  config.stage1.num_steps = config.stage2.num_steps = 2
  config.stage2.num_candidates = 16
  config.train.batch_size = 8
  config.eval.batch_size = 8
  config.eval.avg_sizes = (2, 5)
  config.eval.apf_sizes = (5,)
  config.eval.figure4_num_images = 40
  run = pipeline.Run.create(config, str(tmp_path))
  assert run.source.pose_space.shape == (5 * 4 * 2, 17, 3)  # 5 subjects x 4 cameras x 2 frames
  run.train()
  report = run.evaluate()
  assert "StructNet-Avg(5)" in report["markdown"]
  assert "walking" in report["markdown"]
  assert len(report["result"]["poses"]) == 2 * 4 * 2  # S9, S11 x 4 cameras x 2 frames
