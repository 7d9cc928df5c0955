r"""Trained models shipped in the package, and how they are made.

``experiments/pretrained_models/<name>/`` holds everything prediction needs,
without a workdir, TensorFlow or a download:

  config.json     the run's config (as ``<workdir>/config.json``)
  variables.npz   the final (stage-2) network variables, float32, keys
                  ``collection/layer/.../leaf``
  candidates.npy  the candidate pose space Y, ``[N, 17, 3]`` float32 mm
  examples/       a few rendered *test-subject* crops (``<name>.png``, the
                  stored crop side) with their true poses in ``card.json``
  card.json       how the model was made (command, commit, date, machine),
                  its test-set table (the run's ``results.json`` rows) and
                  the MPJPE of each example crop as predicted at export, which
                  ``tests/test_pretrained.py`` reproduces from the shipped files

``default`` is the README's main job (``experiments/configs/default.py`` on
the procedural, licence-free data). When the default config changes, train
it again and re-export (the test fails until then)::

  python -m experiments.main --config=experiments/configs/default.py \
      --workdir=workdirs/default
  python -m experiments.export_pretrained --workdir=workdirs/default \
      --name=default --command="python -m experiments.main ..."

Use it with ``python -m experiments.predict --pretrained=default
[--images=DIR]`` or ``predictor.Predictor.from_pretrained("default")``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from typing import Any

import jax
import numpy as np

from experiments.configs import default as default_config
from experiments import predictor as predictor_lib
from structnet_jax import config_utils
from structnet_jax import files
from structnet_jax import metrics

MODELS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "pretrained_models")
EXAMPLES = "examples"


def available() -> list[str]:
  """Names of the shipped models."""
  if not os.path.isdir(MODELS_DIR):
    return []
  return sorted(d for d in os.listdir(MODELS_DIR)
                if os.path.isfile(os.path.join(MODELS_DIR, d, "card.json")))


def model_dir(name: str) -> str:
  """The folder of shipped model ``name``.

  Raises:
    ValueError: no such model (with the names there are).
  """
  if name not in available():
    raise ValueError(f"no shipped model named {name!r}; available: "
                     f"{', '.join(available()) or 'none'}.")
  return os.path.join(MODELS_DIR, name)


def flatten_variables(variables: dict[str, Any]) -> dict[str, np.ndarray]:
  """``{"params": {"h1": {"kernel": a}}}`` -> ``{"params/h1/kernel": a}``."""
  flat = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(variables):
    keys = [getattr(p, "key", getattr(p, "name", None)) for p in path]
    flat["/".join(str(k) for k in keys)] = np.asarray(leaf)
  return flat


def unflatten_variables(flat: dict[str, np.ndarray]) -> dict[str, Any]:
  """Inverse of ``flatten_variables``."""
  return config_utils.unflatten(flat, sep="/")


def load(name: str) -> tuple[Any, dict[str, Any], np.ndarray]:
  """``(config, variables, candidates [N, 17, 3] mm)`` of shipped ``name``."""
  directory = model_dir(name)
  config = config_utils.config_from_json(
      os.path.join(directory, "config.json"), default_config.get_config())
  with np.load(os.path.join(directory, "variables.npz")) as z:
    variables = unflatten_variables({k: z[k] for k in z.files})
  candidates = np.load(os.path.join(directory, "candidates.npy"))
  return config, variables, candidates


def card(name: str) -> dict[str, Any]:
  """The shipped model's ``card.json``."""
  with open(os.path.join(model_dir(name), "card.json")) as f:
    return json.load(f)


def examples(name: str) -> tuple[list[str], np.ndarray]:
  """``(paths, poses [E, 17, 3] mm)``: the example crops shipped with the
  model and their true poses."""
  directory = model_dir(name)
  recorded = card(name)["examples"]
  paths = [os.path.join(directory, EXAMPLES, e["image"]) for e in recorded]
  return paths, np.asarray([e["pose_mm"] for e in recorded], np.float32)


def _git_commit(path: str) -> str:
  try:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, check=True,
                          capture_output=True, text=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def _test_examples(config, count: int) -> tuple[np.ndarray, np.ndarray,
                                                 list[str]]:
  """``count`` stored-size test crops ``[E, S, S, 3]`` uint8, their poses
  ``[E, 17, 3]`` mm and actions, from the run's own TFDS dataset: the first
  crop of each action in dataset order, then the next crops in order while
  more are asked for than there are actions."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from data_pipelines.sources import core as sources  # pylint: disable=g-import-not-at-top
  if config.data.source != "tfds":
    raise ValueError("export needs a run trained on the TFDS data "
                     f"(config.data.source='tfds'), not {config.data.source!r}.")
  builder = sources.from_config(config).builder
  firsts, rest = [], []
  seen = set()
  test = builder.as_dataset(split="test", shuffle_files=False)
  for ex in tfds.as_numpy(test):
    action = ex["action"].decode() if isinstance(ex["action"], bytes) else str(
        ex["action"])
    item = (ex["image"], np.asarray(ex["pose"], np.float32), action)
    if action in seen:
      if len(rest) < count:
        rest.append(item)
    else:
      seen.add(action)
      firsts.append(item)
      if len(firsts) == count:
        break
  chosen = (firsts + rest)[:count]
  if len(chosen) < count:
    raise ValueError(f"the test split has only {len(chosen)} crops; "
                     f"asked for {count}.")
  images, poses, actions = zip(*chosen)
  return np.stack(images), np.stack(poses), list(actions)


def export(workdir: str, name: str, command: str, num_examples: int = 8
           ) -> str:
  """Writes shipped model ``name`` from trained ``workdir``; returns its folder.

  Raises:
    FileNotFoundError: the workdir has no finished run (config, candidates,
      final checkpoint, results.json).
  """
  workdir = files.absolute(workdir)
  results_path = os.path.join(workdir, "results.json")
  if not os.path.exists(results_path):
    raise FileNotFoundError(f"no results.json in {workdir}; train and "
                            "evaluate the run first (experiments.main).")
  predictor = predictor_lib.Predictor.load(workdir, top_k=1)
  config = predictor.config
  images, poses, actions = _test_examples(config, num_examples)
  prepared = predictor_lib.prepare_images(
      list(images), int(config.data.image_size), int(config.model.image_size))
  result = predictor(prepared)
  out = os.path.join(MODELS_DIR, name)
  os.makedirs(os.path.join(out, EXAMPLES), exist_ok=True)
  files.write_atomic(os.path.join(out, "config.json"),
                     files.read_bytes(os.path.join(workdir, "config.json")))
  flat = flatten_variables(jax.device_get(predictor.variables))
  files.write_atomic(os.path.join(out, "variables.npz"),
                     lambda f: np.savez_compressed(f, **flat))
  files.write_atomic(os.path.join(out, "candidates.npy"),
                     lambda f: np.save(f, predictor.candidates))
  from PIL import Image  # pylint: disable=g-import-not-at-top
  recorded = []
  errors = {m: np.asarray(metrics.mpjpe(result[m], poses)) for m in result
            if m.startswith("StructNet")}
  for i, (image, pose, action) in enumerate(zip(images, poses, actions)):
    fname = f"test_{i}_{action}.png"
    files.write_atomic(os.path.join(out, EXAMPLES, fname),
                       lambda f, im=image: Image.fromarray(im).save(
                           f, format="PNG"))
    recorded.append({
        "image": fname, "action": action,
        "pose_mm": np.round(pose, 3).tolist(),
        "mpjpe_mm": {m: float(e[i]) for m, e in errors.items()}})
  with open(results_path) as f:
    results = json.load(f)
  model_card = {
      "name": name, "command": command,
      "commit": _git_commit(os.path.dirname(MODELS_DIR)),
      "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"),
      "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                 f"{platform.system()} {platform.release()}",
      "data": f"{config.data.source}:{config.data.tfds_config}",
      "test_results": results.get("table", results),
      "examples": recorded}
  files.write_atomic(os.path.join(out, "card.json"),
                     json.dumps(model_card, indent=1))
  return out
