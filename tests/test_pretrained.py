"""The model shipped in the package (experiments/pretrained.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import pretrained
from experiments.configs import default as default_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REEXPORT = ("re-train the README's main job and re-export it: python -m "
            "experiments.export_pretrained --workdir=... --name=default "
            "--command=...")


def test_shipped_default_is_trained_with_the_current_default_config():
  config, _, _ = pretrained.load("default")
  shipped = json.loads(config.to_json())
  current = json.loads(default_config.get_config().to_json())
  # Where the training data lived on the exporting machine is not a setting.
  shipped["data"].pop("data_dir")
  current["data"].pop("data_dir")
  assert shipped == current, (
      "experiments/configs/default.py changed since the shipped model was "
      "exported; " + REEXPORT)


def test_shipped_default_has_the_variables_the_network_needs():
  import jax  # pylint: disable=g-import-not-at-top
  from structnet_jax import models  # pylint: disable=g-import-not-at-top
  config, variables, candidates = pretrained.load("default")
  assert candidates.ndim == 3 and candidates.shape[1:] == (17, 3)
  assert candidates.dtype == np.float32 and np.all(np.isfinite(candidates))
  model = models.StructNet.from_config(config.model)
  size = int(config.model.image_size)
  expected = jax.eval_shape(
      model.init, jax.random.PRNGKey(0),
      np.zeros((1, size, size, 3), np.float32),
      np.zeros((1, 17, 3), np.float32))
  shapes = lambda tree: jax.tree.map(lambda leaf: tuple(np.shape(leaf)),
                                     dict(tree))
  assert shapes(variables) == shapes(expected), REEXPORT


def test_unknown_name_names_the_shipped_models():
  with pytest.raises(ValueError, match=r"no shipped model named 'nope'; "
                     r"available: .*default"):
    pretrained.model_dir("nope")


def test_variables_flatten_and_unflatten_round_trip():
  tree = {"params": {"a": {"kernel": np.ones((2, 3))},
                     "b": {"c": {"bias": np.zeros(4)}}},
          "pose_stats": {"scale": np.float32(2.0)}}
  flat = pretrained.flatten_variables(tree)
  assert sorted(flat) == ["params/a/kernel", "params/b/c/bias",
                          "pose_stats/scale"]
  back = pretrained.unflatten_variables(flat)
  assert back["params"]["b"]["c"]["bias"].shape == (4,)
  assert float(back["pose_stats"]["scale"]) == 2.0


@pytest.mark.end_to_end
def test_predict_cli_with_the_shipped_model_reproduces_its_recorded_mpjpe(
    tmp_path):
  """What a user runs right after pip install: no workdir, no --images."""
  out = tmp_path / "predictions"
  env = dict(os.environ, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.predict", "--pretrained=default",
       f"--out={out}", "--top_k=3"], cwd=tmp_path, env=env,
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "MPJPE (mm) | StructNet-Max" in proc.stdout
  assert "[predict] 8/8 images" in proc.stderr
  with open(out / "predictions.json") as f:
    records = json.load(f)["predictions"]
  card = pretrained.card("default")
  assert len(records) == len(card["examples"]) >= 4
  for record, example in zip(records, card["examples"]):
    assert os.path.basename(record["image"]) == example["image"]
    assert (out / record["figure"]).is_file()
    truth = np.asarray(example["pose_mm"])
    for method, recorded in example["mpjpe_mm"].items():
      pose = np.asarray(record["poses_mm"][method])
      # An independent MPJPE: the mean over joints of a numpy loop's norms.
      mpjpe = np.mean([np.sqrt(((pose[j] - truth[j]) ** 2).sum())
                       for j in range(17)])
      assert mpjpe == pytest.approx(recorded, abs=0.5), (record["image"],
                                                          method)
    assert len(record["top_k"]) == 3
