"""``hyperoptax tune`` with ``search.scheduler = "pbt"``: one population trained with population-based training.

``search.n_parallel`` members, drawn uniformly from the space, train ``scheduler.max_steps`` steps (default
``training.n_steps``) together; every ``scheduler.ready_steps`` the bottom ``scheduler.quantile`` copies the
top one and explores (:class:`~hyperoptax.integrations.flax.pbt.PBTPopulation`). The sweep costs one
population run: ``search.n_iterations`` / ``n_trials`` and ``search.optimizer`` are not used. Each member is a
trial whose record carries its ``lineage`` and ``schedule`` (:class:`hyperoptax.sweep.TrialRecord`). After
every interval a checkpoint holds the population and current hyperparameters (Orbax arrays) and the lineage
(JSON), so a sweep killed at any moment resumes to exactly the final population and lineage of an
uninterrupted one; :func:`replay` retrains a workdir's best schedule.
"""

from __future__ import annotations

import time

import jax

from hyperoptax import spaces as sp
from hyperoptax import sweep
from hyperoptax.sweep import TrialRecord
from hyperoptax.tune import population_checkpoints, records
from hyperoptax.tune.config import pbt_rule
from hyperoptax.tune.progress import Progress

__all__ = ["PBTSweep", "replay"]

def _keys(config):
    """``(k_init, k_run)``: the initial population's draw, the population's own key."""
    return jax.random.split(jax.random.key(int(config.seed)))


def _population(config, space, task):
    """The :class:`PBTPopulation` of a config: ``n_parallel`` uniform draws of ``space``."""
    from hyperoptax.integrations.flax.pbt import PBTPopulation

    rule, max_steps = pbt_rule(config)
    k_init, k_run = _keys(config)
    U = jax.random.uniform(k_init, (config.search.n_parallel, sp.n_dims(space)))
    configs = sweep.member_configs(space, sp.unflatten_params(space, sp.decode(space, U)))
    return PBTPopulation(task.trainer, rule, space, configs, max_steps, k_run)


class PBTSweep:
    """The PBT run of a config: the interval loop with checkpoints, progress, and the members' records."""

    def __init__(self, config, space, task):
        self.config = config
        self.population = _population(config, space, task)

    def run(self, checkpointer, workdir, save_results, verbose):
        s, pop = self.config.search, self.population
        elapsed_before = self._resume(checkpointer) if checkpointer.latest_step() is not None else 0.0
        n_intervals, n_steps = len(pop.intervals), pop.n_steps
        progress = Progress(self._steps_done(), n_steps, s.metric, verbose, unit="steps")
        rule = pop.rule
        if pop.interval:
            progress.say(f"Resuming {workdir}: {pop.interval} of {n_intervals} intervals done.")
        else:
            progress.say(f"Starting population-based training ({rule.explore}) of {pop.n_members} members x "
                         f"{n_steps} steps, ready every {rule.ready_steps} steps (the bottom {rule.quantile:g} "
                         f"copies the top) in {workdir}.")
        t0 = time.perf_counter()

        def after_interval(it):
            wall = elapsed_before + time.perf_counter() - t0
            population_checkpoints.save(checkpointer, it.index + 1, pop.population, {
                "intervals_done": it.index + 1, "pbt": pop.state_dict(), "wall_time_s": wall})
            trials = self.trials(wall, finished=False)
            save_results(trials, wall)
            best = records.best_trial(trials, s.mode)
            copies = [f"{i}<-{h[-1]['parent']}" for i, h in enumerate(pop.lineage.members) if h[-1]["parent"] is not None]
            best_text = "none yet" if best is None else f"{best['metric']:.4f} (member {best['trial']})"
            progress.segment(self._steps_done(), [], {}, best)
            progress.say(f"[interval {it.index + 1}/{n_intervals}, {self._steps_done()} steps] best {best_text}"
                         + (f" | copied {', '.join(copies)}" if copies else ""))

        try:
            pop.run(after_interval)
        finally:
            progress.close()
        wall = elapsed_before + time.perf_counter() - t0
        return self.trials(wall, finished=True), wall

    def _steps_done(self) -> int:
        pop = self.population
        return pop.intervals[pop.interval - 1][1] if pop.interval else 0

    def _resume(self, checkpointer) -> float:
        """Continue from the newest checkpoint; returns the wall time the sweep had run."""
        info = population_checkpoints.restore(checkpointer, "pbt", self.population.load_state_dict)
        return float(info["wall_time_s"])

    def trials(self, wall: float, finished: bool) -> list[TrialRecord]:
        """One record per member: its latest metric and hyperparameters, curve, lineage and schedule."""
        lineage = self.population.lineage
        out = []
        for i, history in enumerate(lineage.members):
            if not history:
                continue
            last = history[-1]
            status = "running" if not finished else ("completed" if last["metric"] is not None else "failed")
            record = TrialRecord(trial=i, iteration=0, status=status, metric=last["metric"], duration=round(wall, 4),
                                 params=dict(last["params"]), steps=last["steps"][1], curve=lineage.curve(i))
            record["lineage"] = [dict(entry) for entry in history]
            record["schedule"] = lineage.schedule(i)
            out.append(record)
        return out


def replay(config, workdir, member: int | None = None) -> list[float]:
    """Retrain the schedule of ``member`` (default: the best) of the pbt sweep ``config`` ran in ``workdir``,
    alone; returns the metric after each interval, which retraces the member's ``curve``."""
    from hyperoptax.integrations.flax.pbt import member_keys, replay as replay_schedule
    from hyperoptax.tune import tasks
    from hyperoptax.tune.space_strings import build_space

    results = records.load_results(workdir)
    space = build_space(config.search.space)
    trial = results["best"] if member is None else next(t for t in results["trials"] if t["trial"] == member)
    keys = member_keys(_keys(config)[1], config.search.n_parallel)
    return replay_schedule(tasks.make_task(config, space).trainer, space, trial["schedule"], keys)
