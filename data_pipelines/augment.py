"""Training-time image augmentation in JAX (paper section 5.1), on device.

* random translation: a random ``crop x crop`` window of each stored image;
* PCA colour noise: each image gets ``V (alpha * sqrt(lambda))`` added to every
  pixel, with ``(lambda, V)`` the eigen-decomposition of the RGB covariance
  over the training images and ``alpha ~ N(0, sigma^2)`` per image and
  eigenvector (as in Krizhevsky et al. 2012, the paper's [17]).

Images are float32 in [0, 1], ``[B, H, W, 3]``.
"""

from __future__ import annotations

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
