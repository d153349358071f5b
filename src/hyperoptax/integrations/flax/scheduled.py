"""Early stopping inside the population: a Scheduler decides, stopped slots are refilled, shapes never change.

Under ``vmap`` a stopped member saves no compute (both branches of a ``cond`` run; a batched loop runs to the
slowest member), so a member the scheduler stops is not masked: its *slot* is **refilled** with a new trial
(fresh weights and optimizer state, new traced hyperparameters) and the population stays full. Slots train in
lockstep *segments*: each segment ends when the first slot reaches its next rung, every member is evaluated,
and trials at a rung are reported to the :class:`~hyperoptax.schedulers.Scheduler` (in slot order, so the run
is deterministic). The segment length is an argument of the compiled program, so one program per static
bucket serves the whole sweep, and the refill program too.

**Static hyperparameters** (``trainer.static``: widths, depths, categories) change the program, so each slot
keeps the static values of its first trial: slots with equal values form a bucket (a sub-population with its
own compiled programs), and a refill is proposed by the search with the slot's static values fixed. The
search still explores static values through the first batch; re-bucketing at rung boundaries would compile
a program per new combination and leave lanes idle while buckets change size.

A sweep has a budget of member-steps (``budget_steps``); when it is spent the running trials stop where they
are (status ``stopped``, their curves kept). A trial's key is ``fold_in(key, trial_id)``, whatever slot it
trains in, so a resumed sweep (:meth:`ScheduledPopulation.state_dict` / :meth:`load_state_dict` with the
population states restored by Orbax) continues exactly as the uninterrupted one.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import jax
import numpy as np

from hyperoptax import spaces as sp
from hyperoptax import sweep
from hyperoptax.errors import ConfigurationError, check_positive_int

__all__ = ["ScheduledPopulation"]


class ScheduledPopulation:
    """A :class:`~hyperoptax.schedulers.Scheduler` training its trials in ``n_slots`` population slots.

    Args:
        trainer: the :class:`~hyperoptax.integrations.flax.PopulationTrainer`; its ``n_steps`` is unused
            (the scheduler's ``max_steps`` is the full training).
        scheduler: decides at the rungs and proposes the new trials.
        space: the search space (a dict of Spaces) the configurations come from.
        n_slots: the population size (each static bucket a multiple of the device count).
        budget_steps: member-steps the whole sweep may train.
        key: trial ``t`` is initialized from ``fold_in(key, t)``.

    ``slots[i]`` is ``{"trial", "steps", "target", "running"}``: the slot's current (or, once it stopped,
    last) trial, how far it has trained, the rung it trains to.
    """

    def __init__(self, trainer, scheduler, space: dict, n_slots: int, budget_steps: int, key):
        check_positive_int("n_slots", n_slots)
        check_positive_int("budget_steps", budget_steps)
        self.trainer, self.scheduler, self.space = trainer, scheduler, space
        self.n_slots, self.budget_steps, self.key = n_slots, budget_steps, key
        self.slots: list[dict | None] = [None] * n_slots
        self.buckets: list[dict] = []  # {"static", "slots", "params" (the batch), "state" (PopulationState)}
        self.steps_used = 0

    # --- the sweep loop ---------------------------------------------------------

    def run(self, start: int = 0, on_segment=None) -> None:
        """Train until the budget is spent; ``on_segment(sweep.Iteration)`` after every segment.

        The iteration's ``params`` are the slots refilled before the segment, its ``results`` the
        metrics of every slot after it.
        """
        sweep.run(self, self.train_segment, self.key, self.segments(start), on_segment)
        for slot in self.running():
            self.scheduler.stop(slot["trial"])  # the budget ran out
            slot["running"] = False

    def segments(self, start: int = 0):
        """Segment indices from ``start`` while budget remains."""
        return itertools.takewhile(lambda _: self.budget_left() > 0, itertools.count(start))

    def budget_left(self) -> int:
        return self.budget_steps - self.steps_used

    def running(self) -> list[dict]:
        return [s for s in self.slots if s is not None and s["running"]]

    # --- the Search protocol of sweep.run: suggest (refill), evaluate (train), tell (report) ------------

    def suggest(self, key) -> list[int]:
        """Fill the free slots with new trials; returns the slots refilled."""
        free = [i for i, slot in enumerate(self.slots) if slot is None or not slot["running"]]
        if not free:
            return []
        fixed = [self._static_of(i) for i in free] if self.buckets else None
        trials = self.scheduler.ask_batch(len(free), fixed)
        for i, trial in zip(free, trials):
            self.slots[i] = {"trial": trial.trial_id, "steps": 0, "target": trial.steps, "running": True}
        if not self.buckets:
            self._make_buckets()
        else:
            for bucket in self.buckets:
                fresh = np.isin(bucket["slots"], free)
                if fresh.any():
                    bucket["params"] = self._params(bucket)
                    bucket["state"] = self.trainer.refill(bucket["state"], bucket["params"], self._keys(bucket), fresh)
        return free

    def train_segment(self, key, refilled) -> np.ndarray:
        """Every slot trains until the first rung any slot reaches; ``(n_slots,)`` metrics after it."""
        active = self.running()
        length = min(min(s["target"] - s["steps"] for s in active), self.budget_left() // len(active))
        if length <= 0:
            raise ConfigurationError(f"The budget of {self.budget_steps} member-steps is spent.")
        metrics = np.full(self.n_slots, np.nan)
        for bucket in self.buckets:
            bucket["state"], out = self.trainer.train_and_evaluate(bucket["state"], bucket["params"], length)
            metrics[bucket["slots"]] = np.asarray(out)[: len(bucket["slots"])]
        for slot in active:
            slot["steps"] += length
        self.steps_used += length * len(active)
        return metrics

    def tell(self, key, refilled, metrics) -> None:
        """Report the slots that reached their rung (or failed) to the scheduler, in slot order."""
        for i, slot in enumerate(self.slots):
            metric = float(metrics[i])
            if not slot["running"] or (math.isfinite(metric) and slot["steps"] < slot["target"]):
                continue
            decision = self.scheduler.report(slot["trial"], slot["steps"], metric)
            if decision.action == "continue":
                slot["target"] = decision.trial.steps
            else:
                slot["running"] = False

    # --- buckets ----------------------------------------------------------------

    def _static_of(self, slot: int) -> dict:
        return next(dict(b["static"]) for b in self.buckets if slot in b["slots"])

    def _make_buckets(self) -> None:
        """Slots with equal static values (those of their first trials) form a bucket."""
        groups: dict[tuple, list[int]] = {}
        for i, slot in enumerate(self.slots):
            config = self.scheduler.trials[slot["trial"]]["config"]
            groups.setdefault(tuple((n, config[n]) for n in self.trainer.static if n in config), []).append(i)
        d = jax.device_count()
        for static, slots in sorted(groups.items(), key=lambda g: g[1][0]):
            if len(slots) % d:
                raise ConfigurationError(
                    f"{len(slots)} slots have the static values {dict(static)}: not a multiple of the {d} devices "
                    f"the population is sharded over. Fix the static hyperparameters, or run on one device."
                )
            bucket = {"static": dict(static), "slots": slots}
            bucket["params"] = self._params(bucket)
            bucket["state"] = self.trainer.init_population(self._keys(bucket), bucket["params"])
            self.buckets.append(bucket)

    def _params(self, bucket) -> Any:
        """The bucket's hyperparameter batch: the configurations of its slots' trials."""
        configs = [self.scheduler.trials[self.slots[i]["trial"]]["config"] for i in bucket["slots"]]
        return sp.stored_params(self.space, configs)

    def _keys(self, bucket) -> np.ndarray:
        ids = [self.slots[i]["trial"] for i in bucket["slots"]]
        return np.stack([np.asarray(jax.random.key_data(jax.random.fold_in(self.key, t))) for t in ids])

    # --- checkpoints --------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The JSON part of a checkpoint; the population states go to Orbax as arrays (:attr:`population`)."""
        return {
            "slots": [None if s is None else dict(s) for s in self.slots],
            "buckets": [{"static": b["static"], "slots": b["slots"]} for b in self.buckets],
            "steps_used": self.steps_used,
            "scheduler": self.scheduler.get_state(),
        }

    @property
    def population(self) -> dict:
        """The population states, one per bucket."""
        return {str(i): b["state"] for i, b in enumerate(self.buckets)}

    def load_state_dict(self, saved: dict, restore_population) -> None:
        """Continue from :meth:`state_dict`. ``restore_population(template)`` returns the population states
        (e.g. from an Orbax checkpoint) given their abstract template."""
        self.scheduler.set_state(saved["scheduler"])
        self.slots = [None if s is None else dict(s) for s in saved["slots"]]
        self.steps_used = int(saved["steps_used"])
        self.buckets = [{"static": b["static"], "slots": list(b["slots"])} for b in saved["buckets"]]
        template = {}
        for i, bucket in enumerate(self.buckets):
            bucket["params"] = self._params(bucket)
            # A fresh population of the same buckets: its shapes, dtypes and shardings are the template.
            template[str(i)] = self.trainer.init_population(self._keys(bucket), bucket["params"])
        population = restore_population(template)
        for i, bucket in enumerate(self.buckets):
            bucket["state"] = population[str(i)]
