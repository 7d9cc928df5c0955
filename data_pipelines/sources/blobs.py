"""Generated image-pose pairs whose pose can be read off the image ("blobs").

A small, fully synthetic source for tests, smoke runs and accelerators with no
data on them: poses come from a few base postures ("actions") deformed along
random smooth directions and turned to any heading about the vertical axis;
the image draws each joint as a Gaussian blob at its orthographic projection,
its red/green balance coding the joint's depth and its blue a fixed per-joint
shade. Everything is generated in JAX from a seed, on whatever device JAX has.

Poses are root-relative, camera frame (x right, y down, z forward), mm,
``[..., 17, 3]``; images are float32 ``[..., S, S, 3]`` in [0, 1].
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np

from data_pipelines.sources import augment

ACTIONS = ("standing", "reaching", "crouching")

# A standing person, camera frame (y down), mm, root-relative.
_STANDING = np.array([
    [0, 0, 0], [-130, 0, 0], [-130, 440, 20], [-130, 880, 0],
    [130, 0, 0], [130, 440, 20], [130, 880, 0],
    [0, -230, 0], [0, -480, 0], [0, -580, -40], [0, -700, 0],
    [170, -460, 0], [200, -200, 0], [210, 40, 0],
    [-170, -460, 0], [-200, -200, 0], [-210, 40, 0]], np.float32)


def _base_poses() -> np.ndarray:
  reaching = _STANDING.copy()
  reaching[[12, 13]] = [[190, -700, -100], [200, -940, -150]]
  reaching[[15, 16]] = [[-330, -420, -120], [-480, -400, -260]]
  crouching = _STANDING.copy()
  crouching[[2, 5]] += [0, -120, -300]
  crouching[[3, 6]] += [0, -300, 0]
  crouching[7:] += [0, 150, -120]
  crouching[[13, 16]] += [0, -100, -250]
  return np.stack([_STANDING, reaching, crouching])


@dataclasses.dataclass(frozen=True)
class BlobConfig:
  image_size: int = 128
  num_deformations: int = 4
  deformation_mm: float = 120.0
  blob_sigma: float = 0.035   # blob std as a fraction of the image side
  depth_range_mm: float = 1200.0
  max_yaw: float = float(np.pi)  # headings drawn from [-max_yaw, max_yaw]
  seed: int = 0


def _yaw(angle):
  c, s = jnp.cos(angle), jnp.sin(angle)
  z, o = jnp.zeros_like(c), jnp.ones_like(c)
  return jnp.stack([jnp.stack([c, z, s], -1), jnp.stack([z, o, z], -1),
                    jnp.stack([-s, z, c], -1)], -2)


def sample_poses(key: jax.Array, num: int, cfg: BlobConfig = BlobConfig()):
  """Random poses and their action ids.

  Returns:
    ``(poses [num, 17, 3] mm float32, actions [num] int32)``.
  """
  base = jnp.asarray(_base_poses())
  basis = jax.random.normal(jax.random.PRNGKey(cfg.seed),
                            (len(ACTIONS), cfg.num_deformations, 17, 3))
  basis = basis.at[:, :, 0].set(0.0) * cfg.deformation_mm
  k_act, k_lat, k_yaw = jax.random.split(key, 3)
  actions = jax.random.randint(k_act, (num,), 0, len(ACTIONS))
  latent = jax.random.uniform(k_lat, (num, cfg.num_deformations), minval=-1.0,
                              maxval=1.0)
  poses = base[actions] + jnp.einsum("nk,nkjc->njc", latent, basis[actions])
  yaw = jax.random.uniform(k_yaw, (num,), minval=-cfg.max_yaw,
                           maxval=cfg.max_yaw)
  poses = jnp.einsum("nij,nkj->nki", _yaw(yaw), poses)
  return poses - poses[:, :1], actions.astype(jnp.int32)


def render(poses: jax.Array, cfg: BlobConfig = BlobConfig()) -> jax.Array:
  """Blob images ``[B, S, S, 3]`` in [0, 1] of poses ``[B, 17, 3]`` mm."""
  s = cfg.image_size
  half_extent = 1100.0
  grid = (jnp.arange(s, dtype=jnp.float32) + 0.5) / s * 2 - 1  # [-1, 1]
  xy = poses[..., :2] / half_extent  # [B, 17, 2]
  depth = jnp.clip(poses[..., 2] / cfg.depth_range_mm, -0.5, 0.5)
  shade = jnp.linspace(0.15, 1.0, 17)
  colours = jnp.stack([0.5 + depth, 0.5 - depth,
                       jnp.broadcast_to(shade, depth.shape)], -1)  # [B, 17, 3]
  sig = 2 * cfg.blob_sigma
  gx = jnp.exp(-0.5 * ((grid[None, None, :] - xy[..., 0:1]) / sig) ** 2)
  gy = jnp.exp(-0.5 * ((grid[None, None, :] - xy[..., 1:2]) / sig) ** 2)
  weight = gy[:, :, :, None] * gx[:, :, None, :]  # [B, 17, S, S]
  # Nearer joints (smaller z) are drawn over farther ones.
  near = jnp.exp(-2.0 * depth)[..., None, None] * weight
  norm = jnp.sum(near, axis=1) + 1e-6
  colour = jnp.einsum("bjyx,bjc->byxc", near, colours) / norm[..., None]
  alpha = jnp.clip(jnp.max(weight, axis=1), 0, 1)[..., None]
  return alpha * colour + (1 - alpha) * 0.1


@dataclasses.dataclass
class BlobSource:
  """Train/test image-pose pairs and the pose space, generated from a seed.

  Attributes:
    pose_space: ``[N, 17, 3]`` mm, the candidate poses Y (the training poses).
    train_poses / train_actions: the training examples (``train_poses`` is the
      pose space itself, as in the paper's protocol).
    test_poses / test_actions: fresh poses from the same generator.
  """
  cfg: BlobConfig
  pose_space: np.ndarray
  train_actions: np.ndarray
  test_poses: np.ndarray
  test_actions: np.ndarray
  eigvals: np.ndarray
  eigvecs: np.ndarray
  crop: int

  @classmethod
  def create(cls, num_train: int, num_test: int, image_size: int = 128,
             crop: int = 112, seed: int = 0, **blob_options) -> "BlobSource":
    """Generates the poses; ``blob_options`` are ``BlobConfig`` fields."""
    cfg = BlobConfig(image_size=image_size, seed=seed, **blob_options)
    k_train, k_test = jax.random.split(jax.random.PRNGKey(seed + 1))
    train, train_act = sample_poses(k_train, num_train, cfg)
    test, test_act = sample_poses(k_test, num_test, cfg)
    sample = np.asarray(render(train[:min(256, num_train)], cfg))
    vals, vecs = augment.pca_basis(augment.rgb_covariance(sample))
    return cls(cfg, np.asarray(train), np.asarray(train_act), np.asarray(test),
               np.asarray(test_act), vals, vecs, crop)

  @property
  def train_poses(self) -> np.ndarray:
    return self.pose_space

  def num_examples(self, split: str = "test") -> int:
    """Examples ``eval_batches(..., split)`` yields."""
    return len(self.test_poses if split == "test" else self.pose_space)

  def action_names(self, ids) -> list[str]:
    return [ACTIONS[int(i)] for i in ids]

  def train_batch(self, step: int, batch_size: int, seed: int = 0):
    """The augmented training batch of ``step`` (a pure function of the step).

    Returns ``{"image": [B, crop, crop, 3] float32, "pose": [B, 17, 3] mm}``.
    """
    return _train_batch(jax.random.fold_in(jax.random.PRNGKey(seed), step),
                        jnp.asarray(self.pose_space), batch_size, self.cfg,
                        self.crop, jnp.asarray(self.eigvals),
                        jnp.asarray(self.eigvecs))

  def eval_batches(self, batch_size: int, split: str = "test") -> Iterator[dict]:
    """Centre-cropped batches covering every example once; the last batch is
    padded and ``mask`` marks the real examples."""
    poses = self.test_poses if split == "test" else self.pose_space
    actions = self.test_actions if split == "test" else self.train_actions
    n = len(poses)
    for start in range(0, n, batch_size):
      idx = np.arange(start, start + batch_size)
      mask = idx < n
      idx = np.minimum(idx, n - 1)
      images = _eval_images(jnp.asarray(poses[idx]), self.cfg, self.crop)
      yield {"image": images, "pose": poses[idx], "mask": mask,
             "action": np.asarray(self.action_names(actions[idx]))}


@jax.jit(static_argnames=("batch_size", "cfg", "crop"))
def _train_batch(key, pose_space, batch_size, cfg, crop, eigvals, eigvecs):
  k_idx, k_aug = jax.random.split(key)
  idx = jax.random.randint(k_idx, (batch_size,), 0, pose_space.shape[0])
  poses = pose_space[idx]
  images = augment.augment(k_aug, render(poses, cfg), crop, eigvals, eigvecs)
  return {"image": images, "pose": poses}


@jax.jit(static_argnames=("cfg", "crop"))
def _eval_images(poses, cfg, crop):
  return augment.center_crop(render(poses, cfg), crop)
