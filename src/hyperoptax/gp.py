"""The Gaussian-process core: the model, its priors and its fit, over fixed-size, masked buffers.

Every front end (``BayesianSearch``, ``GPFIFOSearcher``) stands on this module.
A :class:`GPModel` is the static description both the fit and the predictions
share: the kernel, the priors, and the optional maps of the data (Kumaraswamy
input warping, Box-Cox or tail compression of the targets). Its parameters are
one :class:`ModelParams`. :func:`fit_hyperparameters` finds them by MAP with
Adam or L-BFGS, from several starts: ARD length scales, amplitude, observation
noise (with a floor), constant mean, and the warp and ``λ`` where enabled.

The Gaussian-process arithmetic itself (conditioning, predictions, appends,
joint samples) is :mod:`hyperoptax.posterior`, re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from hyperoptax import boxcox, lbfgs, warping
from hyperoptax.errors import ConfigurationError, check_choice
from hyperoptax.kernels import BaseKernel
from hyperoptax.posterior import (
    GPParams,
    Posterior,
    append,
    condition,
    default_params,
    masked_gram,
    neg_log_marginal_likelihood,
    noise_floor,
    predict,
    predict_joint,
    sample_joint,
    fantasy_alphas,
    predict_fantasies,
)

__all__ = [
    "GPParams",
    "GPPrior",
    "SQRT_D_PRIOR",
    "SHORT_PRIOR",
    "ModelParams",
    "GPModel",
    "Posterior",
    "standardize",
    "compress_tail",
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
    "fantasy_alphas",
    "predict_fantasies",
]


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


# Length scales log-normal with median sqrt(D), the diagonal of the unit cube,
# and scale 1: GPFIFOSearcher's over (configuration, resource). The default
# (Hvarfner et al.'s, median 4.1 sqrt(D)) suits a global acquisition search;
# there one local EI climb starts from a Thompson pick, and on such smooth,
# nearly polynomial fits it ran to the faces of the cube. Async benchmark, 30
# seeds, median regret: Hartmann-6 0.72 -> 0.28, Camel 0.0098 -> 0.0076, Branin
# 2.9e-4 -> 2.0e-4, Hartmann-3 6.1e-4 -> 1.6e-4. With a resource (MOBSTER-style
# refills, benchmarks/schedulers.py) SHORT_PRIOR instead was better on the
# synthetic curves (100 seeds, crossing: asha 0.0038 -> 0.0036, full fidelity
# 0.0031 -> 0.0023) but worse on the digits CNN (median best 0.9796 -> 0.9778,
# 9 -> 6 of 10 seeds reaching 0.975; lower on 5 seeds, higher on none): kept.
SQRT_D_PRIOR = GPPrior(length_scale_loc=0.0, length_scale_scale=1.0)

# Length scales log-normal with median 0.47 sqrt(D) and scale 1: the preset's
# (BayesianSearch.recommended()), and GPFIFOSearcher's without a resource.
# Under the default prior a fit can explain a 6-d function with two length
# scales of 3-13 (it then ignores those two inputs, and no batch ever samples
# the basin that needs them: Hartmann-6 in batches of 8 ended in its local
# optimum on most seeds); a shorter, tighter
# prior keeps every input in the model. benchmarks/search.py, 30 seeds, median
# regret, preset -> this prior: Hartmann-6 in batches of 8 0.119 -> 0.0063,
# of 4 0.0015 -> 1.3e-4; Levy-4 sequential 0.063 -> 0.0032, in batches of 4
# 0.66 -> 0.11, of 8 0.79 -> 0.31; Branin and Hartmann-3 level (within 1.3x
# either way). Medians 0.29, 0.37, 0.61 sqrt(D) and sqrt(D) were worse (the
# last much worse), and so was scale sqrt(3) at median 0.29 sqrt(D)
# (benchmarks/RESULTS.md). GPFIFOSearcher had SQRT_D_PRIOR; this one took the
# async benchmark (30 seeds, median regret) from 2.1e-4 to 1.1e-4 on Branin,
# 2.2e-4 to 9.4e-5 on Hartmann-3, 0.22 to 0.20 on Levy-4, 0.31 to 0.12 on
# Hartmann-6, and from 0.0026 to 0.0061 on Camel (8x ahead of Optuna there).
SHORT_PRIOR = GPPrior(length_scale_loc=-0.75, length_scale_scale=1.0)


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


def neg_log_posterior(params, kernel, X, y, valid, jitter: float, prior: GPPrior) -> jax.Array:
    """The MAP objective: negative log marginal likelihood minus the log prior."""
    return neg_log_marginal_likelihood(params, kernel, X, y, valid, jitter) - prior.log_prob(params)


class ModelParams(NamedTuple):
    """Everything a fit learns: the GP's hyperparameters, plus the optional data maps' parameters.

    ``raw_lam`` (the unconstrained Box-Cox ``λ``, :mod:`hyperoptax.boxcox`) is
    set exactly when the model transforms targets, ``warp``
    (:class:`~hyperoptax.warping.WarpParams`) when it warps inputs; otherwise
    None. (The field order fixes the flat vector the fit optimizes.)
    """

    gp: GPParams
    raw_lam: jax.Array | None = None
    warp: warping.WarpParams | None = None


@dataclass(frozen=True)
class GPModel:
    """What the fit and the predictions share: a hashable, static model specification.

    Attributes:
        kernel: covariance function of the (warped) unit-cube inputs.
        prior: priors of the GP hyperparameters.
        jitter: diagonal added to the Gram matrix.
        warped: ``(D,)`` flags of the coordinates to warp (Kumaraswamy, learned);
            None: no input warping.
        boxcox: Box-Cox-transform the criterion ``-y`` (must be positive), ``λ`` learned.
        output_warping: log-compress results worse than the median (:func:`compress_tail`).
        tied: ``(D,)`` group ids: coordinates with one id share one length scale (a
            category's one-hot coordinates, :func:`hyperoptax.spaces.coordinate_groups`),
            and the length-scale prior counts each group once, as one dimension; None:
            one length scale per coordinate.
    """

    kernel: BaseKernel
    prior: GPPrior = GPPrior()
    jitter: float = 1e-6
    warped: tuple | None = None
    boxcox: bool = False
    output_warping: bool = False
    tied: tuple | None = None

    def tie(self, params: GPParams) -> GPParams:
        """``params`` with each group's log length scales replaced by their mean."""
        if self.tied is None:
            return params
        groups = np.asarray(self.tied)
        member = (groups[:, None] == np.unique(groups)[None, :]).astype(np.float32)  # (D, G)
        share = jnp.asarray(member / member.sum(axis=0), params.log_length_scale.dtype)
        per_group = params.log_length_scale @ share
        return params._replace(log_length_scale=per_group @ jnp.asarray(member.T, per_group.dtype))

    def _prior_log_prob(self, params: GPParams):
        if self.tied is None:
            return self.prior.log_prob(params)
        _, first = np.unique(np.asarray(self.tied), return_index=True)
        return self.prior.log_prob(params._replace(log_length_scale=params.log_length_scale[first]))

    def init_params(self, n_dims: int, length_scale=1.0, dtype=None) -> ModelParams:
        """:func:`default_params`, the identity warp and ``λ = 1`` where enabled."""
        dtype = dtype or jnp.zeros(()).dtype
        return ModelParams(
            gp=default_params(n_dims, length_scale, dtype),
            raw_lam=jnp.asarray(boxcox.raw_from_lam(1.0), dtype) if self.boxcox else None,
            warp=warping.identity_params(n_dims, dtype) if self.warped is not None else None,
        )

    def inputs(self, params: ModelParams, X: jax.Array) -> jax.Array:
        """The kernel's inputs: unit-cube points ``X (n, D)``, warped where enabled."""
        if self.warped is None:
            return X
        return warping.warp(params.warp, X, jnp.asarray(self.warped))

    def targets(self, params: ModelParams, y: jax.Array, valid: jax.Array):
        """Standardized GP targets from maximized results ``y``, and the log-Jacobian of the map.

        The Jacobian (of Box-Cox and of the standardization) makes likelihoods
        of different ``λ`` comparable; it is 0 when nothing is learned.
        """
        if self.output_warping:
            y = compress_tail(y, valid)
        if not self.boxcox:
            z, _, _ = standardize(y, valid)
            return z, jnp.zeros((), y.dtype)
        lam = boxcox.lam_from_raw(params.raw_lam)
        criterion = jnp.where(valid, -y, 1.0)
        z, _, scale = standardize(-boxcox.boxcox(criterion, lam), valid)
        return z, boxcox.log_jacobian(criterion, lam, valid) - valid.sum() * jnp.log(scale)

    def log_prior(self, params: ModelParams):
        """Log prior of the warp and ``λ`` (the GP's own is :meth:`GPPrior.log_prob`)."""
        out = 0.0
        if self.warped is not None:
            out = out + warping.log_prior(params.warp, jnp.asarray(self.warped))
        if self.boxcox:
            out = out + boxcox.log_prior(params.raw_lam)
        return out

    def objective(self, params: ModelParams, X, z, valid, log_jacobian=0.0) -> jax.Array:
        """The MAP objective: negative log posterior of ``params`` given the targets ``z``.

        ``z, log_jacobian = model.targets(params, y, valid)`` for results ``y``.
        """
        gp_params = self.tie(params.gp)
        nll = neg_log_marginal_likelihood(gp_params, self.kernel, self.inputs(params, X), z, valid, self.jitter)
        nlp = nll - self._prior_log_prob(gp_params)
        if self.warped is None and not self.boxcox:
            return nlp
        return nlp - (log_jacobian + self.log_prior(params))


# Keeps Adam from wandering into ranges where float32 Cholesky breaks down.
_LOG_BOUNDS = GPParams(
    log_length_scale=(-6.0, 6.0), log_amplitude=(-6.0, 6.0), log_noise=(-20.0, 2.0), mean=(-5.0, 5.0)
)


def _clip(params: GPParams) -> GPParams:
    return GPParams(*(jnp.clip(p, lo, hi) for p, (lo, hi) in zip(params, _LOG_BOUNDS)))


def _center(model: GPModel, d: int, dtype) -> ModelParams:
    """The prior's center: length scales a little shorter than the prior's median, the rest at defaults."""
    gp = default_params(d, dtype=dtype)
    d_prior = d if model.tied is None else len(set(model.tied))
    ls = model.prior.length_scale_loc + 0.5 * math.log(max(d_prior, 1)) - 1.5
    return model.init_params(d, dtype=dtype)._replace(gp=gp._replace(log_length_scale=jnp.full((d,), ls, dtype)))


def _random_starts(model: GPModel, key, n: int, d: int, dtype) -> ModelParams:
    """``n`` starts (leading axis): log length scales ``~ N(0, 1)``, log amplitude ``~ N(0, 1/4)``."""
    base = model.init_params(d, 1.0, dtype)
    k_ls, k_amp = jax.random.split(key)
    stacked = jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *a.shape)), base)
    return stacked._replace(gp=stacked.gp._replace(
        log_length_scale=base.gp.log_length_scale + jax.random.normal(k_ls, (n, d), dtype),
        log_amplitude=stacked.gp.log_amplitude + 0.5 * jax.random.normal(k_amp, (n,), dtype),
    ))


def fit_hyperparameters(
    model: GPModel,
    X: jax.Array,
    y: jax.Array,
    valid: jax.Array,
    init: ModelParams,
    n_steps: int,
    *,
    method: str = "adam",
    learning_rate: float = 0.1,
    center_start: bool = True,
    n_random_starts: int = 0,
    key: jax.Array | None = None,
) -> ModelParams:
    """MAP parameters of ``model`` (:meth:`GPModel.objective`) given maximized results ``y``.

    Runs ``n_steps`` of Adam (``learning_rate``) from ``init``, from the
    prior's center (unless ``center_start=False``) and from ``n_random_starts``
    random starts drawn with ``key`` (length scales and amplitude spread around
    1, input warp and Box-Cox at the identity). ``method="lbfgs"`` runs L-BFGS
    instead, ``n_steps`` being its most iterations: it stops once converged,
    which from a warm ``init`` (the previous fit) takes a few steps.

    The start whose final objective is lowest (and finite) wins; if every start
    diverges, ``init`` is returned unchanged, so a bad fit never poisons the
    state. Returns parameters of ``init``'s structure.
    """
    check_choice("method", method, ("adam", "lbfgs"))
    _check_structure(model, init)
    if n_random_starts and key is None:
        raise ConfigurationError("fit_hyperparameters: n_random_starts needs a PRNG key, key=jax.random.key(0).")
    if n_steps <= 0:
        return init
    d = X.shape[-1]
    dtype = init.gp.log_noise.dtype
    n_obs = jnp.maximum(valid.sum(), 1).astype(y.dtype)

    starts = jax.tree.map(lambda a, b: jnp.stack([a, b] if center_start else [a]), init, _center(model, d, dtype))
    if n_random_starts:
        extra = _random_starts(model, key, n_random_starts, d, dtype)
        starts = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), starts, extra)

    flat0, unravel = ravel_pytree(init)
    # Only Box-Cox's λ moves the targets; otherwise they are computed once, outside the loops.
    fixed_targets = None if model.boxcox else model.targets(init, y, valid)

    def objective(flat):
        params = unravel(flat)
        z, log_jacobian = model.targets(params, y, valid) if model.boxcox else fixed_targets
        # Per-observation scale keeps Adam's step size meaningful at any n.
        return model.objective(params, X, z, valid, log_jacobian) / n_obs

    optimizer = optax.adam(learning_rate)

    def project(flat):
        params = unravel(flat)
        return ravel_pytree(params._replace(gp=_clip(params.gp)))[0]

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
    out = unravel(jnp.where(jnp.isfinite(losses[best]), flats[best], flat0))
    return out._replace(gp=model.tie(out.gp))


def _check_structure(model: GPModel, params: ModelParams):
    if not isinstance(model, GPModel):
        raise ConfigurationError(
            f"fit_hyperparameters takes a GPModel first, got {model!r}. Wrap the kernel, prior and jitter: "
            f"fit_hyperparameters(GPModel(kernel, prior, jitter), X, y, valid, ModelParams(gp_params), n_steps)."
        )
    if not isinstance(params, ModelParams) or (params.warp is None) != (model.warped is None) \
            or (params.raw_lam is None) == model.boxcox:
        raise ConfigurationError(
            f"fit_hyperparameters: init must be a ModelParams with warp and raw_lam set exactly where the model "
            f"warps inputs ({model.warped is not None}) and Box-Cox transforms targets ({model.boxcox}); got "
            f"{type(params).__name__}. Build it with model.init_params(n_dims) or ModelParams(gp_params)."
        )
