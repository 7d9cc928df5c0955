"""LinKDE, the kernel-regression baseline of the paper's Table 1.

LinKDE (Ionescu et al., "Human3.6M", TPAMI 2014) is kernel dependency
estimation with random Fourier feature (RFF) approximations of the kernels:
HOG descriptors of the person crop are mapped through an RFF approximation of
a Gaussian kernel, and a ridge regression, solved in closed form, maps those
features to the pose. With ``output="kde"`` the pose side gets its own RFF
embedding (the output kernel of KDE): the regression predicts that embedding
and the pose is the pre-image, the training pose whose embedding is nearest
(or the mean of the ``top_k`` nearest). With ``output="linear"`` the 51
coordinates are regressed directly.

  model = LinKDE(cell_size=8).fit(images, poses, jax.random.PRNGKey(0))
  pred = model.predict(test_images)                 # [N, 17, 3] mm

  model = LinKDE().fit_from_batches(source.eval_batches(256, "train"), key)

Images are float ``[N, H, W, 3]`` RGB crops (values in [0, 1]; HOG does not
depend on the scale); poses are root-relative camera-frame joints in mm,
``[N, 17, 3]``. ``fit`` never holds all the features at once: it accumulates
``X^T X`` and ``X^T Y`` (``RidgeStats``) chunk by chunk, so it scales to 100k+
training images; the memory it needs is ``D x D`` for ``D`` image features
(plus, for ``output="kde"``, the ``[M, D_y]`` embedding table of the ``M``
candidate poses).

The public functions check their inputs on the host (ranks, channels, NaN,
counts, hyperparameters) and raise a ``ValueError`` naming the problem and the
fix; the numerical work is jitted.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

from structnet_jax import poses as poses_lib
from structnet_jax import progress as progress_lib

Array = jax.Array

POSE_DIM = poses_lib.NUM_JOINTS * 3
OUTPUTS = ("linear", "kde")
CHANNEL_MODES = ("max", "grey")
_LUMA = (0.299, 0.587, 0.114)
_HIGHEST = jax.lax.Precision.HIGHEST


# ----------------------------------------------------------------------------
# Input checks (host side).


def _check_images(images, fn: str) -> Any:
  """Validates a batch of RGB images ``[N, H, W, 3]``; returns it as float32."""
  shape = tuple(getattr(images, "shape", np.shape(images)))
  if len(shape) != 4 or shape[-1] != 3:
    raise ValueError(
        f"{fn}: images must be RGB crops of shape [N, H, W, 3], got shape "
        f"{shape}. Add a batch axis with images[None] for a single image, or "
        "repeat a grey channel three times.")
  dtype = np.dtype(getattr(images, "dtype", np.asarray(images).dtype))
  if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
    raise ValueError(f"{fn}: images must be numeric, got dtype {dtype}.")
  if shape[0] == 0:
    raise ValueError(f"{fn}: images is empty (N=0); pass at least one image.")
  if isinstance(images, jax.Array):
    finite = bool(_all_finite(images))
    if images.dtype != jnp.float32:
      images = _as_float32(images)
  else:
    images = np.asarray(images, dtype=np.float32)
    finite = bool(np.isfinite(images).all())
  if not finite:
    bad = np.flatnonzero(~np.isfinite(np.asarray(images)).reshape(
        shape[0], -1).all(axis=-1))
    raise ValueError(
        f"{fn}: images contain NaN or infinite values ({bad.size} image(s), "
        f"first indices {bad[:5].tolist()}). Drop or repair those crops.")
  return images


@jax.jit
def _all_finite(x: Array) -> Array:
  return jnp.all(jnp.isfinite(x))


_as_float32 = jax.jit(lambda x: x.astype(jnp.float32))


def _check_positive(value, name: str, fn: str, *, integer: bool = False):
  if integer:
    if int(value) != value or int(value) < 1:
      raise ValueError(f"{fn}: {name} must be a positive integer, got {value!r}.")
    return int(value)
  value = float(value)
  if not math.isfinite(value) or value <= 0:
    raise ValueError(
        f"{fn}: {name} must be a finite number > 0, got {value!r}.")
  return value


def hog_shape(height: int, width: int, *, cell_size: int = 8,
              block_size: int = 2, num_bins: int = 9) -> tuple[int, int, int]:
  """``(blocks_y, blocks_x, block_dim)`` of the HOG of an ``H x W`` image.

  The descriptor length is ``F = blocks_y * blocks_x * block_dim`` with
  ``blocks = H // cell_size - block_size + 1`` (rows; likewise columns) and
  ``block_dim = block_size**2 * num_bins``.

  Raises:
    ValueError: non-positive settings, or an image too small for one block.
  """
  cell_size = _check_positive(cell_size, "cell_size", "hog", integer=True)
  block_size = _check_positive(block_size, "block_size", "hog", integer=True)
  num_bins = _check_positive(num_bins, "num_bins", "hog", integer=True)
  cy, cx = int(height) // cell_size, int(width) // cell_size
  if cy < block_size or cx < block_size:
    raise ValueError(
        f"hog: a {height}x{width} image has {cy}x{cx} cells of {cell_size}x"
        f"{cell_size} pixels, fewer than one {block_size}x{block_size}-cell "
        f"block. Use a smaller cell_size/block_size or larger images (at least "
        f"{cell_size * block_size} pixels a side).")
  return cy - block_size + 1, cx - block_size + 1, block_size**2 * num_bins


def hog_dim(height: int, width: int, **options) -> int:
  """The HOG descriptor length ``F`` for ``H x W`` images (see ``hog_shape``)."""
  by, bx, d = hog_shape(height, width, **options)
  return by * bx * d


# ----------------------------------------------------------------------------
# HOG.


def _gradients(images: Array, channel: str) -> tuple[Array, Array]:
  """[-1, 0, 1] gradients ``(gx, gy)`` ``[N, H, W]``, zero on the border.

  ``gx`` is along columns (x right), ``gy`` along rows (y down). With
  ``channel="max"`` each pixel takes the gradient of the colour channel with
  the largest magnitude (Dalal & Triggs); with ``"grey"`` that of the luma.
  """
  if channel == "grey":
    images = images @ jnp.asarray(_LUMA, images.dtype)[:, None]
  gx = jnp.pad(images[:, :, 2:] - images[:, :, :-2],
               ((0, 0), (0, 0), (1, 1), (0, 0)))
  gy = jnp.pad(images[:, 2:] - images[:, :-2], ((0, 0), (1, 1), (0, 0), (0, 0)))
  best = jnp.argmax(gx * gx + gy * gy, axis=-1)[..., None]
  return (jnp.take_along_axis(gx, best, -1)[..., 0],
          jnp.take_along_axis(gy, best, -1)[..., 0])


def _hog_cells(images: Array, cell_size: int, num_bins: int,
               channel: str) -> Array:
  """Cell orientation histograms ``[N, H // c, W // c, num_bins]`` (unnormalised)."""
  gx, gy = _gradients(images, channel)
  mag = jnp.sqrt(gx * gx + gy * gy)
  # Unsigned orientation in [0, pi); bin k is centred on k * pi / num_bins and
  # a pixel votes into its two nearest bins (circularly), linearly weighted.
  # The weight of bin k is the triangle max(0, 1 - d) of the circular distance
  # d (in bins) between the orientation and the bin centre.
  pos = jnp.mod(jnp.arctan2(gy, gx), jnp.pi) * (num_bins / jnp.pi)
  dist = jnp.abs(pos[..., None] - jnp.arange(num_bins, dtype=pos.dtype))
  dist = jnp.minimum(dist, num_bins - dist)
  votes = jnp.maximum(0.0, 1.0 - dist) * mag[..., None]
  n, h, w, _ = votes.shape
  cy, cx = h // cell_size, w // cell_size
  votes = votes[:, :cy * cell_size, :cx * cell_size]
  return votes.reshape(n, cy, cell_size, cx, cell_size, num_bins).sum((2, 4))


def _hog(images: Array, cell_size: int, block_size: int, num_bins: int,
         channel: str, clip: float, eps: float) -> Array:
  """HOG descriptors ``[N, F]`` (unchecked; traced inside other jits)."""
  cells = _hog_cells(images, cell_size, num_bins, channel)
  n, cy, cx, _ = cells.shape
  nby, nbx = cy - block_size + 1, cx - block_size + 1
  blocks = jnp.stack([cells[:, i:i + nby, j:j + nbx]
                      for i in range(block_size) for j in range(block_size)],
                     axis=3).reshape(n, nby, nbx, -1)
  # L2-Hys: L2-normalise, clip, renormalise.
  blocks = blocks / jnp.sqrt(jnp.sum(blocks**2, -1, keepdims=True) + eps**2)
  blocks = jnp.minimum(blocks, clip)
  blocks = blocks / jnp.sqrt(jnp.sum(blocks**2, -1, keepdims=True) + eps**2)
  return blocks.reshape(n, -1)


_hog_jit = jax.jit(_hog, static_argnums=(1, 2, 3, 4, 5, 6))
_hog_cells_jit = jax.jit(_hog_cells, static_argnums=(1, 2, 3))


def _check_hog_options(images, fn, cell_size, block_size, num_bins, channel,
                       clip=0.2):
  if channel not in CHANNEL_MODES:
    raise ValueError(
        f"{fn}: channel must be one of {CHANNEL_MODES} (max-over-channel or "
        f"grey-level gradients), got {channel!r}.")
  _check_positive(clip, "clip", fn)
  hog_shape(images.shape[1], images.shape[2], cell_size=cell_size,
            block_size=block_size, num_bins=num_bins)


def hog_cells(images, *, cell_size: int = 8, num_bins: int = 9,
              channel: str = "max") -> Array:
  """Per-cell orientation histograms, before block normalisation.

  Each pixel's gradient magnitude is split between the two orientation bins
  nearest its unsigned orientation (bin ``k`` centred on ``k * 180 /
  num_bins`` degrees, measured from the +x (column) axis towards +y (rows,
  down); 170 degrees splits between the last bin and bin 0), and summed over
  ``cell_size x cell_size`` cells. Rows/columns past the last whole cell are
  ignored.

  Args:
    images: ``[N, H, W, 3]`` float RGB.
    cell_size: cell side in pixels.
    num_bins: orientation bins over [0, 180) degrees.
    channel: ``"max"`` (per-pixel max-magnitude colour channel) or ``"grey"``.

  Returns:
    ``[N, H // cell_size, W // cell_size, num_bins]`` float32, in units of
    image intensity per pixel, summed over the cell.
  """
  images = _check_images(images, "hog_cells")
  _check_hog_options(images, "hog_cells", cell_size, 1, num_bins, channel)
  return _hog_cells_jit(jnp.asarray(images), int(cell_size), int(num_bins),
                        channel)


def hog(images, *, cell_size: int = 8, block_size: int = 2, num_bins: int = 9,
        channel: str = "max", clip: float = 0.2, eps: float = 1e-5) -> Array:
  """HOG descriptors (Dalal & Triggs) of a batch of images, jitted.

  [-1, 0, 1] gradients (max over colour channels, or of the grey level),
  unsigned orientation in ``num_bins`` bins with linear interpolation between
  bins (``hog_cells``), ``cell_size``-pixel cells, ``block_size x
  block_size``-cell blocks at a one-cell stride, each L2-Hys normalised
  (``v / sqrt(|v|^2 + eps^2)``, clipped at ``clip``, renormalised). The
  result is invariant to adding a constant to the image and, up to ``eps``,
  to scaling its contrast.

  Args:
    images: ``[N, H, W, 3]`` float RGB (any scale, e.g. [0, 1]).
    cell_size, block_size, num_bins, channel, clip, eps: as above.

  Returns:
    ``[N, F]`` float32, ``F = hog_dim(H, W, ...)`` in the order (block row,
    block column, cell row in block, cell column in block, bin).

  Raises:
    ValueError: images not ``[N, H, W, 3]``, empty, or non-finite; bad
      settings; images smaller than one block.
  """
  images = _check_images(images, "hog")
  _check_hog_options(images, "hog", cell_size, block_size, num_bins, channel,
                     clip)
  return _hog_jit(jnp.asarray(images), int(cell_size), int(block_size),
                  int(num_bins), channel, float(clip), float(eps))


# ----------------------------------------------------------------------------
# Random Fourier features.


class RFFParams(NamedTuple):
  """Random Fourier features of ``exp(-|x - y|^2 / (2 sigma^2))``.

  Attributes:
    w: ``[dim_in, D]`` frequencies, i.i.d. ``N(0, 1 / sigma^2)``.
    b: ``[D]`` phases, uniform on [0, 2 pi).
    sigma: ``[]`` the kernel bandwidth, in the input's units.
  """
  w: Array
  b: Array
  sigma: Array


def rff_params(key: Array, dim_in: int, num_features: int,
               sigma: float) -> RFFParams:
  """Draws RFF parameters (Rahimi & Recht 2007) for a Gaussian kernel.

  Args:
    key: PRNG key.
    dim_in: input dimension.
    num_features: ``D``, the feature count; the kernel estimate's error is
      ``O(1 / sqrt(D))``.
    sigma: kernel bandwidth (> 0), in the input's units.

  Returns:
    ``RFFParams`` with float32 ``w [dim_in, D]``, ``b [D]``, ``sigma []``.
  """
  dim_in = _check_positive(dim_in, "dim_in", "rff_params", integer=True)
  num_features = _check_positive(num_features, "num_features", "rff_params",
                                 integer=True)
  sigma = _check_positive(sigma, "sigma", "rff_params")
  return _draw_rff(key, np.float32(sigma), dim_in, num_features)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _draw_rff(key: Array, sigma: Array, dim_in: int,
              num_features: int) -> RFFParams:
  k_w, k_b = jax.random.split(key)
  w = jax.random.normal(k_w, (dim_in, num_features), jnp.float32) / sigma
  b = jax.random.uniform(k_b, (num_features,), jnp.float32, 0.0, 2 * jnp.pi)
  return RFFParams(w, b, sigma)


def _rff(x: Array, params: RFFParams) -> Array:
  d = params.b.shape[0]
  proj = jnp.matmul(x, params.w, precision=_HIGHEST)
  return jnp.sqrt(2.0 / d) * jnp.cos(proj + params.b)


def rff(x, params: RFFParams) -> Array:
  """Random Fourier features ``sqrt(2 / D) cos(x W + b)``, ``[N, D]``.

  ``rff(x) @ rff(y).T`` is an unbiased estimate of the Gaussian kernel
  ``exp(-|x - y|^2 / (2 sigma^2))``.

  Args:
    x: ``[N, dim_in]``.
    params: from ``rff_params``.

  Returns:
    ``[N, D]`` float32.
  """
  x = jnp.asarray(x, jnp.float32)
  if x.ndim != 2 or x.shape[1] != params.w.shape[0]:
    raise ValueError(
        f"rff: x must be [N, {params.w.shape[0]}] (the dim_in the parameters "
        f"were drawn for), got shape {tuple(x.shape)}.")
  return _rff_jit(x, params)


_rff_jit = jax.jit(_rff)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _sample_rows(key: Array, n: int, m: int) -> Array:
  """``m`` distinct indices in ``[0, n)``, sorted."""
  return jnp.sort(jax.random.choice(key, n, (m,), replace=False))


@jax.jit
def _pairwise_sq_dists(x: Array) -> Array:
  sq = jnp.sum(x * x, axis=-1)
  gram = jnp.matmul(x, x.T, precision=_HIGHEST)
  return jnp.maximum(sq[:, None] + sq[None, :] - 2 * gram, 0.0)


def median_bandwidth(x, key: Array | None = None, *,
                     max_samples: int = 1000) -> float:
  """The median heuristic: the median distance between distinct samples.

  Args:
    x: ``[N, dim]`` descriptors (N >= 2).
    key: PRNG key for drawing ``max_samples`` rows without replacement when
      ``N > max_samples``; None takes the first ``max_samples`` rows.
    max_samples: at most this many rows are compared (pairwise).

  Returns:
    ``sigma``, a Python float in ``x``'s units.

  Raises:
    ValueError: fewer than two rows, non-finite values, or all sampled rows
      identical (pass ``sigma`` explicitly then).
  """
  if not isinstance(x, jax.Array):
    x = np.asarray(x, np.float32)
  if x.ndim != 2 or x.shape[0] < 2:
    raise ValueError(
        f"median_bandwidth: x must be [N, dim] with N >= 2, got shape "
        f"{tuple(x.shape)}.")
  max_samples = _check_positive(max_samples, "max_samples", "median_bandwidth",
                                integer=True)
  if x.shape[0] > max_samples:
    if key is None:
      x = x[:max_samples]
    else:
      x = x[np.asarray(_sample_rows(key, x.shape[0], max_samples))]
  d2 = np.asarray(_pairwise_sq_dists(jnp.asarray(x, jnp.float32)), np.float64)
  if not np.all(np.isfinite(d2)):
    raise ValueError("median_bandwidth: x contains NaN or infinite values.")
  iu = np.triu_indices(d2.shape[0], k=1)
  sigma = float(np.sqrt(np.median(d2[iu])))
  if not sigma > 0:
    raise ValueError(
        "median_bandwidth: the sampled rows are (mostly) identical, so the "
        "median distance is 0; pass sigma explicitly or use more varied data.")
  return sigma


# ----------------------------------------------------------------------------
# Ridge regression from accumulated second moments.


class RidgeStats(NamedTuple):
  """Sufficient statistics of a ridge regression, accumulated over chunks.

  Sums are taken about a shift (the mean of the first chunk) so that the
  centring in ``ridge_solve`` does not cancel catastrophically in float32.

  Attributes:
    count: ``[]`` examples seen.
    shift_x / shift_y: ``[D]`` / ``[K]`` the shift.
    sum_x / sum_y: ``[D]`` / ``[K]`` sums of shifted inputs / targets.
    sum_xx: ``[D, D]`` sum of ``x x^T`` (shifted).
    sum_xy: ``[D, K]`` sum of ``x y^T`` (shifted).
  """
  count: Array
  shift_x: Array
  shift_y: Array
  sum_x: Array
  sum_y: Array
  sum_xx: Array
  sum_xy: Array


def ridge_init(dim_x: int, dim_y: int) -> RidgeStats:
  """Empty ``RidgeStats`` for ``dim_x`` inputs and ``dim_y`` targets."""
  z = lambda shape: jnp.asarray(np.zeros(shape, np.float32))
  return RidgeStats(z(()), z((dim_x,)), z((dim_y,)), z((dim_x,)), z((dim_y,)),
                    z((dim_x, dim_x)), z((dim_x, dim_y)))


def _ridge_update(stats: RidgeStats, x: Array, y: Array,
                  mask: Array) -> RidgeStats:
  m = mask.astype(jnp.float32)
  n = jnp.sum(m)
  first = stats.count == 0
  safe_n = jnp.maximum(n, 1.0)
  shift_x = jnp.where(first, jnp.sum(x * m[:, None], 0) / safe_n, stats.shift_x)
  shift_y = jnp.where(first, jnp.sum(y * m[:, None], 0) / safe_n, stats.shift_y)
  xs = (x - shift_x) * m[:, None]
  ys = (y - shift_y) * m[:, None]
  return RidgeStats(
      stats.count + n, shift_x, shift_y, stats.sum_x + jnp.sum(xs, 0),
      stats.sum_y + jnp.sum(ys, 0),
      stats.sum_xx + jnp.matmul(xs.T, xs, precision=_HIGHEST),
      stats.sum_xy + jnp.matmul(xs.T, ys, precision=_HIGHEST))


_ridge_update_jit = jax.jit(_ridge_update)


def ridge_update(stats: RidgeStats, x, y, mask=None) -> RidgeStats:
  """Adds a chunk ``x [B, D]``, ``y [B, K]`` (rows with ``mask == False`` skipped)."""
  x = jnp.asarray(x, jnp.float32)
  y = jnp.asarray(y, jnp.float32)
  if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
    raise ValueError(
        f"ridge_update: x must be [B, D] and y [B, K] with equal B, got shapes "
        f"{tuple(x.shape)} and {tuple(y.shape)}.")
  if x.shape[1] != stats.sum_x.shape[0] or y.shape[1] != stats.sum_y.shape[0]:
    raise ValueError(
        f"ridge_update: the stats are for D={stats.sum_x.shape[0]}, "
        f"K={stats.sum_y.shape[0]}, got x {tuple(x.shape)}, y {tuple(y.shape)}.")
  mask = (np.ones(x.shape[0], bool) if mask is None
          else np.asarray(mask, bool).reshape(x.shape[0]))
  return _ridge_update_jit(stats, x, y, mask)


@jax.jit
def _ridge_solve(stats: RidgeStats, ridge: Array) -> tuple[Array, Array]:
  n = stats.count
  mx, my = stats.sum_x / n, stats.sum_y / n
  cxx = (stats.sum_xx - n * jnp.outer(mx, mx)) / n
  cxy = (stats.sum_xy - n * jnp.outer(mx, my)) / n
  cxx = 0.5 * (cxx + cxx.T) + ridge * jnp.eye(cxx.shape[0], dtype=cxx.dtype)
  factor = jax.scipy.linalg.cho_factor(cxx, lower=True)
  weights = jax.scipy.linalg.cho_solve(factor, cxy)
  bias = (stats.shift_y + my) - jnp.matmul(stats.shift_x + mx, weights,
                                           precision=_HIGHEST)
  return weights, bias, jnp.all(jnp.isfinite(weights))


def ridge_solve(stats: RidgeStats, ridge: float) -> tuple[Array, Array]:
  """The ridge regression of the accumulated data, in closed form.

  Minimises ``(1/n) sum_i |y_i - W^T x_i - c|^2 + ridge |W|_F^2`` (the bias
  ``c`` is not penalised): with centred ``X_c``, ``Y_c``,
  ``W = (X_c^T X_c / n + ridge I)^{-1} X_c^T Y_c / n`` (a Cholesky solve) and
  ``c = mean(y) - W^T mean(x)``. ``ridge`` is per example, so its scale does
  not depend on ``n``.

  Returns:
    ``(weights [D, K], bias [K])``; predict with ``x @ weights + bias``.

  Raises:
    ValueError: ``ridge <= 0`` or no examples accumulated.
  """
  ridge = _check_positive(ridge, "ridge", "ridge_solve")
  if float(stats.count) < 1:
    raise ValueError(
        "ridge_solve: no examples were accumulated (count=0); feed at least one "
        "unmasked example through ridge_update first.")
  weights, bias, finite = _ridge_solve(stats, np.float32(ridge))
  if not bool(finite):
    raise ValueError(
        f"ridge_solve: the solve is not finite (ridge={ridge} too small for "
        "float32?); increase ridge.")
  return weights, bias


# ----------------------------------------------------------------------------
# The model.


def _rows(x, start: int, size: int):
  """``x[start:start + size]``; for a jax array one compiled dynamic slice."""
  if isinstance(x, jax.Array):
    return _dynamic_rows(x, np.int32(start), size)
  return x[start:start + size]


@functools.partial(jax.jit, static_argnums=2)
def _dynamic_rows(x: Array, start: Array, size: int) -> Array:
  return jax.lax.dynamic_slice_in_dim(x, start, size)


def _pad_to(x, size: int):
  """Pads axis 0 of ``x`` to ``size`` by repeating its first row."""
  pad = size - x.shape[0]
  if pad == 0:
    return x
  lib = jnp if isinstance(x, jax.Array) else np
  return lib.concatenate([x, lib.repeat(x[:1], pad, axis=0)])


@flax.struct.dataclass
class LinKDE:
  """LinKDE: HOG -> RFF -> ridge regression -> pose (linear or KDE pre-image).

  Construct with the settings, then ``fit`` / ``fit_from_batches`` return a
  fitted copy (a pytree: the arrays are leaves, the settings static).

  Attributes:
    output: ``"kde"`` (regress an RFF embedding of the pose, predict the
      pre-image: the mean of the ``top_k`` candidate poses with the nearest
      embeddings; the default: on the blobs test, 2000 train / 300 test 32x32
      crops, cell_size=4, D=1024, it gives 150.6 mm (top_k=5) / 160.0 mm
      (top_k=1) against 186.9 mm for the best linear ridge and 288.7 mm for
      the mean training pose) or ``"linear"`` (regress the 51 coordinates).
    top_k: candidate poses averaged by the KDE pre-image (1: the nearest).
    cell_size, block_size, num_bins, channel, clip: HOG settings (``hog``).
    image_rff / pose_rff: the RFF parameters (``pose_rff`` only for "kde").
    weights / bias: the ridge solution ``[D, K]`` / ``[K]``, K = 51 or D_y.
    candidates: ``[M, 51]`` mm, the poses the KDE pre-image picks from.
    candidate_table: ``[M, D_y]`` their RFF embeddings.
  """
  output: str = flax.struct.field(pytree_node=False, default="kde")
  top_k: int = flax.struct.field(pytree_node=False, default=1)
  cell_size: int = flax.struct.field(pytree_node=False, default=8)
  block_size: int = flax.struct.field(pytree_node=False, default=2)
  num_bins: int = flax.struct.field(pytree_node=False, default=9)
  channel: str = flax.struct.field(pytree_node=False, default="max")
  clip: float = flax.struct.field(pytree_node=False, default=0.2)
  image_rff: RFFParams | None = None
  pose_rff: RFFParams | None = None
  weights: Array | None = None
  bias: Array | None = None
  candidates: Array | None = None
  candidate_table: Array | None = None

  # -- settings and features -------------------------------------------------

  def _check_settings(self, fn: str) -> None:
    if self.output not in OUTPUTS:
      raise ValueError(
          f"LinKDE.{fn}: output must be one of {OUTPUTS}, got {self.output!r}.")
    _check_positive(self.top_k, "top_k", f"LinKDE.{fn}", integer=True)
    if self.channel not in CHANNEL_MODES:
      raise ValueError(
          f"LinKDE.{fn}: channel must be one of {CHANNEL_MODES}, got "
          f"{self.channel!r}.")
    _check_positive(self.clip, "clip", f"LinKDE.{fn}")

  def _hog_dim(self, images, fn: str) -> int:
    try:
      return hog_dim(images.shape[1], images.shape[2], cell_size=self.cell_size,
                     block_size=self.block_size, num_bins=self.num_bins)
    except ValueError as e:
      raise ValueError(f"LinKDE.{fn}: {e}") from None

  def descriptors(self, images: Array) -> Array:
    """HOG descriptors ``[N, F]`` with this model's settings (traceable)."""
    return _hog(images, self.cell_size, self.block_size, self.num_bins,
                self.channel, self.clip, 1e-5)

  def _descriptors_jit(self, images) -> Array:
    return _hog_jit(jnp.asarray(images), self.cell_size, self.block_size,
                    self.num_bins, self.channel, self.clip, 1e-5)

  def features(self, images: Array) -> Array:
    """RFF(HOG) image features ``[N, D]`` (traceable; needs ``image_rff``)."""
    return _rff(self.descriptors(images), self.image_rff)

  def targets(self, poses: Array) -> Array:
    """Regression targets of poses ``[N, 17, 3]`` mm: ``[N, 51]`` or ``[N, D_y]``."""
    flat = poses.reshape(poses.shape[0], POSE_DIM).astype(jnp.float32)
    return flat if self.output == "linear" else _rff(flat, self.pose_rff)

  @property
  def is_fitted(self) -> bool:
    return self.weights is not None

  # -- fitting ---------------------------------------------------------------

  def fit(self, images, poses, key: Array, *, num_features: int = 4096,
          num_pose_features: int = 2048, ridge: float = 1e-5,
          chunk: int = 256, sigma: float | None = None,
          pose_sigma: float | None = None, sigma_scale: float = 1.0,
          bandwidth_samples: int = 1000, candidates=None) -> "LinKDE":
    """Fits on ``images [N, H, W, 3]`` and ``poses [N, 17, 3]`` mm.

    Features are computed ``chunk`` images at a time and only the ridge
    statistics are kept, so ``images`` may be a large host (numpy) array.

    Args:
      images: ``[N, H, W, 3]`` float RGB.
      poses: ``[N, 17, 3]`` mm.
      key: PRNG key (bandwidth sample, RFF draws).
      num_features: ``D``, image-side RFF count (memory ``D^2`` floats).
      num_pose_features: ``D_y``, pose-side RFF count (``output="kde"``).
      ridge: per-example ridge regulariser (> 0), see ``ridge_solve``.
      chunk: images per jitted feature/accumulation step.
      sigma: image-kernel bandwidth on HOG descriptors; None: ``sigma_scale``
        times the median heuristic over ``bandwidth_samples`` random images.
      pose_sigma: pose-kernel bandwidth in mm (``"kde"``); None: likewise
        from the poses.
      sigma_scale: multiplies the median-heuristic bandwidths.
      bandwidth_samples: examples the median heuristic compares.
      candidates: ``[M, 17, 3]`` mm poses for the KDE pre-image; None: the
        training poses.

    Returns:
      The fitted ``LinKDE``.

    Raises:
      ValueError: bad images/poses (shape, NaN), count mismatch, bad
        hyperparameters.
    """
    self._check_settings("fit")
    images = _check_images(images, "LinKDE.fit")
    poses = poses_lib.check_poses(poses, "LinKDE.fit: poses")
    if poses.ndim != 3:
      raise ValueError(
          f"LinKDE.fit: poses must be [N, 17, 3], got shape {poses.shape}.")
    if poses.shape[0] != images.shape[0]:
      raise ValueError(
          f"LinKDE.fit: got {images.shape[0]} images but {poses.shape[0]} "
          "poses; pass one pose per image.")
    chunk = _check_positive(chunk, "chunk", "LinKDE.fit", integer=True)
    bandwidth_samples = _check_positive(bandwidth_samples, "bandwidth_samples",
                                        "LinKDE.fit", integer=True)
    self._hog_dim(images, "fit")
    n = images.shape[0]
    k_sample, k_fit = jax.random.split(key)
    idx = np.asarray(_sample_rows(k_sample, n, min(n, bandwidth_samples)))
    if sigma is None:
      sigma = sigma_scale * median_bandwidth(
          self._descriptors_jit(images[idx]), max_samples=idx.size)
    if pose_sigma is None and self.output == "kde":
      pose_sigma = sigma_scale * median_bandwidth(
          poses[idx].reshape(-1, POSE_DIM), max_samples=idx.size)
    chunk = min(chunk, n)

    def batches() -> Iterator[dict]:
      # Every chunk has `chunk` rows (one compiled step): the last one starts
      # early and masks the rows already seen.
      for start in range(0, n, chunk):
        first = min(start, n - chunk)
        yield {"image": _rows(images, first, chunk),
               "pose": poses[first:first + chunk],
               "mask": np.arange(first, first + chunk) >= start}

    return self.fit_from_batches(
        batches(), k_fit, num_features=num_features,
        num_pose_features=num_pose_features, ridge=ridge, sigma=sigma,
        pose_sigma=pose_sigma,
        candidates=poses if candidates is None else candidates)

  def fit_from_batches(self, batches: Iterable[Mapping[str, Any]], key: Array,
                       *, num_features: int = 4096,
                       num_pose_features: int = 2048, ridge: float = 1e-5,
                       sigma: float | None = None,
                       pose_sigma: float | None = None,
                       sigma_scale: float = 1.0, bandwidth_samples: int = 1000,
                       candidates=None,
                       max_batches: int | None = None) -> "LinKDE":
    """Fits from an iterable of ``{"image": [B, H, W, 3], "pose": [B, 17, 3]}``.

    An optional ``"mask"`` ``[B]`` marks the real examples of padded batches
    (as in ``BlobSource.eval_batches``). Bandwidths left as None come from the
    median heuristic over (up to ``bandwidth_samples`` examples of) the first
    batch. All batches must share one image size; a constant batch size
    avoids recompiles.

    Args:
      batches: the iterable (consumed once; e.g. a generator).
      key: PRNG key for the RFF draws.
      candidates: ``[M, 17, 3]`` mm poses for the KDE pre-image; None: every
        (unmasked) pose seen in the batches, kept on the host.
      max_batches: stop after this many batches (for endless iterators).
      num_features, num_pose_features, ridge, sigma, pose_sigma, sigma_scale,
        bandwidth_samples: as for ``fit``.

    Returns:
      The fitted ``LinKDE``.

    Raises:
      ValueError: no batches, a batch without "image"/"pose", bad images or
        poses, mismatched counts or image sizes, bad hyperparameters.
    """
    fn = "LinKDE.fit_from_batches"
    self._check_settings("fit_from_batches")
    num_features = _check_positive(num_features, "num_features", fn,
                                   integer=True)
    num_pose_features = _check_positive(num_pose_features, "num_pose_features",
                                        fn, integer=True)
    ridge = _check_positive(ridge, "ridge", fn)
    sigma_scale = _check_positive(sigma_scale, "sigma_scale", fn)
    if max_batches is not None:
      max_batches = _check_positive(max_batches, "max_batches", fn, integer=True)
    if candidates is not None:
      candidates = poses_lib.check_poses(candidates, f"{fn}: candidates")
      if candidates.ndim != 3 or candidates.shape[0] == 0:
        raise ValueError(
            f"{fn}: candidates must be a non-empty [M, 17, 3] pose set, got "
            f"shape {candidates.shape}.")
    k_x, k_y = jax.random.split(key)
    model, stats, seen, image_hw = self, None, [], None
    progress = progress_lib.Progress("LinKDE fit: HOG features", max_batches,
                                     "batches")
    for i, batch in enumerate(batches):
      if max_batches is not None and i >= max_batches:
        break
      progress.update()
      if "image" not in batch or "pose" not in batch:
        raise ValueError(
            f"{fn}: batch {i} has keys {sorted(batch)}; each batch needs "
            "'image' [B, H, W, 3] and 'pose' [B, 17, 3] (and optionally "
            "'mask' [B]).")
      images = _check_images(batch["image"], f"{fn} (batch {i})")
      poses = poses_lib.check_poses(batch["pose"], f"{fn}: batch {i} poses")
      if poses.ndim != 3 or poses.shape[0] != images.shape[0]:
        raise ValueError(
            f"{fn}: batch {i} has {images.shape[0]} images but poses of shape "
            f"{poses.shape}; give one [17, 3] pose per image.")
      mask = np.asarray(batch.get("mask", np.ones(images.shape[0], bool)),
                        bool).reshape(-1)
      if mask.shape[0] != images.shape[0]:
        raise ValueError(
            f"{fn}: batch {i} mask has {mask.shape[0]} entries for "
            f"{images.shape[0]} images.")
      if stats is None:
        image_hw = tuple(images.shape[1:3])
        dim_in = model._hog_dim(images, "fit_from_batches")
        real = np.flatnonzero(mask)[:bandwidth_samples]
        if sigma is None:
          sigma = sigma_scale * median_bandwidth(
              model._descriptors_jit(images[real]),
              max_samples=bandwidth_samples)
        image_rff = rff_params(k_x, dim_in, num_features, sigma)
        pose_rff = None
        if model.output == "kde":
          if pose_sigma is None:
            pose_sigma = sigma_scale * median_bandwidth(
                np.asarray(poses)[real].reshape(-1, POSE_DIM),
                max_samples=bandwidth_samples)
          pose_rff = rff_params(k_y, POSE_DIM, num_pose_features, pose_sigma)
        model = model.replace(image_rff=image_rff, pose_rff=pose_rff)
        dim_y = POSE_DIM if model.output == "linear" else num_pose_features
        stats = ridge_init(num_features, dim_y)
      elif tuple(images.shape[1:3]) != image_hw:
        raise ValueError(
            f"{fn}: batch {i} has {images.shape[1]}x{images.shape[2]} images, "
            f"the first had {image_hw[0]}x{image_hw[1]}; use one crop size.")
      stats = _accumulate(model, stats, jnp.asarray(images),
                          jnp.asarray(poses, jnp.float32), jnp.asarray(mask))
      if candidates is None and model.output == "kde":
        seen.append(np.asarray(poses, np.float32)[mask])
    if stats is None:
      raise ValueError(f"{fn}: the batch iterable was empty; nothing to fit.")
    progress.done()
    if float(stats.count) < 1:
      raise ValueError(f"{fn}: every example was masked out; nothing to fit.")
    weights, bias = ridge_solve(stats, ridge)
    model = model.replace(weights=weights, bias=bias)
    if model.output == "kde":
      cands = np.concatenate(seen) if candidates is None else candidates
      cands = np.asarray(cands, np.float32).reshape(-1, POSE_DIM)
      model = model.replace(candidates=jnp.asarray(cands),
                            candidate_table=_embed_poses(model, cands))
    return model

  # -- prediction ------------------------------------------------------------

  def predict(self, images, *, chunk: int = 256) -> Array:
    """Poses ``[N, 17, 3]`` mm for images ``[N, H, W, 3]`` (jitted, chunked).

    Raises:
      ValueError: not fitted, bad images, or an image size other than the
        one fitted.
    """
    if not self.is_fitted:
      raise ValueError(
          "LinKDE.predict: the model is not fitted; call model = "
          "model.fit(images, poses, key) (or fit_from_batches) first.")
    self._check_settings("predict")
    images = _check_images(images, "LinKDE.predict")
    dim = self._hog_dim(images, "predict")
    if dim != self.image_rff.w.shape[0]:
      raise ValueError(
          f"LinKDE.predict: {images.shape[1]}x{images.shape[2]} images give "
          f"{dim} HOG features but the model was fitted on "
          f"{self.image_rff.w.shape[0]}; use the crop size it was fitted on.")
    chunk = _check_positive(chunk, "chunk", "LinKDE.predict", integer=True)
    return _predict(self, jnp.asarray(images), min(chunk, images.shape[0]))

  def _predict_chunk(self, images: Array) -> Array:
    pred = jnp.matmul(self.features(images), self.weights,
                      precision=_HIGHEST) + self.bias
    if self.output == "linear":
      return pred
    table = self.candidate_table
    # Nearest embedding: argmin |pred - t|^2 = argmax pred.t - |t|^2 / 2.
    scores = (jnp.matmul(pred, table.T, precision=_HIGHEST) -
              0.5 * jnp.sum(table * table, -1))
    _, idx = jax.lax.top_k(scores, min(self.top_k, table.shape[0]))
    return jnp.mean(self.candidates[idx], axis=1)


@jax.jit
def _accumulate(model: LinKDE, stats: RidgeStats, images: Array, poses: Array,
                mask: Array) -> RidgeStats:
  return _ridge_update(stats, model.features(images), model.targets(poses),
                       mask)


@functools.partial(jax.jit, static_argnums=2)
def _predict(model: LinKDE, images: Array, chunk: int) -> Array:
  n = images.shape[0]
  pad = (-n) % chunk
  images = jnp.concatenate([images, jnp.repeat(images[:1], pad, axis=0)])
  out = jax.lax.map(model._predict_chunk,
                    images.reshape((-1, chunk) + images.shape[1:]))
  return out.reshape(-1, poses_lib.NUM_JOINTS, 3)[:n]


def _embed_poses(model: LinKDE, flat: np.ndarray, chunk: int = 8192) -> Array:
  """RFF embeddings ``[M, D_y]`` of flat poses ``[M, 51]`` mm, chunked."""
  m = flat.shape[0]
  chunk = min(chunk, m)
  padded = _pad_to(flat, -(-m // chunk) * chunk).reshape(-1, chunk, POSE_DIM)
  return _embed_chunks(model.pose_rff, jnp.asarray(padded), m)


@functools.partial(jax.jit, static_argnums=2)
def _embed_chunks(params: RFFParams, chunks: Array, m: int) -> Array:
  table = jax.lax.map(lambda c: _rff(c, params), chunks)
  return table.reshape(-1, table.shape[-1])[:m]
