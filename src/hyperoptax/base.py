"""What every optimizer shares: the observation buffers, the step API and the loops.

An optimizer is frozen configuration; its state is an explicit pytree. The state
holds fixed-size buffers ``X (n_max, n_params)``, ``y (n_max,)`` and
``mask (n_max,)``, so every step function is jitted once and never recompiles as
observations accumulate. A NaN/inf result is a *failed* trial: it is written
(``mask`` True) but never counts as a success.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from hyperoptax import spaces as sp
from hyperoptax import sweep
from hyperoptax.errors import ConfigurationError, ObjectiveError, check_positive_int


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
    check_positive_int("n_max", n_max)
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
        check_positive_int("n_parallel", self.n_parallel)
        if not isinstance(self.maximize, (bool, np.bool_)):
            raise ConfigurationError(f"maximize must be True or False, got {self.maximize!r}.")

    # --- the step API -------------------------------------------------------

    # Optimizers are frozen, hashable configuration: equal optimizers share one
    # compiled step, so a sweep (or many seeds of one) compiles each step once.
    def get_next_params(self, state, key, params=None, results=None):
        """The next batch: a params pytree with leaves of shape ``(n_parallel,)``.

        ``params`` and ``results`` (the previous batch) are accepted for API
        compatibility; the state already holds everything observed.
        """
        X = _jitted_next(self, state, key)
        return sp.unflatten_params(state.space, X)

    def update_state(self, state, key, results, params):
        """Record a batch of results.

        Args:
            state: the current state.
            key: PRNG key (used by optimizers that refit a model).
            results: ``(n_parallel,)`` objective values; NaN/inf mark failed trials.
            params: the params pytree from :meth:`get_next_params` (leaves
                ``(n_parallel,)``) or an ``(n_parallel, n_params)`` array.
        """
        results = self._check_results(results)
        X = sp.flatten_params(state.space, params)
        if X.shape[0] != self.n_parallel:
            raise ConfigurationError(
                f"update_state got params for {X.shape[0]} configurations but n_parallel={self.n_parallel}. "
                f"Pass the batch returned by get_next_params."
            )
        return _jitted_update(self, state, key, results, X.astype(state.X.dtype))

    def _check_results(self, results):
        results = jnp.asarray(results)
        if results.size != self.n_parallel or results.ndim > 2:
            raise ObjectiveError(
                f"Expected {self.n_parallel} results (one per configuration, shape ({self.n_parallel},)), got "
                f"shape {results.shape}. The objective must return one scalar per configuration."
            )
        if not (jnp.issubdtype(results.dtype, jnp.floating) or jnp.issubdtype(results.dtype, jnp.integer)):
            raise ObjectiveError(f"Results must be real numbers, got dtype {results.dtype}.")
        return results.reshape(self.n_parallel).astype(jnp.zeros(()).dtype)

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
        evaluate = sweep.BatchEvaluator(func, self.n_parallel)
        search = sweep.BoundOptimizer(self, state)
        params_hist, results_hist = [], []

        def collect(it):
            params_hist.append(it.params)
            results_hist.append(it.results)

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
        batched = jax.vmap(func)
        keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), self.n_parallel))
        params = jax.eval_shape(lambda s: self.get_next_params(s, jax.random.key(0)), state)
        # Fail before any compilation when the objective returns the wrong shape or dtype.
        sweep.check_batch_output(jax.eval_shape(batched, keys, params), self.n_parallel)

        def step(state, i):
            k_next, k_func, k_update = sweep.iteration_keys(key, i)
            params = self.get_next_params(state, k_next)
            results = batched(jax.random.split(k_func, self.n_parallel), params)
            state = self.update_state(state, k_update, results, params)
            return state, (params, results)

        return jax.lax.scan(step, state, jnp.arange(n_iterations))


@functools.partial(jax.jit, static_argnums=0)
def _jitted_next(optimizer, state, key):
    return optimizer._next(state, key)


@functools.partial(jax.jit, static_argnums=0)
def _jitted_update(optimizer, state, key, results, X):
    return optimizer._update(state, key, results, X)


def compile_count() -> int:
    """How many step functions have been compiled so far (for tests and benchmarks)."""
    return _jitted_next._cache_size() + _jitted_update._cache_size()


def record(state, results, X):
    """Write a batch into the next free slots; slots past ``n_max`` are dropped (overflow)."""
    n = state.mask.sum()
    idx = n + jnp.arange(results.shape[0])
    return state.replace(
        X=state.X.at[idx].set(X, mode="drop"),
        y=state.y.at[idx].set(results, mode="drop"),
        mask=state.mask.at[idx].set(True, mode="drop"),
    )
