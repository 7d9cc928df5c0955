"""How the network's jitted functions are compiled on XLA:CPU.

The jaxlib we install routes dots, element-wise ops and reductions to
YNNPACK kernels when asked to by the XLA option
``xla_cpu_experimental_ynn_fusion_type``. With it, XLA's own convolutions
(``conv_impl="xla"``) run the default network's stage-1 step 3.7x faster
than the hand-written im2col lowering on the 2-core development CPU
(benchmarks/RESULTS.md), with gradients equal to float tolerance
(tests/test_xla_cpu.py). The same option makes the JAX ray caster of
``data_pipelines/render/core.py`` several times *slower*, so the project sets it
per compiled function, never process-wide through ``XLA_FLAGS``: every jit
that runs the network (train steps, predictor, evaluation, figures) goes
through ``network_jit``, and the renderer's jits do not.

On GPU/TPU nothing is added.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

# The enum names of XLA's DebugOptions.LibraryFusionType.
YNN_FUSION_TYPES = ("LIBRARY_FUSION_TYPE_DOT", "LIBRARY_FUSION_TYPE_ELTWISE",
                    "LIBRARY_FUSION_TYPE_REDUCE")


def network_compiler_options(backend: str | None = None
                             ) -> dict[str, Any] | None:
  """XLA compiler options for a jitted function that runs the network.

  Args:
    backend: "cpu", "gpu", "tpu"; default ``jax.default_backend()``.

  Returns:
    ``{"xla_cpu_experimental_ynn_fusion_type": "..."}`` on CPU, else None.
  """
  backend = jax.default_backend() if backend is None else backend
  if backend != "cpu":
    return None
  return {"xla_cpu_experimental_ynn_fusion_type": ",".join(YNN_FUSION_TYPES)}


def network_jit(fun: Callable, **jit_kwargs) -> Callable:
  """``jax.jit(fun, **jit_kwargs)`` with ``network_compiler_options()``."""
  return jax.jit(fun, compiler_options=network_compiler_options(), **jit_kwargs)
