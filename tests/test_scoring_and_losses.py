"""Scoring, margins, most-violated pose, Avg(A) against numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from structnet_jax import losses
from structnet_jax import models
from structnet_jax import scoring
from structnet_jax import working_set


def _mpjpe_loop(a, b):
  return np.mean([np.linalg.norm(a[j] - b[j]) for j in range(17)])


def test_margins_and_most_violated_match_numpy_loops():
  rng = np.random.default_rng(0)
  y = rng.normal(scale=200, size=(4, 17, 3)).astype(np.float32)
  cands = rng.normal(scale=200, size=(30, 17, 3)).astype(np.float32)
  scores = rng.normal(size=(4, 30)).astype(np.float32)
  margin = np.asarray(losses.margins(y, cands, 100.0))
  for b in range(4):
    for m in range(30):
      np.testing.assert_allclose(margin[b, m], _mpjpe_loop(y[b], cands[m]) / 100,
                                 rtol=1e-5)
  hat = np.asarray(losses.most_violated(scores, margin))
  for b in range(4):
    best, best_val = None, -np.inf
    for m in range(30):
      if scores[b, m] + margin[b, m] > best_val:
        best, best_val = m, scores[b, m] + margin[b, m]
    assert hat[b] == best


def test_zero_loss_iff_eq9_holds_on_candidate_set():
  rng = np.random.default_rng(1)
  for trial in range(50):
    scores = rng.normal(size=(6, 25))
    margin = np.abs(rng.normal(size=(6, 25)))
    # True-pose scores around the decision boundary, so both cases occur.
    s_true = (scores + margin).max(axis=1) + rng.normal(scale=0.5, size=6)
    hat = np.asarray(losses.most_violated(jnp.asarray(scores),
                                          jnp.asarray(margin)))
    loss = np.asarray(losses.max_margin_loss(
        jnp.asarray(s_true), jnp.asarray(scores[np.arange(6), hat]),
        jnp.asarray(margin[np.arange(6), hat])))
    for b in range(6):
      eq9 = all(s_true[b] >= scores[b, m] + margin[b, m] for m in range(25))
      assert (loss[b] == 0) == eq9, (trial, b)
      assert loss[b] >= 0


def test_pose_regression_loss_is_sum_of_squares():
  rng = np.random.default_rng(2)
  a, b = rng.normal(size=(2, 3, 51))
  want = [sum((a[i, k] - b[i, k]) ** 2 for k in range(51)) for i in range(3)]
  np.testing.assert_allclose(losses.pose_regression_loss(a, b), want, rtol=1e-5)


def test_candidate_indices_and_violation_counts():
  counts = jnp.asarray([0, 5, 2, 9, 9, 1, 0, 3], jnp.int32)
  idx = np.asarray(working_set.candidate_indices(jax.random.PRNGKey(0), counts,
                                                 100, 3))
  assert idx.shape == (103,)
  assert ((idx >= 0) & (idx < 8)).all()
  assert set(idx[-3:].tolist()) == {3, 4, 1}  # the 3 most frequently violated
  assert len(set(idx[:100].tolist())) == 8  # uniform part covers the space
  violated = np.array([1, 1, 7, 0])
  got = np.asarray(working_set.record_violations(counts, jnp.asarray(violated)))
  want = np.asarray(counts).copy()
  for v in violated:
    want[v] += 1
  np.testing.assert_array_equal(got, want)
  # K larger than the pose space is clipped, not an error.
  assert working_set.candidate_indices(jax.random.PRNGKey(1), counts, 4,
                                       50).shape == (12,)
  with pytest.raises(ValueError, match="empty"):
    working_set.init_counts(0)


def _tiny_model():
  model = models.StructNet(conv_features=(4, 4, 4), conv_kernel_sizes=(3, 3, 3),
                           h1_width=8, h2_width=8, h3_width=8, embed_dim=6,
                           pose_hidden=7)
  rng = np.random.default_rng(3)
  cands = rng.normal(scale=300, size=(37, 17, 3)).astype(np.float32)
  variables = models.init_variables(model, jax.random.PRNGKey(0), 24,
                                    models.pose_stats_from(cands))
  return model, variables, cands


def test_candidate_table_chunks_and_predictor_match_numpy():
  model, variables, cands = _tiny_model()
  table = scoring.embed_candidate_poses(model, variables, cands, chunk_size=8)
  direct = model.apply(variables, cands, method=model.embed_pose)
  np.testing.assert_allclose(table, direct, rtol=1e-5, atol=1e-6)
  images = jax.random.uniform(jax.random.PRNGKey(1), (5, 24, 24, 3))
  predict = scoring.make_predictor(model, avg_sizes=(1, 4, 37), top_k=6)
  out = predict(variables, images, table, cands)
  emb = np.asarray(model.apply(variables, images, method=model.embed_image))
  table = np.asarray(table)
  for b in range(5):
    s = np.array([np.dot(emb[b], table[n]) for n in range(37)])
    order = np.argsort(-s, kind="stable")
    np.testing.assert_allclose(out["top_scores"][b], s[order[:6]], rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(out["max"][b], cands[np.argmax(s)], atol=1e-4)
    for a in (1, 4, 37):
      np.testing.assert_allclose(out["avg"][a][b], cands[order[:a]].mean(0),
                                 atol=1e-3)
  np.testing.assert_allclose(
      out["pred"], model.apply(variables, images, method=model.predict_pose),
      atol=1e-3)
  # The stand-alone helpers agree with the fused predictor.
  scores = scoring.score_images(jnp.asarray(emb), jnp.asarray(table))
  np.testing.assert_allclose(scoring.structnet_max(scores, cands), out["max"],
                             atol=1e-4)
  np.testing.assert_allclose(scoring.structnet_avg(scores, cands, 4),
                             out["avg"][4], atol=1e-3)


def test_bad_candidate_sets_and_arguments_are_refused_clearly():
  model, variables, cands = _tiny_model()
  with pytest.raises(ValueError, match="empty"):
    scoring.embed_candidate_poses(model, variables, np.zeros((0, 17, 3)))
  bad = cands.copy()
  bad[5, 2, 0] = np.nan
  with pytest.raises(ValueError, match=r"NaN.*\[5\]"):
    scoring.embed_candidate_poses(model, variables, bad)
  with pytest.raises(ValueError, match=r"\[\.\.\., 17, 3\]"):
    scoring.embed_candidate_poses(model, variables, cands.reshape(37, 51))
  table = scoring.embed_candidate_poses(model, variables, cands)
  images = jnp.zeros((2, 24, 24, 3))
  with pytest.raises(ValueError, match="A=38.*N=37"):
    scoring.make_predictor(model, avg_sizes=(38,))(variables, images, table,
                                                   cands)
  with pytest.raises(ValueError, match="images must be"):
    scoring.make_predictor(model, avg_sizes=(2,))(variables, images[..., 0],
                                                  table, cands)


def _tiny_cost_problem(seed: int, batch: int, dropout_rate: float):
  """A tiny float64 network, conv features, y, y_hat and margins (x64 on)."""
  from experiments.configs import tiny  # pylint: disable=g-import-not-at-top
  from structnet_jax import train  # pylint: disable=g-import-not-at-top
  model = models.StructNet(conv_features=(3, 4, 4), conv_kernel_sizes=(3, 3, 3),
                           h1_width=6, h2_width=5, h3_width=7, embed_dim=4,
                           pose_hidden=5, dropout_rate=dropout_rate)
  rng = np.random.default_rng(seed)
  poses = rng.normal(scale=300, size=(2 * batch, 17, 3))
  variables = models.init_variables(model, jax.random.PRNGKey(seed), 24,
                                    models.pose_stats_from(poses))
  variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64),
                                     variables)
  params, constants = train.split_variables(variables)
  images = jnp.asarray(rng.uniform(size=(batch, 24, 24, 3)))
  c2, c3 = model.apply(variables, images, method=model.features)
  y, y_hat = jnp.asarray(poses[:batch]), jnp.asarray(poses[batch:])
  margin = jnp.asarray(rng.uniform(1, 3, size=batch))
  config = tiny.get_config()
  config.stage2.optimizer = "line_search"  # Eq. 12's weight term in the cost
  return (config, model, params, constants, c2, c3, y, y_hat, margin, rng)


def test_max_margin_cost_gradient_matches_finite_differences():
  """jax.grad of Eq. 12 (with dropout and y_hat fixed) vs central differences."""
  from jax import test_util  # pylint: disable=g-import-not-at-top
  from structnet_jax import train  # pylint: disable=g-import-not-at-top
  with jax.enable_x64(True):
    (config, model, params, constants, c2, c3, y, y_hat, margin,
     _) = _tiny_cost_problem(4, 3, 0.3)

    def cost(p):
      return train.max_margin_cost(model, config, p, constants, c2, c3, y,
                                   y_hat, margin, jax.random.PRNGKey(7))[0]

    aux = train.max_margin_cost(model, config, params, constants, c2, c3, y,
                                y_hat, margin, jax.random.PRNGKey(7))[1]
    assert (np.asarray(aux["margin_losses"]) > 0).all()  # Eq. 6 is active
    test_util.check_grads(cost, (params,), order=1, modes=["rev"], eps=1e-6,
                          atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("frozen", [("trunk",), ("trunk", "h1", "h2", "h3")])
def test_cost_along_direction_equals_cost_at_moved_params(frozen):
  """The line search's shared-product cost along -grad vs the plain cost,
  with the trunk fixed, and with h1-h3 fixed too (stage2.frozen_layers)."""
  from structnet_jax import train  # pylint: disable=g-import-not-at-top
  with jax.enable_x64(True):
    (config, model, params, constants, c2, c3, y, y_hat, margin,
     rng) = _tiny_cost_problem(5, 4, 0.5)
    key = jax.random.PRNGKey(3)
    assert_along_equals_moved(
        lambda trainable, direction: train.max_margin_cost_along(
            model, config, params, constants, trainable, direction, c2, c3, y,
            y_hat, margin, key),
        lambda moved: train.max_margin_cost(model, config, moved, constants,
                                            c2, c3, y, y_hat, margin, key)[0],
        params, rng, (0.0, 1e-3, 0.1, 2.0), frozen=frozen)


def assert_along_equals_moved(make_along, cost_at, params, rng, etas,
                              frozen=("trunk",)):
  """``make_along(trainable, direction)(eta)``, a cost along a random
  direction of the parameters not in ``frozen``, equals ``cost_at`` of the
  parameters moved by ``-eta * direction``, for each ``eta`` (float64, rtol
  1e-10)."""
  trainable = {k: v for k, v in params.items() if k not in frozen}
  direction = jax.tree_util.tree_map(
      lambda a: jnp.asarray(rng.normal(size=a.shape)), trainable)
  along = make_along(trainable, direction)
  for eta in etas:
    moved = {**params, **jax.tree_util.tree_map(
        lambda p, g: p - eta * g, trainable, direction)}
    np.testing.assert_allclose(along(jnp.asarray(eta)), cost_at(moved),
                               rtol=1e-10)
