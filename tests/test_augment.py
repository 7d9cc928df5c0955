"""Colour jitter (data_pipelines/sources/augment.py) against hand-computed
cases, and its use on the training batches of a run."""

import jax
import numpy as np
import pytest

from data_pipelines.sources import augment
from experiments.configs import tiny
from experiments import pipeline


def _matrix(deg, sat=1.0):
  return np.asarray(augment.colour_jitter_matrix(np.deg2rad(deg), sat),
                    np.float64)


def test_hue_turn_of_120_degrees_permutes_the_channels():
  # Turning about the grey axis by a third of a circle takes red to green,
  # green to blue and blue to red: pixel (r, g, b) becomes (b, r, g).
  np.testing.assert_allclose(_matrix(120.0), [[0, 0, 1], [1, 0, 0], [0, 1, 0]],
                             atol=1e-6)
  np.testing.assert_allclose(_matrix(-120.0), _matrix(120.0).T, atol=1e-6)
  np.testing.assert_allclose(_matrix(0.0), np.eye(3), atol=1e-6)
  np.testing.assert_allclose(_matrix(360.0), np.eye(3), atol=1e-5)


def test_hue_turn_is_a_rotation_that_keeps_grey():
  for deg in (17.0, 95.0, -150.0):
    m = _matrix(deg)
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-6)
    np.testing.assert_allclose(m @ [0.3, 0.3, 0.3], [0.3, 0.3, 0.3], atol=1e-6)
  np.testing.assert_allclose(_matrix(30.0) @ _matrix(50.0), _matrix(80.0),
                             atol=1e-6)


def test_saturation_scales_the_distance_from_grey():
  colour = np.array([0.9, 0.2, 0.4])
  grey = np.full(3, colour.mean())
  np.testing.assert_allclose(_matrix(0.0, 0.0) @ colour, grey, atol=1e-6)
  np.testing.assert_allclose(_matrix(0.0, 0.5) @ colour,
                             grey + 0.5 * (colour - grey), atol=1e-6)
  np.testing.assert_allclose(_matrix(0.0, 2.0) @ colour,
                             grey + 2.0 * (colour - grey), atol=1e-6)


def test_colour_jitter_draws_within_its_ranges_per_image():
  rng = np.random.default_rng(0)
  images = rng.uniform(size=(64, 3, 3, 3)).astype(np.float32)
  keys = jax.random.split(jax.random.PRNGKey(1), 64)
  out = np.asarray(augment.colour_jitter(keys, images, 45.0, 0.25))
  # Brightness (the grey component) is kept ...
  np.testing.assert_allclose(out.mean(-1), images.mean(-1), atol=1e-5)
  # ... the chroma's length is scaled by s in [0.75, 1.25] per image ...
  chroma_in = images - images.mean(-1, keepdims=True)
  chroma_out = out - out.mean(-1, keepdims=True)
  ratio = (np.linalg.norm(chroma_out, axis=-1)
           / np.linalg.norm(chroma_in, axis=-1))
  assert np.allclose(ratio, ratio[:, :1, :1], atol=1e-4)  # one s per image
  assert 0.75 - 1e-4 <= ratio.min() and ratio.max() <= 1.25 + 1e-4
  # ... and turned by at most 45 degrees.
  cos = (np.sum(chroma_in * chroma_out, -1)
         / np.linalg.norm(chroma_in, axis=-1)
         / np.linalg.norm(chroma_out, axis=-1))
  angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
  assert angle.max() <= 45.0 + 0.1 and angle.max() > 30.0
  # An image's jitter comes from its own key, not from the rest of the batch.
  np.testing.assert_allclose(
      augment.colour_jitter(keys[5:7], images[5:7], 45.0, 0.25), out[5:7],
      atol=1e-6)


def test_run_batches_are_jittered_by_seed_step_and_row(tmp_path):
  config = tiny.get_config()
  config.data.pose_space_size = 64
  config.data.num_test = 8
  config.train.batch_size = 8
  plain = pipeline.Run.create(config.copy_and_resolve_references(),
                              str(tmp_path / "plain"))
  # The blobs source refuses jitter (it codes depth in colour); its images
  # still show that the run's batches are jittered.
  config.data.hue_jitter_deg = 180.0
  config.data.saturation_jitter = 0.5
  jittered = pipeline.Run(config, str(tmp_path / "jittered"), plain.model,
                          plain.source)
  a = {k: np.asarray(v) for k, v in plain.batch_fn(3).items()}
  b = {k: np.asarray(v) for k, v in jittered.batch_fn(3).items()}
  np.testing.assert_array_equal(a["pose"], b["pose"])
  np.testing.assert_allclose(b["image"].mean(-1), a["image"].mean(-1),
                             atol=1e-5)
  assert np.abs(b["image"] - a["image"]).max() > 0.05
  np.testing.assert_array_equal(np.asarray(jittered.batch_fn(3)["image"]),
                                b["image"])
  assert np.abs(np.asarray(jittered.batch_fn(4)["image"])
                - augment.colour_jitter_step(
                    config.seed, 3, 0, plain.batch_fn(4)["image"],
                    hue_deg=180.0, saturation=0.5)).max() > 0
  # The config's ranges are checked when it is loaded.
  config.data.hue_jitter_deg = 200.0
  from structnet_jax import config_utils  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="hue_jitter_deg=200.0"):
    config_utils.check_values(config)
