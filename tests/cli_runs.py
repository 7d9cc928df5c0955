"""Runs of the command line for the end-to-end tests (helpers, not tests).

``trained`` (tests/conftest.py) is one tiny ``train_and_evaluate`` run made
with ``main_command``; the command-line tests read it or copy it, and the
two-process test trains the same run split over two processes and compares.
"""

import os
import subprocess
import sys

from structnet_jax import distributed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The tiny run every command-line test starts from (its flags matter to the
# two-process test, which must train the same run).
TINY_FLAGS = ("--config=experiments/configs/tiny.py",
              "--config.stage1.num_steps=4", "--config.stage2.num_steps=4",
              "--config.train.log_every=2", "--config.data.pose_space_size=300",
              "--config.data.num_test=40", "--config.eval.batch_size=20")


def env(devices: int | None = None, **extra):
  """A subprocess environment: the repo importable and ``devices`` host CPU
  devices (default one, as a user's command line has; not conftest's eight
  virtual ones). Distributed-run variables of the test session are dropped."""
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split()
           if "xla_force_host_platform_device_count" not in f]
  if devices is not None:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  out = {**os.environ, "PYTHONPATH": REPO, "XLA_FLAGS": " ".join(flags)}
  out.pop(distributed.ENV_VAR, None)
  out.update(extra)
  return out


def main_command(workdir, *flags):
  """``python -m experiments.main`` of the tiny run in ``workdir``."""
  return [sys.executable, "-m", "experiments.main", *TINY_FLAGS,
          f"--workdir={workdir}", *flags]


def run_main(workdir, *flags):
  """Runs ``main_command`` to completion (``CompletedProcess``, text)."""
  return subprocess.run(main_command(workdir, *flags), cwd=REPO, env=env(),
                        capture_output=True, text=True, timeout=900)
