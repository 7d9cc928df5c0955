"""The line a run logs before it starts: what it will do and about how long.

  plan: stage 1: 1000 steps x 64 images (adamw); stage 2: 1000 steps x 64
  images (C=2000 + K=10 candidates of 22000, adamw, conv trunk frozen);
  evaluate: 8800 test images x 22000 candidates (Max, Avg(20/500/1500),
  APF on A=500/1500, regression net, LinKDE fit on <=20000 training images,
  figures); about 6.9 min on this machine (stage 1 1.4, stage 2 0.8,
  evaluation 4.7; from a timed stage-1 step of 0.083 s and a timed
  evaluation batch of 0.35 s; rough)

(the README's main job on the 2-core development machine, 2026-12-02; the
job took 7.9 min in all: the estimate leaves out opening the data and
compiling).

The counts come from the config and the data. The time comes from two
probes on this machine (``probe``): the real stage-1 step, compiled and
timed at the config's batch size (when the run trains), and the real scorer
on one evaluation batch against the real candidate table. The rest is a
cost model (``estimate``) whose ratios were measured on the 2-core
reference machine running the README's main job (its log, 2026-12-01): a
stage-2 step costs 0.55 stage-1 steps with the conv trunk frozen and an
Adam-family optimizer (1.0 with the trunk trained, twice that with the
paper's line search); the evaluation pass with its baseline rows costs 3.2
scorer passes over the test set, the figures 1.8 more, the learning report
3.0 per batch of its four passes (two stages, two splits); the APF fits 160
poses/s at 100 particles x 5 layers + 100 refinement steps (work scaled by
particles x layers + steps); the LinKDE fit's HOG runs at 1100 images/s. It
is meant to tell a 10-minute run from a 10-hour one, not to the minute.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import numpy as np

# Ratios measured on the reference machine (module docstring).
STAGE2_PER_STAGE1_STEP_FROZEN = 0.55
STAGE2_PER_STAGE1_STEP = 1.0
LINE_SEARCH_FACTOR = 2.0
EVAL_PER_SCORER_PASS = 3.2
CHECK_PER_SCORER_PASS = 3.0
FIGURES_PER_SCORER_PASS = 1.8
APF_POSES_PER_S_REFERENCE = 160.0
APF_WORK_REFERENCE = 100 * 5 + 100
LINKDE_HOG_IMAGES_PER_S = 1100.0


@dataclasses.dataclass(frozen=True)
class Probe:
  """Seconds measured on this machine.

  Attributes:
    stage1_step_s: one stage-1 train step at ``config.train.batch_size``
      (``None``: not timed, for an evaluation-only run).
    eval_batch_s: the scorer on one batch of ``config.eval.batch_size``
      images against the whole candidate table (Max, Avg(A), top-k).
  """
  stage1_step_s: float | None
  eval_batch_s: float


def _timed(fn, repeats: int = 2) -> float:
  """Median seconds of ``fn()`` (blocking) after one warm-up call."""
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def probe(model, config, candidates: np.ndarray, *,
          train: bool = True) -> Probe:
  """Times the real stage-1 step and the real scorer on zeros (no data read).

  Args:
    model: the run's ``StructNet``.
    config: the run config.
    candidates: ``[N, 17, 3]`` mm, the candidate pose space Y.
    train: also time the stage-1 step. An evaluation-only run does not
      compile it (``stage1_step_s`` is then ``None``): compiling a train step
      costs about as much as the scorer's whole evaluation on a small set.
  """
  from structnet_jax import scoring  # pylint: disable=g-import-not-at-top
  from structnet_jax import sharding  # pylint: disable=g-import-not-at-top
  from structnet_jax import train as train_lib  # pylint: disable=g-import-not-at-top
  size = int(config.model.image_size)
  bs = int(config.train.batch_size)
  state = train_lib.init_train_state(model, config, jax.random.PRNGKey(0),
                                     candidates)
  stage1_s = None
  if train:
    mesh = sharding.make_mesh()
    step = train_lib.jit_step(train_lib.make_pretrain_step(model, config),
                              mesh)
    batch = {"image": np.zeros((bs, size, size, 3), np.float32),
             "pose": np.asarray(candidates[:bs], np.float32)}
    if config.model.detection_grid:
      batch["pose_2d"] = np.zeros((bs, 17, 2), np.float32)
    batch = sharding.shard_batch(batch, mesh)
    holder = [sharding.replicate(state, mesh)]

    def one_step():
      holder[0], metrics = step(holder[0], batch)
      return metrics

    stage1_s = _timed(one_step)
    state = holder[0]
  variables = state.variables()
  table = scoring.embed_candidate_poses(model, variables, candidates)
  avg = tuple(int(a) for a in config.eval.avg_sizes if a <= len(candidates))
  predict = scoring.make_predictor(model, avg or (1,),
                                   min(int(config.eval.top_k),
                                       len(candidates)))
  images = np.zeros((int(config.eval.batch_size), size, size, 3), np.float32)
  eval_s = _timed(lambda: predict(variables, images, table, candidates))
  return Probe(stage1_s, eval_s)


def estimate(config, probe_result: Probe, num_test: int,
             num_train: int) -> dict[str, float]:
  """Seconds per phase: ``{"stage 1", "stage 2", "evaluation"}`` (only
  ``"evaluation"`` from a probe without a timed stage-1 step).

  Args:
    config: the run config.
    probe_result: this machine's timings (``probe``).
    num_test: images evaluated.
    num_train: training images (the LinKDE fit uses at most
      ``eval.linkde_train_images`` of them).
  """
  t1 = probe_result.stage1_step_s
  frozen = bool(config.stage2.freeze_trunk)
  per_step2 = (STAGE2_PER_STAGE1_STEP_FROZEN if frozen
               else STAGE2_PER_STAGE1_STEP)
  if config.stage2.optimizer == "line_search":
    per_step2 *= LINE_SEARCH_FACTOR
  e = config.eval
  scorer_pass = -(-num_test // int(e.batch_size)) * probe_result.eval_batch_s
  evaluation = scorer_pass * EVAL_PER_SCORER_PASS
  if e.figures:
    evaluation += scorer_pass * FIGURES_PER_SCORER_PASS
  apf_poses = num_test * len([a for a in e.apf_sizes if a in e.avg_sizes])
  apf_work = int(e.apf_particles) * int(e.apf_layers) + int(e.apf_refine_steps)
  evaluation += (apf_poses / APF_POSES_PER_S_REFERENCE * apf_work
                 / APF_WORK_REFERENCE)
  if e.linkde:
    evaluation += min(num_train, int(e.linkde_train_images)) / (
        LINKDE_HOG_IMAGES_PER_S)
  if e.check_images > 0:  # the learning report: 2 stages x 2 splits
    evaluation += (4 * -(-int(e.check_images) // int(e.batch_size))
                   * probe_result.eval_batch_s * CHECK_PER_SCORER_PASS)
  if t1 is None:  # an evaluation-only probe
    return {"evaluation": evaluation}
  return {"stage 1": int(config.stage1.num_steps) * t1,
          "stage 2": int(config.stage2.num_steps) * t1 * per_step2,
          "evaluation": evaluation}


def describe(config, num_train: int, num_test: int, num_candidates: int,
             *, train: bool = True, evaluate: bool = True,
             probe_result: Probe | None = None) -> str:
  """The plan line (module docstring); without a probe, no time estimate."""
  parts = []
  bs = int(config.train.batch_size)
  if train:
    s1, s2 = config.stage1, config.stage2
    if config.stage1.init_from:
      parts.append(f"stage 1: shared from {config.stage1.init_from}")
    elif int(s1.num_steps) > 0:
      parts.append(f"stage 1: {s1.num_steps} steps x {bs} images "
                   f"({s1.optimizer})")
    parts.append(
        f"stage 2: {s2.num_steps} steps x {bs} images (C={s2.num_candidates}"
        f" + K={s2.num_frequent} candidates of {num_candidates}, "
        f"{s2.optimizer}" + (", conv trunk frozen" if s2.freeze_trunk else "")
        + ")")
  if evaluate:
    e = config.eval
    avg = "/".join(str(a) for a in e.avg_sizes if a <= num_candidates)
    rows = ["Max", f"Avg({avg})"]
    apf = [a for a in e.apf_sizes if a in e.avg_sizes]
    if apf:
      rows.append("APF on A=" + "/".join(str(a) for a in apf))
    if e.regression_row:
      rows.append("regression net")
    if e.linkde:
      rows.append(f"LinKDE fit on <={min(num_train, e.linkde_train_images)} "
                  "training images")
    if e.figures:
      rows.append("figures")
    parts.append(f"evaluate: {num_test} test images x {num_candidates} "
                 f"candidates ({', '.join(rows)})")
  line = "plan: " + "; ".join(parts)
  if probe_result is None:
    return line
  phases = estimate(config, probe_result, num_test, num_train)
  if not train:
    phases = {"evaluation": phases["evaluation"]}
  if not evaluate:
    phases.pop("evaluation")
  total = sum(phases.values())
  timed = [f"a timed evaluation batch of {probe_result.eval_batch_s:.2f} s"]
  if train and probe_result.stage1_step_s is not None:
    timed.insert(0, "a timed stage-1 step of "
                 f"{probe_result.stage1_step_s:.3f} s")
  return (line + f"; about {total / 60:.1f} min on this machine ("
          + ", ".join(f"{k} {v / 60:.1f}" for k, v in phases.items())
          + f"; from {' and '.join(timed)}; rough)")


def plan_line(run: Any, mode: str) -> str:
  """The plan line of ``run`` (``experiments.pipeline.Run``) for ``mode``,
  probed on this machine when ``config.train.plan_probe``."""
  config = run.config
  candidates = run.candidates
  train = mode in ("train", "train_and_evaluate")
  evaluate = mode in ("evaluate", "train_and_evaluate")
  probe_result = (probe(run.model, config, candidates, train=train)
                  if config.train.plan_probe and jax.process_count() == 1
                  else None)
  return describe(config, run.train_source.num_examples("train"),
                  run.source.num_examples("test"), len(candidates),
                  train=train, evaluate=evaluate, probe_result=probe_result)
