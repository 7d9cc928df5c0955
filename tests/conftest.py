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
more each on 2 cores) are collected first. pytest-xdist hands tests out in
collection order, so a long test collected near the end would leave the other
worker idle while it finishes; started first, the short tests fill in behind
them.
"""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  os.environ["XLA_FLAGS"] = (_flags +
                             " --xla_force_host_platform_device_count=8").strip()
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
  """Puts the end-to-end tests first, each group in collection order."""
  del config
  items.sort(key=lambda item: item.get_closest_marker("end_to_end") is None)
