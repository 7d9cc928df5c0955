"""StructNet networks (paper section 3, Figure 1) as Flax modules.

The modules are applied functionally: ``variables = model.init(...)`` once, then
``model.apply(variables, ..., method=...)`` inside pure, jitted functions.

Network (defaults from the paper; every size comes from the config):

  image x [B, 112, 112, 3] float32 in [0, 1]
    conv1 9x9x32 -> maxpool 2 -> ReLU
    conv2 5x5x64 -> maxpool 2 -> ReLU            = conv2(x)  (middle features)
    conv3 5x5x64 -> maxpool 2 -> linear          = conv3(x)  (top features)
  h1 = ReLU(W1 flat(conv2(x)) + b1)   [B, 1024]  (dropout in training)
  h2 = ReLU(W2 flat(conv3(x)) + b2)   [B, 1024]  (dropout in training)
  h3 = ReLU(W3 [h1; h2] + b3)         [B, 1024]
  f_I(x) = h4 = ReLU(W4 h3 + b4)      [B, D]     image embedding (Eq. 2)
  f_P(x) = tanh(W7 h3 + b7)           [B, 51]    auxiliary pose head (Eq. 10)
  detect(x) = W8 h3 + b8              [B, 17, G*G] joint-detection logits (stage
                                                 1 only, [18]; detection_grid G > 0)
  pose y [N, 17, 3] mm
  f_J(y) = h6(h5(y_normalised))       [N, D]     pose embedding (Eq. 3)
  f_S(x, y) = <f_I(x), f_J(y)>                    score (Eq. 4)

Pose normalisation happens inside the network and is inverted on output: every
public method takes and returns root-relative poses in millimetres
``[..., 17, 3]``. A pose enters the network as ``(y - mean) / scale`` flattened
to 51 numbers, where ``mean [17, 3]`` and ``scale []`` (mm) live in the
non-trained variable collection ``"pose_stats"`` (see ``pose_stats_from``);
``scale`` is chosen so that the training poses lie inside the tanh range of the
auxiliary head, which predicts the normalised pose.

Pose-embedding variants (paper Table 3), ``config.pose_embedding``:
  "two_layer"         f_J = h6(h5(y))                 (the paper's choice)
  "one_layer"         f_J = h5(y)
  "one_layer_random"  f_J = h5(y) with fixed random W5, b5 (collection "fixed")
  "raw"               f_J = y (51 numbers); the image embedding is then 51-d
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from structnet_jax import poses as poses_lib

POSE_EMBEDDINGS = ("two_layer", "one_layer", "one_layer_random", "raw")
CONV_IMPLS = ("auto", "im2col", "xla")
POSE_DIM = poses_lib.NUM_JOINTS * 3

Array = jax.Array


def pose_stats_from(poses_mm, headroom: float = 0.9) -> dict[str, np.ndarray]:
  """Normalisation statistics of a pose set, for the ``"pose_stats"`` collection.

  Args:
    poses_mm: ``[N, 17, 3]`` root-relative poses in millimetres.
    headroom: the largest normalised coordinate of the set, in (0, 1), so that
      the tanh pose head can reach every training pose.

  Returns:
    ``{"mean": [17, 3] mm, "scale": [] mm}`` as float32 numpy arrays.
  """
  arr = poses_lib.check_poses(poses_mm, "pose set").astype(np.float64)
  if arr.ndim != 3 or arr.shape[0] == 0:
    raise ValueError(
        f"pose set must be a non-empty [N, 17, 3] array, got shape {arr.shape}.")
  mean = arr.mean(axis=0)
  scale = float(np.abs(arr - mean).max()) / headroom
  scale = max(scale, 1.0)
  return {"mean": mean.astype(np.float32), "scale": np.float32(scale)}


def max_pool_2x2(x: Array) -> Array:
  """2x2 max-pooling, stride 2, VALID: ``[B, H, W, C] -> [B, H//2, W//2, C]``.

  Written as a reshape and a max over the two window axes rather than
  ``lax.reduce_window``: the same forward values, but its gradient is an
  element-wise mask instead of XLA's ``select_and_scatter``, which the CPU
  backend runs as a slow scalar loop (a third of a training step of the
  default network; benchmarks/bench_core.py). Odd trailing rows/columns are
  dropped, as VALID pooling does. Ties share the gradient (a measure-zero
  event for real-valued inputs).
  """
  b, h, w, c = x.shape
  x = x[:, :h // 2 * 2, :w // 2 * 2]
  return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def resolve_conv_impl(impl: str) -> str:
  """``"auto"`` -> ``"xla"`` (every backend); else unchanged.

  On CPU, XLA's convolutions are fast only when compiled with the YNNPACK
  fusions of ``structnet_jax/xla_cpu.py``, which every jit of the project
  that runs the network adds; a jit of your own should go through
  ``xla_cpu.network_jit`` too (or use ``conv_impl="im2col"``, 3.7x slower
  with the fusions but 1.9x faster without them on the default network).
  """
  if impl not in CONV_IMPLS:
    raise ValueError(f"unknown conv impl {impl!r}; use one of {CONV_IMPLS}.")
  if impl == "auto":
    return "xla"
  return impl


def _conv_im2col(x: Array, kernel: Array) -> Array:
  """VALID stride-1 convolution as explicit patches and one matrix product.

  ``x [B, H, W, C]``, ``kernel [k, k, C, F]`` -> ``[B, H-k+1, W-k+1, F]``.
  The patches are gathered with ``k*k`` static slices (not
  ``lax.conv_general_dilated_patches``, which is itself a convolution and as
  slow as the one it replaces). For thin inputs (``C < 8``, the RGB layer) the
  patches are laid out channel-major, ``[B, C*k*k, H'*W']``, so that every
  copy and the product run along whole image rows; for wide inputs they are
  ``[B, H', W', k*k*C]`` with the channels innermost.
  """
  k, _, c, f = kernel.shape
  b, h, w, _ = x.shape
  ho, wo = h - k + 1, w - k + 1
  offsets = [(i, j) for i in range(k) for j in range(k)]
  if c < 8:
    xp = jnp.transpose(x, (0, 3, 1, 2))                          # [B, C, H, W]
    patches = jnp.stack([xp[:, :, i:i + ho, j:j + wo] for i, j in offsets],
                        axis=2)                                  # [B, C, kk, H', W']
    wmat = jnp.transpose(kernel, (3, 2, 0, 1)).reshape(f, c, k * k)
    y = jnp.einsum("fcp,bcphw->bhwf", wmat, patches)
    return y
  patches = jnp.concatenate([x[:, i:i + ho, j:j + wo, :] for i, j in offsets],
                            axis=-1)                             # [B, H', W', kk*C]
  return jnp.einsum("bhwp,pf->bhwf", patches, kernel.reshape(k * k * c, f))


class Conv2D(nn.Module):
  """A 2-D convolution, stride 1, with a choice of lowering.

  ``impl="xla"`` uses ``lax.conv_general_dilated`` (cuDNN on GPU, the MXU on
  TPU, YNNPACK on CPU when compiled through ``xla_cpu.network_jit``);
  ``impl="im2col"`` builds the patches explicitly and multiplies them with
  the kernel in one matrix product, which XLA:CPU without the YNNPACK
  fusions runs about twice as fast as its own convolutions for these shapes
  (see benchmarks/bench_core.py); ``impl="auto"`` is xla. All compute the same function with the same parameters
  ``kernel [k, k, C_in, C_out]``, ``bias [C_out]``; ``padding`` "SAME" pads
  the input with zeros first.
  """
  features: int
  kernel_size: int
  padding: str = "VALID"
  impl: str = "auto"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel_size
    c_in = x.shape[-1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (k, k, c_in, self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,),
                      jnp.float32)
    impl = resolve_conv_impl(self.impl)
    if self.padding not in ("VALID", "SAME"):
      raise ValueError(f"conv padding must be 'VALID' or 'SAME', got "
                       f"{self.padding!r}.")
    if impl == "xla":
      y = jax.lax.conv_general_dilated(
          x, kernel, window_strides=(1, 1), padding=self.padding,
          dimension_numbers=("NHWC", "HWIO", "NHWC"))
    else:
      if self.padding == "SAME":
        lo, hi = (k - 1) // 2, k // 2
        x = jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
      y = _conv_im2col(x, kernel)
    return y + bias


class ConvTrunk(nn.Module):
  """Three conv + 2x2 max-pool blocks; ReLU after the first two, linear after the third.

  Returns the middle and top feature maps ``conv2 [B, H2, W2, C2]`` and
  ``conv3 [B, H3, W3, C3]``.
  """
  features: Sequence[int] = (32, 64, 64)
  kernel_sizes: Sequence[int] = (9, 5, 5)
  padding: str = "VALID"
  impl: str = "auto"

  @nn.compact
  def __call__(self, images: Array) -> tuple[Array, Array]:
    x = images
    maps = []
    for i, (f, k) in enumerate(zip(self.features, self.kernel_sizes)):
      if self.padding == "VALID" and min(x.shape[1:3]) < k + 1:
        raise ValueError(
            f"the {images.shape[1]}x{images.shape[2]} input is too small for "
            f"conv{i + 1} ({k}x{k}, VALID, then 2x2 pooling): its input is "
            f"{x.shape[1]}x{x.shape[2]}. Use a larger config.model.image_size "
            "or smaller kernels.")
      x = Conv2D(f, k, padding=self.padding, impl=self.impl, name=f"conv{i + 1}")(x)
      x = max_pool_2x2(x)
      if i < len(self.features) - 1:
        x = nn.relu(x)
      maps.append(x)
    return maps[-2], maps[-1]


class FixedDense(nn.Module):
  """A dense layer whose random weights are drawn once and never trained.

  The weights live in the ``"fixed"`` collection, so optimisers and weight
  decay (which act on ``"params"``) never see them.
  """
  features: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    fan_in = x.shape[-1]
    kernel = self.variable(
        "fixed", "kernel",
        lambda: nn.initializers.lecun_normal()(self.make_rng("params"),
                                               (fan_in, self.features)))
    bias = self.variable("fixed", "bias",
                         lambda: jnp.zeros((self.features,), jnp.float32))
    return x @ kernel.value + bias.value


class PoseEmbedding(nn.Module):
  """f_J: normalised pose ``[N, 51]`` -> pose embedding ``[N, D]``."""
  kind: str = "two_layer"
  hidden: int = 1024
  embed_dim: int = 1024

  @nn.compact
  def __call__(self, y: Array) -> Array:
    if self.kind == "raw":
      return y
    if self.kind == "one_layer_random":
      return nn.relu(FixedDense(self.embed_dim, name="h5")(y))
    if self.kind == "one_layer":
      return nn.relu(nn.Dense(self.embed_dim, name="h5")(y))
    if self.kind == "two_layer":
      h5 = nn.relu(nn.Dense(self.hidden, name="h5")(y))
      return nn.relu(nn.Dense(self.embed_dim, name="h6")(h5))
    raise ValueError(
        f"unknown pose embedding {self.kind!r}; use one of {POSE_EMBEDDINGS}.")


class StructNet(nn.Module):
  """The StructNet score network with its auxiliary pose head.

  Attributes mirror ``config.model`` (see ``from_config``).
  """
  conv_features: Sequence[int] = (32, 64, 64)
  conv_kernel_sizes: Sequence[int] = (9, 5, 5)
  conv_padding: str = "VALID"
  conv_impl: str = "auto"
  h1_width: int = 1024
  h2_width: int = 1024
  h3_width: int = 1024
  embed_dim: int = 1024
  pose_hidden: int = 1024
  pose_embedding: str = "two_layer"
  dropout_rate: float = 0.75
  detection_grid: int = 0  # G: stage 1's joint-detection head ([18]); 0 = none

  @classmethod
  def from_config(cls, model_config) -> "StructNet":
    """Builds the network from a ``config.model`` ConfigDict (or mapping)."""
    c = dict(model_config)
    if c.get("pose_embedding", "two_layer") not in POSE_EMBEDDINGS:
      raise ValueError(
          f"config.model.pose_embedding={c['pose_embedding']!r} is unknown; "
          f"use one of {POSE_EMBEDDINGS}.")
    if c.get("conv_impl", "auto") not in CONV_IMPLS:
      raise ValueError(f"config.model.conv_impl={c['conv_impl']!r} is unknown; "
                       f"use one of {CONV_IMPLS}.")
    fields = {f for f in cls.__dataclass_fields__ if f not in ("parent", "name")}
    unknown = set(c) - fields - {"image_size"}
    if unknown:
      raise ValueError(f"unknown config.model field(s) {sorted(unknown)}; "
                       f"known fields: {sorted(fields | {'image_size'})}.")
    c.pop("image_size", None)
    for key in ("conv_features", "conv_kernel_sizes"):
      if key in c:
        c[key] = tuple(c[key])
    return cls(**c)

  @property
  def image_embed_dim(self) -> int:
    return POSE_DIM if self.pose_embedding == "raw" else self.embed_dim

  def setup(self):
    if len(self.conv_features) != len(self.conv_kernel_sizes) or len(
        self.conv_features) < 2:
      raise ValueError(
          "config.model.conv_features and conv_kernel_sizes must have the same "
          "length (>= 2: the middle and top maps feed h1 and h2).")
    self.trunk = ConvTrunk(self.conv_features, self.conv_kernel_sizes,
                           self.conv_padding, self.conv_impl)
    self.h1 = nn.Dense(self.h1_width)
    self.h2 = nn.Dense(self.h2_width)
    self.h3 = nn.Dense(self.h3_width)
    self.h4 = nn.Dense(self.image_embed_dim)
    self.head = nn.Dense(POSE_DIM)  # W7, b7
    if self.detection_grid < 0:
      raise ValueError(f"config.model.detection_grid={self.detection_grid} "
                       "must be >= 0 (0: no detection head).")
    if self.detection_grid:
      self.detect = nn.Dense(poses_lib.NUM_JOINTS * self.detection_grid**2)
    self.pose_embed = PoseEmbedding(self.pose_embedding, self.pose_hidden,
                                    self.embed_dim)
    self.dropout = nn.Dropout(self.dropout_rate)
    self.pose_mean = self.variable(
        "pose_stats", "mean",
        lambda: jnp.zeros((poses_lib.NUM_JOINTS, 3), jnp.float32))
    self.pose_scale = self.variable("pose_stats", "scale",
                                    lambda: jnp.array(1000.0, jnp.float32))

  # --- pose normalisation -------------------------------------------------
  def normalise_pose(self, poses_mm: Array) -> Array:
    """``[..., 17, 3]`` mm -> ``[..., 51]`` normalised network input."""
    y = (poses_mm - self.pose_mean.value) / self.pose_scale.value
    return y.reshape(*y.shape[:-2], POSE_DIM)

  def denormalise_pose(self, y: Array) -> Array:
    """``[..., 51]`` normalised -> ``[..., 17, 3]`` mm."""
    y = y.reshape(*y.shape[:-1], poses_lib.NUM_JOINTS, 3)
    return y * self.pose_scale.value + self.pose_mean.value

  # --- image side ---------------------------------------------------------
  def features(self, images: Array) -> tuple[Array, Array]:
    """Conv trunk: images ``[B, H, W, 3]`` -> flattened (conv2 ``[B, F2]``, conv3 ``[B, F3]``)."""
    c2, c3 = self.trunk(images)
    return c2.reshape(c2.shape[0], -1), c3.reshape(c3.shape[0], -1)

  def hidden(self, c2: Array, c3: Array, train: bool = False) -> Array:
    """h3 ``[B, h3_width]`` from flattened conv features (dropout on h1, h2 in training)."""
    return self.hidden_from_preactivations(*self.preactivations(c2, c3),
                                           train=train)

  def preactivations(self, c2: Array, c3: Array) -> tuple[Array, Array]:
    """``(W1 c2 + b1 [B, h1_width], W2 c3 + b2 [B, h2_width])``.

    Affine in the parameters of h1 and h2: applied with a gradient tree as
    ``params`` it gives the derivative of the pre-activations along it.
    """
    return self.h1(c2), self.h2(c3)

  def hidden_from_preactivations(self, a1: Array, a2: Array,
                                 train: bool = False) -> Array:
    """h3 ``[B, h3_width]`` from the pre-activations of h1 and h2.

    The dropout masks are drawn in the same order as in ``hidden``, so with
    the same ``"dropout"`` key both give the same h3.
    """
    h1 = self.dropout(nn.relu(a1), deterministic=not train)
    h2 = self.dropout(nn.relu(a2), deterministic=not train)
    return nn.relu(self.h3(jnp.concatenate([h1, h2], axis=-1)))

  def embed_hidden(self, h3: Array) -> Array:
    """f_I from h3: ``[B, h3_width]`` -> ``[B, D]``."""
    return nn.relu(self.h4(h3))

  def predict_hidden(self, h3: Array) -> Array:
    """f_P from h3: ``[B, h3_width]`` -> normalised pose ``[B, 51]`` in (-1, 1)."""
    return jnp.tanh(self.head(h3))

  def detect_hidden(self, h3: Array) -> Array:
    """Joint-detection logits from h3: ``[B, h3_width]`` -> ``[B, 17, G * G]``
    (``structnet_jax/detection.py``); needs ``detection_grid > 0``."""
    if not self.detection_grid:
      raise ValueError("this network has no detection head; set "
                       "config.model.detection_grid > 0.")
    return self.detect(h3).reshape(h3.shape[0], poses_lib.NUM_JOINTS,
                                   self.detection_grid**2)

  def embed_image(self, images: Array, train: bool = False) -> Array:
    """f_I(x): images ``[B, H, W, 3]`` -> image embeddings ``[B, D]``."""
    return self.embed_hidden(self.hidden(*self.features(images), train=train))

  def predict_pose(self, images: Array, train: bool = False) -> Array:
    """StructNet-Pred: images ``[B, H, W, 3]`` -> poses ``[B, 17, 3]`` mm."""
    h3 = self.hidden(*self.features(images), train=train)
    return self.denormalise_pose(self.predict_hidden(h3))

  # --- pose side ----------------------------------------------------------
  def embed_pose(self, poses_mm: Array) -> Array:
    """f_J(y): poses ``[N, 17, 3]`` mm -> pose embeddings ``[N, D]``."""
    return self.pose_embed(self.normalise_pose(poses_mm))

  def __call__(self, images: Array, poses_mm: Array, train: bool = False):
    """Scores of matching pairs and the pose head (used for ``init``).

    Returns ``(scores [B], predicted poses [B, 17, 3] mm)`` for images
    ``[B, H, W, 3]`` and poses ``[B, 17, 3]`` mm.
    """
    h3 = self.hidden(*self.features(images), train=train)
    scores = jnp.sum(self.embed_hidden(h3) * self.embed_pose(poses_mm), axis=-1)
    if self.detection_grid:  # creates W8, b8 at init
      self.detect_hidden(h3)
    return scores, self.denormalise_pose(self.predict_hidden(h3))


@functools.partial(jax.jit, static_argnames=("model", "image_size"))
def _init(model: StructNet, key: Array, image_size: int) -> dict[str, Any]:
  """``model.init`` on zero inputs, compiled once per (equal) model and size:
  a run initialises the same network several times (the stage-1 state, the
  templates its checkpoints are restored into, the plan's probe, and with
  ``stage2.reinit_fc`` stage 2's fresh FC layers)."""
  images = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  poses = jnp.zeros((1, poses_lib.NUM_JOINTS, 3), jnp.float32)
  return model.init({"params": key}, images, poses, train=False)


def init_variables(model: StructNet, key: Array, image_size: int,
                   pose_stats: dict[str, Any] | None = None) -> dict[str, Any]:
  """Initialises all variable collections of ``model``.

  Args:
    model: the network.
    key: PRNG key.
    image_size: side of the square network input (112 in the paper).
    pose_stats: ``pose_stats_from(training poses)``; defaults to mean 0 and
      scale 1000 mm.

  Returns:
    ``{"params": ..., "pose_stats": {"mean", "scale"}, ["fixed": ...]}``.
  """
  variables = dict(_init(model, key, image_size))
  if pose_stats is not None:
    variables["pose_stats"] = {
        "mean": jnp.asarray(pose_stats["mean"], jnp.float32),
        "scale": jnp.asarray(pose_stats["scale"], jnp.float32),
    }
  return variables


def is_trunk_path(path: tuple[str, ...]) -> bool:
  """Whether a parameter path (tuple of keys) belongs to the conv trunk."""
  return len(path) > 0 and path[0] == "trunk"


def weight_inner(a, b) -> Array:
  """``sum_j <A_j, B_j>_F`` over the fully-connected kernels of two param trees.

  The trees must have the same structure (e.g. params and their gradient);
  biases and the conv trunk are not included. ``weight_inner(p, p)`` is
  ``weight_l2(p)``.
  """
  total = jnp.zeros((), jnp.float32)
  leaves_b = jax.tree_util.tree_leaves(b)
  flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
  if len(flat_a) != len(leaves_b):
    raise ValueError("weight_inner needs two parameter trees of the same "
                     "structure.")
  for (path, leaf_a), leaf_b in zip(flat_a, leaves_b):
    keys = tuple(getattr(p, "key", str(p)) for p in path)
    if keys[-1] == "kernel" and not is_trunk_path(keys):
      total = total + jnp.sum(leaf_a * leaf_b)
  return total


def fc_kernel_mask(params) -> Any:
  """A pytree of bools like ``params``: True at the fully-connected kernels
  that ``weight_l2`` counts (W1..W7, and W8 of the detection head), False at
  biases and the conv trunk."""
  def leaf(path, _):
    keys = tuple(getattr(p, "key", str(p)) for p in path)
    return keys[-1] == "kernel" and not is_trunk_path(keys)
  return jax.tree_util.tree_map_with_path(leaf, params)


def weight_l2(params) -> Array:
  """Sum of squared Frobenius norms of the fully-connected weight matrices.

  Eq. 12's ``sum_j ||W_j||_F^2`` over W1..W7 (kernels of h1..h6 and the pose
  head; W8 of the detection head when there is one); biases and the conv
  trunk are not included.
  """
  return weight_inner(params, params)
