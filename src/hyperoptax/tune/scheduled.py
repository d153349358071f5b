"""``hyperoptax tune`` with ``search.scheduler = "asha"`` or ``"hyperband"``: early stopping in the population.

The sweep's ``n_parallel`` trials train as population *slots* in lockstep segments
(:class:`~hyperoptax.integrations.flax.scheduled.ScheduledPopulation`); at every rung the scheduler stops the
unpromising ones and their slots are refilled by the search, which learns from every rung. The budget is the
training a full-fidelity sweep of the same config would do: ``n_iterations * n_parallel * max_steps``
member-steps. After every segment a checkpoint holds the population (Orbax arrays), the scheduler and slots
(JSON) and the finished trials, so a sweep killed at any moment resumes to exactly the trials and curves of an
uninterrupted one.
"""

from __future__ import annotations

import time

from hyperoptax.bayesian import RECOMMENDED, BayesianSearch
from hyperoptax.random import RandomSearch
from hyperoptax.schedulers import OptimizerRefills, RandomRefills, Scheduler, SearcherRefills
from hyperoptax.sweep import TrialRecord
from hyperoptax.tune import population_checkpoints, records
from hyperoptax.tune.config import n_iterations_of, successive_halving
from hyperoptax.tune.progress import Progress

__all__ = ["ScheduledSweep"]


def _refills(config, space, rule):
    """The refill source: a GP over (configuration, steps) for ``gp_fifo``, and for ``bayesian`` unless
    ``scheduler.model="rung"`` (the BOHB-style model of one rung); random draws for ``random``."""
    s = config.search
    options = s.options.to_dict()
    if s.optimizer == "gp_fifo" or (s.optimizer == "bayesian" and config.scheduler.model == "resource"):
        from hyperoptax.searchers import GPFIFOSearcher

        searcher = GPFIFOSearcher(space, metric=s.metric, mode=s.mode, random_seed=int(config.seed),
                                  resource_attr="steps", max_resource=rule.max_steps, **options)
        return SearcherRefills(searcher, eta=rule.eta, min_pairs=config.scheduler.min_pairs)
    if s.optimizer == "random":
        return RandomRefills(space)
    preset = RECOMMENDED if s.preset == "recommended" else {}
    capacity = n_iterations_of(config) * s.n_parallel * rule.eta  # rung 0 sees the most trials
    return OptimizerRefills(BayesianSearch if s.optimizer == "bayesian" else RandomSearch, space, capacity,
                            eta=rule.eta, **{**preset, **options}, n_parallel=s.n_parallel, maximize=s.mode == "max")


class ScheduledSweep:
    """The scheduled sweep of a config: its population, the segment loop with checkpoints, the trial records."""

    def __init__(self, config, space, task, key):
        from hyperoptax.integrations.flax.scheduled import ScheduledPopulation

        s = config.search
        self.rule = successive_halving(config)
        scheduler = Scheduler(_refills(config, space, self.rule), max_steps=self.rule.max_steps,
                              min_steps=self.rule.min_steps, eta=self.rule.eta, n_brackets=self.rule.n_brackets,
                              maximize=self.rule.maximize, seed=int(config.seed), min_pairs=config.scheduler.min_pairs)
        budget = n_iterations_of(config) * s.n_parallel * self.rule.max_steps
        self.config = config
        self.population = ScheduledPopulation(task.trainer, scheduler, space, s.n_parallel, budget, key)
        self.trials: list[TrialRecord] = []
        self.started: dict[int, int] = {}  # trial -> segment it started in
        self.durations: dict[int, float] = {}
        self.start = 0  # segments done (after a resume)

    @property
    def scheduler(self) -> Scheduler:
        return self.population.scheduler

    def run(self, checkpointer, workdir, save_results, verbose):
        """Train until the budget is spent (resuming the newest checkpoint); returns ``(trials, wall time)``."""
        s = self.config.search
        elapsed_before = self._resume(checkpointer) if checkpointer.latest_step() is not None else 0.0
        done, budget = self.population.steps_used, self.population.budget_steps
        progress = Progress(done, budget, s.metric, verbose, unit="steps")
        if self.start:
            progress.say(f"Resuming {workdir}: {done} of {budget} training steps done, {len(self.trials)} trials "
                         f"finished.")
        else:
            progress.say(f"Starting a {s.scheduler} sweep of {budget} training steps in {s.n_parallel} slots "
                         f"(rungs at {', '.join(map(str, self.rule.levels()))} steps) in {workdir}.")
        t0 = time.perf_counter()

        def segment_done(it):
            for i in it.params:  # the slots refilled before this segment
                self.started[self.population.slots[i]["trial"]] = it.index
            for slot in self.population.slots:  # every slot trained during the segment
                self.durations[slot["trial"]] = self.durations.get(slot["trial"], 0.0) + it.duration
            new = self._finished()
            self.trials += new
            wall = elapsed_before + time.perf_counter() - t0
            population_checkpoints.save(checkpointer, it.index + 1, self.population.population, {
                "segments_done": it.index + 1, "population": self.population.state_dict(), "trials": self.trials,
                "started": self.started, "durations": self.durations, "wall_time_s": wall})
            save_results(self.trials, wall)
            progress.segment(self.population.steps_used, new, self.counts(), records.best_trial(self.trials, s.mode))

        try:
            self.population.run(self.start, segment_done)
        finally:
            progress.close()
        self.trials += self._finished()  # the trials the budget stopped
        return self.trials, elapsed_before + time.perf_counter() - t0

    def _resume(self, checkpointer) -> float:
        """Continue from the newest checkpoint; returns the wall time the sweep had run."""
        info = population_checkpoints.restore(checkpointer, "population", self.population.load_state_dict)
        self.trials = list(info["trials"])
        self.started = {int(k): v for k, v in info["started"].items()}
        self.durations = {int(k): v for k, v in info["durations"].items()}
        self.start = int(info["segments_done"])
        return float(info["wall_time_s"])

    def _finished(self) -> list[TrialRecord]:
        recorded = {t["trial"] for t in self.trials}
        out = []
        for t in self.scheduler.trials.values():
            if t["status"] == "running" or t["trial"] in recorded:
                continue
            last = t["curve"][-1][1] if t["curve"] else None
            out.append(TrialRecord(
                trial=t["trial"], iteration=self.started.get(t["trial"], 0), status=t["status"],
                metric=None if t["status"] == "failed" else last, duration=round(self.durations.get(t["trial"], 0.0), 4),
                params=dict(t["config"]), steps=t["steps"], curve=[list(p) for p in t["curve"]],
            ))
        return sorted(out, key=lambda r: r["trial"])

    def counts(self) -> dict:
        """Trials started, running, stopped, completed and failed so far."""
        statuses = [t["status"] for t in self.scheduler.trials.values()]
        return {"started": len(statuses), **{k: statuses.count(k) for k in ("running", "stopped", "completed", "failed")}}
