"""Checking a run's config against the schema of the default config."""

from __future__ import annotations

import difflib
from typing import Any, Mapping


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping) or hasattr(value, "to_dict") and not isinstance(
        value, (list, tuple)):
      out.update(_flatten(value.to_dict() if hasattr(value, "to_dict") else value,
                          name + "."))
    else:
      out[name] = value
  return out


def check_config(config, reference) -> None:
  """Raises ValueError for fields of ``config`` that ``reference`` lacks.

  Args:
    config: a run's ConfigDict (or nested mapping).
    reference: the default ConfigDict, which declares every known field.

  Raises:
    ValueError: naming each unknown field and the closest known ones, so a
      typo such as ``train.bach_size`` is caught before anything runs.
  """
  known = _flatten(reference)
  given = _flatten(config)
  unknown = sorted(set(given) - set(known))
  if unknown:
    hints = []
    for name in unknown:
      close = difflib.get_close_matches(name, list(known), n=2)
      hints.append(f"{name}" + (f" (did you mean {', '.join(close)}?)"
                                if close else ""))
    raise ValueError(
        "unknown config field(s): " + "; ".join(hints) +
        ". Every field is declared in experiments/configs/default.py; fix the "
        "name or add the field there.")
