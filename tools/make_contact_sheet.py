"""A contact sheet of synthetic examples: subjects x actions x the 4 cameras.

Renders procedural motion through the Human3.6M rig exactly as the
``structnet_h36m`` dataset does (``synthesize.render_sequence_examples``), one
frame per (subject, action) (the frame farthest from the clip's neutral
start), and tiles the crops with ``render.contact_sheet``: one row per
subject, one column per (action, camera), with labels.

  python -m tools.make_contact_sheet --out docs/contact_sheet.jpg
"""

from __future__ import annotations

import argparse
import os
from typing import Sequence

import numpy as np

from data_pipelines.motion import procedural as procedural_motion
from data_pipelines.render import core as render
from data_pipelines.render import synthesize
from structnet_jax import files
from structnet_jax import poses as poses_lib

DEFAULT_SUBJECTS = ("S1", "S5", "S9", "S11")
DEFAULT_ACTIONS = ("walking", "sitting", "waving")


def _busiest_frame(world_joints: np.ndarray) -> int:
  """The frame whose root-relative pose is farthest from the first one."""
  rel = poses_lib.root_relative(np.asarray(world_joints))
  return int(np.argmax(np.linalg.norm(rel - rel[:1], axis=-1).mean(-1)))


def make_contact_sheet(subjects: Sequence[str] = DEFAULT_SUBJECTS,
                       actions: Sequence[str] = DEFAULT_ACTIONS, *,
                       cameras: Sequence[int] = synthesize.CAMERAS,
                       crop_size: int = 128, seed: int = 0,
                       appearance_seed: int = 0,
                       frames_per_sequence: int = 250,
                       pixel_noise: bool = True) -> np.ndarray:
  """Renders the sheet: uint8 ``[rows, cols, 3]``, without labels.

  Row ``i`` is ``subjects[i]``; columns go through the actions, and for each
  action through ``cameras``.
  """
  cameras = synthesize.check_cameras(cameras)
  seqs = procedural_motion.generate_motion(
      list(subjects), list(actions), sequences_per_action=1,
      frames_per_sequence=frames_per_sequence, seed=seed)
  images = []
  for seq in seqs:  # ordered by subject, then action
    frame = _busiest_frame(seq.world_joints)
    by_camera = {ex["camera"]: ex["image"] for ex in
                 synthesize.render_sequence_examples(
                     seq, cameras=cameras, frames=[frame], batch_size=1,
                     crop_size=crop_size, appearance_seed=appearance_seed,
                     pixel_noise=pixel_noise)}
    images.extend(by_camera[c] for c in cameras)
  return render.contact_sheet(np.stack(images),
                              ncols=len(actions) * len(cameras))


def labelled_sheet(sheet: np.ndarray, subjects: Sequence[str],
                   actions: Sequence[str], cameras: Sequence[int],
                   crop_size: int, pad: int = 2):
  """A PIL image of ``sheet`` with subject labels left and a column header."""
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  left, top = 44, 30
  h, w, _ = sheet.shape
  canvas = Image.new("RGB", (w + left, h + top), "white")
  canvas.paste(Image.fromarray(sheet), (left, top))
  draw = ImageDraw.Draw(canvas)
  cell = crop_size + pad
  for i, subject in enumerate(subjects):
    draw.text((6, top + pad + i * cell + crop_size // 2 - 6), subject,
              fill="black")
  for a, action in enumerate(actions):
    x0 = left + pad + a * len(cameras) * cell
    draw.text((x0 + 2, 2), action, fill="black")
    for c, camera in enumerate(cameras):
      draw.text((x0 + c * cell + crop_size // 2 - 12, 16), f"cam {camera}",
                fill="dimgray")
  return canvas


def main(argv: Sequence[str] | None = None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="docs/contact_sheet.jpg",
                      help="PNG file to write (folders are created).")
  parser.add_argument("--subjects", nargs="+", default=list(DEFAULT_SUBJECTS))
  parser.add_argument("--actions", nargs="+", default=list(DEFAULT_ACTIONS),
                      help=f"from {procedural_motion.ACTION_NAMES}")
  parser.add_argument("--cameras", nargs="+", type=int,
                      default=list(synthesize.CAMERAS))
  parser.add_argument("--crop-size", type=int, default=128)
  parser.add_argument("--seed", type=int, default=0, help="motion seed")
  parser.add_argument("--appearance-seed", type=int, default=0)
  parser.add_argument("--no-pixel-noise", dest="pixel_noise",
                      action="store_false",
                      help="leave out the sensor noise (a much smaller PNG).")
  args = parser.parse_args(argv)
  sheet = make_contact_sheet(args.subjects, args.actions,
                             cameras=args.cameras, crop_size=args.crop_size,
                             seed=args.seed,
                             appearance_seed=args.appearance_seed,
                             pixel_noise=args.pixel_noise)
  image = labelled_sheet(sheet, args.subjects, args.actions, args.cameras,
                         args.crop_size)
  folder = os.path.dirname(os.path.abspath(args.out))
  os.makedirs(folder, exist_ok=True)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  fmt = Image.registered_extensions().get(
      os.path.splitext(args.out)[1].lower(), "PNG")
  if fmt == "JPEG":
    write = lambda f: image.convert("RGB").save(f, format=fmt, quality=88,
                                                optimize=True)
  else:
    write = lambda f: image.save(f, format=fmt, optimize=True)
  files.write_atomic(args.out, write)
  print(f"wrote {args.out} ({image.size[0]} x {image.size[1]} pixels)")
  return args.out


if __name__ == "__main__":
  main()
