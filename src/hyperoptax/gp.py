"""The Gaussian-process core: pure functions over fixed-size, masked buffers.

Every front end (``BayesianSearch``, ``GPFIFOSearcher``) stands on these
functions. Inputs are unit-cube coordinates ``X (n, D)``; targets ``y (n,)`` are
standardized and *maximized*; ``valid (n,)`` marks the rows that hold real
observations. Invalid rows are decoupled from the rest (identity rows in the
Gram matrix, zero residual), so they add nothing to the likelihood or the
posterior and the shapes never change: a growing data set never recompiles.

The kernel's hyperparameters -- ARD length scales, amplitude, observation
noise (with a floor) and a constant mean -- are fitted by MAP under weak
priors with Adam or L-BFGS, from several starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import cho_solve, solve_triangular

from hyperoptax import lbfgs
from hyperoptax.errors import check_choice
from hyperoptax.kernels import BaseKernel

__all__ = [
    "GPParams",
    "GPPrior",
    "Posterior",
    "standardize",
    "default_params",
    "noise_floor",
    "masked_gram",
    "neg_log_marginal_likelihood",
    "neg_log_posterior",
    "fit_hyperparameters",
    "condition",
    "predict",
    "append",
    "predict_joint",
    "sample_joint",
]


class GPParams(NamedTuple):
    """GP hyperparameters, all unconstrained (logs) so any real value is valid."""

    log_length_scale: jax.Array  # (D,) ARD length scales in unit-cube units
    log_amplitude: jax.Array  # () signal variance of the standardized target
    log_noise: jax.Array  # () observation noise variance above the floor
    mean: jax.Array  # () constant prior mean of the standardized target


@dataclass(frozen=True)
class GPPrior:
    """Weak priors for the MAP fit (all Gaussian on the log scale, except the mean).

    The length-scale prior grows with the dimension, ``loc + log(D) / 2``, so
    that high-dimensional spaces start smooth (Hvarfner et al. 2024).
    """

    length_scale_loc: float = math.sqrt(2.0)
    length_scale_scale: float = math.sqrt(3.0)
    amplitude_loc: float = 0.0
    amplitude_scale: float = 1.0
    noise_loc: float = -12.0
    noise_scale: float = 3.0
    mean_scale: float = 1.0

    def log_prob(self, params: GPParams) -> jax.Array:
        d = params.log_length_scale.shape[-1]
        ls_loc = self.length_scale_loc + 0.5 * math.log(max(d, 1))

        def normal(x, loc, scale):
            return -0.5 * jnp.sum(((x - loc) / scale) ** 2)

        return (
            normal(params.log_length_scale, ls_loc, self.length_scale_scale)
            + normal(params.log_amplitude, self.amplitude_loc, self.amplitude_scale)
            + normal(params.log_noise, self.noise_loc, self.noise_scale)
            + normal(params.mean, 0.0, self.mean_scale)
        )


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


def standardize(y: jax.Array, valid: jax.Array):
    """Zero-mean, unit-variance targets over the valid rows (0 elsewhere).

    Returns ``(z, loc, scale)``. Constant or single observations get scale 1, so
    the result is always finite.
    """
    n = jnp.maximum(valid.sum(), 1).astype(y.dtype)
    y_safe = jnp.where(valid, y, 0.0)
    loc = y_safe.sum() / n
    var = jnp.where(valid, (y_safe - loc) ** 2, 0.0).sum() / n
    scale = jnp.sqrt(var)
    scale = jnp.where(scale > 1e-12 * (1.0 + jnp.abs(loc)), scale, 1.0)
    return jnp.where(valid, (y_safe - loc) / scale, 0.0), loc, scale


def compress_tail(y: jax.Array, valid: jax.Array) -> jax.Array:
    """Log-compress targets below the median (maximized targets), keep the rest.

    A few terrible trials (a diverged run, Branin's corners) otherwise dominate
    the standard deviation, and the differences that matter near the optimum
    shrink below the noise floor. Values worse than the median are mapped to
    ``med - s * log1p((med - y) / s)`` with ``s`` the spread of the upper half:
    monotone, so the incumbent and the ordering are unchanged.
    """
    med = jnp.nanmedian(jnp.where(valid, y, jnp.nan))
    top = jnp.max(jnp.where(valid, y, -jnp.inf))
    s = jnp.maximum(top - med, 1e-12 * (1.0 + jnp.abs(med)))
    below = valid & (y < med)
    gap = jnp.where(below, (med - y) / s, 0.0)
    out = jnp.where(below, med - s * jnp.log1p(gap), y)
    return jnp.where(valid & jnp.isfinite(med), out, jnp.where(valid, y, 0.0))


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


def neg_log_posterior(params, kernel, X, y, valid, jitter: float, prior: GPPrior) -> jax.Array:
    """The MAP objective: negative log marginal likelihood minus the log prior."""
    return neg_log_marginal_likelihood(params, kernel, X, y, valid, jitter) - prior.log_prob(params)


# Keeps Adam from wandering into ranges where float32 Cholesky breaks down.
_LOG_BOUNDS = GPParams(
    log_length_scale=(-6.0, 6.0), log_amplitude=(-6.0, 6.0), log_noise=(-20.0, 2.0), mean=(-5.0, 5.0)
)


def _clip(params: GPParams) -> GPParams:
    return GPParams(*(jnp.clip(p, lo, hi) for p, (lo, hi) in zip(params, _LOG_BOUNDS)))


def fit_hyperparameters(
    kernel: BaseKernel,
    X: jax.Array,
    y: jax.Array,
    valid: jax.Array,
    init: GPParams,
    n_steps: int,
    *,
    prior: GPPrior = GPPrior(),
    jitter: float = 1e-6,
    learning_rate: float = 0.1,
    method: str = "adam",
    center_start: bool = True,
    extra_starts: GPParams | None = None,
    transform=None,
    transform_init=None,
    transform_center=None,
):
    """MAP hyperparameters by ``n_steps`` of Adam from ``init`` and the prior's center.

    ``method="lbfgs"`` runs L-BFGS instead, ``n_steps`` being its most
    iterations: it stops once converged, which from a warm ``init`` (the
    previous fit) takes a few steps. ``center_start=False`` drops the start
    at the prior's center.

    ``extra_starts`` (a GPParams whose leaves have a leading axis) adds restarts.
    The start whose final objective is lowest (and finite) wins; if every start
    diverges, ``init`` is returned unchanged, so a bad fit never poisons the state.

    ``transform`` fits extra parameters ``aux`` (any pytree of unconstrained
    arrays) jointly with the GP's: ``transform(aux, X, y, valid) -> (X', y',
    log_correction)`` maps the data before the likelihood (input warping, a
    target transform) and ``log_correction`` is added to the log posterior (the
    log-Jacobian of a target transform plus the log prior of ``aux``).
    ``transform_init`` is ``aux`` for the ``init`` start, ``transform_center``
    (default: the same) for the center start; ``extra_starts`` is then a
    ``(GPParams, aux)`` pair with leading axes. With a transform the result is
    the pair ``(GPParams, aux)``; without one, the GPParams alone.
    """
    check_choice("method", method, ("adam", "lbfgs"))
    if n_steps <= 0:
        return init if transform is None else (init, transform_init)
    d = X.shape[-1]
    center = default_params(d, dtype=init.log_noise.dtype)
    center = center._replace(
        log_length_scale=jnp.full((d,), prior.length_scale_loc + 0.5 * math.log(max(d, 1)) - 1.5, center.mean.dtype)
    )
    n_obs = jnp.maximum(valid.sum(), 1).astype(y.dtype)
    if transform is None:
        clip = _clip

        def log_posterior_loss(params):
            return neg_log_posterior(params, kernel, X, y, valid, jitter, prior)

    else:
        init = (init, transform_init)
        center = (center, transform_init if transform_center is None else transform_center)
        clip = lambda theta: (_clip(theta[0]), theta[1])

        def log_posterior_loss(theta):
            params, aux = theta
            X_t, y_t, log_correction = transform(aux, X, y, valid)
            return neg_log_posterior(params, kernel, X_t, y_t, valid, jitter, prior) - log_correction

    starts = jax.tree.map(lambda a, b: jnp.stack([a, b] if center_start else [a]), init, center)
    if extra_starts is not None:
        starts = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), starts, extra_starts)

    flat0, unravel = ravel_pytree(init)

    def objective(flat):
        # Per-observation scale keeps Adam's step size meaningful at any n.
        return log_posterior_loss(unravel(flat)) / n_obs

    optimizer = optax.adam(learning_rate)

    def project(flat):
        return ravel_pytree(clip(unravel(flat)))[0]

    def run_adam(flat):
        def step(carry, _):
            flat, opt_state = carry
            grads = jax.grad(objective)(flat)
            grads = jnp.where(jnp.isfinite(grads), grads, 0.0)
            updates, opt_state = optimizer.update(grads, opt_state, flat)
            return (project(optax.apply_updates(flat, updates)), opt_state), None

        (flat, _), _ = jax.lax.scan(step, (flat, optimizer.init(flat)), None, length=n_steps)
        return flat, objective(flat)

    def run_lbfgs(flat):
        # The bounds are applied inside the objective: L-BFGS's curvature pairs
        # stay consistent, and the result is clipped onto them at the end.
        # The objective is per observation, O(1): changes below 1e-5 do not move the posterior.
        flat, loss = lbfgs.minimize(
            lambda f: objective(project(f)), flat, n_steps, grad_tol=1e-4, rel_tol=1e-5, abs_tol=1e-5
        )
        return project(flat), loss

    flat_starts = jax.vmap(lambda p: ravel_pytree(p)[0])(starts)
    if method == "adam":
        flats, losses = jax.vmap(run_adam)(flat_starts)
    else:
        # One start after another: a vmapped while_loop around a Cholesky hangs
        # XLA's CPU runtime (jaxlib 0.10.2: idle threads, never returns).
        flats, losses = jax.lax.map(run_lbfgs, flat_starts)
    losses = jnp.where(jnp.isfinite(losses) & jnp.all(jnp.isfinite(flats), axis=1), losses, jnp.inf)
    best = jnp.argmin(losses)
    return unravel(jnp.where(jnp.isfinite(losses[best]), flats[best], flat0))


def condition(kernel: BaseKernel, params: GPParams, X, y, valid, jitter: float = 1e-6) -> Posterior:
    """Condition the GP on the valid rows of ``(X, y)``."""
    L, L_inv = _cholesky_with_inverse(masked_gram(kernel, params, X, valid, jitter))
    residual = jnp.where(valid, y - params.mean, 0.0)
    return Posterior(X, residual, valid, L, L_inv, cho_solve((L, True), residual), params)


def _mean_and_whitened(kernel: BaseKernel, posterior: Posterior, Xs: jax.Array):
    """Posterior mean at ``Xs`` and ``V = L⁻¹ K(X, Xs)``, shared by the marginal and joint predictions."""
    p = posterior.params
    Ks = jnp.where(posterior.valid[None, :], _covariance(kernel, p, Xs, posterior.X), 0.0)
    return p.mean + Ks @ posterior.alpha, posterior.L_inv @ Ks.T


def predict(kernel: BaseKernel, posterior: Posterior, Xs: jax.Array):
    """Posterior mean and standard deviation of the latent function at ``Xs (m, D)``."""
    p = posterior.params
    mean, V = _mean_and_whitened(kernel, posterior, Xs)
    prior_var = jnp.exp(p.log_amplitude) * jax.vmap(lambda x: kernel.evaluate(x, x, jnp.exp(p.log_length_scale)))(Xs)
    var = prior_var - jnp.sum(V**2, axis=0)
    # Rounding can push the variance at a data point a hair below zero.
    std = jnp.sqrt(jnp.maximum(var, 1e-12 * jnp.exp(p.log_amplitude)))
    return mean, std


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
