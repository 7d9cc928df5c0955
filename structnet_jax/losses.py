"""The costs of paper sections 3.4-3.5: margin, most-violated pose, Eqs. 6, 11.

``train.max_margin_cost`` sums them into Eq. 12 over a batch: the mean of
Eq. 6 plus ``loss.pose_weight`` (lambda) times the mean of Eq. 11. Eq. 12's
weight term ``alpha sum_j ||W_j||_F^2`` (alpha = ``loss.weight_decay``) is in
that cost for the line search, adam and momentum; adamw and rmsprop (the
default config's optimiser is adamw) apply it as decoupled weight decay
instead (``train.l2_in_cost``, ``train.make_optimizer``).

All poses are millimetres ``[..., 17, 3]``; the margin is expressed in score
units as ``Delta = MPJPE / margin_unit_mm`` (Eq. 8 with a unit conversion), so
``margin_unit_mm = 100`` asks the score of the true pose to beat a pose 100 mm
away (MPJPE) by 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from structnet_jax import metrics

Array = jax.Array


def margins(poses: Array, candidates: Array, margin_unit_mm: float) -> Array:
  """Delta(y, y') of Eq. 8 between each pose and each candidate.

  Args:
    poses: ground-truth poses ``[B, 17, 3]`` mm.
    candidates: candidate poses ``[M, 17, 3]`` mm.
    margin_unit_mm: the MPJPE (mm) that counts as a margin of 1.

  Returns:
    ``[B, M]`` non-negative margins in score units.
  """
  return metrics.pairwise_mpjpe(poses, candidates) / margin_unit_mm


def most_violated(scores: Array, margin: Array) -> Array:
  """Eq. 7: index of the candidate maximising ``score + Delta`` per example.

  Args:
    scores: ``[B, M]`` scores f_S(x, y') of each image against each candidate.
    margin: ``[B, M]`` margins Delta(y, y').

  Returns:
    ``[B] int32`` indices into the candidates (first maximiser on ties).
  """
  return jnp.argmax(scores + margin, axis=-1).astype(jnp.int32)


def max_margin_loss(score_true: Array, score_violated: Array,
                    margin_violated: Array) -> Array:
  """Eq. 6: ``max(0, f_S(x, y_hat) + Delta(y_hat, y) - f_S(x, y))``, per example ``[B]``."""
  return jax.nn.relu(score_violated + margin_violated - score_true)


def pose_regression_loss(predicted: Array, target: Array) -> Array:
  """Eq. 11: squared error summed over the 51 normalised coordinates, ``[B]``.

  Args:
    predicted: ``[B, 51]`` output of the tanh pose head.
    target: ``[B, 51]`` normalised ground-truth pose.
  """
  return jnp.sum(jnp.square(predicted - target), axis=-1)
