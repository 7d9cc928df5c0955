"""Networks: conv lowering, shapes, pose normalisation, variants, gradient paths."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from structnet_jax import models
from structnet_jax import train

TINY = dict(conv_features=(4, 6, 5), conv_kernel_sizes=(5, 3, 3), h1_width=16,
            h2_width=12, h3_width=10, embed_dim=8, pose_hidden=9,
            dropout_rate=0.5)


def _conv_reference(x, kernel, bias):
  """VALID stride-1 convolution as an explicit numpy loop."""
  b, h, w, _ = x.shape
  k = kernel.shape[0]
  out = np.zeros((b, h - k + 1, w - k + 1, kernel.shape[-1]))
  for i in range(h - k + 1):
    for j in range(w - k + 1):
      out[:, i, j] = np.einsum("bhwc,hwcf->bf", x[:, i:i + k, j:j + k], kernel)
  return out + bias


@pytest.mark.parametrize("impl", ["im2col", "xla", "auto"])
@pytest.mark.parametrize("c_in", [3, 10])  # channel-major and channel-last patches
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_conv_matches_numpy_loop(impl, c_in, padding):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 9, 8, c_in)).astype(np.float32)
  conv = models.Conv2D(5, 4, padding=padding, impl=impl)
  variables = conv.init(jax.random.PRNGKey(0), x)
  variables = jax.tree_util.tree_map(
      lambda a: jnp.asarray(rng.normal(size=a.shape), jnp.float32), variables)
  got = conv.apply(variables, x)
  p = variables["params"]
  padded = x if padding == "VALID" else np.pad(
      x, ((0, 0), (1, 2), (1, 2), (0, 0)))  # k=4: 1 before, 2 after
  want = _conv_reference(padded, np.asarray(p["kernel"]),
                         np.asarray(p["bias"]))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_max_pool_matches_numpy_loop_and_reduce_window_gradient():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 7, 6, 3)).astype(np.float32)  # odd rows are dropped
  want = np.zeros((2, 3, 3, 3), np.float32)
  for i in range(3):
    for j in range(3):
      want[:, i, j] = x[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(1, 2))
  np.testing.assert_array_equal(models.max_pool_2x2(jnp.asarray(x)), want)
  weights = rng.normal(size=want.shape).astype(np.float32)
  grad = jax.grad(lambda a: jnp.sum(models.max_pool_2x2(a) * weights))(x)
  ref = jax.grad(lambda a: jnp.sum(flax_max_pool(a) * weights))(x)
  np.testing.assert_allclose(grad, ref, rtol=1e-6)


def flax_max_pool(x):
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  return nn.max_pool(x, (2, 2), (2, 2), "VALID")


def test_default_shapes_follow_the_paper():
  model = models.StructNet()
  shapes = jax.eval_shape(
      lambda: models.init_variables(model, jax.random.PRNGKey(0), 112))
  p = shapes["params"]
  assert p["trunk"]["conv1"]["kernel"].shape == (9, 9, 3, 32)
  assert p["trunk"]["conv2"]["kernel"].shape == (5, 5, 32, 64)
  assert p["trunk"]["conv3"]["kernel"].shape == (5, 5, 64, 64)
  # 112 -9+1 = 104 -> 52; 52-5+1 = 48 -> 24; 24-5+1 = 20 -> 10.
  assert p["h1"]["kernel"].shape == (24 * 24 * 64, 1024)
  assert p["h2"]["kernel"].shape == (10 * 10 * 64, 1024)
  assert p["h3"]["kernel"].shape == (2048, 1024)
  assert p["h4"]["kernel"].shape == (1024, 1024)
  assert p["pose_embed"]["h5"]["kernel"].shape == (51, 1024)
  assert p["pose_embed"]["h6"]["kernel"].shape == (1024, 1024)
  assert p["head"]["kernel"].shape == (1024, 51)


@functools.lru_cache(maxsize=None)
def _tiny(**kw):
  """A tiny network and its variables, built once per variant."""
  model = models.StructNet(**{**TINY, **kw})
  rng = np.random.default_rng(1)
  poses = rng.normal(scale=300, size=(50, 17, 3)).astype(np.float32)
  variables = models.init_variables(model, jax.random.PRNGKey(0), 24,
                                    models.pose_stats_from(poses))
  return model, variables, poses


def test_score_is_dot_product_of_embeddings():
  model, variables, poses = _tiny()
  images = jax.random.uniform(jax.random.PRNGKey(2), (3, 24, 24, 3))
  scores, _ = model.apply(variables, images, poses[:3])
  f_i = np.asarray(model.apply(variables, images, method=model.embed_image))
  f_j = np.asarray(model.apply(variables, poses[:3], method=model.embed_pose))
  want = [sum(f_i[b, d] * f_j[b, d] for d in range(f_i.shape[1]))
          for b in range(3)]
  np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-6)
  assert (f_i >= 0).all() and (f_j >= 0).all()  # ReLU embeddings h4, h6


def test_pose_normalisation_round_trip_and_tanh_range():
  model, variables, poses = _tiny()
  stats = models.pose_stats_from(poses)
  y = model.apply(variables, poses, method=model.normalise_pose)
  assert y.shape == (50, 51)
  assert float(jnp.abs(y).max()) <= 0.9 + 1e-5  # inside tanh's range
  np.testing.assert_allclose(
      np.asarray(y).reshape(50, 17, 3) * stats["scale"] + stats["mean"], poses,
      atol=1e-3)
  back = model.apply(variables, y, method=model.denormalise_pose)
  np.testing.assert_allclose(back, poses, atol=1e-3)
  images = jax.random.uniform(jax.random.PRNGKey(3), (2, 24, 24, 3))
  pred = model.apply(variables, images, method=model.predict_pose)
  assert pred.shape == (2, 17, 3)  # millimetres, de-normalised


@pytest.mark.parametrize("kind,dim,trained", [
    ("raw", 51, set()), ("one_layer_random", 8, set()),
    ("one_layer", 8, {"h5"}), ("two_layer", 8, {"h5", "h6"})])
def test_pose_embedding_variants(kind, dim, trained):
  model, variables, poses = _tiny(pose_embedding=kind)
  emb = model.apply(variables, poses[:4], method=model.embed_pose)
  assert emb.shape == (4, dim)
  images = jnp.zeros((4, 24, 24, 3))
  assert model.apply(variables, images, method=model.embed_image).shape == (4, dim)
  assert set(variables["params"].get("pose_embed", {})) == trained
  if kind == "one_layer_random":
    assert "fixed" in variables  # drawn once, never in "params"
  if kind == "raw":
    np.testing.assert_allclose(
        emb, model.apply(variables, poses[:4], method=model.normalise_pose))


def test_pose_loss_gradient_reaches_only_trunk_and_h1_to_h3():
  model, variables, poses = _tiny()
  params, constants = train.split_variables(variables)
  images = jax.random.uniform(jax.random.PRNGKey(4), (4, 24, 24, 3))

  def cost(p):
    c2, c3 = model.apply({"params": p, **constants}, images,
                         method=model.features)
    return train.pose_cost(model, p, constants, c2, c3, poses[:4],
                           jax.random.PRNGKey(5))

  grads = jax.grad(cost)(params)
  norms = {k: float(sum(jnp.sum(jnp.square(g))
                        for g in jax.tree_util.tree_leaves(v)))
           for k, v in grads.items()}
  for k in ("trunk", "h1", "h2", "h3", "head"):
    assert norms[k] > 0, k
  for k in ("h4", "pose_embed"):
    assert norms[k] == 0, k


def test_weight_l2_counts_fc_kernels_only():
  model, variables, _ = _tiny()
  p = variables["params"]
  want = sum(float(np.sum(np.square(p[k]["kernel"])))
             for k in ("h1", "h2", "h3", "h4", "head"))
  want += sum(float(np.sum(np.square(p["pose_embed"][k]["kernel"])))
              for k in ("h5", "h6"))
  np.testing.assert_allclose(models.weight_l2(p), want, rtol=1e-5)


def test_from_config_rejects_unknown_fields_and_values():
  with pytest.raises(ValueError, match="unknown config.model field"):
    models.StructNet.from_config({"embed_dims": 3})
  with pytest.raises(ValueError, match="pose_embedding"):
    models.StructNet.from_config({"pose_embedding": "three_layer"})


def test_pose_stats_rejects_bad_pose_sets():
  with pytest.raises(ValueError, match=r"\[\.\.\., 17, 3\]"):
    models.pose_stats_from(np.zeros((5, 16, 3)))
  with pytest.raises(ValueError, match="NaN"):
    bad = np.zeros((5, 17, 3))
    bad[2, 3, 1] = np.nan
    models.pose_stats_from(bad)
