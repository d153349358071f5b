"""What every optimizer shares: the observation buffers, the step API and the loops.

An optimizer is frozen configuration; its state is an explicit pytree. The state
holds fixed-size buffers ``X (n_max, n_params)``, ``y (n_max,)`` and
``mask (n_max,)``, so every step function is jitted once and never recompiles as
observations accumulate. A NaN/inf result is a *failed* trial: it is written
(``mask`` True) but never counts as a success.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import math
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from hyperoptax import spaces as sp
from hyperoptax import sweep
from hyperoptax.errors import ConfigurationError, ObjectiveError, ResultsDroppedWarning, check_positive_int


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class OptimizerState:
    """Observation buffers shared by all optimizers.

    Attributes:
        space: the search space pytree (static: it has no array leaves).
        X: observed parameter values, ``(n_max, n_params)``, zero-padded; a
            category is stored as its index.
        y: observed results, ``(n_max,)``, raw (un-negated); NaN/inf for failed trials.
        mask: ``(n_max,)`` bool, True for slots that have been written.
    """

    space: Any
    X: jax.Array
    y: jax.Array
    mask: jax.Array

    def replace(self, **kwargs):
        return dataclasses.replace(self, **kwargs)

    @property
    def succeeded(self) -> jax.Array:
        """``(n_max,)`` bool: written slots with a finite result."""
        return self.mask & jnp.isfinite(self.y)

    @property
    def n_observed(self) -> jax.Array:
        """Number of trials written (succeeded or failed)."""
        return self.mask.sum()

    @property
    def n_failed(self) -> jax.Array:
        """Number of trials whose result was NaN or inf."""
        return (self.mask & ~jnp.isfinite(self.y)).sum()


def empty_buffers(space, n_max: int) -> dict:
    """Zeroed ``X``, ``y``, ``mask`` buffers for ``n_max`` observations."""
    n_max = check_positive_int("n_max", n_max)
    n_params = sp.n_params(space)
    dtype = jnp.zeros(()).dtype  # float64 when jax_enable_x64 is on
    return dict(
        X=jnp.zeros((n_max, n_params), dtype),
        y=jnp.zeros((n_max,), dtype),
        mask=jnp.zeros((n_max,), bool),
    )


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """Base class: ``init`` / ``get_next_params`` / ``update_state`` and the loops.

    Optimizers are frozen dataclasses; every one has the keyword-only fields
    ``n_parallel`` (configurations per batch) and ``maximize`` declared here
    and checked by :meth:`__post_init__` (a subclass that validates more calls
    ``super().__post_init__()``). A subclass implements

    * ``_next(state, key) -> X (n_parallel, n_params)``: the next batch, as
      stored values;
    * ``_learn(state, key, previous) -> state``, if it learns from data: called
      after a batch was written into ``state``; ``previous`` is the state
      before it (what changed is what the batch added).
    """

    n_parallel: int = dataclasses.field(default=1, kw_only=True)
    maximize: bool = dataclasses.field(default=True, kw_only=True)

    def __post_init__(self):
        # Plain Python values: an optimizer is hashable configuration (a static argument of its jitted steps).
        object.__setattr__(self, "n_parallel", check_positive_int("n_parallel", self.n_parallel))
        if not isinstance(self.maximize, (bool, np.bool_)):
            raise ConfigurationError(f"maximize must be True or False, got {self.maximize!r}.")
        object.__setattr__(self, "maximize", bool(self.maximize))

    # --- the step API -------------------------------------------------------

    # Optimizers are frozen, hashable configuration: equal optimizers share one
    # compiled step, so a sweep (or many seeds of one) compiles each step once.
    def get_next_params(self, state, key, params=None, results=None):
        """The next batch: a params pytree with leaves of shape ``(n_parallel,)``.

        ``params`` and ``results`` (the previous batch) are accepted for API
        compatibility; the state already holds everything observed.
        """
        return _jitted_next(self, state, key)

    def update_state(self, state, key, results, params=None):
        """Record results.

        Args:
            state: the current state.
            key: PRNG key (used by optimizers that refit a model).
            results: one objective value per configuration, shape ``(m,)`` (``()`` or
                ``(m, 1)`` work too); NaN/inf mark failed trials. ``m`` is usually
                ``n_parallel``, but a partial batch (the trials that finished) or a
                larger one is recorded as well. Slots past ``n_max`` are dropped with
                a :class:`~hyperoptax.errors.ResultsDroppedWarning`.
            params: the configurations of ``results``: the params pytree from
                :meth:`get_next_params` (leaves ``(m,)``; a category as its index or
                itself) or an ``(m, n_params)`` array. Outside jit every value is
                checked against the space (:func:`hyperoptax.spaces.check_values`).
                :class:`~hyperoptax.GridSearch` knows its batch and may omit them.
        """
        results = self._check_results(results)
        m = results.shape[0]
        X = self._batch_params(state, m) if params is None else sp.flatten_params(state.space, params)
        if X.shape[0] != m:
            raise ConfigurationError(
                f"update_state got {m} result(s) but params for {X.shape[0]} configuration(s). Pass the "
                f"configurations of exactly these results (for a partial batch, the matching rows of the batch)."
            )
        if not isinstance(X, jax.core.Tracer):
            X = sp.check_values(state.space, X)
        warn_dropped(state, m)
        return _jitted_update(self, state, key, results, jnp.asarray(X, state.X.dtype))

    def _batch_params(self, state, m):
        raise ConfigurationError(
            f"{type(self).__name__}.update_state needs the configurations of the results: pass the params "
            f"from get_next_params, update_state(state, key, results, params)."
        )

    def _check_results(self, results):
        """``results`` as an ``(m,)`` array of the state's float dtype (``m >= 1``)."""
        # Concrete results are checked in NumPy: JAX would dispatch each of these small steps.
        results = (jnp if isinstance(results, jax.core.Tracer) else np).asarray(results)
        if results.ndim == 2 and results.shape[1] == 1:
            results = results[:, 0]
        if results.ndim > 1 or results.size == 0:
            raise ObjectiveError(
                f"Expected one result per configuration, shape (m,) such as ({self.n_parallel},), got shape "
                f"{results.shape}. The objective must return one scalar per configuration."
            )
        if not (jnp.issubdtype(results.dtype, jnp.floating) or jnp.issubdtype(results.dtype, jnp.integer)):
            raise ObjectiveError(f"Results must be real numbers, got dtype {results.dtype}.")
        return results.reshape(-1).astype(jax.dtypes.canonicalize_dtype(float))

    def _update(self, state, key, results, X):
        return self._learn(record(state, results, X), key, state)

    def _learn(self, state, key, previous):
        return state

    def _next(self, state, key):
        raise NotImplementedError

    def refit(self, state, key):
        """``state`` with its model fitted afresh to the data in its buffers.

        For buffers written directly (``state.replace(X=..., y=..., mask=...)``) rather than batch by batch
        through :meth:`update_state`. Optimizers without a model return ``state`` as it is.
        """
        return state

    # --- results ------------------------------------------------------------

    def _best_index(self, state) -> jax.Array:
        ok = state.succeeded
        y = jnp.where(ok, state.y if self.maximize else -state.y, -jnp.inf)
        return jnp.argmax(y)

    def best_result(self, state) -> jax.Array:
        """The best observed raw result (max if maximize, min if minimize); failed trials never count.

        ``-inf`` (``inf`` when minimizing) until a trial has succeeded.
        """
        if self.maximize:
            return jnp.max(state.y, where=state.succeeded, initial=-jnp.inf)
        return jnp.min(state.y, where=state.succeeded, initial=jnp.inf)

    def best_params(self, state):
        """The configuration that achieved :meth:`best_result`, as plain Python values.

        Categories come back as their original values (e.g. strings).
        """
        if not bool(state.succeeded.any()):
            raise ConfigurationError(
                f"No successful trial yet ({int(state.n_observed)} written, {int(state.n_failed)} failed): "
                f"there is no best configuration. Run more iterations or check why the objective returns NaN/inf."
            )
        x_best = state.X[self._best_index(state)]
        return sp.decode_params(state.space, sp.unflatten_params(state.space, x_best))

    # --- loops --------------------------------------------------------------

    def default_n_iterations(self, state) -> int:
        """Iterations that fill the remaining buffer (the last batch may overflow).

        Under ``jax.jit`` the fill level is not known; the whole buffer is assumed
        free (a fresh state). Pass ``n_iterations`` to continue a partial run in jit.
        """
        n_written = 0 if isinstance(state.mask, jax.core.Tracer) else int(state.mask.sum())
        remaining = state.X.shape[0] - n_written
        return max(0, math.ceil(remaining / self.n_parallel))

    def optimize(self, state, key, func: Callable, n_iterations: int | None = None):
        """High-level loop: suggest, evaluate ``func(key, params)`` on each member, update.

        ``func`` must return a scalar. It is vmapped and jitted once when it is
        traceable; otherwise it is called once per configuration with concrete
        values, and an exception in one call marks that trial failed (NaN) instead
        of stopping the search. Returns ``state, (params_hist, results_hist)`` as lists.
        """
        sweep.check_objective(func)
        if n_iterations is None:
            n_iterations = self.default_n_iterations(state)
        warn_sweep_drops(state, n_iterations, self.n_parallel)
        evaluate = sweep.BatchEvaluator(func, self.n_parallel)
        search = sweep.BoundOptimizer(self, state)
        params_hist, results_hist = [], []

        def collect(it):
            params_hist.append(it.params)
            results_hist.append(it.results)

        with dropped_results_told():
            sweep.run(search, lambda k, params: evaluate(jax.random.split(k, self.n_parallel), params),
                      key, range(n_iterations), collect)
        return search.state, (params_hist, results_hist)

    def optimize_scan(self, state, key, func: Callable, n_iterations: int | None = None):
        """Like :meth:`optimize`, as one ``jax.lax.scan``; ``func`` must be traceable.

        Returns stacked arrays: each params leaf ``(n_iterations, n_parallel, ...)``,
        results ``(n_iterations, n_parallel)``. Same keys as :meth:`optimize`, so
        both give the same results.
        """
        sweep.check_objective(func)
        if n_iterations is None:
            n_iterations = self.default_n_iterations(state)
        warn_sweep_drops(state, n_iterations, self.n_parallel)
        batched = jax.vmap(func)
        keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), self.n_parallel))
        params = jax.eval_shape(lambda s: self.get_next_params(s, jax.random.key(0)), state)
        # Fail before any compilation when the objective returns the wrong shape or dtype.
        sweep.check_batch_output(jax.eval_shape(batched, keys, params), self.n_parallel)

        def step(state, i):
            k_next, k_func, k_update = sweep.iteration_keys(key, i)
            params = self.get_next_params(state, k_next)
            results = batched(jax.random.split(k_func, self.n_parallel), params).reshape(self.n_parallel)
            state = self.update_state(state, k_update, results, params)
            return state, (params, results)

        return jax.lax.scan(step, state, jnp.arange(n_iterations))


@functools.partial(jax.jit, static_argnums=0)
def _jitted_next(optimizer, state, key):
    # Unflattened inside the program: leaf by leaf outside it cost two dispatches per parameter.
    return sp.unflatten_params(state.space, optimizer._next(state, key))


@functools.partial(jax.jit, static_argnums=0)
def _jitted_update(optimizer, state, key, results, X):
    return optimizer._update(state, key, results, X)


def compile_count() -> int:
    """How many step functions have been compiled so far (for tests and benchmarks)."""
    return _jitted_next._cache_size() + _jitted_update._cache_size()


# False while a loop that has already warned about the whole sweep's overflow runs.
_WARN_EACH_UPDATE = contextvars.ContextVar("hyperoptax_warn_each_update", default=True)


@contextlib.contextmanager
def dropped_results_told():
    """Within this block, :meth:`Optimizer.update_state` does not warn about dropped results (the loop did)."""
    token = _WARN_EACH_UPDATE.set(False)
    try:
        yield
    finally:
        _WARN_EACH_UPDATE.reset(token)


def _fill(state) -> tuple[int, int] | None:
    """``(written, n_max)`` of a concrete state; None under a trace."""
    if isinstance(state.mask, jax.core.Tracer):
        return None
    return int(state.mask.sum()), state.mask.shape[0]


def warn_dropped(state, m: int) -> None:
    """Warn (:class:`~hyperoptax.errors.ResultsDroppedWarning`) if writing ``m`` results overflows ``n_max``."""
    fill = _fill(state) if _WARN_EACH_UPDATE.get() else None
    if fill is None:
        return
    written, n_max = fill
    dropped = max(0, written + m - n_max)
    if dropped:
        warnings.warn(
            f"update_state: {dropped} of {m} results were not recorded: the buffers hold n_max={n_max} observations "
            f"and {written} were already written. Pass n_max={written + m} (or more) to init to keep every result.",
            ResultsDroppedWarning,
            stacklevel=3,
        )


def warn_sweep_drops(state, n_iterations: int, n_parallel: int) -> None:
    """Warn once, before a loop, if its ``n_iterations * n_parallel`` results will not all fit in ``n_max``."""
    fill = _fill(state)
    if fill is None:
        return
    written, n_max = fill
    total = n_iterations * n_parallel
    dropped = max(0, written + total - n_max)
    if dropped:
        warnings.warn(
            f"This sweep evaluates {total} configurations ({n_iterations} iterations x n_parallel={n_parallel}) but "
            f"the buffers have room for {n_max - written} more (n_max={n_max}): the last {dropped} results will not "
            f"be recorded. Pass n_max={written + total} to init to keep them all, or run fewer iterations.",
            ResultsDroppedWarning,
            stacklevel=3,
        )


def record(state, results, X):
    """Write a batch into the next free slots; slots past ``n_max`` are dropped (overflow)."""
    n = state.mask.sum()
    idx = n + jnp.arange(results.shape[0])
    return state.replace(
        X=state.X.at[idx].set(X, mode="drop"),
        y=state.y.at[idx].set(results, mode="drop"),
        mask=state.mask.at[idx].set(True, mode="drop"),
    )
