"""Box-Cox transform of positive targets, with the Jacobian the likelihood needs.

``t = (y^λ - 1) / λ`` (``log y`` at ``λ = 0``, ``y - 1`` at ``λ = 1``). Fitting
``λ`` by marginal likelihood compares densities of *different* transformed
data, so the log-Jacobian ``(λ - 1) Σ log y`` must be added to the GP's log
likelihood; :func:`log_jacobian` provides it. ``λ`` is learned unconstrained:
``raw`` maps into ``(LOWER, UPPER)`` through a scaled sigmoid, under a weak
Gaussian prior centered on ``λ = 1`` (:func:`log_prior`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["boxcox", "boxcox_inverse", "log_jacobian", "lam_from_raw", "raw_from_lam", "log_prior"]

LOWER, UPPER = -1.0, 2.0
PRIOR_SCALE = 2.0  # of the unconstrained parameter: a weak prior
# Below this |λ| the second-order expansion around log y is exact to float precision.
_SMALL = 1e-4


def _safe(lam):
    small = jnp.abs(lam) < _SMALL
    return small, jnp.where(small, 1.0, lam)


def boxcox(y, lam):
    """Box-Cox of ``y > 0``: ``expm1(λ log y) / λ``, ``log y + λ log²y / 2`` near ``λ = 0``."""
    log_y = jnp.log(y)
    small, lam_safe = _safe(lam)
    return jnp.where(small, log_y + 0.5 * lam * log_y**2, jnp.expm1(lam_safe * log_y) / lam_safe)


def boxcox_inverse(t, lam):
    """``y`` with ``boxcox(y, λ) == t``: ``(1 + λ t)^(1/λ)``, ``exp(t)`` at ``λ = 0``."""
    small, lam_safe = _safe(lam)
    return jnp.where(small, jnp.exp(t - 0.5 * lam * t**2), jnp.exp(jnp.log1p(lam_safe * t) / lam_safe))


def log_jacobian(y, lam, valid=None):
    """``Σ log |dt/dy| = (λ - 1) Σ log y`` over ``valid`` entries."""
    terms = (lam - 1.0) * jnp.log(jnp.where(valid, y, 1.0) if valid is not None else y)
    return jnp.sum(terms)


def lam_from_raw(raw):
    """Unconstrained ``raw`` -> ``λ`` in ``(LOWER, UPPER)``."""
    return LOWER + (UPPER - LOWER) * jax.nn.sigmoid(raw)


def raw_from_lam(lam: float) -> float:
    """Inverse of :func:`lam_from_raw` (a float, for initial values)."""
    p = (lam - LOWER) / (UPPER - LOWER)
    return math.log(p / (1.0 - p))


def log_prior(raw):
    """Gaussian log prior (up to a constant) of the unconstrained ``raw``, centered on ``λ = 1``."""
    return -0.5 * ((raw - raw_from_lam(1.0)) / PRIOR_SCALE) ** 2
