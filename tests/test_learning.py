"""The learning study's mechanisms against independent references: the
structured line-search cost, decoupled weight decay, the margin and pose-fit
instruments, the held-out probe, the validation split and the warnings."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from data_pipelines.sources import core as sources
from experiments.configs import default as default_config
from structnet_jax import learning_checks
from structnet_jax import models
from structnet_jax import train
from tests.test_scoring_and_losses import _mpjpe_loop
from tests.test_scoring_and_losses import _tiny_cost_problem
from tests.test_scoring_and_losses import assert_along_equals_moved


def _scores_loop(model, variables, c2, c3, poses, key=None):
  """Image embeddings (dropout on with ``key``, else off) and f_J of poses."""
  h3 = model.apply(variables, c2, c3, train=key is not None,
                   method=models.StructNet.hidden,
                   rngs={"dropout": key} if key is not None else None)
  f_img = np.asarray(model.apply(variables, h3,
                                 method=models.StructNet.embed_hidden))
  f_pose = np.asarray(model.apply(variables, poses,
                                  method=models.StructNet.embed_pose))
  return f_img, f_pose, h3


def test_structured_cost_matches_numpy_loop_and_its_line_along_it():
  with jax.enable_x64(True):
    (config, model, params, constants, c2, c3, y, _, _,
     rng) = _tiny_cost_problem(11, 4, 0.3)
    cands = jnp.asarray(rng.normal(scale=300, size=(9, 17, 3)))
    unit = config.loss.margin_unit_mm
    margin = jnp.asarray([[_mpjpe_loop(a, b) / unit for b in cands]
                          for a in np.asarray(y)])
    key = jax.random.PRNGKey(4)
    variables = {"params": params, **constants}
    f_img, f_cand, h3 = _scores_loop(model, variables, c2, c3, cands, key)
    _, f_true, _ = _scores_loop(model, variables, c2, c3, y)
    hinge = []
    for i in range(len(y)):  # Eq. 6 with y_hat from Eq. 7, one image at a time
      worst = max(f_img[i] @ f_cand[j] + margin[i, j] for j in range(9))
      hinge.append(max(0.0, worst - f_img[i] @ f_true[i]))
    pred = model.apply(variables, h3, method=models.StructNet.predict_hidden)
    target = model.apply(variables, y, method=models.StructNet.normalise_pose)
    want = (np.mean(hinge) + config.loss.pose_weight *
            np.mean(np.sum((np.asarray(pred) - np.asarray(target))**2, -1)) +
            config.loss.weight_decay * float(models.weight_l2(params)))
    got = train.structured_cost(model, config, params, constants, c2, c3, y,
                                cands, margin, key)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    # At eta = 0 it is the paper's cost with y_hat fixed at the argmax.
    hat = np.argmax(f_img @ f_cand.T + np.asarray(margin), axis=1)
    fixed = train.max_margin_cost(model, config, params, constants, c2, c3, y,
                                  cands[hat], margin[np.arange(4), hat], key)[0]
    np.testing.assert_allclose(got, fixed, rtol=1e-10)
    # Along a direction: equal to the cost at the moved parameters.
    assert_along_equals_moved(
        lambda trainable, direction: train.structured_cost_along(
            model, config, params, constants, trainable, direction, c2, c3, y,
            cands, margin, key),
        lambda moved: train.structured_cost(model, config, moved, constants,
                                            c2, c3, y, cands, margin, key),
        params, rng, (0.0, 1e-2, 0.5))


def _micro_stage2(**overrides):
  """``(source, jitted stage-2 step, stage-2 start state)`` of the micro
  config of tests/test_train.py with ``overrides``."""
  from tests.test_train import _micro_config, _source
  config = _micro_config(**overrides)
  source = _source(config)
  model = models.StructNet.from_config(config.model)
  key = jax.random.PRNGKey(0)
  state = train.start_max_margin(
      model, config, train.init_train_state(model, config, key,
                                            source.pose_space), key)
  return source, jax.jit(train.make_max_margin_step(model, config)), state


def test_structured_line_search_never_raises_the_structured_batch_cost():
  source, step, state = _micro_stage2(**{"line_search.objective":
                                         "structured"})
  for s in range(3):
    state, m = step(state, source.train_batch(s, 16), source.pose_space)
    assert m["cost_after"] <= m["cost"] + 1e-6
    assert 0.0 <= m["violated_fraction_eval"] <= 1.0


def test_unknown_line_search_objective_is_refused():
  config = default_config.get_config()
  config.line_search.objective = "best"
  with pytest.raises(ValueError, match="objective='best'.*fixed_violators"):
    train.make_max_margin_step(models.StructNet(), config)


def test_adamw_decays_fc_kernels_only_by_lr_times_two_alpha():
  """With a constant cost (zero gradient), one adamw step multiplies each FC
  kernel by (1 - lr * 2 alpha) and leaves biases and the conv trunk alone."""
  config = default_config.get_config()
  config.stage1.optimizer = "adamw"
  config.stage1.learning_rate = 0.1
  config.loss.weight_decay = 0.05
  params = {"trunk": {"conv1": {"kernel": jnp.ones((3, 3, 3, 2)),
                                "bias": jnp.ones(2)}},
            "h1": {"kernel": jnp.full((4, 3), 2.0), "bias": jnp.ones(3)},
            "pose_embed": {"h5": {"kernel": jnp.full((2, 2), -1.0),
                                  "bias": jnp.ones(2)}}}
  tx = train.make_optimizer(config, "stage1")
  zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  factor = 1 - 0.1 * 2 * 0.05
  np.testing.assert_allclose(new["h1"]["kernel"], 2.0 * factor, rtol=1e-6)
  np.testing.assert_allclose(new["pose_embed"]["h5"]["kernel"], -factor,
                             rtol=1e-6)
  for path in (("h1", "bias"), ("pose_embed", "h5", "bias"),
               ("trunk", "conv1", "kernel"), ("trunk", "conv1", "bias")):
    leaf_new, leaf_old = new, params
    for k in path:
      leaf_new, leaf_old = leaf_new[k], leaf_old[k]
    np.testing.assert_array_equal(leaf_new, leaf_old)
  # ... and the cost then carries no weight term (it is applied once).
  assert train.l2_in_cost(config, "stage1") == 0.0
  config.stage2.optimizer = "line_search"
  assert train.l2_in_cost(config, "stage2") == pytest.approx(0.05)


def test_rmsprop_matches_numpy_recursion_without_momentum():
  """rmsprop: per-parameter RMS scaling of the gradient, no momentum, and
  alpha as decoupled weight decay on the FC kernels only; checked against the
  recursion nu = 0.9 nu + 0.1 g^2, dW = -lr (g / (sqrt(nu) + eps) + 2 alpha W)
  written out in numpy, over steps whose gradients change sign (momentum
  would carry the previous direction over)."""
  config = default_config.get_config()
  config.stage2.optimizer = "rmsprop"
  config.stage2.learning_rate = 0.01
  config.loss.weight_decay = 0.05
  rng = np.random.default_rng(0)
  params = {"h1": {"kernel": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
                   "bias": jnp.asarray(rng.normal(size=3), jnp.float32)}}
  tx = train.make_optimizer(config, "stage2")
  state = tx.init(params)
  w = {k: np.asarray(v, np.float64) for k, v in params["h1"].items()}
  nu = {k: np.zeros_like(v) for k, v in w.items()}
  for sign in (1.0, -1.0, 1.0):
    grads = {k: sign * (np.arange(v.size).reshape(v.shape) + 1.0) / 7.0
             for k, v in w.items()}
    updates, state = tx.update(
        {"h1": {k: jnp.asarray(g, jnp.float32) for k, g in grads.items()}},
        state, params)
    params = optax.apply_updates(params, updates)
    for k in w:
      nu[k] = 0.9 * nu[k] + 0.1 * grads[k] ** 2
      decay = 2 * 0.05 * w[k] if k == "kernel" else 0.0
      w[k] = w[k] - 0.01 * (grads[k] / (np.sqrt(nu[k]) + 1e-8) + decay)
    for k in w:
      np.testing.assert_allclose(params["h1"][k], w[k], rtol=1e-5, atol=1e-6)
  assert train.l2_in_cost(config, "stage2") == 0.0


def test_frozen_fc_layers_stay_fixed_and_the_line_search_sees_them_fixed():
  """stage2.frozen_layers: the named layers keep their stage-1 values through
  stage-2 steps (AdamW and the line search), the others move (the line
  search's cost along such a direction: test_scoring_and_losses)."""
  for optimizer in ("adamw", "line_search"):
    source, step, start = _micro_stage2(**{
        "stage2.frozen_layers": "h1,h2,h3,head", "stage2.optimizer": optimizer})
    state = start
    for s in range(3):
      state, _ = step(state, source.train_batch(s, 16), source.pose_space)
    for layer in ("trunk", "h1", "h2", "h3", "head"):
      jax.tree_util.tree_map(np.testing.assert_array_equal,
                             start.params[layer], state.params[layer])
    for layer in ("h4", "pose_embed"):
      moved = jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                                     start.params[layer], state.params[layer])
      assert max(jax.tree_util.tree_leaves(moved)) > 0, (optimizer, layer)
  config = default_config.get_config()
  config.stage2.frozen_layers = "h1,h9"
  with pytest.raises(ValueError, match=r"frozen_layers names \['h9'\]"):
    train.frozen_layers(config, {"trunk": 0, "h1": 0, "h4": 0})


def test_margin_metrics_match_numpy_loop():
  with jax.enable_x64(True):
    (config, model, params, constants, c2, c3, y, _, _,
     rng) = _tiny_cost_problem(12, 5, 0.3)
    cands = jnp.asarray(rng.normal(scale=300, size=(7, 17, 3)))
    dist = np.array([[_mpjpe_loop(a, b) for b in cands] for a in np.asarray(y)])
    margin = jnp.asarray(dist / 100.0)
    variables = {"params": params, **constants}
    f_img, f_cand, _ = _scores_loop(model, variables, c2, c3, cands)
    got = train.margin_metrics(model, variables, c2, c3, y, jnp.asarray(f_cand),
                               margin, 100.0)
    _, f_true, _ = _scores_loop(model, variables, c2, c3, y)
    gaps, violated, hat_d, top_d = [], [], [], []
    for i in range(5):
      scores = [f_img[i] @ f_cand[j] for j in range(7)]
      hat = int(np.argmax([scores[j] + margin[i, j] for j in range(7)]))
      true = f_img[i] @ f_true[i]
      gaps.append(true - scores[hat])
      violated.append(scores[hat] + margin[i, hat] > true)
      hat_d.append(dist[i, hat])
      top_d.append(dist[i, int(np.argmax(scores))])
    np.testing.assert_allclose(got["score_gap"], np.mean(gaps), rtol=1e-9)
    np.testing.assert_allclose(got["violated_fraction_eval"],
                               np.mean(violated))
    np.testing.assert_allclose(got["violator_mpjpe_mm"], np.mean(hat_d),
                               rtol=1e-9)
    np.testing.assert_allclose(got["top_candidate_mpjpe_mm"], np.mean(top_d),
                               rtol=1e-9)


def test_pose_fit_metrics_read_one_at_the_mean_pose():
  """A pose head with zero weights outputs tanh(0) = 0, the normalised mean
  pose: its loss over the mean pose's loss is exactly 1."""
  with jax.enable_x64(True):
    (_, model, params, constants, c2, c3, y, _, _,
     _) = _tiny_cost_problem(13, 6, 0.0)
    params = {**params, "head": jax.tree_util.tree_map(jnp.zeros_like,
                                                       params["head"])}
    got = train.pose_fit_metrics(model, {"params": params, **constants},
                                 c2, c3, y)
    target = (np.asarray(y) - np.asarray(constants["pose_stats"]["mean"])) / \
        float(constants["pose_stats"]["scale"])
    want = np.mean(np.sum(target.reshape(6, -1)**2, -1))
    np.testing.assert_allclose(got["pose_loss_eval"], want, rtol=1e-9)
    np.testing.assert_allclose(got["pose_loss_vs_mean"], 1.0, rtol=1e-9)


def test_heldout_probe_measures_the_step_on_another_batch():
  from tests.test_train import _micro_config, _source
  config = _micro_config()
  source = _source(config)
  model = models.StructNet.from_config(config.model)
  key = jax.random.PRNGKey(0)
  state = train.init_train_state(model, config, key, source.pose_space)
  batch = source.train_batch(5, 16)
  for stage in ("stage1", "stage2"):
    probe = train.make_heldout_probe(model, config, stage)
    got = probe(state.params, state.params, state.constants, batch,
                jax.random.PRNGKey(1), source.pose_space)
    np.testing.assert_allclose(got["heldout_cost_before"],
                               got["heldout_cost_after"], rtol=1e-6)
  # Stage 1: the mean Eq. 11 with dropout off.
  variables = state.variables()
  pred = model.apply(variables, batch["image"],
                     method=models.StructNet.predict_pose)
  scale = float(variables["pose_stats"]["scale"])
  want = np.mean(np.sum(((np.asarray(pred) - batch["pose"]) / scale
                         ).reshape(16, -1)**2, -1))
  got = train.make_heldout_probe(model, config, "stage1")(
      state.params, state.params, state.constants, batch, key)
  np.testing.assert_allclose(got["heldout_cost_after"], want, rtol=1e-4)


def test_heldout_probe_alignment_against_a_numpy_loop():
  """Stage 2's probe: each image's max-score pose over all of Y, its MPJPE,
  and the share within 30 mm, against a loop over images and poses."""
  from tests.test_train import _micro_config, _source
  config = _micro_config()
  source = _source(config)
  model = models.StructNet.from_config(config.model)
  state = train.init_train_state(model, config, jax.random.PRNGKey(0),
                                 source.pose_space)
  batch = source.train_batch(3, 16)
  # Half the images' true poses sit in Y, so some images can align exactly.
  space = np.concatenate([np.asarray(source.pose_space, np.float32),
                          batch["pose"][:8]])
  got = train.make_heldout_probe(model, config, "stage2")(
      state.params, state.params, state.constants, batch,
      jax.random.PRNGKey(1), jnp.asarray(space))
  variables = state.variables()
  f_img = np.asarray(model.apply(variables, batch["image"],
                                 method=models.StructNet.embed_image))
  f_space = np.asarray(model.apply(variables, space,
                                   method=models.StructNet.embed_pose))
  errs = []
  for i in range(16):
    best = max(range(len(space)), key=lambda n: float(f_img[i] @ f_space[n]))
    errs.append(np.mean([np.linalg.norm(space[best, j] - batch["pose"][i, j])
                         for j in range(17)]))
  np.testing.assert_allclose(got["heldout_max_mpjpe_mm"], np.mean(errs),
                             rtol=1e-4)
  np.testing.assert_allclose(got["heldout_alignment_30mm"],
                             np.mean(np.array(errs) <= 30.0), atol=1e-7)


def _data(**fields):
  d = default_config.get_config().data
  for k, v in fields.items():
    d[k] = v
  return d


def test_validation_split_never_holds_test_subjects():
  assert sources.validation_split(_data()) == {}
  split = sources.validation_split(_data(validation_subjects="S8"))
  assert split == {"train_subjects": ("S1", "S5", "S6", "S7"),
                   "test_subjects": ("S8",)}
  assert not set(split["test_subjects"]) & set(sources.TEST_SUBJECTS)
  assert not set(split["train_subjects"]) & set(split["test_subjects"])
  with pytest.raises(ValueError, match=r"test subject\(s\) \['S9'\]"):
    sources.validation_split(_data(validation_subjects="S8,S9"))
  with pytest.raises(ValueError, match=r"\['P4'\] are not training"):
    sources.validation_split(_data(validation_subjects="P4",
                                    train_subjects="P1,P2",
                                    test_subjects="P3"))
  with pytest.raises(ValueError, match="every training subject"):
    sources.validation_split(_data(validation_subjects="P1,P2",
                                    train_subjects="P1,P2"))
  # The blobs toy data has no subjects, 2D joints or looks.
  for field, value, match in (
      ("data.validation_subjects", "S8", "validation_subjects needs data"),
      ("model.detection_grid", 8, "detection_grid > 0 trains stage 1"),
      ("data.looks_per_subject", 4, "looks_per_subject dresses"),
      ("data.hue_jitter_deg", 90.0, "codes each joint's depth in its colour"),
      ("data.saturation_jitter", 0.2, "codes each joint's depth")):
    config = default_config.get_config()
    config.data.source = "blobs"
    config.data.looks_per_subject = 0
    config.model.detection_grid = 0
    config.data.hue_jitter_deg = config.data.saturation_jitter = 0.0
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(ValueError, match=match):
      sources.from_config(config)


def test_checks_warn_for_a_stage1_at_the_mean_pose_and_a_flat_stage2():
  learned = {"stage1": {"train": {"pred": 60.0, "mean_pose": 180.0,
                                  "pred_vs_mean": 1 / 3}},
             "stage2": {"train": {"pred": 61.0, "mean_pose": 180.0,
                                  "pred_vs_mean": 0.34, "max": 40.0,
                                  "avg": 45.0, "alignment_30mm": 0.6,
                                  "images": 10}}}
  falling = [{"stage": "stage2", "violated_fraction_eval": v}
             for v in (1.0, 1.0, 0.9, 0.7, 0.5, 0.4, 0.3, 0.3, 0.2, 0.2)]
  assert learning_checks.check(learned, falling) == []
  assert learning_checks.stage2_trend(falling) == (1.0, 0.2)
  stuck = {"stage1": {"train": {"pred": 179.0, "mean_pose": 180.0,
                                "pred_vs_mean": 179 / 180, "images": 10}}}
  flat = [{"stage": "stage2", "violated_fraction_eval": 1.0}] * 10
  warnings = learning_checks.check(stuck, flat)
  assert len(warnings) == 2
  assert warnings[0].startswith("STAGE 1 DID NOT LEARN")
  assert warnings[1].startswith("STAGE 2 DID NOT LOWER")
  worse = {"stage1": learned["stage1"],
           "stage2": {"train": {**learned["stage2"]["train"], "max": 70.0}}}
  assert learning_checks.check(worse, falling)[0].startswith(
      "STAGE 2 IS NO BETTER")
  md = learning_checks.markdown(stuck, warnings)
  assert "WARNING: STAGE 1 DID NOT LEARN" in md
  assert "Alignment during stage 2" not in md
  probe = [{"stage": "stage2", "heldout_alignment_30mm": v}
           for v in (0.0, 0.1, 0.2, 0.3, 0.4)]
  trend = learning_checks.stage2_trend(probe, "heldout_alignment_30mm")
  assert trend == (0.0, 0.4)
  assert ("0.0% over the first fifth of the logged steps, 40.0% over the "
          "last") in learning_checks.markdown(stuck, warnings, trend)
  assert "| stage1 | train | 10 | 179.0 | 180.0 | 0.99 | - | - | - |" in md
