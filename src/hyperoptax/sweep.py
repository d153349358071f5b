"""The one sweep loop: suggest a batch, evaluate it, tell the search, record the trials.

Every way of running a search goes through :func:`run`: ``Optimizer.optimize``,
:func:`hyperoptax.integrations.orbax.resumable_optimize` and the ``hyperoptax
tune`` driver. They differ only in what they do after each iteration (collect
the history, save a checkpoint, write results, show progress), which they pass
as ``on_iteration`` hooks. The key schedule is part of the loop: iteration ``i``
uses :func:`iteration_keys`, so a sweep resumed at iteration ``i`` (or compiled
as one ``lax.scan`` by ``optimize_scan``) draws exactly the keys of an
uninterrupted one.

A finished trial is described everywhere -- in memory, in checkpoint metadata,
in ``trials.csv`` and ``results.json`` -- by one :class:`TrialRecord`.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from typing import Any, Callable, Iterable, NamedTuple, Protocol, TypedDict

import jax
import jax.numpy as jnp
import numpy as np

from hyperoptax import spaces as sp
from hyperoptax.errors import ObjectiveError

__all__ = [
    "iteration_keys",
    "Iteration",
    "Search",
    "BoundOptimizer",
    "run",
    "TrialRecord",
    "trial_records",
    "member_configs",
    "BatchEvaluator",
    "check_objective",
    "check_batch_output",
]

logger = logging.getLogger("hyperoptax")


def iteration_keys(key, iteration):
    """``(k_suggest, k_eval, k_update)`` of iteration ``iteration``: ``split(fold_in(key, iteration), 3)``."""
    return jax.random.split(jax.random.fold_in(key, iteration), 3)


class Iteration(NamedTuple):
    """What one pass of the loop produced, as handed to the ``on_iteration`` hooks.

    Attributes:
        index: the iteration number (0-based, counting resumed iterations).
        params: the batch, a params pytree with leaves ``(n_parallel,)``.
        results: ``(n_parallel,)`` metrics; NaN/inf for failed trials.
        duration: wall-clock seconds of the evaluation.
    """

    index: int
    params: Any
    results: Any
    duration: float


class Search(Protocol):
    """What :func:`run` drives: a stateful ask/tell view of a search."""

    def suggest(self, key) -> Any:
        """The next batch, a params pytree with leaves ``(n_parallel,)``."""

    def tell(self, key, params, results) -> None:
        """Record the results of a batch from :meth:`suggest`."""


class BoundOptimizer:
    """An :class:`~hyperoptax.base.Optimizer` (or anything with its step API) and its current state.

    The optimizers are pure (``state -> state``); this holds the state between
    iterations so the loop can treat every search alike.
    """

    def __init__(self, optimizer, state):
        self.optimizer, self.state = optimizer, state

    def suggest(self, key):
        return self.optimizer.get_next_params(self.state, key)

    def tell(self, key, params, results):
        self.state = self.optimizer.update_state(self.state, key, results, params)

    def configs(self, params) -> list:
        """Each member of ``params`` as the plain values a user reads (categories as their values)."""
        return member_configs(getattr(self.state, "space", None), params)


def run(search: Search, evaluate: Callable, key, iterations: Iterable[int],
        on_iteration: Callable[[Iteration], None] | None = None) -> None:
    """For each iteration ``i``: suggest, ``evaluate(k_eval, params)``, tell, then ``on_iteration``.

    ``evaluate`` returns one metric per member, ``(n_parallel,)``.
    """
    for i in iterations:
        k_suggest, k_eval, k_update = iteration_keys(key, i)
        params = search.suggest(k_suggest)
        start = time.perf_counter()
        results = evaluate(k_eval, params)
        duration = time.perf_counter() - start
        search.tell(k_update, params, results)
        if on_iteration is not None:
            on_iteration(Iteration(i, params, results, duration))


# ---------------------------------------------------------------------------
# Trial records


class TrialRecord(TypedDict):
    """One evaluated configuration, as every front end records it (JSON-ready).

    Attributes:
        trial: index of the trial in the sweep (0-based, in order of suggestion).
        iteration: the iteration (batch) it belongs to.
        status: ``"completed"``; ``"stopped"`` when a scheduler ended it early
            (its metric is then that of its last rung); ``"failed"`` when its
            metric was NaN/inf.
        metric: the metric (the last one reported), or None if the trial failed.
        duration: wall-clock seconds of its evaluation (members of a batch are
            evaluated together: the batch's time; under a scheduler, the segments
            it trained in).
        params: the configuration, as plain values (categories as their values).
        steps: training steps it took (under a scheduler), else None.
        curve: ``[[steps, metric], ...]`` at every rung (under a scheduler), else None. Under population-based
            training, at every ready step of the member's weights' ancestry.

    Population-based training adds two keys (absent elsewhere); its trials are the population's members,
    ``status`` ``"running"`` in the records written before the run ends:

        lineage: the member's own history, one entry per interval: ``{"interval", "steps": [start, end],
            "parent" (the member it copied at start, or None), "params", "metric"}``.
        schedule: the hyperparameters its final weights trained with, one entry per interval along its
            ancestry: ``{"steps": [start, end], "member" (the member that trained it), "params", "metric"}``
            (:meth:`hyperoptax.schedulers.Lineage.schedule`).
    """

    trial: int
    iteration: int
    status: str
    metric: float | None
    duration: float
    params: Any
    steps: int | None
    curve: list | None


def trial_records(first_trial: int, iteration: Iteration, configs: list) -> list[TrialRecord]:
    """The records of one iteration's members, numbered from ``first_trial``."""
    results = np.asarray(iteration.results, np.float64).reshape(-1)
    records = []
    for j, (config, value) in enumerate(zip(configs, results)):
        ok = bool(math.isfinite(value))
        records.append(TrialRecord(
            trial=first_trial + j,
            iteration=int(iteration.index),
            status="completed" if ok else "failed",
            metric=float(value) if ok else None,
            duration=round(float(iteration.duration), 4),
            params=config,
            steps=None,
            curve=None,
        ))
    return records


def member_configs(space, params) -> list:
    """A batch (leaves ``(n_parallel,)``) as one plain-valued pytree per member.

    With the search ``space``, values are decoded (:func:`hyperoptax.decode_params`:
    categories become their values); without it, leaves become Python numbers.
    """
    host = jax.tree.map(np.asarray, params)
    if space is not None:
        host = sp.decode_params(space, host)  # leaves become lists
    leaves, treedef = jax.tree.flatten(host, is_leaf=lambda x: isinstance(x, list))
    n = len(leaves[0]) if leaves else 0
    return [treedef.unflatten([_plain(leaf[j]) for leaf in leaves]) for j in range(n)]


def _plain(value):
    return np.asarray(value).item() if isinstance(value, (np.ndarray, np.generic)) else value


# ---------------------------------------------------------------------------
# Evaluating an objective on a batch


def check_objective(func: Callable) -> None:
    """Raise ObjectiveError unless ``func`` can be called as ``func(key, params)``."""
    if not callable(func):
        raise ObjectiveError(f"The objective must be callable as func(key, params), got {func!r}.")
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return  # builtins and some C functions cannot be inspected
    positional = [
        p for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    varargs = any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values())
    if len(positional) > 2 or (len(positional) < 2 and not varargs):
        raise ObjectiveError(
            f"The objective must have the signature func(key, params) -> scalar; "
            f"{getattr(func, '__name__', func)!r} takes {len(positional)} required positional argument(s). "
            f"Wrap it, e.g. lambda key, params: my_fn(params)."
        )


def check_batch_output(out, n_parallel: int) -> None:
    """Raise ObjectiveError unless the vmapped objective's output (or its shape) is ``(n_parallel,)`` floats."""
    if not hasattr(out, "shape") or out.shape != (n_parallel,):
        raise ObjectiveError(
            f"The objective must return a scalar (shape ()), but under vmap it returned "
            f"{getattr(out, 'shape', out)} for {n_parallel} configurations. If it returns shape (1,), "
            f"call .squeeze() before returning; return a single metric, not a dict or tuple."
        )
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise ObjectiveError(
            f"The objective must return a float, got dtype {out.dtype}. Cast it, e.g. jnp.float32(metric)."
        )


_NOT_TRACEABLE = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                  jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError)


class BatchEvaluator:
    """Evaluates ``func(key, params)`` on a batch: one jitted vmap when traceable, else one call per member.

    A member whose call raises is a failed trial (NaN), not a failed search.
    """

    def __init__(self, func, n_parallel):
        self.func, self.n_parallel = func, n_parallel
        self.compiled = None  # decided on the first call

    def __call__(self, keys, params):
        if self.compiled is None:
            batched = jax.jit(jax.vmap(self.func))
            try:
                out = jax.eval_shape(batched, keys, params)
            except _NOT_TRACEABLE:
                logger.info("objective is not traceable; evaluating it one configuration at a time")
                self.compiled = False
            else:
                check_batch_output(out, self.n_parallel)
                self.compiled = batched
        if self.compiled:
            return self.compiled(keys, params)
        return jnp.asarray([self._call_one(keys[i], jax.tree.map(lambda p: p[i], params)) for i in range(self.n_parallel)])

    def _call_one(self, key, params):
        try:
            value = self.func(key, params)
        except Exception as err:  # a crashed trial is a failed trial, not a crashed search
            logger.warning("trial failed with %s: %s; recorded as NaN", type(err).__name__, err)
            return float("nan")
        arr = np.asarray(value)
        if arr.size != 1:
            raise ObjectiveError(f"The objective must return a scalar, got shape {arr.shape}.")
        return float(arr.reshape(()))
