"""Two processes on localhost train like one (structnet_jax/distributed.py)."""

import json
import os
import socket
import subprocess

import numpy as np
import pytest

import cli_runs
from structnet_jax import distributed


def test_spec_parsing_and_its_errors():
  assert distributed.parse_spec("") is None
  assert distributed.parse_spec("auto") == {}
  assert distributed.parse_spec("node0:1234, 4, 3") == {
      "coordinator_address": "node0:1234", "num_processes": 4,
      "process_id": 3}
  for bad in ("node0:1234,2", "node0,2,0", "node0:1234,two,0"):
    with pytest.raises(ValueError, match="HOST:PORT,NUM_PROCESSES,PROCESS_ID"):
      distributed.parse_spec(bad)
  with pytest.raises(ValueError, match="0 <= PROCESS_ID < NUM_PROCESSES"):
    distributed.parse_spec("node0:1234,2,2")


def test_process_rows_on_one_process_is_the_batch():
  batch = {"image": np.zeros((6, 2)), "pose": np.ones((6, 17, 3))}
  assert distributed.process_rows(batch, 6) is batch


def test_gather_parts_on_one_process_concatenates_in_order():
  parts = [{"x": np.full((n, 2), j, np.float32)} for j, n in
           enumerate((3, 0, 2))]
  got = distributed.gather_parts(parts, [3, 0, 2],
                                 {"x": np.zeros((0, 2), np.float32)})
  np.testing.assert_array_equal(got["x"][:, 0], [0, 0, 0, 2, 2])
  empty = distributed.gather_parts([], [], {"x": np.zeros((0, 2), np.int32)})
  assert empty["x"].shape == (0, 2) and empty["x"].dtype == np.int32


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.mark.end_to_end
def test_two_local_processes_train_like_one_and_only_process_0_writes(
    trained, tmp_path):
  # Reference: the session's tiny run of the command line (one process, one
  # device). The same run as two processes with one device each.
  single = trained[0]
  multi = tmp_path / "multi"
  spec = f"localhost:{_free_port()},2"
  procs = [subprocess.Popen(
      cli_runs.main_command(multi, "--config.train.plan_probe=True",
                            "--config.eval.linkde=False",
                            "--config.eval.apf_sizes=()",
                            f"--distributed={spec},{i}"),
      cwd=cli_runs.REPO, env=cli_runs.env(1), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=900) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  # Same batches, same steps: the same metrics at every logged step.
  got, want = _metrics(multi), _metrics(single)
  assert [(m["stage"], m["step"]) for m in got] == [
      (m["stage"], m["step"]) for m in want]  # written once, not twice
  for g, w in zip(got, want):
    for key in ("cost", "pose_loss_vs_mean", "margin_loss",
                "violated_fraction"):
      if key in w:
        assert g[key] == pytest.approx(w[key], rel=1e-4, abs=1e-5), (
            g["stage"], g["step"], key)
  # The same final network.
  from data_pipelines.sources import core as sources  # pylint: disable=g-import-not-at-top
  from experiments.configs import default  # pylint: disable=g-import-not-at-top
  from structnet_jax import config_utils  # pylint: disable=g-import-not-at-top
  from structnet_jax import models  # pylint: disable=g-import-not-at-top
  from structnet_jax import trainer  # pylint: disable=g-import-not-at-top
  finals = []
  for workdir in (single, multi):
    config = config_utils.config_from_json(str(workdir / "config.json"),
                                           default.get_config())
    space = np.load(workdir / sources.POSE_SPACE_FILENAME)
    finals.append(trainer.load_final_variables(
        models.StructNet.from_config(config.model), config, str(workdir),
        space)["params"])
  for a, b in zip(*(jax_leaves(f) for f in finals)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # The evaluation, its batches split over the processes and gathered, gives
  # the single process's table. The two-process run leaves out the LinKDE
  # and APF rows, which would cost a fit or a compile in each process: their
  # work is split by the same ownership of batches (distributed.owns) and
  # gathered by the same distributed.gather_parts as the rows checked here.
  tables = [json.loads((w / "results.json").read_text())["tables"]
            for w in (single, multi)]
  assert tables[0].keys() == tables[1].keys()
  for key in ("mpjpe", "pa_mpjpe"):
    assert list(tables[1][key]) == [
        m for m in tables[0][key] if m != "LinKDE" and not m.endswith("-APF")
    ], list(tables[1][key])
    for method, cells in tables[1][key].items():
      for action, cell in cells.items():
        other = tables[0][key][method][action]
        assert other["count"] == cell["count"], (method, action)
        assert other["mean"] == pytest.approx(cell["mean"], abs=0.05), (
            key, method, action)
  # Process 0 printed the table and wrote the reports; process 1 did not.
  assert "| StructNet-Max |" in outs[0][0]
  assert "| StructNet-Max |" not in outs[1][0]
  for name in ("results.md", "results.json", "learning_report.json",
               "figure3.png", "figure4d.png", "config.json",
               "pose_space.npy"):
    assert (multi / name).is_file(), name
  # TensorBoard event files name their writer's pid.
  events = os.listdir(multi / "tensorboard")
  assert events and all(f".{procs[0].pid}." in name for name in events), (
      events, procs[0].pid)


def jax_leaves(tree):
  import jax  # pylint: disable=g-import-not-at-top
  return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]
