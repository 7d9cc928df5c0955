"""The names and cache fingerprints of ``structnet_h36m`` datasets are frozen.

A dataset's config name (``<name>_<10 hex digits>``) picks its folder under
the TFDS data directory, and its fingerprint names its render cache; a change
of either orphans every dataset and cache built before. The strings below
were computed with the code of commit 625767d (before the dataset options
became one object) and are the independent reference: refactors of the
options must keep every one of them.
"""

from __future__ import annotations

import pytest

from data_pipelines.tfds import builder as tb

_IDENTITY = {"path": "/x", "size": 3, "mtime_ns": 5}

# (config, changed options, name, fingerprint, fingerprint with _IDENTITY).
CASES = (
    ("procedural", {}, "procedural",
     "8d2740d7bb61fc4a73aa138ae47cded3f3a2cca9", "36c8c26b259c"),
    ("h36m_motion", {}, "h36m_motion",
     "00bad07ec8e725777233a7d51a8deaee58878872", "82509c2a3533"),
    ("positions", {}, "positions",
     "2361182dbe64f97ea55d3839851d4b2851c799d0", "2aed030d3654"),
    ("h36m_release", {}, "h36m_release",
     "1c54f9b838111b4451a58abc38bac71d90ea1ddc", "4b6aa5b01e6b"),
    ("procedural", {"crop_size": 64}, "procedural_2c67e57310",
     "2c67e57310eccd06468afe2a8adedab0c811c286", "71be8ec70891"),
    ("h36m_motion", {"frame_step": 25, "crop_size": 64},
     "h36m_motion_4f68ade889", "4f68ade8890ab42716e180c82f42d3e7f5ce9bee",
     "f1a5f74928eb"),
    ("procedural", {"train_subjects": ("S1", "S5"), "test_subjects": ("S9",),
                    "actions": ("walking",), "sequences_per_action": 1,
                    "frames_per_sequence": 6, "frame_step": 3,
                    "cameras": (1, 2), "crop_size": 32, "supersample": 1},
     "procedural_416a1781a8", "416a1781a8619da21269cac31e2190b982dff73c",
     "d80473c45085"),
    ("procedural", {"crop_size": 64, "random_yaw": True},
     "procedural_165dcbe008", "165dcbe0089ac1ea50813e356bb852e022c29a23",
     "f374ae849fd5"),
    ("procedural", {"looks_per_subject": 4, "margin": 0.3, "fps": 25.0,
                    "seed": 3, "body_seed": 2, "appearance_seed": 5,
                    "pixel_noise": False},
     "procedural_bd8350464b", "bd8350464b5f360a6b28cbe882d717077a1f355f",
     "b0d2cd775506"),
    ("positions", {"placement": "centre", "rig_subject": "S11",
                   "train_subjects": (), "test_subjects": ("P1", "P2")},
     "positions_dfa9801e19", "dfa9801e192b7b5da6551f2244459461739fc74c",
     "5aa1dd2e3bd9"),
    ("positions", {"source_digest": "0123456789abcdef", "cameras": [1, 3]},
     "positions_f1903fcbbb", "f1903fcbbb975d0e8560bf6d00cd38c24b8f7028",
     "bb1b6e35993c"),
    ("h36m_release", {"cameras": (1,), "frame_step": 10},
     "h36m_release_03bfb7a5b9", "03bfb7a5b9900c2c197af4c72b5d98650f4bb9f0",
     "a00bfed19765"),
    ("h36m_motion", {"motion_path": "/some/where.npz",
                     "actions": ["walking", "eating"]},
     "h36m_motion_0f4f78c0c0", "0f4f78c0c02dc43081582b0409b063ffd376afc4",
     "679cac9b2b6f"),
)


@pytest.mark.parametrize("base, options, name, fingerprint, cache_key", CASES)
def test_dataset_names_and_fingerprints_do_not_change(base, options, name,
                                                      fingerprint, cache_key):
  config = tb.make_config(base, **options)
  assert config.name == name
  assert tb._fingerprint(config) == fingerprint  # pylint: disable=protected-access
  assert tb._fingerprint(config, _IDENTITY)[:12] == cache_key  # pylint: disable=protected-access
