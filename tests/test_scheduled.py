"""Early stopping inside the population: slots train in segments, stopped slots are refilled, one compile.

A real (tiny) Flax MLP on digits; the scheduler is ASHA over a few dozen steps.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import hyperoptax as hx
from hyperoptax.integrations.flax.scheduled import ScheduledPopulation
from hyperoptax.schedulers import Scheduler

from test_population import make_trainer

SPACE = {"learning_rate": hx.LogSpace(1e-3, 1e6)}  # the upper half diverges
MAX_STEPS, N_SLOTS = 27, 4


def run(budget, seed=0, **kwargs):
    trainer = make_trainer()
    scheduler = Scheduler(SPACE, max_steps=MAX_STEPS, min_steps=3, eta=3, seed=seed, **kwargs)
    population = ScheduledPopulation(trainer, scheduler, SPACE, N_SLOTS, budget, jax.random.key(seed))
    segments = []
    population.run(on_segment=segments.append)
    return population, segments


@pytest.fixture(scope="module")
def swept():
    return run(budget=N_SLOTS * MAX_STEPS * 3)


def test_slots_stay_full_and_the_budget_is_spent(swept):
    population, segments = swept
    assert population.steps_used <= population.budget_steps
    assert population.budget_steps - population.steps_used < N_SLOTS  # nothing left worth a segment
    trials = population.scheduler.trials
    assert len(trials) > N_SLOTS  # stopped slots were refilled
    # The first segment fills every slot; after that only freed slots are refilled.
    assert segments[0].params == list(range(N_SLOTS))
    started = sum(len(s.params) for s in segments)
    assert started == len(trials)
    assert {t["status"] for t in trials.values()} <= {"completed", "stopped", "failed"}
    for t in trials.values():
        levels = [steps for steps, _ in t["curve"]]
        assert levels == [3, 9, 27][: len(levels)] or (levels and levels[-1] < 27 and t["status"] in ("stopped", "failed"))


def test_one_compile_of_each_program_for_the_whole_sweep(swept):
    population, segments = swept
    assert len(segments) > 5
    assert population.trainer.n_compiles == 3  # init, segment (any length), refill


def test_host_ask_tell_reproduces_the_population_decisions(swept):
    population, _ = swept
    history = population.scheduler.history
    host = Scheduler(SPACE, max_steps=MAX_STEPS, min_steps=3, eta=3, seed=0)
    for trial, steps, metric, action in history:
        while trial >= host.n_asked:
            host.ask()
        decision = host.report(trial, steps, float("nan") if metric is None else metric)
        assert decision.action == action, (trial, steps, metric)
    np.testing.assert_array_equal(host.rungs.counts, population.scheduler.rungs.counts)


def test_diverging_trials_fail_and_free_their_slot(swept):
    population, _ = swept
    trials = population.scheduler.trials.values()
    failed = [t for t in trials if t["status"] == "failed"]
    assert failed, "learning rates up to 1e6 diverge"
    for t in failed:
        assert t["curve"][-1][1] is None and t["config"]["learning_rate"] > 1.0
