"""Several processes (hosts) training one model: JAX's own distributed runtime.

Every process runs the same program (``python -m experiments.main ...``) on
its own host with its own devices; ``initialize`` joins them before any JAX
computation, after which ``jax.devices()`` lists the devices of all
processes and the train steps' ``data`` mesh axis spans them
(``sharding.make_mesh``). What each process does:

* feeds its share of every global batch (``process_rows``): with the
  generated and on-device sources, which compute the batch of a step as a
  pure function of the step, process ``p`` of ``P`` keeps rows
  ``[p B/P, (p+1) B/P)``, so ``P`` processes train on exactly the batches
  one process would (``tests/test_distributed.py``); the tf.data pipeline
  reads a per-host split of the TFDS data instead (big_vision's way), so
  there the batches differ from a single process's, not their statistics;
* takes part in every step, checkpoint (orbax writes a multi-process
  checkpoint of the replicated state) and evaluation (``evaluate.evaluate``
  scores the test batches it ``owns``, round robin, on its own devices,
  likewise the APF fits, and ``gather_parts`` gives every process the whole
  result);
* writes results, configs, figures, metrics and TensorBoard only if it is
  the main process (``is_main_process``).

``spec`` (``--distributed`` or ``$STRUCTNET_DISTRIBUTED``):
  ""                       one process (the default; nothing is initialised)
  "auto"                   ``jax.distributed.initialize()`` with the cluster's
                           own discovery (Cloud TPU pod slices, SLURM, Open MPI)
  "HOST:PORT,N,I"          coordinator address, number of processes, this
                           process's id (multi-node GPU, or local CPU tests;
                           on CPU the collectives go through gloo)
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import jax
import numpy as np

ENV_VAR = "STRUCTNET_DISTRIBUTED"


def parse_spec(spec: str) -> dict[str, Any] | None:
  """The ``jax.distributed.initialize`` arguments of ``spec`` (module
  docstring); None for a single process.

  Raises:
    ValueError: a malformed spec (names the accepted forms).
  """
  spec = (spec or "").strip()
  if not spec:
    return None
  if spec == "auto":
    return {}
  parts = [p.strip() for p in spec.split(",")]
  usage = (f"distributed spec {spec!r} must be '' (one process), 'auto' "
           "(TPU pod slice / SLURM / Open MPI discovery) or "
           "'HOST:PORT,NUM_PROCESSES,PROCESS_ID', e.g. 'node0:1234,2,0'.")
  if len(parts) != 3 or ":" not in parts[0]:
    raise ValueError(usage)
  try:
    num, pid = int(parts[1]), int(parts[2])
  except ValueError:
    raise ValueError(usage) from None
  if num < 1 or not 0 <= pid < num:
    raise ValueError(f"distributed spec {spec!r}: need NUM_PROCESSES >= 1 "
                     f"and 0 <= PROCESS_ID < NUM_PROCESSES, got {num}, {pid}.")
  return {"coordinator_address": parts[0], "num_processes": num,
          "process_id": pid}


def initialize(spec: str | None = None) -> bool:
  """Joins the processes of ``spec`` (default ``$STRUCTNET_DISTRIBUTED``);
  returns whether a distributed runtime was started. Call it before any
  other JAX computation."""
  spec = os.environ.get(ENV_VAR, "") if spec is None else spec
  kwargs = parse_spec(spec)
  if kwargs is None:
    return False
  if kwargs:  # explicit processes: CPU devices talk through gloo
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  return True


def is_main_process() -> bool:
  """Whether this process writes the run's files (process 0)."""
  return jax.process_index() == 0


def agreed(flag: bool) -> bool:
  """Process 0's ``flag``, on every process.

  For a check of the (shared) filesystem that decides whether a collective
  follows (e.g. "is there a checkpoint folder?", then opening its orbax
  manager, which synchronises the processes): each process looking for
  itself can see the folder appear between two processes' looks, and the
  processes would then make different collectives and hang or fail.
  """
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(multihost_utils.broadcast_one_to_all(np.int32(bool(flag))))


def owns(part: int) -> bool:
  """Whether this process computes part ``part`` of a sequence split round
  robin over the processes (part ``j`` belongs to process ``j % P``)."""
  return part % jax.process_count() == jax.process_index()


def gather_parts(local_parts: Sequence[dict[str, np.ndarray]],
                 sizes: Sequence[int],
                 template: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The whole sequence of parts, in order, on every process.

  Part ``j`` of ``len(sizes)`` holds ``sizes[j]`` rows and was computed by
  process ``j % P`` (``owns``); ``local_parts`` are this process's parts in
  order. Every process must call this with the same ``sizes``.

  Args:
    local_parts: ``[{key: [sizes[j], ...]}]`` for the parts this process owns.
    sizes: the rows of every part (known to every process).
    template: ``{key: array}`` whose trailing shape and dtype each key has
      (for a process that owns no part).

  Returns:
    ``{key: [sum(sizes), ...]}``, the parts concatenated in order.
  """
  def cat(parts, key):
    arrays = [np.asarray(p[key]) for p in parts]
    if not arrays:
      t = np.asarray(template[key])
      return np.zeros((0,) + t.shape[1:], t.dtype)
    return np.concatenate(arrays)

  count = jax.process_count()
  if count == 1:
    return {k: cat(local_parts, k) for k in template}
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  rows = [sum(s for j, s in enumerate(sizes) if j % count == q)
          for q in range(count)]
  longest = max(max(rows), 1)
  local = {}
  for k in template:
    mine = cat(local_parts, k)
    pad = np.zeros((longest - len(mine),) + mine.shape[1:], mine.dtype)
    local[k] = np.concatenate([mine, pad])
  gathered = jax.tree_util.tree_map(
      np.asarray, multihost_utils.process_allgather(local))  # [P, longest, ...]
  offsets = [0] * count
  out = {k: [] for k in template}
  for j, size in enumerate(sizes):
    q = j % count
    for k in template:
      out[k].append(gathered[k][q, offsets[q]:offsets[q] + size])
    offsets[q] += size
  return {k: (np.concatenate(v) if v else cat([], k)).astype(
      np.asarray(template[k]).dtype) for k, v in out.items()}


def process_rows(batch: dict[str, Any], global_size: int) -> dict[str, Any]:
  """This process's share of the training batch of a step.

  A source gives either the whole global batch ``{key: [global_size, ...]}``
  (the generated and on-device sources, which compute it on every process):
  this process keeps rows ``[p B/P, (p+1) B/P)``; or, like the tf.data
  pipeline, which reads a per-host split, already this host's
  ``global_size / P`` examples: returned as they are.

  Raises:
    ValueError: the global batch does not split over the processes, or the
      batch is neither size.
  """
  count, index = jax.process_count(), jax.process_index()
  if count == 1:
    return batch
  if global_size % count:
    raise ValueError(f"the global batch of {global_size} examples does not "
                     f"split over {count} processes; use a multiple of "
                     f"{count}.")
  share = global_size // count
  size = len(next(iter(batch.values())))
  if size == share:
    return batch
  if size != global_size:
    raise ValueError(f"a training batch of {size} examples is neither the "
                     f"global batch ({global_size}) nor this process's share "
                     f"({share}).")
  return {k: np.asarray(v)[index * share:(index + 1) * share]
          for k, v in batch.items()}
