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
  for name in ("results.md", "results.json", "config.json", "metrics.jsonl"):
    assert (tmp_path / name).exists(), name
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
