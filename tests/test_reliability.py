"""Reliability: failed trials, bad input, float32 robustness, GP property tests.

Every optimizer here uses one small configuration (SMALL) so the suite pays
for its compilation once per space shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hyperoptax as hx
from hyperoptax import errors, gp, kernels

# The recommended preset, made cheap to compile.
SMALL = dict(hx.RECOMMENDED, n_candidates=64, n_restarts=1, n_lbfgs_steps=3, n_hparam_steps=5)
SQUARE = {"a": hx.LinearSpace(0.0, 1.0), "b": hx.LinearSpace(0.0, 1.0)}


def run(space, fn, n_max, n_parallel=4, n_iterations=None, **kwargs):
    state, opt = hx.BayesianSearch.init(space, n_max=n_max, n_parallel=n_parallel, **{**SMALL, **kwargs})
    state, (params, results) = opt.optimize(state, jax.random.key(0), fn, n_iterations=n_iterations)
    return state, opt, params


def assert_sane(state, space):
    """Every written X row finite and inside the bounds; GP hyperparameters finite."""
    X = np.asarray(state.X)[np.asarray(state.mask)]
    assert np.all(np.isfinite(X))
    leaves, _ = hx.spaces.space_leaves(space)
    for i, leaf in enumerate(leaves):
        assert np.all(X[:, i] >= leaf.lower_bound - 1e-6) and np.all(X[:, i] <= leaf.upper_bound + 1e-6)
    for field in ("log_length_scale", "log_amplitude", "log_noise", "mean"):
        assert np.all(np.isfinite(np.asarray(getattr(state, field)))), field


# --- failed evaluations -----------------------------------------------------


def test_failed_trials_are_recorded_excluded_and_the_search_goes_on():
    # The right half of the square diverges; the optimum of the rest is at a = 0.5.
    def fn(key, p):
        return jnp.where(p["a"] > 0.5, jnp.nan, -((p["a"] - 0.5) ** 2) - (p["b"] - 0.5) ** 2)

    state, opt, _ = run(SQUARE, fn, n_max=16)
    y, mask = np.asarray(state.y), np.asarray(state.mask)
    assert mask.all()
    failed = ~np.isfinite(y)
    assert int(state.n_failed) == failed.sum() > 0
    assert np.isfinite(float(opt.best_result(state)))
    assert opt.best_params(state)["a"] <= 0.5
    assert_sane(state, SQUARE)


def test_a_first_batch_that_fails_entirely_goes_on():
    calls = []

    def fn(key, p):  # not traceable: evaluated per configuration
        calls.append(float(p["a"]))
        return float("nan") if len(calls) <= 4 else -abs(float(p["a"]) - 0.25)

    state, opt, _ = run(SQUARE, fn, n_max=16)
    assert int(state.n_failed) == 4 and int(state.n_observed) == 16
    assert np.isfinite(float(opt.best_result(state)))
    assert_sane(state, SQUARE)


def test_every_trial_failing_never_crashes_and_best_params_explains():
    state, opt, _ = run(SQUARE, lambda k, p: jnp.float32(jnp.inf), n_max=16)
    assert int(state.n_failed) == 16
    assert float(opt.best_result(state)) == -np.inf
    with pytest.raises(errors.ConfigurationError, match="No successful trial"):
        opt.best_params(state)
    assert_sane(state, SQUARE)


def test_an_exception_in_a_python_objective_is_a_failed_trial():
    def fn(key, p):
        if float(p["a"]) > 0.5:
            raise RuntimeError("diverged")
        return float(p["a"])

    state, opt, _ = run(SQUARE, fn, n_max=16)
    assert int(state.n_failed) == int((np.asarray(state.X)[:, 0] > 0.5).sum())
    assert opt.best_params(state)["a"] <= 0.5


# --- bad input --------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_parallel=0), "n_parallel"),
        (dict(n_max=0), "n_max"),
        (dict(n_candidates=0), "n_candidates"),
        (dict(kernel="matern"), "kernel"),
        (dict(acquisition=lambda m, s: m), "acquisition"),
        (dict(maximize="yes"), "maximize"),
    ],
)
def test_bad_options_raise_configuration_errors(kwargs, match):
    n_max = kwargs.pop("n_max", 8)
    with pytest.raises(errors.ConfigurationError, match=match):
        hx.BayesianSearch.init(SQUARE, n_max=n_max, **kwargs)


def test_a_space_without_space_leaves_is_rejected():
    with pytest.raises(errors.SpaceError, match="contains no Space"):
        hx.BayesianSearch.init({}, n_max=8)
    with pytest.raises(errors.SpaceError, match=r"\['lr'\]"):
        hx.BayesianSearch.init({"lr": 0.1, "b": hx.LinearSpace(0, 1)}, n_max=8)


@pytest.mark.parametrize(
    "fn, match",
    [
        (lambda k, p: jnp.ones(2), "scalar"),
        (lambda k, p: {"acc": p["a"]}, "scalar"),
        (lambda k, p: jnp.bool_(True), "real number"),
        (lambda p: p["a"], "signature"),
    ],
)
def test_a_wrong_objective_is_rejected_before_compiling(fn, match):
    state, opt = hx.BayesianSearch.init(SQUARE, n_max=16, **SMALL)
    with pytest.raises(errors.ObjectiveError, match=match):
        opt.optimize_scan(state, jax.random.key(0), fn, n_iterations=1)


def test_update_state_rejects_the_wrong_number_of_results():
    state, opt = hx.BayesianSearch.init(SQUARE, n_max=16, **SMALL)
    params = opt.get_next_params(state, jax.random.key(0))
    with pytest.raises(errors.ConfigurationError, match=r"3 result\(s\) but params for 4"):
        opt.update_state(state, jax.random.key(1), jnp.ones(3), params)
    with pytest.raises(errors.SpaceError, match=r"\(n_parallel, 2\)"):
        opt.update_state(state, jax.random.key(1), jnp.ones(4), jnp.ones((4, 3)))


# --- float32 robustness -----------------------------------------------------


@pytest.mark.parametrize("scale", [1e-8, 1.0, 1e8])
def test_targets_at_any_scale(scale):
    state, opt, _ = run(SQUARE, lambda k, p: -scale * ((p["a"] - 0.3) ** 2 + (p["b"] - 0.6) ** 2), 16)
    assert_sane(state, SQUARE)
    # Standardized targets make the search blind to units: it still homes in.
    assert -float(opt.best_result(state)) < 0.02 * scale


def test_constant_targets_and_duplicated_points():
    space = {"a": hx.DiscreteSpace([1.0, 2.0]), "b": hx.LinearSpace(0.0, 1.0)}
    state, opt, _ = run(space, lambda k, p: jnp.float32(3.0), n_max=16)
    assert_sane(state, space)
    # Force exact duplicates into the GP: all rows the same point.
    X = jnp.tile(jnp.array([[1.0, 0.5]]), (16, 1))
    dup = state.replace(X=X, mask=jnp.ones(16, bool).at[-4:].set(False))
    params = opt.get_next_params(dup, jax.random.key(1))
    assert all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(params))
    after = opt.update_state(dup, jax.random.key(2), jnp.arange(4.0), params)
    assert_sane(after, space)


def test_thirty_dimensions_and_single_value_spaces():
    space = {f"x{i}": hx.LinearSpace(-1.0, 1.0) for i in range(28)}
    space["one"] = hx.DiscreteSpace([5])
    space["cat"] = hx.DiscreteSpace(["only"])
    state, opt, _ = run(space, lambda k, p: -sum(v**2 for k_, v in p.items() if k_.startswith("x")), 8)
    assert_sane(space=space, state=state)
    best = opt.best_params(state)
    assert best["one"] == 5 and best["cat"] == "only"


@pytest.mark.slow
def test_two_thousand_observations():
    space = {"a": hx.LinearSpace(0.0, 1.0), "b": hx.LogSpace(1e-3, 1.0)}
    state, opt = hx.BayesianSearch.init(space, n_max=2000, n_parallel=8, **{**SMALL, "n_hparam_steps": 2})
    rng = np.random.default_rng(0)
    X = np.stack([rng.uniform(0, 1, 1992), 10 ** rng.uniform(-3, 0, 1992)], axis=1)
    X[:500] = X[0]  # a quarter of the data is one point, repeated
    y = np.sin(10 * X[:, 0]) + np.log10(X[:, 1])
    state = state.replace(
        X=state.X.at[:1992].set(X), y=state.y.at[:1992].set(y), mask=state.mask.at[:1992].set(True)
    )
    params = opt.get_next_params(state, jax.random.key(0))
    state = opt.update_state(state, jax.random.key(1), jnp.zeros(8), params)
    assert int(state.n_observed) == 2000
    assert_sane(state, space)


# --- GP property tests ------------------------------------------------------

_KERNEL = kernels.Matern(nu=2.5)
_PAD_ROWS = 12


@jax.jit
def _condition_and_predict(params, X, y, valid, Xs):
    z, _, _ = gp.standardize(y, valid)
    return gp.predict(_KERNEL, gp.condition(_KERNEL, params, X, z, valid), Xs)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, _PAD_ROWS),
    d=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    log_scale=st.floats(-8, 8),
    log_ls=st.floats(-4, 2),
    duplicate=st.booleans(),
)
def test_posterior_variance_is_non_negative_and_mean_finite(n, d, seed, log_scale, log_ls, duplicate):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, d)).astype(np.float32)
    if duplicate:
        X[n // 2 :] = X[0]
    y = (10.0**log_scale * rng.normal(size=n)).astype(np.float32)
    valid = rng.uniform(size=n) < 0.8
    # Padded to 12 rows (the padding invalid), as the search's buffers are: one compilation per d.
    pad = _PAD_ROWS - n
    X, y = np.pad(X, ((0, pad), (0, 0))), np.pad(y, (0, pad))
    valid = np.pad(valid, (0, pad))
    params = gp.default_params(d, length_scale=float(np.exp(log_ls)))
    mean, std = _condition_and_predict(params, X, y, valid, rng.uniform(0, 1, (16, d)).astype(np.float32))
    assert np.all(np.isfinite(np.asarray(mean)))
    assert np.all(np.asarray(std) >= 0) and np.all(np.isfinite(np.asarray(std)))
