"""Checking a run's config against the schema of the default config."""

from __future__ import annotations

import difflib
import json
from typing import Any, Mapping

from structnet_jax import files


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


# Allowed values of the numeric fields: (lowest, lowest included?, highest,
# highest included?); highest None: unbounded. Checked when a run's config
# is loaded, so a value that cannot work fails with its name before anything
# runs.
_RANGES = {
    "seed": (0, True, None, False),
    "data.image_size": (1, True, None, False),
    "data.pca_noise_std": (0, True, None, False),
    "data.looks_per_subject": (0, True, None, False),
    "data.hue_jitter_deg": (0, True, 180, True),
    "data.saturation_jitter": (0, True, 1, True),
    "model.image_size": (1, True, None, False),
    "model.h1_width": (1, True, None, False),
    "model.h2_width": (1, True, None, False),
    "model.h3_width": (1, True, None, False),
    "model.embed_dim": (1, True, None, False),
    "model.pose_hidden": (1, True, None, False),
    "model.dropout_rate": (0, True, 1, False),
    "model.detection_grid": (0, True, None, False),
    "loss.pose_weight": (0, True, None, False),
    "loss.weight_decay": (0, True, None, False),
    "loss.margin_unit_mm": (0, False, None, False),
    "loss.detection_weight": (0, True, None, False),
    "stage1.num_steps": (0, True, None, False),
    "stage1.learning_rate": (0, False, None, False),
    "stage1.momentum": (0, True, 1, False),
    "stage2.num_steps": (0, True, None, False),
    "stage2.num_candidates": (1, True, None, False),
    "stage2.num_frequent": (0, True, None, False),
    "stage2.learning_rate": (0, False, None, False),
    "stage2.momentum": (0, True, 1, False),
    "line_search.min_step": (0, False, None, False),
    "line_search.num_coarse": (2, True, None, False),
    "line_search.num_fine": (0, True, None, False),
    "line_search.trial_batch_size": (0, True, None, False),
    "train.batch_size": (1, True, None, False),
    "train.log_every": (1, True, None, False),
    "train.checkpoint_every": (1, True, None, False),
    "eval.batch_size": (1, True, None, False),
    "eval.top_k": (1, True, None, False),
    "eval.check_images": (0, True, None, False),
    "eval.figure3_max_a": (1, True, None, False),
    "eval.figure4_num_images": (1, True, None, False),
    "eval.apf_particles": (1, True, None, False),
    "eval.apf_layers": (1, True, None, False),
    "eval.apf_refine_steps": (0, True, None, False),
    "eval.linkde_train_images": (1, True, None, False),
    "eval.linkde_features": (1, True, None, False),
    "eval.linkde_cell_size": (1, True, None, False),
}


def check_values(config) -> None:
  """Raises ValueError naming every numeric field outside its range.

  ``stage2.num_candidates=0`` or ``train.batch_size=-4`` would otherwise
  train without a word or fail deep inside JAX.
  """
  given = flatten(config)
  bad = []
  for name, (lo, lo_in, hi, hi_in) in _RANGES.items():
    if name not in given:
      continue
    value = given[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      bad.append(f"{name}={value!r} (must be a number)")
      continue
    below = value < lo or (value == lo and not lo_in)
    above = hi is not None and (value > hi or (value == hi and not hi_in))
    if value != value or below or above:  # value != value: NaN
      low = ("[" if lo_in else "(") + str(lo)
      high = "inf)" if hi is None else str(hi) + ("]" if hi_in else ")")
      bad.append(f"{name}={value!r} (must be in {low}, {high})")
  ls = (given.get("line_search.min_step"), given.get("line_search.max_step"))
  if None not in ls and isinstance(ls[1], (int, float)) and ls[1] <= ls[0]:
    bad.append(f"line_search.max_step={ls[1]!r} (must be above min_step="
               f"{ls[0]!r})")
  for a in given.get("eval.avg_sizes", ()) or ():
    if not isinstance(a, int) or a < 1:
      bad.append(f"eval.avg_sizes has {a!r} (every A must be an integer "
                 ">= 1)")
  if bad:
    raise ValueError("config value(s) out of range: " + "; ".join(bad) + ".")


# Fields whose default changed after workdirs were written: a saved config
# without the field was trained with this value, not today's default.
_ABSENT_MEANS = {"model.detection_grid": 0}


def config_from_json(path: str, reference):
  """The run config saved as JSON (``<workdir>/config.json``), as a ConfigDict.

  Every field of ``reference`` (the default config) not in the file keeps
  its default, so a workdir written by an older version still loads (a
  field whose default has changed since takes the value it had then,
  ``_ABSENT_MEANS``); lists become tuples where the default is a tuple.

  Raises:
    FileNotFoundError: no such file (with what writes it).
    ValueError: a field the reference lacks.
  """
  if not files.exists(path):
    raise FileNotFoundError(
        f"no run config at {path}; experiments.main writes it into the "
        "workdir when a run starts. Point --workdir at a trained run.")
  saved = flatten(json.loads(files.read_text(path)))
  saved = {**{k: v for k, v in _ABSENT_MEANS.items() if k not in saved},
           **saved}
  config = reference.copy_and_resolve_references()
  check_config(unflatten(saved), reference)
  for name, value in saved.items():
    *sections, leaf = name.split(".")
    node = config
    for section in sections:
      node = node[section]
    if isinstance(node[leaf], tuple) and isinstance(value, list):
      value = tuple(value)
    node[leaf] = value
  return config


def unflatten(flat: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
  """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (names split at ``sep``)."""
  out: dict[str, Any] = {}
  for name, value in flat.items():
    *sections, leaf = name.split(sep)
    node = out
    for section in sections:
      node = node.setdefault(section, {})
    node[leaf] = value
  return out
