"""Scoring against a candidate table sharded over 8 host devices
(structnet_jax/sharded_scoring.py) against a numpy sort of all N scores and
against the unsharded predictor, ties and padding included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from structnet_jax import evaluate
from structnet_jax import models
from structnet_jax import scoring
from structnet_jax import sharded_scoring
from structnet_jax import sharding


@pytest.fixture(scope="module")
def mesh():
  assert jax.device_count() >= 8, "conftest.py asks XLA for 8 host devices"
  return sharding.make_mesh(jax.devices()[:8])


def test_merge_equals_a_numpy_sort_of_all_scores_with_ties(mesh):
  rng = np.random.default_rng(0)
  n, d, b = 1003, 6, 5  # 1003 rows: 8 devices need 5 rows of padding
  # Small integers: every score is exact in float32, and many tie.
  table = rng.integers(-2, 3, size=(n, d)).astype(np.float32)
  table[700:720] = table[3]  # exact duplicates across devices
  emb = rng.integers(-2, 3, size=(b, d)).astype(np.float32)
  poses = rng.normal(scale=300, size=(n, 17, 3)).astype(np.float32)
  sharded = sharded_scoring.shard_candidates(table, poses, mesh)
  assert sharded.table.shape == (1008, d) and sharded.num == n
  out = jax.jit(lambda e, t, p: sharded_scoring.sharded_top(
      e, sharded_scoring.ShardedCandidates(t, p, n, sharded.axis), mesh,
      (1, 7, 300), 300))(jnp.asarray(emb), sharded.table, sharded.poses)
  scores = emb.astype(np.float64) @ table.T.astype(np.float64)
  for i in range(b):
    order = np.lexsort((np.arange(n), -scores[i]))[:300]  # score, then index
    np.testing.assert_array_equal(out["top_indices"][i], order)
    np.testing.assert_array_equal(out["top_scores"][i], scores[i, order])
    np.testing.assert_allclose(out["max"][i], poses[order[0]])
    for a in (1, 7, 300):
      np.testing.assert_allclose(out["avg"][a][i], poses[order[:a]].mean(0),
                                 rtol=1e-5, atol=1e-3)
  assert len(np.unique(scores[0])) < 50  # the case has many ties


def test_sharded_predictor_equals_the_replicated_one(mesh):
  model = models.StructNet(conv_features=(3, 4, 4), conv_kernel_sizes=(3, 3, 3),
                           h1_width=6, h2_width=5, h3_width=7, embed_dim=4,
                           pose_hidden=5, dropout_rate=0.0)
  rng = np.random.default_rng(1)
  candidates = rng.normal(scale=300, size=(500, 17, 3)).astype(np.float32)
  variables = models.init_variables(model, jax.random.PRNGKey(0), 24,
                                    models.pose_stats_from(candidates))
  images = rng.uniform(size=(6, 24, 24, 3)).astype(np.float32)
  table = scoring.embed_candidate_poses(model, variables, candidates)
  want = scoring.make_predictor(model, avg_sizes=(20, 100), top_k=10)(
      variables, images, table, candidates)
  sharded = sharded_scoring.shard_candidates(table, candidates, mesh)
  got = sharded_scoring.make_sharded_predictor(
      model, mesh, avg_sizes=(20, 100), top_k=10)(variables, images, sharded)
  np.testing.assert_array_equal(got["top_indices"], want["top_indices"])
  np.testing.assert_allclose(got["top_scores"], want["top_scores"], rtol=1e-5)
  for key in ("max", "pred", "image_embedding"):
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-4)
  for a in (20, 100):
    np.testing.assert_allclose(got["avg"][a], want["avg"][a], rtol=1e-5,
                               atol=1e-3)


def test_bad_tables_and_sizes_are_refused(mesh):
  poses = np.zeros((40, 17, 3), np.float32)
  with pytest.raises(ValueError, match="one row per candidate pose"):
    sharded_scoring.shard_candidates(np.zeros((39, 4)), poses, mesh)
  with pytest.raises(ValueError, match="no axis 'model'"):
    sharded_scoring.shard_candidates(np.zeros((40, 4)), poses, mesh,
                                     axis="model")
  model = models.StructNet(conv_features=(3, 4, 4), conv_kernel_sizes=(3, 3, 3),
                           h1_width=6, h2_width=5, h3_width=7, embed_dim=4,
                           pose_hidden=5)
  sharded = sharded_scoring.shard_candidates(np.zeros((40, 4)), poses, mesh)
  predict = sharded_scoring.make_sharded_predictor(model, mesh,
                                                   avg_sizes=(50,))
  with pytest.raises(ValueError, match="A=50 averages more poses"):
    predict({}, np.zeros((1, 24, 24, 3)), sharded)


def test_stage2_with_the_pose_space_split_over_devices_matches_replicated(mesh):
  from tests.test_train import _micro_config, _run, _source, assert_same_run
  config = _micro_config()
  source = _source(config)  # 200 poses: 25 per device
  repl, h_repl = _run(config, mesh, source, 1, 3)
  split, h_split = _run(config, mesh, source, 1, 3, shard_pose_space=True)
  assert_same_run(repl, h_repl, split, h_split)
  with pytest.raises(ValueError, match="199 poses.*multiple of 8"):
    sharding.shard_rows(source.pose_space[:199], mesh)


def test_evaluate_with_candidates_split_over_devices(mesh):
  from tests.test_train import _micro_config, _source
  config = _micro_config()
  source = _source(config)
  model = models.StructNet.from_config(config.model)
  variables = models.init_variables(
      model, jax.random.PRNGKey(0), config.model.image_size,
      models.pose_stats_from(source.pose_space))
  runs = [evaluate.evaluate(model, variables, source.eval_batches(32),
                            source.pose_space, avg_sizes=(3, 20), top_k=4,
                            mesh=mesh, shard_candidates=shard)
          for shard in (False, True)]
  np.testing.assert_array_equal(runs[0]["top_indices"], runs[1]["top_indices"])
  for name in runs[0]["predictions"]:
    np.testing.assert_allclose(runs[0]["predictions"][name],
                               runs[1]["predictions"][name], atol=1e-3)
