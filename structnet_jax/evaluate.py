"""Evaluation: StructNet-Max / -Avg(A) / -Pred over a test set, per action.

``evaluate`` runs the jitted predictor over eval batches (``{"image", "pose",
"mask", "action"}``, the last batch padded and masked), and returns per-example
MPJPE and Procrustes-aligned MPJPE for every method, aggregated per action as
mean and standard deviation (the cells of the paper's Table 1).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from structnet_jax import distributed
from structnet_jax import metrics
from structnet_jax import models
from structnet_jax import progress as progress_lib
from structnet_jax import scoring
from structnet_jax import sharded_scoring
from structnet_jax import sharding


MEAN_POSE = "Mean training pose"
NN_ORACLE = "NN-oracle"


def method_names(avg_sizes: Sequence[int]) -> list[str]:
  return (["StructNet-Max"] + [f"StructNet-Avg({a})" for a in avg_sizes] +
          ["StructNet-Pred", MEAN_POSE, NN_ORACLE])


@jax.jit
def _nearest_candidate(targets, candidates):
  """Index ``[B]`` of the candidate nearest (MPJPE) to each target pose."""
  return jnp.argmin(metrics.pairwise_mpjpe(targets, candidates, chunk_size=16),
                    axis=-1)


@jax.jit
def _errors(pred, target):
  return metrics.mpjpe(pred, target), metrics.pa_mpjpe(pred, target)


def evaluate(model: models.StructNet, variables: dict[str, Any],
             batches: Iterable[dict[str, Any]], candidates: np.ndarray,
             avg_sizes: Sequence[int] = (20, 500, 1500), top_k: int = 10,
             table=None, mesh=None, shard_candidates: bool = False,
             baselines: dict[str, Any] | None = None,
             apf_sizes: Sequence[int] = (), apf_key=None,
             apf_options: dict[str, Any] | None = None,
             num_examples: int | None = None) -> dict[str, Any]:
  """Scores every test example against the candidate set.

  Besides StructNet-Max, -Avg(A) and -Pred, the mean training pose is
  reported as the trivial baseline every method must beat, and the
  "NN-oracle", the candidate nearest to the ground truth: the error
  StructNet-Max would reach with a perfect score function, the floor set by
  the candidate set itself.

  Args:
    model, variables: the trained network.
    batches: eval batches with ``image [B, S, S, 3]``, ``pose [B, 17, 3]`` mm,
      ``mask [B] bool`` and ``action [B] str``.
    candidates: ``[N, 17, 3]`` mm (the training poses).
    avg_sizes: the A of StructNet-Avg(A).
    top_k: hypotheses kept per image.
    table: a precomputed ``[N, D]`` pose-embedding table (else computed here).
    mesh: optional mesh of this process's devices: each batch's images are
      sharded over its ``data`` axis and the variables and table replicated
      (the batch size must divide by the device count). With several
      processes (``distributed``), the batches are split round robin over
      the processes (batch ``i`` on process ``i % P``), and so are the APF
      fits; every process returns the whole result.
    shard_candidates: with ``mesh``, split the table and the candidates
      along N over ``data`` instead (``sharded_scoring``: each device scores
      its rows, an exact merge gives Max / Avg(A) / top-k), for candidate
      sets too large to replicate; the images are then replicated.
    baselines: optional ``{name: predict(images [B, S, S, 3]) -> [B, 17, 3]
      mm}`` of other methods (e.g. LinKDE) run on the same batches.
    apf_sizes: the A of StructNet-Avg(A)-APF rows (each must be in
      ``avg_sizes``): the Avg(A) pose is fitted by ``apf.fit`` with a
      kinematic template of the test subject's bone lengths (the median over
      that subject's ground-truth test poses; all test poses when batches
      carry no ``subject``), starting from the joint angles of the
      best-scoring pose (StructNet-Max, one of the top A).
    apf_key: PRNG key of the APF (default ``PRNGKey(0)``).
    apf_options: keyword arguments of ``apf.fit`` (particles, layers, ...).
    num_examples: how many examples ``batches`` holds, for the progress
      lines' percentage and ETA (None: counts only).

  Returns:
    ``{"actions": [M] str, "poses": [M, 17, 3], "predictions": {method: [M, 17,
    3]}, "mpjpe": {method: [M]}, "pa_mpjpe": {method: [M]}, "top_indices":
    [M, top_k], "top_scores": [M, top_k], "image_embeddings": [M, D]}``.
  """
  candidates = scoring.check_candidates(candidates).astype(np.float32)
  avg_sizes = scoring.check_avg_sizes(avg_sizes, len(candidates))
  if table is None:
    table = scoring.embed_candidate_poses(model, variables, candidates)
  sharded = None
  if shard_candidates:
    if mesh is None:
      raise ValueError("shard_candidates=True needs a mesh to shard over.")
    sharded = sharded_scoring.shard_candidates(table, candidates, mesh)
    predict_sharded = sharded_scoring.make_sharded_predictor(
        model, mesh, avg_sizes, top_k)
    variables = sharding.replicate(variables, mesh)
    predict = lambda v, images, *_: predict_sharded(v, images, sharded)
    cands = sharded.poses[:len(candidates)]
  else:
    predict = scoring.make_predictor(model, avg_sizes, top_k)
    cands = jnp.asarray(candidates)
    if mesh is not None:
      variables, table, cands = sharding.replicate((variables, table, cands),
                                                   mesh)
  mean_pose = candidates.mean(axis=0)
  baselines = dict(baselines or {})
  names = method_names(avg_sizes) + list(baselines)
  apf_sizes = tuple(int(a) for a in apf_sizes)
  missing = [a for a in apf_sizes if a not in avg_sizes]
  if missing:
    raise ValueError(f"StructNet-Avg(A)-APF needs A in avg_sizes={avg_sizes}; "
                     f"add {missing} to config.eval.avg_sizes.")
  keep = {"actions": [], "poses": [], "subjects": []}
  parts, sizes = [], []  # this process's batches' outputs; every batch's size
  progress = progress_lib.Progress(
      "eval: " + ", ".join(["StructNet"] + list(baselines)), num_examples)
  for i, batch in enumerate(batches):
    mask = np.asarray(batch["mask"], bool)
    keep["actions"].append(np.asarray(batch["action"])[mask])
    keep["subjects"].append(np.asarray(
        batch.get("subject", np.full(len(mask), "all")))[mask])
    keep["poses"].append(np.asarray(batch["pose"], np.float32)[mask])
    sizes.append(int(mask.sum()))
    if not distributed.owns(i):  # another process scores this batch
      progress.update(sizes[-1])
      continue
    images = batch["image"]
    if mesh is not None and sharded is None:
      images = sharding.shard_batch({"image": images}, mesh)["image"]
    out = jax.device_get(predict(variables, images, table, cands))
    gt = jnp.asarray(np.asarray(batch["pose"], np.float32))
    methods = {"StructNet-Max": out["max"], "StructNet-Pred": out["pred"],
               MEAN_POSE: np.broadcast_to(mean_pose, out["max"].shape),
               NN_ORACLE: candidates[np.asarray(_nearest_candidate(gt, cands))],
               **{f"StructNet-Avg({a})": out["avg"][a] for a in avg_sizes},
               **{n: np.asarray(f(batch["image"])) for n, f in
                  baselines.items()}}
    parts.append({
        **{f"pred/{n}": np.asarray(methods[n], np.float32)[mask]
           for n in names},
        "top_indices": np.asarray(out["top_indices"], np.int32)[mask],
        "top_scores": np.asarray(out["top_scores"], np.float32)[mask],
        "image_embeddings": np.asarray(out["image_embedding"],
                                       np.float32)[mask]})
    progress.update(sizes[-1])
  progress.done()
  if not keep["poses"]:
    raise ValueError("the evaluation set is empty: no batches were given.")
  template = {**{f"pred/{n}": np.zeros((0, 17, 3), np.float32)
                 for n in names},
              "top_indices": np.zeros((0, int(top_k)), np.int32),
              "top_scores": np.zeros((0, int(top_k)), np.float32),
              "image_embeddings": np.zeros((0, np.shape(table)[1]),
                                           np.float32)}
  outputs = distributed.gather_parts(parts, sizes, template)
  result = {key: np.concatenate(v) for key, v in keep.items()}
  result.update({key: v for key, v in outputs.items()
                 if not key.startswith("pred/")})
  result["predictions"] = {n: outputs[f"pred/{n}"] for n in names}
  if apf_sizes:
    result["predictions"].update(_apf_rows(result, apf_sizes, apf_key,
                                           apf_options or {}))
  # Table 1's order: StructNet's rows, the baselines, then the references.
  last = (MEAN_POSE, NN_ORACLE)
  order = ([n for n in result["predictions"] if n.startswith("StructNet-") and
            n != "StructNet-Pred"] + ["StructNet-Pred"] +
           [n for n in result["predictions"] if not n.startswith("StructNet-")
            and n not in last] + list(last))
  result["predictions"] = {n: result["predictions"][n] for n in order}
  result["mpjpe"], result["pa_mpjpe"] = {}, {}
  for n, p in result["predictions"].items():
    e, pa = jax.device_get(_errors(p, result["poses"]))
    result["mpjpe"][n], result["pa_mpjpe"][n] = np.asarray(e), np.asarray(pa)
  return result


def _apf_rows(result, apf_sizes, key, options, chunk: int = 64):
  """``{"StructNet-Avg(A)-APF": [M, 17, 3]}``: each Avg(A) pose fitted by APF."""
  from structnet_jax import apf  # pylint: disable=g-import-not-at-top
  key = jax.random.PRNGKey(0) if key is None else key
  subjects = np.asarray(result["subjects"]).astype(str)
  lengths = np.zeros((len(subjects), apf.NUM_BONES), np.float32)
  for subject in np.unique(subjects):  # the test subject's template
    rows = subjects == subject
    lengths[rows] = apf.subject_bone_lengths(result["poses"][rows])
  init = result["predictions"]["StructNet-Max"]
  rows = {}
  progress = progress_lib.Progress(
      f"eval: StructNet-Avg(A)-APF, A in {tuple(apf_sizes)}",
      len(init) * len(apf_sizes), "poses")
  for a in apf_sizes:
    target = result["predictions"][f"StructNet-Avg({a})"]
    fitted, sizes = [], []
    for j, start in enumerate(range(0, len(target), chunk)):
      part = slice(start, start + chunk)
      sizes.append(len(target[part]))
      if distributed.owns(j):  # chunks split over the processes
        fitted.append({"pose": np.asarray(apf.fit(
            target[part], init[part], lengths[part],
            jax.random.fold_in(jax.random.fold_in(key, a), start),
            **options))})
      progress.update(sizes[-1])
    rows[f"StructNet-Avg({a})-APF"] = distributed.gather_parts(
        fitted, sizes, {"pose": np.zeros((0, 17, 3), np.float32)})["pose"]
  progress.done()
  return rows


def summary_table(result: dict[str, Any], key: str = "mpjpe") -> dict[str, Any]:
  """Per-method, per-action ``{"mean", "std", "count"}`` of ``result[key]``."""
  return {method: metrics.per_action_stats(errors, result["actions"])
          for method, errors in result[key].items()}


def markdown_table(table: dict[str, Any], title: str = "MPJPE (mm)") -> str:
  """A Table-1 style markdown table: rows methods, columns actions then All;
  cells ``mean (std)``."""
  methods = list(table)
  actions = sorted({a for m in methods for a in table[m] if a != "All"})
  cols = actions + ["All"]
  lines = [f"| {title} | " + " | ".join(cols) + " |",
           "|---|" + "---|" * len(cols)]
  for m in methods:
    cells = [metrics.format_mean_std(table[m][a]["mean"], table[m][a]["std"])
             if a in table[m] else "-" for a in cols]
    lines.append(f"| {m} | " + " | ".join(cells) + " |")
  return "\n".join(lines)
