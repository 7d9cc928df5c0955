"""Checking a run's config against the schema of the default config."""

from __future__ import annotations

import difflib
import json
import os
from typing import Any, Mapping


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """``{"model.h1_width": 256, ...}``: the leaves of a (nested) config."""
  out = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping) or hasattr(value, "to_dict") and not isinstance(
        value, (list, tuple)):
      out.update(flatten(value.to_dict() if hasattr(value, "to_dict") else value,
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
  known = flatten(reference)
  given = flatten(config)
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


def config_from_json(path: str, reference):
  """The run config saved as JSON (``<workdir>/config.json``), as a ConfigDict.

  Every field of ``reference`` (the default config) not in the file keeps
  its default, so a workdir written by an older version still loads; lists
  become tuples where the default is a tuple.

  Raises:
    FileNotFoundError: no such file (with what writes it).
    ValueError: a field the reference lacks.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"no run config at {path}; experiments.main writes it into the "
        "workdir when a run starts. Point --workdir at a trained run.")
  with open(path) as f:
    saved = flatten(json.load(f))
  config = reference.copy_and_resolve_references()
  check_config(_unflatten(saved), reference)
  for name, value in saved.items():
    *sections, leaf = name.split(".")
    node = config
    for section in sections:
      node = node[section]
    if isinstance(node[leaf], tuple) and isinstance(value, list):
      value = tuple(value)
    node[leaf] = value
  return config


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
  out: dict[str, Any] = {}
  for name, value in flat.items():
    *sections, leaf = name.split(".")
    node = out
    for section in sections:
      node = node.setdefault(section, {})
    node[leaf] = value
  return out
