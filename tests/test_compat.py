"""Code written for hyperoptax 0.2.0 runs here: the behaviours its users meet in the first hour.

Partial batches, ``get_argmax``, ``Space.sample``'s ``(1,)``, ``update_state`` without params for
Random/Grid, ``fn(key, config)`` in the error, ``AssertionError`` for bad bounds, repeated discrete values,
1-element and integer objective values. ``benchmarks/peer_suite.sh`` runs 0.2.0's own test suite; the
deliberate differences are listed in the README ("Migrating from hyperoptax 0.2.0").
"""

from __future__ import annotations

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hyperoptax as hx
from hyperoptax import acquisition as acq
from hyperoptax import kernels
from hyperoptax.errors import BoundsError, HyperoptaxWarning, ObjectiveError, ResultsDroppedWarning, SpaceError

SMALL = dict(n_candidates=16, n_restarts=1, n_lbfgs_steps=2, n_hparam_steps=2)
LINE = {"x": hx.LinearSpace(0.0, 1.0)}


# --------------------------------------------------------------------------
# Partial batches
# --------------------------------------------------------------------------


def test_a_partial_batch_is_recorded():
    # One result with the default n_parallel=4 used to be refused.
    state, opt = hx.BayesianSearch.init(LINE, n_max=6, **SMALL)
    assert opt.n_parallel == 4
    state = opt.update_state(state, jax.random.key(0), jnp.array([0.5]), jnp.array([[0.25]]))
    state = opt.update_state(state, jax.random.key(1), jnp.float32(0.7), {"x": jnp.float32(0.75)})
    assert int(state.n_observed) == 2
    np.testing.assert_allclose(state.X[:2, 0], [0.25, 0.75])
    np.testing.assert_allclose(state.y[:2], [0.5, 0.7])
    assert opt.best_params(state) == {"x": 0.75} and float(opt.best_result(state)) == pytest.approx(0.7)
    # The hyperparameters are fitted from the second observation on: one says nothing about length scales.
    one, _ = hx.BayesianSearch.init(LINE, n_max=6, **SMALL)
    one = opt.update_state(one, jax.random.key(0), jnp.array([0.5]), jnp.array([[0.25]]))
    assert float(one.log_length_scale[0]) == float(hx.BayesianSearch.init(LINE, n_max=6, **SMALL)[0].log_length_scale[0])
    assert float(state.log_length_scale[0]) != float(one.log_length_scale[0])


def test_a_batch_larger_than_the_room_left_is_truncated_at_the_buffer_end_with_a_warning():
    state, opt = hx.BayesianSearch.init(LINE, n_max=3, **SMALL)
    state = opt.update_state(state, jax.random.key(0), jnp.array([0.1, 0.2]), jnp.array([[0.0], [0.5]]))
    with pytest.warns(ResultsDroppedWarning, match=re.escape("4 of 5 results were not recorded")):
        state = opt.update_state(state, jax.random.key(0), jnp.arange(5.0), jnp.linspace(0, 1, 5)[:, None])
    assert int(state.n_observed) == 3 and float(state.y[2]) == 0.0  # the first of the batch


def test_a_partial_batch_then_optimize_fills_the_rest():
    state, opt = hx.BayesianSearch.init(LINE, n_max=10, n_parallel=3, **SMALL)
    for v in (0.1, 0.2, 0.3, 0.4):
        state = opt.update_state(state, jax.random.key(0), jnp.array([v]), jnp.array([[v]]))
    final, (params, _) = opt.optimize(state, jax.random.key(1), lambda k, p: -p["x"] ** 2)
    assert len(params) == 2 and int(final.n_observed) == 10


# --------------------------------------------------------------------------
# Acquisitions: get_argmax
# --------------------------------------------------------------------------

MEAN, STD = jnp.array([1.0, 0.0, 0.0, 0.5]), jnp.array([0.1, 0.1, 0.2, 0.05])


@pytest.mark.parametrize("a", [acq.UCB(kappa=2.0), acq.EI(xi=0.01), acq.PI(xi=0.01), acq.LogEI(), acq.LogPI()],
                         ids=lambda a: type(a).__name__)
def test_get_argmax_picks_the_best_unseen_candidates(a):
    seen = jnp.array([True, False, False, False])
    scores = np.asarray(a(MEAN, STD))
    order = [i for i in np.argsort(-scores, kind="stable") if i != 0]
    assert a.get_argmax(MEAN, STD, seen).tolist() == order[:1]
    assert jax.jit(a.get_argmax, static_argnums=3)(MEAN, STD, seen, 2).tolist() == order[:2]  # best first
    assert int(a.get_argmax(MEAN, STD, jnp.zeros(4, bool))[0]) == int(np.argmax(scores))


def test_get_argmax_by_hand():
    # UCB = mean + 2 std = [1.2 (seen), 0.2, 0.4, 0.6]
    assert acq.UCB(kappa=2.0).get_argmax(MEAN, STD, jnp.array([True, False, False, False]), n_points=3).tolist() == [3, 2, 1]
    # With the incumbent given, EI ranks by improvement over it.
    ei = acq.EI(xi=0.0)
    assert int(ei.get_argmax(jnp.array([0.0, 2.0]), jnp.array([1.0, 0.1]), jnp.zeros(2, bool), y_max=1.9)[0]) == 1
    ts = acq.ThompsonSampling()
    assert ts.get_argmax(MEAN, jnp.zeros(4), jnp.zeros(4, bool), key=jax.random.key(0)).tolist() == [0]


# --------------------------------------------------------------------------
# Spaces
# --------------------------------------------------------------------------


@pytest.mark.parametrize("space", [hx.LinearSpace(0, 1), hx.LogSpace(1e-4, 1e-1), hx.QLinearSpace(0, 100),
                                   hx.QLogSpace(2, 128, base=2), hx.DiscreteSpace([0, 1, 2, 3])], ids=repr)
def test_sample_returns_shape_one_as_in_0_2_0(space):
    x = space.sample(jax.random.PRNGKey(0))
    assert x.shape == (1,)
    assert space.lower_bound <= float(x[0]) <= space.upper_bound
    assert space.sample(jax.random.PRNGKey(0), ()).shape == ()
    assert space.sample(jax.random.PRNGKey(0), (5,)).shape == (5,)


def test_bad_bounds_raise_an_assertion_error_too():
    for make in (lambda: hx.LogSpace(10, 0), lambda: hx.LinearSpace(1.0, 0.0), lambda: hx.LogSpace(1, 10, base=1)):
        with pytest.raises(AssertionError) as info:
            make()
        assert isinstance(info.value, BoundsError) and isinstance(info.value, SpaceError)
        assert isinstance(info.value, ValueError)


def test_repeated_discrete_values_are_searched_once_with_a_warning():
    # Used to be refused.
    with pytest.warns(HyperoptaxWarning, match=re.escape("repeat 1; each value is searched once: (3, 1, 4, 5, 9)")):
        space = hx.DiscreteSpace([3, 1, 4, 1, 5, 9])
    assert space.values == (3, 1, 4, 5, 9)
    assert (space.lower_bound, space.upper_bound) == (1.0, 9.0)


# --------------------------------------------------------------------------
# Random and grid search without params
# --------------------------------------------------------------------------


def test_grid_update_state_without_params_records_the_current_batch():
    space = {"x": hx.DiscreteSpace([0.0, 0.5, 1.0]), "n": hx.DiscreteSpace([1, 2])}
    state, opt = hx.GridSearch.init(space, n_parallel=2)
    batch = opt.get_next_params(state, jax.random.key(0))
    state = opt.update_state(state, jax.random.key(0), jnp.array([3.0, 4.0]))
    assert int(state.grid_idx) == 2 and int(state.n_observed) == 2
    np.testing.assert_array_equal(state.X[:2], np.stack([batch["n"], batch["x"]], axis=1))
    # A partial batch (one of two) is recorded against the batch's first point; the index moves a batch on.
    state = opt.update_state(state, jax.random.key(0), jnp.array([5.0]))
    assert int(state.grid_idx) == 4 and int(state.n_observed) == 3
    assert opt.best_params(state) == {"n": 1, "x": 1.0}  # the grid's third point, (n, x) = (1, 1.0)


def test_random_update_state_without_params_is_memoryless_and_says_so():
    state, opt = hx.RandomSearch.init(LINE)
    with pytest.warns(HyperoptaxWarning, match="records nothing"):
        new = opt.update_state(state, jax.random.key(0), jnp.array([0.5]))
    assert new is state


# --------------------------------------------------------------------------
# Objectives
# --------------------------------------------------------------------------


@pytest.mark.parametrize("loop", ["optimize", "optimize_scan"])
def test_a_one_argument_objective_is_a_type_error_naming_fn_key_config(loop):
    state, opt = hx.RandomSearch.init(LINE)
    with pytest.raises(TypeError, match=re.escape("fn(key, config)")) as info:
        getattr(opt, loop)(state, jax.random.key(0), lambda config: config["x"], n_iterations=1)
    assert isinstance(info.value, ObjectiveError)


def test_objectives_returning_one_element_arrays_or_integers_work():
    state, opt = hx.RandomSearch.init({"n": hx.DiscreteSpace(list(range(6)))}, n_max=6, n_parallel=2)
    final, (_, results) = opt.optimize(state, jax.random.key(0), lambda k, p: jnp.array([-(p["n"] ** 2)]))
    assert int(final.n_observed) == 6 and results[0].shape == (2,)
    final, (_, results) = opt.optimize_scan(state, jax.random.key(0), lambda k, p: -(p["n"] ** 2))
    assert results.shape == (3, 2) and float(opt.best_result(final)) == -float(jnp.min(final.X) ** 2)
    with pytest.raises(ObjectiveError, match="real number"):
        opt.optimize_scan(state, jax.random.key(0), lambda k, p: p["n"] > 2)


# --------------------------------------------------------------------------
# Kernels
# --------------------------------------------------------------------------


def test_a_kernel_subclass_that_defers_to_the_base_gets_not_implemented():
    class MinimalKernel(kernels.BaseKernel):
        def __call__(self, x, y, length_scale=None):
            return super().__call__(x, y, length_scale)

    X = jnp.ones((3, 2))
    with pytest.raises(NotImplementedError, match="must implement evaluate"):
        MinimalKernel()(X, X)

    class Linear(kernels.BaseKernel):
        def evaluate(self, x, y, length_scale=None):
            return x @ y

    np.testing.assert_allclose(Linear()(X, 2 * X), np.full((3, 3), 4.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hx.BayesianSearch.init(LINE, n_max=4, kernel=Linear(), **SMALL)
