"""A trained StructNet as a function from person crops to 3D poses.

``Predictor.load(workdir)`` (a trained run) or ``Predictor.from_pretrained(
name)`` (a model shipped in the package, ``experiments/pretrained.py``), then
``predictor(prepare_images(images, stored, crop))``. The command line is
``experiments/predict.py``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import jax
import numpy as np

from data_pipelines.sources import core as sources
from experiments.configs import default as default_config
from structnet_jax import config_utils
from structnet_jax import files
from structnet_jax import metrics
from structnet_jax import models
from structnet_jax import poses as poses_lib
from structnet_jax import progress
from structnet_jax import scoring
from structnet_jax import trainer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def list_images(spec: str) -> tuple[list[str], np.ndarray | None]:
  """``(names, array)``: image paths to read (array None), or for an ``.npy``
  the names ``image_00000...`` and the ``[N, H, W, 3]`` array."""
  if spec.endswith(".npy") and os.path.isfile(spec):
    arr = np.load(spec)
    if arr.ndim != 4 or arr.shape[-1] != 3 or len(arr) == 0:
      raise ValueError(f"--images={spec}: an .npy must hold [N, H, W, 3] "
                       f"images with N >= 1, got shape {arr.shape}.")
    return [f"image_{i:05d}" for i in range(len(arr))], arr
  if os.path.isdir(spec):
    paths = sorted(os.path.join(spec, f) for f in os.listdir(spec)
                   if f.lower().endswith(IMAGE_SUFFIXES))
    if not paths:
      raise ValueError(f"--images={spec}: the folder has no "
                       f"{'/'.join(IMAGE_SUFFIXES)} files.")
    return paths, None
  paths = [p.strip() for p in spec.split(",") if p.strip()]
  missing = [p for p in paths if not os.path.isfile(p)]
  if not paths or missing:
    raise ValueError(f"--images={spec}: no such file(s) {missing or [spec]}; "
                     "give a folder, image files separated by commas, or an "
                     ".npy of [N, H, W, 3] images.")
  return paths, None


def prepare_images(images: Sequence[np.ndarray], stored: int,
                   crop: int) -> np.ndarray:
  """``[N, crop, crop, 3]`` float32 in [0, 1]: each image resized to
  ``stored x stored`` (bilinear) and centre-cropped, as the eval pipeline."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  out = np.empty((len(images), crop, crop, 3), np.float32)
  start = (stored - crop) // 2
  for i, img in enumerate(images):
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[-1] != 3:
      raise ValueError(f"image {i} must be [H, W, 3] RGB, got {arr.shape}.")
    if arr.dtype != np.uint8:
      if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"image {i}: float images must be finite in [0, 1].")
      arr = np.round(arr * 255).astype(np.uint8)
    pil = Image.fromarray(arr).resize((stored, stored), Image.BILINEAR)
    out[i] = np.asarray(pil, np.float32)[start:start + crop,
                                         start:start + crop] / 255.0
  return out


def read_images(paths: Sequence[str]) -> list[np.ndarray]:
  """The RGB ``[H, W, 3]`` uint8 arrays of image files ``paths``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  images = []
  for p in paths:
    try:
      with Image.open(p) as im:
        images.append(np.asarray(im.convert("RGB")))
    except OSError as e:
      raise ValueError(f"cannot read image {p}: {e}") from e
  return images


class Predictor:
  """A trained run, ready to predict: ``Predictor.load(workdir)(images)``."""

  def __init__(self, config, model, variables, candidates, top_k: int):
    self.config, self.model, self.variables = config, model, variables
    self.candidates = np.asarray(candidates, np.float32)
    self.avg_sizes = tuple(int(a) for a in config.eval.avg_sizes
                           if a <= len(self.candidates))
    self.top_k = min(int(top_k), len(self.candidates))
    self.table = scoring.embed_candidate_poses(model, variables,
                                               self.candidates)
    self._predict = scoring.make_predictor(model, self.avg_sizes or (1,),
                                           self.top_k)

  @classmethod
  def load(cls, workdir: str, top_k: int = 5) -> "Predictor":
    config = config_utils.config_from_json(
        os.path.join(workdir, "config.json"), default_config.get_config())
    model = models.StructNet.from_config(config.model)
    path = os.path.join(workdir, sources.POSE_SPACE_FILENAME)
    if not os.path.exists(path):
      raise FileNotFoundError(
          f"no candidate poses at {path}; experiments.main saves them when "
          "it trains or evaluates. Re-run it with --mode=evaluate on this "
          "workdir.")
    candidates = np.load(path)
    variables = trainer.load_final_variables(model, config, workdir,
                                             candidates)
    return cls(config, model, variables, candidates, top_k)

  @classmethod
  def from_pretrained(cls, name: str = "default", top_k: int = 5
                      ) -> "Predictor":
    """The model shipped in the package as ``name`` (no workdir, no TF)."""
    from experiments import pretrained  # pylint: disable=g-import-not-at-top
    config, variables, candidates = pretrained.load(name)
    model = models.StructNet.from_config(config.model)
    return cls(config, model, variables, candidates, top_k)

  def __call__(self, images: np.ndarray, apf: bool = False,
               batch_size: int = 64) -> dict[str, Any]:
    """Poses for ``[N, S, S, 3]`` prepared images (``prepare_images``)."""
    outs = []
    counter = progress.Progress("predict", total=len(images))
    for start in range(0, len(images), batch_size):
      outs.append(jax.device_get(self._predict(
          self.variables, images[start:start + batch_size], self.table,
          self.candidates)))
      counter.update(len(outs[-1]["max"]))
    counter.done()
    cat = lambda f: np.concatenate([f(o) for o in outs])
    result = {"StructNet-Max": cat(lambda o: o["max"]),
              "StructNet-Pred": cat(lambda o: o["pred"]),
              **{f"StructNet-Avg({a})": cat(lambda o, a=a: o["avg"][a])
                 for a in self.avg_sizes},
              "top_indices": cat(lambda o: o["top_indices"]),
              "top_scores": cat(lambda o: o["top_scores"])}
    if apf:
      from structnet_jax import apf as apf_lib  # pylint: disable=g-import-not-at-top
      cfg = self.config.eval
      lengths = apf_lib.subject_bone_lengths(self.candidates)
      for a in cfg.apf_sizes:
        if a in self.avg_sizes:
          result[f"StructNet-Avg({a})-APF"] = np.asarray(apf_lib.fit(
              result[f"StructNet-Avg({a})"], result["StructNet-Max"], lengths,
              jax.random.PRNGKey(int(self.config.seed) + a),
              num_particles=cfg.apf_particles, num_layers=cfg.apf_layers,
              refine_steps=cfg.apf_refine_steps))
    return result


def draw(image: np.ndarray, pose: np.ndarray, title: str, path: str) -> None:
  """The crop (left) and the pose in 3D (right, camera frame, y down) as PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from experiments import figures  # pylint: disable=g-import-not-at-top
  fig = plt.figure(figsize=(8, 4))
  ax = fig.add_subplot(1, 2, 1)
  ax.imshow(np.clip(image, 0, 1))
  ax.set_axis_off()
  ax.set_title("input crop")
  ax3 = fig.add_subplot(1, 2, 2, projection="3d")
  # Camera x right, y down, z forward -> plot (x, z, -y) so up is up.
  p = np.stack([pose[:, 0], pose[:, 2], -pose[:, 1]], axis=-1)
  for a, b in poses_lib.BONES:
    ax3.plot(*p[[a, b]].T, color=figures.bone_colour(a, b), linewidth=2.5)
  ax3.scatter(*p.T, s=6, color="k")
  half = max(np.abs(p).max(), 1.0)
  for setter in (ax3.set_xlim, ax3.set_ylim, ax3.set_zlim):
    setter(-half, half)
  ax3.set_xlabel("x (mm)")
  ax3.set_ylabel("z (mm)")
  ax3.set_zlabel("-y (mm)")
  ax3.locator_params(nbins=4)
  ax3.view_init(elev=10, azim=-80)
  ax3.set_title(title)
  fig.tight_layout()
  files.write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=80))
  plt.close(fig)


def write_predictions(names: Sequence[str], images: np.ndarray,
                      result: dict[str, Any], candidates: np.ndarray,
                      out_dir: str, draw_method: str) -> str:
  """``predictions.json`` and one PNG per image in ``out_dir``; returns the
  JSON path."""
  os.makedirs(out_dir, exist_ok=True)
  methods = [k for k in result if k.startswith("StructNet")]
  records = []
  used = set()
  for i, name in enumerate(names):
    stem = os.path.splitext(os.path.basename(name))[0]
    while stem in used:
      stem += "_"
    used.add(stem)
    png = os.path.join(out_dir, stem + ".png")
    draw(images[i], result[draw_method][i], draw_method, png)
    records.append({
        "image": name, "figure": os.path.basename(png),
        "poses_mm": {m: np.round(result[m][i], 2).tolist() for m in methods},
        "top_k": [{"candidate": int(c), "score": float(s),
                   "pose_mm": np.round(candidates[c], 2).tolist()}
                  for c, s in zip(result["top_indices"][i],
                                  result["top_scores"][i])]})
  path = os.path.join(out_dir, "predictions.json")
  files.write_atomic(path, json.dumps(
      {"joints": list(poses_lib.JOINT_NAMES), "units": "mm",
       "frame": "camera (x right, y down, z forward), root-relative",
       "predictions": records}, indent=1))
  return path


def mpjpe_lines(names: Sequence[str], truth: np.ndarray,
                 result: dict[str, Any]) -> list[str]:
  """A small table: MPJPE (mm) of each method on each image, and the mean."""
  methods = [m for m in result if m.startswith("StructNet")]
  errors = {m: np.asarray(metrics.mpjpe(result[m], truth)) for m in methods}
  lines = ["MPJPE (mm) | " + " | ".join(methods)]
  for i, name in enumerate(names):
    lines.append(os.path.basename(name) + " | " + " | ".join(
        f"{errors[m][i]:.1f}" for m in methods))
  lines.append("mean | " + " | ".join(f"{errors[m].mean():.1f}"
                                      for m in methods))
  return lines
