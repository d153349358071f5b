"""PBT inside the population: exploit copies bit for bit, the lineage is consistent, a schedule replays, one
compile, and the population sharded over 4 devices decides and trains as on one.

A real (tiny) Flax MLP on digits (``test_population``'s trainer: SGD whose learning rate is injected into the
optimizer state, metric the negative cross-entropy); learning rates up to 1e6 diverge.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hyperoptax as hx
from hyperoptax.integrations.flax.pbt import PBTPopulation
from hyperoptax.schedulers import PBT
from hyperoptax.schedulers.pbt import n_exploit

from test_population import _run_script, lr_batch, make_trainer

SPACE = {"learning_rate": hx.LogSpace(1e-3, 1e6)}
N_MEMBERS, N_STEPS, READY = 8, 50, 10
CONFIGS = [{"learning_rate": float(lr)} for lr in np.geomspace(1e-2, 1e6, N_MEMBERS)]


def run_pbt():
    population = PBTPopulation(make_trainer(), PBT(READY), SPACE, CONFIGS, N_STEPS, jax.random.key(0))
    population.run()
    return population


@pytest.fixture(scope="module")
def population():
    return run_pbt()


def test_exploit_copies_the_chosen_members_state_bit_for_bit():
    trainer = make_trainer()
    lrs = np.float32([0.02, 0.1, 0.3, 0.05])
    params = lr_batch(lrs)
    state, _ = trainer.train_and_evaluate(trainer.init_population(jax.random.key(0), params), params, 3)
    source = np.array([2, 2, 0, 1])
    copied = trainer.exploit(state, lr_batch(lrs[source]), source)  # the parents' hyperparameters, unexplored
    before, after = jax.tree.map(np.asarray, state), jax.tree.map(np.asarray, copied)
    for name in ("model", "opt_state", "step", "finite"):
        for a, b in zip(jax.tree.leaves(getattr(before, name)), jax.tree.leaves(getattr(after, name))):
            np.testing.assert_array_equal(b, a[source])  # parameters, optimizer state: exactly the parent's
    np.testing.assert_array_equal(after.rng, before.rng)  # each member keeps its own data stream
    # New hyperparameters go into the optimizer state that inject_hyperparams keeps; nothing else changes.
    explored = trainer.exploit(state, lr_batch([0.5, 0.6, 0.7, 0.8]), source)
    hp = explored.opt_state[1].hyperparams
    np.testing.assert_array_equal(hp["learning_rate"], np.float32([0.5, 0.6, 0.7, 0.8]))
    np.testing.assert_array_equal(hp["momentum"], before.opt_state[1].hyperparams["momentum"][source])
    np.testing.assert_array_equal(explored.opt_state[1].inner_state[0].trace["hidden"]["kernel"],
                                  before.opt_state[1].inner_state[0].trace["hidden"]["kernel"][source])
    assert trainer.n_compiles == 3  # init, segment, exploit: new values are arguments, not constants


def test_lineage_is_consistent(population):
    lineage = population.lineage
    n_intervals = N_STEPS // READY
    assert lineage.n_intervals == n_intervals
    k = n_exploit(N_MEMBERS, 0.25)
    for interval in range(1, n_intervals):
        before = lineage.metrics(interval - 1)
        score = np.where(np.isfinite(before), before, -np.inf)
        rank = np.argsort(np.argsort(-score, kind="stable"), kind="stable")
        parents = {i: h[interval]["parent"] for i, h in enumerate(lineage.members)}
        copied = [i for i, p in parents.items() if p is not None]
        # Exactly the bottom quantile and the failures copied, each from the top quantile.
        assert sorted(copied) == sorted(i for i in range(N_MEMBERS) if rank[i] >= N_MEMBERS - k or not np.isfinite(before[i]))
        for i in copied:
            assert rank[parents[i]] < k and np.isfinite(before[parents[i]])
        for i, history in enumerate(lineage.members):
            lr = history[interval]["params"]["learning_rate"]
            if parents[i] is None:
                assert lr == history[interval - 1]["params"]["learning_rate"]  # kept its own values
            else:  # the parent's value times 0.8 or 1.2, inside the space
                ratio = lr / lineage.members[parents[i]][interval - 1]["params"]["learning_rate"]
                assert min(abs(ratio - 0.8), abs(ratio - 1.2)) < 1e-5 and 1e-3 <= lr <= 1e6
    assert any(np.isnan(lineage.metrics(0))), "learning rates up to 1e6 diverge"
    assert np.all(np.isfinite(lineage.metrics(1)))  # ... and are replaced at the first ready step
    # The best member's schedule is its ancestry: contiguous, ending in the final metric.
    best = population.best()
    assert best == int(np.nanargmax(lineage.metrics()))
    schedule = population.schedule()
    assert [e["steps"] for e in schedule] == [[s, s + READY] for s in range(0, N_STEPS, READY)]
    assert schedule[-1]["member"] == best and schedule[-1]["metric"] == lineage.metrics()[best]


def test_one_compile_of_each_program_for_the_whole_run(population):
    assert population.trainer.n_compiles == 3  # init, segment (any length), exploit
    assert population.n_compiles == 4  # and the ready step's decision


def test_the_best_schedule_replays_to_the_same_metric(population):
    replayed = population.replay()
    expected = [m for _, m in population.lineage.curve(population.best())]
    # The same keys, data streams and values; only a population of another size rounds differently.
    np.testing.assert_allclose(replayed, expected, rtol=1e-4)


def test_members_copy_within_their_static_bucket_and_keep_its_values():
    space = {"learning_rate": hx.LogSpace(1e-3, 1.0), "width": hx.DiscreteSpace([8, 16])}
    configs = [{"learning_rate": lr, "width": w} for lr, w in zip([0.01, 0.3, 0.02, 0.2, 0.05, 0.1], [8, 16] * 3)]
    population = PBTPopulation(make_trainer(static=("width",), space=space), PBT(5, quantile=0.5), space, configs,
                               15, jax.random.key(1))
    population.run()
    assert [b["static"] for b in population.buckets] == [{"width": 8}, {"width": 16}]
    copies = 0
    for i, history in enumerate(population.lineage.members):
        assert {e["params"]["width"] for e in history} == {configs[i]["width"]}  # static values never change
        for e in history:
            if e["parent"] is not None:
                copies += 1
                assert configs[e["parent"]]["width"] == configs[i]["width"]  # a copy stays in its bucket
    assert copies == 2 * 2  # per bucket of three, one copies at each of the two ready steps
    assert population.trainer.n_compiles == 6  # init, segment, exploit per bucket


@pytest.mark.slow
def test_sharded_over_four_devices_equals_unsharded(population):
    [out] = _run_script(
        """
        import json, jax, numpy as np
        from test_pbt_population import run_pbt
        assert jax.device_count() == 4
        population = run_pbt()
        shards = len(population.buckets[0]["state"].step.sharding.device_set)
        print(json.dumps({"lineage": population.lineage.get_state(), "shards": shards,
                          "compiles": population.n_compiles}))
        """,
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
    )
    assert out["shards"] == 4 and out["compiles"] == 4
    sharded, single = out["lineage"]["members"], population.lineage.get_state()["members"]
    strip = lambda members: [[{k: v for k, v in e.items() if k != "metric"} for e in h] for h in members]  # noqa: E731
    assert strip(sharded) == strip(single)  # the same exploits, parents and explored values
    # Two members a device: some copies crossed devices (the gather works across shards).
    assert any(e["parent"] is not None and e["parent"] // 2 != i // 2 for i, h in enumerate(sharded) for e in h)
    metrics = lambda members: np.array([[np.nan if e["metric"] is None else e["metric"] for e in h] for h in members])  # noqa: E731
    np.testing.assert_allclose(metrics(sharded), metrics(single), rtol=1e-4, atol=1e-5)
