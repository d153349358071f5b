"""BayesianSearch: synchronous batches of ``n_parallel`` from a GP surrogate.

Each iteration: condition the GP (fitted after the previous update) on the
observations in the unit cube, maximize the acquisition over random and
near-incumbent candidates refined by L-BFGS (and discrete moves on integers and
categories), and fill the batch with the ``batch`` strategy (:mod:`hyperoptax.batch`):
by default the Kriging Believer -- the chosen point gets a hallucinated
observation, a new Cholesky row, and the next slot looks elsewhere; in the
recommended preset the acquisition's and the posterior mean's maximizers, then
parallel Thompson sampling.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from hyperoptax import acqopt, gp
from hyperoptax import acquisition as acq
from hyperoptax import batch as bt
from hyperoptax import kernels
from hyperoptax import spaces as sp
from hyperoptax.base import Optimizer, OptimizerState, empty_buffers
from hyperoptax.errors import ConfigurationError, check_choice, check_positive_int

__all__ = ["BayesianSearch", "BayesianSearchState", "RECOMMENDED"]

# Candidates drawn around the best observations, as a fraction of n_candidates:
# random candidates find new basins, local ones polish the incumbent.
_LOCAL_FRACTION = 0.25
_N_CENTERS = 5
# With hparam_optimizer="lbfgs", the most L-BFGS steps refining the previous fit.
_WARM_FIT_STEPS = 3
# ... and by how much the successful observations grow between two warm fits.
_WARM_FIT_GROWTH = 1.03


def _growth_grid(n_max: int, growth: float) -> np.ndarray:
    """The counts ``ceil(growth ** k)`` up to ``n_max``, without repeats: where warm fits run."""
    n_points = int(np.ceil(np.log(max(n_max, 2)) / np.log(growth))) + 1
    return np.unique(np.ceil(growth ** np.arange(n_points)).astype(np.int64))


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
            Fitted (MAP, :func:`hyperoptax.gp.fit_hyperparameters`) by Adam
            after every update, or by L-BFGS on the schedule of
            ``hparam_optimizer="lbfgs"`` (the recommended preset's choice).
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
    constant mean are tuned with Adam (MAP) after each update (or with L-BFGS as
    the data grow, see ``hparam_optimizer``). Parallel batches come from the
    Kriging Believer with the ``hallucination`` strategy (another ``batch``
    strategy can be chosen).

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
            (the preset's choice, 10x cheaper): an update refines the previous
            fit by at most 3 L-BFGS iterations each time the successful
            observations have grown by 3% (after every new one below 39; at 100
            observations after every third); when the number of successful
            observations reaches a power of two (8, 16, 32, ...) a full fit (at
            most ``n_hparam_steps`` iterations, stopping once converged) starts
            from the previous fit and from the prior's center.
        output_warping: log-compress results worse than the median before
            fitting (see :func:`hyperoptax.gp.compress_tail`), so outliers do
            not flatten the surface near the optimum.
        batch: how the ``n_parallel`` slots are filled (:mod:`hyperoptax.batch`):
            :class:`~hyperoptax.batch.KrigingBeliever` (the documented
            behaviour), :class:`~hyperoptax.batch.Fantasies` (greedy q-LogEI),
            :class:`~hyperoptax.batch.UCBPE`, :class:`~hyperoptax.batch.Thompson`
            (the preset below 16 points: ``Thompson(greedy_first=True,
            greedy_slots="sqrt", exploit=True)``) or
            :class:`~hyperoptax.batch.LocalPenalization`.
        pi_relative: PI and LogPI ask for an improvement of at least this
            fraction of the incumbent's lead over the average standardized
            result (and at least their ``xi``); 0 gives plain PI, which creeps
            from its first good point (see :attr:`search_acquisition`).
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
    batch: bt.BatchStrategy = dataclasses.field(default_factory=bt.KrigingBeliever)
    pi_relative: float = 0.2

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
        if not isinstance(self.batch, bt.BatchStrategy):
            raise ConfigurationError(
                f"batch must be a batch strategy such as KrigingBeliever(), Fantasies(), UCBPE(), Thompson() or "
                f"LocalPenalization(), got {self.batch!r}."
            )
        if not self.jitter >= 0:
            raise ConfigurationError(f"jitter must be >= 0, got {self.jitter!r}.")
        if not self.pi_relative >= 0:
            raise ConfigurationError(f"pi_relative must be >= 0 (0: plain PI), got {self.pi_relative!r}.")

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
        """The GP model of the core this search fits and conditions (for a space without categories)."""
        return gp.GPModel(self.kernel, self.prior, self.jitter, output_warping=self.output_warping)

    @property
    def search_acquisition(self) -> acq.BaseAcquisition:
        """The acquisition as the search applies it to standardized targets.

        PI and LogPI ask for an improvement of at least ``pi_relative`` times the
        incumbent's lead over the average result (:class:`~hyperoptax.acquisition.RelativeImprovement`),
        and at least their ``xi``.
        """
        if isinstance(self.acquisition, (acq.PI, acq.LogPI)) and self.pi_relative > 0:
            return acq.RelativeImprovement(self.acquisition, self.pi_relative)
        return self.acquisition

    def model_for(self, space) -> gp.GPModel:
        """:attr:`model` for ``space``: a category's one-hot coordinates share one length scale."""
        if not sp.categorical_dims(space).any():
            return self.model
        return dataclasses.replace(self.model, tied=tuple(sp.coordinate_groups(space).tolist()))

    def _results(self, state):
        """Maximized results (0 where failed) and the mask of usable rows."""
        valid = state.succeeded
        return jnp.where(valid, state.y if self.maximize else -state.y, 0.0), valid

    def _targets(self, state):
        """Standardized, maximized targets and the mask of usable rows."""
        y, valid = self._results(state)
        z, _ = self.model_for(state.space).targets(state.model_params, y, valid)
        return z, valid

    def _learn(self, state, key, previous):
        if self.n_hparam_steps == 0:
            return state
        y, valid = self._results(state)
        U = sp.encode_rows(state.space, state.X, valid)

        def fit(center_start, n_steps=self.n_hparam_steps):
            return gp.fit_hyperparameters(
                self.model_for(state.space), U, y, valid, state.model_params, n_steps,
                method=self.hparam_optimizer, center_start=center_start,
            ).gp

        shapes = jax.eval_shape(lambda: fit(True))
        unchanged = lambda: jax.tree.map(lambda o, a: jnp.broadcast_to(jnp.asarray(a, o.dtype), o.shape),
                                         shapes, state.gp_params)
        if self.hparam_optimizer == "adam":
            branches, choice = [unchanged, lambda: fit(True)], 1
        else:
            # One new observation moves the optimum a little: a few L-BFGS steps
            # from the previous fit follow it (and keep improving it update after
            # update), each time the successful observations have grown by 3%
            # (every one below 39; at 100 observations every third: the fit is
            # most of an update's cost, and one observation in a hundred hardly
            # moves it). A full fit that also starts at the prior's center
            # escapes a stale optimum; it costs 10-20x more, so it runs when the
            # number of successful observations reaches a power of two (8, 16,
            # 32, ...): often while the data are few and the fit moves most.
            n_before, n_now = previous.succeeded.sum(), valid.sum()
            crossed = lambda counts: jnp.any((n_before < counts) & (counts <= n_now))
            warm = crossed(jnp.asarray(_growth_grid(state.mask.shape[0], _WARM_FIT_GROWTH)))
            n_warm = min(self.n_hparam_steps, _WARM_FIT_STEPS)
            branches = [unchanged, lambda: fit(False, n_warm), lambda: fit(True)]
            choice = jnp.where(crossed(2 ** jnp.arange(31)), 2, jnp.where(warm, 1, 0))
        # One observation says nothing about length scales: the fit waits for a second.
        params = jax.lax.switch(jnp.where(valid.sum() >= 2, choice, 0), branches)
        return state.replace(
            log_length_scale=params.log_length_scale,
            log_amplitude=params.log_amplitude,
            log_noise=params.log_noise,
            mean=params.mean,
        )

    def get_next_params(self, state, key, params=None, results=None, pending=None):
        """The next batch: a params pytree with leaves of shape ``(n_parallel,)``.

        ``pending``: configurations still being evaluated (a params pytree with
        leaves ``(m,)``, or an ``(m, n_params)`` array of stored values), for
        asynchronous callers such as a scheduler refilling some slots while
        others train. The batch strategy treats them like the batch's own
        earlier members (believed, fantasized, explored around, kept apart
        from). ``params`` and ``results`` (the previous batch) are accepted for
        API compatibility; the state already holds everything observed.
        """
        if pending is None:
            return super().get_next_params(state, key)
        X = sp.flatten_params(state.space, pending).astype(state.X.dtype)
        m = X.shape[0]
        if m == 0:
            return super().get_next_params(state, key)
        # Padded to a power of two: a handful of compilations serve any number pending.
        size = 1 << (m - 1).bit_length()
        U = sp.encode(state.space, jnp.concatenate([X, jnp.broadcast_to(X[:1], (size - m, X.shape[1]))]))
        return _jitted_next_pending(self, state, key, U.astype(state.y.dtype), jnp.arange(size) < m)

    def refit(self, state, key):
        """The GP hyperparameters fitted afresh (from the prior's center too) to the data in ``state``."""
        return _jitted_refit(self, state, key)

    def _next(self, state, key, pending=None, pending_valid=None):
        D = sp.n_dims(state.space)
        if pending is None:
            pending = jnp.zeros((0, D), state.y.dtype)
            pending_valid = jnp.zeros((0,), bool)
        valid = state.succeeded
        warm = (state.mask.sum() >= self.n_warmup * self.n_parallel) & (valid.sum() >= max(1, self.n_initial_points))
        key_random, key_gp = jax.random.split(key)
        U = jax.lax.cond(
            warm,
            lambda: self._gp_batch(state, key_gp, pending, pending_valid),
            lambda: jax.random.uniform(key_random, (self.n_parallel, D), state.y.dtype),
        )
        return sp.decode(state.space, U).astype(state.X.dtype)

    def _gp_batch(self, state, key, pending, pending_valid):
        space, P, m = state.space, self.n_parallel, pending.shape[0]
        z, valid = self._targets(state)
        # Room for the pending points and the batch after the real observations.
        extra = m + P
        U = jnp.concatenate([sp.encode_rows(space, state.X, valid), jnp.zeros((extra, sp.n_dims(space)), z.dtype)])
        z = jnp.concatenate([z, jnp.zeros(extra, z.dtype)])
        valid = jnp.concatenate([valid, jnp.zeros(extra, bool)])
        posterior = gp.condition(self.kernel, state.gp_params, U, z, valid, self.jitter)
        snap = lambda V: sp.snap(space, V)
        categorical = sp.categorical_dims(space)
        free = None if not categorical.any() else jnp.asarray(~categorical)
        neighbors = (lambda u: sp.discrete_neighbors(space, u)) if sp.has_discrete(space) else None

        def candidates(key, posterior):
            k_cand, k_local = jax.random.split(key)
            return jnp.concatenate([
                sp.sample_unit(space, k_cand, self.n_candidates),
                self._local_candidates(k_local, posterior, snap),
            ])

        def find(score, key, posterior):
            return acqopt.maximize(score, candidates(key, posterior), self.n_restarts, self.n_lbfgs_steps, snap,
                                   free=free, neighbors=neighbors)

        problem = bt.BatchProblem(
            kernel=self.kernel,
            jitter=self.jitter,
            acquisition=self.search_acquisition,
            hallucination=self.hallucination,
            posterior=posterior,
            y_best=jnp.max(jnp.where(valid, z, -jnp.inf)),
            first_free=state.mask.sum(),
            pending=pending,
            pending_valid=pending_valid,
            n_parallel=P,
            find=find,
            candidates=candidates,
        )
        return self.batch.propose(problem, key)

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
def _jitted_next_pending(optimizer, state, key, pending, pending_valid):
    return sp.unflatten_params(state.space, optimizer._next(state, key, pending, pending_valid))


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
    # Length scales around half the unit cube's diagonal: see gp.SHORT_PRIOR (measured there).
    prior=gp.SHORT_PRIOR,
    n_initial_points=8,
    # Below 16 points, measured best at batches of 4 and 8 (benchmarks/RESULTS.md): the acquisition's
    # maximizer and ceil(sqrt(q)) - 1 more q-LogEI slots, the posterior mean's maximizer (once the model has
    # 10 observations per dimension), then parallel Thompson draws; with one point per batch it is the
    # sequential acquisition search. From 16 points
    # (populations), greedy q-LogEI over fantasies: measured level or ahead at 16, far ahead at 64 on Hartmann-6
    # (see batch.BySize).
    batch=bt.BySize(),
)
"""Fields of :meth:`BayesianSearch.recommended`: ``BayesianSearch.init(space, n_max, **RECOMMENDED)``."""
