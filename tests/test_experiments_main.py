"""The command line: train, evaluate, resume, predict, and refuse a misspelt field."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

pytestmark = pytest.mark.end_to_end  # subprocess runs of the program

from cli_runs import REPO
from cli_runs import env as _env
from cli_runs import run_main as _main


def _copy(trained, tmp_path):
  """A copy of the shared trained workdir, for a test that writes into it."""
  workdir = tmp_path / "run"
  shutil.copytree(trained[0], workdir)
  return workdir


def test_train_and_evaluate_writes_the_report(trained):
  tmp_path, run = trained
  stdout, stderr = run["stdout"], run["stderr"]
  # One line first says what the run will do and about how long it takes.
  plan = [l for l in stderr.splitlines() if "] plan: " in l]
  assert len(plan) == 1, stderr[-3000:]
  assert "plan: stage 1: 4 steps x 32 images (adamw); stage 2: 4 steps" in (
      plan[0])
  assert "evaluate: 40 test images x 300 candidates" in plan[0]
  assert "min on this machine (stage 1" in plan[0]
  assert stderr.index("] plan: ") < stderr.index("[stage1] step")
  assert "the run took" in stderr
  assert "StructNet-Avg(20)" in stdout and "| All |" in stdout
  assert "| NN-oracle |" in stdout
  assert "| LinKDE |" in stdout
  assert "| Regression net (stage 1) |" in stdout
  # Table 1's row order: StructNet's rows, the baselines, the references.
  table = stdout.split("| PA-MPJPE")[0].split("| MPJPE (mm) |")[1]
  rows = [line.split("|")[1].strip() for line in table.splitlines()
          if line.startswith("| ") and line.strip("| ")]
  assert rows == ["StructNet-Max", "StructNet-Avg(5)", "StructNet-Avg(20)",
                  "StructNet-Avg(50)", "StructNet-Avg(20)-APF",
                  "StructNet-Pred", "Regression net (stage 1)", "LinKDE",
                  "Mean training pose", "NN-oracle"], rows
  for name in ("results.md", "results.json", "config.json", "metrics.jsonl",
               "figure3.png", "figure4a.png", "figure4d.png",
               "stage2_curves.png", "pose_space.npy"):
    assert (tmp_path / name).exists(), name
  report = (tmp_path / "results.md").read_text()
  assert "Alignment:" in report
  # The learning checks: a table of both stages on both splits, first.
  assert report.index("## Did it learn?") < report.index("| MPJPE (mm) |")
  assert "| stage1 | train |" in report and "| stage2 | test |" in report
  learned = json.loads((tmp_path / "learning_report.json").read_text())
  assert set(learned["errors"]) == {"stage1", "stage2"}
  assert _tensorboard_tags(tmp_path / "tensorboard") >= {
      "stage1/cost", "stage1/pose_loss_vs_mean",
      "stage1/heldout_cost_after", "stage2/violated_fraction",
      "stage2/violated_fraction_eval", "stage2/score_gap",
      "stage2/heldout_alignment_30mm",
      "eval/mpjpe/StructNet-Max", "eval/alignment_fraction_30mm",
      "learning/stage2/train/alignment_30mm"}
  # Figures 3 and 4 as images, and the run's config as text.
  assert _tensorboard_tags(tmp_path / "tensorboard", "images") == {
      "figures/figure3", "figures/figure4a", "figures/figure4b",
      "figures/figure4c", "figures/figure4d"}
  assert "config" in _tensorboard_tags(tmp_path / "tensorboard", "tensors")


def test_evaluate_takes_the_network_as_trained(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  saved_config = (workdir / "config.json").read_text()
  # Evaluating takes the network as trained; stage2.num_steps=7 is ignored.
  again = _main(workdir, "--mode=evaluate", "--config.eval.linkde=False",
                "--config.eval.figures=False", "--config.stage2.num_steps=7")
  assert again.returncode == 0, again.stderr[-3000:]
  assert "| StructNet-Avg(20)-APF |" in again.stdout
  assert "plan: evaluate: 40 test images x 300 candidates (Max, " in (
      again.stderr)
  assert "plan: stage" not in again.stderr
  # Its time estimate compiles the scorer, not a train step it will not run.
  assert "from a timed evaluation batch of" in again.stderr
  assert "stage-1 step" not in again.stderr
  assert (workdir / "config.json").read_text() == saved_config


def test_evaluate_on_other_data_writes_to_eval(trained, tmp_path):
  _check_evaluate_on_positions(_copy(trained, tmp_path))


def test_resume_trains_no_finished_stage_again(trained, tmp_path):
  workdir = _copy(trained, tmp_path)
  logged = (workdir / "metrics.jsonl").read_text().count("\n")
  resumed = _main(workdir, "--mode=train")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  # Finished stages are not trained again.
  assert (workdir / "metrics.jsonl").read_text().count("\n") == logged


def test_predict_on_a_trained_workdir(trained, tmp_path):
  _check_predict(_copy(trained, tmp_path))


def _check_evaluate_on_positions(workdir):
  """--mode=evaluate with the positions config on the trained workdir."""
  from test_position_motion import walk  # pylint: disable=g-import-not-at-top
  motion = workdir / "my_motion.npz"
  np.savez(motion, **{"P1/walking/1": walk(8, seed=0),
                      "P2/jumping jacks/1": walk(8, seed=1),
                      "P2/walking/2": walk(8, seed=2)})
  before = {p.name: p.stat().st_mtime_ns for p in workdir.iterdir()
            if p.is_file() and p.name != "my_motion.npz"}
  env = _env()
  run = subprocess.run(
      [sys.executable, "-m", "experiments.main", "--mode=evaluate",
       "--config=experiments/configs/positions.py:evaluate",
       f"--workdir={workdir}", f"--config.data.motion_path={motion}",
       f"--config.data.data_dir={workdir / 'tfds'}",
       "--config.data.frame_step=8", "--config.eval.batch_size=16",
       "--config.eval.avg_sizes=(5,20)", "--config.eval.apf_sizes=()",
       "--config.eval.figures=False", "--config.eval.linkde_features=128",
       "--config.eval.linkde_cell_size=4"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert run.returncode == 0, run.stderr[-3000:]
  # The run's own files are as they were; the report is in eval/<data>/.
  assert {p.name: p.stat().st_mtime_ns for p in workdir.iterdir()
          if p.name in before} == before
  (out_dir,) = (workdir / "eval").iterdir()
  assert out_dir.name.startswith("positions-my_motion-")
  for name in ("results.md", "results.json", "eval_config.json"):
    assert (out_dir / name).exists(), name
  md = (out_dir / "results.md").read_text()
  assert f"`positions` (`{motion}`)" in md and md in run.stdout
  # One column per action of the file's keys.
  header = md.split("| MPJPE (mm) |")[1].splitlines()[0]
  assert [c.strip() for c in header.split("|") if c.strip()] == [
      "jumping jacks", "walking", "All"]
  table = json.loads((out_dir / "results.json").read_text())["tables"][
      "mpjpe"]
  assert {"StructNet-Max", "StructNet-Avg(20)", "StructNet-Pred",
          "Regression net (stage 1)", "LinKDE", "NN-oracle"} <= set(table)
  # Every crop of the file is a test example (3 sequences x 1 frame x 4
  # cameras), scored against the candidate poses the model was trained with:
  # the NN-oracle row is the nearest of those to each ground truth.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  (version_dir,) = (workdir / "tfds" / "structnet_h36m").glob("positions_*/*")
  builder = tfds.builder_from_directory(str(version_dir))
  assert set(builder.info.splits) == {"test"}
  truth = np.stack([ex["pose"] for ex in tfds.as_numpy(
      builder.as_dataset(split="test", shuffle_files=False))])
  assert table["StructNet-Max"]["All"]["count"] == len(truth) == 12
  space = np.load(workdir / "pose_space.npy")
  nearest = [min(np.linalg.norm(c - t, axis=-1).mean() for c in space)
             for t in truth]
  assert abs(table["NN-oracle"]["All"]["mean"] - np.mean(nearest)) < 0.01


def test_an_evaluation_only_dataset_cannot_be_trained_on(tmp_path):
  from data_pipelines.sources import core as sources  # pylint: disable=g-import-not-at-top
  from experiments.configs import positions  # pylint: disable=g-import-not-at-top
  from experiments import pipeline  # pylint: disable=g-import-not-at-top
  from test_position_motion import walk  # pylint: disable=g-import-not-at-top
  motion = tmp_path / "m.npz"
  np.savez(motion, **{"P1/walking/1": walk(4)})
  config = positions.get_config("evaluate")
  config.data.motion_path = str(motion)
  config.data.data_dir = str(tmp_path / "tfds")
  config.data.frame_step = 4
  config.data.image_size = 36
  config.model.image_size = 32
  run = pipeline.Run.create(config, str(tmp_path / "run"))
  with pytest.raises(ValueError, match="no training examples"):
    run.train()
  config.data.motion_path = ""
  with pytest.raises(ValueError, match="motion_path is empty.*positions.npz"):
    sources.from_config(config)
  config.data.motion_path = str(motion)
  config.data.tfds_config = "procedural"
  config.data.placement = "centre"
  with pytest.raises(ValueError, match="only apply to joint positions"):
    sources.from_config(config)


def _tensorboard_tags(logdir, kind="scalars"):
  """Tags of one kind ("scalars", "images", "tensors") in the event files,
  read with TensorBoard's own reader."""
  tags = set()
  for name in os.listdir(logdir):
    acc = event_accumulator.EventAccumulator(os.path.join(logdir, name))
    acc.Reload()
    tags |= set(acc.Tags()[kind])
  return tags


def _check_predict(workdir):
  """experiments.predict on a trained workdir: poses, top-k and a PNG each."""
  images = np.random.default_rng(0).integers(0, 256, (3, 50, 40, 3),
                                             dtype=np.uint8)
  np.save(workdir / "crops.npy", images)
  env = _env()
  out = subprocess.run(
      [sys.executable, "-m", "experiments.predict",
       f"--workdir={workdir}", f"--images={workdir / 'crops.npy'}",
       "--top_k=3", "--apf"], cwd=REPO, env=env, capture_output=True,
      text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  data = json.loads((workdir / "predictions" /
                     "predictions.json").read_text())
  assert len(data["predictions"]) == 3 and data["units"] == "mm"
  first = data["predictions"][0]
  space = np.load(workdir / "pose_space.npy")
  # The top hypothesis is StructNet-Max, a candidate pose, scores descending.
  top = first["top_k"]
  assert len(top) == 3
  assert [t["score"] for t in top] == sorted((t["score"] for t in top),
                                             reverse=True)
  np.testing.assert_allclose(first["poses_mm"]["StructNet-Max"],
                             space[top[0]["candidate"]], atol=0.01)
  assert {"StructNet-Avg(20)", "StructNet-Avg(20)-APF",
          "StructNet-Pred"} <= set(first["poses_mm"])
  assert (workdir / "predictions" / "image_00000.png").exists()
  bad = subprocess.run(
      [sys.executable, "-m", "experiments.predict",
       f"--workdir={workdir}", f"--images={workdir / 'none'}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert bad.returncode != 0 and "no such file" in bad.stderr


def test_misspelt_or_out_of_range_config_is_refused_in_one_line(tmp_path):
  run = _main(tmp_path, "--config.train.bach_size=3")
  assert run.returncode == 1
  assert "no such config field: bach_size" in run.stderr
  assert 'Did you mean "batch_size"' in run.stderr
  assert "Traceback" not in run.stderr
  run = _main(tmp_path, "--config.train.batch_size=-4",
              "--config.stage2.num_candidates=0")
  assert run.returncode == 1 and "Traceback" not in run.stderr
  assert "train.batch_size=-4 (must be in [1, inf))" in run.stderr
  assert "stage2.num_candidates=0 (must be in [1, inf))" in run.stderr
  assert not (tmp_path / "stage1").exists()  # refused before training
  run = _main(tmp_path, "--config.train.batch_size=-4", "--traceback")
  assert run.returncode != 0 and "Traceback" in run.stderr


def test_render_source_trains_and_evaluates_on_device(tmp_path):
  """config.data.source=render: people rendered in JAX, no TensorFlow."""
  from experiments.configs import tiny  # pylint: disable=g-import-not-at-top
  from experiments import pipeline  # pylint: disable=g-import-not-at-top
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
  # The source is what is tested here: the APF and LinKDE rows and the
  # figures take the same path for every source (tested on the shared
  # trained run).
  config.eval.apf_sizes = ()
  config.eval.linkde = False
  config.eval.figures = False
  run = pipeline.Run.create(config, str(tmp_path))
  assert run.source.pose_space.shape == (5 * 4 * 2, 17, 3)  # 5 subjects x 4 cameras x 2 frames
  run.train()
  report = run.evaluate()
  assert "StructNet-Avg(5)" in report["markdown"]
  assert "walking" in report["markdown"]
  assert len(report["result"]["poses"]) == 2 * 4 * 2  # S9, S11 x 4 cameras x 2 frames
