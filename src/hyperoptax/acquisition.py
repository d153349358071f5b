"""Acquisition functions and Kriging-Believer hallucination strategies.

An acquisition scores a point from the GP posterior ``mean`` and ``std`` at it;
higher is better (the GP always works with a *maximized*, standardized target).
``y_max`` is the incumbent: the best value observed so far, in the same units
as ``mean``. When it is omitted, ``max(mean)`` is used, which only makes sense
for exploratory use on a batch of points.

A hallucination strategy picks the fake observation ``(mean, std, key, y_max) ->
scalar`` that the Kriging Believer writes at a point already chosen for the
current batch, so the next slot of the batch looks elsewhere.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfcx, log_ndtr, ndtr
from jax.scipy.stats import norm

from hyperoptax.errors import ConfigurationError

__all__ = [
    "BaseAcquisition",
    "PI",
    "EI",
    "LogEI",
    "LogPI",
    "UCB",
    "ThompsonSampling",
    "RelativeImprovement",
    "BaseHallucination",
    "MeanHallucination",
    "SampleHallucination",
    "UCBHallucination",
    "ConstantHallucination",
    "log_h",
]


@dataclass(frozen=True)
class BaseAcquisition:
    """Base class for acquisition functions: ``(mean, std, y_max, key) -> score``."""

    def __call__(self, mean: jax.Array, std: jax.Array, y_max=None, key=None) -> jax.Array:
        raise NotImplementedError

    def average_over_samples(self, means: jax.Array, std: jax.Array, y_max, key=None) -> jax.Array:
        """The acquisition averaged over posterior samples (fantasies of pending evaluations).

        ``means (S, m)`` holds one posterior mean per sample, ``std (m,)`` the
        shared standard deviation, ``y_max (S, 1)`` each sample's incumbent.
        Returns ``(m,)``: the mean of the values (the log of their mean for the
        log-scale acquisitions).
        """
        return jnp.mean(self(means, std, y_max, key), axis=0)

    def get_argmax(self, mean: jax.Array, std: jax.Array, seen_mask: jax.Array, n_points: int = 1,
                   y_max=None, key=None) -> jax.Array:
        """Indices of the ``n_points`` candidates with the highest acquisition among the unseen ones, best first.

        ``mean``, ``std`` and ``seen_mask`` have shape ``(N,)``; a True in ``seen_mask`` excludes that
        candidate (already evaluated). Jittable (``n_points`` is static). hyperoptax 0.2.0's way of
        picking the next candidate from a finite set.
        """
        scores = self(mean, std, y_max, key) if key is not None else self(mean, std, y_max)
        return jax.lax.top_k(jnp.where(seen_mask, -jnp.inf, scores), n_points)[1]

    @staticmethod
    def _resolve_y_max(mean, y_max):
        return jnp.max(mean) if y_max is None else y_max


def _check_number(owner, name: str, value, *, allow_none: bool = False) -> None:
    """ConfigurationError unless ``value`` is a finite number >= 0 (acquisition and believer constants)."""
    if value is None and allow_none:
        return
    ok = isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, np.bool_))
    if not ok or not math.isfinite(float(value)) or (value < 0 and name != "value"):
        allowed = "a finite number" if name == "value" else "a finite number >= 0"
        raise ConfigurationError(
            f"{type(owner).__name__}: {name} must be {allowed}, got {value!r}. "
            f"Example: {type(owner).__name__}({name}={_DEFAULTS.get(name, 0.01)!r})."
        )


_DEFAULTS = {"kappa": 2.0, "xi": 0.01, "value": 0.0}


@dataclass(frozen=True)
class UCB(BaseAcquisition):
    """Upper confidence bound ``mean + kappa * std``."""

    kappa: float = 2.0

    def __post_init__(self):
        _check_number(self, "kappa", self.kappa)

    def __call__(self, mean, std, y_max=None, key=None):
        return mean + self.kappa * std


@dataclass(frozen=True)
class PI(BaseAcquisition):
    """Probability of improving on ``y_max`` by at least ``xi``."""

    xi: float = 0.01

    def __post_init__(self):
        _check_number(self, "xi", self.xi)

    def __call__(self, mean, std, y_max=None, key=None):
        z = (mean - self.xi - self._resolve_y_max(mean, y_max)) / std
        return ndtr(z)


@dataclass(frozen=True)
class EI(BaseAcquisition):
    """Expected improvement over ``y_max + xi``: ``a Φ(a/σ) + σ φ(a/σ)``."""

    xi: float = 0.01

    def __post_init__(self):
        _check_number(self, "xi", self.xi)

    def __call__(self, mean, std, y_max=None, key=None):
        a = mean - self.xi - self._resolve_y_max(mean, y_max)
        z = a / std
        return a * ndtr(z) + std * norm.pdf(z)


_C1 = 0.5 * math.log(2.0 * math.pi)
_C2 = 0.5 * math.log(math.pi / 2.0)


def _log1mexp(x):
    """log(1 - exp(x)) for x < 0, accurate on both sides of -log 2."""
    return jnp.where(x > -math.log(2.0), jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


def log_h(z: jax.Array) -> jax.Array:
    """``log(φ(z) + z Φ(z))``, finite with useful gradients far into the left tail.

    Ament et al. (2023), "Unexpected improvements to expected improvement":
    the direct formula for z > -1; the scaled complementary error function down
    to z = -10; below that the asymptotic series of the Mills ratio, written so
    nothing cancels: ``h(z) = φ(z) / z² (1 - 3/z² + 15/z⁴ - 105/z⁶ + 945/z⁸)``.
    (float32 ``erfcx`` returns 0 for arguments near 9.2-9.4, so it is only used
    below 7.1.)
    """
    z = jnp.asarray(z)
    upper = z > -1.0
    middle = (z <= -1.0) & (z > -10.0)
    # Each branch sees only inputs it is valid for, so no NaN reaches a gradient.
    z_up = jnp.where(upper, z, 0.0)
    direct = jnp.log(norm.pdf(z_up) + z_up * ndtr(z_up))
    z_mid = jnp.where(middle, z, -2.0)
    mills = _log1mexp(jnp.log(erfcx(-z_mid / math.sqrt(2.0)) * jnp.abs(z_mid)) + _C2)
    tail = -0.5 * z_mid**2 - _C1 + mills
    z_far = jnp.where(upper | middle, -10.0, z)
    w = 1.0 / z_far**2
    series = 1.0 - 3.0 * w * (1.0 - 5.0 * w * (1.0 - 7.0 * w * (1.0 - 9.0 * w)))
    asymptote = -0.5 * z_far**2 - _C1 - 2.0 * jnp.log(jnp.abs(z_far)) + jnp.log(series)
    return jnp.where(upper, direct, jnp.where(middle, tail, asymptote))


def _log_mean_exp(values):
    """``log(mean(exp(values), axis=0))`` without overflow or underflow."""
    return jax.nn.logsumexp(values, axis=0) - math.log(values.shape[0])


@dataclass(frozen=True)
class LogEI(BaseAcquisition):
    """Logarithm of expected improvement, computed stably (Ament et al. 2023).

    Same maximizer as :class:`EI`, but finite with a non-zero gradient even where
    EI underflows to 0, which is most of the space late in a search. Use it with
    gradient-based acquisition optimization.
    """

    xi: float = 0.0

    def __post_init__(self):
        _check_number(self, "xi", self.xi)

    def __call__(self, mean, std, y_max=None, key=None):
        z = (mean - self.xi - self._resolve_y_max(mean, y_max)) / std
        return log_h(z) + jnp.log(std)

    def average_over_samples(self, means, std, y_max, key=None):
        return _log_mean_exp(self(means, std, y_max, key))


@dataclass(frozen=True)
class LogPI(BaseAcquisition):
    """Logarithm of the probability of improvement (stable ``log Φ``)."""

    xi: float = 0.01

    def __post_init__(self):
        _check_number(self, "xi", self.xi)

    def __call__(self, mean, std, y_max=None, key=None):
        return log_ndtr((mean - self.xi - self._resolve_y_max(mean, y_max)) / std)

    def average_over_samples(self, means, std, y_max, key=None):
        return _log_mean_exp(self(means, std, y_max, key))


@dataclass(frozen=True)
class ThompsonSampling(BaseAcquisition):
    """Independent Thompson sampling: one posterior draw per point (needs ``key``).

    The draw is ``mean + std * eps`` with ``eps`` fixed by ``key`` and the shape of
    ``mean``, so it stays differentiable in the point for local refinement.
    """

    def __call__(self, mean, std, y_max=None, key=None):
        if key is None:
            raise ConfigurationError("ThompsonSampling needs a PRNG key: call it as acq(mean, std, y_max, key=key).")
        return mean + std * jax.random.normal(key, jnp.shape(mean), jnp.result_type(mean))


@dataclass(frozen=True)
class RelativeImprovement(BaseAcquisition):
    """``base`` asked for an improvement of at least ``relative * |y_max|`` (and at least its own ``xi``).

    On standardized targets ``|y_max|`` is the incumbent's lead over the
    average result, in standard deviations. Probability of improvement with a
    fixed small ``xi`` is maximized right next to the incumbent: with the
    Matérn-1/2 kernel at a distance ``xi * length_scale / lead``, so the search
    creeps from its first good point in steps of a few thousandths of the cube
    and never leaves; it looks elsewhere only once ``xi`` reaches about half
    the lead. Asking for a fraction of the lead makes the step a fraction of a
    length scale, whatever the lead (a relative target, Jones 2001).
    """

    base: BaseAcquisition
    relative: float = 0.2

    def _threshold(self, y_max):
        xi = getattr(self.base, "xi", 0.0)
        return y_max + jnp.maximum(self.relative * jnp.abs(y_max) - xi, 0.0)

    def __call__(self, mean, std, y_max=None, key=None):
        return self.base(mean, std, self._threshold(self._resolve_y_max(mean, y_max)), key)

    def average_over_samples(self, means, std, y_max, key=None):
        return self.base.average_over_samples(means, std, self._threshold(y_max), key)


@dataclass(frozen=True)
class BaseHallucination:
    """Kriging Believer strategy: ``(mean, std, key, y_max) -> fake observation``.

    Any callable with that signature works; subclassing is optional. ``mean``
    and ``std`` have shape ``(1,)`` (the posterior at the chosen point).
    """

    def __call__(self, mean, std, key, y_max):
        raise NotImplementedError


@dataclass(frozen=True)
class MeanHallucination(BaseHallucination):
    """Classical Kriging Believer: believe the posterior mean."""

    def __call__(self, mean, std, key, y_max):
        return mean[0]


@dataclass(frozen=True)
class SampleHallucination(BaseHallucination):
    """Randomized Kriging Believer: believe a posterior sample."""

    def __call__(self, mean, std, key, y_max):
        return mean[0] + std[0] * jax.random.normal(key, (), jnp.result_type(mean))


@dataclass(frozen=True)
class UCBHallucination(BaseHallucination):
    """Optimistic believer: ``mean + kappa * std``."""

    kappa: float = 2.0

    def __post_init__(self):
        _check_number(self, "kappa", self.kappa)

    def __call__(self, mean, std, key, y_max):
        return mean[0] + self.kappa * std[0]


@dataclass(frozen=True)
class ConstantHallucination(BaseHallucination):
    """Constant liar (Ginsbourger et al. 2010): believe ``y_max``, or a fixed ``value``.

    ``value`` is in the GP's internal units (standardized, maximized).
    """

    value: float | None = None

    def __post_init__(self):
        _check_number(self, "value", self.value, allow_none=True)

    def __call__(self, mean, std, key, y_max):
        if self.value is None:
            return jnp.asarray(y_max, jnp.result_type(mean))
        return jnp.asarray(self.value, jnp.result_type(mean))
