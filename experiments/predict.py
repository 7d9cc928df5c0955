r"""3D poses for person crops with a trained StructNet.

  python -m experiments.predict --workdir=DIR --images=PATH[,PATH...] \
      [--out=DIR/predictions] [--top_k=5] [--apf]

``--images``: a folder of crops (``.png``/``.jpg``/``.jpeg``/``.bmp``), a
comma-separated list of image files, or a ``.npy`` of ``[N, H, W, 3]`` images
(uint8, or float in [0, 1]). Each crop should frame one person the way the
training crops did (the person's box plus a margin, square); it is resized
to the stored crop side (``config.data.image_size``) and centre-cropped to
the network input (``config.model.image_size``), as in evaluation.

Writes to ``--out`` (default ``<workdir>/predictions``):
  predictions.json  per image: StructNet-Max and every StructNet-Avg(A) pose
                    (``[17, 3]`` mm, root-relative, camera frame, the joint
                    order of ``structnet_jax/poses.py``), StructNet-Pred, the
                    top-k hypotheses (candidate index, score, pose) and, with
                    ``--apf``, StructNet-Avg(A)-APF for every A of
                    ``config.eval.apf_sizes`` (a kinematically valid pose
                    with the training poses' median bone lengths);
  <name>.png        the crop beside the StructNet-Avg(A) pose in 3D.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from experiments import cli
from experiments import pipeline
from experiments.configs import default as default_config
from structnet_jax import config_utils
from structnet_jax import files
from structnet_jax import models
from structnet_jax import poses as poses_lib
from structnet_jax import scoring
from structnet_jax import trainer

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained run's workdir.")
_IMAGES = flags.DEFINE_string(
    "images", None, "Folder, comma-separated image files, or an .npy array.")
_OUT = flags.DEFINE_string("out", None, "Output folder (default "
                           "<workdir>/predictions).")
_TOP_K = flags.DEFINE_integer("top_k", 5, "Hypotheses kept per image.")
_APF = flags.DEFINE_bool("apf", False, "Add StructNet-Avg(A)-APF poses.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Images per step.")


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


def _read(paths: Sequence[str]) -> list[np.ndarray]:
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
    path = os.path.join(workdir, pipeline.POSE_SPACE_FILE)
    if not os.path.exists(path):
      raise FileNotFoundError(
          f"no candidate poses at {path}; experiments.main saves them when "
          "it trains or evaluates. Re-run it with --mode=evaluate on this "
          "workdir.")
    candidates = np.load(path)
    variables = trainer.load_final_variables(model, config, workdir,
                                             candidates)
    return cls(config, model, variables, candidates, top_k)

  def __call__(self, images: np.ndarray, apf: bool = False,
               batch_size: int = 64) -> dict[str, Any]:
    """Poses for ``[N, S, S, 3]`` prepared images (``prepare_images``)."""
    outs = []
    for start in range(0, len(images), batch_size):
      outs.append(jax.device_get(self._predict(
          self.variables, images[start:start + batch_size], self.table,
          self.candidates)))
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _WORKDIR.value or not _IMAGES.value:
    raise app.UsageError("--workdir (a trained run) and --images are required.")
  workdir = os.path.abspath(os.path.expanduser(_WORKDIR.value))
  names, array = list_images(_IMAGES.value)
  predictor = Predictor.load(workdir, _TOP_K.value)
  cfg = predictor.config
  raw = list(array) if array is not None else _read(names)
  images = prepare_images(raw, int(cfg.data.image_size),
                          int(cfg.model.image_size))
  result = predictor(images, apf=_APF.value, batch_size=_BATCH.value)
  avg = [k for k in result if k.startswith("StructNet-Avg(") and
         not k.endswith("APF")]
  draw_method = max(avg, key=lambda k: int(k[14:-1])) if avg else "StructNet-Max"
  out = _OUT.value or os.path.join(workdir, "predictions")
  path = write_predictions(names, images, result, predictor.candidates, out,
                           draw_method)
  logging.info("wrote %s and %d figures", path, len(names))
  print(path)


if __name__ == "__main__":
  app.run(cli.one_line_errors(main), flags_parser=cli.parse_flags)
