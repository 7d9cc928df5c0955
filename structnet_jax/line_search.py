"""Plain-gradient SGD with a line search per mini-batch (paper section 4).

The paper trains the max-margin network with SGD and *no* momentum ("using
momentum between mini-batches ... always hinders convergence"), choosing the
step size of every mini-batch update by a line search on that mini-batch's cost.
``line_search_sgd`` is that optimiser as an optax
``GradientTransformationExtraArgs``: given the gradient ``g`` of the batch cost
``f`` at ``params`` it returns ``-eta * g``, with ``eta`` the trial step size in
``[min_step, max_step]`` of lowest cost ``f(params - eta * g)``.

Search: a coarse grid of ``num_coarse`` log-spaced step sizes over
``[min_step, max_step]``, then a fine grid of ``num_fine`` log-spaced sizes
spanning one coarse spacing either side of the best coarse size (clipped to
``[min_step, max_step]``). All trials of a grid are evaluated at once with
``jax.vmap`` (or ``jax.lax.map`` in chunks of ``trial_batch_size`` to bound the
memory of big networks: each trial holds a full copy of the parameters).

Safety: a non-finite trial cost (NaN / inf) counts as ``+inf``; the best trial
is taken only if its cost is *strictly* below ``value`` (the cost of the zero
step) and ``value`` is finite; otherwise the step is 0 and the returned updates
are exact zeros (even where ``g`` holds NaN). So an update never raises the
batch cost above the zero step, as evaluated by ``value_fn``.

Caller pattern (``cost`` must be the SAME deterministic batch cost that produced
``value`` and ``grad``: fix its dropout key and most-violated poses first)::

  opt = line_search_sgd()
  opt_state = opt.init(params)
  value, grad = jax.value_and_grad(cost)(params)
  updates, opt_state = opt.update(grad, opt_state, params,
                                  value=value, grad=grad, value_fn=cost)
  params = optax.apply_updates(params, updates)
  eta = step_size(opt_state)   # [] the step size just taken (0: rejected)

As with optax's line searches, ``grad`` is accepted and ignored (the direction
is ``updates``), and any other extra keyword argument whose name is a parameter
of ``value_fn`` is forwarded to it (``value_fn(params, **those)``); the
remaining ones are ignored, since ``optax.chain`` passes every extra argument to
every transform. Chain it last (or alone): the line search scales the direction
it is given and the trials assume nothing is applied after it.

Trial costs along the direction. By default every trial evaluates
``value_fn(params - eta * updates)``. A caller that can evaluate the cost
along the search direction more cheaply may pass ``value_along_fn(eta) ->
cost`` with ``value_along_fn(eta) == value_fn(params - eta * updates)`` up to
rounding; the trials then call it instead (e.g. stage 2 of StructNet, whose
widest layers see fixed inputs, so their pre-activations are affine in
``eta`` and all trials share two matrix products: ``structnet_jax/train.py``).
The chosen step is then checked once with ``value_fn`` itself, and taken only
if that cost is below ``value``, so the guarantee above holds exactly.

The state is a ``LineSearchState`` of three scalars (no momentum, nothing else
carried between batches).
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array


class LineSearchState(NamedTuple):
  """State of ``line_search_sgd``; all leaves are scalars of fixed dtype.

  Attributes:
    step_size: ``[]`` float, the step size of the last update (0 if rejected).
    value: ``[]`` float, the batch cost after the last update (the zero-step
      cost ``value`` when rejected; ``inf`` before the first update).
    count: ``[] int32``, number of updates performed.
  """
  step_size: Array
  value: Array
  count: Array


def _value_dtype(params) -> jnp.dtype:
  """Real float dtype for step sizes and costs: the params' widest, >= f32."""
  dtypes = []
  for leaf in jax.tree.leaves(params):
    dtype = getattr(leaf, "dtype", None)
    dtype = jnp.asarray(leaf).dtype if dtype is None else jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.inexact):
      dtypes.append(dtype)
  dtype = jnp.result_type(jnp.float32, *dtypes)
  return jnp.finfo(dtype).dtype  # real part of a complex dtype


def _value_fn_kwargs(value_fn: Callable[..., Any],
                     extra_args: dict[str, Any]) -> dict[str, Any]:
  """The extra arguments that name a parameter of ``value_fn``."""
  try:
    names = inspect.signature(value_fn).parameters
  except (TypeError, ValueError):  # builtins etc.: nothing can be forwarded
    return {}
  return {k: v for k, v in extra_args.items() if k in names and k != "grad"}


def line_search_sgd(
    min_step: float = 1e-7,
    max_step: float = 1e2,
    num_coarse: int = 19,
    num_fine: int = 16,
    trial_batch_size: int | None = None,
) -> optax.GradientTransformationExtraArgs:
  """SGD without momentum whose step size is line-searched on every batch.

  Args:
    min_step: smallest trial step size, ``> 0`` (units of the params per unit
      of gradient).
    max_step: largest trial step size, ``> min_step``.
    num_coarse: number of log-spaced coarse trials over
      ``[min_step, max_step]``, ``>= 2``.
    num_fine: number of log-spaced fine trials spanning one coarse spacing
      either side of the best coarse step, ``>= 0`` (0: no refinement).
    trial_batch_size: ``None`` evaluates all trials of a grid in one
      ``jax.vmap``; a positive int evaluates them with
      ``jax.lax.map(..., batch_size=trial_batch_size)`` (that many parameter
      copies alive at once).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update(updates, state,
    params, *, value, value_fn, value_along_fn=None, **extra_args)`` returns
    ``(-eta * updates, new_state)``; see the module docstring.

  Raises:
    ValueError: on an invalid argument.
  """
  if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and
             math.isfinite(v) for v in (min_step, max_step)):
    raise ValueError(
        f"min_step={min_step!r} and max_step={max_step!r} must be finite "
        "numbers; pass e.g. min_step=1e-7, max_step=1e2.")
  if not 0 < min_step < max_step:
    raise ValueError(
        f"line_search_sgd needs 0 < min_step < max_step, got "
        f"min_step={min_step!r}, max_step={max_step!r}; pass e.g. "
        "min_step=1e-7, max_step=1e2.")
  if isinstance(num_coarse, bool) or not isinstance(
      num_coarse, (int, np.integer)) or num_coarse < 2:
    raise ValueError(
        f"num_coarse={num_coarse!r} must be an int >= 2 (the coarse grid "
        "includes both min_step and max_step).")
  if isinstance(num_fine, bool) or not isinstance(
      num_fine, (int, np.integer)) or num_fine < 0:
    raise ValueError(
        f"num_fine={num_fine!r} must be an int >= 0 (0 disables the fine "
        "refinement).")
  if trial_batch_size is not None and (
      isinstance(trial_batch_size, bool) or
      not isinstance(trial_batch_size, (int, np.integer)) or
      trial_batch_size < 1):
    raise ValueError(
        f"trial_batch_size={trial_batch_size!r} must be None (vmap over all "
        "trials) or a positive int (trials evaluated per chunk).")

  log_min, log_max = math.log10(min_step), math.log10(max_step)
  coarse_logs = np.linspace(log_min, log_max, int(num_coarse))
  spacing = (log_max - log_min) / (int(num_coarse) - 1)
  fine_offsets = np.linspace(-spacing, spacing, int(num_fine))

  def init_fn(params) -> LineSearchState:
    dtype = _value_dtype(params)
    return LineSearchState(step_size=jnp.zeros((), dtype),
                           value=jnp.full((), jnp.inf, dtype),
                           count=jnp.zeros((), jnp.int32))

  def update_fn(updates, state: LineSearchState, params=None, *, value,
                value_fn: Callable[..., Any],
                value_along_fn: Callable[[Array], Any] | None = None,
                **extra_args):
    if params is None:
      raise ValueError(
          "line_search_sgd.update needs the current params: call "
          "opt.update(grad, state, params, value=..., value_fn=...).")
    if jax.tree.structure(updates) != jax.tree.structure(params):
      raise ValueError(
          "line_search_sgd.update: `updates` (the gradient) and `params` must "
          f"be pytrees of the same structure, got {jax.tree.structure(updates)}"
          f" and {jax.tree.structure(params)}; differentiate the cost with "
          "respect to exactly the params you pass.")
    if not callable(value_fn):
      raise ValueError(
          "value_fn must be a callable params -> scalar cost, got "
          f"{value_fn!r}.")
    if value_along_fn is not None and not callable(value_along_fn):
      raise ValueError(
          "value_along_fn must be None or a callable eta -> scalar cost "
          f"(the cost at params - eta * updates), got {value_along_fn!r}.")
    dtype = jnp.asarray(state.value).dtype
    value = jnp.asarray(value)
    if value.shape != ():
      raise ValueError(
          f"value must be the scalar batch cost at params, got shape "
          f"{value.shape}; reduce the cost (e.g. jnp.mean) before the update.")
    value = jnp.real(value).astype(dtype)
    fn_kwargs = _value_fn_kwargs(value_fn, extra_args)

    def step_updates(eta: Array):
      return jax.tree.map(lambda g: -(eta.astype(g.dtype) * g), updates)

    def finite_cost(cost, name: str) -> Array:
      cost = jnp.asarray(cost)
      if cost.shape != ():
        raise ValueError(
            f"{name} must return a scalar cost, got shape {cost.shape}; "
            f"reduce it (e.g. jnp.mean) inside {name}.")
      cost = jnp.real(cost).astype(dtype)
      return jnp.where(jnp.isfinite(cost), cost, jnp.inf)

    def cost_at(eta: Array) -> Array:
      trial = optax.apply_updates(params, step_updates(eta))
      return finite_cost(value_fn(trial, **fn_kwargs), "value_fn")

    def trial_cost(eta: Array) -> Array:
      if value_along_fn is None:
        return cost_at(eta)
      return finite_cost(value_along_fn(eta), "value_along_fn")

    def trial_costs(etas: Array) -> Array:
      if trial_batch_size is None:
        return jax.vmap(trial_cost)(etas)
      return jax.lax.map(trial_cost, etas, batch_size=int(trial_batch_size))

    etas = jnp.asarray(10.0**coarse_logs, dtype)
    costs = trial_costs(etas)
    if num_fine:
      center = jnp.asarray(coarse_logs, dtype)[jnp.argmin(costs)]
      fine = jnp.clip(10.0**(center + jnp.asarray(fine_offsets, dtype)),
                      jnp.asarray(min_step, dtype),
                      jnp.asarray(max_step, dtype))
      etas = jnp.concatenate([etas, fine])
      costs = jnp.concatenate([costs, trial_costs(fine)])
    best = jnp.argmin(costs)
    best_cost = costs[best]
    if value_along_fn is not None:  # confirm the choice with value_fn itself
      best_cost = cost_at(etas[best])
    accept = jnp.isfinite(value) & (best_cost < value)
    eta = jnp.where(accept, etas[best], jnp.zeros((), dtype))
    new_value = jnp.where(accept, best_cost, value)
    # jnp.where (not 0 * g) so a rejected step is exactly zero even if g has
    # NaN/inf; an accepted one is bit-identical to the evaluated trial.
    new_updates = jax.tree.map(
        lambda u: jnp.where(accept, u, jnp.zeros_like(u)), step_updates(eta))
    new_state = LineSearchState(
        step_size=eta, value=new_value,
        count=(jnp.asarray(state.count) + 1).astype(jnp.int32))
    return new_updates, new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def step_size(state) -> Array:
  """The last chosen step size ``[]`` (0 where the step was rejected).

  Args:
    state: a ``LineSearchState``, or an optimiser state holding exactly one
      (e.g. the state of ``optax.chain(..., line_search_sgd())``).

  Raises:
    ValueError: if ``state`` holds no ``LineSearchState`` or several.
  """
  found = [s for s in jax.tree.leaves(
      state, is_leaf=lambda x: isinstance(x, LineSearchState))
           if isinstance(s, LineSearchState)]
  if len(found) != 1:
    raise ValueError(
        f"step_size expects a state holding exactly one LineSearchState, found "
        f"{len(found)} in {type(state).__name__}; pass the line_search_sgd "
        "state (or the chain state that contains it).")
  return found[0].step_size
