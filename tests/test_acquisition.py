"""Acquisition functions and hallucination strategies against hand-computed float64 values."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from scipy import special, stats

from hyperoptax import (
    EI,
    PI,
    UCB,
    ConstantHallucination,
    LogEI,
    LogPI,
    MeanHallucination,
    SampleHallucination,
    ThompsonSampling,
    UCBHallucination,
)
from hyperoptax.acquisition import log_h as _log_h_eager

# One compiled program instead of dozens of op-by-op dispatches per call.
log_h = jax.jit(_log_h_eager)
grad_log_h = jax.jit(jax.vmap(jax.grad(_log_h_eager)))

pytestmark = pytest.mark.usefixtures("strict_promotion")

MEAN = np.array([0.3, -1.2, 2.0, 0.0, 1.05])
STD = np.array([0.5, 2.0, 0.1, 1.0, 0.3])
Y_MAX = 1.0


def _ei_ref(mean, std, y_max, xi):
    a = mean - y_max - xi
    z = a / std
    return a * stats.norm.cdf(z) + std * stats.norm.pdf(z)


def _log_h_ref(z):
    """log(φ(z) + z Φ(z)) in float64 without cancellation (scipy)."""
    z = np.asarray(z, np.float64)
    out = np.empty_like(z)
    up = z > -1
    out[up] = np.log(stats.norm.pdf(z[up]) + z[up] * stats.norm.cdf(z[up]))
    zl = z[~up]
    out[~up] = -(zl**2) / 2 - 0.5 * math.log(2 * math.pi) + np.log1p(-np.abs(zl) * math.sqrt(math.pi / 2) * special.erfcx(-zl / math.sqrt(2)))
    return out


def _f32(x):
    return jnp.asarray(x, jnp.float32)


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


@pytest.mark.parametrize("xi", [0.0, 0.01, 0.3])
def test_ei_hand_computed(xi):
    got = EI(xi=xi)(_f32(MEAN), _f32(STD), Y_MAX)
    np.testing.assert_allclose(got, _ei_ref(MEAN, STD, Y_MAX, xi), rtol=1e-5, atol=1e-7)


def test_ei_single_hand_computed_number():
    # mean = y_max + xi and std = 1: EI = φ(0) = 1/sqrt(2π).
    np.testing.assert_allclose(EI(xi=0.01)(_f32([1.01]), _f32([1.0]), 1.0), [1 / math.sqrt(2 * math.pi)], rtol=1e-5)


@pytest.mark.parametrize("xi", [0.0, 0.01, 0.3])
def test_pi_hand_computed(xi):
    got = PI(xi=xi)(_f32(MEAN), _f32(STD), Y_MAX)
    np.testing.assert_allclose(got, stats.norm.cdf((MEAN - Y_MAX - xi) / STD), rtol=1e-5, atol=1e-7)


def test_ucb_hand_computed():
    np.testing.assert_allclose(UCB()(_f32(MEAN), _f32(STD), Y_MAX), MEAN + 2.0 * STD, rtol=1e-6)
    np.testing.assert_allclose(UCB(kappa=0.5)(_f32(MEAN), _f32(STD)), MEAN + 0.5 * STD, rtol=1e-6)


def test_defaults():
    assert PI().xi == 0.01 and EI().xi == 0.01 and LogEI().xi == 0.0 and UCB().kappa == 2.0


@pytest.mark.parametrize("acq", [PI(), EI(), LogEI(), LogPI()], ids=repr)
def test_y_max_defaults_to_max_of_mean(acq):
    mean, std = _f32(MEAN), _f32(STD)
    np.testing.assert_allclose(acq(mean, std), acq(mean, std, float(MEAN.max())), rtol=1e-6)
    assert not np.allclose(acq(mean, std), acq(mean, std, Y_MAX))


def test_ei_invariants():
    mean = jnp.linspace(-3.0, 3.0, 61)
    ei = EI(xi=0.0)(mean, jnp.full(61, 0.7), 0.0)
    assert bool(jnp.all(ei >= 0.0))
    assert bool(jnp.all(ei >= jnp.maximum(mean, 0.0) - 1e-6))  # EI >= plug-in improvement
    assert bool(jnp.all(jnp.diff(ei) > 0))  # increasing in the mean
    ei_std = EI(xi=0.0)(jnp.zeros(20), jnp.linspace(0.1, 2.0, 20), 0.5)
    assert bool(jnp.all(jnp.diff(ei_std) > 0))  # increasing in the uncertainty


@pytest.mark.parametrize("xi", [0.0, 0.05])
def test_log_ei_equals_log_of_ei_where_representable(xi):
    mean = jnp.linspace(-2.0, 3.0, 41)
    std = jnp.full(41, 0.8)
    ei = EI(xi=xi)(mean, std, 0.5)
    assert bool(jnp.all(ei > 1e-30))
    np.testing.assert_allclose(LogEI(xi=xi)(mean, std, 0.5), jnp.log(ei), rtol=1e-4, atol=1e-5)


def test_log_pi_equals_log_of_pi_where_representable():
    mean, std = jnp.linspace(-2.0, 3.0, 41), jnp.full(41, 0.8)
    np.testing.assert_allclose(LogPI()(mean, std, 0.5), jnp.log(PI()(mean, std, 0.5)), rtol=1e-4, atol=1e-5)


def test_log_ei_far_left_tail_is_finite_with_useful_gradient():
    # z = (mean - y_max) / std = -40: EI underflows to 0 in float32, LogEI does not.
    assert float(EI(xi=0.0)(_f32([-40.0]), _f32([1.0]), 0.0)[0]) == 0.0
    f = lambda m: LogEI()(m[None], jnp.ones(1, jnp.float32), 0.0)[0]
    value, grad = jax.value_and_grad(f)(jnp.float32(-40.0))
    assert math.isfinite(float(value)) and math.isfinite(float(grad))
    np.testing.assert_allclose(value, _log_h_ref([-40.0])[0], rtol=1e-5)
    # d/dz log h(z) = Φ(z) / h(z) ≈ -z for z -> -inf
    assert 39.0 < float(grad) < 41.0
    # LogPI likewise
    g = jax.grad(lambda m: LogPI(xi=0.0)(m[None], jnp.ones(1, jnp.float32), 0.0)[0])(jnp.float32(-40.0))
    assert math.isfinite(float(g)) and float(g) > 0


def test_log_ei_scales_with_std():
    # LogEI = log h(z) + log σ
    mean, std = _f32([0.2]), _f32([3.0])
    z = (0.2 - 1.0) / 3.0
    np.testing.assert_allclose(LogEI()(mean, std, 1.0), _log_h_ref([z]) + math.log(3.0), rtol=1e-5)


_Z = np.linspace(-30.0, 5.0, 3501)
# jax.scipy.special.erfcx(x) is exactly 0 in float32 for x in [9.19, 9.42] (jax-ml/jax#38607).
_ERFCX_BAND = (_Z > -13.4) & (_Z < -12.95)


def test_log_h_matches_float64_reference_outside_erfcx_band():
    got = np.asarray(log_h(jnp.asarray(_Z[~_ERFCX_BAND], jnp.float32)), np.float64)
    np.testing.assert_allclose(got, _log_h_ref(_Z[~_ERFCX_BAND]), rtol=1e-4, atol=5e-4)


def test_log_h_matches_float64_reference_on_all_of_minus_30_to_5():
    got = np.asarray(log_h(jnp.asarray(_Z, jnp.float32)), np.float64)
    np.testing.assert_allclose(got, _log_h_ref(_Z), rtol=1e-4, atol=5e-4)
    grad = np.asarray(grad_log_h(jnp.asarray(_Z, jnp.float32)))
    assert np.all(np.isfinite(grad))


def test_log_h_reference_agrees_with_mpmath():
    # Guards the scipy reference itself.
    mpmath.mp.dps = 50
    for z in (-30.0, -13.2, -5.0, -1.0, 0.0, 2.5):
        exact = float(mpmath.log(mpmath.npdf(z) + z * mpmath.ncdf(z)))
        np.testing.assert_allclose(_log_h_ref([z])[0], exact, rtol=1e-12)


def test_log_h_gradient_matches_analytic_derivative():
    z = np.concatenate([np.linspace(-30.0, -13.5, 40), np.linspace(-12.9, 5.0, 60)])
    grad = np.asarray(grad_log_h(jnp.asarray(z, jnp.float32)), np.float64)
    expected = stats.norm.cdf(z) / np.exp(_log_h_ref(z))  # d/dz log h = Φ(z) / h(z)
    np.testing.assert_allclose(grad, expected, rtol=1e-3)


def test_log_h_continuous_at_branch_points():
    for z0 in (-1.0, -1.0 / math.sqrt(float(jnp.finfo(jnp.float32).eps))):
        left, mid, right = log_h(jnp.asarray([z0 * 1.0001, z0, z0 * 0.9999], jnp.float32))
        assert abs(float(left) - float(mid)) < 1e-3 * max(1.0, abs(float(mid)))
        assert abs(float(right) - float(mid)) < 1e-3 * max(1.0, abs(float(mid)))


def test_log_h_far_asymptote():
    # Beyond -1/sqrt(eps), log h(z) ≈ -z²/2 - log sqrt(2π) - 2 log|z|.
    z = -5000.0
    expected = -(z**2) / 2 - 0.5 * math.log(2 * math.pi) - 2 * math.log(-z)
    np.testing.assert_allclose(log_h(jnp.float32(z)), expected, rtol=1e-6)
    assert math.isfinite(float(grad_log_h(jnp.full(1, z, jnp.float32))[0]))


# --------------------------------------------------------------------------
# Thompson sampling
# --------------------------------------------------------------------------


def test_thompson_sampling_requires_a_key():
    with pytest.raises(ValueError, match="key"):
        ThompsonSampling()(_f32(MEAN), _f32(STD), Y_MAX)


def test_thompson_sampling_is_a_posterior_draw(key):
    ts = ThompsonSampling()
    mean, std = _f32(MEAN), _f32(STD)
    draw = ts(mean, std, Y_MAX, key=key)
    np.testing.assert_allclose(draw, mean + std * jax.random.normal(key, (5,)), rtol=1e-6)
    np.testing.assert_array_equal(draw, ts(mean, std, key=key))  # y_max plays no role
    assert not np.allclose(draw, ts(mean, std, key=jax.random.key(1)))
    draws = jax.vmap(lambda k: ts(jnp.full(1, 2.0), jnp.full(1, 0.5), key=k))(jax.random.split(key, 4000))
    assert abs(float(draws.mean()) - 2.0) < 0.05 and abs(float(draws.std()) - 0.5) < 0.05


# --------------------------------------------------------------------------
# Contract: every acquisition under jit
# --------------------------------------------------------------------------


@pytest.mark.parametrize("acq", [PI(), EI(), LogEI(), LogPI(), UCB(), ThompsonSampling()], ids=repr)
def test_acquisition_contract_under_jit(acq, key):
    mean = jax.random.normal(jax.random.key(1), (32,)) * 5.0
    std = jnp.exp(jax.random.normal(jax.random.key(2), (32,)))
    out = jax.jit(lambda m, s, k: acq(m, s, 1.0, key=k))(mean, std, key)
    assert out.shape == (32,) and out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out))) or isinstance(acq, (PI, EI))  # PI/EI may underflow to 0, not NaN
    assert not bool(jnp.any(jnp.isnan(out)))
    grad = jax.grad(lambda m: acq(m, std, 1.0, key=key).sum())(mean)
    assert not bool(jnp.any(jnp.isnan(grad)))


# --------------------------------------------------------------------------
# Hallucinations
# --------------------------------------------------------------------------


def test_mean_hallucination():
    assert float(MeanHallucination()(_f32([0.7]), _f32([0.2]), jax.random.key(0), 1.5)) == pytest.approx(0.7)


def test_ucb_hallucination():
    assert float(UCBHallucination()(_f32([0.7]), _f32([0.2]), None, 1.5)) == pytest.approx(1.1)
    assert float(UCBHallucination(kappa=1.0)(_f32([0.7]), _f32([0.2]), None, 1.5)) == pytest.approx(0.9)


def test_constant_hallucination_without_value_believes_y_max():
    out = ConstantHallucination()(_f32([0.7]), _f32([0.2]), None, 1.5)
    assert float(out) == pytest.approx(1.5) and out.dtype == jnp.float32 and out.shape == ()


def test_constant_hallucination_with_value():
    out = ConstantHallucination(value=-2.0)(_f32([0.7]), _f32([0.2]), None, 1.5)
    assert float(out) == pytest.approx(-2.0) and out.dtype == jnp.float32


def test_sample_hallucination(key):
    h = SampleHallucination()
    out = h(_f32([0.7]), _f32([0.2]), key, 1.5)
    assert out.shape == () and out.dtype == jnp.float32
    assert float(out) == pytest.approx(0.7 + 0.2 * float(jax.random.normal(key, ())), rel=1e-6)
    draws = jax.vmap(lambda k: h(_f32([0.7]), _f32([0.2]), k, 1.5))(jax.random.split(key, 4000))
    assert abs(float(draws.mean()) - 0.7) < 0.02 and abs(float(draws.std()) - 0.2) < 0.02
    # zero uncertainty: the sample is the mean
    assert float(h(_f32([0.7]), _f32([0.0]), key, 1.5)) == pytest.approx(0.7)


def test_hallucinations_are_hashable_static_configuration():
    for h in (MeanHallucination(), SampleHallucination(), UCBHallucination(), ConstantHallucination(0.5)):
        assert hash(h) == hash(type(h)(**h.__dict__))


# --------------------------------------------------------------------------
# Averages over posterior samples (fantasies of pending evaluations)
# --------------------------------------------------------------------------

MEANS = np.array([[0.3, -1.2, 2.0], [0.5, -0.2, 1.0]])  # (S=2, m=3)
STDS = np.array([0.5, 2.0, 0.1])
BESTS = np.array([[1.0], [0.6]])  # each sample's incumbent


@pytest.mark.parametrize("acq", [EI(xi=0.0), PI(), UCB(kappa=1.5)], ids=repr)
def test_average_over_samples_is_the_mean_of_the_values(acq):
    got = acq.average_over_samples(_f32(MEANS), _f32(STDS), _f32(BESTS))
    ref = np.mean([np.asarray(acq(_f32(MEANS[s]), _f32(STDS), float(BESTS[s, 0]))) for s in range(2)], axis=0)
    assert got.shape == (3,)
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_log_ei_average_is_the_log_of_the_mean_ei():
    ei = np.mean([_ei_ref(MEANS[s], STDS, BESTS[s, 0], 0.0) for s in range(2)], axis=0)  # hand-computed
    got = LogEI().average_over_samples(_f32(MEANS), _f32(STDS), _f32(BESTS))
    np.testing.assert_allclose(got, np.log(ei), rtol=1e-5)
    # Far in the tail, where EI itself underflows, the average stays finite.
    far = LogEI().average_over_samples(_f32([[-40.0], [-60.0]]), _f32([1.0]), _f32([[0.0], [0.0]]))
    np.testing.assert_allclose(far, np.logaddexp(_log_h_ref([-40.0]), _log_h_ref([-60.0])) - math.log(2), rtol=1e-5)


def test_log_pi_average_is_the_log_of_the_mean_pi():
    pi = np.mean([stats.norm.cdf((MEANS[s] - BESTS[s, 0] - 0.01) / STDS) for s in range(2)], axis=0)
    np.testing.assert_allclose(LogPI().average_over_samples(_f32(MEANS), _f32(STDS), _f32(BESTS)), np.log(pi), rtol=1e-5, atol=1e-6)

