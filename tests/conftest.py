"""Test-session set-up: 8 virtual CPU devices, so sharded steps can be checked.

XLA reads the flag when JAX first starts, so it is set before anything imports
jax; single-device tests simply use the first device.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  os.environ["XLA_FLAGS"] = (_flags +
                             " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
