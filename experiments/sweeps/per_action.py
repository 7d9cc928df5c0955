"""Table 2: one network per action, all with the same settings.

The sweep argument names the action list: ``h36m`` (the 15 Human3.6M
actions, for ``h36m_motion.py`` / ``h36m_release.py``) or ``procedural``
(the procedural actions, for ``default.py``). Each run renders (once) and
trains on that action's sequences only:

  python -m experiments.sweep --sweep=experiments/sweeps/per_action.py:h36m \
      --config=experiments/configs/h36m_motion.py:cpu --root=DIR \
      --set=data.motion_path=/path/to/h36m_expmap_25fps.npz
"""

from __future__ import annotations

ACTION_LISTS = ("h36m", "procedural")


def _actions(which: str) -> tuple[str, ...]:
  if which == "h36m":
    from data_pipelines.motion import h36m_release  # pylint: disable=g-import-not-at-top
    return h36m_release.ACTIONS
  if which == "procedural":
    from data_pipelines.motion import procedural as procedural_motion  # pylint: disable=g-import-not-at-top
    return procedural_motion.ACTION_NAMES
  raise ValueError(f"per_action sweep argument {which!r} is unknown; use one "
                   f"of {ACTION_LISTS} (e.g. per_action.py:h36m).")


def get_sweep(which: str = "h36m"):
  return [{"name": a, "label": a, "data.actions": a} for a in _actions(which)]


def tables(which: str = "h36m"):
  """One row per method, one column per action, each from its own network."""
  runs = [(a, a) for a in _actions(which)]
  return [("Table 2: one network per action", method, runs, "per_action")
          for method in ("StructNet-Avg(500)", "StructNet-Avg(500)-APF",
                         "StructNet-Max", "LinKDE",
                         "Regression net (stage 1)")]
