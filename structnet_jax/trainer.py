"""The training loop: both stages, checkpointed and resumable.

The loop does not know where batches come from: it takes ``batch_fn(step) ->
{"image": [B, S, S, 3] float32, "pose": [B, 17, 3] mm}``, which must be a pure
function of the step (generated on device, or a seeded pipeline), so that a
run resumed from its latest checkpoint takes exactly the steps an
uninterrupted run would have taken.

Layout of a workdir:
  <workdir>/stage1/   orbax checkpoints of the pre-training state (absent when
                      ``config.stage1.init_from`` names another run's)
  <workdir>/stage2/   orbax checkpoints of the max-margin state
  <workdir>/metrics.jsonl   one JSON line per logged step
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

from absl import logging
import jax
import numpy as np

from structnet_jax import checkpoints
from structnet_jax import distributed
from structnet_jax import files
from structnet_jax import learning_checks
from structnet_jax import models
from structnet_jax import poses as poses_lib
from structnet_jax import sharding as sharding_lib
from structnet_jax import train

BatchFn = Callable[[int], dict[str, Any]]


class MetricWriter:
  """Appends logged metrics to ``<workdir>/metrics.jsonl`` and the absl log.

  ``extra_writers`` receive ``(stage, step, metrics)`` too (e.g. TensorBoard).
  Only the main process writes (``distributed.is_main_process``).
  """

  def __init__(self, workdir: str, extra_writers=()):
    files.makedirs(workdir)
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.extra_writers = tuple(extra_writers)

  def write(self, stage: str, step: int, metrics: dict[str, float]) -> None:
    if not distributed.is_main_process():
      return
    record = {"stage": stage, "step": int(step),
              **{k: float(v) for k, v in metrics.items()}}
    files.append_text(self.path, json.dumps(record) + "\n")
    for w in self.extra_writers:
      w(stage, step, metrics)


# The metrics a log line shows, in this order, when the step reports them.
LOG_KEYS = ("cost", "cost_after", "heldout_cost_before", "heldout_cost_after",
            "pose_loss_vs_mean", "detection_loss", "margin_loss", "pose_loss",
            "step_size",
            "violated_fraction", "violated_fraction_eval", "score_gap",
            "top_candidate_mpjpe_mm", "heldout_max_mpjpe_mm",
            "heldout_alignment_30mm")


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """The records of ``<workdir>/metrics.jsonl`` (empty if there is none)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not files.exists(path):
    return []
  return [json.loads(line) for line in files.read_text(path).splitlines()
          if line.strip()]


def _format(stage, step, total, metrics, rate, eta):
  keys = [k for k in LOG_KEYS if k in metrics]
  body = " ".join(f"{k}={metrics[k]:.4g}" for k in keys)
  return (f"[{stage}] step {step}/{total} {body} {rate:.1f} img/s "
          f"ETA {eta / 60:.1f} min")


def check_batch(batch: dict[str, Any], image_size: int) -> None:
  """Host-side check of a training batch's keys, shapes and values."""
  missing = {"image", "pose"} - set(batch)
  if missing:
    raise ValueError(f"a training batch needs keys 'image' and 'pose'; "
                     f"missing {sorted(missing)} (got {sorted(batch)}).")
  image, pose = np.shape(batch["image"]), np.shape(batch["pose"])
  if len(image) != 4 or image[1:] != (image_size, image_size, 3):
    raise ValueError(
        f"batch['image'] must be [B, {image_size}, {image_size}, 3] (the "
        f"network input, config.model.image_size={image_size}), got {image}.")
  poses_lib.check_poses(batch["pose"], "batch['pose']")
  if pose[0] != image[0]:
    raise ValueError(f"batch['image'] has {image[0]} examples but "
                     f"batch['pose'] has {pose[0]}.")


def run_stage(stage: str, state: train.TrainState, step_fn: Callable,
              batch_fn: BatchFn, num_steps: int, batch_size: int, mesh,
              ckpt_dir: str, *, checkpoint_every: int, log_every: int,
              image_size: int, writer: MetricWriter | None = None,
              extra_args: tuple = (),
              probe_fn: Callable | None = None,
              stop_after: int | None = None) -> train.TrainState:
  """Runs ``step_fn`` from ``state.step`` to ``num_steps``, checkpointing.

  Resumes from the latest checkpoint in ``ckpt_dir`` when there is one.
  ``stop_after`` (steps, for tests and preemption drills) ends the call early
  after saving a checkpoint. ``probe_fn`` (``train.make_heldout_probe``) adds,
  at every logged step, the cost of that step's update on the next batch.
  """
  mngr = checkpoints.manager(ckpt_dir)
  state = sharding_lib.replicate(state, mesh)
  if mngr.latest_step() is not None:
    state, _ = checkpoints.restore_readable(mngr, state)
    logging.info("[%s] resumed from step %d (%s)", stage, int(state.step),
                 ckpt_dir)
  start = int(state.step)
  last_logged = time.time()
  logged_step = start
  upcoming = {}
  for step in range(start, num_steps):
    host_batch = upcoming.pop(step, None) or batch_fn(step)
    if step == start:
      check_batch(host_batch, image_size)
    batch = sharding_lib.shard_batch(host_batch, mesh)
    done = step + 1
    logs = done % log_every == 0 or done == num_steps
    before = None
    if logs and probe_fn is not None and done < num_steps:
      before = jax.tree_util.tree_map(jax.numpy.copy, state.params)
    state, metrics = step_fn(state, batch, *extra_args)
    if before is not None:
      upcoming[done] = batch_fn(done)
      metrics = {**metrics, **probe_fn(
          before, state.params, state.constants,
          sharding_lib.shard_batch(upcoming[done], mesh),
          jax.random.PRNGKey(done), *extra_args)}
    if logs:
      metrics = jax.device_get(metrics)
      now = time.time()
      rate = (done - logged_step) * batch_size / max(now - last_logged, 1e-9)
      eta = (num_steps - done) * batch_size / max(rate, 1e-9)
      logging.info(_format(stage, done, num_steps, metrics, rate, eta))
      if writer is not None:
        writer.write(stage, done, {**metrics, "images_per_second": rate})
      last_logged, logged_step = now, done
      if not all(np.isfinite(v) for v in metrics.values()):
        checkpoints.save(mngr, done, state)
        raise FloatingPointError(
            f"[{stage}] non-finite metrics at step {done}: {metrics}. The "
            f"state is saved in {ckpt_dir}; lower the learning rate or check "
            "the data.")
    if done % checkpoint_every == 0 or done == num_steps:
      checkpoints.save(mngr, done, state)
    if stop_after is not None and done - start >= stop_after:
      checkpoints.save(mngr, done, state)
      break
  mngr.close()
  return state


def train_both_stages(model: models.StructNet, config, workdir: str,
                      batch_fn: BatchFn, pose_space: np.ndarray, mesh=None,
                      writer: MetricWriter | None = None,
                      stop_after: int | None = None) -> train.TrainState:
  """Stage 1 then stage 2 (section 5.3), each resumable; returns the final state.

  Args:
    model: the network.
    config: the run config (see experiments/configs/default.py).
    workdir: where checkpoints and metrics go.
    batch_fn: ``step -> batch`` (see module docstring); stage 2 calls it with
      ``step + stage1.num_steps`` so the two stages see different batches.
    pose_space: ``[N, 17, 3]`` mm, the pose space Y.
    mesh: device mesh (default: all devices on one ``data`` axis).
    stop_after: stop (with a checkpoint) after this many steps in this call.
  """
  mesh = sharding_lib.make_mesh() if mesh is None else mesh
  sharding_lib.check_batch_size(config.train.batch_size, mesh)
  writer = writer or MetricWriter(workdir)
  key = jax.random.PRNGKey(config.seed)
  init_key, stage2_key = jax.random.split(key)
  n1, n2 = config.stage1.num_steps, config.stage2.num_steps
  common = dict(batch_size=config.train.batch_size, mesh=mesh,
                image_size=config.model.image_size,
                checkpoint_every=config.train.checkpoint_every,
                log_every=config.train.log_every, writer=writer)

  state = train.init_train_state(model, config, init_key, pose_space)
  stage2_dir = os.path.join(workdir, "stage2")
  stage2_started = checkpoints.manager(stage2_dir).latest_step() is not None
  budget = stop_after
  if config.stage1.init_from and not stage2_started:
    state = state.replace(params=pretrained_params(
        state.params, stage1_dir(config, workdir), config))
  elif n1 > 0 and not stage2_started:
    step1 = train.jit_step(train.make_pretrain_step(model, config), mesh)
    before = int(_latest(os.path.join(workdir, "stage1")) or 0)
    state = run_stage("stage1", state, step1, batch_fn, n1,
                      ckpt_dir=os.path.join(workdir, "stage1"),
                      probe_fn=train.make_heldout_probe(model, config,
                                                        "stage1"),
                      stop_after=budget, **common)
    _warn_if_at_mean_pose(workdir)
    if budget is not None:
      budget -= int(state.step) - before
      if budget <= 0:
        return state
  state = train.start_max_margin(model, config, jax.device_get(state),
                                 stage2_key)
  shard = bool(config.train.shard_pose_space)
  space = np.asarray(pose_space, np.float32)
  pose_space_dev = (sharding_lib.shard_rows(space, mesh) if shard else
                    sharding_lib.replicate(space, mesh))
  step2 = train.jit_step(train.make_max_margin_step(model, config), mesh,
                         with_pose_space=True, shard_pose_space=shard)
  return run_stage("stage2", state, step2, lambda s: batch_fn(s + n1), n2,
                   ckpt_dir=stage2_dir, extra_args=(pose_space_dev,),
                   probe_fn=train.make_heldout_probe(model, config, "stage2"),
                   stop_after=budget, **common)


def _warn_if_at_mean_pose(workdir: str) -> None:
  """A loud log warning when stage 1's last logged pose loss (dropout off)
  is still near that of the mean training pose."""
  threshold = learning_checks.STAGE1_MAX_RATIO_TO_MEAN
  last = [r for r in read_metrics(workdir)
          if r.get("stage") == "stage1" and "pose_loss_vs_mean" in r]
  if last and last[-1]["pose_loss_vs_mean"] > threshold:
    logging.warning(
        "%s\n[stage1] DID NOT LEARN: at step %d the pose head's loss is "
        "%.2fx that of the mean training pose; stage 2 will build on conv "
        "features that encode (almost) nothing.\n%s", "!" * 72,
        last[-1]["step"], last[-1]["pose_loss_vs_mean"], "!" * 72)


def stage1_dir(config, workdir: str) -> str:
  """Where the run's stage-1 checkpoints are: its own ``<workdir>/stage1``, or
  ``<config.stage1.init_from>/stage1`` when it shares another run's."""
  source = config.stage1.init_from or workdir
  return os.path.join(files.absolute(source), "stage1")


def pretrained_params(params: dict[str, Any], directory: str, config
                      ) -> dict[str, Any]:
  """``params`` with the pre-trained layers (``train.PRETRAIN_LAYERS``: trunk,
  h1-h3, pose head) taken from the last stage-1 checkpoint in ``directory``.

  The pose embedding is not pre-trained, so runs that differ only in it (or
  in any stage-2 setting) can share one stage 1 (``config.stage1.init_from``).

  Raises:
    FileNotFoundError: no finished stage 1 there.
    ValueError: its layers have other shapes (another network size).
  """
  wanted = int(config.stage1.num_steps)
  saved, step = None, _latest(directory)
  if step is not None and step >= wanted:
    mngr = checkpoints.manager(directory)
    saved, step = checkpoints.restore_readable(mngr)
    mngr.close()
  if step is None or step < wanted:
    raise FileNotFoundError(
        f"no finished stage 1 in {directory} (latest readable checkpoint: "
        f"{step}, need step {wanted}); train it first (--mode=train; with "
        "config.stage1.init_from, train the run it names first).")
  out = dict(params)
  for layer in train.PRETRAIN_LAYERS:
    if layer not in params:
      continue
    ours = jax.tree_util.tree_map(np.shape, params[layer])
    theirs = jax.tree_util.tree_map(np.shape, saved["params"].get(layer))
    if ours != theirs:
      raise ValueError(
          f"config.stage1.init_from: layer {layer!r} in {directory} has "
          f"shapes {theirs}, this run's network has {ours}; share stage 1 "
          "only between runs with the same config.model sizes.")
    out[layer] = jax.tree_util.tree_map(
        lambda new, old: np.asarray(old, dtype=np.asarray(new).dtype),
        params[layer], saved["params"][layer])
  return out


def load_stage1_variables(model: models.StructNet, config, workdir: str,
                          pose_space: np.ndarray) -> dict[str, Any]:
  """The variables after stage 1 (the regression network alone, whose pose
  head gives the "Regression net (stage 1)" row)."""
  key = jax.random.PRNGKey(config.seed)
  init_key, _ = jax.random.split(key)
  state = train.init_train_state(model, config, init_key, pose_space)
  params = pretrained_params(state.params, stage1_dir(config, workdir), config)
  return state.replace(params=params).variables()


def _latest(directory: str) -> int | None:
  if not distributed.agreed(files.isdir(directory)):
    return None
  return checkpoints.manager(directory).latest_step()


def load_final_variables(model: models.StructNet, config, workdir: str,
                         pose_space: np.ndarray) -> dict[str, Any]:
  """The variables of the last stage-2 checkpoint in ``workdir``."""
  key = jax.random.PRNGKey(config.seed)
  init_key, stage2_key = jax.random.split(key)
  like = train.start_max_margin(
      model, config, train.init_train_state(model, config, init_key,
                                            pose_space), stage2_key)
  directory = os.path.join(workdir, "stage2")
  newest = _latest(directory)
  if newest is None:
    raise FileNotFoundError(
        f"no trained model in {workdir} (no checkpoint under {directory}); "
        "train first (mode=train) or point --workdir at a trained run.")
  state, step = checkpoints.restore_readable(checkpoints.manager(directory),
                                             like)
  if step != newest:  # never evaluate an older model than the run trained
    raise FileNotFoundError(
        f"the newest stage-2 checkpoint of {workdir} (step {newest}) could "
        f"not be read and was moved aside; the newest readable one is step "
        f"{step}. Run --mode=train on this workdir to train again from "
        "there, then evaluate.")
  return state.variables()
