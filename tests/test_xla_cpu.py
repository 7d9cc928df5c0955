"""The network's XLA:CPU compile options: same values and gradients, CPU only."""

import jax
import jax.numpy as jnp
import numpy as np

from structnet_jax import models
from structnet_jax import xla_cpu
from tests.test_models import _conv_reference


def test_options_are_added_on_cpu_only():
  cpu = xla_cpu.network_compiler_options("cpu")
  assert cpu == {"xla_cpu_experimental_ynn_fusion_type":
                 "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,"
                 "LIBRARY_FUSION_TYPE_REDUCE"}
  assert xla_cpu.network_compiler_options("gpu") is None
  assert xla_cpu.network_compiler_options("tpu") is None


def test_fused_conv_matches_numpy_loop():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 12, 11, 5)).astype(np.float32)
  kernel = rng.normal(size=(5, 5, 5, 7)).astype(np.float32)
  bias = rng.normal(size=(7,)).astype(np.float32)
  conv = models.Conv2D(7, 5, impl="auto")
  variables = {"params": {"kernel": jnp.asarray(kernel),
                          "bias": jnp.asarray(bias)}}
  got = xla_cpu.network_jit(conv.apply)(variables, x)
  np.testing.assert_allclose(got, _conv_reference(x, kernel, bias),
                             rtol=1e-4, atol=1e-4)


def test_fused_trunk_gradient_matches_unfused_im2col():
  """Forward and gradient of a whole network cost, compiled with the YNNPACK
  fusions (conv_impl auto = xla), against the im2col lowering compiled with
  XLA's defaults: equal to float32 tolerance."""
  rng = np.random.default_rng(1)
  images = rng.random((4, 40, 40, 3)).astype(np.float32)
  poses = rng.normal(0, 200, (4, 17, 3)).astype(np.float32)
  sizes = dict(conv_features=(8, 12, 12), conv_kernel_sizes=(9, 5, 5),
               h1_width=32, h2_width=32, h3_width=24, embed_dim=16,
               pose_hidden=16, dropout_rate=0.0)
  fused = models.StructNet(conv_impl="auto", **sizes)
  plain = models.StructNet(conv_impl="im2col", **sizes)
  variables = models.init_variables(plain, jax.random.PRNGKey(0), 40)

  def cost(model):
    def f(params):
      scores, pred = model.apply({**variables, "params": params}, images,
                                 poses)
      return jnp.sum(scores ** 2) + jnp.mean(pred ** 2) * 1e-4
    return jax.value_and_grad(f)

  v_fused, g_fused = xla_cpu.network_jit(cost(fused))(variables["params"])
  v_plain, g_plain = jax.jit(cost(plain))(variables["params"])
  np.testing.assert_allclose(v_fused, v_plain, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(g_fused),
                  jax.tree_util.tree_leaves(g_plain)):
    scale = float(np.abs(b).max()) + 1e-12
    np.testing.assert_allclose(np.asarray(a) / scale, np.asarray(b) / scale,
                               atol=1e-4)
