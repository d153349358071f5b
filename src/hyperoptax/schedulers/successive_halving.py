"""Asynchronous successive halving (ASHA) and asynchronous Hyperband, as pure state and functions.

A trial trains in segments; at the *rung levels* of its bracket, ``min_steps * eta**k`` (``k = b, b+1, ...``
for bracket ``b``, while ``eta`` times the level fits in ``max_steps``) and finally ``max_steps``, it reports
its metric. The stopping rule (the "stopping"
variant of ASHA, Li et al. 2020; Ray Tune's ``AsyncHyperBandScheduler``): a trial that reaches a rung
*continues* if it ranks within the top ``1/eta`` of all metrics recorded at that rung so far, itself
included -- precisely, if at most ``max(1, n // eta) - 1`` recorded metrics are strictly better than its own,
``n`` counting it -- and *stops* otherwise; at ``max_steps`` it *completes*. The first trial at a rung always
continues, and so do the first ``grace`` ones at a bracket's first rung and every ``audit``-th at any rung
(see :mod:`.trust`). A failed metric (NaN/inf) stops the trial and is not recorded, so it never lowers the bar.

Hyperband (``n_brackets > 1``) runs brackets that start at ``min_steps * eta**b``: bracket ``0`` is ASHA
itself, later ones skip its first rungs (with ``n_brackets = s_max + 1`` the last one trains every trial to the
end). Trials are assigned to brackets at random with Hyperband's weights (Li et al. 2018: bracket ``b`` halves
``s_max - b`` times and has weight ``(s_max + 1) / (s_max - b + 1) * eta**(s_max - b)``), the draw fixed by
the trial's index, so a sweep is reproducible.

Everything here is jittable (fixed shapes: a rung table of ``capacity`` entries per rung), so the same
decisions can run inside a compiled population program or behind the host object
:class:`~hyperoptax.schedulers.ask_tell.Scheduler`.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hyperoptax.errors import ConfigurationError, check_positive_int

__all__ = ["SuccessiveHalving", "RungState", "CONTINUE", "STOP", "COMPLETE", "FAIL", "DECISIONS"]

# Decisions, as int32 codes (jittable) and by name.
CONTINUE, STOP, COMPLETE, FAIL = 0, 1, 2, 3
DECISIONS = ("continue", "stop", "complete", "fail")


class RungState(NamedTuple):
    """The metrics recorded at every rung of every bracket (maximized: negated when minimizing).

    Attributes:
        values: ``(n_brackets, n_rungs, capacity)``; entries past ``counts`` are unused.
        counts: ``(n_brackets, n_rungs)`` int32, how many trials each rung has recorded.
    """

    values: jax.Array
    counts: jax.Array


@dataclasses.dataclass(frozen=True)
class SuccessiveHalving:
    """ASHA (``n_brackets=1``) or asynchronous Hyperband over training steps.

    Attributes:
        max_steps: the most steps a trial trains (its full fidelity).
        min_steps: the first rung of bracket 0. Default ``max_steps // eta**2`` (rungs at a ninth and a third
            of training with ``eta=3``, then the end).
        eta: reduction factor: a rung keeps the top ``1/eta``; rungs are ``eta`` times apart.
        n_brackets: 1 for ASHA; more for Hyperband (at most ``s_max + 1``, see :attr:`s_max`).
        maximize: whether a higher metric is better.
        grace: the first ``grace`` trials to reach the first rung of their bracket continue whatever their rank
            (0 in plain ASHA): a sample of trials ranked at two rungs without a selection in between, which
            is what tells whether the earliest, cheapest and least reliable ranking can be trusted
            (:mod:`hyperoptax.schedulers.trust`).
        audit: every ``audit``-th trial to reach any rung continues whatever its rank (0: none), so the
            evidence keeps coming, at every rung, from trials the search proposes later.
    """

    max_steps: int
    min_steps: int | None = None
    eta: int = 3
    n_brackets: int = 1
    maximize: bool = True
    grace: int = 0
    audit: int = 0

    def __post_init__(self):
        check_positive_int("max_steps", self.max_steps)
        check_positive_int("eta", self.eta, minimum=2)
        if self.min_steps is None:
            object.__setattr__(self, "min_steps", max(1, self.max_steps // self.eta**2))
        check_positive_int("min_steps", self.min_steps)
        if self.min_steps > self.max_steps:
            raise ConfigurationError(
                f"min_steps={self.min_steps} is larger than max_steps={self.max_steps}: the first rung must come "
                f"before the end of training. Use e.g. min_steps={max(1, self.max_steps // self.eta**2)}."
            )
        check_positive_int("n_brackets", self.n_brackets)
        if self.n_brackets > self.s_max + 1:
            raise ConfigurationError(
                f"n_brackets={self.n_brackets} is more than the {self.s_max + 1} brackets that fit between "
                f"min_steps={self.min_steps} and max_steps={self.max_steps} with eta={self.eta}. "
                f"Use n_brackets<={self.s_max + 1}, or a smaller min_steps."
            )
        if not isinstance(self.maximize, (bool, np.bool_)):
            raise ConfigurationError(f"maximize must be True or False, got {self.maximize!r}.")
        check_positive_int("grace", self.grace, minimum=0)
        check_positive_int("audit", self.audit, minimum=0)

    # --- the rung table -----------------------------------------------------

    def _low_rungs(self) -> list[int]:
        """Rung levels of bracket 0 below ``max_steps``: ``min_steps``, then ``min_steps * eta**k`` while
        ``eta`` times the level still fits (so the last gap before ``max_steps`` is at least ``eta``)."""
        if self.min_steps >= self.max_steps:
            return []
        levels = [self.min_steps]
        while levels[-1] * self.eta * self.eta <= self.max_steps:
            levels.append(levels[-1] * self.eta)
        return levels

    @property
    def s_max(self) -> int:
        """Rungs below ``max_steps`` in bracket 0: how often the most aggressive bracket halves."""
        return len(self._low_rungs())

    def levels(self, bracket: int = 0) -> tuple[int, ...]:
        """The rung levels (steps) of ``bracket``, ending at ``max_steps``."""
        return tuple(self._low_rungs()[bracket:]) + (self.max_steps,)

    @property
    def n_rungs(self) -> int:
        """Rungs of bracket 0, the longest ladder."""
        return len(self.levels(0))

    def _table(self) -> np.ndarray:
        """``(n_brackets, n_rungs)`` rung levels, padded with -1."""
        table = np.full((self.n_brackets, self.n_rungs), -1, np.int32)
        for b in range(self.n_brackets):
            levels = self.levels(b)
            table[b, : len(levels)] = levels
        return table

    def bracket_weights(self) -> np.ndarray:
        """Hyperband's share of trials per bracket (sums to 1)."""
        s = self.s_max
        w = np.array([(s + 1) / (s - b + 1) * self.eta ** (s - b) for b in range(self.n_brackets)], float)
        return w / w.sum()

    # --- pure functions -------------------------------------------------------

    def init(self, capacity: int) -> RungState:
        """An empty rung table with room for ``capacity`` trials per rung (more are counted, not stored)."""
        check_positive_int("capacity", capacity)
        values = jnp.full((self.n_brackets, self.n_rungs, capacity), -jnp.inf, jnp.float32)
        return RungState(values, jnp.zeros((self.n_brackets, self.n_rungs), jnp.int32))

    def bracket(self, key, trial) -> jax.Array:
        """The bracket of trial number ``trial``: drawn with Hyperband's weights from ``fold_in(key, trial)``."""
        if self.n_brackets == 1:
            return jnp.zeros((), jnp.int32)
        p = jnp.asarray(self.bracket_weights(), jnp.float32)
        return jax.random.choice(jax.random.fold_in(key, trial), self.n_brackets, p=p).astype(jnp.int32)

    def next_level(self, bracket, steps) -> jax.Array:
        """The first rung level of ``bracket`` above ``steps`` (``max_steps`` once past the last)."""
        table = jnp.asarray(self._table())[bracket]
        above = jnp.where((table > steps) | (table == self.max_steps), table, self.max_steps + 1)
        return jnp.minimum(jnp.min(above), self.max_steps)

    def report(self, state: RungState, bracket, steps, metric, prune=None):
        """A trial of ``bracket`` has trained ``steps`` steps and scored ``metric``: ``(state, decision)``.

        Off its bracket's rung levels the decision is CONTINUE and nothing is recorded. ``prune``, a bool per
        level of bracket 0 (default all True), says which levels may stop trials (see
        :mod:`hyperoptax.schedulers.trust`); a level that may not still records the metric.
        """
        table = jnp.asarray(self._table())[bracket]
        at = table == steps
        rung = jnp.argmax(at)
        value = jnp.asarray(metric, jnp.float32)
        value = value if self.maximize else -value
        finite = jnp.isfinite(value)
        n = state.counts[bracket, rung]
        capacity = state.values.shape[-1]
        recorded = jnp.arange(capacity) < jnp.minimum(n, capacity)
        better = jnp.sum(recorded & (state.values[bracket, rung] > value))
        audited = ((rung == 0) & (n < self.grace)) | ((self.audit > 0) & ((n + 1) % max(self.audit, 1) == 0))
        keep = jnp.where(audited, n + 1, jnp.maximum(1, (n + 1) // self.eta))
        top = steps >= self.max_steps
        may_stop = jnp.ones((), bool) if prune is None else jnp.asarray(prune, bool)[bracket + rung]
        decision = jnp.where(
            ~finite, FAIL, jnp.where(top, COMPLETE, jnp.where((better < keep) | ~may_stop, CONTINUE, STOP))
        )
        decision = jnp.where(jnp.any(at) | ~finite, decision, CONTINUE).astype(jnp.int32)
        write = jnp.any(at) & finite
        values = state.values.at[bracket, rung, jnp.where(write, n, capacity)].set(value, mode="drop")
        counts = state.counts.at[bracket, rung].add(write.astype(jnp.int32))
        return RungState(values, counts), decision
