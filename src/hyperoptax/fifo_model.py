"""The model step of :class:`~hyperoptax.GPFIFOSearcher`: its configuration and pure, jitted functions.

The searcher keeps its trials in Python; every number crunched here comes in
as fixed-size, padded arrays, so a whole search compiles each function once
per (data bucket, pending bucket) pair. All GP work is done by the core,
:mod:`hyperoptax.gp` (model, priors, fit with random restarts, conditioning,
joint samples), :mod:`hyperoptax.acquisition` (the acquisition and its average
over fantasies) and :mod:`hyperoptax.acqopt` (the local climb).

Three coordinate systems:

* the *model cube*: :func:`hyperoptax.spaces.encode` of the full config space;
  observed and pending inputs live here (with transfer learning, data of every
  task);
* the *search cube* ``u in [0, 1]^D``: the region new configurations come from.
  It maps into the model cube by the box ``lo + u (hi - lo)`` -- the identity
  unless transfer learning narrows the active task's ranges and fixes the
  task coordinates;
* the *kernel inputs*: model-cube points after (optional) Kumaraswamy warping.

Targets: the searcher *minimizes* its criterion ``c``; the GP maximizes, so the
model is given ``-c`` (Box-Cox, where enabled, transforms ``c`` itself).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve

from hyperoptax import acqopt, gp, kernels
from hyperoptax import acquisition as acq
from hyperoptax import spaces as sp
from hyperoptax.errors import ConfigurationError

__all__ = [
    "ACQUISITIONS",
    "ModelConfig",
    "Fantasies",
    "model_config",
    "subsample",
    "default_params",
    "params_to_json",
    "params_from_json",
    "embed",
    "unembed",
    "snap",
    "sample_candidates",
    "decode",
    "encode",
    "canonical",
    "fit",
    "fantasize",
    "acquisition_value",
    "initial_scores",
    "propose",
    "refine",
]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Static (hashable) configuration of the model step; equal configs share compilations."""

    space: tuple  # Space leaves of the model (full) config space
    model: gp.GPModel  # kernel, priors, input warping, Box-Cox
    lo: tuple  # (D,) search box in the model cube
    hi: tuple
    acquisition: acq.BaseAcquisition  # EI, LogEI or UCB, averaged over fantasy samples
    initial_scoring: str
    num_fantasy_samples: int
    opt_nstarts: int
    opt_maxiter: int
    local_steps: int

    @property
    def n_dims(self) -> int:
        return len(self.lo)


_LOCAL_STEPS = 20  # L-BFGS steps of the local acquisition optimization

# Syne Tune's acq_function names: the core's acquisition made from acq_function_kwargs, and the kwargs it takes.
ACQUISITIONS = {
    "ei": (lambda: acq.EI(xi=0.0), ()),
    "logei": (lambda: acq.LogEI(xi=0.0), ()),
    "lcb": (lambda kappa=1.0: acq.UCB(kappa=float(kappa)), ("kappa",)),
}


def model_config(names: list, leaves: tuple, options: dict, resource: sp.Space | None = None) -> ModelConfig:
    """The model of a searcher over ``leaves`` (named ``names``) with (checked) ``options``.

    ``matern52-ard`` is Matérn-5/2 with one length scale per coordinate,
    ``matern52-noard`` one shared length scale. With transfer learning the
    task's one-hot coordinates get their own (tied) Matérn-5/2, multiplied in
    (``matern52_product``) or left out (``matern52_same``).

    ``resource`` (multi-fidelity, MOBSTER-style): a space of the resource (training steps, epochs), the
    model's last input; the search box fixes it at its top, so new configurations are proposed where they
    count, at the full resource.
    """
    lo, hi = _search_box(names, leaves, options)
    if resource is not None:
        leaves = (*leaves, resource)
        lo, hi = np.append(lo, 1.0), np.append(hi, 1.0)
    dims = np.arange(len(lo))
    task_dims = np.zeros(len(lo), bool)
    tl = options["transfer_learning_task_attr"]
    start = 0
    for name, leaf in zip(names, leaves):
        if name == tl:
            task_dims[start : start + leaf.n_dims] = True
        start += leaf.n_dims
    matern = kernels.Matern(nu=2.5)
    tied = options["gp_base_kernel"] == "matern52-noard"
    if tl is None:
        kernel = kernels.Subset(matern, tuple(dims.tolist()), tied=True) if tied else matern
    else:
        kernel = kernels.Subset(matern, tuple(dims[~task_dims].tolist()), tied=tied)
        if options["transfer_learning_model"] == "matern52_product":
            kernel = kernels.Product(kernels.Subset(matern, tuple(dims[task_dims].tolist()), tied=True), kernel)
    warped = tuple((~sp.categorical_dims(leaves)).tolist()) if options["input_warping"] else None
    # The preset's shorter length-scale prior for asynchronous search (measured better on 4 of the async
    # benchmark's 5 functions); over (configuration, resource) the sqrt(D) one, which a short prior did
    # not beat: better on the synthetic curves, worse on 5 of 10 digits seeds and better on none (gp.py).
    prior = gp.SHORT_PRIOR if resource is None else gp.SQRT_D_PRIOR
    model = gp.GPModel(kernel, prior=prior, warped=warped, boxcox=bool(options["boxcox_transform"]))
    make_acquisition, _ = ACQUISITIONS[options["acq_function"]]
    acquisition = make_acquisition(**(options["acq_function_kwargs"] or {}))
    return ModelConfig(
        space=leaves, model=model, lo=tuple(lo), hi=tuple(hi), acquisition=acquisition,
        initial_scoring=options["initial_scoring"], num_fantasy_samples=int(options["num_fantasy_samples"]),
        opt_nstarts=int(options["opt_nstarts"]), opt_maxiter=int(options["opt_maxiter"]),
        local_steps=0 if options["skip_local_optimization"] else _LOCAL_STEPS,
    )


def _search_box(names, leaves, o):
    """Where new configurations come from, as a box in the model cube (transfer learning narrows it)."""
    tl, active = o["transfer_learning_task_attr"], o["transfer_learning_active_config_space"]
    lo, hi = [], []
    for name, leaf in zip(names, leaves):
        if name == tl:
            onehot = [float(v == o["transfer_learning_active_task"]) for v in leaf.values]
            lo += onehot
            hi += onehot
            continue
        sub = (active or {}).get(name, leaf)
        if sub == leaf:
            lo += [0.0] * leaf.n_dims
            hi += [1.0] * leaf.n_dims
        elif isinstance(leaf, sp.DiscreteSpace) and leaf.is_categorical and isinstance(sub, sp.DiscreteSpace) \
                and set(sub.values) <= set(leaf.values):
            keep = [float(v in sub.values) for v in leaf.values]
            lo += [0.0] * leaf.n_dims
            hi += keep
        elif type(sub) is type(leaf) and isinstance(leaf, sp.LinearSpace):
            f0, f1 = leaf._edges()
            a0, a1 = sub._edges()
            if a0 < f0 - 1e-9 or a1 > f1 + 1e-9:
                raise ConfigurationError(
                    f"transfer_learning_active_config_space[{name!r}] = {sub!r} is not inside config_space's "
                    f"{leaf!r}. config_space must cover every task's ranges."
                )
            lo.append((a0 - f0) / (f1 - f0))
            hi.append((a1 - f0) / (f1 - f0))
        else:
            raise ConfigurationError(
                f"transfer_learning_active_config_space[{name!r}] = {sub!r} must be the same kind of space as "
                f"config_space's {leaf!r} (a narrower range, or a subset of the categories)."
            )
    return np.asarray(lo), np.asarray(hi)


def subsample(criterion: np.ndarray, max_size: int | None, top_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of at most ``max_size`` observations: the best ``round(top_fraction * max_size)``
    (lowest criterion) and the rest drawn at random without replacement; sorted, so the data keep their order."""
    n = len(criterion)
    if max_size is None or n <= max_size:
        return np.arange(n)
    n_top = min(int(round(top_fraction * max_size)), max_size)
    order = np.argsort(criterion, kind="stable")
    top, rest = order[:n_top], order[n_top:]
    drawn = rng.choice(rest, size=max_size - n_top, replace=False) if max_size > n_top else np.empty(0, int)
    return np.sort(np.concatenate([top, drawn]).astype(int))


class Fantasies(NamedTuple):
    """The GP conditioned on data plus ``S`` fantasized values at the pending points.

    All samples share inputs, hence one Cholesky factor (``posterior.L``);
    ``residuals``/``alphas`` ``(S, N)`` hold the per-sample targets, ``y_best
    (S,)`` the per-sample incumbent (best observed or fantasized target).
    """

    posterior: gp.Posterior
    residuals: jax.Array
    alphas: jax.Array
    y_best: jax.Array
    params: gp.ModelParams


# --- parameters -------------------------------------------------------------


def default_params(cfg: ModelConfig, dtype=None) -> gp.ModelParams:
    """GP hyperparameters at their defaults, the identity warp and ``λ = 1`` where enabled."""
    return cfg.model.init_params(cfg.n_dims, 1.0, dtype)


def params_to_json(params: gp.ModelParams) -> dict:
    """``{"gp": [...], "lam": ..., "warp": [...]}`` (the entries in use) as plain JSON types."""
    to_list = lambda a: np.asarray(a).tolist()
    out = {"gp": [to_list(a) for a in params.gp]}
    if params.raw_lam is not None:
        out["lam"] = to_list(params.raw_lam)
    if params.warp is not None:
        out["warp"] = [to_list(a) for a in params.warp]
    return out


def params_from_json(cfg: ModelConfig, data: dict) -> gp.ModelParams:
    """Inverse of :func:`params_to_json` (exact: float32 values survive a trip through float64)."""
    template = default_params(cfg)
    rebuild = lambda values, like: type(like)(
        *(jnp.asarray(v, t.dtype).reshape(t.shape) for v, t in zip(values, like))
    )
    return gp.ModelParams(
        gp=rebuild(data["gp"], template.gp),
        raw_lam=None if template.raw_lam is None else jnp.asarray(data["lam"], template.raw_lam.dtype),
        warp=None if template.warp is None else rebuild(data["warp"], template.warp),
    )


# --- search cube <-> model cube ---------------------------------------------


def embed(cfg, U):
    """Search cube -> model cube."""
    lo, hi = jnp.asarray(cfg.lo, U.dtype), jnp.asarray(cfg.hi, U.dtype)
    return lo + U * (hi - lo)


def unembed(cfg, X):
    """Model cube -> search cube (clipped onto it; 0 on the coordinates the box fixes)."""
    lo, hi = jnp.asarray(cfg.lo, X.dtype), jnp.asarray(cfg.hi, X.dtype)
    width = hi - lo
    return jnp.where(width > 0, jnp.clip((X - lo) / jnp.where(width > 0, width, 1.0), 0.0, 1.0), 0.0)


def snap(cfg, U):
    """Move search-cube points onto the space (integers, categories, fixed coordinates)."""
    return unembed(cfg, sp.snap(cfg.space, embed(cfg, U)))


# --- jitted entry points ----------------------------------------------------


@functools.partial(jax.jit, static_argnums=(0, 2))
def sample_candidates(cfg: ModelConfig, key, n: int):
    """``n`` uniform points of the search cube, snapped onto the space."""
    return snap(cfg, jax.random.uniform(key, (n, cfg.n_dims)))


@functools.partial(jax.jit, static_argnums=0)
def decode(cfg: ModelConfig, U):
    """Search-cube points -> stored values ``(m, n_params)``."""
    return sp.decode(cfg.space, embed(cfg, U))


@functools.partial(jax.jit, static_argnums=0)
def encode(cfg: ModelConfig, V):
    """Stored values ``(m, n_params)`` -> model-cube points."""
    return sp.encode(cfg.space, V)


@functools.partial(jax.jit, static_argnums=0)
def canonical(cfg: ModelConfig, V):
    """Stored values snapped onto the space, as the searcher compares them."""
    return sp.decode(cfg.space, sp.encode(cfg.space, V))


@functools.partial(jax.jit, static_argnums=0)
def fit(cfg: ModelConfig, params: gp.ModelParams, X, c, valid, key) -> gp.ModelParams:
    """MAP fit of all model parameters from ``opt_nstarts`` starts: ``params``, then the prior's center,
    then ``opt_nstarts - 2`` random starts (``opt_nstarts=1``: ``params`` only).

    As in Syne Tune, each start runs L-BFGS for at most ``opt_maxiter`` iterations.
    """
    return gp.fit_hyperparameters(
        cfg.model, X, -c, valid, params, cfg.opt_maxiter, method="lbfgs",
        center_start=cfg.opt_nstarts >= 2, n_random_starts=max(cfg.opt_nstarts - 2, 0), key=key,
    )


def fantasize(cfg: ModelConfig, params: gp.ModelParams, X, c, valid, X_pending, pending, key) -> Fantasies:
    """Condition on the data and ``S`` joint posterior draws of the pending targets."""
    model, hyper = cfg.model, params.gp
    z, _ = model.targets(params, -c, valid)
    X_all = model.inputs(params, jnp.concatenate([X, X_pending]))
    n_pending = X_pending.shape[0]
    z_all = jnp.concatenate([z, jnp.zeros(n_pending, z.dtype)])
    valid_data = jnp.concatenate([valid, jnp.zeros(n_pending, bool)])
    valid_all = jnp.concatenate([valid, pending])
    on_data = gp.condition(model.kernel, hyper, X_all, z_all, valid_data, model.jitter)
    draws = gp.sample_joint(model.kernel, on_data, X_all[-n_pending:], key, cfg.num_fantasy_samples, model.jitter)
    draws = jnp.where(pending, draws, 0.0)
    S = cfg.num_fantasy_samples
    targets = jnp.concatenate([jnp.broadcast_to(z, (S, z.shape[0])), draws], axis=1)
    posterior = gp.condition(model.kernel, hyper, X_all, targets[0], valid_all, model.jitter)
    residuals = jnp.where(valid_all, targets - hyper.mean, 0.0)
    alphas = cho_solve((posterior.L, True), residuals.T).T
    y_best = jnp.max(jnp.where(valid_all, targets, -jnp.inf), axis=1)
    return Fantasies(posterior, residuals, alphas, y_best, params)


def _per_sample(cfg, fant: Fantasies, U):
    """Posterior means ``(S, m)`` and the shared std ``(m,)`` at search-cube points."""
    Xs = cfg.model.inputs(fant.params, embed(cfg, U))
    post = fant.posterior
    one = lambda r, a: gp.predict(cfg.model.kernel, post._replace(residual=r, alpha=a), Xs)
    means, stds = jax.vmap(one, out_axes=(0, None))(fant.residuals, fant.alphas)
    return means, stds


def acquisition_value(cfg: ModelConfig, fant: Fantasies, U):
    """``cfg.acquisition`` averaged over the fantasy samples (higher is better), ``(m,)``.

    EI: the mean of EI; LogEI: the log of that mean (computed stably); UCB: the
    mean of ``mean + kappa * std``, i.e. of minus Syne Tune's lower confidence
    bound of the criterion.
    """
    means, std = _per_sample(cfg, fant, U)
    return cfg.acquisition.average_over_samples(means, std, fant.y_best[:, None])


def initial_scores(cfg: ModelConfig, fant: Fantasies, U, key, any_pending):
    """Scores ranking the initial candidates (higher is better).

    ``thompson_indep`` is Syne Tune's: one marginal draw per fantasy sample,
    averaged. The samples share the std, so with pending points the draw is
    ``mean + std * eps`` with ``eps ~ N(0, 1/S)``; without, all samples are one
    and ``eps ~ N(0, 1)``.
    """
    if cfg.initial_scoring == "acq_func":
        return acquisition_value(cfg, fant, U)
    means, std = _per_sample(cfg, fant, U)
    n_samples = jnp.where(any_pending, means.shape[0], 1).astype(std.dtype)
    eps = jax.random.normal(key, std.shape, std.dtype) / jnp.sqrt(n_samples)
    return jnp.mean(means, axis=0) + std * eps


@functools.partial(jax.jit, static_argnums=0)
def propose(cfg: ModelConfig, params: gp.ModelParams, X, c, valid, X_pending, pending, U, key):
    """:func:`fantasize` and :func:`initial_scores` of the candidates ``U`` in one compiled step."""
    k_fant, k_score = jax.random.split(key)
    fant = fantasize(cfg, params, X, c, valid, X_pending, pending, k_fant)
    return fant, initial_scores(cfg, fant, U, k_score, jnp.any(pending))


@functools.partial(jax.jit, static_argnums=0)
def refine(cfg: ModelConfig, fant: Fantasies, u0):
    """L-BFGS on the acquisition from ``u0``; the better of start and end, snapped.

    EI is climbed as its logarithm (the same maximizer): far from the incumbent
    EI and its gradient underflow (the normal density does beyond about 14
    standard deviations in float32, 39 in float64, which the searcher uses) and
    L-BFGS could not leave the Thompson-sampled start.
    """
    if type(cfg.acquisition) is acq.EI:
        cfg = dataclasses.replace(cfg, acquisition=acq.LogEI(xi=cfg.acquisition.xi))
    score = lambda U: acquisition_value(cfg, fant, U)
    return acqopt.maximize(score, u0[None], 1, cfg.local_steps, lambda U: snap(cfg, U))
