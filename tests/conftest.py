"""Test-session set-up: 8 virtual CPU devices, so sharded steps can be checked.

XLA reads the flag when JAX first starts, so it is set before anything imports
jax; single-device tests simply use the first device.

The pytest workers and every process a test starts (the command-line,
notebook and two-process tests) share one persistent XLA compilation cache,
so the same small programs are not compiled again in each of them (a tiny
``experiments.main`` run: 37 s cold, 16 s warm on 2 cores). The cache only
saves compile time: its keys cover the program, the XLA flags and the jax
version.

The end-to-end tests (``@pytest.mark.end_to_end``: whole runs, a minute or
more each on 2 cores) are collected first (``pytest_collection_modifyitems``).
pytest-xdist hands tests out in collection order, so a long test collected
near the end would leave the other worker idle while it finishes; started
first, the short tests fill in behind them.
"""

import json
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  _flags += " --xla_force_host_platform_device_count=8"
# The tests' programs are small and compiled once: at XLA's backend
# optimisation level 0 (default 2) a tiny CLI run took 46 s against 58 s at
# level 1, back to back, with the same printed report (WORKSPACE.md). Every
# process the tests start inherits it through the environment.
if "xla_backend_optimization_level" not in _flags:
  _flags += " --xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = _flags.strip()
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    tempfile.gettempdir(), f"structnet-jax-test-xla-cache-{os.getuid()}"))
# Only programs that took a second or more to compile: writing every small
# one to disk costs more than it saves (a cold suite took 16 min with all).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
# A bounded cache needs the filelock package (the test extra has it; without
# it every cache read fails with a warning and nothing is saved).
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 << 30))


def pytest_collection_modifyitems(config, items):
  """Orders the tests for two workers: the end-to-end tests first.

  setup.cfg's ``--maxschedchunk=1`` makes pytest-xdist hand tests out one at
  a time as workers free up (by default the first worker's first chunk would
  hold every end-to-end test, run one after the other). The first test
  that needs the shared ``trained`` run trains it; the end-to-end tests that
  do not need it come next, so the other worker is not left waiting on the
  lock; then the rest of the ``trained`` tests; then the short tests. Each
  group keeps collection order.
  """
  del config

  def uses_trained(item):
    return "trained" in getattr(item, "fixturenames", ())

  first = next((i for i in items if uses_trained(i) and
                i.get_closest_marker("end_to_end") is not None), None)

  def group(item):
    if item.get_closest_marker("end_to_end") is None:
      return 3
    if item is first:
      return 0
    return 2 if uses_trained(item) else 1

  items.sort(key=group)


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
  """``(workdir, run)``: one tiny ``train_and_evaluate`` run of the command
  line (``cli_runs.run_main``), trained once per test session and shared by
  the command-line tests and the two-process test; ``run`` holds its
  ``returncode``, ``stdout`` and ``stderr``.

  With pytest-xdist both workers share it: the first to take the lock trains,
  the other waits and reads. Tests read the workdir as it is; a test that
  writes into a workdir (evaluate, resume, predict) works on its own copy, so
  the tests need no order.
  """
  import cli_runs  # pylint: disable=g-import-not-at-top
  import filelock  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent  # this session's folder, above the workers' own
  workdir = root / "cli_tiny_run"
  record = root / "cli_tiny_run.json"
  with filelock.FileLock(str(root / "cli_tiny_run.lock")):
    if not record.exists():
      shutil.rmtree(workdir, ignore_errors=True)
      run = cli_runs.run_main(workdir, "--config.train.plan_probe=True")
      record.write_text(json.dumps({"returncode": run.returncode,
                                    "stdout": run.stdout,
                                    "stderr": run.stderr}))
  run = json.loads(record.read_text())
  assert run["returncode"] == 0, run["stderr"][-3000:]
  return workdir, run
