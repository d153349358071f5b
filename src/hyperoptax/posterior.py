"""A Gaussian process with given hyperparameters, over fixed-size, masked buffers.

Inputs are unit-cube coordinates ``X (n, D)``; targets ``y (n,)`` are
standardized and *maximized*; ``valid (n,)`` marks the rows that hold real
observations. Invalid rows are decoupled from the rest (identity rows in the
Gram matrix, zero residual), so they add nothing to the likelihood or the
posterior and the shapes never change: a growing data set never recompiles.

Here: the Gram matrix, the marginal likelihood, conditioning, predictions, the
Kriging Believer's O(n²) append and joint samples. Learning the
hyperparameters is :mod:`hyperoptax.gp`'s, which re-exports all of this.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve, solve_triangular

from hyperoptax.kernels import BaseKernel

__all__ = [
    "GPParams",
    "Posterior",
    "default_params",
    "noise_floor",
    "masked_gram",
    "neg_log_marginal_likelihood",
    "condition",
    "predict",
    "append",
    "predict_joint",
    "sample_joint",
    "fantasy_alphas",
    "predict_fantasies",
]


class GPParams(NamedTuple):
    """GP hyperparameters, all unconstrained (logs) so any real value is valid."""

    log_length_scale: jax.Array  # (D,) ARD length scales in unit-cube units
    log_amplitude: jax.Array  # () signal variance of the standardized target
    log_noise: jax.Array  # () observation noise variance above the floor
    mean: jax.Array  # () constant prior mean of the standardized target


class Posterior(NamedTuple):
    """A GP conditioned on data: everything :func:`predict` and :func:`append` need.

    Attributes:
        X: ``(n, D)`` inputs (invalid rows are ignored).
        residual: ``(n,)`` standardized targets minus the constant mean, 0 where invalid.
        valid: ``(n,)`` bool, rows that hold observations.
        L: ``(n, n)`` lower Cholesky factor of the masked Gram matrix.
        L_inv: ``(n, n)`` its inverse: predictions multiply by it instead of
            solving with ``L`` (a matrix product is 5x faster than a triangular
            solve for a few thousand candidates).
        alpha: ``(n,)`` ``K⁻¹ residual``.
        params: the hyperparameters it was conditioned with.
    """

    X: jax.Array
    residual: jax.Array
    valid: jax.Array
    L: jax.Array
    L_inv: jax.Array
    alpha: jax.Array
    params: GPParams


def noise_floor(dtype) -> float:
    """Smallest observation variance (standardized units) the Cholesky survives.

    float32 needs more room than float64: duplicated points make the Gram matrix
    singular up to this floor.
    """
    return 1e-6 if jnp.dtype(dtype) == jnp.float64 else 1e-5


def default_params(n_dims: int, length_scale=1.0, dtype=None) -> GPParams:
    """Starting hyperparameters: the kernel's length scale, unit amplitude, small noise."""
    dtype = dtype or jnp.zeros(()).dtype
    log_ls = jnp.broadcast_to(jnp.log(jnp.asarray(length_scale, dtype)), (n_dims,))
    return GPParams(
        log_length_scale=jnp.asarray(log_ls, dtype),
        log_amplitude=jnp.zeros((), dtype),
        log_noise=jnp.full((), -8.0, dtype),
        mean=jnp.zeros((), dtype),
    )


def _covariance(kernel: BaseKernel, params: GPParams, X1, X2):
    return jnp.exp(params.log_amplitude) * kernel(X1, X2, jnp.exp(params.log_length_scale))


def _noise(params: GPParams, jitter: float):
    return jnp.exp(params.log_noise) + noise_floor(params.log_noise.dtype) + jitter


def masked_gram(kernel, params, X, valid, jitter: float) -> jax.Array:
    """``K + σ²I`` on valid rows, the identity on invalid ones."""
    both = valid[:, None] & valid[None, :]
    K = jnp.where(both, _covariance(kernel, params, X, X), 0.0)
    return K + jnp.diag(jnp.where(valid, _noise(params, jitter), 1.0))


@jax.custom_vjp
def _gaussian_nll(K, r):
    """``r·K⁻¹r / 2 + log|K| / 2`` with the classic closed-form gradient.

    Differentiating through the Cholesky factorization costs a chain of small
    triangular solves; ``∂/∂K = (K⁻¹ - ααᵀ) / 2`` needs one inverse, made from
    the same factor (Rasmussen & Williams, eq. 5.9).
    """
    return _gaussian_nll_fwd(K, r)[0]


def _cholesky_with_inverse(K):
    """``(L, L⁻¹)`` of a positive-definite ``K``."""
    L = jnp.linalg.cholesky(K)
    return L, solve_triangular(L, jnp.eye(K.shape[0], dtype=K.dtype), lower=True)


def _gaussian_nll_fwd(K, r):
    L, L_inv = _cholesky_with_inverse(K)
    K_inv = L_inv.T @ L_inv
    alpha = K_inv @ r
    return 0.5 * r @ alpha + jnp.sum(jnp.log(jnp.diag(L))), (K_inv, alpha)


def _gaussian_nll_bwd(residuals, g):
    K_inv, alpha = residuals
    return g * 0.5 * (K_inv - jnp.outer(alpha, alpha)), g * alpha


_gaussian_nll.defvjp(_gaussian_nll_fwd, _gaussian_nll_bwd)


def neg_log_marginal_likelihood(params, kernel, X, y, valid, jitter: float) -> jax.Array:
    """``-log p(y | X, params)`` over the valid rows."""
    r = jnp.where(valid, y - params.mean, 0.0)
    nll = _gaussian_nll(masked_gram(kernel, params, X, valid, jitter), r)
    return nll + 0.5 * valid.sum().astype(r.dtype) * math.log(2 * math.pi)


def condition(kernel: BaseKernel, params: GPParams, X, y, valid, jitter: float = 1e-6) -> Posterior:
    """Condition the GP on the valid rows of ``(X, y)``."""
    L, L_inv = _cholesky_with_inverse(masked_gram(kernel, params, X, valid, jitter))
    residual = jnp.where(valid, y - params.mean, 0.0)
    return Posterior(X, residual, valid, L, L_inv, cho_solve((L, True), residual), params)


def _cross_covariance(kernel: BaseKernel, posterior: Posterior, Xs: jax.Array):
    return jnp.where(posterior.valid[None, :], _covariance(kernel, posterior.params, Xs, posterior.X), 0.0)


def _mean_and_whitened(kernel: BaseKernel, posterior: Posterior, Xs: jax.Array):
    """Posterior mean at ``Xs`` and ``V = L⁻¹ K(X, Xs)``, shared by the marginal and joint predictions."""
    Ks = _cross_covariance(kernel, posterior, Xs)
    return posterior.params.mean + Ks @ posterior.alpha, posterior.L_inv @ Ks.T


def _std(kernel: BaseKernel, posterior: Posterior, Xs: jax.Array, V: jax.Array):
    p = posterior.params
    prior_var = jnp.exp(p.log_amplitude) * jax.vmap(lambda x: kernel.evaluate(x, x, jnp.exp(p.log_length_scale)))(Xs)
    var = prior_var - jnp.sum(V**2, axis=0)
    # Rounding can push the variance at a data point a hair below zero.
    return jnp.sqrt(jnp.maximum(var, 1e-12 * jnp.exp(p.log_amplitude)))


def predict(kernel: BaseKernel, posterior: Posterior, Xs: jax.Array):
    """Posterior mean and standard deviation of the latent function at ``Xs (m, D)``."""
    mean, V = _mean_and_whitened(kernel, posterior, Xs)
    return mean, _std(kernel, posterior, Xs, V)


def append(kernel: BaseKernel, posterior: Posterior, x: jax.Array, y: jax.Array, slot, jitter: float = 1e-6) -> Posterior:
    """Add one observation at row ``slot`` in O(n²) (a new Cholesky row).

    Exact when every valid row lies before ``slot`` -- true for the append-only
    buffers of the searchers, which write observations in order.
    """
    p = posterior.params
    k = jnp.where(posterior.valid, _covariance(kernel, p, x[None], posterior.X)[0], 0.0)
    v = posterior.L_inv @ k
    k_xx = jnp.exp(p.log_amplitude) * kernel.evaluate(x, x, jnp.exp(p.log_length_scale)) + _noise(p, jitter)
    d = jnp.sqrt(jnp.maximum(k_xx - v @ v, noise_floor(v.dtype)))
    L = posterior.L.at[slot].set(v.at[slot].set(d))
    # The inverse of the grown factor gains the row [-vᵀ L⁻¹ / d, 1 / d].
    L_inv = posterior.L_inv.at[slot].set((-(v @ posterior.L_inv) / d).at[slot].set(1.0 / d))
    valid = posterior.valid.at[slot].set(True)
    residual = posterior.residual.at[slot].set(y - p.mean)
    X = posterior.X.at[slot].set(x)
    return Posterior(X, residual, valid, L, L_inv, cho_solve((L, True), residual), p)


def fantasy_alphas(posterior: Posterior, residuals: jax.Array) -> jax.Array:
    """``K⁻¹ r`` ``(n, S)`` for ``S`` residual vectors ``residuals (S, n)`` on ``posterior``'s inputs.

    A fantasy is the posterior's data with other values at some rows (the
    batch's pending points, each fantasy with its own draw); the inputs and so
    the Cholesky factor are shared.
    """
    return cho_solve((posterior.L, True), jnp.where(posterior.valid[None, :], residuals, 0.0).T)


def predict_fantasies(kernel: BaseKernel, posterior: Posterior, alphas: jax.Array, Xs: jax.Array):
    """Posterior means ``(S, m)`` of the ``S`` fantasies (:func:`fantasy_alphas`) at ``Xs (m, D)``, and
    their shared standard deviation ``(m,)``."""
    Ks = _cross_covariance(kernel, posterior, Xs)
    std = _std(kernel, posterior, Xs, posterior.L_inv @ Ks.T)
    return posterior.params.mean + (Ks @ alphas).T, std


def predict_joint(kernel: BaseKernel, posterior: Posterior, Xs: jax.Array):
    """Posterior mean ``(m,)`` and full covariance ``(m, m)`` of the latent function at ``Xs``."""
    mean, V = _mean_and_whitened(kernel, posterior, Xs)
    cov = _covariance(kernel, posterior.params, Xs, Xs) - V.T @ V
    return mean, 0.5 * (cov + cov.T)


def sample_joint(
    kernel: BaseKernel,
    posterior: Posterior,
    Xs: jax.Array,
    key: jax.Array,
    n_samples: int,
    jitter: float = 1e-6,
    with_noise: bool = True,
) -> jax.Array:
    """``(n_samples, m)`` joint posterior draws at ``Xs (m, D)``.

    With ``with_noise`` (the default) these are draws of *observations* (the
    fitted noise variance is added), as needed to fantasize pending evaluations.
    """
    mean, cov = predict_joint(kernel, posterior, Xs)
    diag = _noise(posterior.params, jitter) if with_noise else noise_floor(cov.dtype) + jitter
    L = jnp.linalg.cholesky(cov + diag * jnp.eye(Xs.shape[0], dtype=cov.dtype))
    eps = jax.random.normal(key, (n_samples, Xs.shape[0]), cov.dtype)
    return mean[None, :] + eps @ L.T
