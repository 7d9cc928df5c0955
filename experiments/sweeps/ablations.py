"""Table 1's StructNet*-Max (lambda = 0) and Table 3's pose embeddings.

One full run, then four that change only stage-2 settings and so share its
stage 1 (``stage1.init_from``): lambda = 0 (no auxiliary pose cost), and the
raw-pose, 1-layer fixed-random, and 1-layer pose embeddings (the full run is
the 2-layer one). Any base config:

  python -m experiments.sweep --sweep=experiments/sweeps/ablations.py \
      --config=experiments/configs/h36m_motion.py:cpu --root=DIR \
      --set=data.motion_path=/path/to/h36m_expmap_25fps.npz
"""

from __future__ import annotations

MAIN = "structnet"


def get_sweep():
  shared = {"stage1.init_from": "{root}/" + MAIN}
  small_eval = {"eval.apf_sizes": (), "eval.linkde": False,
                "eval.regression_row": False, "eval.figures": False}
  return [
      {"name": MAIN, "label": "StructNet (lambda = 1, 2-layer)"},
      {"name": "lambda0", "label": "StructNet* (lambda = 0)",
       "loss.pose_weight": 0.0, **shared, **small_eval},
      {"name": "embed_raw", "label": "raw pose (51)",
       "model.pose_embedding": "raw", **shared, **small_eval},
      {"name": "embed_1layer_random", "label": "1-layer, random weights",
       "model.pose_embedding": "one_layer_random", **shared, **small_eval},
      {"name": "embed_1layer", "label": "1-layer",
       "model.pose_embedding": "one_layer", **shared, **small_eval},
  ]


def tables():
  """The paper's tables this sweep fills: ``(title, method, [(run, label)][,
  kind])``, kind ``"rows"`` (the default) or ``"merge"`` (experiments/sweep.py)."""
  return [
      ("Table 1 (with StructNet*-Max, lambda = 0)", "StructNet-Max",
       [(MAIN, None), ("lambda0", "StructNet*-Max (lambda = 0)")], "merge"),
      ("The auxiliary pose task", "StructNet-Max",
       [(MAIN, "StructNet-Max (lambda = 1)"),
        ("lambda0", "StructNet*-Max (lambda = 0)")]),
      ("Table 3: pose embeddings (StructNet-Max)", "StructNet-Max",
       [("embed_raw", "raw pose (51)"),
        ("embed_1layer_random", "1-layer, random weights"),
        ("embed_1layer", "1-layer"), (MAIN, "2-layer")]),
      ("Table 3: pose embeddings (StructNet-Avg(500))", "StructNet-Avg(500)",
       [("embed_raw", "raw pose (51)"),
        ("embed_1layer_random", "1-layer, random weights"),
        ("embed_1layer", "1-layer"), (MAIN, "2-layer")]),
  ]
