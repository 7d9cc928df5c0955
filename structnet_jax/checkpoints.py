"""Checkpointing of train states with orbax (one manager per training stage)."""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


def manager(directory: str, max_to_keep: int = 3) -> ocp.CheckpointManager:
  """An orbax CheckpointManager over ``directory`` (created if missing)."""
  directory = os.path.abspath(directory)
  return ocp.CheckpointManager(
      directory,
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                           create=True))


def save(mngr: ocp.CheckpointManager, step: int, state: Any) -> None:
  """Saves ``state`` at ``step`` and waits until it is on disk.

  A step that is already saved is left as it is (a re-run never overwrites
  finished work).
  """
  if step in mngr.all_steps():
    return
  mngr.save(step, args=ocp.args.StandardSave(state))
  mngr.wait_until_finished()


def latest_step(mngr: ocp.CheckpointManager) -> int | None:
  return mngr.latest_step()


def restore(mngr: ocp.CheckpointManager, like: Any, step: int | None = None) -> Any:
  """Restores the checkpoint at ``step`` (default: latest) shaped like ``like``.

  ``like`` is a state of the same structure (e.g. a freshly initialised one);
  the restored arrays take its shardings.
  """
  step = mngr.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {mngr.directory}.")
  abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, like)
  return mngr.restore(step, args=ocp.args.StandardRestore(abstract))
