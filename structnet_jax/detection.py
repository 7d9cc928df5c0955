"""Body-joint detection: the second task of the paper's stage-1 network.

Section 5.3 initialises the conv layers with "the multi-task framework in
[18]" (Li & Chan, ACCV 2014): pose regression *plus* body-joint detection,
where a detector says, for every joint and every local window of the image,
whether the window holds that joint. Here the windows are the cells of a
``G x G`` grid over the network's input crop, and the detector is one sigmoid
per (joint, cell) on h3, the representation the regression head also reads
(``models.StructNet.detect_hidden``), so both tasks train the shared layers
and the conv trunk.

Coordinates are the crop's continuous pixel frame of ``pose_2d`` (``x`` =
column, ``y`` = row; ``floor(pose_2d)`` is the pixel that holds the joint),
after the random translation of the training augmentation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def joint_cells(pose_2d: Array, crop: int, grid: int) -> Array:
  """One-hot targets of the detection task.

  Args:
    pose_2d: ``[..., J, 2]`` joints ``(x, y)`` in the crop's pixels.
    crop: side of the network input (pixels).
    grid: cells per side, ``G``.

  Returns:
    ``[..., J, G * G]`` float32: 1 at the cell (row-major, ``row * G + col``)
    that holds the joint, 0 elsewhere; all zeros for a joint outside the crop
    (its windows hold nothing).
  """
  cell = jnp.floor(pose_2d * (grid / crop)).astype(jnp.int32)  # [..., J, 2]
  inside = jnp.all((cell >= 0) & (cell < grid), axis=-1)       # [..., J]
  index = cell[..., 1] * grid + cell[..., 0]
  onehot = jax.nn.one_hot(index, grid * grid, dtype=jnp.float32)
  return onehot * inside[..., None]


def detection_loss(logits: Array, targets: Array) -> Array:
  """Binary cross-entropy of every (joint, window) detector.

  Args:
    logits: ``[B, J, G * G]`` detector outputs before the sigmoid.
    targets: ``[B, J, G * G]`` in {0, 1} (``joint_cells``).

  Returns:
    ``[B]``: per example, the cross-entropy summed over the windows and
    averaged over the joints.
  """
  # -log sigmoid(z) for a positive, -log(1 - sigmoid(z)) for a negative.
  bce = (jax.nn.softplus(logits) - targets * logits)
  return jnp.mean(jnp.sum(bce, axis=-1), axis=-1)
