"""Tests for structnet_jax.line_search: SGD with a per-batch line search."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from structnet_jax import line_search

# The default grid, computed independently of the module.
_COARSE = np.logspace(-7.0, 2.0, 19)


def _ls_step(opt, cost, params, **extra):
  """One caller-pattern step: returns (new_params, updates, new_state)."""
  state = opt.init(params)
  value, grad = jax.value_and_grad(cost)(params)
  updates, state = opt.update(grad, state, params, value=value, grad=grad,
                              value_fn=cost, **extra)
  return optax.apply_updates(params, updates), updates, state


# ---------------------------------------------------------------------------
# Never raises the cost over the zero step.


def _sines_cost(params, data):
  freq, phase = data
  return jnp.sum(jnp.sin(freq * params + phase)) + 0.1 * jnp.sum(params**2)


def _mlp_cost(params, data):
  x, y = data
  h = jnp.tanh(x @ params["w1"] + params["b1"])
  out = jnp.tanh(h @ params["w2"] + params["b2"])
  return jnp.mean((out - y)**2)


def _random_problem(kind: str, seed: int):
  rng = np.random.default_rng(seed)
  if kind == "sines":
    params = jnp.asarray(rng.normal(size=7) * 3, jnp.float32)
    data = (jnp.asarray(rng.uniform(0.5, 8.0, size=7), jnp.float32),
            jnp.asarray(rng.uniform(0, 2 * np.pi, size=7), jnp.float32))
    return _sines_cost, params, data
  params = {"w1": jnp.asarray(rng.normal(size=(3, 5)) * 2, jnp.float32),
            "b1": jnp.asarray(rng.normal(size=5), jnp.float32),
            "w2": jnp.asarray(rng.normal(size=(5, 2)) * 2, jnp.float32),
            "b2": jnp.asarray(rng.normal(size=2), jnp.float32)}
  data = (jnp.asarray(rng.normal(size=(8, 3)), jnp.float32),
          jnp.asarray(rng.uniform(-1, 1, size=(8, 2)), jnp.float32))
  return _mlp_cost, params, data


@pytest.mark.parametrize("kind", ["sines", "mlp"])
def test_never_raises_cost_on_random_nonconvex_costs(kind):
  opt = line_search.line_search_sgd()
  cost_fn = _sines_cost if kind == "sines" else _mlp_cost
  jit_cost = jax.jit(cost_fn)

  @jax.jit
  def step(params, data):
    cost = functools.partial(cost_fn, data=data)
    value, grad = jax.value_and_grad(cost)(params)
    state = opt.init(params)
    updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                value_fn=cost)
    return optax.apply_updates(params, updates), grad, state

  num_taken = 0
  for seed in range(40):
    _, params, data = _random_problem(kind, seed)
    new_params, grad, state = step(params, data)
    before, after = float(jit_cost(params, data)), float(
        jit_cost(new_params, data))
    eta = float(state.step_size)
    # Independent reference: every coarse grid step, in a plain Python loop.
    grid = min(float(jit_cost(jax.tree.map(lambda p, g: p - e * g, params,
                                           grad), data)) for e in _COARSE)
    # float32 round-off between differently compiled evaluations of the cost.
    tol = 1e-5 * max(1.0, abs(grid))
    if eta > 0:
      num_taken += 1
      assert after < before, (seed, eta)
      assert after <= grid + tol, (seed, eta)  # at least the best coarse step
      assert float(state.value) == pytest.approx(after, rel=1e-5, abs=1e-6)
    else:
      chex.assert_trees_all_equal(new_params, params)
      assert grid >= before - tol, seed  # no grid step decreased the cost
  # Gradient steps on generic points do decrease the cost: not vacuous.
  assert num_taken >= 35


def test_minimum_beyond_max_step_takes_max_step():
  # 0.5 * a * ||x - c||^2: the best step along -g is 1 / a = 1e4 > max_step.
  a, c = 1e-4, jnp.array([1.0, -2.0, 3.0])
  cost = lambda x: 0.5 * a * jnp.sum((x - c)**2)
  x0 = jnp.array([3.0, 4.0, -5.0])
  new_x, _, state = _ls_step(line_search.line_search_sgd(), cost, x0)
  assert float(state.step_size) == pytest.approx(1e2, rel=1e-6)
  np.testing.assert_allclose(new_x, x0 - 1e2 * a * (x0 - c), rtol=1e-5)
  assert float(cost(new_x)) < float(cost(x0))


def test_every_positive_step_increasing_the_cost_gives_step_zero():
  cost = lambda x: 0.5 * jnp.sum(x**2)
  opt = line_search.line_search_sgd()
  # (a) At the minimum, with a (wrong, nonzero) direction.
  x_min = jnp.zeros(3)
  state = opt.init(x_min)
  wrong = jnp.array([1.0, -2.0, 0.5])
  updates, state = opt.update(wrong, state, x_min, value=cost(x_min),
                              value_fn=cost)
  assert float(state.step_size) == 0.0
  chex.assert_trees_all_equal(updates, jnp.zeros(3))
  assert float(state.value) == 0.0
  # (b) Away from the minimum, with the ascent direction -g as "gradient".
  x0 = jnp.array([1.0, 2.0, -3.0])
  value, grad = jax.value_and_grad(cost)(x0)
  updates, state = opt.update(-grad, state, x0, value=value, grad=grad,
                              value_fn=cost)
  assert float(state.step_size) == 0.0
  chex.assert_trees_all_equal(optax.apply_updates(x0, updates), x0)
  assert float(state.value) == float(value)
  assert int(state.count) == 2


# ---------------------------------------------------------------------------
# Quadratic: the analytic best step.


@pytest.mark.parametrize("trial_batch_size", [None, 5])
@pytest.mark.parametrize("scale", [3e5, 2e2, 1.0, 0.05])
def test_quadratic_step_matches_analytic_best(scale, trial_batch_size):
  rng = np.random.default_rng(int(scale * 100) % 97)
  n = 6
  q, _ = np.linalg.qr(rng.normal(size=(n, n)))
  a = (q * (scale * np.logspace(0, 1, n))) @ q.T
  b, x = rng.normal(size=n), rng.normal(size=n)
  g = a @ x - b
  best = (g @ g) / (g @ a @ g)
  assert 1e-7 < best < 1e2
  a32, b32 = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  cost = lambda p: 0.5 * p @ a32 @ p - b32 @ p
  opt = line_search.line_search_sgd(trial_batch_size=trial_batch_size)
  _, updates, state = jax.jit(functools.partial(_ls_step, opt, cost))(
      jnp.asarray(x, jnp.float32))
  eta = float(state.step_size)
  assert abs(eta - best) / best < 0.1, (eta, best)
  np.testing.assert_allclose(updates, -eta * g, rtol=1e-4,
                             atol=1e-6 * abs(g).max())


def test_no_refinement_picks_a_coarse_grid_point():
  a = jnp.diag(jnp.array([2.0, 3.0, 5.0]))
  cost = lambda p: 0.5 * p @ a @ p
  opt = line_search.line_search_sgd(num_fine=0)
  _, _, state = _ls_step(opt, cost, jnp.array([1.0, -1.0, 2.0]))
  g = np.array([2.0, -3.0, 10.0])
  best = (g @ g) / (g @ np.diag([2.0, 3.0, 5.0]) @ g)
  trials = [np.array([1.0, -1.0, 2.0]) - e * g for e in _COARSE]
  costs = [0.5 * x @ np.diag([2.0, 3.0, 5.0]) @ x for x in trials]
  expected = _COARSE[int(np.argmin(costs))]
  assert float(state.step_size) == pytest.approx(expected, rel=1e-5)
  assert float(state.step_size) != pytest.approx(best, rel=0.01)  # coarse only


# ---------------------------------------------------------------------------
# Non-finite trials.


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf, -jnp.inf])
def test_non_finite_for_every_nonzero_step_is_rejected(bad):
  x0 = jnp.array([1.0, 2.0, -3.0])
  def cost(x):
    return jnp.where(jnp.all(x == x0), jnp.sum(x**2), bad)
  new_x, updates, state = _ls_step(line_search.line_search_sgd(), cost, x0)
  chex.assert_trees_all_equal(new_x, x0)
  chex.assert_trees_all_equal(updates, jnp.zeros(3))
  assert float(state.step_size) == 0.0
  assert float(state.value) == 14.0
  assert int(state.count) == 1


def test_nan_for_large_steps_only_still_finds_the_small_step():
  # Cost 0.5 ||x||^2, so g = x0 and the best step along -g is 1 (-> x = 0),
  # but the cost is NaN beyond distance 0.3 * ||g|| from x0, i.e. for every
  # step > 0.3.
  x0 = jnp.array([1.0, 2.0, -3.0])
  radius = 0.3 * jnp.linalg.norm(x0)
  def cost(x):
    return jnp.where(jnp.linalg.norm(x - x0) > radius, jnp.nan,
                     0.5 * jnp.sum(x**2))
  new_x, _, state = _ls_step(line_search.line_search_sgd(), cost, x0)
  eta = float(state.step_size)
  # Within the admissible range and near its edge (fine grid ratio ~1.17).
  assert 0.3 / 1.2 < eta <= 0.3
  assert np.isfinite(float(cost(new_x)))
  assert float(cost(new_x)) < float(cost(x0))


def test_nan_gradient_or_value_leaves_params_unchanged():
  cost = lambda x: jnp.sum(x**2)
  x0 = jnp.array([1.0, 2.0])
  opt = line_search.line_search_sgd()
  state = opt.init(x0)
  updates, new_state = opt.update(jnp.array([jnp.nan, 1.0]), state, x0,
                                  value=cost(x0), value_fn=cost)
  chex.assert_trees_all_equal(optax.apply_updates(x0, updates), x0)
  assert float(new_state.step_size) == 0.0
  # A non-finite zero-step value: no step, whatever the trials say.
  updates, new_state = opt.update(2 * x0, state, x0, value=jnp.nan,
                                  value_fn=cost)
  chex.assert_trees_all_equal(updates, jnp.zeros(2))
  assert float(new_state.step_size) == 0.0
  # +inf zero-step value: every finite trial is "lower", still no step.
  updates, new_state = opt.update(2 * x0, state, x0, value=jnp.inf,
                                  value_fn=cost)
  chex.assert_trees_all_equal(updates, jnp.zeros(2))
  assert float(new_state.step_size) == 0.0


def test_flat_cost_gives_step_zero():
  # Ties with the zero step are not a decrease: no step is taken.
  x0 = jnp.array([1.0, 2.0])
  opt = line_search.line_search_sgd()
  updates, state = opt.update(jnp.array([0.5, -1.0]), opt.init(x0), x0,
                              value=jnp.float32(3.0),
                              value_fn=lambda x: jnp.float32(3.0))
  chex.assert_trees_all_equal(updates, jnp.zeros(2))
  assert float(state.step_size) == 0.0


# ---------------------------------------------------------------------------
# jit, pytrees, chain, state.


def _nested_params():
  return {"layer": {"w": jnp.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.0]]),
                    "b": jnp.array([0.3, -0.7])},
          "scale": jnp.array([2.0, -1.0, 0.5, 1.5])}


def _nested_cost(params):
  x = jnp.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]])
  h = jnp.tanh(x @ params["layer"]["w"] + params["layer"]["b"])
  return jnp.sum(h**2) + 0.25 * jnp.sum((params["scale"] - 1.0)**4)


class JitAndPytreeTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_nested_dict_updates_are_minus_step_times_grad(self):
    opt = line_search.line_search_sgd()

    @self.variant
    def step(params):
      return _ls_step(opt, _nested_cost, params)

    params = _nested_params()
    new_params, updates, state = step(params)
    eta = float(state.step_size)
    self.assertGreater(eta, 0.0)
    grad = jax.grad(_nested_cost)(params)
    chex.assert_trees_all_close(updates, jax.tree.map(lambda g: -eta * g, grad),
                                rtol=1e-6)
    self.assertLess(float(_nested_cost(new_params)),
                    float(_nested_cost(params)))
    chex.assert_trees_all_equal_shapes_and_dtypes(opt.init(params), state)

  @chex.variants(with_jit=True, without_jit=True)
  def test_chain_and_repeated_steps_decrease_monotonically(self):
    opt = optax.chain(line_search.line_search_sgd())
    params = _nested_params()
    state0 = opt.init(params)

    @self.variant
    def step(params, state):
      value, grad = jax.value_and_grad(_nested_cost)(params)
      updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                  value_fn=_nested_cost)
      return optax.apply_updates(params, updates), state

    state, costs = state0, [float(_nested_cost(params))]
    for _ in range(5):
      params, state = step(params, state)
      costs.append(float(_nested_cost(params)))
      self.assertGreater(float(line_search.step_size(state)), 0.0)
    self.assertTrue(all(b < a for a, b in zip(costs, costs[1:])), costs)
    chex.assert_trees_all_equal_shapes_and_dtypes(state0, state)
    self.assertEqual(int(state[0].count), 5)
    self.assertAlmostEqual(float(state[0].value), costs[-1], places=5)


def test_chained_after_another_transform_scales_its_output():
  # The line search scales whatever direction it is given: after
  # scale(0.5) the direction is g / 2, so eta doubles for the same step.
  cost = lambda x: 0.5 * jnp.sum(jnp.array([1.0, 4.0]) * x**2)
  x0 = jnp.array([1.0, 1.0])
  opt = optax.chain(optax.scale(0.5), line_search.line_search_sgd(num_fine=0))
  new_x, _, state = _ls_step(opt, cost, x0)
  g = np.array([1.0, 4.0])
  costs = [0.5 * np.sum(np.array([1.0, 4.0]) * (x0 - e * g / 2)**2)
           for e in _COARSE]
  assert float(line_search.step_size(state)) == pytest.approx(
      _COARSE[int(np.argmin(costs))], rel=1e-5)
  assert float(cost(new_x)) == pytest.approx(float(min(costs)), rel=1e-5)


def test_extra_args_are_forwarded_to_value_fn():
  def cost(x, target):
    return jnp.sum((x - target)**2)
  x0, target = jnp.array([1.0, 2.0]), jnp.array([0.0, 0.5])
  opt = line_search.line_search_sgd()
  state = opt.init(x0)
  value, grad = jax.value_and_grad(cost)(x0, target)
  updates, state = opt.update(grad, state, x0, value=value, grad=grad,
                              value_fn=cost, target=target, unrelated=3)
  # Best step 0.5 lands exactly on the target.
  assert float(state.step_size) == pytest.approx(0.5, rel=0.1)
  assert float(cost(optax.apply_updates(x0, updates), target)) < 0.05 * float(
      value)


def test_state_dtypes_and_step_size_helper():
  state = line_search.line_search_sgd().init({"a": jnp.zeros(3, jnp.bfloat16)})
  assert state.step_size.dtype == jnp.float32 and state.step_size.shape == ()
  assert state.count.dtype == jnp.int32
  assert float(state.value) == np.inf
  assert line_search.step_size(state) is state.step_size
  with pytest.raises(ValueError, match="exactly one LineSearchState"):
    line_search.step_size(optax.EmptyState())


# ---------------------------------------------------------------------------
# Validation.


@pytest.mark.parametrize("kwargs, match", [
    ({"min_step": 0.0}, "0 < min_step < max_step"),
    ({"min_step": -1e-3}, "0 < min_step < max_step"),
    ({"min_step": 1.0, "max_step": 1.0}, "0 < min_step < max_step"),
    ({"min_step": 1e3}, "0 < min_step < max_step"),
    ({"max_step": float("inf")}, "finite"),
    ({"num_coarse": 1}, "num_coarse"),
    ({"num_coarse": 2.5}, "num_coarse"),
    ({"num_fine": -1}, "num_fine"),
    ({"trial_batch_size": 0}, "trial_batch_size"),
])
def test_constructor_validation(kwargs, match):
  with pytest.raises(ValueError, match=match):
    line_search.line_search_sgd(**kwargs)


def test_update_validation():
  opt = line_search.line_search_sgd()
  x = jnp.ones(3)
  state = opt.init(x)
  with pytest.raises(ValueError, match="scalar cost"):
    opt.update(x, state, x, value=jnp.sum(x), value_fn=lambda p: p**2)
  with pytest.raises(ValueError, match="same structure"):
    opt.update({"a": x}, state, x, value=jnp.sum(x), value_fn=jnp.sum)
  with pytest.raises(ValueError, match="scalar batch cost"):
    opt.update(x, state, x, value=x, value_fn=jnp.sum)
  with pytest.raises(ValueError, match="needs the current params"):
    opt.update(x, state, None, value=jnp.sum(x), value_fn=jnp.sum)


def test_value_along_fn_replaces_the_trials_and_is_confirmed_by_value_fn():
  target = jnp.asarray([1.0, -2.0, 0.5])
  params = {"w": jnp.zeros(3)}

  def cost(p):
    return jnp.sum(jnp.square(p["w"] - target))

  value, grad = jax.value_and_grad(cost)(params)
  calls = []

  def along(eta):  # exact: cost(params - eta * grad)
    calls.append(eta)
    return jnp.sum(jnp.square(-eta * grad["w"] - target))

  opt = line_search.line_search_sgd()
  updates, state = opt.update(grad, opt.init(params), params, value=value,
                              value_fn=cost, value_along_fn=along)
  assert calls  # the trials went through value_along_fn
  # Minimum of ||-eta g - t||^2 with g = -2 t: eta = 0.5.
  np.testing.assert_allclose(state.step_size, 0.5, rtol=0.1)
  np.testing.assert_allclose(state.value, cost(optax.apply_updates(params,
                                                                   updates)),
                             rtol=1e-6)

  # A value_along_fn that lies (claims every step helps) is caught by the
  # confirmation with value_fn: the step is rejected.
  updates, state = opt.update(grad, opt.init(params), params, value=value,
                              value_fn=lambda p: cost(p) + 1e3 * jnp.sum(
                                  jnp.abs(p["w"])),
                              value_along_fn=lambda eta: -1.0 + 0 * eta)
  assert float(state.step_size) == 0.0
  np.testing.assert_array_equal(updates["w"], 0.0)
  with pytest.raises(ValueError, match="value_along_fn"):
    opt.update(grad, opt.init(params), params, value=value, value_fn=cost,
               value_along_fn=3.0)
