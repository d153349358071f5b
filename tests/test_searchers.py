"""GPFIFOSearcher: options, fantasies, state, duplicates, restrictions, transfer learning, transforms.

Compilation dominates the cost here, so the tests share a handful of option
sets (each compiles fit / propose / refine once).
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm

import hyperoptax as hx
from hyperoptax import boxcox as bc
from hyperoptax import fifo_model as fm
from hyperoptax import gp, kernels, warping
from hyperoptax.errors import ConfigurationError
from hyperoptax.fifo_model import subsample
from hyperoptax.searchers import DEFAULT_OPTIONS, GPFIFOSearcher

SPACE = {"x": hx.LinearSpace(-5.0, 10.0), "y": hx.LogSpace(1e-2, 10.0)}
FINITE = {"n": hx.QLinearSpace(0, 3), "opt": hx.DiscreteSpace(["adam", "sgd"])}


def branin_like(config):
    x, y = config["x"], math.log10(config["y"])
    return (y - 0.3 * x) ** 2 + 0.1 * math.cos(x) + 0.05 * x


def run(searcher, n, objective, n_pending=2, fail_every=0, metric="loss"):
    """Asynchronous loop: keep ``n_pending`` trials running, finish the oldest first."""
    running, suggested = {}, []
    for trial_id in range(n):
        config = searcher.get_config(trial_id=trial_id)
        if config is None:
            break
        suggested.append(config)
        running[trial_id] = config
        if len(running) > n_pending:
            tid = min(running)
            done = running.pop(tid)
            value = float("nan") if fail_every and tid % fail_every == 0 else objective(done)
            searcher.on_trial_result(tid, done, {metric: value})
    return suggested, running


# --- options ----------------------------------------------------------------


def test_defaults_match_the_spec():
    expected = dict(
        num_init_random=3, num_init_candidates=250, num_fantasy_samples=20, no_fantasizing=False,
        input_warping=False, boxcox_transform=False, gp_base_kernel="matern52-ard", acq_function="ei",
        initial_scoring="thompson_indep", skip_local_optimization=False, opt_nstarts=2, opt_maxiter=50,
        opt_warmstart=False, max_size_data_for_model=500, max_size_top_fraction=0.25, opt_skip_init_length=150,
        opt_skip_period=1, allow_duplicates=False, restrict_configurations=None, map_reward="1_minus_x",
        transfer_learning_model="matern52_product",
    )
    for name, value in expected.items():
        assert DEFAULT_OPTIONS[name] == value, name


@pytest.mark.parametrize(
    "options, fragment",
    [
        (dict(num_init_randm=3), "Did you mean 'num_init_random'"),
        (dict(acq_function="eii"), "Did you mean 'ei'"),
        (dict(gp_base_kernel="matern52_ard"), "Did you mean 'matern52-ard'"),
        (dict(initial_scoring="thompson"), "Did you mean 'thompson_indep'"),
        (dict(transfer_learning_model="matern52_prod"), "Did you mean 'matern52_product'"),
        (dict(map_reward="minus"), "Did you mean 'minus_x'"),
        (dict(acq_function="lcb", acq_function_kwargs={"kapa": 2.0}), "Did you mean 'kappa'"),
        (dict(num_fantasy_samples=0), "num_fantasy_samples must be an integer >= 1"),
        (dict(max_size_top_fraction=1.5), "max_size_top_fraction"),
        (dict(restrict_configurations=[{"x": 1.0, "y": 1.0}], skip_local_optimization=False), "skip_local"),
    ],
)
def test_bad_options_raise_with_hint(options, fragment):
    with pytest.raises(ConfigurationError, match=fragment.replace("(", r"\(")):
        GPFIFOSearcher(SPACE, "loss", **options)


def test_bad_mode_and_missing_metric():
    with pytest.raises(ConfigurationError, match="'min'"):
        GPFIFOSearcher(SPACE, "loss", mode="minimize")
    s = GPFIFOSearcher(SPACE, "loss", random_seed=0)
    c = s.get_config(trial_id=0)
    with pytest.raises(ConfigurationError, match="has no 'loss'"):
        s.on_trial_result(0, c, {"los": 1.0})


# --- reward mapping ---------------------------------------------------------


@pytest.mark.parametrize(
    "mode, map_reward, metric, criterion",
    [
        ("min", "minus_x", 0.3, 0.3),  # map_reward only applies to mode="max"
        ("max", "minus_x", 0.3, -0.3),
        ("max", "1_minus_x", 0.3, 0.7),
        ("max", "2.5_minus_x", 0.3, 2.2),
        ("max", "-1_minus_x", 0.3, -1.3),
        ("max", lambda x: 10.0 * x, 0.3, 3.0),
    ],
)
def test_map_reward(mode, map_reward, metric, criterion):
    s = GPFIFOSearcher(SPACE, "acc", mode=mode, map_reward=map_reward, random_seed=0)
    c = s.get_config(trial_id="a")
    s.on_trial_result("a", c, {"acc": metric})
    assert s._trials["a"]["criterion"] == pytest.approx(criterion)
    assert s._trials["a"]["metric"] == metric


# --- transforms: closed forms -----------------------------------------------


def test_kumaraswamy_closed_forms_and_inverse():
    x = jnp.linspace(0.01, 0.99, 41)
    np.testing.assert_allclose(warping.kumaraswamy(x, 1.0, 1.0), x, atol=1e-6)
    np.testing.assert_allclose(warping.kumaraswamy(x, 2.0, 1.0), x**2, atol=1e-6)
    np.testing.assert_allclose(warping.kumaraswamy(x, 1.0, 2.0), 1 - (1 - x) ** 2, atol=1e-6)
    xn = np.asarray(x, np.float64)
    for a, b in [(0.3, 0.5), (2.5, 0.7), (4.0, 6.0), (0.15, 9.0)]:
        np.testing.assert_allclose(warping.kumaraswamy(x, a, b), 1 - (1 - xn**a) ** b, rtol=2e-5, atol=1e-6)
        w = warping.kumaraswamy(x, a, b)
        inside = (w > 1e-4) & (w < 1 - 1e-4)  # where float32 keeps the inverse well conditioned
        np.testing.assert_allclose(warping.kumaraswamy_inverse(w, a, b)[inside], x[inside], rtol=2e-3, atol=1e-4)
    a, b = warping.shapes(warping.identity_params(3))
    np.testing.assert_allclose(a, 1.0, rtol=1e-6)
    np.testing.assert_allclose(b, 1.0, rtol=1e-6)
    lo, hi = warping.shapes(warping.WarpParams(jnp.full(2, -50.0), jnp.full(2, 50.0)))
    assert np.all(lo >= warping.LOWER * 0.999) and np.all(hi <= warping.UPPER * 1.001)


def test_warp_skips_categorical_coordinates():
    params = warping.WarpParams(jnp.array([1.0, 1.0, 1.0]), jnp.array([-1.0, -1.0, -1.0]))
    X = jnp.array([[0.3, 1.0, 0.0], [0.7, 0.0, 1.0]])
    W = warping.warp(params, X, jnp.array([True, False, False]))
    np.testing.assert_array_equal(W[:, 1:], X[:, 1:])
    a, b = warping.shapes(params)
    np.testing.assert_allclose(W[:, 0], 1 - (1 - X[:, 0] ** a[0]) ** b[0], rtol=1e-4)


@pytest.mark.parametrize("lam", [-1.0, -0.5, 0.0, 1e-7, 1e-5, 1e-3, 0.25, 0.5, 1.0, 1.5, 2.0])
def test_boxcox_closed_forms(lam):
    y = np.array([0.05, 0.5, 1.0, 2.0, 7.5, 40.0])
    expected = np.log(y) if lam == 0 else (y**lam - 1.0) / lam
    t = bc.boxcox(jnp.asarray(y, jnp.float32), lam)
    np.testing.assert_allclose(t, expected, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(bc.boxcox_inverse(t, lam), y, rtol=5e-5)
    # Jacobian: log dt/dy = (lam - 1) log y, checked against autodiff.
    grads = jax.vmap(jax.grad(lambda v: bc.boxcox(v, lam)))(jnp.asarray(y, jnp.float32))
    np.testing.assert_allclose(bc.log_jacobian(jnp.asarray(y), lam), np.sum(np.log(grads)), rtol=1e-4, atol=1e-4)


def test_boxcox_special_cases_and_parametrization():
    y = jnp.array([0.5, 2.0, 3.0])
    np.testing.assert_allclose(bc.boxcox(y, 1.0), y - 1.0, rtol=1e-6)
    np.testing.assert_allclose(bc.boxcox(y, 0.0), jnp.log(y), rtol=1e-6)
    # continuous through 0
    np.testing.assert_allclose(bc.boxcox(y, 1e-4 * 0.999), bc.boxcox(y, 1e-4 * 1.001), rtol=1e-5)
    for lam in (-0.9, 0.0, 1.0, 1.9):
        assert float(bc.lam_from_raw(bc.raw_from_lam(lam))) == pytest.approx(lam, abs=1e-5)
    assert np.isfinite(jax.grad(lambda l: bc.boxcox(y, l).sum())(0.0))


# --- fantasies ----------------------------------------------------------------


FANTASIZE = jax.jit(fm.fantasize, static_argnums=0)
ACQ = jax.jit(fm.acquisition_value, static_argnums=0)


def _model_inputs(seed=0, n=9, n_pending=3, n_pad=16, p_pad=4):
    rng = np.random.default_rng(seed)
    X = np.zeros((n_pad, 2), np.float32)
    X[:n] = rng.uniform(size=(n, 2))
    c = np.ones(n_pad, np.float32)
    c[:n] = np.sin(3 * X[:n, 0]) + X[:n, 1] ** 2
    Xp = np.zeros((p_pad, 2), np.float32)
    Xp[:n_pending] = rng.uniform(size=(n_pending, 2))
    return (jnp.asarray(X), jnp.asarray(c), jnp.arange(n_pad) < n, jnp.asarray(Xp), jnp.arange(p_pad) < n_pending)


def test_fantasized_ei_is_the_average_over_samples():
    s = GPFIFOSearcher({"a": hx.LinearSpace(0.0, 1.0), "b": hx.LinearSpace(0.0, 1.0)}, "loss", num_fantasy_samples=7)
    cfg = s._cfg
    X, c, valid, Xp, pmask = _model_inputs()
    defaults = fm.default_params(cfg)
    model_params = defaults._replace(
        gp=defaults.gp._replace(log_length_scale=jnp.log(jnp.array([0.3, 0.5])), log_noise=jnp.array(-4.0))
    )
    fant = FANTASIZE(cfg, model_params, X, c, valid, Xp, pmask, jax.random.PRNGKey(3))
    U = jax.random.uniform(jax.random.PRNGKey(4), (5, 2))
    got = ACQ(cfg, fant, U)

    params = model_params.gp
    z, _, _ = gp.standardize(-c, valid)  # minimized criterion -> maximized target
    X_all = jnp.concatenate([X, Xp])
    valid_all = jnp.concatenate([valid, pmask])
    targets = fant.residuals + params.mean
    np.testing.assert_allclose(targets[:, : X.shape[0]][:, valid], jnp.broadcast_to(z[valid], (7, 9)), atol=1e-5)
    draws = targets[:, X.shape[0]:][:, pmask]
    assert draws.shape == (7, 3) and float(jnp.std(draws, axis=0).min()) > 0  # distinct samples
    eis = []
    for s_ in range(7):
        post = gp.condition(cfg.model.kernel, params, X_all, jnp.where(valid_all, targets[s_], 0.0), valid_all)
        mean, std = gp.predict(cfg.model.kernel, post, U)
        best = max(float(z[valid].max()), float(draws[s_].max()))
        a = mean - best
        eis.append(a * norm.cdf(a / std) + std * norm.pdf(a / std))
    np.testing.assert_allclose(got, np.mean(eis, axis=0), rtol=1e-4, atol=1e-6)

    # logei: log of the same average; lcb: average of mean + kappa * std.
    import dataclasses
    log_cfg = dataclasses.replace(cfg, acquisition=hx.LogEI(xi=0.0))
    np.testing.assert_allclose(ACQ(log_cfg, fant, U), np.log(np.mean(eis, axis=0)), rtol=1e-3)
    lcb_cfg = dataclasses.replace(cfg, acquisition=hx.UCB(kappa=2.0))
    means, std = fm._per_sample(cfg, fant, U)
    np.testing.assert_allclose(ACQ(lcb_cfg, fant, U), means.mean(0) + 2.0 * std, rtol=1e-5)


def test_fantasy_draws_follow_the_joint_posterior():
    s = GPFIFOSearcher({"a": hx.LinearSpace(0.0, 1.0), "b": hx.LinearSpace(0.0, 1.0)}, "loss",
                       num_fantasy_samples=4000)
    X, c, valid, Xp, pmask = _model_inputs(n_pending=2)
    model_params = fm.default_params(s._cfg)
    fant = FANTASIZE(s._cfg, model_params, X, c, valid, Xp, pmask, jax.random.PRNGKey(0))
    draws = (fant.residuals + model_params.gp.mean)[:, 16:18]
    z, _, _ = gp.standardize(-c, valid)
    post = gp.condition(s._cfg.model.kernel, model_params.gp, X, z, valid)
    mean, cov = gp.predict_joint(s._cfg.model.kernel, post, Xp[:2])
    cov = cov + (jnp.exp(model_params.gp.log_noise) + gp.noise_floor(cov.dtype) + 1e-6) * jnp.eye(2)
    np.testing.assert_allclose(draws.mean(0), mean, atol=4 * float(jnp.sqrt(cov.max() / 4000)) + 1e-3)
    np.testing.assert_allclose(np.cov(np.asarray(draws).T), cov, atol=0.1 * float(cov.max()) + 1e-4)


def test_thompson_scores_average_one_draw_per_fantasy_sample():
    """Syne Tune's thompson_indep draws once per fantasy sample and averages: with pending trials
    the draw's spread is std / sqrt(S); without, every sample is the same and it is std."""
    n_samples = 16
    s = GPFIFOSearcher({"a": hx.LinearSpace(0.0, 1.0), "b": hx.LinearSpace(0.0, 1.0)}, "loss",
                       num_fantasy_samples=n_samples)
    cfg = s._cfg
    X, c, valid, Xp, pmask = _model_inputs()
    model_params = fm.default_params(cfg)
    U = jax.random.uniform(jax.random.PRNGKey(5), (4000, 2))
    score = jax.jit(fm.initial_scores, static_argnums=0)
    for pending, variance in ((pmask, 1.0 / n_samples), (jnp.zeros_like(pmask), 1.0)):
        fant = FANTASIZE(cfg, model_params, X, c, valid, Xp, pending, jax.random.PRNGKey(3))
        means, std = fm._per_sample(cfg, fant, U)
        eps = (score(cfg, fant, U, jax.random.PRNGKey(6), jnp.any(pending)) - means.mean(0)) / std
        assert float(jnp.mean(eps)) == pytest.approx(0.0, abs=5 * math.sqrt(variance / 4000))
        assert float(jnp.var(eps)) == pytest.approx(variance, rel=0.1)  # 4.5 standard errors


# --- the main loop, state -----------------------------------------------------

MAIN = dict(num_init_random=3, random_seed=1)


def test_suggestions_are_decoded_and_inside_the_space():
    s = GPFIFOSearcher({**SPACE, "k": hx.QLinearSpace(1, 4), "opt": hx.DiscreteSpace(["a", "b"]), "fixed": 7},
                       "loss", **MAIN)
    first = s.get_config(trial_id=0)
    assert first["x"] == pytest.approx(2.5) and first["y"] == pytest.approx(math.sqrt(10 * 1e-2), rel=1e-5)
    assert first["k"] in (2, 3) and first["opt"] == "a" and first["fixed"] == 7  # the midpoint, constants kept
    for i in range(1, 6):
        c = s.get_config(trial_id=i)
        assert isinstance(c["x"], float) and isinstance(c["k"], int) and c["opt"] in ("a", "b")
        assert -5 <= c["x"] <= 10 and 1e-2 <= c["y"] <= 10


def test_the_model_computes_in_float64_and_leaves_the_global_flag_alone():
    x64_before = jax.config.jax_enable_x64
    s = GPFIFOSearcher(SPACE, "loss", **MAIN)
    run(s, 6, branin_like)
    assert s._params.gp.log_length_scale.dtype == np.float64
    assert jax.config.jax_enable_x64 == x64_before


def test_state_roundtrip_through_json_gives_the_same_next_suggestion():
    s = GPFIFOSearcher(SPACE, "loss", **MAIN)
    _, running = run(s, 9, branin_like, n_pending=2, fail_every=4)
    assert running and any(t["status"] == "failed" for t in s._trials.values())
    state = json.loads(json.dumps(s.get_state()))
    clone = s.clone_from_state(state)
    assert clone.get_config(trial_id=100) == s.get_config(trial_id=100)
    assert clone.get_config(trial_id=101) == s.get_config(trial_id=101)
    # The model phase was reached, so GP parameters are part of the state.
    assert state["theta"] is not None


# get_state()["theta"] as GPFIFOSearcher wrote it before its parameters became a NamedTuple (input warping
# and Box-Cox on): the format is the contract.
THETA_JSON = (
    '{"gp": [[-1.0250991301725267, 0.3493521528752973], 0.1398701121559836, -12.003969819172188, '
    '-0.18169961347213534], "lam": 0.8573065441294773, "warp": [[0.5037353517179308, -0.008877419106044202], '
    '[0.977218957098495, -0.13712591648345837]]}'
)


def test_model_parameters_keep_their_json_format_exactly():
    s = GPFIFOSearcher(SPACE, "loss", input_warping=True, boxcox_transform=True, random_seed=0)
    state = json.loads(json.dumps(s.get_state()))
    state["theta"], state["n_obs_at_fit"] = json.loads(THETA_JSON), 4
    clone = s.clone_from_state(state)
    params = clone._params
    assert params.gp.log_length_scale.dtype == np.float64
    assert float(params.raw_lam) == 0.8573065441294773 and float(params.warp.raw_b[1]) == -0.13712591648345837
    assert json.dumps(clone.get_state()["theta"]) == THETA_JSON
    plain = GPFIFOSearcher(SPACE, "loss", random_seed=0)
    theta = {"gp": json.loads(THETA_JSON)["gp"]}
    with jax.enable_x64(True):  # as the searcher computes
        assert fm.params_to_json(fm.params_from_json(plain._cfg, theta)) == theta


def test_options_become_core_acquisitions_and_kernels():
    assert GPFIFOSearcher(SPACE, "l")._cfg.acquisition == hx.EI(xi=0.0)
    assert GPFIFOSearcher(SPACE, "l", acq_function="logei")._cfg.acquisition == hx.LogEI(xi=0.0)
    assert GPFIFOSearcher(SPACE, "l", acq_function="lcb")._cfg.acquisition == hx.UCB(kappa=1.0)
    lcb = GPFIFOSearcher(SPACE, "l", acq_function="lcb", acq_function_kwargs={"kappa": 2.5})
    assert lcb._cfg.acquisition == hx.UCB(kappa=2.5)
    model = GPFIFOSearcher(SPACE, "l")._cfg.model
    assert model.kernel == hx.Matern(nu=2.5) and model.prior == gp.SHORT_PRIOR
    # Over (configuration, resource) the longer sqrt(D) prior (measured in gp.py).
    mobster = GPFIFOSearcher(SPACE, "l", resource_attr="steps", max_resource=9)._cfg.model
    assert mobster.prior == gp.SQRT_D_PRIOR
    assert GPFIFOSearcher(SPACE, "l", gp_base_kernel="matern52-noard")._cfg.model.kernel == kernels.Subset(
        hx.Matern(nu=2.5), (0, 1), tied=True
    )
    space = {"task": hx.DiscreteSpace(["a", "b", "c"]), "x": hx.LinearSpace(0.0, 1.0)}
    tl = GPFIFOSearcher(space, "l", transfer_learning_task_attr="task", transfer_learning_active_task="b")
    assert tl._cfg.model.kernel == kernels.Product(
        kernels.Subset(hx.Matern(nu=2.5), (0, 1, 2), tied=True), kernels.Subset(hx.Matern(nu=2.5), (3,))
    )


def test_state_roundtrip_in_the_initial_phase_and_with_points():
    s = GPFIFOSearcher(SPACE, "loss", points_to_evaluate=[{"x": 1.0}, {"x": 2.0, "y": 0.5}], random_seed=5)
    assert s.get_config(trial_id=0)["x"] == 1.0
    clone = s.clone_from_state(json.loads(json.dumps(s.get_state())))
    assert clone.get_config(trial_id=1) == s.get_config(trial_id=1) == {"x": 2.0, "y": pytest.approx(0.5)}
    assert clone.get_config(trial_id=2) == s.get_config(trial_id=2)


def test_failed_and_nonfinite_results_are_never_data_but_count_as_initial():
    s = GPFIFOSearcher(SPACE, "loss", num_init_random=3, random_seed=0)
    for i, value in enumerate([float("nan"), float("inf")]):
        c = s.get_config(trial_id=i)
        s.on_trial_result(i, c, {"loss": value})
    c = s.get_config(trial_id=2)
    s.evaluation_failed(2)
    assert [t["status"] for t in s._trials.values()] == ["failed"] * 3
    # Initial phase is over (3 trials), but no data: still random, never the GP.
    assert s.get_config(trial_id=3) is not None and s._params is None
    s.on_trial_result(3, None, {"loss": 1.0})
    X, crit = s._model_data(jax.random.PRNGKey(0), [t for t in s._trials.values() if t["status"] == "observed"])
    assert crit.tolist() == [1.0]


# --- duplicates ---------------------------------------------------------------


@pytest.mark.parametrize("skip_local_optimization", [False, True])
def test_no_duplicates_in_a_finite_space_even_with_failures(skip_local_optimization):
    s = GPFIFOSearcher(FINITE, "loss", num_init_random=2, random_seed=3,
                       skip_local_optimization=skip_local_optimization)
    objective = lambda c: (c["n"] - 2) ** 2 + (c["opt"] == "sgd")
    suggested, _ = run(s, 20, objective, n_pending=1, fail_every=3)
    keys = [(c["n"], c["opt"]) for c in suggested]
    assert len(keys) == 8 and len(set(keys)) == 8  # every config once, then exhausted
    assert s.get_config(trial_id=99) is None


def test_duplicates_allowed():
    s = GPFIFOSearcher(FINITE, "loss", num_init_random=2, random_seed=3, allow_duplicates=True,
                       skip_local_optimization=True)
    suggested, _ = run(s, 14, lambda c: (c["n"] - 2) ** 2 + (c["opt"] == "sgd"), n_pending=1)
    assert len(suggested) == 14
    assert len({(c["n"], c["opt"]) for c in suggested}) < 14


# --- restricted configurations ------------------------------------------------


def test_restrict_configurations_only_returns_listed_configs():
    rng = np.random.default_rng(0)
    listed = [{"x": float(rng.uniform(-5, 10)), "y": float(10 ** rng.uniform(-2, 1))} for _ in range(7)]
    s = GPFIFOSearcher(SPACE, "loss", num_init_random=2, random_seed=0, restrict_configurations=listed)
    assert s._options["skip_local_optimization"] is True
    suggested, _ = run(s, 12, branin_like, n_pending=1, fail_every=5)
    allowed = {(round(c["x"], 5), round(c["y"], 5)) for c in listed}
    got = [(round(c["x"], 5), round(c["y"], 5)) for c in suggested]
    assert set(got) <= allowed and len(got) == len(set(got)) == 7
    assert s.get_config(trial_id=50) is None


# --- subsampling --------------------------------------------------------------


def test_subsample_keeps_the_best_fraction():
    rng = np.random.default_rng(0)
    crit = rng.normal(size=200)
    keep = subsample(crit, 40, 0.25, rng)
    assert len(keep) == 40 and len(set(keep.tolist())) == 40 and np.all(np.diff(keep) > 0)
    assert set(np.argsort(crit)[:10].tolist()) <= set(keep.tolist())
    np.testing.assert_array_equal(subsample(crit, 500, 0.25, rng), np.arange(200))
    assert set(subsample(crit, 40, 1.0, rng).tolist()) == set(np.argsort(crit)[:40].tolist())


@pytest.mark.parametrize("mode", ["min", "max"])
def test_searcher_subsampling_keeps_the_best_for_both_modes(mode):
    s = GPFIFOSearcher(SPACE, "m", mode=mode, max_size_data_for_model=12, max_size_top_fraction=0.5, random_seed=0)
    values = np.linspace(0.0, 1.0, 30)
    np.random.default_rng(1).shuffle(values)
    for i, v in enumerate(values):
        s.on_trial_result(i, {"x": float(i) / 3 - 5, "y": 1.0}, {"m": float(v)})
    observed = [t for t in s._trials.values() if t["status"] == "observed"]
    _, crit = s._model_data(jax.random.PRNGKey(0), observed)
    metrics = [s._trials[i]["metric"] for i in range(30)]
    kept = sorted(crit.tolist())
    best6 = sorted(metrics)[:6] if mode == "min" else sorted(metrics)[-6:]
    criteria_of_best = sorted(best6) if mode == "min" else sorted(1.0 - v for v in best6)
    assert len(crit) == 12
    np.testing.assert_allclose(kept[:6], criteria_of_best)


# --- transfer learning --------------------------------------------------------


@pytest.mark.parametrize("model", ["matern52_product", "matern52_same"])
def test_transfer_learning_proposes_only_active_task_configs(model):
    space = {"task": hx.DiscreteSpace(["old", "new"]), "x": hx.LinearSpace(0.0, 10.0), "k": hx.QLinearSpace(1, 8)}
    s = GPFIFOSearcher(
        space, "loss", num_init_random=2, random_seed=0, transfer_learning_task_attr="task",
        transfer_learning_active_task="new", transfer_learning_model=model,
        transfer_learning_active_config_space={"x": hx.LinearSpace(2.0, 5.0), "k": hx.QLinearSpace(2, 4)},
    )
    rng = np.random.default_rng(0)
    for i in range(10):  # data of the other task, all over the full space
        cfg = {"task": "old", "x": float(rng.uniform(0, 10)), "k": int(rng.integers(1, 9))}
        s.on_trial_result(f"old-{i}", cfg, {"loss": (cfg["x"] - 3) ** 2 + cfg["k"]})
    objective = lambda c: (c["x"] - 3.5) ** 2 + c["k"]
    suggested, _ = run(s, 8, objective, n_pending=1)
    assert len(suggested) == 8 and s._params is not None
    for c in suggested:
        assert c["task"] == "new" and 2.0 <= c["x"] <= 5.0 and 2 <= c["k"] <= 4, c


def test_transfer_learning_rejects_bad_settings():
    space = {"task": hx.DiscreteSpace(["a", "b"]), "x": hx.LinearSpace(0.0, 1.0)}
    with pytest.raises(ConfigurationError, match="Did you mean 'b'"):
        GPFIFOSearcher(space, "l", transfer_learning_task_attr="task", transfer_learning_active_task="bb")
    with pytest.raises(ConfigurationError, match="not inside"):
        GPFIFOSearcher(space, "l", transfer_learning_task_attr="task", transfer_learning_active_task="a",
                       transfer_learning_active_config_space={"x": hx.LinearSpace(0.5, 2.0)})


# --- warping, Box-Cox, other kernels/acquisitions in the loop -----------------------


def test_warping_and_boxcox_are_fitted_in_the_loop():
    s = GPFIFOSearcher(SPACE, "acc", mode="max", input_warping=True, boxcox_transform=True,
                       gp_base_kernel="matern52-noard", acq_function="lcb", initial_scoring="acq_func",
                       opt_nstarts=3, opt_warmstart=True, num_init_random=4, random_seed=0)
    objective = lambda c: 1.0 / (1.0 + branin_like(c) ** 2)  # accuracy-like, in (0, 1]
    suggested, _ = run(s, 12, objective, n_pending=2, metric="acc")
    assert len(suggested) == 12
    params = s._params
    with jax.enable_x64(True):  # the searcher's parameters are float64
        lam = float(bc.lam_from_raw(params.raw_lam))
        a, b = warping.shapes(params.warp)
    assert bc.LOWER < lam < bc.UPPER and np.all(np.isfinite(a)) and np.all(np.isfinite(b))
    assert lam != pytest.approx(1.0, abs=1e-4) or not np.allclose(a, 1.0)  # something was learned
    with pytest.raises(ConfigurationError, match="positive criterion"):
        s.on_trial_result(99, suggested[0], {"acc": 1.5})  # 1 - 1.5 < 0


def test_skip_period_reuses_parameters():
    s = GPFIFOSearcher(SPACE, "loss", num_init_random=3, opt_skip_init_length=4, opt_skip_period=3, random_seed=1)
    fits = []
    original = fm.fit

    def counting(*args):
        fits.append(int(np.asarray(args[4]).sum()))
        return original(*args)

    fm.fit = counting
    try:
        run(s, 12, branin_like, n_pending=0)
    finally:
        fm.fit = original
    # fits below 4 observations always, then only when (n - 4) % 3 == 0
    assert fits and all(n < 4 or (n - 4) % 3 == 0 for n in fits), fits
    assert any(n >= 4 for n in fits)
