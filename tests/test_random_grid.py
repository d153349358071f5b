"""RandomSearch and GridSearch."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hyperoptax as hx
from hyperoptax.errors import ConfigurationError, SpaceError

SPACE = {"lr": hx.LogSpace(1e-4, 1e-1), "n": hx.QLinearSpace(1, 5), "opt": hx.DiscreteSpace(["adam", "sgd"])}


def objective(key, params):
    # best: lr = 1e-2, n = 3, opt = "sgd"
    return -(jnp.log10(params["lr"]) + 2.0) ** 2 - 0.1 * jnp.abs(params["n"] - 3).astype(jnp.float32) - jnp.where(params["opt"] == 1, 0.0, 1.0)


# --------------------------------------------------------------------------
# RandomSearch
# --------------------------------------------------------------------------


def test_random_search_shapes_dtypes_and_bounds(key):
    state, opt = hx.RandomSearch.init(SPACE, n_max=12, n_parallel=4)
    assert state.X.shape == (12, 3) and state.y.shape == (12,) and state.mask.shape == (12,)
    params = opt.get_next_params(state, key)
    assert params["lr"].shape == params["n"].shape == params["opt"].shape == (4,)
    assert params["lr"].dtype == jnp.float32 and params["n"].dtype == jnp.int32 and params["opt"].dtype == jnp.int32
    assert bool(jnp.all((params["lr"] >= 1e-4) & (params["lr"] <= 1e-1)))
    assert bool(jnp.all((params["n"] >= 1) & (params["n"] <= 5)))
    assert bool(jnp.all((params["opt"] >= 0) & (params["opt"] <= 1)))
    other = opt.get_next_params(state, jax.random.key(1))
    assert not np.allclose(params["lr"], other["lr"])


def test_random_search_records_history_and_best(key):
    state, opt = hx.RandomSearch.init(SPACE, n_max=12, n_parallel=4)
    final, (params_hist, results_hist) = opt.optimize(state, key, objective)
    assert len(results_hist) == 3 and bool(final.mask.all())
    np.testing.assert_allclose(final.y, np.concatenate([np.asarray(r) for r in results_hist]), rtol=1e-6)
    np.testing.assert_allclose(final.X[:4, 1], params_hist[0]["n"])
    assert float(opt.best_result(final)) == pytest.approx(float(final.y.max()))
    best = opt.best_params(final)
    assert best["opt"] in ("adam", "sgd") and type(best["n"]) is int and type(best["lr"]) is float
    i = int(jnp.argmax(final.y))
    assert best["lr"] == pytest.approx(float(final.X[i, 0]), rel=1e-6) and best["n"] == int(final.X[i, 1])


def test_random_search_minimize(key):
    state, opt = hx.RandomSearch.init(SPACE, n_max=8, n_parallel=4, maximize=False)
    final, _ = opt.optimize(state, key, objective)
    assert float(opt.best_result(final)) == pytest.approx(float(final.y.min()))


def test_random_search_overflow(key):
    state, opt = hx.RandomSearch.init(SPACE, n_max=10, n_parallel=4)
    assert opt.default_n_iterations(state) == 3
    final, (_, results_hist) = opt.optimize(state, key, objective)
    assert len(results_hist) == 3 and int(final.n_observed) == 10


def test_random_search_optimize_scan_matches_optimize(key):
    state, opt = hx.RandomSearch.init(SPACE, n_max=12, n_parallel=4)
    loop, (_, results_loop) = opt.optimize(state, key, objective)
    scan, (params_scan, results_scan) = jax.jit(lambda s, k: opt.optimize_scan(s, k, objective))(state, key)
    assert results_scan.shape == (3, 4) and params_scan["n"].shape == (3, 4)
    np.testing.assert_allclose(results_scan, np.stack(results_loop), rtol=1e-6)
    np.testing.assert_allclose(scan.X, loop.X, rtol=1e-6)


def test_random_search_bad_options():
    with pytest.raises(ConfigurationError, match="n_parallel"):
        hx.RandomSearch.init(SPACE, n_parallel=0)
    with pytest.raises(ConfigurationError, match="n_max"):
        hx.RandomSearch.init(SPACE, n_max=0)


def test_untraceable_objective_runs_per_configuration_and_crashes_are_failures(key):
    state, opt = hx.RandomSearch.init({"x": hx.LinearSpace(0.0, 1.0)}, n_max=8, n_parallel=4)

    def python_objective(key, params):
        x = float(params["x"])  # concrete values only
        if x > 0.5:
            raise RuntimeError("diverged")
        return x

    final, _ = opt.optimize(state, key, python_objective)
    y, X = np.asarray(final.y), np.asarray(final.X[:, 0])
    np.testing.assert_array_equal(np.isnan(y), X > 0.5)
    np.testing.assert_allclose(y[X <= 0.5], X[X <= 0.5], rtol=1e-6)


# --------------------------------------------------------------------------
# GridSearch
# --------------------------------------------------------------------------

GRID = {"a": hx.DiscreteSpace([0.1, 0.2, 0.3]), "b": hx.QLinearSpace(1, 2), "c": hx.DiscreteSpace(["x", "y"])}
GRID_ORDER = list(itertools.product([0.1, 0.2, 0.3], [1, 2], ["x", "y"]))


def _rows(params_hist):
    rows = []
    for params in params_hist:
        decoded = hx.decode_params(GRID, params)
        rows += list(zip(decoded["a"], decoded["b"], decoded["c"]))
    return rows


def test_grid_enumerates_every_combination_once_in_order(key):
    state, opt = hx.GridSearch.init(GRID, n_parallel=3)
    assert state.grid.shape == (12, 3) and state.X.shape == (12, 3)
    assert opt.default_n_iterations(state) == 4
    final, (params_hist, results_hist) = opt.optimize(state, key, lambda k, p: p["a"] * p["b"].astype(jnp.float32))
    assert _rows(params_hist) == GRID_ORDER
    assert params_hist[0]["b"].dtype == jnp.int32 and params_hist[0]["c"].dtype == jnp.int32
    assert bool(final.mask.all())
    assert opt.best_params(final) in [{"a": 0.3, "b": 2, "c": "x"}, {"a": 0.3, "b": 2, "c": "y"}]
    assert opt.best_params(final)["a"] == 0.3  # the user's float, exactly


def test_grid_shuffled_covers_the_same_set(key):
    state, opt = hx.GridSearch.init(GRID, key=key, shuffle=True, n_parallel=4)
    _, (params_hist, _) = opt.optimize(state, key, lambda k, p: p["a"])
    rows = _rows(params_hist)
    assert sorted(rows) == sorted(GRID_ORDER) and len(set(rows)) == 12
    assert rows != GRID_ORDER
    other, _ = hx.GridSearch.init(GRID, key=jax.random.key(1), shuffle=True, n_parallel=4)
    assert not np.array_equal(other.grid, state.grid)


def test_grid_n_parallel_not_dividing_the_grid_wraps(key):
    state, opt = hx.GridSearch.init(GRID, n_parallel=5)
    assert opt.default_n_iterations(state) == 3
    final, (params_hist, _) = opt.optimize(state, key, lambda k, p: p["a"])
    rows = _rows(params_hist)
    assert len(rows) == 15
    assert rows[:12] == GRID_ORDER and rows[12:] == GRID_ORDER[:3]  # wraps to the start
    assert int(final.n_observed) == 12  # n_max defaults to the grid size; the overflow is dropped


def test_grid_with_integer_spaces_and_custom_n_max(key):
    space = {"n": hx.QLogSpace(1, 4), "m": hx.QLinearSpace(-1, 1)}
    state, opt = hx.GridSearch.init(space, n_max=20)
    assert state.X.shape == (20, 2) and state.grid.shape == (12, 2)
    _, (params_hist, _) = opt.optimize(state, key, lambda k, p: (p["n"] * p["m"]).astype(jnp.float32))
    got = [(int(p["m"][0]), int(p["n"][0])) for p in params_hist]
    assert got == list(itertools.product([-1, 0, 1], [1, 2, 3, 4]))  # leaves in sorted key order: m, n


@pytest.mark.parametrize("leaf", [hx.LinearSpace(0.0, 1.0), hx.LogSpace(1e-3, 1.0)], ids=repr)
def test_grid_rejects_continuous_spaces(leaf):
    with pytest.raises(SpaceError, match=r"\['lr'\]"):
        hx.GridSearch.init({"lr": leaf, "b": hx.QLinearSpace(1, 2)})


def test_grid_optimize_scan_matches_optimize(key):
    state, opt = hx.GridSearch.init(GRID, n_parallel=3)
    fn = lambda k, p: p["a"] + p["b"].astype(jnp.float32)
    loop, (_, results_loop) = opt.optimize(state, key, fn)
    scan, (params_scan, results_scan) = jax.jit(lambda s, k: opt.optimize_scan(s, k, fn, n_iterations=4))(state, key)
    assert results_scan.shape == (4, 3)
    np.testing.assert_allclose(results_scan, np.stack(results_loop), rtol=1e-6)
    np.testing.assert_allclose(scan.X, loop.X, rtol=1e-6)
    assert int(scan.grid_idx) == 12
