"""The per-batch candidate set of Algorithm 1 and its working set of violated poses.

The pose space Y is a fixed ``[N, 17, 3]`` array (all training poses). The
working set V is kept as violation counts over Y's indices, ``[N] int32``,
so that it has a fixed shape under jit and is checkpointed with the train state.

Each mini-batch's candidate set is ``Y_B = UniformSample(Y, C) ∪
KMostFrequent(V, K)``, returned as ``C + K`` indices into Y (a pose drawn twice
is harmless: the most-violated pose is an argmax).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def init_counts(num_poses: int) -> Array:
  """An empty working set: zero violation counts ``[num_poses] int32``."""
  if num_poses <= 0:
    raise ValueError(
        f"the pose space is empty (num_poses={num_poses}); the candidate set "
        "needs at least one training pose.")
  return jnp.zeros((num_poses,), jnp.int32)


def candidate_indices(key: Array, counts: Array, num_uniform: int,
                      num_frequent: int) -> Array:
  """Indices of this batch's candidate set.

  Args:
    key: PRNG key for the uniform sample.
    counts: ``[N] int32`` violation counts (the working set V).
    num_uniform: C, poses drawn uniformly (with replacement) from Y.
    num_frequent: K, the most frequently violated poses so far (ties broken
      towards lower indices); clipped to N.

  Returns:
    ``[C + min(K, N)] int32`` indices into the pose space.
  """
  num_poses = counts.shape[0]
  uniform = jax.random.randint(key, (num_uniform,), 0, num_poses, jnp.int32)
  k = min(num_frequent, num_poses)
  if k == 0:
    return uniform
  _, frequent = jax.lax.top_k(counts, k)
  return jnp.concatenate([uniform, frequent.astype(jnp.int32)])


def record_violations(counts: Array, violated: Array) -> Array:
  """Adds this batch's most-violated poses to V: ``counts[violated] += 1``.

  Args:
    counts: ``[N] int32``.
    violated: ``[B] int`` indices into the pose space (repeats count twice).
  """
  return counts.at[violated].add(1)
