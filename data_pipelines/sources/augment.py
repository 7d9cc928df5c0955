"""Training-time image augmentation in JAX (paper section 5.1), on device.

* random translation: a random ``crop x crop`` window of each stored image;
* PCA colour noise: each image gets ``V (alpha * sqrt(lambda))`` added to every
  pixel, with ``(lambda, V)`` the eigen-decomposition of the RGB covariance
  over the training images and ``alpha ~ N(0, sigma^2)`` per image and
  eigenvector (as in Krizhevsky et al. 2012, the paper's [17]);
* (not the paper's; on in ``default.py``, off in ``paper.py``) a random hue
  turn and saturation scale per image (``colour_jitter``;
  ``config.data.hue_jitter_deg`` / ``saturation_jitter``), applied to every
  source's training batches by ``experiments.pipeline.Run.batch_fn``.

Images are float32 in [0, 1], ``[B, H, W, 3]``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def rgb_covariance(images, max_pixels: int = 4_000_000, seed: int = 0) -> np.ndarray:
  """RGB covariance ``[3, 3]`` of a set of images ``[N, H, W, 3]`` in [0, 1].

  Uses a random subset of at most ``max_pixels`` pixels (host-side numpy).
  """
  pixels = np.asarray(images, np.float32).reshape(-1, 3)
  if pixels.shape[0] == 0:
    raise ValueError("rgb_covariance needs at least one image.")
  if pixels.shape[0] > max_pixels:
    idx = np.random.default_rng(seed).choice(pixels.shape[0], max_pixels,
                                             replace=False)
    pixels = pixels[idx]
  return np.cov(pixels, rowvar=False).astype(np.float32)


def pca_basis(covariance) -> tuple[np.ndarray, np.ndarray]:
  """Eigenvalues ``[3]`` (clipped at 0) and eigenvectors ``[3, 3]`` (columns)."""
  cov = np.asarray(covariance, np.float64)
  if cov.shape != (3, 3) or not np.all(np.isfinite(cov)):
    raise ValueError(f"RGB covariance must be a finite [3, 3] matrix, got {cov.shape}.")
  vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
  return np.clip(vals, 0, None).astype(np.float32), vecs.astype(np.float32)


def random_crop(key: Array, images: Array, crop: int) -> Array:
  """A random ``crop x crop`` window per image: ``[B, H, W, C] -> [B, crop, crop, C]``."""
  return random_crop_with_corners(key, images, crop)[0]


def random_crop_with_corners(key: Array, images: Array, crop: int
                             ) -> tuple[Array, Array]:
  """``random_crop`` and where each window is: ``(crops [B, crop, crop, C],
  corners [B, 2] int32)``, a corner being the window's top-left ``(x, y)``
  (column, row) in the image, so a point ``p`` of the image is at
  ``p - corner`` in its crop."""
  b, h, w, c = images.shape
  if crop > h or crop > w:
    raise ValueError(f"crop {crop} is larger than the images ({h}x{w}).")
  ky, kx = jax.random.split(key)
  ys = jax.random.randint(ky, (b,), 0, h - crop + 1)
  xs = jax.random.randint(kx, (b,), 0, w - crop + 1)
  crops = jax.vmap(lambda im, y, x: jax.lax.dynamic_slice(im, (y, x, 0),
                                                          (crop, crop, c)))(
                                                              images, ys, xs)
  return crops, jnp.stack([xs, ys], axis=-1)


def center_crop(images: Array, crop: int) -> Array:
  """The central ``crop x crop`` window: ``[B, H, W, C] -> [B, crop, crop, C]``."""
  h, w = images.shape[1:3]
  if crop > h or crop > w:
    raise ValueError(f"crop {crop} is larger than the images ({h}x{w}).")
  y0, x0 = (h - crop) // 2, (w - crop) // 2
  return images[:, y0:y0 + crop, x0:x0 + crop]


def pca_colour_noise(key: Array, images: Array, eigvals: Array, eigvecs: Array,
                     sigma: float = 0.1) -> Array:
  """Adds per-image PCA colour noise: ``images + V (alpha * sqrt(lambda))``.

  Args:
    key: PRNG key.
    images: ``[B, H, W, 3]`` float32.
    eigvals: ``[3]`` eigenvalues of the training RGB covariance.
    eigvecs: ``[3, 3]`` its eigenvectors as columns.
    sigma: std of the per-image coefficients alpha.
  """
  alpha = sigma * jax.random.normal(key, (images.shape[0], 3), images.dtype)
  shift = (alpha * jnp.sqrt(eigvals)) @ eigvecs.T  # [B, 3]
  return images + shift[:, None, None, :]


def augment(key: Array, images: Array, crop: int, eigvals: Array,
            eigvecs: Array, sigma: float = 0.1) -> Array:
  """Random crop then PCA colour noise (the training augmentation)."""
  return augment_with_corners(key, images, crop, eigvals, eigvecs, sigma)[0]


def augment_with_corners(key: Array, images: Array, crop: int, eigvals: Array,
                         eigvecs: Array, sigma: float = 0.1
                         ) -> tuple[Array, Array]:
  """``augment`` (the same randomness) and the crops' top-left corners
  ``[B, 2]`` ``(x, y)`` (``random_crop_with_corners``)."""
  k_crop, k_noise = jax.random.split(key)
  crops, corners = random_crop_with_corners(k_crop, images, crop)
  return pca_colour_noise(k_noise, crops, eigvals, eigvecs, sigma), corners


def colour_jitter_matrix(hue_rad: Array, saturation_scale: Array) -> Array:
  """The ``[..., 3, 3]`` RGB map that turns hue by ``hue_rad`` and scales
  saturation by ``saturation_scale``, leaving grey (``r = g = b``) alone.

  With ``g = (1, 1, 1) / sqrt(3)`` the grey axis, ``P = g g^T`` and ``[g]_x``
  its cross-product matrix, the map is ``P + s (cos h (I - P) + sin h
  [g]_x)``: the chroma (the part of a colour off the grey axis) is rotated
  about that axis by ``h`` and scaled by ``s``; ``(r + g + b) / 3`` is kept.
  ``h = 120 deg, s = 1`` permutes the channels (r, g, b) -> (b, r, g);
  ``s = 0`` gives grey.
  """
  g = jnp.full((3,), 1.0 / np.sqrt(3.0), jnp.float32)
  proj = jnp.outer(g, g)
  cross = jnp.array([[0.0, -g[2], g[1]], [g[2], 0.0, -g[0]],
                     [-g[1], g[0], 0.0]], jnp.float32)
  hue = jnp.asarray(hue_rad, jnp.float32)[..., None, None]
  sat = jnp.asarray(saturation_scale, jnp.float32)[..., None, None]
  return proj + sat * (jnp.cos(hue) * (jnp.eye(3) - proj)
                       + jnp.sin(hue) * cross)


def colour_jitter(keys: Array, images: Array, hue_deg: float,
                  saturation: float) -> Array:
  """Random hue and saturation per image, one PRNG key per image.

  Each image gets ``colour_jitter_matrix(h, s)`` with ``h ~ U(-hue_deg,
  hue_deg)`` degrees and ``s ~ U(1 - saturation, 1 + saturation)``, drawn
  from its own key, so an image's jitter does not depend on the batch it is
  in. Brightness (the grey component) is unchanged. Not part of the paper's
  augmentation (section 5.1 has crops and PCA noise only): it makes a
  rendered person's clothing colours an unreliable cue, for data with few
  looks (``experiments/results/learning_study/``, section 9).

  Args:
    keys: ``[B]`` PRNG keys (or ``[B, 2]`` uint32 raw keys).
    images: ``[B, H, W, 3]`` float32 (RGB, about [0, 1]).
    hue_deg: largest hue turn, degrees in ``[0, 180]`` (180: any hue).
    saturation: in ``[0, 1]``; 1 allows anything from grey to twice the
      saturation.

  Returns:
    ``[B, H, W, 3]`` float32, not clipped (as ``pca_colour_noise``).
  """
  def draw(key):
    k_hue, k_sat = jax.random.split(key)
    hue = jax.random.uniform(k_hue, (), jnp.float32, -1.0, 1.0)
    sat = jax.random.uniform(k_sat, (), jnp.float32, -1.0, 1.0)
    return (jnp.deg2rad(hue_deg) * hue, 1.0 + saturation * sat)
  hue, sat = jax.vmap(draw)(keys)
  mats = colour_jitter_matrix(hue, sat)  # [B, 3, 3]
  return jnp.einsum("bhwc,bdc->bhwd", images.astype(jnp.float32), mats)


# Salt of the colour-jitter stream, so it never shares keys with the sources'
# own augmentation streams.
_SALT_COLOUR_JITTER = 0x5354_434A  # "STCJ"


@functools.partial(jax.jit, static_argnames=("hue_deg", "saturation"))
def colour_jitter_step(seed: int, step: int, first_row: int, images: Array, *,
                       hue_deg: float, saturation: float) -> Array:
  """``colour_jitter`` of the training batch of ``step``: row ``i`` of
  ``images [b, H, W, 3]`` is row ``first_row + i`` of the global batch and
  draws its jitter from ``fold_in(fold_in(fold_in(key(seed), salt), step),
  first_row + i)``, so the result is a function of ``(seed, step, global
  row)`` alone: the same for a resumed run and for any number of processes.
  """
  base = jax.random.fold_in(jax.random.fold_in(
      jax.random.PRNGKey(seed), _SALT_COLOUR_JITTER), step)
  rows = first_row + jnp.arange(images.shape[0])
  keys = jax.vmap(lambda r: jax.random.fold_in(base, r))(rows)
  return colour_jitter(keys, images, hue_deg, saturation)
