"""Training: end-to-end learning, multi-device equivalence, resumption, config errors."""

import json

import jax
import numpy as np
import pytest

from data_pipelines.sources import blobs
from experiments.configs import default as default_config
from experiments.configs import tiny as tiny_config
from structnet_jax import config_utils
from structnet_jax import evaluate
from structnet_jax import models
from structnet_jax import poses as poses_lib
from structnet_jax import sharding
from structnet_jax import train
from structnet_jax import trainer


def _micro_config(**overrides):
  c = tiny_config.get_config()
  c.model.conv_features = (4, 8, 8)
  c.model.h1_width = c.model.h2_width = c.model.h3_width = 32
  c.model.embed_dim = c.model.pose_hidden = 16
  c.train.batch_size = 16
  c.stage2.num_candidates = 50
  c.stage2.optimizer = "line_search"  # the paper's stage 2
  c.line_search.num_coarse = 10
  c.line_search.num_fine = 6
  for k, v in overrides.items():
    section, name = k.split(".")
    c[section][name] = v
  return c


def _source(config, n=200):
  return blobs.BlobSource.create(num_train=n, num_test=64,
                                 image_size=config.data.image_size,
                                 crop=config.model.image_size, seed=0)


def _run(config, mesh, source, steps1, steps2, shard_pose_space=False):
  model = models.StructNet.from_config(config.model)
  key = jax.random.PRNGKey(0)
  state = train.init_train_state(model, config, key, source.pose_space)
  state = sharding.replicate(state, mesh)
  step1 = train.jit_step(train.make_pretrain_step(model, config), mesh)
  for s in range(steps1):
    batch = sharding.shard_batch(source.train_batch(s, config.train.batch_size),
                                 mesh)
    state, _ = step1(state, batch)
  state = train.start_max_margin(model, config, jax.device_get(state), key)
  state = sharding.replicate(state, mesh)
  step2 = train.jit_step(train.make_max_margin_step(model, config), mesh,
                         with_pose_space=True,
                         shard_pose_space=shard_pose_space)
  space = (sharding.shard_rows(source.pose_space, mesh) if shard_pose_space
           else sharding.replicate(source.pose_space, mesh))
  history = []
  for s in range(steps2):
    batch = sharding.shard_batch(
        source.train_batch(100 + s, config.train.batch_size), mesh)
    state, m = step2(state, batch, space)
    history.append(jax.device_get(m))
  return jax.device_get(state), history


def assert_same_run(state_a, history_a, state_b, history_b):
  """Two ``_run`` results agree: parameters (float32 tolerance), working
  sets exactly, and the logged costs and step sizes."""
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5),
      state_a.params, state_b.params)
  np.testing.assert_array_equal(state_a.violation_counts,
                                state_b.violation_counts)
  for a, b in zip(history_a, history_b):
    for key in ("cost", "step_size"):
      if key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4)


def _micro_trainer(**overrides):
  """``(config, source, model, one-device mesh, batch_fn)`` for trainer runs
  of the micro config with ``overrides``."""
  config = _micro_config(**overrides)
  source = _source(config)
  return (config, source, models.StructNet.from_config(config.model),
          sharding.make_mesh(jax.devices()[:1]),
          lambda s: source.train_batch(s, config.train.batch_size))


def test_eight_devices_match_one_device():
  assert jax.device_count() >= 8, "conftest.py asks XLA for 8 host devices"
  config = _micro_config()
  source = _source(config)
  one, h1 = _run(config, sharding.make_mesh(jax.devices()[:1]), source, 2, 3)
  eight, h8 = _run(config, sharding.make_mesh(jax.devices()[:8]), source, 2, 3)
  assert_same_run(one, h1, eight, h8)
  # The line search never raises the batch cost, its steps stay in range,
  # and every image adds one violation to the working set's counts.
  for state, history in ((one, h1), (eight, h8)):
    for m in history:
      assert m["cost_after"] <= m["cost"] + 1e-6
      assert 1e-7 <= m["step_size"] <= 1e2 or m["step_size"] == 0
    assert int(state.violation_counts.sum()) == 3 * config.train.batch_size
  # The eval step, sharded over 8 devices, gives the one-device predictions.
  model = models.StructNet.from_config(config.model)
  variables = one.variables()
  results = [evaluate.evaluate(model, variables, source.eval_batches(32),
                               source.pose_space, avg_sizes=(3,), top_k=4,
                               mesh=sharding.make_mesh(jax.devices()[:n]))
             for n in (1, 8)]
  for name in results[0]["predictions"]:
    np.testing.assert_allclose(results[0]["predictions"][name],
                               results[1]["predictions"][name], atol=1e-3)
  np.testing.assert_array_equal(results[0]["top_indices"],
                                results[1]["top_indices"])


def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path):
  config, source, model, mesh, fn = _micro_trainer(**{
      "stage1.num_steps": 3, "stage2.num_steps": 3,
      "train.checkpoint_every": 100})
  full = trainer.train_both_stages(model, config, str(tmp_path / "a"), fn,
                                   source.pose_space, mesh)
  # Interrupted twice: inside stage 1, and inside stage 2.
  part = trainer.train_both_stages(model, config, str(tmp_path / "b"), fn,
                                   source.pose_space, mesh, stop_after=2)
  assert int(part.step) == 2
  part = trainer.train_both_stages(model, config, str(tmp_path / "b"), fn,
                                   source.pose_space, mesh, stop_after=2)
  assert int(part.step) == 1  # stage 2, one step in
  resumed = trainer.train_both_stages(model, config, str(tmp_path / "b"), fn,
                                      source.pose_space, mesh)
  full, resumed = jax.device_get((full, resumed))
  assert int(resumed.step) == int(full.step) == 3
  jax.tree_util.tree_map(np.testing.assert_array_equal, full.params,
                         resumed.params)
  np.testing.assert_array_equal(full.violation_counts, resumed.violation_counts)
  np.testing.assert_array_equal(full.key, resumed.key)


def test_unreadable_newest_checkpoint_is_moved_aside_and_retrained(
    tmp_path, caplog):
  """The newest stage-2 checkpoint overwritten with 100 random bytes per
  file: evaluation refuses to use an older model, training resumes from the
  newest readable step, keeps the damaged one aside, and ends where an
  undamaged run ends."""
  import shutil  # pylint: disable=g-import-not-at-top
  config, source, model, mesh, fn = _micro_trainer(**{
      "stage1.num_steps": 2, "stage2.num_steps": 3,
      "train.checkpoint_every": 1})
  full = jax.device_get(trainer.train_both_stages(
      model, config, str(tmp_path / "a"), fn, source.pose_space, mesh))
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  newest = tmp_path / "b" / "stage2" / "3"
  rng = np.random.default_rng(0)
  for path in newest.rglob("*"):
    if path.is_file():
      path.write_bytes(rng.bytes(100))
  with pytest.raises(FileNotFoundError, match="step 3.*moved aside.*step 2"):
    trainer.load_final_variables(model, config, str(tmp_path / "b"),
                                 source.pose_space)
  assert (tmp_path / "b" / "stage2" / "3.unreadable").is_dir()
  assert "checkpoint step 3" in caplog.text and "cannot be read" in caplog.text
  again = jax.device_get(trainer.train_both_stages(
      model, config, str(tmp_path / "b"), fn, source.pose_space, mesh))
  assert int(again.step) == 3
  jax.tree_util.tree_map(np.testing.assert_array_equal, full.params,
                         again.params)
  variables = trainer.load_final_variables(model, config, str(tmp_path / "b"),
                                           source.pose_space)
  jax.tree_util.tree_map(np.testing.assert_array_equal, full.params,
                         jax.device_get(variables["params"]))


@pytest.mark.end_to_end
def test_tiny_run_learns_poses_from_images(tmp_path):
  """Margin loss falls and StructNet-Max beats the mean pose by far (train set).

  Uses the paper's optimiser (line search, no momentum) in stage 2.
  """
  config = tiny_config.get_config()
  config.stage1.num_steps = 150
  config.stage2.num_steps = 300
  config.train.log_every = 25
  source = blobs.BlobSource.create(num_train=300, num_test=100, image_size=32,
                                   crop=32, seed=0, max_yaw=0.8,
                                   num_deformations=3, blob_sigma=0.06)
  model = models.StructNet.from_config(config.model)
  writer = trainer.MetricWriter(str(tmp_path))
  trainer.train_both_stages(
      model, config, str(tmp_path), lambda s: source.train_batch(
          s, config.train.batch_size), source.pose_space,
      sharding.make_mesh(jax.devices()[:1]), writer=writer)
  records = [json.loads(line) for line in open(writer.path)]
  margin = [r["margin_loss"] for r in records if r["stage"] == "stage2"]
  assert np.mean(margin[-3:]) < 0.6 * np.mean(margin[:3]), margin
  variables = trainer.load_final_variables(model, config, str(tmp_path),
                                           source.pose_space)
  result = evaluate.evaluate(
      model, variables, source.eval_batches(100, "train"), source.pose_space,
      avg_sizes=(5,), top_k=5,
      baselines={"Zero pose": lambda images: np.zeros((len(images), 17, 3))},
      apf_sizes=(5,), apf_options={"num_particles": 16, "num_layers": 2,
                                   "refine_steps": 20})
  mean_pose = source.pose_space.mean(axis=0)
  baseline = np.mean(np.linalg.norm(result["poses"] - mean_pose, axis=-1))
  structnet_max = result["mpjpe"]["StructNet-Max"].mean()
  assert structnet_max < 0.5 * baseline, (structnet_max, baseline)
  # APF rows: valid poses with the set's median bone lengths, not far from
  # the Avg(5) pose they fit.
  fitted = result["predictions"]["StructNet-Avg(5)-APF"]
  template = np.median(poses_lib.bone_lengths(result["poses"]), axis=0)
  np.testing.assert_allclose(poses_lib.bone_lengths(fitted),
                             np.broadcast_to(template, (len(fitted), 16)),
                             rtol=1e-4, atol=1e-2)
  assert result["mpjpe"]["StructNet-Avg(5)-APF"].shape == (len(fitted),)
  # Every training pose is a candidate: the nearest candidate is exact.
  np.testing.assert_array_equal(result["mpjpe"]["NN-oracle"], 0.0)
  np.testing.assert_allclose(
      result["mpjpe"]["Zero pose"],
      np.linalg.norm(result["poses"], axis=-1).mean(-1), rtol=1e-5)


def test_unknown_config_field_is_named():
  c = default_config.get_config()
  c.unlock()
  c.train.bach_size = 3
  with pytest.raises(ValueError, match=r"train\.bach_size.*train\.batch_size"):
    config_utils.check_config(c, default_config.get_config())
  config_utils.check_config(tiny_config.get_config(), default_config.get_config())


def test_a_saved_config_from_before_a_default_changed_loads_as_trained(
    tmp_path):
  """A workdir's config.json written before model.detection_grid existed
  was trained without the detection head: it loads with 0, not today's
  default; a field it does hold is kept."""
  saved = default_config.get_config().to_dict()
  del saved["model"]["detection_grid"]
  saved["train"]["batch_size"] = 24
  path = tmp_path / "config.json"
  path.write_text(json.dumps(saved))
  config = config_utils.config_from_json(str(path),
                                         default_config.get_config())
  assert config.model.detection_grid == 0
  assert config.train.batch_size == 24
  saved["model"]["detection_grid"] = 4
  path.write_text(json.dumps(saved))
  assert config_utils.config_from_json(
      str(path), default_config.get_config()).model.detection_grid == 4


def test_out_of_range_config_values_are_named():
  c = default_config.get_config()
  c.stage2.num_candidates = 0
  c.train.batch_size = -4
  c.model.dropout_rate = 1.0
  c.loss.margin_unit_mm = 0.0
  c.line_search.max_step = 1e-8
  c.eval.avg_sizes = (20, 0)
  c.stage1.learning_rate = float("nan")
  with pytest.raises(ValueError) as e:
    config_utils.check_values(c)
  for part in ("stage2.num_candidates=0 (must be in [1, inf))",
               "train.batch_size=-4 (must be in [1, inf))",
               "model.dropout_rate=1.0 (must be in [0, 1))",
               "loss.margin_unit_mm=0.0 (must be in (0, inf))",
               "line_search.max_step=1e-08 (must be above min_step=1e-07)",
               "eval.avg_sizes has 0", "stage1.learning_rate=nan"):
    assert part in str(e.value), part
  config_utils.check_values(default_config.get_config())


def test_batch_not_divisible_by_devices_is_refused():
  mesh = sharding.make_mesh(jax.devices()[:8])
  with pytest.raises(ValueError, match="not divisible"):
    sharding.shard_batch({"image": np.zeros((12, 2))}, mesh)


def test_bad_training_batches_are_refused_before_any_step():
  good = {"image": np.zeros((4, 32, 32, 3), np.float32),
          "pose": np.zeros((4, 17, 3), np.float32)}
  trainer.check_batch(good, 32)
  with pytest.raises(ValueError, match=r"\[B, 32, 32, 3\]"):
    trainer.check_batch({**good, "image": np.zeros((4, 36, 36, 3))}, 32)
  with pytest.raises(ValueError, match=r"\[\.\.\., 17, 3\]"):
    trainer.check_batch({**good, "pose": np.zeros((4, 51))}, 32)
  bad = good["pose"].copy()
  bad[1, 0, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    trainer.check_batch({**good, "pose": bad}, 32)
  with pytest.raises(ValueError, match="missing"):
    trainer.check_batch({"image": good["image"]}, 32)


def test_shared_stage1_gives_the_other_runs_pretrained_layers(tmp_path):
  """stage1.init_from: no stage 1 of its own; the trunk, h1-h3 and pose head
  come from the named run, the pose embedding may differ."""
  config = _micro_config(**{"stage1.num_steps": 2, "stage2.num_steps": 0})
  source = _source(config)
  mesh = sharding.make_mesh(jax.devices()[:1])
  fn = lambda s: source.train_batch(s, config.train.batch_size)
  model = models.StructNet.from_config(config.model)
  trainer.train_both_stages(model, config, str(tmp_path / "a"), fn,
                            source.pose_space, mesh)
  stage1 = trainer.load_stage1_variables(model, config, str(tmp_path / "a"),
                                         source.pose_space)
  other = _micro_config(**{"stage1.num_steps": 2, "stage2.num_steps": 1,
                           "stage1.init_from": str(tmp_path / "a"),
                           "model.pose_embedding": "raw"})
  other_model = models.StructNet.from_config(other.model)
  state = trainer.train_both_stages(other_model, other, str(tmp_path / "b"),
                                    fn, source.pose_space, mesh)
  assert not (tmp_path / "b" / "stage1").exists()
  assert int(jax.device_get(state.step)) == 1
  # Frozen in stage 2, so the trunk is stage 1's, bit for bit.
  jax.tree_util.tree_map(np.testing.assert_array_equal,
                         stage1["params"]["trunk"],
                         jax.device_get(state.params["trunk"]))
  fresh = train.init_train_state(model, config, jax.random.PRNGKey(9),
                                 source.pose_space)
  assert not np.allclose(fresh.params["trunk"]["conv1"]["kernel"],
                         stage1["params"]["trunk"]["conv1"]["kernel"])
  # A stage 1 of another network size is refused by layer (the other errors:
  # test_shared_stage1_errors_name_the_problem).
  wide = _micro_config(**{"stage1.num_steps": 2, "stage2.num_steps": 1,
                          "stage1.init_from": str(tmp_path / "a"),
                          "model.h1_width": 48})
  with pytest.raises(ValueError, match="same config.model sizes"):
    trainer.train_both_stages(models.StructNet.from_config(wide.model), wide,
                              str(tmp_path / "c"), fn, source.pose_space)


def test_shared_stage1_errors_name_the_problem(tmp_path):
  config = _micro_config(**{"stage1.num_steps": 2, "stage2.num_steps": 1,
                            "stage1.init_from": str(tmp_path / "missing")})
  source = _source(config)
  model = models.StructNet.from_config(config.model)
  fn = lambda s: source.train_batch(s, config.train.batch_size)
  with pytest.raises(FileNotFoundError, match="no finished stage 1"):
    trainer.train_both_stages(model, config, str(tmp_path / "b"), fn,
                              source.pose_space)
  # A stage 1 of another network size: checked on the trained stage 1 of
  # test_shared_stage1_gives_the_other_runs_pretrained_layers.
