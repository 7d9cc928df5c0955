r"""Runs a sweep (a list of config overrides) one run after another, or prints it.

  python -m experiments.sweep --sweep=experiments/sweeps/ablations.py[:arg] \
      --config=experiments/configs/h36m_motion.py:cpu --root=DIR \
      [--set=data.motion_path=PATH ...] [--dry_run] [--only=NAME,...]

A sweep file defines ``get_sweep([arg])``: a list of dicts, each with a
``name`` (its workdir is ``ROOT/name``), an optional ``label`` and dotted
config overrides (``"loss.pose_weight": 0.0``; ``{root}`` in a string value
is replaced by ROOT). ``--set`` overrides apply to every run. Each run is
``python -m experiments.main --config=... --workdir=ROOT/NAME
--config.key=value ...``, so it resumes when re-launched; with
``--dry_run`` the commands are printed (one per line, for a cluster
scheduler) and nothing runs. A finished run (``results.json`` in its
workdir) is skipped.

After the runs, ``ROOT/sweep_results.md`` collects the tables the sweep file
declares in ``tables([arg])`` from the runs' ``results.json``
(``--report_only`` rebuilds it without running anything). Each table is
``(title, method, [(run, label)][, kind])``; kind ``"rows"`` (default): a
row per run, its ``method`` cells per action; ``"per_action"``: one row,
a column per run (each run's "All"); ``"merge"``: a run with label None
gives all its rows, others their ``method`` row under the label (Table 1
with the lambda = 0 row).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from typing import Any, Sequence

from absl import app
from absl import flags

from experiments import cli
from structnet_jax import files

_SWEEP = flags.DEFINE_string("sweep", None, "Sweep file[:argument].")
_CONFIG = flags.DEFINE_string(
    "config", "experiments/configs/default.py", "Base config file[:argument].")
_ROOT = flags.DEFINE_string("root", None, "Folder of the runs' workdirs.")
_SET = flags.DEFINE_multi_string(
    "set", [], "key=value config override for every run (repeatable).")
_ONLY = flags.DEFINE_list("only", [], "Run only these names.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands only.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False,
                                 "Only rebuild sweep_results.md.")


def load_sweep_module(spec: str):
  """``(module, arg)`` for ``path[:arg]``."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise ValueError(f"--sweep={spec!r}: no file {path!r}; sweeps live in "
                     "experiments/sweeps/ (e.g. ablations.py).")
  module_spec = importlib.util.spec_from_file_location("sweep_module", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_sweep"):
    raise ValueError(f"{path} defines no get_sweep().")
  return module, arg


def _call(fn, arg: str):
  return fn(arg) if arg else fn()


def _format_value(value: Any) -> str:
  if isinstance(value, bool):
    return str(value)
  if isinstance(value, (tuple, list)):
    return "(" + ",".join(str(v) for v in value) + ("," if len(value) == 1
                                                    else "") + ")"
  return str(value)


def check_runs(runs: Sequence[dict[str, Any]]) -> None:
  names = [r.get("name") for r in runs]
  bad = [n for n in names if not n or not str(n).replace("_", "").replace(
      "-", "").isalnum()]
  if bad:
    raise ValueError(f"every sweep run needs a name of letters, digits, _ "
                     f"or - (its workdir), got {bad}.")
  dupes = sorted({n for n in names if names.count(n) > 1})
  if dupes:
    raise ValueError(f"sweep run names must be unique; repeated: {dupes}.")


def commands(runs: Sequence[dict[str, Any]], config: str, root: str,
             common: Sequence[str] = ()) -> list[tuple[str, list[str]]]:
  """``[(name, argv)]``: the ``experiments.main`` command line of each run."""
  check_runs(runs)
  out = []
  for run in runs:
    argv = [sys.executable, "-m", "experiments.main", f"--config={config}",
            f"--workdir={os.path.join(root, run['name'])}"]
    for item in common:
      if "=" not in item:
        raise ValueError(f"--set={item!r} must be key=value, e.g. "
                         "--set=train.batch_size=64.")
      argv.append(f"--config.{item}")
    for key, value in run.items():
      if key in ("name", "label"):
        continue
      value = value.replace("{root}", root) if isinstance(value, str) else value
      argv.append(f"--config.{key}={_format_value(value)}")
    out.append((run["name"], argv))
  return out


def _results(root: str, name: str) -> dict[str, Any] | None:
  path = os.path.join(root, name, "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _cell(stats: dict[str, Any] | None) -> str:
  if not stats:
    return "-"
  return f"{stats['mean']:.2f} ({stats['std']:.2f})"


def report(module, arg: str, root: str) -> str:
  """``sweep_results.md``: the declared tables, from the runs' results.json."""
  lines = [f"# Sweep results ({root})", ""]
  if not hasattr(module, "tables"):
    return "\n".join(lines + ["(this sweep declares no tables)"]) + "\n"
  for title, method, runs, *kind in _call(module.tables, arg):
    kind = kind[0] if kind else "rows"
    results = {name: _results(root, name) for name, _ in runs}
    missing = [n for n, r in results.items() if r is None]
    lines += [f"## {title}", ""]
    if missing:
      lines += [f"Not finished yet: {', '.join(missing)}.", ""]
    if kind == "per_action":
      cols = [label for _, label in runs]
      cells = []
      for name, _ in runs:
        table = (results[name] or {}).get("tables", {}).get("mpjpe", {})
        cells.append(_cell(table.get(method, {}).get("All")))
      means = [float(c.split(" ")[0]) for c in cells if c != "-"]
      lines += ["| MPJPE (mm) | " + " | ".join(cols) + " | Avg |",
                "|---|" + "---|" * (len(cols) + 1),
                f"| {method} | " + " | ".join(cells) +
                (f" | {sum(means) / len(means):.2f} |" if means else " | - |"),
                ""]
      continue
    if kind == "merge":
      lines += _merged_table(method, runs, results)
      continue
    actions = sorted({a for r in results.values() if r
                      for a in r["tables"]["mpjpe"].get(method, {})
                      if a != "All"}) + ["All"]
    lines += [f"| {method}, MPJPE (mm) | " + " | ".join(actions) + " |",
              "|---|" + "---|" * len(actions)]
    for name, label in runs:
      table = (results[name] or {}).get("tables", {}).get("mpjpe", {})
      lines.append(f"| {label} | " + " | ".join(
          _cell(table.get(method, {}).get(a)) for a in actions) + " |")
    lines.append("")
  return "\n".join(lines) + "\n"


def _merged_table(method: str, runs, results) -> list[str]:
  """One Table-1 layout from several runs: a run listed with label None
  gives all its rows; a run with a label gives its ``method`` row, renamed."""
  rows = []
  for name, label in runs:
    table = (results[name] or {}).get("tables", {}).get("mpjpe", {})
    if label is None:
      rows += [(m, cells) for m, cells in table.items()]
    else:
      rows.append((label, table.get(method, {})))
  actions = sorted({a for _, cells in rows for a in cells if a != "All"})
  actions.append("All")
  return ["| MPJPE (mm) | " + " | ".join(actions) + " |",
          "|---|" + "---|" * len(actions)] + [
              f"| {label} | " + " | ".join(_cell(cells.get(a))
                                            for a in actions) + " |"
              for label, cells in rows] + [""]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _SWEEP.value or not _ROOT.value:
    raise app.UsageError("--sweep and --root are required.")
  module, arg = load_sweep_module(_SWEEP.value)
  runs = _call(module.get_sweep, arg)
  if _ONLY.value:
    unknown = sorted(set(_ONLY.value) - {r["name"] for r in runs})
    if unknown:
      raise app.UsageError(f"--only names {unknown} are not in the sweep "
                           f"({[r['name'] for r in runs]}).")
    runs = [r for r in runs if r["name"] in _ONLY.value]
  root = os.path.abspath(os.path.expanduser(_ROOT.value))
  todo = commands(runs, _CONFIG.value, root, _SET.value)
  if _DRY_RUN.value:
    for _, argv in todo:
      print(shlex.join(argv[0:1] + argv[1:]))
    return
  if not _REPORT_ONLY.value:
    os.makedirs(root, exist_ok=True)
    for name, argv in todo:
      if _results(root, name) is not None:
        print(f"[sweep] {name}: finished before (results.json), skipped",
              flush=True)
        continue
      print(f"[sweep] {name}: {shlex.join(argv)}", flush=True)
      done = subprocess.run(argv, check=False)
      if done.returncode != 0:
        raise SystemExit(f"[sweep] {name} failed (exit {done.returncode}); "
                         "fix it and re-launch: finished runs are skipped "
                         "and this one resumes from its last checkpoint.")
  text = report(module, arg, root)
  files.write_atomic(os.path.join(root, "sweep_results.md"), text)
  print(text)


if __name__ == "__main__":
  app.run(cli.one_line_errors(main), flags_parser=cli.parse_flags)
