"""The sweep launcher: command lines, sweep files, and the collected tables."""

import glob
import json
import os
import sys

import pytest

from experiments import sweep
from experiments.configs import default as default_config
from experiments.configs import h36m_motion
from experiments.configs import h36m_release
from experiments.configs import paper
from experiments.configs import positions
from experiments.configs import tiny
from structnet_jax import config_utils

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEPS = sorted(p for p in glob.glob(os.path.join(REPO, "experiments",
                                                  "sweeps", "*.py"))
                if not p.endswith("__init__.py"))


def test_commands_apply_common_and_per_run_overrides():
  runs = [{"name": "a", "label": "A"},
          {"name": "b", "loss.pose_weight": 0.0, "eval.apf_sizes": (500,),
           "stage1.init_from": "{root}/a", "eval.figures": False}]
  cmds = sweep.commands(runs, "experiments/configs/tiny.py", "/r",
                        ["train.batch_size=8"])
  assert [n for n, _ in cmds] == ["a", "b"]
  a, b = cmds[0][1], cmds[1][1]
  assert a == [sys.executable, "-m", "experiments.main",
               "--config=experiments/configs/tiny.py", "--workdir=/r/a",
               "--config.train.batch_size=8"]
  assert b[4:] == ["--workdir=/r/b", "--config.train.batch_size=8",
                   "--config.loss.pose_weight=0.0",
                   "--config.eval.apf_sizes=(500,)",
                   "--config.stage1.init_from=/r/a",
                   "--config.eval.figures=False"]


@pytest.mark.parametrize("runs, message", [
    ([{"name": "a"}, {"name": "a"}], "unique"),
    ([{"label": "no name"}], "needs a name"),
    ([{"name": "../up"}], "needs a name"),
])
def test_bad_sweeps_are_refused(runs, message):
  with pytest.raises(ValueError, match=message):
    sweep.commands(runs, "c.py", "/r")


def test_a_bare_set_flag_is_refused():
  with pytest.raises(ValueError, match="key=value"):
    sweep.commands([{"name": "a"}], "c.py", "/r", ["train.batch_size"])


@pytest.mark.parametrize("path", SWEEPS, ids=os.path.basename)
def test_every_sweep_names_only_known_fields(path):
  module, _ = sweep.load_sweep_module(path)
  known = set(config_utils.flatten(default_config.get_config()))
  runs = module.get_sweep()
  sweep.check_runs(runs)
  for run in runs:
    unknown = set(run) - {"name", "label"} - known
    assert not unknown, (path, run["name"], unknown)
  table_runs = {n for _, _, rows, *_ in module.tables() for n, _ in rows}
  assert table_runs
  assert table_runs <= {r["name"] for r in runs}


def test_missing_sweep_file_is_named():
  with pytest.raises(ValueError, match="no file"):
    sweep.load_sweep_module("experiments/sweeps/nope.py")


def _write_results(root, name, cells):
  """results.json with StructNet-Max cells {action: (mean, std)}."""
  os.makedirs(os.path.join(root, name))
  table = {"StructNet-Max": {a: {"mean": m, "std": s, "count": 1}
                             for a, (m, s) in cells.items()}}
  with open(os.path.join(root, name, "results.json"), "w") as f:
    json.dump({"tables": {"mpjpe": table, "pa_mpjpe": table}}, f)


class _Sweep:

  @staticmethod
  def tables():
    return [("Rows", "StructNet-Max", [("x", "run x"), ("y", "run y"),
                                       ("z", "run z")]),
            ("Per action", "StructNet-Max", [("x", "walking"),
                                             ("y", "eating")], "per_action"),
            ("Merged", "StructNet-Max", [("x", None), ("y", "y's Max")],
             "merge")]


def test_report_collects_cells_and_names_unfinished_runs(tmp_path):
  _write_results(tmp_path, "x", {"walking": (100.0, 10.0), "All": (90.0, 9.0)})
  _write_results(tmp_path, "y", {"eating": (50.0, 5.0), "All": (60.0, 6.0)})
  text = sweep.report(_Sweep, "", str(tmp_path))
  assert "Not finished yet: z." in text
  assert "| run x | - | 100.00 (10.00) | 90.00 (9.00) |" in text
  assert "| run y | 50.00 (5.00) | - | 60.00 (6.00) |" in text
  assert "| run z | - | - | - |" in text
  # Per action: each column from its own run's "All"; Avg = (90 + 60) / 2.
  assert ("| StructNet-Max | 90.00 (9.00) | 60.00 (6.00) | 75.00 |"
          in text)
  # Merged: all of x's rows, then y's StructNet-Max under its label.
  merged = text.split("## Merged")[1]
  assert "| StructNet-Max | - | 100.00 (10.00) | 90.00 (9.00) |" in merged
  assert "| y's Max | 50.00 (5.00) | - | 60.00 (6.00) |" in merged


@pytest.mark.parametrize("get_config", [
    default_config.get_config, tiny.get_config, paper.get_config,
    positions.get_config, h36m_motion.get_config, h36m_release.get_config] + [
        lambda m=m, v=v: m.get_config(v) for m in (h36m_motion, h36m_release)
        for v in h36m_motion.VARIANTS])
def test_every_config_declares_only_known_fields_in_range(get_config):
  config_utils.check_config(get_config(), default_config.get_config())
  config_utils.check_values(get_config())


def test_protocol_variants_halve_cpu_for_quick_and_hold_out_s8_for_val():
  cpu, quick = h36m_motion.get_config("cpu"), h36m_motion.get_config("quick")
  assert quick.data.frame_step == 2 * cpu.data.frame_step == 50
  assert (quick.stage1.num_steps, quick.stage2.num_steps) == (
      cpu.stage1.num_steps // 2, cpu.stage2.num_steps // 2)
  assert tuple(quick.eval.apf_sizes) == ()
  widths = lambda c: (c.model.h1_width, c.model.h2_width, c.model.h3_width,
                      c.model.embed_dim, c.model.pose_hidden)
  # The CPU protocol's FC layers are twice the default config's (learning
  # study, section 14); the paper variant keeps Figure 1's.
  assert widths(cpu) == widths(quick) == (512,) * 5
  assert widths(h36m_motion.get_config("cpu_val")) == (512,) * 5
  assert widths(h36m_motion.get_config("paper")) == (1024,) * 5
  assert widths(default_config.get_config()) == (256,) * 5
  for v in ("cpu_val", "quick_val"):
    assert h36m_motion.get_config(v).data.validation_subjects == "S8"
  assert cpu.data.validation_subjects == ""


def test_unknown_config_argument_is_named():
  with pytest.raises(ValueError, match="h36m_motion.py:cpu"):
    h36m_motion.get_config("gpu")
