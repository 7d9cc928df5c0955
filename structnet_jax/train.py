"""Training: pose-regression pre-training and max-margin training (Algorithm 1).

Everything is a pure function of an explicit ``TrainState`` and a batch
``{"image": [B, H, W, 3] float32, "pose": [B, 17, 3] mm}``, plus ``"pose_2d":
[B, 17, 2]`` (the joints in the crop's pixels) when stage 1 also detects
joints (``config.model.detection_grid > 0``, the default):

  mesh = sharding.make_mesh()                                    # all devices
  state = init_train_state(model, config, key, pose_space)      # stage 1
  step = jit_step(make_pretrain_step(model, config), mesh)
  state, metrics = step(state, batch)     # the old state is donated
  state = start_max_margin(model, config, state, key)            # stage 2
  step = jit_step(make_max_margin_step(model, config), mesh,
                  with_pose_space=True)   # shard_pose_space=True: Y split
  state, metrics = step(state, batch, pose_space)

(``trainer.train_both_stages`` runs this loop with checkpoints, logging and
the pose space placed on the mesh.)

Stage 1 (section 5.3): the conv trunk, h1-h3 and the tanh pose head learn to
regress the pose (Eq. 11), initialising the conv layers.

Stage 2 (Algorithm 1): for each mini-batch, draw the candidate set Y_B (C
uniform training poses and the K most frequently violated so far), find each
example's most-violated pose (Eq. 7) with the current network, then take one
step on the cost of Eq. 12 over the extended data (x, y, y_hat): the paper's
line-searched gradient step with no momentum (``stage2.optimizer =
"line_search"``; ``line_search.objective = "structured"`` re-solves y_hat at
every trial step), or AdamW (the default, chosen on the validation split of
experiments/results/learning_study/). The conv layers stay fixed
(``freeze_trunk``), so their features are computed once per batch and only
the fully-connected layers are trained.

Every step also reports how well the network learns (``pose_fit_metrics``,
``margin_metrics``), and ``make_heldout_probe`` measures a step's update on
the next batch.

The working set V is the ``violation_counts [N] int32`` over the pose space.
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax

from structnet_jax import detection
from structnet_jax import line_search
from structnet_jax import losses
from structnet_jax import metrics as metrics_lib
from structnet_jax import models
from structnet_jax import sharding as sharding_lib
from structnet_jax import working_set
from structnet_jax import xla_cpu

Array = jax.Array
PRETRAIN_LAYERS = ("trunk", "h1", "h2", "h3", "head", "detect")
# What the stage-2 line search minimises (config.line_search.objective):
# Eq. 12 over the extended data (x, y, y_hat) with y_hat fixed (the paper),
# or the structured hinge with y_hat re-solved at every trial step.
LINE_SEARCH_OBJECTIVES = ("fixed_violators", "structured")
OPTIMIZERS = ("line_search", "adam", "adamw", "rmsprop", "momentum")
# Optimisers that apply Eq. 12's alpha as decoupled weight decay.
DECOUPLED_DECAY = ("adamw", "rmsprop")


@flax.struct.dataclass
class TrainState:
  """Everything a training run carries between steps (and checkpoints).

  Attributes:
    step: ``[] int32`` steps taken in the current stage.
    params: trainable Flax parameters (``"params"`` collection).
    constants: non-trained collections (``pose_stats``, ``fixed``).
    opt_state: the optimiser's state.
    violation_counts: ``[N] int32``, the working set V over the pose space.
    key: ``[2] uint32`` PRNG key, split every step.
  """
  step: Array
  params: Any
  constants: Any
  opt_state: Any
  violation_counts: Array
  key: Array

  def variables(self) -> dict[str, Any]:
    return {"params": self.params, **self.constants}


def split_variables(variables: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
  """``{"params": p, **rest}`` -> ``(p, rest)``."""
  rest = {k: v for k, v in variables.items() if k != "params"}
  return variables["params"], rest


# ---------------------------------------------------------------------------
# Optimisers


def make_line_search(config) -> optax.GradientTransformationExtraArgs:
  ls = config.line_search
  return line_search.line_search_sgd(
      min_step=ls.min_step, max_step=ls.max_step, num_coarse=ls.num_coarse,
      num_fine=ls.num_fine, trial_batch_size=ls.trial_batch_size or None)


def make_optimizer(config, stage: str) -> optax.GradientTransformationExtraArgs:
  """The optimiser of ``stage`` ("stage1" or "stage2") from its config section.

  ``optimizer = "line_search"`` is the paper's no-momentum line search (the
  stage-2 default); "adam" and "momentum" use ``learning_rate``/``momentum``.
  """
  section = config[stage]
  if section.optimizer == "line_search":
    return make_line_search(config)
  if section.optimizer == "adam":
    tx = optax.adam(section.learning_rate)
  elif section.optimizer == "adamw":
    # Eq. 12's alpha * ||W||^2 as decoupled weight decay (its gradient,
    # 2 alpha W, scaled by the learning rate), not inside Adam's statistics.
    tx = optax.adamw(section.learning_rate,
                     weight_decay=2.0 * config.loss.weight_decay,
                     mask=models.fc_kernel_mask)
  elif section.optimizer == "rmsprop":
    # Per-parameter scaling without momentum (the paper: momentum "always
    # hinders convergence"), alpha as decoupled weight decay as in adamw.
    tx = optax.chain(
        optax.scale_by_rms(decay=0.9, eps=1e-8),
        optax.add_decayed_weights(2.0 * config.loss.weight_decay,
                                  mask=models.fc_kernel_mask),
        optax.scale(-section.learning_rate))
  elif section.optimizer == "momentum":
    tx = optax.sgd(section.learning_rate, momentum=section.momentum)
  else:
    raise ValueError(
        f"config.{stage}.optimizer={section.optimizer!r} is unknown; use "
        f"one of {OPTIMIZERS}.")
  return optax.with_extra_args_support(tx)


def l2_in_cost(config, stage: str) -> float:
  """The alpha of Eq. 12's weight term inside the cost: ``loss.weight_decay``,
  or 0 with ``adamw`` and ``rmsprop``, which apply it as decoupled weight
  decay."""
  return 0.0 if config[stage].optimizer in DECOUPLED_DECAY else float(
      config.loss.weight_decay)


def _line_search_metrics(opt_state) -> dict[str, Array]:
  """The chosen step size and the cost it reached, when the line search is used."""
  if isinstance(opt_state, line_search.LineSearchState):
    return {"step_size": opt_state.step_size, "cost_after": opt_state.value}
  return {}


def frozen_layers(config, params) -> tuple[str, ...]:
  """The layers stage 2 keeps fixed: the conv trunk (``freeze_trunk``) and
  those named in ``stage2.frozen_layers`` (comma-separated, e.g.
  ``"h1,h2,h3,head"`` trains only the embeddings h4 and f_J)."""
  named = tuple(n.strip() for n in str(config.stage2.frozen_layers).split(",")
                if n.strip())
  unknown = sorted(set(named) - set(params) - {"trunk"})
  if unknown:
    raise ValueError(
        f"config.stage2.frozen_layers names {unknown}, which this network "
        f"does not have; its layers are {sorted(params)}.")
  frozen = tuple(sorted(set(named) | ({"trunk"} if
                                      config.stage2.freeze_trunk else set())))
  if not set(params) - set(frozen):
    raise ValueError("config.stage2.frozen_layers leaves no layer to train "
                     "in stage 2.")
  return frozen


def _trainable(params, frozen: tuple[str, ...]):
  return {k: v for k, v in params.items() if k not in frozen}


def _merge(params, trainable):
  return {**params, **trainable}


# ---------------------------------------------------------------------------
# States


def init_train_state(model: models.StructNet, config, key: Array,
                     pose_space) -> TrainState:
  """A fresh stage-1 state.

  Args:
    model: the network.
    config: the run config.
    key: PRNG key (initialisation and the training stream).
    pose_space: ``[N, 17, 3]`` mm training poses (normalisation statistics and
      the size of the working set).
  """
  init_key, train_key = jax.random.split(key)
  stats = models.pose_stats_from(pose_space)
  variables = models.init_variables(model, init_key, config.model.image_size,
                                    stats)
  params, constants = split_variables(variables)
  tx = make_optimizer(config, "stage1")
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params, constants=constants,
      opt_state=tx.init(params),
      violation_counts=working_set.init_counts(len(pose_space)),
      key=train_key)


def start_max_margin(model: models.StructNet, config, pretrained: TrainState,
                     key: Array) -> TrainState:
  """The stage-2 state: the pre-trained trunk, fresh FC layers (if configured),
  a new line-search state, an empty working set and step 0."""
  params = pretrained.params
  if config.stage2.reinit_fc:
    fresh = models.init_variables(model, key, config.model.image_size)
    params = {**fresh["params"], "trunk": params["trunk"]}
  tx = make_optimizer(config, "stage2")
  trainable = _trainable(params, frozen_layers(config, params))
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      constants=pretrained.constants, opt_state=tx.init(trainable),
      violation_counts=jnp.zeros_like(pretrained.violation_counts),
      key=jax.random.fold_in(key, 1))


# ---------------------------------------------------------------------------
# Costs


def _pose_losses(model: models.StructNet, variables, h3: Array,
                 poses: Array) -> Array:
  """Eq. 11 per example ``[B]``: the pose head on h3 ``[B, h3_width]``
  against the normalised ground truth ``poses [B, 17, 3]`` mm."""
  pred = model.apply(variables, h3, method=models.StructNet.predict_hidden)
  target = model.apply(variables, poses, method=models.StructNet.normalise_pose)
  return losses.pose_regression_loss(pred, target)


def pose_cost(model: models.StructNet, params, constants, c2: Array, c3: Array,
              poses: Array, dropout_key: Array) -> Array:
  """Mean Eq. 11 over the batch (the auxiliary pose-prediction cost)."""
  variables = {"params": params, **constants}
  h3 = model.apply(variables, c2, c3, train=True, method=models.StructNet.hidden,
                   rngs={"dropout": dropout_key})
  return jnp.mean(_pose_losses(model, variables, h3, poses))


def pretrain_cost(model: models.StructNet, config, params, constants,
                  c2: Array, c3: Array, batch, dropout_key: Array):
  """Stage 1's cost without the weight term: mean Eq. 11, plus
  ``loss.detection_weight`` times the mean joint-detection cross-entropy
  (``detection.py``, the multi-task network of [18]) when the network has a
  detection head (``model.detection_grid > 0``).

  Args:
    batch: ``{"image" [B, S, S, 3], "pose" [B, 17, 3] mm, "pose_2d" [B, 17,
      2] crop pixels (needed for detection)}``.

  Returns:
    ``(cost [], {"pose_loss": [], "detection_loss": []})``.
  """
  variables = {"params": params, **constants}
  h3 = model.apply(variables, c2, c3, train=True, method=models.StructNet.hidden,
                   rngs={"dropout": dropout_key})
  l_p = jnp.mean(_pose_losses(model, variables, h3, batch["pose"]))
  if not model.detection_grid:
    return l_p, {"pose_loss": l_p}
  logits = model.apply(variables, h3, method=models.StructNet.detect_hidden)
  targets = detection.joint_cells(batch["pose_2d"], batch["image"].shape[1],
                                  model.detection_grid)
  l_d = jnp.mean(detection.detection_loss(logits, targets))
  return (l_p + config.loss.detection_weight * l_d,
          {"pose_loss": l_p, "detection_loss": l_d})


def max_margin_cost(model: models.StructNet, config, params, constants,
                    c2: Array, c3: Array, poses: Array, violated: Array,
                    margin_violated: Array, dropout_key: Array):
  """Eq. 12 on the extended data (x, y, y_hat), with y_hat held fixed.

  Args:
    c2, c3: flattened conv features ``[B, F2]``, ``[B, F3]`` of the images.
    poses: ground truth ``[B, 17, 3]`` mm.
    violated: most-violated poses ``[B, 17, 3]`` mm.
    margin_violated: ``[B]`` Delta(y_hat, y).
    dropout_key: the batch's dropout key (the same masks in every evaluation).

  Returns:
    ``(cost [], aux)`` with the three terms in ``aux`` and the per-example
    margin losses ``aux["margin_losses"] [B]``.
  """
  variables = {"params": params, **constants}
  h3 = model.apply(variables, c2, c3, train=True, method=models.StructNet.hidden,
                   rngs={"dropout": dropout_key})
  return _max_margin_terms(model, config, variables, h3, poses, violated,
                           margin_violated, models.weight_l2(params))


def max_margin_cost_along(model: models.StructNet, config, params, constants,
                          trainable, direction, c2: Array, c3: Array,
                          poses: Array, violated: Array,
                          margin_violated: Array, dropout_key: Array):
  """``eta -> cost`` of ``max_margin_cost`` at ``trainable - eta * direction``.

  For the line search of stage 2, where the conv features ``c2, c3`` are
  fixed. The pre-activations of the two widest layers are affine in the step
  size, ``(W - eta G) c + (b - eta g) = (W c + b) - eta (G c + g)``, and so is
  the weight decay a quadratic, ``||W - eta G||^2 = ||W||^2 - 2 eta <W, G> +
  eta^2 ||G||^2``; both are computed once here, so a trial costs only the
  layers from h3 on. Equal to ``max_margin_cost(merge(params, trainable -
  eta * direction), ...)`` up to rounding, with the same dropout masks.

  Args:
    params: all parameters (the frozen trunk included).
    trainable: the trained part of ``params`` (no trunk); ``direction`` has
      its structure (the gradient).
    Others: as ``max_margin_cost``.

  Returns:
    A function ``eta [] -> cost []``.
  """
  return _cost_along(
      model, params, constants, trainable, direction, c2, c3, dropout_key,
      lambda variables, h3, reg: _max_margin_terms(
          model, config, variables, h3, poses, violated, margin_violated,
          reg)[0])


def _cost_along(model, params, constants, trainable, direction, c2, c3,
                dropout_key, terms: Callable):
  """``eta -> terms(variables, h3, weight_l2)`` at ``trainable - eta *
  direction``.

  The pre-activations of h1 and h2 are affine in ``eta`` and the weight
  decay is a quadratic in it, so both are computed once here and a trial
  costs only the layers from h3 on (with the same dropout masks).
  """
  base = _merge(params, trainable)
  a1, a2 = model.apply({"params": base, **constants}, c2, c3,
                       method=models.StructNet.preactivations)
  d1, d2 = model.apply({"params": _merge(params, direction), **constants},
                       c2, c3, method=models.StructNet.preactivations)
  # A layer kept fixed (stage2.frozen_layers) does not move.
  d1 = d1 if "h1" in direction else jnp.zeros_like(d1)
  d2 = d2 if "h2" in direction else jnp.zeros_like(d2)
  reg0 = models.weight_l2(base)
  reg1 = models.weight_inner(trainable, direction)
  reg2 = models.weight_l2(direction)

  def at(eta: Array):
    moved = jax.tree_util.tree_map(lambda p, g: p - eta.astype(p.dtype) * g,
                                   trainable, direction)
    variables = {"params": _merge(params, moved), **constants}
    h3 = model.apply(variables, a1 - eta * d1, a2 - eta * d2, train=True,
                     method=models.StructNet.hidden_from_preactivations,
                     rngs={"dropout": dropout_key})
    return terms(variables, h3, reg0 - 2.0 * eta * reg1 + eta * eta * reg2)

  return at


def structured_cost_along(model: models.StructNet, config, params, constants,
                          trainable, direction, c2: Array, c3: Array,
                          poses: Array, candidates: Array, margin: Array,
                          dropout_key: Array):
  """``eta -> cost`` of Eq. 12 with the most-violated pose found again at
  every step size (``line_search.objective = "structured"``).

  The paper's line search holds the extended data (x, y, y_hat) fixed, so a
  long step can drive the hinge of one y_hat per example to zero while other
  candidates overtake it; here each trial re-solves Eq. 7 over the batch's
  candidate set ``Y_B`` with the moved network, so the searched cost is the
  structured hinge ``max_{y' in Y_B} [f_S(x, y') + Delta(y', y)] - f_S(x, y)``
  itself. At ``eta = 0`` it equals ``max_margin_cost``.

  Args:
    candidates: ``[M, 17, 3]`` mm, Y_B.
    margin: ``[B, M]`` Delta between each pose and each candidate.
    Others: as ``max_margin_cost_along``.

  Returns:
    A function ``eta [] -> cost []``.
  """
  return _cost_along(
      model, params, constants, trainable, direction, c2, c3, dropout_key,
      lambda variables, h3, reg: _structured_terms(
          model, config, variables, h3, poses, candidates, margin, reg))


def structured_cost(model: models.StructNet, config, params, constants,
                    c2: Array, c3: Array, poses: Array, candidates: Array,
                    margin: Array, dropout_key: Array) -> Array:
  """Eq. 12 with y_hat re-solved over ``candidates`` (see
  ``structured_cost_along``), at ``params``: ``[]``."""
  variables = {"params": params, **constants}
  h3 = model.apply(variables, c2, c3, train=True, method=models.StructNet.hidden,
                   rngs={"dropout": dropout_key})
  return _structured_terms(model, config, variables, h3, poses, candidates,
                           margin, models.weight_l2(params))


def _structured_terms(model, config, variables, h3, poses, candidates, margin,
                      reg):
  f_img = model.apply(variables, h3, method=models.StructNet.embed_hidden)
  f_true = model.apply(variables, poses, method=models.StructNet.embed_pose)
  f_cand = model.apply(variables, candidates,
                       method=models.StructNet.embed_pose)
  worst = jnp.max(f_img @ f_cand.T + margin, axis=-1)
  l_m = jax.nn.relu(worst - jnp.sum(f_img * f_true, -1))
  l_p = _pose_losses(model, variables, h3, poses)
  return (jnp.mean(l_m) + config.loss.pose_weight * jnp.mean(l_p) +
          l2_in_cost(config, "stage2") * reg)


def _max_margin_terms(model, config, variables, h3, poses, violated,
                      margin_violated, reg):
  """Eq. 12 from h3 ``[B, h3_width]`` and the weight decay ``reg []``."""
  f_img = model.apply(variables, h3, method=models.StructNet.embed_hidden)
  f_true = model.apply(variables, poses, method=models.StructNet.embed_pose)
  f_hat = model.apply(variables, violated, method=models.StructNet.embed_pose)
  l_m = losses.max_margin_loss(jnp.sum(f_img * f_true, -1),
                               jnp.sum(f_img * f_hat, -1), margin_violated)
  l_p = _pose_losses(model, variables, h3, poses)
  cost = (jnp.mean(l_m) + config.loss.pose_weight * jnp.mean(l_p) +
          l2_in_cost(config, "stage2") * reg)
  return cost, {"margin_loss": jnp.mean(l_m), "pose_loss": jnp.mean(l_p),
                "weight_l2": reg, "margin_losses": l_m}


def pose_fit_metrics(model: models.StructNet, variables, c2: Array,
                     c3: Array, poses: Array) -> dict[str, Array]:
  """How far the pose head is from the mean pose, without dropout.

  Returns ``pose_loss_eval []`` (mean Eq. 11 with dropout off) and
  ``pose_loss_vs_mean []``: that loss over the loss of predicting the
  normalisation mean (the mean training pose) for every example. A network
  stuck at the mean pose reads ~1; one that learned reads well below 1.
  """
  h3 = model.apply(variables, c2, c3, train=False,
                   method=models.StructNet.hidden)
  pred = model.apply(variables, h3, method=models.StructNet.predict_hidden)
  target = model.apply(variables, poses, method=models.StructNet.normalise_pose)
  loss = jnp.mean(losses.pose_regression_loss(pred, target))
  at_mean = jnp.mean(jnp.sum(jnp.square(target), axis=-1))
  return {"pose_loss_eval": loss,
          "pose_loss_vs_mean": loss / jnp.maximum(at_mean, 1e-12)}


def margin_metrics(model: models.StructNet, variables, c2: Array, c3: Array,
                   poses: Array, f_cand: Array, margin: Array,
                   margin_unit_mm: float) -> dict[str, Array]:
  """Whether the score separates the true pose, with dropout off.

  Args:
    c2, c3: flattened conv features of the images.
    poses: ground truth ``[B, 17, 3]`` mm.
    f_cand: ``[M, D]`` pose embeddings of the candidates Y_B (the step has
      them already).
    margin: ``[B, M]`` Delta in score units (``losses.margins``), so the
      MPJPE between pose and candidate is ``margin * margin_unit_mm``.

  Returns (all ``[]``):
    ``score_gap``: mean ``f_S(x, y) - f_S(x, y_hat)``, the true pose's score
      minus the most-violating candidate's (Eq. 7), in score units; the
      margin asks for ``>= Delta(y_hat, y)``.
    ``violated_fraction_eval``: share of examples whose margin constraint is
      violated by some candidate of ``Y_B`` (the training metric
      ``violated_fraction`` has the dropout masks on).
    ``violator_mpjpe_mm``: mean MPJPE (mm) of y_hat from the truth.
    ``top_candidate_mpjpe_mm``: mean MPJPE (mm) of the best-scoring candidate
      of Y_B from the truth (StructNet-Max on the batch, training images).
  """
  h3 = model.apply(variables, c2, c3, train=False,
                   method=models.StructNet.hidden)
  f_img = model.apply(variables, h3, method=models.StructNet.embed_hidden)
  f_true = model.apply(variables, poses, method=models.StructNet.embed_pose)
  scores = f_img @ f_cand.T
  s_true = jnp.sum(f_img * f_true, -1)
  hat = losses.most_violated(scores, margin)
  s_hat = jnp.take_along_axis(scores, hat[:, None], axis=1)[:, 0]
  m_hat = jnp.take_along_axis(margin, hat[:, None], axis=1)[:, 0]
  top = jnp.argmax(scores, axis=-1)
  dist = margin * margin_unit_mm
  take = lambda idx: jnp.take_along_axis(dist, idx[:, None], axis=1)[:, 0]
  return {"score_gap": jnp.mean(s_true - s_hat),
          "violated_fraction_eval": jnp.mean(s_hat + m_hat - s_true > 0),
          "violator_mpjpe_mm": jnp.mean(take(hat)),
          "top_candidate_mpjpe_mm": jnp.mean(take(top))}


def _features(model, params, constants, images):
  return model.apply({"params": params, **constants}, images,
                     method=models.StructNet.features)


# ---------------------------------------------------------------------------
# Steps


def make_pretrain_step(model: models.StructNet, config) -> Callable:
  """Stage 1: ``step(state, batch) -> (state, metrics)`` on the cost
  ``mean(Eq. 11) [+ detection_weight * detection] + alpha * sum ||W||^2``
  over the regression (and detection) path (``pretrain_cost``)."""
  tx = make_optimizer(config, "stage1")
  alpha = l2_in_cost(config, "stage1")

  def step(state: TrainState, batch):
    if model.detection_grid and "pose_2d" not in batch:
      raise ValueError(
          "config.model.detection_grid > 0 trains stage 1 with joint "
          "detection, which needs the 2D joints ('pose_2d') in every training "
          f"batch; this source gives {sorted(batch)}. Use data.source=tfds "
          "or render, or set config.model.detection_grid=0.")
    key, dropout_key = jax.random.split(state.key)
    images, poses = batch["image"], batch["pose"]

    def cost_and_features(params):
      c2, c3 = _features(model, params, state.constants, images)
      used = {k: params[k] for k in PRETRAIN_LAYERS if k in params}
      value, terms = pretrain_cost(model, config, params, state.constants, c2,
                                   c3, batch, dropout_key)
      return value + alpha * models.weight_l2(used), (c2, c3, terms)

    def cost(params):
      return cost_and_features(params)[0]

    (value, (c2, c3, terms)), grads = jax.value_and_grad(
        cost_and_features, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params,
                                   value=value, grad=grads, value_fn=cost)
    params = optax.apply_updates(state.params, updates)
    metrics = {"cost": value, "grad_norm": optax.tree.norm(grads),
               **({"detection_loss": terms["detection_loss"]}
                  if "detection_loss" in terms else {}),
               **pose_fit_metrics(model, state.variables(),
                                  jax.lax.stop_gradient(c2),
                                  jax.lax.stop_gradient(c3), poses),
               **_line_search_metrics(opt_state)}
    return state.replace(step=state.step + 1, params=params,
                         opt_state=opt_state, key=key), metrics

  return step


def make_max_margin_step(model: models.StructNet, config) -> Callable:
  """Stage 2 (Algorithm 1): ``step(state, batch, pose_space) -> (state, metrics)``.

  ``pose_space`` is the ``[N, 17, 3]`` mm pose space Y (replicated).
  """
  tx = make_optimizer(config, "stage2")
  s2 = config.stage2
  unit = config.loss.margin_unit_mm
  objective = config.line_search.objective
  if objective not in LINE_SEARCH_OBJECTIVES:
    raise ValueError(
        f"config.line_search.objective={objective!r} is unknown; use one of "
        f"{LINE_SEARCH_OBJECTIVES}.")
  structured = (objective == "structured" and
                s2.optimizer == "line_search")

  def step(state: TrainState, batch, pose_space):
    key, dropout_key, cand_key = jax.random.split(state.key, 3)
    images, poses = batch["image"], batch["pose"]
    params = state.params
    trainable = _trainable(params, frozen_layers(config, params))

    # Candidate set Y_B and the most-violated pose of each example (Eq. 7),
    # with the current network and this step's dropout masks.
    cand_idx = working_set.candidate_indices(cand_key, state.violation_counts,
                                             s2.num_candidates, s2.num_frequent)
    candidates = pose_space[cand_idx]
    c2, c3 = _features(model, params, state.constants, images)
    if s2.freeze_trunk:
      c2, c3 = jax.lax.stop_gradient(c2), jax.lax.stop_gradient(c3)
    variables = state.variables()
    h3 = model.apply(variables, c2, c3, train=True,
                     method=models.StructNet.hidden, rngs={"dropout": dropout_key})
    f_img = model.apply(variables, h3, method=models.StructNet.embed_hidden)
    f_cand = model.apply(variables, candidates,
                         method=models.StructNet.embed_pose)
    margin = losses.margins(poses, candidates, unit)
    hat = losses.most_violated(f_img @ f_cand.T, margin)
    violated = candidates[hat]
    margin_violated = jnp.take_along_axis(margin, hat[:, None], axis=1)[:, 0]

    def features_at(full):
      if s2.freeze_trunk:
        return c2, c3
      return _features(model, full, state.constants, images)

    def cost_and_aux(trainable_params):
      full = _merge(params, trainable_params)
      return max_margin_cost(model, config, full, state.constants,
                             *features_at(full), poses, violated,
                             margin_violated, dropout_key)

    def cost(trainable_params):
      return cost_and_aux(trainable_params)[0]

    (value, aux), grads = jax.value_and_grad(cost_and_aux, has_aux=True)(
        trainable)
    searched = cost
    along = {}
    if structured:
      def searched(trainable_params):
        full = _merge(params, trainable_params)
        return structured_cost(model, config, full, state.constants,
                               *features_at(full), poses, candidates, margin,
                               dropout_key)
    if s2.freeze_trunk and structured:
      along["value_along_fn"] = structured_cost_along(
          model, config, params, state.constants, trainable, grads, c2, c3,
          poses, candidates, margin, dropout_key)
    elif s2.freeze_trunk:  # trials share the h1/h2 products (line search only)
      along["value_along_fn"] = max_margin_cost_along(
          model, config, params, state.constants, trainable, grads, c2, c3,
          poses, violated, margin_violated, dropout_key)
    updates, opt_state = tx.update(grads, state.opt_state, trainable,
                                   value=value, grad=grads, value_fn=searched,
                                   **along)
    trainable = optax.apply_updates(trainable, updates)
    counts = working_set.record_violations(state.violation_counts,
                                           cand_idx[hat])
    metrics = {
        "cost": value,
        "grad_norm": optax.tree.norm(grads),
        "violated_fraction": jnp.mean(aux.pop("margin_losses") > 0),
        "margin_violated_mm": jnp.mean(margin_violated) * unit,
        **aux,
        **margin_metrics(model, variables, c2, c3, poses, f_cand, margin,
                         unit),
    }
    metrics.update(_line_search_metrics(opt_state))
    new_state = state.replace(step=state.step + 1,
                              params=_merge(params, trainable),
                              opt_state=opt_state, violation_counts=counts,
                              key=key)
    return new_state, metrics

  return step


def make_heldout_probe(model: models.StructNet, config, stage: str
                       ) -> Callable:
  """The cost of one step's update on a batch it was not chosen on.

  ``probe(params_before, params_after, constants, batch, key[, pose_space])
  -> {"heldout_cost_before": [], "heldout_cost_after": []}``: the cost of
  ``batch`` (the next training batch, which the step did not see) at the
  parameters before and after the step, with dropout off. Stage 1: mean
  Eq. 11. Stage 2: Eq. 12 without the weight decay, with y_hat re-solved
  over ``stage2.num_candidates`` uniform candidates drawn with ``key`` (the
  same for both). A step that fits its own batch but not the data lowers
  ``cost_after`` and raises ``heldout_cost_after``.

  Stage 2 also reports, after the step, section 6's alignment on that batch
  (training images the step did not use) against the whole pose space Y:
  ``heldout_max_mpjpe_mm``, the mean MPJPE (mm) of each image's max-score
  pose of Y from its truth (StructNet-Max on training images), and
  ``heldout_alignment_30mm``, the share of images whose max-score pose is
  within ``metrics_lib.ALIGNMENT_MM`` (the paper: 97%). Logged at every
  logged step, they are the alignment-against-steps curve.
  """
  if stage not in ("stage1", "stage2"):
    raise ValueError(f"stage must be 'stage1' or 'stage2', got {stage!r}.")
  unit = config.loss.margin_unit_mm

  def cost(params, constants, images, poses, candidates, margin):
    variables = {"params": params, **constants}
    h3 = model.apply(variables, *_features(model, params, constants, images),
                     train=False, method=models.StructNet.hidden)
    if candidates is not None:  # Eq. 12, no weight term
      return _structured_terms(model, config, variables, h3, poses,
                               candidates, margin, 0.0)
    return jnp.mean(_pose_losses(model, variables, h3, poses))

  def probe(before, after, constants, batch, key, pose_space=None):
    images, poses = batch["image"], batch["pose"]
    candidates = margin = None
    if stage == "stage2":
      idx = jax.random.randint(key, (config.stage2.num_candidates,), 0,
                               pose_space.shape[0])
      candidates = pose_space[idx]
      margin = losses.margins(poses, candidates, unit)
    out = {name: cost(params, constants, images, poses, candidates, margin)
           for name, params in (("heldout_cost_before", before),
                                ("heldout_cost_after", after))}
    if stage == "stage2":
      out.update(alignment_metrics(model, {"params": after, **constants},
                                   images, poses, pose_space))
    return out

  return xla_cpu.network_jit(probe)


def alignment_metrics(model: models.StructNet, variables, images: Array,
                      poses: Array, pose_space: Array) -> dict[str, Array]:
  """StructNet-Max of a batch against the whole pose space, dropout off.

  Args:
    images: ``[B, H, W, 3]``.
    poses: ground truth ``[B, 17, 3]`` mm.
    pose_space: ``[N, 17, 3]`` mm, Y (embedded here: ``N`` small MLP passes).

  Returns:
    ``heldout_max_mpjpe_mm`` (``[]``, mm): mean MPJPE of each image's
    max-score pose of Y; ``heldout_alignment_30mm`` (``[]``): the share of
    images where that MPJPE is ``<= metrics_lib.ALIGNMENT_MM``.
  """
  f_img = model.apply(variables, images, method=models.StructNet.embed_image)
  f_space = model.apply(variables, pose_space,
                        method=models.StructNet.embed_pose)
  top = jnp.argmax(f_img @ f_space.T, axis=-1)
  err = metrics_lib.mpjpe(pose_space[top], poses)
  return {"heldout_max_mpjpe_mm": jnp.mean(err),
          "heldout_alignment_30mm": jnp.mean(err <= metrics_lib.ALIGNMENT_MM)}


def jit_step(step_fn: Callable, mesh, *, with_pose_space: bool = False,
             shard_pose_space: bool = False):
  """Jits a step for a mesh: state replicated, batch sharded over ``data``.

  The returned function takes ``(state, batch[, pose_space])``; the state is
  donated. The pose space is replicated, or with ``shard_pose_space`` split
  along N over ``data`` (``sharding.shard_rows``; the candidate draws
  gather across devices). Compiled with the network's XLA options
  (``xla_cpu``).
  """
  repl = sharding_lib.replicated(mesh)
  data = sharding_lib.data_sharding(mesh)
  space = data if shard_pose_space else repl
  in_shardings = (repl, data) + ((space,) if with_pose_space else ())
  return xla_cpu.network_jit(step_fn, in_shardings=in_shardings,
                             out_shardings=(repl, repl), donate_argnums=(0,))
