"""Early stopping for any training loop: ask for a trial and how far to train it, report its metric.

::

    scheduler = Scheduler({"lr": LogSpace(1e-4, 1e-1)}, max_steps=900, eta=3)   # random refills
    trial = scheduler.ask()                    # trial.trial_id, trial.config, trial.steps (train up to this)
    while True:
        metric = train_and_evaluate(trial.config, until=trial.steps)       # your loop, any framework
        decision = scheduler.report(trial.trial_id, trial.steps, metric)
        if decision.action != "continue":
            break                              # "stop", "complete" or "fail": ask for the next trial
        trial = decision.trial                 # same trial, trained further: up to decision.trial.steps

The decisions are :class:`~hyperoptax.schedulers.successive_halving.SuccessiveHalving`'s (ASHA or
asynchronous Hyperband), computed by the same jitted function a compiled population uses, so the host and
the population decide alike on the same curves. New configurations come from a refill source
(:mod:`hyperoptax.schedulers.refills`): random draws of a space, a ``GPFIFOSearcher`` (MOBSTER-style) or
``BayesianSearch`` (BOHB-style), each told every rung's metric.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hyperoptax.errors import ConfigurationError, check_positive_int
from hyperoptax.schedulers import trust
from hyperoptax.schedulers.refills import make_refills
from hyperoptax.schedulers.successive_halving import CONTINUE, DECISIONS, RungState, SuccessiveHalving

__all__ = ["Scheduler", "Trial", "Decision", "STATUSES"]

# What a trial is when it has left training.
STATUSES = ("completed", "stopped", "failed")
_STATUS_OF = {"complete": "completed", "stop": "stopped", "fail": "failed"}


class Trial(NamedTuple):
    """A trial to train: its id, its configuration, and the step count to train it up to before reporting."""

    trial_id: int
    config: dict
    steps: int


class Decision(NamedTuple):
    """The answer to a report: ``action`` is ``"continue"`` (then ``trial`` says how far), ``"stop"``,
    ``"complete"`` (it reached ``max_steps``) or ``"fail"`` (its metric was NaN/inf)."""

    action: str
    trial: Trial | None


@functools.partial(jax.jit, static_argnums=0)
def _report(rule, state, bracket, steps, metric, prune):
    return rule.report(state, bracket, steps, metric, prune)


@functools.partial(jax.jit, static_argnums=0)
def _bracket(rule, key, trial):
    return rule.bracket(key, trial)


class Scheduler:
    """ASHA / Hyperband as an ask/tell object.

    Args:
        refills: where new trials come from: a dict of Spaces (random), a ``GPFIFOSearcher`` with
            ``resource_attr`` set, or a refill source such as ``OptimizerRefills(BayesianSearch, space, 256)``;
            None when something else proposes the trials (Ray Tune's search algorithm): :meth:`add` them.
        max_steps, min_steps, eta, n_brackets, maximize: see :class:`SuccessiveHalving`.
        seed: seeds the brackets and the refills.
        capacity: trials each rung table holds (more are counted, and ranked against the first ``capacity``).
        min_pairs, max_loss: when a rung's metrics mislead (:mod:`hyperoptax.schedulers.trust`): the first
            ``min_pairs`` trials to reach the first rung continue whatever their rank (the rule's ``grace``),
            and every ``audit``-th trial at any rung (default ``eta``), so that some trials are ranked at
            two rungs without a selection in between; once ``min_pairs`` trials have reported at a rung and at
            the next, and the rung's selection of them would have lost the winners at the next rung (a loss
            above ``max_loss``, default a tenth of the best-to-median spread), that rung and every rung below
            it stop no trial (checked again at every report), and GPFIFOSearcher refills fit each trial's
            latest report only. ``min_pairs=0`` is plain ASHA: the rungs always stop, nothing is audited.

    The GP refill to use is a ``GPFIFOSearcher(space, metric, mode, resource_attr="steps",
    max_resource=max_steps)`` (MOBSTER-style, what ``hyperoptax tune`` uses): on curves that cross it is level
    with full-fidelity search with the same GP (median regret 0.0038 against 0.0031, mean 0.0049 against
    0.0074, 100 seeds), where a ``BayesianSearch`` of one rung (``OptimizerRefills``, BOHB-style) is misled
    three times further; where early ranking predicts it does best (``benchmarks/RESULTS.md``).
    """

    def __init__(self, refills, *, max_steps: int, min_steps: int | None = None, eta: int = 3,
                 n_brackets: int = 1, maximize: bool = True, seed: int = 0, capacity: int = 1024,
                 min_pairs: int = trust.MIN_PAIRS, max_loss: float = trust.MAX_LOSS, audit: int | None = None):
        check_positive_int("min_pairs", min_pairs, minimum=0)
        audit = (eta if min_pairs else 0) if audit is None else audit
        self.rule = SuccessiveHalving(max_steps, min_steps, eta, n_brackets, maximize, grace=min_pairs, audit=audit)
        self.min_pairs, self.max_loss = min_pairs, float(max_loss)
        self.refills = None if refills is None else make_refills(refills, capacity=capacity, eta=eta,
                                                                 min_pairs=min_pairs, max_loss=max_loss)
        self.key = jax.random.key(seed)
        self.rungs: RungState = self.rule.init(capacity)
        self.trials: dict[int, dict] = {}  # trial id -> {trial, config, bracket, curve, status, steps}
        self.history: list[list] = []  # every report in order: [trial, steps, metric, action]
        self.n_asked = 0

    # --- ask / report ---------------------------------------------------------

    def ask(self) -> Trial:
        """One new trial (its configuration from the refill source) and the steps of its first rung."""
        return self.ask_batch(1)[0]

    def ask_batch(self, n: int, fixed: list[dict] | None = None) -> list[Trial]:
        """``n`` new trials at once (a model-based source proposes them as one diverse batch).

        ``fixed[i]``, a dict, overrides values of trial ``i`` (e.g. the static hyperparameters of the
        population slot it will train in); the refill source learns the configuration that runs.
        """
        if self.refills is None:
            raise ConfigurationError("This scheduler has no refill source to propose trials: add() them instead.")
        ids = list(range(self.n_asked, self.n_asked + n))
        configs = self.refills.propose(jax.random.fold_in(self.key, self.n_asked), ids, fixed)
        return [self.add(config) for config in configs]

    def add(self, config: dict) -> Trial:
        """Register a trial proposed elsewhere (e.g. by Ray Tune's search algorithm); returns it with the
        steps of its first rung. Its id is the next number."""
        trial_id = self.n_asked
        self.n_asked += 1
        bracket = int(_bracket(self.rule, self.key, trial_id))
        self.trials[trial_id] = dict(trial=trial_id, config=dict(config), bracket=bracket, curve=[],
                                     status="running", steps=0)
        return Trial(trial_id, dict(config), self.rule.levels(bracket)[0])

    def report(self, trial_id, steps, metric) -> Decision:
        """Trial ``trial_id`` has trained ``steps`` steps in all and scored ``metric``."""
        record = self._running(trial_id)
        steps = int(steps)
        metric = float(np.asarray(metric))
        if steps < record["steps"]:
            raise ConfigurationError(
                f"Trial {trial_id} reported {steps} steps after it had already reported {record['steps']}: "
                f"report the total number of steps it has trained."
            )
        self.rungs, code = _report(self.rule, self.rungs, record["bracket"], steps, metric, self.prune())
        action = DECISIONS[int(code)]
        finite = metric if math.isfinite(metric) else None
        record["curve"].append([steps, finite])
        self.history.append([int(trial_id), steps, finite, action])
        record["steps"] = steps
        if self.refills is not None:
            self.refills.observe(trial_id, record["config"], steps, metric)
        if int(code) == CONTINUE:
            next_steps = int(self.rule.next_level(record["bracket"], steps))
            return Decision(action, Trial(trial_id, dict(record["config"]), next_steps))
        record["status"] = _STATUS_OF[action]
        if self.refills is not None:
            self.refills.finish(trial_id)
        return Decision(action, None)

    def links(self) -> list[trust.Link]:
        """The evidence between successive rungs (bracket 0's levels), from every trial's curve."""
        curves = ({s: m for s, m in t["curve"] if m is not None} for t in self.trials.values())
        return trust.links(curves, self.rule.levels(0), self.rule.eta, self.rule.maximize)

    def prune(self) -> np.ndarray:
        """Which levels of bracket 0 may stop trials now: all but those whose metrics mislead."""
        if self.min_pairs == 0:
            return np.ones(self.rule.n_rungs, bool)
        return np.asarray(trust.may_prune(self.links(), self.min_pairs, self.max_loss) + [True])

    def stop(self, trial_id) -> None:
        """End a running trial without a decision (e.g. the budget ran out): it is ``stopped``."""
        self._running(trial_id)["status"] = "stopped"
        if self.refills is not None:
            self.refills.finish(trial_id)

    def _running(self, trial_id) -> dict:
        record = self.trials.get(int(trial_id)) if isinstance(trial_id, (int, np.integer)) else None
        if record is None:
            raise ConfigurationError(f"Unknown trial {trial_id!r}: report only trials that ask() returned.")
        if record["status"] != "running":
            raise ConfigurationError(f"Trial {trial_id} has already left training ({record['status']}).")
        return record

    # --- results and state ----------------------------------------------------

    def best(self) -> dict | None:
        """The best trial at the highest step count any trial reached (its last metric), or None."""
        scored = [t for t in self.trials.values() if t["curve"] and t["curve"][-1][1] is not None]
        if not scored:
            return None
        top = max(t["steps"] for t in scored)
        at_top = [t for t in scored if t["steps"] == top]
        sign = 1.0 if self.rule.maximize else -1.0
        return max(at_top, key=lambda t: sign * t["curve"][-1][1])

    def get_state(self) -> dict:
        """Everything mutable, as JSON types (see :meth:`set_state`); a copy, safe to save asynchronously."""
        return copy.deepcopy({
            "n_asked": self.n_asked,
            "trials": [dict(t) for t in self.trials.values()],
            "history": self.history,
            "rungs": self._rungs_json(),
            "refills": None if self.refills is None else self.refills.get_state(),
        })

    def set_state(self, state: dict) -> None:
        """Continue from :meth:`get_state` (of a scheduler with the same options)."""
        self.n_asked = int(state["n_asked"])
        self.trials = {int(t["trial"]): dict(t) for t in state["trials"]}
        self.history = [list(h) for h in state["history"]]
        counts = np.asarray(state["rungs"]["counts"], np.int32)
        if counts.shape != self.rungs.counts.shape:
            raise ConfigurationError(
                f"The saved rung table has {counts.shape} (brackets, rungs), this scheduler {self.rungs.counts.shape}: "
                f"it was saved by a scheduler with other options."
            )
        values = np.array(self.rule.init(self.rungs.values.shape[-1]).values)
        for b, bracket in enumerate(state["rungs"]["values"]):
            for r, recorded in enumerate(bracket):
                values[b, r, : len(recorded)] = recorded
        self.rungs = RungState(jnp.asarray(values), jnp.asarray(counts))
        if self.refills is not None:
            self.refills.set_state(state["refills"])

    def _rungs_json(self) -> dict:
        """The rung table without its padding: per bracket and rung, the values recorded (JSON has no inf)."""
        values, counts = np.asarray(self.rungs.values), np.asarray(self.rungs.counts)
        capacity = values.shape[-1]
        recorded = [[values[b, r, : min(counts[b, r], capacity)].tolist() for r in range(counts.shape[1])]
                    for b in range(counts.shape[0])]
        return {"values": recorded, "counts": counts.tolist()}
