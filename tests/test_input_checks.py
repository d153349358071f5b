"""Every value that enters a search is checked, and numbers are numbers.

Outside its space, a value is a :class:`~hyperoptax.errors.SpaceError` naming the parameter, the value and
the space (never a NaN in the GP, never a silent change); a value inside the space that is not one of its
points (a non-integer of an integer space) is moved onto it with a ``ValueSnappedWarning`` saying what
changed. Kernels and acquisitions check their numbers; NumPy and JAX scalars count as numbers everywhere.
Each reproduction of issue 12 has its test here.
"""

from __future__ import annotations

import math
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hyperoptax as hx
from hyperoptax import spaces as sp
from hyperoptax.errors import ConfigurationError, ResultsDroppedWarning, SpaceError, ValueSnappedWarning

# One small BayesianSearch configuration for the whole module: its steps compile once.
SMALL = dict(n_candidates=16, n_restarts=1, n_lbfgs_steps=2, n_hparam_steps=2, n_parallel=2)
SPACE = {
    "lr": hx.LogSpace(1e-4, 1e-1),
    "x": hx.LinearSpace(0, 1),
    "layers": hx.QLinearSpace(1, 4),
    "opt": hx.DiscreteSpace(["adam", "sgd"]),
}


def _batch(**values):
    """A one-configuration params batch: the midpoint, with ``values`` replacing entries."""
    config = {"lr": 1e-2, "x": 0.5, "layers": 2, "opt": 0, **values}
    return {k: jnp.asarray([v], jnp.float32) if not isinstance(v, str) else [v] for k, v in config.items()}


@pytest.fixture(scope="module")
def search():
    return hx.BayesianSearch.init(SPACE, n_max=4, **SMALL)


# --------------------------------------------------------------------------
# The step API (update_state)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, message",
    [
        # The reproductions: each was accepted, -1 and 0 encoded as NaN / -inf in the GP.
        (dict(lr=-1.0), "params['lr'] = -1.0 is outside LogSpace(0.0001, 0.1)"),
        (dict(lr=0.0), "params['lr'] = 0.0 is outside LogSpace(0.0001, 0.1)"),
        (dict(x=5.0), "params['x'] = 5.0 is outside LinearSpace(0, 1): values must lie in [0.0, 1.0]"),
        (dict(opt=7), "params['opt'] = 7.0 is not a category of DiscreteSpace(['adam', 'sgd'])"),
        (dict(layers=9), "params['layers'] = 9.0 is outside QLinearSpace(1, 4)"),
        (dict(x=float("nan")), "params['x'] = nan is not a finite number"),
        (dict(lr=float("inf")), "params['lr'] = inf is not a finite number"),
        (dict(opt="rmsprop"), "params['opt'] = 'rmsprop' is not one of ['adam', 'sgd']"),
    ],
)
def test_update_state_refuses_values_outside_the_space(search, values, message):
    state, opt = search
    with pytest.raises(SpaceError, match=re.escape(message)):
        opt.update_state(state, jax.random.key(0), jnp.array([0.5]), _batch(**values))


def test_an_out_of_range_category_no_longer_reaches_best_params_as_an_index_error(search):
    state, opt = search
    with pytest.raises(SpaceError):
        opt.update_state(state, jax.random.key(0), jnp.array([0.5]), _batch(opt=7))
    # The category itself works too, and comes back as itself.
    state = opt.update_state(state, jax.random.key(0), jnp.array([0.5]), _batch(opt="sgd"))
    assert opt.best_params(state)["opt"] == "sgd"


def test_values_on_the_bounds_as_the_user_writes_them_pass_without_a_warning(search):
    # 0.1 is 0.10000000149 in float32, above the bound in float64: within the float32 slack, it is on it.
    state, opt = search
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for lr in (1e-4, 0.1):
            new = opt.update_state(state, jax.random.key(0), jnp.array([0.5]), _batch(lr=lr, x=1.0))
            assert float(new.X[0, 1]) == pytest.approx(lr, rel=1e-6)


def test_a_non_integer_of_an_integer_space_is_rounded_with_a_warning(search):
    state, opt = search
    with pytest.warns(ValueSnappedWarning, match=re.escape("params['layers'] = 2.4") + ".*QLinearSpace\\(1, 4\\); recorded as 2.0"):
        new = opt.update_state(state, jax.random.key(0), jnp.array([0.5]), _batch(layers=2.4))
    assert float(new.X[0, 0]) == 2.0
    assert opt.best_params(new)["layers"] == 2


def test_a_number_between_discrete_values_is_snapped_with_a_warning():
    space = {"width": hx.DiscreteSpace([16, 32, 64])}
    state, opt = hx.RandomSearch.init(space, n_max=4)
    with pytest.warns(ValueSnappedWarning, match=re.escape("params['width'] = 30.0 is not a value of DiscreteSpace([16, 32, 64]); recorded as 32.0")):
        state = opt.update_state(state, jax.random.key(0), jnp.array([1.0]), {"width": jnp.array([30.0])})
    assert opt.best_params(state) == {"width": 32}
    with pytest.raises(SpaceError, match=re.escape("params['width'] = 100.0 is outside DiscreteSpace([16, 32, 64])")):
        opt.update_state(state, jax.random.key(0), jnp.array([1.0]), {"width": jnp.array([100.0])})


def test_the_batches_a_search_proposes_pass_the_check_unchanged(search):
    state, opt = search
    params = opt.get_next_params(state, jax.random.key(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = opt.update_state(state, jax.random.key(2), jnp.array([0.1, 0.2]), params)
    np.testing.assert_array_equal(new.X[:2], sp.flatten_params(SPACE, params))


# --------------------------------------------------------------------------
# Property tests: the check itself
# --------------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def interval_and_inside(draw):
    lo = draw(finite)
    hi = lo + draw(st.floats(1e-3, 1e6))
    return lo, hi, draw(st.floats(lo, hi))


@settings(max_examples=60, deadline=None)
@given(interval_and_inside())
def test_any_value_inside_a_linear_space_round_trips(case):
    lo, hi, value = case
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = hx.LinearSpace(lo, hi).check(np.array([value]), "v")
    assert out[0] == value


@settings(max_examples=60, deadline=None)
@given(interval_and_inside(), st.floats(1e-3, 1e6), st.booleans())
def test_any_value_outside_a_linear_space_raises(case, distance, below):
    lo, hi, _ = case
    # Within 4 float32 ulps of a bound a value is on it (a float32 round trip moves it that much): go
    # further out than that.
    offset = max(distance * (hi - lo), 1e-5 * max(abs(lo), abs(hi), 1.0))
    value = lo - offset if below else hi + offset
    with pytest.raises(SpaceError, match=re.escape("v = ")):
        hx.LinearSpace(lo, hi).check(np.array([value]), "v")


@settings(max_examples=60, deadline=None)
@given(st.floats(-8, 0), st.floats(0.1, 8), st.floats(0, 1))
def test_any_value_inside_a_log_space_round_trips_and_outside_raises(log_lo, log_span, t):
    lo, hi = 10.0**log_lo, 10.0 ** (log_lo + log_span)
    space = hx.LogSpace(lo, hi)
    value = min(max(lo * (hi / lo) ** t, lo), hi)
    assert space.check(np.array([value]), "v")[0] == value
    for outside in (lo / 2, hi * 2, 0.0, -lo):
        with pytest.raises(SpaceError, match="outside LogSpace"):
            space.check(np.array([outside]), "v")


@settings(max_examples=40, deadline=None)
@given(st.integers(-1000, 1000), st.integers(1, 50), st.data())
def test_integers_round_trip_non_integers_are_rounded_with_a_warning(lo, span, data):
    space = hx.QLinearSpace(lo, lo + span)
    k = data.draw(st.integers(lo, lo + span))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert space.check(np.array([float(k)]), "k")[0] == k
    value = k + data.draw(st.floats(0.01, 0.49)) * (1 if k < lo + span else -1)
    with pytest.warns(ValueSnappedWarning, match=f"recorded as {float(k)!r}"):
        assert space.check(np.array([value]), "k")[0] == k


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.data())
def test_category_indices_round_trip_others_raise(k, data):
    space = hx.DiscreteSpace([f"c{i}" for i in range(k)])
    i = data.draw(st.integers(0, k - 1))
    assert space.check(np.array([i]), "c")[0] == i
    bad = data.draw(st.one_of(st.integers(k, 100), st.integers(-100, -1), st.floats(0.1, 0.9).map(lambda f: i + f)))
    with pytest.raises(SpaceError, match="is not a category"):
        space.check(np.array([bad]), "c")


@pytest.mark.parametrize("leaf", [hx.LinearSpace(0, 1), hx.LogSpace(1e-3, 1), hx.QLogSpace(1, 64),
                                  hx.DiscreteSpace([1, 2]), hx.DiscreteSpace(["a", "b"])], ids=repr)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_inf_parameters_raise(leaf, value):
    with pytest.raises(SpaceError, match="is not a finite number"):
        sp.check_values({"p": leaf}, np.array([[value]]))


# --------------------------------------------------------------------------
# GPFIFOSearcher
# --------------------------------------------------------------------------

FIFO_SPACE = {"x": hx.LinearSpace(0.0, 1.0), "k": hx.QLinearSpace(0, 4), "opt": hx.DiscreteSpace(["a", "b"])}


def test_searcher_refuses_out_of_range_results_instead_of_clipping_them():
    s = hx.GPFIFOSearcher(FIFO_SPACE, "loss", random_seed=0)
    # Was recorded as {"x": 1.0, "k": 4}.
    with pytest.raises(SpaceError, match=re.escape("config['x'] = 5.0 is outside LinearSpace(0.0, 1.0)")):
        s.on_trial_result("t", {"x": 5.0, "k": 99, "opt": "a"}, {"loss": 1.0})
    with pytest.raises(SpaceError, match=re.escape("config['k'] = 99.0 is outside QLinearSpace(0, 4)")):
        s.on_trial_result("t", {"x": 0.5, "k": 99, "opt": "a"}, {"loss": 1.0})
    with pytest.raises(SpaceError, match=re.escape("config['opt'] = 'c' is not one of ['a', 'b']")):
        s.on_trial_result("t", {"x": 0.5, "k": 1, "opt": "c"}, {"loss": 1.0})
    assert s.get_state()["trials"] == []


def test_searcher_refuses_out_of_range_points_to_evaluate():
    # Was proposed as x=0.0.
    with pytest.raises(SpaceError, match=re.escape("config['x'] = -3.0 is outside LinearSpace(0.0, 1.0)")):
        hx.GPFIFOSearcher(FIFO_SPACE, "loss", points_to_evaluate=[{"x": -3}], random_seed=0)
    with pytest.raises(SpaceError, match=re.escape("config['x'] = nan is not a finite number")):
        hx.GPFIFOSearcher(FIFO_SPACE, "loss", points_to_evaluate=[{"x": float("nan")}], random_seed=0)
    with pytest.raises(SpaceError, match=re.escape("config['x'] = 'big' is not a number")):
        hx.GPFIFOSearcher(FIFO_SPACE, "loss", points_to_evaluate=[{"x": "big"}], random_seed=0)


def test_searcher_rounds_a_non_integer_with_a_warning_and_keeps_user_floats():
    s = hx.GPFIFOSearcher(FIFO_SPACE, "loss", random_seed=0)
    with pytest.warns(ValueSnappedWarning, match=re.escape("config['k'] = 2.4 is not an integer of QLinearSpace(0, 4); recorded as 2.0")):
        s.on_trial_result("t", {"x": 0.3, "k": 2.4, "opt": "b"}, {"loss": 1.0})
    assert s.get_state()["trials"][0]["config"] == {"x": 0.3, "k": 2, "opt": "b"}


def test_searcher_takes_numpy_and_jax_scalars_as_numbers():
    s = hx.GPFIFOSearcher(FIFO_SPACE, "loss", random_seed=0)
    s.on_trial_result(0, {"x": np.float64(0.25), "k": np.int64(3), "opt": np.str_("a")}, {"loss": np.float32(0.5)})
    s.on_trial_result(1, {"x": jnp.float32(0.75), "k": jnp.int32(1), "opt": "b"}, {"loss": jnp.asarray(0.25)})
    s.on_trial_result(2, {"x": 0.5, "k": 2, "opt": "a"}, {"loss": jnp.asarray([0.125])})
    trials = s.get_state()["trials"]
    assert [t["status"] for t in trials] == ["observed"] * 3
    assert [t["metric"] for t in trials] == [0.5, 0.25, 0.125]
    assert trials[0]["config"] == {"x": 0.25, "k": 3, "opt": "a"} and type(trials[1]["config"]["k"]) is int
    with pytest.raises(ConfigurationError, match=re.escape("result['loss'] = 'low' is not a number")):
        s.on_trial_result(3, {"x": 0.5, "k": 2, "opt": "a"}, {"loss": "low"})
    with pytest.raises(ConfigurationError, match="opt_nstarts must be an integer >= 1"):
        hx.GPFIFOSearcher(FIFO_SPACE, "loss", opt_nstarts=1.5)
    assert hx.GPFIFOSearcher(FIFO_SPACE, "loss", num_init_random=np.int64(2))._options["num_init_random"] == 2


def test_cost_attr_is_recorded_in_the_state_and_survives_a_clone():
    s = hx.GPFIFOSearcher(FIFO_SPACE, "loss", cost_attr="elapsed", random_seed=0)
    assert s.cost_attr == "elapsed"
    c = s.get_config(trial_id=0)
    s.on_trial_result(0, c, {"loss": 0.5, "elapsed": np.float32(12.5)})
    s.on_trial_result(1, {"x": 0.1, "k": 0, "opt": "b"}, {"loss": float("nan")})  # a failure may have no cost
    trials = s.get_state()["trials"]
    assert [(t["status"], t["cost"]) for t in trials] == [("observed", 12.5), ("failed", None)]
    clone = s.clone_from_state(s.get_state())
    assert clone.get_state()["trials"] == trials
    with pytest.raises(ConfigurationError, match=re.escape("cost_attr='elapsed' is set") + ".*'elapsd'"):
        s.on_trial_result(2, c, {"loss": 0.5, "elapsd": 3.0})
    with pytest.raises(ConfigurationError, match="cost >= 0"):
        s.on_trial_result(2, c, {"loss": 0.5, "elapsed": -1.0})
    # Without cost_attr the cost is not read.
    plain = hx.GPFIFOSearcher(FIFO_SPACE, "loss", random_seed=0)
    plain.on_trial_result(0, c, {"loss": 0.5, "elapsed": 3.0})
    assert plain.get_state()["trials"][0]["cost"] is None


def test_with_a_resource_each_reports_cost_is_stored_and_numbers_are_numbers():
    # Syne Tune's contract: with resource_attr and cost_attr, cost values are read from each report and
    # stored in the state.
    s = hx.GPFIFOSearcher(FIFO_SPACE, "loss", resource_attr="epoch", max_resource=9, cost_attr="elapsed",
                          random_seed=0)
    c = s.get_config(trial_id=0)
    s.on_trial_result(0, c, {"loss": np.float32(0.5), "epoch": np.int64(1), "elapsed": 2.0})
    s.on_trial_result(0, c, {"loss": jnp.asarray(0.25), "epoch": jnp.int32(3), "elapsed": np.float64(6.5)})
    s.on_trial_complete(0)
    (trial,) = s.get_state()["trials"]
    assert trial["status"] == "observed" and trial["cost"] == 6.5
    assert trial["observations"] == [[1.0, 0.5, 2.0], [3.0, 0.25, 6.5]]
    assert s.clone_from_state(s.get_state()).get_state()["trials"] == [trial]
    with pytest.raises(ConfigurationError, match=re.escape("epoch=12.0 is outside [1, max_resource=9]")):
        s.on_trial_result(1, c, {"loss": 0.5, "epoch": 12, "elapsed": 1.0})
    with pytest.raises(ConfigurationError, match="cost >= 0"):
        s.on_trial_result(1, c, {"loss": 0.5, "epoch": 2})


def test_opt_nstarts_one_fits_from_one_start_only():
    from hyperoptax import fifo_model as fm

    # A start far out (length scales e^5 on the unit square: a flat, bad region) and 5 L-BFGS iterations:
    # from there alone the fit cannot reach the data's length scales; the prior's center, the second start,
    # does. opt_nstarts=1 used to run both starts, exactly like 2.
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 1.0, (12, 2))
    c = np.sin(12.0 * X[:, 0]) + np.cos(9.0 * X[:, 1])
    space = {"a": hx.LinearSpace(0.0, 1.0), "b": hx.LinearSpace(0.0, 1.0)}
    fitted = {}
    with jax.enable_x64(True):
        Xb, cb, valid = jnp.asarray(X), jnp.asarray(c), jnp.ones(12, bool)
        for n in (1, 2):
            cfg = hx.GPFIFOSearcher(space, "loss", opt_nstarts=n, opt_maxiter=5)._cfg
            init = fm.default_params(cfg)
            init = init._replace(gp=init.gp._replace(log_length_scale=jnp.full(2, 5.0)))
            params = fm.fit(cfg, init, Xb, cb, valid, jax.random.key(0))
            z = cfg.model.targets(params, -cb, valid)[0]
            fitted[n] = (np.asarray(params.gp.log_length_scale), float(cfg.model.objective(params, Xb, z, valid)))
    (ls_one, f_one), (ls_two, f_two) = fitted[1], fitted[2]
    assert np.all(ls_one > 3.0) and np.all(ls_two < 1.0), fitted
    assert f_two < f_one - 10.0, fitted


# --------------------------------------------------------------------------
# Kernels and acquisitions check their numbers
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: hx.Matern(length_scale=-1.0), "length_scale must be a positive finite number"),
        (lambda: hx.Matern(length_scale=float("nan")), "got nan"),
        (lambda: hx.Matern((0.5, 0.0)), r"got \(0.5, 0.0\)"),
        (lambda: hx.RBF(length_scale="1"), "length_scale"),
        (lambda: hx.RBF(amplitude=0.0), "amplitude must be a positive finite number"),
        (lambda: hx.Matern(nu=True), "nu=True"),
        (lambda: hx.EI(xi=-0.1), "xi must be a finite number >= 0"),
        (lambda: hx.PI(xi=float("inf")), "xi must be"),
        (lambda: hx.LogEI(xi="0"), "xi must be"),
        (lambda: hx.UCB(kappa=float("nan")), "kappa must be"),
        (lambda: hx.UCBHallucination(kappa=-2.0), "kappa must be"),
        (lambda: hx.ConstantHallucination(value=float("nan")), "value must be a finite number"),
    ],
)
def test_kernel_and_acquisition_constructors_check_their_numbers(make, message):
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_negative_length_scale_no_longer_reaches_the_state():
    # Was accepted: init put log(-1) = NaN length scales into the state.
    with pytest.raises(ConfigurationError, match="length_scale"):
        hx.BayesianSearch.init(SPACE, n_max=4, kernel=hx.Matern(length_scale=-1.0))


def test_kernel_and_acquisition_numbers_may_be_numpy_or_jax_scalars():
    kernel = hx.Matern(length_scale=np.float32(0.5), nu=np.float64(2.5), amplitude=jnp.float32(2.0))
    assert kernel == hx.Matern(0.5, 2.5, 2.0) and hash(kernel) == hash(hx.Matern(0.5, 2.5, 2.0))
    assert hx.RBF(np.array([0.2, 0.7])).length_scale == (pytest.approx(0.2), pytest.approx(0.7))
    assert float(hx.UCB(kappa=np.float32(1.5))(jnp.zeros(1), jnp.ones(1))[0]) == 1.5
    state, opt = hx.BayesianSearch.init(SPACE, n_max=np.int64(4), **{**SMALL, "n_parallel": np.int64(2)})
    assert opt.n_parallel == 2 and type(opt.n_parallel) is int and state.X.shape == (4, 4)


# --------------------------------------------------------------------------
# Results past n_max
# --------------------------------------------------------------------------


def test_results_past_n_max_are_dropped_with_one_warning_naming_the_n_max_to_use():
    space = {"x": hx.LinearSpace(0.0, 1.0)}
    state, opt = hx.RandomSearch.init(space, n_max=5, n_parallel=2)
    with pytest.warns(ResultsDroppedWarning) as caught:
        final, (_, results) = opt.optimize(state, jax.random.key(0), lambda k, p: p["x"])
    assert len(results) == 3 and int(final.n_observed) == 5
    assert len(caught) == 1
    assert "evaluates 6 configurations" in str(caught[0].message) and "the last 1 results" in str(caught[0].message)
    assert "Pass n_max=6" in str(caught[0].message)
    with pytest.warns(ResultsDroppedWarning, match=re.escape("2 of 2 results were not recorded")) as caught:
        again = opt.update_state(final, jax.random.key(1), jnp.array([0.1, 0.2]), {"x": jnp.array([0.1, 0.2])})
    assert "Pass n_max=7" in str(caught[0].message) and len(caught) == 1
    np.testing.assert_array_equal(again.y, final.y)
    with pytest.warns(ResultsDroppedWarning, match="the last 3 results"):
        opt.optimize_scan(state, jax.random.key(0), lambda k, p: p["x"], n_iterations=2 + 2)
    # A sweep that fits says nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.optimize(state, jax.random.key(0), lambda k, p: p["x"], n_iterations=2)


# --------------------------------------------------------------------------
# The Ray Tune adapter
# --------------------------------------------------------------------------


def test_ray_adapter_records_numpy_and_jax_metrics_as_results():
    pytest.importorskip("ray.tune")
    from hyperoptax.integrations.ray import HyperoptaxSearch

    search = HyperoptaxSearch(space={"x": hx.LinearSpace(0.0, 1.0)}, metric="loss", mode="min", random_seed=0,
                              cost_attr="time_total_s")
    for i, value in enumerate([np.float32(0.5), jnp.asarray(0.25), np.float64(0.125), 1, float("nan"), "n/a"]):
        search.suggest(f"t{i}")
        search.on_trial_complete(f"t{i}", {"loss": value, "time_total_s": np.float64(1.5)})
    trials = search.gp_searcher.get_state()["trials"]
    # np.float32 used to be recorded as a failed trial.
    assert [t["status"] for t in trials] == ["observed"] * 4 + ["failed"] * 2
    assert [t["metric"] for t in trials[:4]] == [0.5, 0.25, 0.125, 1.0]
    assert trials[0]["cost"] == 1.5


# --------------------------------------------------------------------------
# The driver: a Python objective (not traceable) may return any kind of number
# --------------------------------------------------------------------------


def test_a_python_objective_may_return_numpy_or_jax_scalars():
    space = {"x": hx.LinearSpace(0.0, 1.0)}
    state, opt = hx.RandomSearch.init(space, n_max=4, n_parallel=4)
    kinds = [np.float32, lambda v: jnp.asarray(v), lambda v: np.asarray([v]), lambda v: int(v > 0.5)]

    def objective(key, params):
        x = float(params["x"])  # float() of a tracer: evaluated one configuration at a time
        return kinds[int(x * 1e6) % 4](x)

    final, (params, results) = opt.optimize(state, jax.random.key(0), objective, n_iterations=1)
    assert int(final.n_observed) == 4 and np.isfinite(np.asarray(results[0])).all()
    with pytest.raises(hx.errors.ObjectiveError, match="must return a real number.*str 'low'"):
        opt.optimize(state, jax.random.key(0), lambda k, p: "low" if float(p["x"]) >= 0 else 0.0, n_iterations=1)
    with pytest.raises(hx.errors.ObjectiveError, match=r"of shape \(2,\)"):
        opt.optimize(state, jax.random.key(0), lambda k, p: np.ones(2) * float(p["x"]), n_iterations=1)
