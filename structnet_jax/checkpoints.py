"""Checkpointing of train states with orbax (one manager per training stage)."""

from __future__ import annotations

import os
from typing import Any

from absl import logging
import jax
from etils import epath
import orbax.checkpoint as ocp

from structnet_jax import files


def manager(directory: str, max_to_keep: int = 3) -> ocp.CheckpointManager:
  """An orbax CheckpointManager over ``directory`` (created if missing)."""
  directory = files.absolute(directory)  # orbax takes gs://... itself
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


def restore_readable(mngr: ocp.CheckpointManager, like: Any | None = None
                     ) -> tuple[Any, int]:
  """The newest checkpoint that can be read, and its step.

  A checkpoint that cannot be read (a damaged or truncated file) is moved
  aside to ``<step>.unreadable`` in the same folder, never deleted, with a
  warning that names it, and the one before it is tried. A resumed run then
  re-trains from the newest readable step and saves the moved steps again.

  Args:
    mngr: the stage's manager.
    like: a state of the same structure to restore into (its shardings are
      taken); None restores the saved tree as it is.

  Raises:
    FileNotFoundError: no checkpoint, or none that can be read.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  for step in steps:
    try:
      if like is None:
        return mngr.restore(step, args=ocp.args.StandardRestore()), step
      return restore(mngr, like, step), step
    except Exception as e:  # pylint: disable=broad-except
      # orbax / TensorStore raise many types for a damaged file.
      aside = _move_aside(mngr, step)
      logging.warning(
          "checkpoint step %d in %s cannot be read (%s: %s); moved it to %s "
          "and falling back to the newest older checkpoint.", step,
          mngr.directory, type(e).__name__, str(e).splitlines()[0][:200],
          aside)
  raise FileNotFoundError(
      f"no readable checkpoint in {mngr.directory}"
      + (" (the unreadable ones were moved aside to <step>.unreadable)"
         if steps else "") + "; train again from the start there, or point "
      "--workdir at another run.")


def _move_aside(mngr: ocp.CheckpointManager, step: int) -> str:
  """Renames the folder of ``step`` to ``<step>.unreadable[.<n>]`` (the main
  process renames; every process waits for it)."""
  directory = str(mngr.directory)
  source = os.path.join(directory, str(step))
  target, n = source + ".unreadable", 1
  while files.exists(target):
    target, n = f"{source}.unreadable.{n}", n + 1
  if jax.process_index() == 0:
    epath.Path(source).rename(target)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f"move_aside {source}")
  mngr.reload()
  return target
