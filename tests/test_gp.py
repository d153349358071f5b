"""The GP core: interpolation, standardization, masking, O(n²) append, hyperparameter fitting.

Not run under strict dtype promotion: ``gp.standardize`` divides float32 sums by
an int32 count, ``neg_log_marginal_likelihood`` multiplies ``valid.sum()``
(int32) by a Python float, ``fit_hyperparameters`` does both with ``n_obs``, and
Optax's Adam itself promotes its int32 step count.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hyperoptax as hx
from hyperoptax import RBF, Matern
from hyperoptax import gp as _gp


class _JittedGP:
    """The gp module with its entry points jitted (kernels are hashable, hence static).

    Op-by-op dispatch of the GP code costs seconds per test on a busy machine.
    """

    def __getattr__(self, name):
        return getattr(_gp, name)

    condition = staticmethod(jax.jit(_gp.condition, static_argnums=0))
    predict = staticmethod(jax.jit(_gp.predict, static_argnums=0))
    append = staticmethod(jax.jit(_gp.append, static_argnums=0))
    neg_log_marginal_likelihood = staticmethod(jax.jit(_gp.neg_log_marginal_likelihood, static_argnums=1))
    neg_log_posterior = staticmethod(jax.jit(_gp.neg_log_posterior, static_argnums=(1, 6)))
    fit_hyperparameters = staticmethod(
        jax.jit(
            _gp.fit_hyperparameters, static_argnums=(0, 5),
            static_argnames=("method", "center_start", "n_random_starts"),
        )
    )
    standardize = staticmethod(jax.jit(_gp.standardize))


gp = _JittedGP()

KERNEL = Matern(nu=2.5)


def fit(kernel, X, y, valid, init, n_steps, **options):
    """``fit_hyperparameters`` of the plain GP model with ``kernel``, from GP parameters ``init``."""
    return gp.fit_hyperparameters(_gp.GPModel(kernel), X, y, valid, _gp.ModelParams(init), n_steps, **options).gp

QUIET = gp.GPParams(  # near noise-free: the floor dominates
    log_length_scale=jnp.log(jnp.array([0.3])),
    log_amplitude=jnp.zeros(()),
    log_noise=jnp.full((), -20.0),
    mean=jnp.zeros(()),
)


def _data(n=8, d=1, seed=0):
    X = jax.random.uniform(jax.random.key(seed), (n, d))
    y = jnp.sin(6.0 * X[:, 0]) + (X[:, 1] if d > 1 else 0.0)
    return X, y


def _params(d, ls=0.3):
    return QUIET._replace(log_length_scale=jnp.full((d,), math.log(ls)))


def test_posterior_interpolates_noise_free_data():
    X, y = _data(8)
    post = gp.condition(KERNEL, QUIET, X, y, jnp.ones(8, bool))
    mean, std = gp.predict(KERNEL, post, X)
    np.testing.assert_allclose(mean, y, atol=1e-3)
    assert bool(jnp.all(std < 1e-2))
    # away from the data the model is uncertain again
    _, far_std = gp.predict(KERNEL, post, jnp.array([[3.0]]))
    assert float(far_std[0]) > 0.9


def test_predict_matches_closed_form():
    X, y = _data(6, d=2, seed=1)
    params = _params(2, 0.4)._replace(log_amplitude=jnp.float32(0.3), log_noise=jnp.float32(-4.0), mean=jnp.float32(0.2))
    Xs = jax.random.uniform(jax.random.key(2), (5, 2))
    post = gp.condition(KERNEL, params, X, y, jnp.ones(6, bool))
    mean, std = gp.predict(KERNEL, post, Xs)
    amp, ls = math.exp(0.3), np.full(2, 0.4)
    noise = math.exp(-4.0) + gp.noise_floor(jnp.float32) + 1e-6
    K = np.asarray(amp * KERNEL(X, X, ls), np.float64) + noise * np.eye(6)
    Ks = np.asarray(amp * KERNEL(Xs, X, ls), np.float64)
    ref_mean = 0.2 + Ks @ np.linalg.solve(K, np.asarray(y, np.float64) - 0.2)
    ref_var = amp - np.einsum("ij,ji->i", Ks, np.linalg.solve(K, Ks.T))
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(std, np.sqrt(ref_var), rtol=1e-3, atol=1e-4)


def test_masked_rows_change_nothing():
    X, y = _data(10, d=2, seed=3)
    valid = jnp.array([True, True, False, True, False, True, True, False, True, True])
    params = _params(2)._replace(log_noise=jnp.float32(-6.0), mean=jnp.float32(0.1))
    # garbage in the invalid rows must not matter
    X_pad = jnp.where(valid[:, None], X, 123.0)
    y_pad = jnp.where(valid, y, -50.0)
    nlml_pad = gp.neg_log_marginal_likelihood(params, KERNEL, X_pad, y_pad, valid, 1e-6)
    nlml_sub = gp.neg_log_marginal_likelihood(params, KERNEL, X[valid], y[valid], jnp.ones(int(valid.sum()), bool), 1e-6)
    np.testing.assert_allclose(nlml_pad, nlml_sub, rtol=1e-5)
    # and the posterior is the same
    Xs = jax.random.uniform(jax.random.key(4), (7, 2))
    m_pad, s_pad = gp.predict(KERNEL, gp.condition(KERNEL, params, X_pad, y_pad, valid), Xs)
    m_sub, s_sub = gp.predict(KERNEL, gp.condition(KERNEL, params, X[valid], y[valid], jnp.ones(7, bool)), Xs)
    np.testing.assert_allclose(m_pad, m_sub, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s_pad, s_sub, rtol=1e-5, atol=1e-6)


def test_nlml_matches_closed_form():
    X, y = _data(6, seed=5)
    params = _params(1)._replace(log_noise=jnp.float32(-3.0))
    noise = math.exp(-3.0) + gp.noise_floor(jnp.float32) + 1e-6
    K = np.asarray(KERNEL(X, X, np.array([0.3])), np.float64) + noise * np.eye(6)
    r = np.asarray(y, np.float64)
    ref = 0.5 * r @ np.linalg.solve(K, r) + 0.5 * np.linalg.slogdet(K)[1] + 3 * math.log(2 * math.pi)
    got = gp.neg_log_marginal_likelihood(params, KERNEL, X, y, jnp.ones(6, bool), 1e-6)
    np.testing.assert_allclose(got, ref, rtol=1e-4)


def test_masked_nlml_gradient_is_finite_with_padding_garbage():
    X, y = _data(6, seed=6)
    valid = jnp.arange(6) < 4
    X_pad = jnp.where(valid[:, None], X, 0.0)
    g = jax.grad(gp.neg_log_marginal_likelihood)(_params(1), KERNEL, X_pad, y, valid, 1e-6)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in g)


# --------------------------------------------------------------------------
# standardize
# --------------------------------------------------------------------------


def test_standardize_valid_rows():
    y = jnp.array([1.0, 3.0, 100.0, 5.0])
    valid = jnp.array([True, True, False, True])
    z, loc, scale = gp.standardize(y, valid)
    np.testing.assert_allclose(loc, 3.0)
    np.testing.assert_allclose(scale, math.sqrt(8 / 3), rtol=1e-6)
    np.testing.assert_allclose(z, [-2 / math.sqrt(8 / 3), 0.0, 0.0, 2 / math.sqrt(8 / 3)], rtol=1e-6)


@pytest.mark.parametrize(
    "y, valid",
    [
        ([2.5, 2.5, 2.5, 0.0], [True, True, True, False]),  # constant
        ([1e6, 1e6, 1e6], [True, True, True]),  # constant and large
        ([7.0, 0.0, 0.0], [True, False, False]),  # single point
        ([0.0, 0.0], [False, False]),  # nothing yet
    ],
)
def test_standardize_degenerate_targets_are_finite(y, valid):
    z, loc, scale = gp.standardize(jnp.array(y), jnp.array(valid))
    assert bool(jnp.all(jnp.isfinite(z))) and math.isfinite(float(loc)) and float(scale) > 0
    np.testing.assert_allclose(z, 0.0, atol=1e-6)


def test_standardize_ignores_nan_in_invalid_rows():
    z, loc, scale = gp.standardize(jnp.array([1.0, jnp.nan, 3.0]), jnp.array([True, False, True]))
    np.testing.assert_allclose(z, [-1.0, 0.0, 1.0], rtol=1e-6)


# --------------------------------------------------------------------------
# append (the Kriging Believer's O(n²) update)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("n_valid", [0, 1, 5])
def test_append_equals_condition_with_the_point_added(n_valid):
    n = 9
    X, y = _data(n, d=2, seed=7)
    params = _params(2, 0.35)._replace(log_noise=jnp.float32(-7.0), mean=jnp.float32(0.1))
    valid = jnp.arange(n) < n_valid
    post = gp.condition(KERNEL, params, X, y, valid)
    x_new, y_new = jnp.array([0.42, 0.17]), jnp.float32(0.8)
    appended = gp.append(KERNEL, post, x_new, y_new, n_valid)
    # reference: condition on the data with the point written at the same slot
    X_ref = X.at[n_valid].set(x_new)
    y_ref = y.at[n_valid].set(y_new)
    direct = gp.condition(KERNEL, params, X_ref, y_ref, valid.at[n_valid].set(True))
    Xs = jnp.concatenate([jax.random.uniform(jax.random.key(8), (6, 2)), x_new[None]])
    m_a, s_a = gp.predict(KERNEL, appended, Xs)
    m_d, s_d = gp.predict(KERNEL, direct, Xs)
    np.testing.assert_allclose(m_a, m_d, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s_a, s_d, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(appended.L, direct.L, atol=1e-4)
    # the inverse factor grows with it (predictions multiply by it)
    np.testing.assert_allclose(appended.L_inv, direct.L_inv, atol=1e-3)
    np.testing.assert_allclose(appended.L_inv @ appended.L, np.eye(n), atol=1e-4)


def test_append_twice_then_predict_at_hallucinated_points():
    X, y = _data(6, d=1, seed=9)
    valid = jnp.arange(6) < 3
    post = gp.condition(KERNEL, QUIET, X, y, valid)
    post = gp.append(KERNEL, post, jnp.array([0.9]), jnp.float32(0.5), 3)
    post = gp.append(KERNEL, post, jnp.array([0.1]), jnp.float32(-0.5), 4)
    mean, std = gp.predict(KERNEL, post, jnp.array([[0.9], [0.1]]))
    np.testing.assert_allclose(mean, [0.5, -0.5], atol=1e-2)
    assert bool(jnp.all(std < 0.05))


# --------------------------------------------------------------------------
# float32 robustness
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [Matern(nu=0.5), Matern(nu=2.5), RBF()], ids=repr)
def test_duplicated_points_and_constant_targets_give_finite_posterior(kernel):
    X = jnp.array([[0.5], [0.5], [0.5], [0.2], [0.2]], jnp.float32)
    for y in (jnp.zeros(5), jnp.array([1.0, 1.0001, 0.9999, -1.0, -1.0])):
        z, _, _ = gp.standardize(y, jnp.ones(5, bool))
        params = gp.default_params(1, 5.0)  # long length scale: nearly singular Gram matrix
        post = gp.condition(kernel, params._replace(log_noise=jnp.float32(-20.0)), X, z, jnp.ones(5, bool))
        mean, std = gp.predict(kernel, post, jnp.linspace(0, 1, 11)[:, None])
        assert bool(jnp.all(jnp.isfinite(mean))) and bool(jnp.all(jnp.isfinite(std)))
        assert bool(jnp.all(std >= 0))


def test_fit_on_duplicates_and_constant_targets_stays_finite():
    X = jnp.array([[0.5], [0.5], [0.5], [0.5]])
    z, _, _ = gp.standardize(jnp.full(4, 3.0), jnp.ones(4, bool))
    params = fit(KERNEL, X, z, jnp.ones(4, bool), gp.default_params(1), 30)
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in params)
    mean, std = gp.predict(KERNEL, gp.condition(KERNEL, params, X, z, jnp.ones(4, bool)), jnp.array([[0.1], [0.5]]))
    assert bool(jnp.all(jnp.isfinite(mean))) and bool(jnp.all(jnp.isfinite(std)))


# --------------------------------------------------------------------------
# fit_hyperparameters
# --------------------------------------------------------------------------


def _gp_draw(length_scale, n=60, seed=0):
    """Noise-free-ish sample path of an RBF GP on a regular 1-D grid (float64 numpy)."""
    X = np.linspace(0.0, 1.0, n)[:, None]
    K = np.exp(-0.5 * ((X - X.T) / length_scale) ** 2) + 1e-8 * np.eye(n)
    y = np.linalg.cholesky(K) @ np.random.default_rng(seed).standard_normal(n)
    return jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)


def _fit(X, y):
    return fit(RBF(), X, y, jnp.ones(X.shape[0], bool), gp.default_params(1), 300)


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_recovers_length_scale(seed):
    fitted = {}
    for true_ls in (0.2, 0.05):
        X, y = _gp_draw(true_ls, seed=seed)
        z, _, _ = gp.standardize(y, jnp.ones(60, bool))
        fitted[true_ls] = float(jnp.exp(_fit(X, z).log_length_scale[0]))
    assert fitted[0.2] > 1.5 * fitted[0.05], fitted
    for true_ls, ls in fitted.items():
        assert true_ls / 2.5 < ls < true_ls * 2.5, fitted


def test_fit_lowers_the_map_objective():
    X, y = _gp_draw(0.1, n=30, seed=3)
    z, _, _ = gp.standardize(y, jnp.ones(30, bool))
    valid = jnp.ones(30, bool)
    init = gp.default_params(1)
    fitted = fit(KERNEL, X, z, valid, init, 50)
    before = gp.neg_log_posterior(init, KERNEL, X, z, valid, 1e-6, gp.GPPrior())
    after = gp.neg_log_posterior(fitted, KERNEL, X, z, valid, 1e-6, gp.GPPrior())
    assert float(after) < float(before)


@pytest.mark.parametrize("seed", [0, 1])
def test_lbfgs_fit_recovers_length_scale_and_beats_adam(seed):
    X, y = _gp_draw(0.1, n=40, seed=seed)
    valid = jnp.ones(40, bool)
    z, _, _ = gp.standardize(y, valid)
    objective = lambda p: float(gp.neg_log_posterior(p, RBF(), X, z, valid, 1e-6, gp.GPPrior()))
    adam = fit(RBF(), X, z, valid, gp.default_params(1), 60)
    lbfgs = fit(RBF(), X, z, valid, gp.default_params(1), 60, method="lbfgs")
    assert 0.1 / 2.5 < float(jnp.exp(lbfgs.log_length_scale[0])) < 0.1 * 2.5, lbfgs
    assert objective(lbfgs) <= objective(adam) + 1e-3 * abs(objective(adam))


def _per_observation_objective(kernel, X, z, valid):
    """The objective the fit minimizes (MAP, per observation) as a Python float function of GP params."""
    model = _gp.GPModel(kernel)
    return lambda p: float(model.objective(_gp.ModelParams(p), X, z, valid)) / float(valid.sum())


def test_lbfgs_fit_from_its_own_optimum_stays_there():
    # What the fit guarantees on any CPU, whatever its rounding: L-BFGS only takes steps its line search
    # accepts (a decrease), and stops when a step gains at most rel_tol * |f| + abs_tol = 1e-5 |f| + 1e-5
    # (per observation) or after max_steps. So a warm restart from a fit (as BayesianSearch's schedule does
    # after each update) can only lower the objective, and by little: the fit is within a small multiple of
    # the stopping tolerance of the optimum a long run reaches. The parameters themselves are not compared:
    # along the flat directions of this posterior (the noise at its floor, the length scale to a few 1e-3)
    # one CPU's rounding moves them without the objective noticing.
    X, y = _gp_draw(0.2, n=30, seed=5)
    valid = jnp.ones(30, bool)
    z, _, _ = gp.standardize(y, valid)
    objective = _per_observation_objective(KERNEL, X, z, valid)
    fitted = fit(KERNEL, X, z, valid, gp.default_params(1), 60, method="lbfgs")
    again = fit(KERNEL, X, z, valid, fitted, 3, method="lbfgs", center_start=False)
    optimum = fit(KERNEL, X, z, valid, fitted, 300, method="lbfgs", center_start=False)
    f_fitted, f_again, f_optimum = objective(fitted), objective(again), objective(optimum)
    rounding = 1e-6 * abs(f_fitted)  # the same objective evaluated twice, in and out of the compiled fit
    assert f_again <= f_fitted + rounding
    assert f_optimum <= f_again + rounding
    # 1e-3 per observation: 30x the stopping rule's tolerance, and 0.03 nats over the data, which moves no
    # prediction that matters.
    assert f_fitted - f_optimum <= 1e-3, (f_fitted, f_optimum)
    # Still the same optimum, not a different basin: the length scale within a few percent.
    assert abs(float(again.log_length_scale[0]) - float(fitted.log_length_scale[0])) < 0.05


def test_fit_with_zero_steps_returns_init():
    X, y = _data(5)
    init = gp.default_params(1, 0.7)
    out = fit(KERNEL, X, y, jnp.ones(5, bool), init, 0)
    for a, b in zip(out, init):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_fit_ignores_masked_rows():
    X, y = _gp_draw(0.1, n=30, seed=4)
    z, _, _ = gp.standardize(y, jnp.ones(30, bool))
    valid = jnp.arange(40) < 30
    X_pad = jnp.concatenate([X, jnp.full((10, 1), 0.5)])
    z_pad = jnp.concatenate([z, jnp.full(10, 9.0)])
    # Masked rows leave the objective unchanged as a function of the parameters, so both fits descend the
    # same function. The function is compared in float64, where rounding (~1e-13 here) cannot hide a real
    # difference: in float32 a short length scale on this grid gives a Gram matrix conditioned near 1e7,
    # and the two matrix sizes round apart by ~1e-4 of the objective. The fits are compared by the
    # objective they reach (40 Adam steps from the same start; rounding may shift the path, not the
    # objective by more than a hair).
    with jax.enable_x64(True):
        as64 = lambda tree: jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), tree)
        plain64 = _per_observation_objective(KERNEL, as64(X), as64(z), jnp.ones(30, bool))
        padded64 = _per_observation_objective(KERNEL, as64(X_pad), as64(z_pad), valid)
        for ls in (0.05, 0.2, 1.0):
            p = as64(gp.default_params(1, ls))
            assert padded64(p) == pytest.approx(plain64(p), rel=1e-9, abs=1e-9)
    plain = _per_observation_objective(KERNEL, X, z, jnp.ones(30, bool))
    a = fit(KERNEL, X, z, jnp.ones(30, bool), gp.default_params(1), 40)
    b = fit(KERNEL, X_pad, z_pad, valid, gp.default_params(1), 40)
    assert plain(b) == pytest.approx(plain(a), rel=1e-3, abs=1e-3)
    assert plain(a) < plain(gp.default_params(1))


def test_default_params_and_noise_floor():
    p = gp.default_params(3, 0.5)
    assert p.log_length_scale.shape == (3,) and p.log_length_scale.dtype == jnp.float32
    np.testing.assert_allclose(p.log_length_scale, math.log(0.5), rtol=1e-6)
    assert gp.noise_floor(jnp.float32) > gp.noise_floor(jnp.float64) > 0


# --------------------------------------------------------------------------
# The model: data maps, priors, one parameter type, random restarts
# --------------------------------------------------------------------------

WARPED = _gp.GPModel(KERNEL, warped=(True, False))
BOXCOX = _gp.GPModel(KERNEL, boxcox=True)


@pytest.mark.parametrize("model", [_gp.GPModel(KERNEL), WARPED, BOXCOX, _gp.GPModel(KERNEL, output_warping=True)],
                         ids=["plain", "warped", "boxcox", "output_warping"])
def test_fit_returns_model_params_whatever_the_model(model):
    X, y = _data(12, d=2, seed=11)
    y = -(2.0 + y)  # Box-Cox needs a positive criterion -y
    valid = jnp.arange(12) < 10
    init = model.init_params(2)

    def objective(p):
        z, log_jacobian = model.targets(p, y, valid)
        return float(model.objective(p, X, z, valid, log_jacobian))

    for method in ("adam", "lbfgs"):
        fitted = gp.fit_hyperparameters(model, X, y, valid, init, 20, method=method)
        assert type(fitted) is _gp.ModelParams and type(fitted.gp) is _gp.GPParams
        assert (fitted.warp is None) == (model.warped is None) and (fitted.raw_lam is None) != model.boxcox
        assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(fitted))
        assert objective(fitted) < objective(init)


def test_fit_lowers_the_full_objective_with_warping_and_boxcox():
    model = _gp.GPModel(KERNEL, warped=(True, True), boxcox=True)
    X, y = _data(12, d=2, seed=12)
    y = -jnp.exp(y)
    valid = jnp.ones(12, bool)
    init = model.init_params(2)

    def objective(p):
        z, log_jacobian = model.targets(p, y, valid)
        return float(model.objective(p, X, z, valid, log_jacobian))

    fitted = gp.fit_hyperparameters(model, X, y, valid, init, 30, method="lbfgs")
    assert objective(fitted) < objective(init)
    assert float(fitted.raw_lam) != float(init.raw_lam) and not np.allclose(fitted.warp.raw_a, 0.0)


def test_random_restarts_never_end_worse_and_need_a_key():
    X, y = _gp_draw(0.15, n=25, seed=2)
    valid = jnp.ones(25, bool)
    model = _gp.GPModel(KERNEL)
    init = model.init_params(1)

    def objective(p):
        return float(model.objective(p, X, model.targets(p, y, valid)[0], valid))

    plain = gp.fit_hyperparameters(model, X, y, valid, init, 10, method="lbfgs")
    restarted = gp.fit_hyperparameters(model, X, y, valid, init, 10, method="lbfgs", n_random_starts=3,
                                       key=jax.random.key(0))
    # The same two starts plus three more, each run on its own: the best can only improve.
    assert objective(restarted) <= objective(plain)
    again = gp.fit_hyperparameters(model, X, y, valid, init, 10, method="lbfgs", n_random_starts=3,
                                   key=jax.random.key(0))
    for a, b in zip(jax.tree.leaves(restarted), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        _gp.fit_hyperparameters(model, X, y, valid, init, 10, n_random_starts=2)


def test_random_starts_spread_around_unit_length_scales():
    starts = _gp._random_starts(WARPED, jax.random.key(1), 4000, 2, jnp.float32)
    assert starts.gp.log_length_scale.shape == (4000, 2) and starts.warp.raw_a.shape == (4000, 2)
    np.testing.assert_allclose(jnp.std(starts.gp.log_length_scale, axis=0), 1.0, rtol=0.05)
    np.testing.assert_allclose(jnp.std(starts.gp.log_amplitude), 0.5, rtol=0.05)
    np.testing.assert_array_equal(starts.gp.log_noise, -8.0)
    np.testing.assert_array_equal(starts.warp.raw_a, 0.0)  # the identity warp


@pytest.mark.parametrize("init", [_gp.default_params(2), _gp.ModelParams(_gp.default_params(2))],
                         ids=["bare GPParams", "no warp"])
def test_parameters_that_do_not_fit_the_model_are_refused(init):
    X, y = _data(4, d=2)
    with pytest.raises(ValueError, match="model.init_params"):
        _gp.fit_hyperparameters(WARPED, X, y, jnp.ones(4, bool), init, 5)


def test_a_kernel_in_place_of_the_model_is_refused_with_the_fix():
    X, y = _data(4, d=2)
    with pytest.raises(ValueError, match=r"GPModel\(kernel, prior, jitter\)"):
        _gp.fit_hyperparameters(KERNEL, X, y, jnp.ones(4, bool), _gp.default_params(2), 5)


def test_boxcox_targets_and_their_log_jacobian():
    from hyperoptax import boxcox

    criterion = jnp.array([0.5, 2.0, 7.0, 1.0, 99.0])
    valid = jnp.array([True, True, True, True, False])
    params = BOXCOX.init_params(1)._replace(raw_lam=jnp.float32(boxcox.raw_from_lam(0.5)))
    z, log_jacobian = BOXCOX.targets(params, -criterion, valid)
    t = (np.sqrt(np.array([0.5, 2.0, 7.0, 1.0])) - 1.0) / 0.5
    ref_z = -(t - t.mean()) / t.std()
    np.testing.assert_allclose(z[:4], ref_z, rtol=1e-4, atol=1e-5)
    assert float(z[4]) == 0.0
    # log |dz/dc| = (λ - 1) Σ log c - n log(scale)
    ref = -0.5 * np.log([0.5, 2.0, 7.0, 1.0]).sum() - 4 * math.log(t.std())
    np.testing.assert_allclose(log_jacobian, ref, rtol=1e-4)


def test_output_warping_compresses_then_standardizes():
    y = jnp.array([0.0, -1.0, -50.0, 0.5, 0.2, 3.0])
    valid = jnp.array([True, True, True, True, True, False])
    z, log_jacobian = _gp.GPModel(KERNEL, output_warping=True).targets(None, y, valid)
    ref, _, _ = gp.standardize(_gp.compress_tail(y, valid), valid)
    np.testing.assert_allclose(z, ref, rtol=1e-6)
    assert float(log_jacobian) == 0.0


def test_warped_objective_is_the_gp_posterior_of_warped_inputs_with_the_warp_prior():
    from hyperoptax import warping

    X, y = _data(8, d=2, seed=13)
    valid = jnp.ones(8, bool)
    params = WARPED.init_params(2)._replace(warp=warping.WarpParams(jnp.array([0.7, 0.3]), jnp.array([-0.4, 0.9])))
    z, _ = WARPED.targets(params, y, valid)
    flags = jnp.array([True, False])
    ref = _gp.neg_log_posterior(params.gp, KERNEL, warping.warp(params.warp, X, flags), z, valid, 1e-6, _gp.GPPrior())
    ref = ref - warping.log_prior(params.warp, flags)
    np.testing.assert_allclose(WARPED.objective(params, X, z, valid), ref, rtol=1e-6)


@pytest.mark.parametrize("d", [1, 4, 9])
def test_sqrt_d_prior_has_its_mode_at_the_cube_diagonal(d):
    prior = _gp.SQRT_D_PRIOR
    at = lambda ls: _gp.default_params(d, ls)
    grad = jax.grad(lambda p: prior.log_prob(p))(at(math.sqrt(d)))
    np.testing.assert_allclose(grad.log_length_scale, 0.0, atol=1e-6)
    assert float(prior.log_prob(at(math.sqrt(d)))) > float(prior.log_prob(at(2 * math.sqrt(d))))


@pytest.mark.parametrize("seed", [0, 1])
def test_short_prior_keeps_weak_inputs_in_the_model(seed):
    # 6-d data whose last two inputs matter a little (a ripple of 0.05 beside a bowl of ~0.3):
    # the default prior's fit explains them away with length scales of ~10 (the search then
    # ignores those inputs); the preset's prior keeps every length scale within the cube's scale.
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(24, 6))
    y = -(np.sum((X[:, :4] - 0.5) ** 2, 1) + 0.05 * np.sin(6 * X[:, 4]) + 0.05 * np.cos(6 * X[:, 5]))
    X, y, valid = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32), jnp.ones(24, bool)

    def fitted_length_scales(prior):
        model = _gp.GPModel(Matern(nu=2.5), prior, 1e-6)
        fit = _gp.fit_hyperparameters(model, X, y, valid, model.init_params(6, dtype=jnp.float32), 50, method="lbfgs")
        return np.exp(np.asarray(fit.gp.log_length_scale))

    assert fitted_length_scales(_gp.GPPrior()).max() > 6.0
    assert fitted_length_scales(_gp.SHORT_PRIOR).max() < 3.5
    assert hx.RECOMMENDED["prior"] == _gp.SHORT_PRIOR
