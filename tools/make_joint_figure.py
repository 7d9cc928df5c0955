r"""Draws the 17 Human3.6M joints with their indices (README's joint picture).

  python -m tools.make_joint_figure --out docs/joints17.png

A standing person of the procedural body model (arms lifted sideways so that
every joint shows), in the world frame of a positions file: millimetres, z up,
the floor under the soles at z = 0, facing +x. Left: seen from the front
(from +x); right: from the person's right side (from -y).
"""

from __future__ import annotations

from absl import app
from absl import flags
import numpy as np

from data_pipelines.render import synthesize
from data_pipelines.rig import body_model
from structnet_jax import poses as poses_lib

_OUT = flags.DEFINE_string("out", "docs/joints17.png", "PNG to write.")


# Label offsets (points) in the front view where the default would overlap.
_FRONT_OFFSETS = {0: (0, -16), 1: (-10, -14), 4: (10, -14), 8: (12, -14),
                  11: (10, 10), 14: (-10, 10)}


def standing_pose() -> np.ndarray:
  """``[17, 3]`` mm: S1's procedural body at rest, arms out, soles on z = 0."""
  body = body_model.subject_body("S1")
  angles = np.zeros((17, 3), np.float32)
  joints = body_model.forward_kinematics(
      angles, body_model.rest_offsets(body)).astype(np.float64)
  for shoulder, elbow, wrist, side in ((11, 12, 13, 1.0), (14, 15, 16, -1.0)):
    upper = np.linalg.norm(joints[elbow] - joints[shoulder])
    lower = np.linalg.norm(joints[wrist] - joints[elbow])
    out = np.array([0.0, side * np.cos(0.6), -np.sin(0.6)])
    joints[elbow] = joints[shoulder] + upper * out
    joints[wrist] = joints[elbow] + lower * np.array(
        [0.0, side * np.cos(1.1), -np.sin(1.1)])
  joints[:, 2] += synthesize.ANKLE_HEIGHT_MM - joints[:, 2].min()
  return joints


def draw(path: str) -> str:
  """Writes the two-view picture of ``standing_pose`` to ``path``."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  joints = standing_pose()
  fig, axes = plt.subplots(1, 2, figsize=(11, 6.4),
                           gridspec_kw={"width_ratios": [1.5, 1]})
  views = (("front (from +x)", 1, 1.0, "y (mm): the person's left"),
           ("right side (from -y)", 0, 1.0, "x (mm): forward"))
  for ax, (title, axis, sign, xlabel) in zip(axes, views):
    h, v = sign * joints[:, axis], joints[:, 2]
    for p, c in poses_lib.BONES:
      name = poses_lib.JOINT_NAMES[c]
      colour = ("tab:blue" if name.startswith("left") or c in (4, 5, 6) else
                "tab:red" if name.startswith("right") or c in (1, 2, 3) else
                "0.3")
      ax.plot([h[p], h[c]], [v[p], v[c]], "-", color=colour, lw=3)
    ax.scatter(h, v, s=30, c="k", zorder=3)
    for j, name in enumerate(poses_lib.JOINT_NAMES):
      if axis == 0 and (name.startswith("left") or name.startswith("right")):
        continue  # side view: label the midline only
      dx, dy = (14, 0) if axis == 0 else _FRONT_OFFSETS.get(
          j, (14 if h[j] >= 0 else -14, 0))
      ax.annotate(f"{j} {name}", (h[j], v[j]), xytext=(dx, dy),
                  textcoords="offset points", fontsize=8,
                  ha="left" if dx > 0 else "right" if dx < 0 else "center",
                  va="center")
    ax.axhline(0.0, color="0.6", lw=1)
    ax.text(h.max() + 60, 15, "floor z = 0", fontsize=8, color="0.4",
            va="bottom")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("z (mm): up")
    ax.set_aspect("equal")
    if axis == 0:
      ax.set_xlim(-450, 650)
    else:
      ax.margins(x=0.45, y=0.05)
  fig.suptitle("The 17 joints of a positions file: Human3.6M order, mm, "
               "world frame with z up (blue left, red right)")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def main(argv):
  del argv
  print(draw(_OUT.value))


if __name__ == "__main__":
  app.run(main)
