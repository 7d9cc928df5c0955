"""Stage 1's joint-detection task ([18]): targets and loss against numpy
loops, the cost it adds to stage 1, the 2D joints of the on-device source's
random crops, and a clear error where the data has no 2D joints."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from data_pipelines.sources import device as device_source
from experiments.configs import default as default_config
from structnet_jax import detection
from structnet_jax import models
from structnet_jax import train


def _cells_loop(pose_2d, crop, grid):
  out = np.zeros(pose_2d.shape[:-1] + (grid * grid,))
  for idx in np.ndindex(*pose_2d.shape[:-1]):
    x, y = pose_2d[idx]
    col, row = int(np.floor(x * grid / crop)), int(np.floor(y * grid / crop))
    if 0 <= col < grid and 0 <= row < grid:
      out[idx + (row * grid + col,)] = 1.0
  return out


def test_joint_cells_match_numpy_loop_with_edges_and_outside_joints():
  rng = np.random.default_rng(0)
  pose_2d = rng.uniform(-10, 66, size=(3, 17, 2)).astype(np.float32)
  # Cell edges, the crop's last pixel, and just outside on every side.
  pose_2d[0, :6] = [[0, 0], [13.99, 14], [14, 13.99], [55.9, 55.9],
                    [-0.01, 20], [20, 56]]
  got = np.asarray(detection.joint_cells(jnp.asarray(pose_2d), 56, 4))
  np.testing.assert_array_equal(got, _cells_loop(pose_2d, 56, 4))
  assert got[0, 0, 0] == 1 and got[0, 1, 1 * 4 + 0] == 1  # (x=13.99, y=14)
  assert got[0, 2, 0 * 4 + 1] == 1 and got[0, 3, 15] == 1
  assert got[0, 4].sum() == 0 and got[0, 5].sum() == 0


def test_detection_loss_matches_numpy_binary_cross_entropy():
  rng = np.random.default_rng(1)
  logits = rng.normal(scale=3, size=(2, 17, 9))
  targets = (rng.uniform(size=(2, 17, 9)) < 0.2).astype(np.float64)
  p = 1 / (1 + np.exp(-logits))
  bce = -(targets * np.log(p) + (1 - targets) * np.log(1 - p))
  want = bce.sum(-1).mean(-1)
  got = detection.detection_loss(jnp.asarray(logits), jnp.asarray(targets))
  np.testing.assert_allclose(got, want, rtol=1e-5)


def _tiny(grid):
  model = models.StructNet(conv_features=(3, 4, 4), conv_kernel_sizes=(3, 3, 3),
                           h1_width=6, h2_width=5, h3_width=7, embed_dim=4,
                           pose_hidden=5, dropout_rate=0.0,
                           detection_grid=grid)
  rng = np.random.default_rng(2)
  poses = rng.normal(scale=300, size=(4, 17, 3)).astype(np.float32)
  variables = models.init_variables(model, jax.random.PRNGKey(0), 24,
                                    models.pose_stats_from(poses))
  batch = {"image": jnp.asarray(rng.uniform(size=(4, 24, 24, 3)), jnp.float32),
           "pose": jnp.asarray(poses),
           "pose_2d": jnp.asarray(rng.uniform(0, 24, size=(4, 17, 2)),
                                  jnp.float32)}
  return model, variables, batch


def test_pretrain_cost_adds_weighted_detection_and_trains_the_trunk_with_it():
  config = default_config.get_config()
  config.loss.detection_weight = 0.5
  model, variables, batch = _tiny(3)
  params, constants = train.split_variables(variables)
  assert params["detect"]["kernel"].shape == (7, 17 * 9)
  key = jax.random.PRNGKey(1)

  def cost(p, weight):
    config.loss.detection_weight = weight
    c2, c3 = model.apply({"params": p, **constants}, batch["image"],
                         method=models.StructNet.features)
    return train.pretrain_cost(model, config, p, constants, c2, c3, batch,
                               key)
  value, terms = cost(params, 0.5)
  # The detection term by hand: h3 -> W8 h3 + b8 -> numpy BCE on numpy cells.
  h3 = model.apply(variables, *model.apply(variables, batch["image"],
                                           method=models.StructNet.features),
                   method=models.StructNet.hidden)
  logits = (np.asarray(h3) @ np.asarray(params["detect"]["kernel"]) +
            np.asarray(params["detect"]["bias"])).reshape(4, 17, 9)
  cells = _cells_loop(np.asarray(batch["pose_2d"]), 24, 3)
  p = 1 / (1 + np.exp(-logits))
  det = np.mean((-(cells * np.log(p) + (1 - cells) * np.log(1 - p))).sum(-1))
  np.testing.assert_allclose(terms["detection_loss"], det, rtol=1e-4)
  pose_only = train.pose_cost(model, params, constants,
                              *model.apply(variables, batch["image"],
                                           method=models.StructNet.features),
                              batch["pose"], key)
  np.testing.assert_allclose(terms["pose_loss"], pose_only, rtol=1e-5)
  np.testing.assert_allclose(value, pose_only + 0.5 * det, rtol=1e-4)
  # The detection term reaches the conv trunk.
  g_with = jax.grad(lambda p: cost(p, 0.5)[0])(params)["trunk"]
  g_without = jax.grad(lambda p: cost(p, 0.0)[0])(params)["trunk"]
  diff = jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                                g_with, g_without)
  assert max(jax.tree_util.tree_leaves(diff)) > 1e-6


def test_pretrain_step_learns_detection_and_refuses_batches_without_2d():
  config = default_config.get_config()
  config.stage1.learning_rate = 1e-2
  model, variables, batch = _tiny(3)
  state = train.TrainState(
      step=jnp.int32(0), params=variables["params"],
      constants={k: v for k, v in variables.items() if k != "params"},
      opt_state=train.make_optimizer(config, "stage1").init(
          variables["params"]),
      violation_counts=jnp.zeros(1, jnp.int32), key=jax.random.PRNGKey(3))
  step = jax.jit(train.make_pretrain_step(model, config))
  losses = []
  for _ in range(80):
    state, m = step(state, batch)
    losses.append(float(m["detection_loss"]))
  # Below what the best constant detector (each cell at its frequency, 1/9)
  # reaches: -(log 1/9 + 8 log 8/9) = 3.14; the start is 9 log 2 = 6.24.
  assert losses[-1] < 3.0
  with pytest.raises(ValueError, match="needs the 2D joints.*detection_grid=0"):
    step(state, {"image": batch["image"], "pose": batch["pose"]})


def test_render_source_moves_2d_joints_with_its_random_crop():
  rng = np.random.default_rng(5)
  images = jnp.asarray(rng.integers(0, 256, (4, 16, 16, 3)), jnp.uint8)
  joints_2d = jnp.asarray(rng.uniform(0, 16, (4, 17, 2)), jnp.float32)
  out = device_source._train_finish(
      jax.random.PRNGKey(0), jnp.uint32(3), images, joints_2d,
      jnp.arange(4), jnp.zeros((4, 17, 3)), jnp.zeros(4, jnp.int32),
      jnp.zeros(1), jnp.ones(3), jnp.eye(3), jnp.float32(0.0), crop=11,
      pixel_noise=False)
  for b in range(4):
    crop = np.round(np.asarray(out["image"][b]) * 255).astype(np.uint8)
    windows = np.lib.stride_tricks.sliding_window_view(
        np.asarray(images[b]), (11, 11, 3))[:, :, 0]
    (y, x), = np.argwhere((windows == crop).all(axis=(2, 3, 4)))
    np.testing.assert_allclose(out["pose_2d"][b],
                               np.asarray(joints_2d[b]) - [x, y], atol=1e-6)


def test_detection_grid_must_not_be_negative():
  with pytest.raises(ValueError, match="detection_grid=-1 must be >= 0"):
    models.init_variables(models.StructNet(detection_grid=-1),
                          jax.random.PRNGKey(0), 112)
