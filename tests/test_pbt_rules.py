"""PBT's pure pieces: who copies whom, explore inside the space, PB2's GP-UCB, the lineage's bookkeeping."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hyperoptax as hx
from hyperoptax.errors import ConfigurationError
from hyperoptax.schedulers import PB2, PBT, Lineage, pb2_data
from hyperoptax.schedulers.pbt import exploit as exploit_fn
from hyperoptax.schedulers.pbt import n_exploit, perturb, resample

exploit = jax.jit(exploit_fn, static_argnums=(2, 3))

# Columns in space_leaves order (sorted names): c, d, lr, n, x.
SPACE = {
    "c": hx.DiscreteSpace(["a", "b", "c"]),
    "d": hx.DiscreteSpace([0.1, 0.2, 0.5]),
    "lr": hx.LogSpace(1e-4, 1e-1),
    "n": hx.QLinearSpace(1, 5),
    "x": hx.LinearSpace(-1.0, 2.0),
}


def test_quantile_sizes_follow_ray_tune():
    assert [n_exploit(n, 0.25) for n in (1, 2, 3, 4, 8, 9, 16)] == [0, 1, 1, 1, 2, 3, 4]
    assert n_exploit(10, 0.3) == 3 and n_exploit(10, 0.5) == 5 and n_exploit(3, 0.5) == 1


def test_exploit_copies_the_top_quantile_into_the_bottom_and_every_failure():
    metrics = jnp.array([0.1, 0.9, 0.5, jnp.nan, 0.7, 0.3, 0.8, 0.2])
    # Ranked: 1 (0.9), 6 (0.8) | 4, 2, 5, 7 | 0 (0.1), 3 (nan): the bottom two copy the top two.
    seen = set()
    for seed in range(20):
        source, copied = map(np.asarray, exploit(jax.random.key(seed), metrics, 0.25))
        assert copied.tolist() == [True, False, False, True, False, False, False, False]
        assert set(source[copied]) <= {1, 6}
        np.testing.assert_array_equal(source[~copied], np.flatnonzero(~copied))
        seen |= set(source[copied])
    assert seen == {1, 6}  # the parent is drawn from the whole top quantile
    # Minimizing: the top is 0 (0.1) and 7 (0.2); the bottom 1 (0.9) and 3 (nan).
    source, copied = map(np.asarray, exploit(jax.random.key(0), metrics, 0.25, maximize=False))
    assert np.flatnonzero(copied).tolist() == [1, 3] and set(source[copied]) <= {0, 7}
    # Failures beyond the bottom quantile copy too; nobody copies a failure.
    metrics = jnp.array([0.5, jnp.nan, jnp.nan, 0.4, jnp.inf, 0.6, jnp.nan, 0.1])
    source, copied = map(np.asarray, exploit(jax.random.key(1), metrics, 0.25))
    assert np.flatnonzero(copied).tolist() == [1, 2, 4, 6] and set(source[copied]) <= {0, 5}
    # All failed: nothing to copy from. One member: nobody to copy.
    assert not np.asarray(exploit(jax.random.key(0), jnp.full(4, jnp.nan), 0.25)[1]).any()
    assert not np.asarray(exploit(jax.random.key(0), jnp.array([jnp.nan]), 0.5)[1]).any()


def _inside(values):
    c, d, lr, n, x = np.asarray(values).T
    assert set(c) <= {0, 1, 2} and set(np.round(d.astype(float), 6)) <= {0.1, 0.2, 0.5}
    assert np.all((lr >= np.float32(1e-4)) & (lr <= np.float32(1e-1)))
    assert np.all((n >= 1) & (n <= 5) & (n == np.round(n)))
    assert np.all((x >= -1) & (x <= 2))


def test_perturb_multiplies_by_the_factors_and_stays_inside_the_space():
    values = jnp.asarray([[1, 0.2, 1e-3, 3, 0.5], [2, 0.5, 0.1, 5, 1.9], [0, 0.1, 1e-4, 1, -0.9]] * 50, jnp.float32)
    out = np.asarray(perturb(jax.random.key(0), SPACE, values))
    _inside(out)
    v = np.asarray(values)
    lr_ratio = out[:, 2] / v[:, 2]
    inner = (v[:, 2] > 2e-4) & (v[:, 2] < 5e-2)  # far from the bounds: exactly x0.8 or x1.2
    np.testing.assert_allclose(np.sort(np.unique(np.round(lr_ratio[inner], 5))), [0.8, 1.2])
    # Discrete values move to a neighbour: 0.2 -> 0.1 or 0.5; index 1 -> 0 or 2; ends are clipped.
    assert set(np.round(out[v[:, 1] == np.float32(0.2), 1].astype(float), 6)) == {0.1, 0.5}
    assert set(out[v[:, 0] == 1, 0]) == {0, 2} and set(out[v[:, 0] == 2, 0]) <= {1, 2}
    assert set(out[v[:, 3] == 3, 3]) == {2, 4}  # 3 * 0.8 = 2.4 -> 2, 3 * 1.2 = 3.6 -> 4
    assert np.all(out[v[:, 4] == np.float32(1.9), 4] <= 2.0)  # 1.9 * 1.2 clipped to the bound


def test_resample_draws_fresh_values_with_its_probability():
    values = jnp.tile(jnp.asarray([[1, 0.2, 1e-3, 3, 0.5]], jnp.float32), (2000, 1))
    out = np.asarray(resample(jax.random.key(0), SPACE, values, 0.25))
    _inside(out)
    perturbed = np.isclose(out[:, 2], 8e-4) | np.isclose(out[:, 2], 1.2e-3)
    # A fresh log-uniform draw is within 1% of 8e-4 or 1.2e-3 with probability ~0.003: 25% +- 3% are fresh.
    assert 0.21 < 1 - perturbed.mean() < 0.29
    np.testing.assert_array_equal(resample(jax.random.key(0), SPACE, values, 0.0), perturb(
        jax.random.split(jax.random.key(0), 3)[0], SPACE, values))


def test_ready_changes_only_the_members_that_copied():
    rule = PBT(10, explore="resample")
    metrics = jnp.array([0.1, 0.9, 0.5, 0.7])
    values = jnp.asarray([[0, 0.1, 1e-4, 1, 0.0], [1, 0.2, 1e-3, 2, 1.0], [2, 0.5, 1e-2, 3, 2.0], [0, 0.1, 1e-1, 4, -1.0]])
    ready = jax.jit(lambda k, m, v: rule.ready(k, SPACE, m, v))(jax.random.key(3), metrics, values)
    assert np.asarray(ready.copied).tolist() == [True, False, False, False] and int(ready.source[0]) == 1
    np.testing.assert_array_equal(np.asarray(ready.values)[1:], np.asarray(values, np.float32)[1:])
    _inside(ready.values)


@pytest.mark.parametrize("kwargs, match", [
    (dict(ready_steps=0), "ready_steps must be an integer >= 1"),
    (dict(quantile=0.6), "quantile=0.6"),
    (dict(explore="pb3"), "Did you mean 'pb2'"),
    (dict(perturb_factors=(0.8, -1.0)), "perturb_factors"),
    (dict(resample_probability=1.5), "resample_probability=1.5"),
])
def test_bad_rules_get_clear_errors(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        PBT(**{"ready_steps": 10, **kwargs})


def test_pb2_proposes_where_the_improvement_was_largest_and_spreads_the_batch():
    space = {"lr": hx.LogSpace(1e-4, 1e-1), "wd": hx.LogSpace(1e-5, 1e-2)}
    rng = np.random.default_rng(0)
    rows = []
    for k in range(1, 4):  # three intervals of eight members; the improvement peaks at lr = 10**-2.5, any wd
        for _ in range(8):
            v = np.array([10 ** rng.uniform(-4, -1), 10 ** rng.uniform(-5, -2)])
            rows.append((k / 10, v, -abs(np.log10(v[0]) + 2.5) + 0.01 * rng.normal()))
    data = pb2_data(space, rows, capacity=64, time=0.4)
    assert int(data.valid.sum()) == 24 and data.X.shape == (64, 3)
    rule = PBT(10, explore="pb2", pb2=PB2(n_restarts=0, n_fit_steps=30))
    metrics = jnp.array([0.1, 0.9, 0.5, 0.7, 0.2, 0.8, 0.3, 0.6])  # members 0 and 4 copy
    values = jnp.tile(jnp.asarray([[1e-3, 1e-4]], jnp.float32), (8, 1))
    step = jax.jit(lambda k, m, v, d: rule.ready(k, space, m, v, d))  # one program for both calls
    ready = step(jax.random.key(0), metrics, values, data)
    proposed = np.asarray(ready.values)[np.asarray(ready.copied)]
    assert proposed.shape == (2, 2)
    assert np.all(np.abs(np.log10(proposed[:, 0]) + 2.5) < 0.5), proposed  # near the peak
    assert np.all((proposed[:, 1] >= np.float32(1e-5)) & (proposed[:, 1] <= np.float32(1e-2)))
    assert not np.allclose(proposed[0], proposed[1])  # the pending first choice pushes the second away
    # Too few observations: the parents are perturbed instead.
    few = pb2_data(space, rows[:3], capacity=64, time=0.4)
    ready = step(jax.random.key(0), metrics, values, few)
    ratios = np.asarray(ready.values)[np.asarray(ready.copied)] / np.asarray(values)[:2]
    assert np.all(np.isclose(ratios, 0.8) | np.isclose(ratios, 1.2) | np.isclose(ratios, 1.0))


def test_lineage_schedules_follow_the_ancestry():
    lineage = Lineage(3)
    cfg = lambda lr: {"lr": lr}  # noqa: E731
    lineage.record(0, (0, 10), [None] * 3, [cfg(1.0), cfg(2.0), cfg(3.0)], [0.5, 0.2, float("nan")])
    lineage.record(1, (10, 20), [None, None, 0], [cfg(1.0), cfg(2.0), cfg(1.2)], [0.6, 0.3, 0.7])
    lineage.record(2, (20, 25), [None, 2, None], [cfg(1.0), cfg(1.44), cfg(1.2)], [0.65, 0.9, 0.8])
    assert lineage.best() == 1 and lineage.best(maximize=False) == 0
    schedule = lineage.schedule(1)  # 1 copied 2 at 20, which had copied 0 at 10
    assert [e["member"] for e in schedule] == [0, 2, 1]
    assert [e["steps"] for e in schedule] == [[0, 10], [10, 20], [20, 25]]
    assert [e["params"]["lr"] for e in schedule] == [1.0, 1.2, 1.44]
    assert lineage.curve(1) == [[10, 0.5], [20, 0.7], [25, 0.9]]
    gains = lineage.improvements()
    assert [(k, p["lr"]) for k, p, _ in gains] == [(1, 1.0), (1, 2.0), (1, 1.2), (2, 1.0), (2, 1.44), (2, 1.2)]
    np.testing.assert_allclose([g for _, _, g in gains], [0.1, 0.1, 0.2, 0.05, 0.2, 0.1])  # from the parent
    restored = Lineage(3)
    restored.set_state(lineage.get_state())
    assert restored.schedule(1) == schedule and restored.metrics(0)[2] != restored.metrics(0)[2]  # NaN kept
