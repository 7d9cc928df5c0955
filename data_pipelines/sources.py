"""What every training/evaluation source provides (the source contract).

``POSE_SPACE_FILENAME``: the file of the candidate pose space Y, ``float32
[N, 17, 3]`` mm (``np.save``), in a built TFDS dataset's version directory
(``tfds_builder``) and in a run's workdir (``experiments/pipeline.py``).
"""

from __future__ import annotations

POSE_SPACE_FILENAME = "pose_space.npy"
