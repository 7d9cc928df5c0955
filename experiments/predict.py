r"""3D poses for person crops with a trained StructNet.

  python -m experiments.predict --workdir=DIR --images=PATH[,PATH...] \
      [--out=DIR/predictions] [--top_k=5] [--apf]
  python -m experiments.predict --pretrained=default [--images=...]

``--pretrained=NAME`` uses a model shipped in the package
(``experiments/pretrained.py``) instead of a workdir; without ``--images`` it
predicts the test crops shipped with that model and prints each one's MPJPE
against its true pose.

``--images``: a folder of crops (``.png``/``.jpg``/``.jpeg``/``.bmp``), a
comma-separated list of image files, or a ``.npy`` of ``[N, H, W, 3]`` images
(uint8, or float in [0, 1]). Each crop should frame one person the way the
training crops did (the person's box plus a margin, square); it is resized
to the stored crop side (``config.data.image_size``) and centre-cropped to
the network input (``config.model.image_size``), as in evaluation.

Writes to ``--out`` (default ``<workdir>/predictions``, or ``./predictions``
with ``--pretrained``):
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

import os

from absl import app
from absl import flags
from absl import logging

from experiments import cli
from experiments import predictor as predictor_lib
from structnet_jax import files

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained run's workdir.")
_PRETRAINED = flags.DEFINE_string(
    "pretrained", None, "A model shipped in the package (e.g. 'default') "
    "instead of --workdir.")
_IMAGES = flags.DEFINE_string(
    "images", None, "Folder, comma-separated image files, or an .npy array "
    "(with --pretrained: default, the model's shipped test crops).")
_OUT = flags.DEFINE_string("out", None, "Output folder (default "
                           "<workdir>/predictions, or ./predictions with "
                           "--pretrained).")
_TOP_K = flags.DEFINE_integer("top_k", 5, "Hypotheses kept per image.")
_APF = flags.DEFINE_bool("apf", False, "Add StructNet-Avg(A)-APF poses.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Images per step.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if bool(_WORKDIR.value) == bool(_PRETRAINED.value):
    raise app.UsageError("give one of --workdir (a trained run) or "
                         "--pretrained (a shipped model, e.g. 'default').")
  truth = None
  if _PRETRAINED.value:
    predictor = predictor_lib.Predictor.from_pretrained(_PRETRAINED.value,
                                                        _TOP_K.value)
    out = _OUT.value or os.path.abspath("predictions")
    if _IMAGES.value:
      names, array = predictor_lib.list_images(_IMAGES.value)
    else:
      from experiments import pretrained  # pylint: disable=g-import-not-at-top
      names, truth = pretrained.examples(_PRETRAINED.value)
      array = None
  else:
    if not _IMAGES.value:
      raise app.UsageError("--images is required with --workdir.")
    workdir = files.absolute(_WORKDIR.value)
    names, array = predictor_lib.list_images(_IMAGES.value)
    predictor = predictor_lib.Predictor.load(workdir, _TOP_K.value)
    out = _OUT.value or os.path.join(workdir, "predictions")
  cfg = predictor.config
  raw = list(array) if array is not None else predictor_lib.read_images(names)
  images = predictor_lib.prepare_images(raw, int(cfg.data.image_size),
                                        int(cfg.model.image_size))
  result = predictor(images, apf=_APF.value, batch_size=_BATCH.value)
  avg = [k for k in result if k.startswith("StructNet-Avg(") and
         not k.endswith("APF")]
  draw_method = max(avg, key=lambda k: int(k[14:-1])) if avg else "StructNet-Max"
  path = predictor_lib.write_predictions(names, images, result,
                                         predictor.candidates, out, draw_method)
  logging.info("wrote %s and %d figures", path, len(names))
  if truth is not None:
    print("\n".join(predictor_lib.mpjpe_lines(names, truth, result)))
  print(path)


if __name__ == "__main__":
  app.run(cli.one_line_errors(main), flags_parser=cli.parse_flags)
