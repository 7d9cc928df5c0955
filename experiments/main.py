r"""Train and/or evaluate StructNet.

  python -m experiments.main --config=experiments/configs/default.py \
      --workdir=/tmp/structnet [--mode=train_and_evaluate] \
      [--config.stage2.num_steps=1000 ...]

Re-running in the same workdir resumes from the latest checkpoint. The
evaluation writes ``results.md`` and ``results.json`` to the workdir and prints
the per-action MPJPE table.

``--mode=evaluate`` on a trained workdir evaluates its model as trained (the
workdir's ``config.json``), with the given config's ``eval`` settings. Given
other data, e.g. your own motion as joint positions,

  python -m experiments.main --mode=evaluate --workdir=/tmp/structnet \
      --config=experiments/configs/positions.py:evaluate \
      --config.data.motion_path=/path/to/my_motion.npz

it evaluates the model on that data's test split and writes the report to
``<workdir>/eval/<data name>/``.
"""

from __future__ import annotations

import logging as pylogging
import os
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from experiments import cli
from experiments import pipeline
from experiments import plan
from structnet_jax import distributed
from structnet_jax import files

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/default.py", "Run configuration (get_config).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and results go.")
_DISTRIBUTED = flags.DEFINE_string(
    "distributed", None, "Several processes: 'auto' (TPU pod slice, SLURM, "
    "Open MPI) or 'HOST:PORT,NUM_PROCESSES,PROCESS_ID'; default "
    "$STRUCTNET_DISTRIBUTED, else one process (structnet_jax/distributed.py).")
_MODE = flags.DEFINE_enum("mode", "train_and_evaluate",
                          ["train", "evaluate", "train_and_evaluate"],
                          "What to do.")


def _quiet_library_logs() -> None:
  """Keeps orbax's per-checkpoint INFO lines out of the progress log."""
  class _DropOrbaxInfo(pylogging.Filter):

    def filter(self, record):
      return record.levelno > pylogging.INFO or "/orbax/" not in record.pathname

  logging.get_absl_handler().addFilter(_DropOrbaxInfo())


def main(argv):
  _quiet_library_logs()
  distributed.initialize(_DISTRIBUTED.value)  # before any JAX computation
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required (a folder for checkpoints and "
                         "results; re-use it to resume).")
  config = _CONFIG.value
  workdir = files.absolute(_WORKDIR.value)  # gs://... stays as it is
  start = time.time()
  run = pipeline.Run.create(config, workdir, mode=_MODE.value)
  logging.info("%s", plan.plan_line(run, _MODE.value))
  if _MODE.value in ("train", "train_and_evaluate"):
    run.train()
  if _MODE.value in ("evaluate", "train_and_evaluate"):
    report = run.evaluate()
    if distributed.is_main_process():
      print(report["markdown"])
    logging.info("results written to %s", os.path.join(run.out_dir,
                                                       "results.md"))
  logging.info("the run took %.1f min", (time.time() - start) / 60)


if __name__ == "__main__":
  app.run(cli.one_line_errors(main), flags_parser=cli.parse_flags)
