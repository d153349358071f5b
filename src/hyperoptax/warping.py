"""Kumaraswamy input warping: the kernel sees ``k(w(x), w(x'))``.

Each warped unit-cube coordinate goes through the Kumaraswamy CDF
``w(x) = 1 - (1 - x^a)^b`` with its own shape parameters ``a, b > 0``, learned
with the GP hyperparameters (Snoek et al. 2014 use the Beta CDF; Kumaraswamy
has a closed form and a closed-form inverse). ``a = b = 1`` is the identity.
One-hot category coordinates are never warped.

The fitted parameters are unconstrained: ``log a`` runs through a scaled
sigmoid into ``[log LOWER, log UPPER]``, so Adam cannot push a shape to 0 or
infinity, and ``raw = 0`` means ``a = 1``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "WarpParams",
    "kumaraswamy",
    "kumaraswamy_inverse",
    "identity_params",
    "shapes",
    "warp",
    "log_prior",
]

LOWER, UPPER = 0.1, 10.0
# Inputs are squeezed into [EPS, 1 - EPS]: x^a has an infinite slope at 0 for a < 1.
EPS = 1e-5
PRIOR_SCALE = 1.0  # of log a, log b


class WarpParams(NamedTuple):
    """Unconstrained warping parameters, one pair per unit-cube coordinate."""

    raw_a: jax.Array  # (D,)
    raw_b: jax.Array  # (D,)


def kumaraswamy(x, a, b):
    """The Kumaraswamy CDF ``1 - (1 - x^a)^b`` for ``x`` in ``(0, 1)``.

    Written with ``expm1``/``log`` so that ``1 - x^a`` keeps its digits near
    ``x = 1`` in float32.
    """
    one_minus_xa = -jnp.expm1(a * jnp.log(x))
    return -jnp.expm1(b * jnp.log(one_minus_xa))


def kumaraswamy_inverse(w, a, b):
    """``x`` with ``kumaraswamy(x, a, b) == w``: ``(1 - (1 - w)^(1/b))^(1/a)``."""
    one_minus = -jnp.expm1(jnp.log1p(-w) / b)
    return jnp.exp(jnp.log(one_minus) / a)


def identity_params(n_dims: int, dtype=None) -> WarpParams:
    """Parameters of the identity warp (``a = b = 1``)."""
    zeros = jnp.zeros((n_dims,), dtype or jnp.zeros(()).dtype)
    return WarpParams(zeros, zeros)


# sigmoid(_OFFSET) places raw = 0 at log a = 0 for any (LOWER, UPPER).
_OFFSET = math.log(-math.log(LOWER) / math.log(UPPER))


def _constrain(raw):
    lo, hi = math.log(LOWER), math.log(UPPER)
    return jnp.exp(lo + (hi - lo) * jax.nn.sigmoid(raw + _OFFSET))


def shapes(params: WarpParams):
    """The constrained shapes ``(a, b)``, each ``(D,)`` in ``(LOWER, UPPER)``."""
    return _constrain(params.raw_a), _constrain(params.raw_b)


def warp(params: WarpParams, X: jax.Array, warped: jax.Array) -> jax.Array:
    """Warp the columns of ``X (n, D)`` flagged in ``warped (D,)``; the others pass through."""
    a, b = shapes(params)
    squeezed = EPS + (1.0 - 2.0 * EPS) * jnp.clip(X, 0.0, 1.0)
    return jnp.where(warped, kumaraswamy(squeezed, a, b), X)


def log_prior(params: WarpParams, warped: jax.Array) -> jax.Array:
    """Gaussian prior on ``log a``, ``log b`` (centered on the identity), over warped dims."""
    a, b = shapes(params)
    z = (jnp.log(a) ** 2 + jnp.log(b) ** 2) / PRIOR_SCALE**2
    return -0.5 * jnp.sum(jnp.where(warped, z, 0.0))
