"""Successive halving and Hyperband: rung levels, the stopping rule on hand-computed rungs, the ask/tell object."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

import hyperoptax as hx
from hyperoptax.errors import ConfigurationError
from hyperoptax.schedulers import CONTINUE, STOP, COMPLETE, FAIL, OptimizerRefills, Scheduler, SuccessiveHalving

SPACE = {"lr": hx.LogSpace(1e-4, 1e-1), "width": hx.QLinearSpace(8, 64)}


@pytest.mark.parametrize("max_steps, min_steps, eta, levels", [
    (810, 30, 3, (30, 90, 270, 810)),
    (1000, 100, 3, (100, 300, 1000)),       # 900 would leave a last gap of 1.1x: the rungs stop at 300
    (100, 40, 3, (40, 100)),
    (100, 100, 3, (100,)),                  # no early stopping
    (64, 4, 2, (4, 8, 16, 32, 64)),
    (900, None, 3, (100, 300, 900)),        # default min_steps: max_steps // eta**2
])
def test_rung_levels(max_steps, min_steps, eta, levels):
    rule = SuccessiveHalving(max_steps, min_steps, eta)
    assert rule.levels() == levels
    assert rule.s_max == len(levels) - 1


def test_hyperband_brackets_and_weights():
    rule = SuccessiveHalving(810, 30, 3, n_brackets=4)
    assert [rule.levels(b) for b in range(4)] == [(30, 90, 270, 810), (90, 270, 810), (270, 810), (810,)]
    # Li et al. (2018): bracket b halves s_max - b = 3 - b times, weight (s_max + 1) / (s_max - b + 1) * eta**(s_max - b).
    np.testing.assert_allclose(rule.bracket_weights(), np.array([27, 12, 6, 4]) / 49)
    draws = np.asarray([int(rule.bracket(jax.random.key(0), t)) for t in range(400)])
    assert np.all(draws == np.asarray([int(rule.bracket(jax.random.key(0), t)) for t in range(400)]))  # reproducible
    counts = np.bincount(draws, minlength=4) / 400
    np.testing.assert_allclose(counts, rule.bracket_weights(), atol=0.08)


def _decide(rule, state, bracket, steps, metric):
    state, code = jax.jit(rule.report, static_argnums=())(state, bracket, steps, metric)
    return state, int(code)


def test_the_stopping_rule_on_hand_computed_rungs():
    rule = SuccessiveHalving(9, 1, 3)  # rungs at 1, 3, 9
    state = rule.init(16)
    # Six trials reach rung 1 in this order. A trial continues if fewer than max(1, n // 3) recorded
    # metrics (n counting its own) beat it:
    #   0.50: n=1, keep 1, 0 better -> continue      0.30: n=2, keep 1, 1 better -> stop
    #   0.70: n=3, keep 1, 0 better -> continue      0.60: n=4, keep 1, 1 better -> stop
    #   0.20: n=5, keep 1, 4 better -> stop          0.65: n=6, keep 2, 1 better -> continue
    expected = [CONTINUE, STOP, CONTINUE, STOP, STOP, CONTINUE]
    for value, want in zip([0.5, 0.3, 0.7, 0.6, 0.2, 0.65], expected):
        state, code = _decide(rule, state, 0, 1, value)
        assert code == want, value
    assert int(state.counts[0, 0]) == 6 and int(state.counts[0, 1]) == 0
    # The survivors meet again at rung 3: 0.71 first (continue), 0.60 (1 better, keep 1: stop).
    state, code = _decide(rule, state, 0, 3, 0.71)
    assert code == CONTINUE
    state, code = _decide(rule, state, 0, 3, 0.60)
    assert code == STOP
    # At max_steps a trial completes, whatever its rank; off the rungs nothing is decided or recorded.
    state, code = _decide(rule, state, 0, 9, 0.1)
    assert code == COMPLETE
    before = np.asarray(state.counts)
    state, code = _decide(rule, state, 0, 2, 0.0)
    assert code == CONTINUE and np.array_equal(state.counts, before)


def test_minimizing_ranks_low_values_first_and_failures_are_not_recorded():
    rule = SuccessiveHalving(9, 1, 3, maximize=False)
    state = rule.init(8)
    state, code = _decide(rule, state, 0, 1, 0.5)
    assert code == CONTINUE
    state, code = _decide(rule, state, 0, 1, 0.4)  # lower is better: continues
    assert code == CONTINUE
    state, code = _decide(rule, state, 0, 1, 0.9)
    assert code == STOP
    for bad in (math.nan, math.inf, -math.inf):
        state, code = _decide(rule, state, 0, 1, bad)
        assert code == FAIL
    assert int(state.counts[0, 0]) == 3  # failures never lower the bar


def test_a_full_rung_table_still_ranks_against_what_it_holds():
    rule = SuccessiveHalving(9, 1, 3)
    state = rule.init(2)
    for value in (0.9, 0.8):
        state, _ = _decide(rule, state, 0, 1, value)
    state, code = _decide(rule, state, 0, 1, 0.85)  # n=3, keep 1, 0.9 beats it
    assert code == STOP and int(state.counts[0, 0]) == 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_steps=0), "max_steps"),
    (dict(max_steps=10, eta=1), "eta"),
    (dict(max_steps=10, min_steps=20), "min_steps=20 is larger than max_steps=10"),
    (dict(max_steps=90, min_steps=10, n_brackets=4), "n_brackets=4 is more than the 3 brackets"),
    (dict(max_steps=10, maximize="yes"), "maximize"),
])
def test_bad_options_get_clear_errors(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        SuccessiveHalving(**kwargs)


# --- the ask/tell object ------------------------------------------------------


def _curve(config, steps):
    """A deterministic learning curve: a configuration's quality times the fraction of training done."""
    quality = -abs(math.log10(config["lr"]) + 2.0)
    return quality * (1 - math.exp(-steps / 10.0))


def _run(scheduler, n_trials):
    """A user's loop: one trial at a time, reported at every rung until a decision ends it."""
    for _ in range(n_trials):
        trial = scheduler.ask()
        while True:
            decision = scheduler.report(trial.trial_id, trial.steps, _curve(trial.config, trial.steps))
            if decision.action != "continue":
                break
            assert decision.trial.trial_id == trial.trial_id and decision.trial.steps > trial.steps
            trial = decision.trial
    return scheduler


def test_ask_tell_trains_to_rungs_and_records_curves():
    scheduler = _run(Scheduler(SPACE, max_steps=27, min_steps=1, eta=3, seed=0), 20)
    trials = list(scheduler.trials.values())
    assert len(trials) == 20 and {t["status"] for t in trials} <= {"completed", "stopped"}
    for t in trials:
        levels = [s for s, _ in t["curve"]]
        assert levels == [1, 3, 9, 27][: len(levels)]
        assert t["steps"] == levels[-1]
        assert (t["status"] == "completed") == (t["steps"] == 27)
        for steps, metric in t["curve"]:
            assert metric == pytest.approx(_curve(t["config"], steps))
    assert trials[0]["status"] == "completed"  # the first trial at every rung continues
    assert scheduler.best()["steps"] == 27
    # The rung tables hold every report, and at most a third (at least one) moves on from each rung.
    counts = np.asarray(scheduler.rungs.counts[0])
    assert counts[0] == 20 and all(counts[k + 1] <= max(1, counts[k]) for k in range(3))


def test_ask_tell_state_round_trips_through_json():
    import json

    scheduler = _run(Scheduler(SPACE, max_steps=27, min_steps=1, eta=3, seed=1), 6)
    clone = Scheduler(SPACE, max_steps=27, min_steps=1, eta=3, seed=1)
    clone.set_state(json.loads(json.dumps(scheduler.get_state())))
    _run(scheduler, 4)
    _run(clone, 4)
    assert clone.trials == scheduler.trials
    np.testing.assert_array_equal(clone.rungs.counts, scheduler.rungs.counts)


def test_reports_out_of_order_are_refused():
    scheduler = Scheduler(SPACE, max_steps=27, min_steps=1)
    trial = scheduler.ask()
    scheduler.report(trial.trial_id, 1, 0.5)
    with pytest.raises(ConfigurationError, match="already reported 1"):
        scheduler.report(trial.trial_id, 0, 0.5)
    with pytest.raises(ConfigurationError, match="Unknown trial 7"):
        scheduler.report(7, 1, 0.5)
    scheduler.stop(trial.trial_id)
    with pytest.raises(ConfigurationError, match="already left training"):
        scheduler.report(trial.trial_id, 3, 0.5)


def _refills():
    return OptimizerRefills(hx.BayesianSearch, SPACE, capacity=32, min_points=4, n_parallel=2,
                            n_candidates=64, n_restarts=1, n_lbfgs_steps=2, n_hparam_steps=5)


@pytest.mark.parametrize("crossing", [False, True])
def test_bayesian_refills_model_the_lowest_rung_that_ranks_like_the_top(crossing):
    refills = _refills()
    for t in range(8):  # every trial reports at every rung: 8 pairs per link
        config = {"lr": 10.0 ** (-1 - 3 * t / 8), "width": 8 + t}
        for steps in (1, 3, 9):
            # Without crossing the ranking is the same at every rung; with it, it reverses at the top.
            metric = t * steps if not (crossing and steps == 9) else -t * steps
            refills.observe(t, config, steps, float(metric))
    assert refills.model_level() == (9 if crossing else 1)
    state = refills._rung_state()
    assert int(state.mask.sum()) == 8
    level = refills.model_level()
    np.testing.assert_allclose(sorted(np.asarray(state.y[:8])),
                               sorted(o[2] for o in refills.observations if o[1] == level))


def test_bayesian_refills_propose_inside_the_space():
    refills = _refills()
    scheduler = _run(Scheduler(refills, max_steps=27, min_steps=1, eta=3, seed=0), 12)
    assert refills.model_level() in (1, 3, 9, 27)
    new = scheduler.ask_batch(3)
    assert len({t.trial_id for t in new}) == 3
    for t in new:
        assert 1e-4 <= t.config["lr"] <= 1e-1 and 8 <= t.config["width"] <= 64 and isinstance(t.config["width"], int)


# --- GPFIFOSearcher refills: the resource as a GP input (MOBSTER) ---------------------------------------


def test_multi_fidelity_searcher_needs_its_full_resource():
    with pytest.raises(ConfigurationError, match="pass max_resource="):
        hx.GPFIFOSearcher(SPACE, "acc", "max", resource_attr="steps")
    searcher = hx.GPFIFOSearcher(SPACE, "acc", "max", resource_attr="steps", max_resource=27, random_seed=0)
    config = searcher.get_config(trial_id=0)
    with pytest.raises(ConfigurationError, match="has no 'steps'"):
        searcher.on_trial_result(0, config, {"acc": 0.5})
    with pytest.raises(ConfigurationError, match=r"steps=81.0 is outside \[1, max_resource=27\]"):
        searcher.on_trial_result(0, config, {"acc": 0.5, "steps": 81})


def test_multi_fidelity_observations_keep_the_trial_pending_until_it_completes():
    import json

    searcher = hx.GPFIFOSearcher(SPACE, "acc", "max", resource_attr="steps", max_resource=27, random_seed=0)
    config = searcher.get_config(trial_id=0)
    for steps, acc in ((1, 0.2), (3, 0.4)):
        searcher.on_trial_result(0, config, {"acc": acc, "steps": steps})
    trial = searcher._trials[0]
    assert trial["status"] == "pending" and [o["resource"] for o in trial["observations"]] == [1.0, 3.0]
    state = json.loads(json.dumps(searcher.get_state()))
    assert state["trials"][0]["observations"] == [[1.0, 0.2], [3.0, 0.4]]
    clone = searcher.clone_from_state(state)
    assert clone._trials[0]["status"] == "pending" and len(clone._trials[0]["observations"]) == 2
    searcher.on_trial_complete(0)
    assert searcher._trials[0]["status"] == "observed"


def test_multi_fidelity_searcher_learns_from_low_resources():
    # Quality peaks at lr = 1e-2; curves saturate (1 - exp(-steps / 4)), so low resources rank configurations
    # like the full one. Most observations are at 1 and 3 steps, few at 27: the GP (the resource as its last
    # input) still finds the peak.
    space = {"lr": hx.LogSpace(1e-4, 1.0)}
    searcher = hx.GPFIFOSearcher(space, "acc", "max", resource_attr="steps", max_resource=27, random_seed=0,
                                 num_init_random=12)
    curve = lambda lr, steps: math.exp(-((math.log10(lr) + 2.0) ** 2)) * (1 - math.exp(-steps / 4))
    for t in range(12):
        config = searcher.get_config(trial_id=t)
        for steps in ((1, 3) if t % 4 else (1, 3, 9, 27)):
            searcher.on_trial_result(t, config, {"acc": curve(config["lr"], steps), "steps": steps})
        searcher.on_trial_complete(t)
    proposals = [searcher.get_config(trial_id=12 + i)["lr"] for i in range(3)]
    assert min(abs(math.log10(lr) + 2.0) for lr in proposals) < 0.3, proposals


def _told(searcher, reports):
    """Tell ``searcher`` the reports ``{trial: [(steps, metric), ...]}`` of trials it proposed; all left training."""
    for t, curve in reports.items():
        config = searcher.get_config(trial_id=t)
        for steps, metric in curve:
            searcher.on_trial_result(t, config, {"acc": metric, "steps": steps})
        searcher.on_trial_complete(t)


def test_latest_model_data_fits_what_only_the_latest_reports_would():
    import json

    # Two searchers with one seed: one is told every report and fits the latest only, the other is told the
    # latest ones alone. They propose the same configurations throughout.
    curves = {t: [(1, 0.1 * t), (3, 0.5 - 0.1 * t), (9, 0.2 + 0.05 * t)][: 1 + t % 3] for t in range(8)}
    every = hx.GPFIFOSearcher(SPACE, "acc", "max", resource_attr="steps", max_resource=9, random_seed=0)
    latest = hx.GPFIFOSearcher(SPACE, "acc", "max", resource_attr="steps", max_resource=9, random_seed=0)
    every.set_model_data("latest")
    _told(every, curves)
    _told(latest, {t: c[-1:] for t, c in curves.items()})
    assert [t["config"] for t in every.get_state()["trials"]] == [t["config"] for t in latest.get_state()["trials"]]
    assert every.get_config(trial_id=8) == latest.get_config(trial_id=8)
    # The reports stay recorded, and the choice survives a checkpoint.
    state = json.loads(json.dumps(every.get_state()))
    assert state["model_data"] == "latest" and len(state["trials"][2]["observations"]) == 3
    assert every.clone_from_state(state).get_state()["model_data"] == "latest"
    with pytest.raises(ConfigurationError, match="set_model_data='last' is not supported"):
        every.set_model_data("last")
    with pytest.raises(ConfigurationError, match="needs a multi-fidelity searcher"):
        hx.GPFIFOSearcher(SPACE, "acc", "max").set_model_data("latest")


@pytest.mark.parametrize("cross", [False, True])
def test_searcher_refills_fit_the_latest_reports_once_a_rung_misleads(cross):
    from hyperoptax.schedulers import SearcherRefills

    searcher = hx.GPFIFOSearcher(SPACE, "acc", "max", resource_attr="steps", max_resource=9, random_seed=0)
    refills = SearcherRefills(searcher, eta=3, min_pairs=6)
    # 6 trials ranked alike at 1 and 3 steps; at 9 alike too, or reversed (rung 3 then loses the winner).
    _told(searcher, {t: [(1, 0.1 * t), (3, 0.2 * t), (9, (-1.0 if cross else 1.0) * t)] for t in range(6)})
    assert refills.rungs_mislead() == cross
    refills.propose(jax.random.key(0), [6])
    assert searcher.get_state()["model_data"] == ("latest" if cross else "all")
    # min_pairs=0 (plain ASHA) fits every report whatever the curves.
    assert not SearcherRefills(searcher, eta=3, min_pairs=0).rungs_mislead()


def test_searcher_refills_drive_the_scheduler():
    searcher = hx.GPFIFOSearcher(SPACE, "acc", "max", resource_attr="steps", max_resource=27, random_seed=0)
    scheduler = _run(Scheduler(searcher, max_steps=27, min_steps=1, eta=3, seed=0), 10)
    assert {t["status"] for t in scheduler.trials.values()} <= {"completed", "stopped"}
    states = {t["status"] for t in searcher._trials.values()}
    assert states == {"observed"}  # every trial left training, all of its rungs are data
    n_reports = sum(len(t["curve"]) for t in scheduler.trials.values())
    assert sum(len(t["observations"]) for t in searcher._trials.values()) == n_reports


def test_grace_and_audits_continue_whatever_their_rank():
    rule = SuccessiveHalving(9, 1, 3, grace=2, audit=4)  # rungs 1, 3, 9
    state = rule.init(16)
    # Rung 1 (the first): the first 2 continue; then the plain rule; the 4th and 8th arrivals are audited.
    decisions = []
    for value in [0.1, 0.05, 0.01, 0.02, 0.03, 0.04, 0.0, 0.0]:
        state, code = _decide(rule, state, 0, 1, value)
        decisions.append(code)
    assert decisions == [CONTINUE, CONTINUE, STOP, CONTINUE, STOP, STOP, STOP, CONTINUE]
    # Rung 3 is no first rung: no grace, but audits (the 4th arrival).
    decisions = []
    for value in [0.9, 0.1, 0.1, 0.1]:
        state, code = _decide(rule, state, 0, 3, value)
        decisions.append(code)
    assert decisions == [CONTINUE, STOP, STOP, CONTINUE]


def test_a_rung_below_a_misleading_rung_stops_no_trial():
    from hyperoptax.schedulers import trust

    # 6 trials ranked alike at steps 1 and 3, reversed at 9 (curves that cross between 3 and 9).
    curves = [{1: float(t), 3: float(t), 9: -float(t)} for t in range(6)]
    low, high = trust.links(curves, (1, 3, 9), eta=3)
    # 1 -> 3: the top 2 at 1 (t = 5, 4) hold the best at 3: loss 0.
    assert (low.n_pairs, low.loss) == (6, 0.0)
    # 3 -> 9: they hold -4 at best where the best is 0 and the median -2.5: loss 4 / 2.5.
    assert high.n_pairs == 6 and math.isclose(high.loss, 1.6)
    # Rung 1 ranks like rung 3, but rung 3 misleads: neither may stop a trial.
    assert trust.may_prune([low, high], min_pairs=6) == [False, False]
    assert trust.may_prune([low, high], min_pairs=7) == [True, True]  # too few pairs to call it misleading
    assert trust.may_prune([high, low], min_pairs=6) == [False, True]  # a misleading rung above a sound one


def test_ask_tell_prunes_with_the_trust_rule():
    scheduler = Scheduler(SPACE, max_steps=9, min_steps=1, eta=3, min_pairs=3, seed=0)
    trials = [scheduler.ask() for _ in range(3)]
    for t in trials:  # the first 3 at rung 1 continue (grace), then everything is reported up to 9
        for steps in (1, 3, 9):
            value = float(t.trial_id) if steps < 9 else -float(t.trial_id)
            scheduler.report(t.trial_id, steps, value)
    # Rung 3's selection (trial 2) loses the winner at 9 (trial 0), so rungs 3 and 1 stop pruning.
    np.testing.assert_array_equal(scheduler.prune(), [False, False, True])


def test_a_selection_that_loses_a_tenth_of_the_spread_misleads_by_default():
    from hyperoptax.schedulers import trust

    # 6 pairs ranked 0..5 at the low rung; at the high one the top 2 there (t = 5, 4) reach 0.7 and 0.9, the
    # best is 1.0 (t = 0) and the median (0.7 + 0.8) / 2: loss (1.0 - 0.9) / (1.0 - 0.75) = 0.4.
    high = [1.0, 0.8, 0.6, 0.6, 0.9, 0.7]
    (link,) = trust.links([{1: float(t), 3: h} for t, h in enumerate(high)], (1, 3), eta=3)
    assert link.n_pairs == 6 and math.isclose(link.loss, 0.4)
    assert trust.MAX_LOSS == 0.1 and trust.may_prune([link]) == [False]  # the default calls it misleading
    assert trust.may_prune([link], max_loss=0.5) == [True]  # a coarser tolerance would not
