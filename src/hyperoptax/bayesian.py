"""BayesianSearch: synchronous batches of ``n_parallel`` from a GP surrogate.

Each iteration: condition the GP (fitted after the previous update) on the
observations in the unit cube, maximize the acquisition over random and
near-incumbent candidates refined by L-BFGS, and fill the batch slot by slot
with the Kriging Believer: the chosen point gets a hallucinated observation, a
new Cholesky row, and the next slot looks elsewhere.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from hyperoptax import acqopt, gp
from hyperoptax import acquisition as acq
from hyperoptax import kernels
from hyperoptax import spaces as sp
from hyperoptax.base import Optimizer, OptimizerState, empty_buffers
from hyperoptax.errors import ConfigurationError, check_choice, check_positive_int

__all__ = ["BayesianSearch", "BayesianSearchState", "RECOMMENDED"]

# Candidates drawn around the best observations, as a fraction of n_candidates:
# random candidates find new basins, local ones polish the incumbent.
_LOCAL_FRACTION = 0.25
_N_CENTERS = 5
# Smallest unit-cube distance between two points of one batch.
_MIN_SPACING = 1e-3
# With hparam_optimizer="lbfgs", the most L-BFGS steps refining the previous fit.
_WARM_FIT_STEPS = 3


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BayesianSearchState(OptimizerState):
    """State for :class:`BayesianSearch`.

    All arrays are fixed-size (shape determined by ``n_max`` at init time). The
    ``mask`` field tracks which entries have been written.

    Attributes:
        X: observed parameter values ``(n_max, n_params)``, zero-padded; categories as indices.
        y: observed results ``(n_max,)``, zero-padded, stored as raw (un-negated)
            values regardless of ``maximize``; NaN/inf for failed trials.
        mask: ``(n_max,)`` bool, True for slots that contain real observations.
        log_length_scale: per-dimension ARD length scales in log space, shape
            ``(n_dims,)`` -- one per unit-cube coordinate, which is ``n_params``
            unless the space has string categories (one-hot: one per category).
            Fitted after every update (MAP, :func:`hyperoptax.gp.fit_hyperparameters`)
            by Adam, or by L-BFGS with ``hparam_optimizer="lbfgs"`` (the
            recommended preset's choice).
        log_amplitude, log_noise, mean: the other fitted GP hyperparameters
            (signal variance, noise variance above the floor, constant mean), in
            standardized target units.
    """

    log_length_scale: jax.Array
    log_amplitude: jax.Array = 0.0
    log_noise: jax.Array = -8.0
    mean: jax.Array = 0.0

    @property
    def gp_params(self) -> gp.GPParams:
        return gp.GPParams(self.log_length_scale, self.log_amplitude, self.log_noise, self.mean)

    @property
    def model_params(self) -> gp.ModelParams:
        return gp.ModelParams(self.gp_params)


def _default_kernel():
    return kernels.Matern(length_scale=1.0, nu=0.5)


def _default_acquisition():
    return acq.PI(xi=0.01)


@dataclasses.dataclass(frozen=True)
class BayesianSearch(Optimizer):
    """Bayesian optimisation with a Gaussian Process surrogate.

    Uses a GP (Matérn 0.5 kernel by default) on the unit-cube encoding of the
    space with standardized targets, and selects each batch by maximising an
    acquisition function (PI by default). ARD length scales, amplitude, noise and
    constant mean are tuned with Adam (MAP; or L-BFGS, see ``hparam_optimizer``)
    after each update. Parallel batches come from the Kriging Believer with the
    ``hallucination`` strategy.

    For the strongest search use :meth:`recommended` (Matérn-5/2 + LogEI).

    Attributes:
        jitter: diagonal added to the kernel matrix for numerical stability.
        kernel: covariance function.
        acquisition: acquisition function.
        n_candidates: random candidates scored per batch slot.
        n_restarts: L-BFGS refinements started from the best candidates.
        n_lbfgs_steps: L-BFGS steps per refinement.
        n_hparam_steps: Adam steps tuning the GP hyperparameters per update (0
            disables); with ``hparam_optimizer="lbfgs"``, the most L-BFGS iterations.
        n_warmup: iterations of pure random search before the GP is used.
        n_initial_points: successful observations needed before the GP is
            used, whatever the batch size (the GP needs a few points spread
            over the space to judge where the good regions are).
        maximize: set False to minimise the objective.
        n_parallel: configurations per batch.
        hallucination: Kriging Believer strategy for the parallel slots.
        prior: priors of the GP hyperparameter fit.
        hparam_optimizer: ``"adam"`` (the documented behaviour) or ``"lbfgs"``
            (the preset's choice, 10x cheaper): each update refines the previous
            fit by at most 3 L-BFGS iterations; when the number of successful
            observations reaches a power of two (8, 16, 32, ...) a full fit (at
            most ``n_hparam_steps`` iterations, stopping once converged) starts
            from the previous fit and from the prior's center.
        output_warping: log-compress results worse than the median before
            fitting (see :func:`hyperoptax.gp.compress_tail`), so outliers do
            not flatten the surface near the optimum.
    """

    jitter: float = 1e-6
    kernel: kernels.BaseKernel = dataclasses.field(default_factory=_default_kernel)
    acquisition: acq.BaseAcquisition = dataclasses.field(default_factory=_default_acquisition)
    n_candidates: int = 1000
    n_restarts: int = 2
    n_lbfgs_steps: int = 10
    n_hparam_steps: int = 20
    n_warmup: int = 1
    # The documented batch size of BayesianSearch; Optimizer's default is 1.
    n_parallel: int = dataclasses.field(default=4, kw_only=True)
    hallucination: acq.BaseHallucination = dataclasses.field(default_factory=acq.SampleHallucination)
    prior: gp.GPPrior = dataclasses.field(default_factory=gp.GPPrior)
    output_warping: bool = False
    n_initial_points: int = 1
    hparam_optimizer: str = "adam"

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "n_candidates", check_positive_int("n_candidates", self.n_candidates))
        for name in ("n_restarts", "n_lbfgs_steps", "n_hparam_steps", "n_warmup", "n_initial_points"):
            object.__setattr__(self, name, check_positive_int(name, getattr(self, name), minimum=0))
        if not isinstance(self.kernel, kernels.BaseKernel):
            raise ConfigurationError(f"kernel must be a hyperoptax kernel such as Matern(nu=2.5), got {self.kernel!r}.")
        if not isinstance(self.acquisition, acq.BaseAcquisition):
            raise ConfigurationError(
                f"acquisition must be one of PI(), EI(), LogEI(), UCB(), ThompsonSampling(), got {self.acquisition!r}."
            )
        if not callable(self.hallucination):
            raise ConfigurationError(
                f"hallucination must be callable as (mean, std, key, y_max) -> value, got {self.hallucination!r}."
            )
        check_choice("hparam_optimizer", self.hparam_optimizer, ("adam", "lbfgs"))
        if not self.jitter >= 0:
            raise ConfigurationError(f"jitter must be >= 0, got {self.jitter!r}.")

    @classmethod
    def init(cls, space, n_max: int = 200, **kwargs):
        """Create ``(state, optimizer)`` for ``space`` with room for ``n_max`` observations."""
        optimizer = cls(**kwargs)
        buffers = empty_buffers(space, n_max)
        dtype = buffers["y"].dtype
        length_scale = getattr(optimizer.kernel, "length_scale", 1.0)
        params = gp.default_params(sp.n_dims(space), length_scale, dtype)
        state = BayesianSearchState(
            space=space,
            **buffers,
            log_length_scale=params.log_length_scale,
            log_amplitude=params.log_amplitude,
            log_noise=params.log_noise,
            mean=params.mean,
        )
        return state, optimizer

    @classmethod
    def recommended(cls, **overrides) -> "BayesianSearch":
        """The strongest preset: Matérn-5/2, LogEI, wider candidate search, longer fits.

        See :data:`RECOMMENDED`; any field can be overridden.
        """
        return cls(**{**RECOMMENDED, **overrides})

    # --- the GP in the unit cube -------------------------------------------

    @property
    def model(self) -> gp.GPModel:
        """The GP model of the core this search fits and conditions."""
        return gp.GPModel(self.kernel, self.prior, self.jitter, output_warping=self.output_warping)

    def _results(self, state):
        """Maximized results (0 where failed) and the mask of usable rows."""
        valid = state.succeeded
        return jnp.where(valid, state.y if self.maximize else -state.y, 0.0), valid

    def _targets(self, state):
        """Standardized, maximized targets and the mask of usable rows."""
        y, valid = self._results(state)
        z, _ = self.model.targets(state.model_params, y, valid)
        return z, valid

    def _learn(self, state, key, previous):
        if self.n_hparam_steps == 0:
            return state
        y, valid = self._results(state)
        U = sp.encode_rows(state.space, state.X, valid)

        def fit(center_start, n_steps=self.n_hparam_steps):
            return gp.fit_hyperparameters(
                self.model, U, y, valid, state.model_params, n_steps,
                method=self.hparam_optimizer, center_start=center_start,
            ).gp

        if self.hparam_optimizer == "adam":
            fitted = lambda: fit(True)
        else:
            # One new observation moves the optimum a little: a few L-BFGS steps
            # from the previous fit follow it (and keep improving it update after
            # update). A full fit that also starts at the prior's center escapes
            # a stale optimum; it costs 10-20x more, so it runs when the number
            # of successful observations reaches a power of two (8, 16, 32, ...):
            # often while the data are few and the fit moves most.
            powers = 2 ** jnp.arange(31)
            fresh = jnp.any((previous.succeeded.sum() < powers) & (powers <= valid.sum()))
            n_warm = min(self.n_hparam_steps, _WARM_FIT_STEPS)
            fitted = lambda: jax.lax.cond(fresh, lambda: fit(True), lambda: fit(False, n_warm))
        # One observation says nothing about length scales: the fit waits for a second.
        shapes = jax.eval_shape(fitted)
        unchanged = lambda: jax.tree.map(lambda o, a: jnp.broadcast_to(jnp.asarray(a, o.dtype), o.shape),
                                         shapes, state.gp_params)
        params = jax.lax.cond(valid.sum() >= 2, fitted, unchanged)
        return state.replace(
            log_length_scale=params.log_length_scale,
            log_amplitude=params.log_amplitude,
            log_noise=params.log_noise,
            mean=params.mean,
        )

    def refit(self, state, key):
        """The GP hyperparameters fitted afresh (from the prior's center too) to the data in ``state``."""
        return _jitted_refit(self, state, key)

    def _next(self, state, key):
        valid = state.succeeded
        warm = (state.mask.sum() >= self.n_warmup * self.n_parallel) & (valid.sum() >= max(1, self.n_initial_points))
        key_random, key_gp = jax.random.split(key)
        U = jax.lax.cond(
            warm,
            lambda: self._gp_batch(state, key_gp),
            lambda: jax.random.uniform(key_random, (self.n_parallel, sp.n_dims(state.space)), state.y.dtype),
        )
        return sp.decode(state.space, U).astype(state.X.dtype)

    def _gp_batch(self, state, key):
        space, P = state.space, self.n_parallel
        z, valid = self._targets(state)
        # Room for the batch's hallucinated observations after the real ones.
        U = jnp.concatenate([sp.encode_rows(space, state.X, valid), jnp.zeros((P, sp.n_dims(space)), z.dtype)])
        z = jnp.concatenate([z, jnp.zeros(P, z.dtype)])
        valid = jnp.concatenate([valid, jnp.zeros(P, bool)])
        posterior = gp.condition(self.kernel, state.gp_params, U, z, valid, self.jitter)
        y_best = jnp.max(jnp.where(valid, z, -jnp.inf))
        first_free = state.mask.sum()
        snap = lambda V: sp.snap(space, V)

        def fill_slot(carry, j):
            posterior, y_best, chosen, key = carry
            key, k_cand, k_local, k_acq, k_hal = jax.random.split(key, 5)
            candidates = jnp.concatenate([
                sp.sample_unit(space, k_cand, self.n_candidates),
                self._local_candidates(k_local, posterior, snap),
            ])

            def score(V):
                mean, std = gp.predict(self.kernel, posterior, V)
                value = self.acquisition(mean, std, y_best, key=k_acq)
                # With observation noise the acquisition never quite vanishes at a
                # point already in the batch, and a boundary optimum can win again:
                # a batch keeps its points at least _MIN_SPACING apart (the first
                # slot, and so the polishing of the incumbent, is unconstrained).
                d2 = jnp.sum((V[:, None, :] - chosen[None, :, :]) ** 2, axis=-1)
                repeat = jnp.any((d2 < _MIN_SPACING**2) & (jnp.arange(P) < j)[None, :], axis=1)
                return jnp.where(repeat, -jnp.inf, value)

            u = acqopt.maximize(score, candidates, self.n_restarts, self.n_lbfgs_steps, snap)
            mean, std = gp.predict(self.kernel, posterior, u[None])
            y_fake = self.hallucination(mean, std, k_hal, y_best)
            posterior = gp.append(self.kernel, posterior, u, y_fake, first_free + j, self.jitter)
            # The believer takes the fake value as data: if it beats the
            # incumbent it *is* the incumbent, or the next slot would pick the
            # same point again for its apparent improvement.
            return (posterior, jnp.maximum(y_best, y_fake), chosen.at[j].set(u), key), u

        chosen = jnp.zeros((P, U.shape[1]), U.dtype)
        _, batch = jax.lax.scan(fill_slot, (posterior, y_best, chosen, key), jnp.arange(P))
        return batch

    def _local_candidates(self, key, posterior, snap):
        """Gaussian perturbations of the best observations, at two scales."""
        n_local = max(1, int(self.n_candidates * _LOCAL_FRACTION))
        k = min(_N_CENTERS, posterior.X.shape[0])
        scores = jnp.where(posterior.valid, posterior.residual, -jnp.inf)
        _, top = jax.lax.top_k(scores, k)
        k_center, k_noise, k_scale = jax.random.split(key, 3)
        centers = posterior.X[top][jax.random.randint(k_center, (n_local,), 0, k)]
        scale = jnp.where(jax.random.bernoulli(k_scale, 0.5, (n_local, 1)), 0.02, 0.15)
        noise = scale * jax.random.normal(k_noise, centers.shape, centers.dtype)
        return snap(jnp.clip(centers + noise, 0.0, 1.0))


@functools.partial(jax.jit, static_argnums=0)
def _jitted_refit(optimizer, state, key):
    # As if every observation had just arrived: the schedule's full fit runs.
    return optimizer._learn(state, key, state.replace(mask=jnp.zeros_like(state.mask)))


RECOMMENDED = dict(
    kernel=kernels.Matern(length_scale=0.5, nu=2.5),
    acquisition=acq.LogEI(),
    n_candidates=1000,
    n_restarts=4,
    n_lbfgs_steps=20,
    n_hparam_steps=50,
    hparam_optimizer="lbfgs",
    output_warping=True,
    n_initial_points=8,
)
"""Fields of :meth:`BayesianSearch.recommended`: ``BayesianSearch.init(space, n_max, **RECOMMENDED)``."""
