"""Batch strategies, pending points, mixed-space acquisition search and the relative PI threshold.

Strategies are run through ``BatchProblem`` directly on a small GP (a quadratic in 2-D observed at 12
points), each under one ``jax.jit``: tiny candidate sets and few L-BFGS steps keep compilations short.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import hyperoptax as hx
from hyperoptax import acqopt, base, gp
from hyperoptax import batch as bt
from hyperoptax import spaces as sp
from hyperoptax.errors import ConfigurationError

KERNEL = hx.Matern(nu=2.5)
PARAMS = gp.GPParams(jnp.log(jnp.array([0.3, 0.3])), jnp.array(0.0), jnp.array(-10.0), jnp.array(0.0))
N_OBS, P, M = 12, 4, 2  # observations, batch size, pending points


def _quadratic(U):
    return -jnp.sum((U - jnp.array([0.3, 0.6])) ** 2, axis=-1)


def _problem(key, pending=None, acquisition=hx.LogEI(), n_parallel=P, params=PARAMS):
    X = jax.random.uniform(key, (N_OBS, 2))
    z, _, _ = gp.standardize(_quadratic(X), jnp.ones(N_OBS, bool))
    pending = jnp.zeros((0, 2)) if pending is None else pending
    rows = N_OBS + pending.shape[0] + n_parallel
    U = jnp.zeros((rows, 2)).at[:N_OBS].set(X)
    valid = jnp.arange(rows) < N_OBS
    posterior = gp.condition(KERNEL, params, U, jnp.zeros(rows).at[:N_OBS].set(z), valid)

    def candidates(key, posterior):
        return jax.random.uniform(key, (64, 2))

    def find(score, key, posterior):
        return acqopt.maximize(score, candidates(key, posterior), 0, 0, lambda V: V)  # candidates only: compiles fast

    return bt.BatchProblem(
        kernel=KERNEL, jitter=1e-6, acquisition=acquisition, hallucination=hx.SampleHallucination(),
        posterior=posterior, y_best=jnp.max(z), first_free=jnp.asarray(N_OBS), pending=pending,
        pending_valid=jnp.ones(pending.shape[0], bool), n_parallel=n_parallel, find=find, candidates=candidates,
    )


STRATEGIES = [hx.KrigingBeliever(), hx.Fantasies(n_samples=8), hx.UCBPE(), hx.Thompson(), hx.Thompson(greedy_first=True),
              hx.Thompson(greedy_first=True, exploit=True, exploit_after=0), hx.Thompson(exploit=True, exploit_after=0),
              hx.Thompson(greedy_first=True, greedy_slots="sqrt", exploit=True, exploit_after=0),
              hx.LocalPenalization(), hx.BySize(threshold=P)]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: type(s).__name__)
def test_every_strategy_proposes_distinct_points_away_from_the_pending_ones(strategy, key):
    pending = jnp.array([[0.3, 0.6], [0.9, 0.1]])
    batch = jax.jit(lambda k: strategy.propose(_problem(jax.random.key(0), pending), k))(key)
    assert batch.shape == (P, 2) and bool(jnp.all(jnp.isfinite(batch)))
    assert bool(jnp.all((batch >= 0.0) & (batch <= 1.0)))
    points = np.concatenate([np.asarray(pending), np.asarray(batch)])
    d = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(len(points))
    assert d.min() >= bt.MIN_SPACING * 0.999, d


@pytest.mark.parametrize("n_parallel", [2, 3, 5])
def test_by_size_hands_the_batch_to_the_strategy_for_its_size(n_parallel, key):
    small, large = hx.Thompson(greedy_first=True), hx.Fantasies(n_samples=8)
    chosen, other = (small, large) if n_parallel < 3 else (large, small)
    run = lambda s: np.asarray(jax.jit(lambda k: s.propose(_problem(jax.random.key(0), n_parallel=n_parallel), k))(key))
    batch = run(hx.BySize(small, large, threshold=3))
    np.testing.assert_array_equal(batch, run(chosen))
    assert not np.array_equal(batch, run(other))
    with pytest.raises(ConfigurationError, match="threshold"):
        hx.BySize(threshold=0)


def test_fantasy_means_are_the_posterior_conditioned_on_each_fantasy(key):
    # Reference: condition the GP afresh on the observations plus the fantasized value at a new point.
    problem = _problem(jax.random.key(0))
    post = problem.posterior
    u = jnp.array([0.5, 0.5])
    grown = gp.append(KERNEL, post, u, 0.0, N_OBS)
    values = jnp.array([-1.0, 0.3, 2.0])
    residuals = jnp.broadcast_to(grown.residual, (3, grown.residual.shape[0])).at[:, N_OBS].set(values - PARAMS.mean)
    Xs = jax.random.uniform(key, (5, 2))
    means, std = gp.predict_fantasies(KERNEL, grown, gp.fantasy_alphas(grown, residuals), Xs)
    for i, v in enumerate(values):
        ref = gp.condition(KERNEL, PARAMS, grown.X, jnp.where(grown.valid, grown.residual + PARAMS.mean, 0.0)
                           .at[N_OBS].set(v), grown.valid)
        ref_mean, ref_std = gp.predict(KERNEL, ref, Xs)
        np.testing.assert_allclose(means[i], ref_mean, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(std, ref_std, rtol=1e-4, atol=1e-5)


def test_ucbpe_later_slots_lie_in_the_relevant_region(key):
    strategy = hx.UCBPE(kappa=2.0)
    problem = _problem(jax.random.key(1))
    batch = jax.jit(lambda k: strategy.propose(problem, k))(key)
    mean, std = gp.predict(KERNEL, problem.posterior, batch)
    cand = problem.candidates(jax.random.split(jax.random.split(key, 3)[1])[0], problem.posterior)
    m_all, s_all = gp.predict(KERNEL, problem.posterior, jnp.concatenate([cand, problem.posterior.X[:N_OBS]]))
    lower = float(jnp.max(m_all - 2.0 * s_all))
    assert bool(jnp.all(mean[1:] + 2.0 * std[1:] >= lower - 1e-4)), (mean + 2 * std, lower)


def test_thompson_draws_follow_the_mean_when_the_posterior_is_certain(key):
    # A tiny amplitude leaves the mean (it interpolates the data) and shrinks every draw onto it:
    # slot 0 takes the candidate with the best mean, up to a few posterior standard deviations.
    certain = PARAMS._replace(log_amplitude=jnp.array(-12.0), log_noise=jnp.array(-20.0))
    problem = _problem(jax.random.key(2), n_parallel=2, params=certain)
    batch = jax.jit(lambda k: hx.Thompson().propose(problem, k))(key)
    cand = problem.candidates(jax.random.split(key, 3)[1], problem.posterior)
    mean, std = gp.predict(KERNEL, problem.posterior, cand)
    chosen = int(jnp.argmin(jnp.sum((cand - batch[0]) ** 2, axis=1)))
    assert float(mean[chosen]) >= float(jnp.max(mean)) - 12 * float(jnp.max(std)), (mean[chosen], jnp.max(mean))


def test_thompson_draw_scale_scales_the_draws_deviations_from_the_mean(key):
    problem = _problem(jax.random.key(2))
    cand = jax.random.uniform(jax.random.key(3), (64, 2))
    mean, std = gp.predict(KERNEL, problem.posterior, cand)
    plain = bt._joint_draws(problem, problem.posterior, cand, key)
    half = bt._joint_draws(problem, problem.posterior, cand, key, 0.5)
    # Same noise, half the deviation: (half - mean) = (plain - mean) / 2, up to float32 rounding of the mean.
    np.testing.assert_allclose(half - mean, 0.5 * (plain - mean), atol=1e-4 * float(jnp.max(std)) + 1e-5)
    assert float(jnp.max(jnp.abs(plain - mean))) > 0.1 * float(jnp.max(std))  # the draws do deviate

    # A tiny scale leaves draws that all rank the candidates as the mean does: the draw slots take the best
    # means (slot 0 the best), where plain draws pick a candidate well below it.
    def first_draw(strategy):
        batch = jax.jit(lambda k: strategy.propose(problem, k))(key)
        C = problem.candidates(jax.random.split(key, 5)[1], problem.posterior)
        m, s = gp.predict(KERNEL, problem.posterior, C)
        return float(m[int(jnp.argmin(jnp.sum((C - batch[0]) ** 2, axis=1)))]), float(jnp.max(m)), float(jnp.max(s))

    chosen, best, spread = first_draw(hx.Thompson(draw_scale=1e-4))
    assert chosen >= best - 1e-3 * spread, (chosen, best)
    chosen, best, spread = first_draw(hx.Thompson())
    assert chosen < best - 1e-2 * spread, (chosen, best)
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ConfigurationError, match="draw_scale"):
            hx.Thompson(draw_scale=bad)


def test_thompson_greedy_first_slot_is_the_acquisition_maximizer(key):
    # On a fixed grid of candidates the first slot is the grid point of highest LogEI (the sequential
    # choice), whatever the key; the draws fill the other slots from the same grid.
    grid = jnp.stack(jnp.meshgrid(jnp.linspace(0, 1, 9), jnp.linspace(0, 1, 9)), -1).reshape(-1, 2)
    for n_parallel in (4, 1):  # one slot: the sequential step alone
        problem = dataclasses.replace(
            _problem(jax.random.key(3), n_parallel=n_parallel), candidates=lambda k, post: grid,
            find=lambda score, k, post: acqopt.maximize(score, grid, 0, 0, lambda V: V))
        batch = jax.jit(lambda k: hx.Thompson(greedy_first=True).propose(problem, k))(key)
        assert batch.shape == (n_parallel, 2)
        mean, std = gp.predict(KERNEL, problem.posterior, grid)
        np.testing.assert_array_equal(batch[0], grid[jnp.argmax(hx.LogEI()(mean, std, problem.y_best))])
        assert all(bool(jnp.any(jnp.all(grid == u, axis=1))) for u in batch[1:])


def test_thompson_greedy_slots_add_q_logei_slots_after_the_first(key):
    # "sqrt": ceil(sqrt(q)) searched slots, never more than the batch; without greedy_first none.
    sqrt = hx.Thompson(greedy_first=True, greedy_slots="sqrt", exploit=True, exploit_after=0)
    assert [sqrt.n_greedy(q) for q in (1, 2, 4, 5, 8, 9, 15, 16)] == [1, 2, 2, 3, 3, 3, 4, 4]
    assert hx.Thompson(greedy_first=True, greedy_slots=3).n_greedy(2) == 2
    assert hx.Thompson(greedy_slots=3).n_greedy(8) == 0
    grid = jnp.stack(jnp.meshgrid(jnp.linspace(0, 1, 9), jnp.linspace(0, 1, 9)), -1).reshape(-1, 2)

    def on_grid(n_parallel, **fields):
        return dataclasses.replace(_problem(jax.random.key(3), n_parallel=n_parallel, **fields),
                                   candidates=lambda k, post: grid,
                                   find=lambda score, k, post: acqopt.maximize(score, grid, 0, 0, lambda V: V))

    one = hx.Thompson(greedy_first=True, exploit=True, exploit_after=0)
    for fields in ({}, {"pending": jnp.array([[0.3, 0.6]])}):
        # One slot: exactly the sequential step of one greedy slot (the preset's sequential search is unchanged).
        problem = on_grid(1, **fields)
        np.testing.assert_array_equal(jax.jit(lambda k: sqrt.propose(problem, k))(key),
                                      jax.jit(lambda k: one.propose(problem, k))(key))
        # Four slots: the acquisition's maximizer, then q-LogEI's (Fantasies' choice with the first slot
        # pending), then the mean's maximizer away from both, then a draw; all distinct grid points.
        problem = on_grid(4, **fields)
        batch = jax.jit(lambda k: sqrt.propose(problem, k))(key)
        np.testing.assert_array_equal(batch[0], jax.jit(lambda k: one.propose(problem, k))(key)[0])
        second = jax.jit(lambda k: hx.Fantasies().propose(problem.after(batch[:1], 1), jax.random.fold_in(k, 2)))(key)
        np.testing.assert_array_equal(batch[1], second[0])
        mean, _ = gp.predict(KERNEL, problem.posterior, grid)
        taken = jnp.any(jnp.all(grid[:, None] == batch[None, :2], axis=-1), axis=1)
        np.testing.assert_array_equal(batch[2], grid[jnp.argmax(jnp.where(taken, -jnp.inf, mean))])
        assert len({tuple(np.asarray(u).tolist()) for u in batch}) == 4
        assert all(bool(jnp.any(jnp.all(grid == u, axis=1))) for u in batch)
    for bad in (0, -2, "half", 1.5):
        with pytest.raises(ConfigurationError, match="greedy_slots"):
            hx.Thompson(greedy_first=True, greedy_slots=bad)


def test_thompson_exploit_slot_is_the_posterior_mean_maximizer(key):
    # On a fixed grid: slot 0 is the grid point of highest LogEI, slot 1 the grid point of highest posterior
    # mean other than slot 0, the draws fill the rest from the grid; two slots are the two searches alone,
    # one slot the acquisition's choice alone (the sequential step).
    grid = jnp.stack(jnp.meshgrid(jnp.linspace(0, 1, 9), jnp.linspace(0, 1, 9)), -1).reshape(-1, 2)
    for n_parallel in (4, 2, 1):
        problem = dataclasses.replace(
            _problem(jax.random.key(3), n_parallel=n_parallel), candidates=lambda k, post: grid,
            find=lambda score, k, post: acqopt.maximize(score, grid, 0, 0, lambda V: V))
        strategy = hx.Thompson(greedy_first=True, exploit=True, exploit_after=0)
        batch = jax.jit(lambda k: strategy.propose(problem, k))(key)
        assert batch.shape == (n_parallel, 2)
        mean, std = gp.predict(KERNEL, problem.posterior, grid)
        first = int(jnp.argmax(hx.LogEI()(mean, std, problem.y_best)))
        np.testing.assert_array_equal(batch[0], grid[first])
        if n_parallel > 1:
            np.testing.assert_array_equal(batch[1], grid[int(jnp.argmax(mean.at[first].set(-jnp.inf)))])
        assert all(bool(jnp.any(jnp.all(grid == u, axis=1))) for u in batch[2:])
    # Without the greedy slot the mean's maximizer comes first.
    problem = dataclasses.replace(
        _problem(jax.random.key(3), n_parallel=3), candidates=lambda k, post: grid,
        find=lambda score, k, post: acqopt.maximize(score, grid, 0, 0, lambda V: V))
    batch = jax.jit(lambda k: hx.Thompson(exploit=True, exploit_after=0).propose(problem, k))(key)
    mean, _ = gp.predict(KERNEL, problem.posterior, grid)
    np.testing.assert_array_equal(batch[0], grid[jnp.argmax(mean)])


def test_thompson_exploit_slot_waits_for_ten_observations_per_dimension(key):
    # 12 observations in 2-D: below exploit_after * 2 the batch is exactly the one without the exploit slot,
    # from that many on exactly the one that always has it -- one compiled program deciding on the count.
    problem = _problem(jax.random.key(5), pending=jnp.array([[0.3, 0.6]]))

    def batch(strategy, n_obs):
        return np.asarray(jax.jit(lambda k: strategy.propose(dataclasses.replace(problem, first_free=n_obs), k))(key))

    without = batch(hx.Thompson(greedy_first=True), N_OBS)
    always = batch(hx.Thompson(greedy_first=True, exploit=True, exploit_after=0), N_OBS)
    assert not np.array_equal(without, always)
    np.testing.assert_array_equal(batch(hx.Thompson(greedy_first=True, exploit=True), N_OBS), without)  # 12 < 20
    np.testing.assert_array_equal(batch(hx.Thompson(greedy_first=True, exploit=True, exploit_after=6), N_OBS), always)
    np.testing.assert_array_equal(batch(hx.Thompson(greedy_first=True, exploit=True, exploit_after=6.5), N_OBS), without)
    with pytest.raises(ConfigurationError, match="exploit_after"):
        hx.Thompson(exploit=True, exploit_after=-1)


def test_thompson_exploit_fills_a_batch_of_64_from_one_candidate_set(key):
    # 62 draws share one factor of the 64 candidates' covariance: every slot is a distinct candidate.
    problem = _problem(jax.random.key(4), n_parallel=64)
    batch = jax.jit(lambda k: hx.Thompson(greedy_first=True, exploit=True, exploit_after=0).propose(problem, k))(key)
    assert batch.shape == (64, 2) and bool(jnp.all(jnp.isfinite(batch)))
    d = np.linalg.norm(np.asarray(batch)[:, None] - np.asarray(batch)[None], axis=-1) + np.eye(64)
    assert d.min() >= bt.MIN_SPACING * 0.999


def test_relative_improvement_threshold_hand_computed():
    mean, std = jnp.array([0.3, 1.5, 2.5]), jnp.array([0.5, 1.0, 0.2])
    pi = hx.PI(xi=0.01)
    for y_max in (0.02, 2.0, -3.0):
        got = hx.acquisition.RelativeImprovement(pi, 0.2)(mean, std, y_max)
        threshold = y_max + max(0.01, 0.2 * abs(y_max))
        np.testing.assert_allclose(got, stats.norm.cdf((np.asarray(mean) - threshold) / np.asarray(std)), rtol=1e-5)
    # averaged over fantasies: each fantasy's own incumbent gets its own threshold
    means = jnp.stack([mean, mean + 1.0])
    y = jnp.array([[1.0], [2.0]])
    got = hx.acquisition.RelativeImprovement(pi, 0.2).average_over_samples(means, std, y)
    ref = 0.5 * (stats.norm.cdf((mean - 1.2) / std) + stats.norm.cdf((mean + 1.0 - 2.4) / std))
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_bayesian_search_applies_the_relative_threshold_to_pi_only():
    assert hx.BayesianSearch().search_acquisition == hx.acquisition.RelativeImprovement(hx.PI(0.01), 0.2)
    assert hx.BayesianSearch(pi_relative=0.0).search_acquisition == hx.PI(0.01)
    assert hx.BayesianSearch(acquisition=hx.LogEI()).search_acquisition == hx.LogEI()
    with pytest.raises(hx.errors.ConfigurationError, match="pi_relative"):
        hx.BayesianSearch(pi_relative=-1.0)
    with pytest.raises(hx.errors.ConfigurationError, match="batch"):
        hx.BayesianSearch(batch="fantasies")


# --------------------------------------------------------------------------
# Mixed spaces: tied category length scales, discrete moves
# --------------------------------------------------------------------------

MIXED = {"opt": hx.DiscreteSpace(["a", "b", "c"]), "n": hx.QLinearSpace(1, 5), "lr": hx.LogSpace(1e-3, 1e-1),
         "w": hx.DiscreteSpace([8, 16, 32, 64])}


def test_coordinate_groups_and_discrete_neighbors():
    # leaves in key order: lr (1 coordinate), n (1), opt (3, one-hot), w (1, by rank)
    np.testing.assert_array_equal(sp.coordinate_groups(MIXED), [0, 1, 2, 2, 2, 3])
    assert sp.has_discrete(MIXED) and not sp.has_discrete({"x": hx.LinearSpace(0.0, 1.0)})
    X = jnp.array([[1e-2, 3, 1, 16]], jnp.float32)
    u = sp.encode(MIXED, X)[0]
    moves = np.asarray(sp.decode(MIXED, sp.discrete_neighbors(MIXED, u)))
    # 4 integer moves (n = 1, 2, 4, 5), 3 category moves (opt = a, b, c), 4 rank moves (w clipped to 8..64)
    assert moves.shape == (11, 4)
    np.testing.assert_allclose(moves[:, 0], 1e-2, rtol=1e-5)  # the continuous value never moves
    assert sorted(moves[:4, 1].tolist()) == [1, 2, 4, 5]
    assert moves[4:7, 2].tolist() == [0, 1, 2]
    assert sorted(moves[7:, 3].tolist()) == [8, 8, 32, 64]


def test_acquisition_search_reaches_categories_and_integers_no_candidate_has():
    target = jnp.array([[5e-3, 4, 2, 64]], jnp.float32)
    u_target = sp.encode(MIXED, target)[0]
    score = lambda V: -jnp.sum((V - u_target) ** 2, axis=-1)
    start = sp.encode(MIXED, jnp.array([[1e-2, 2, 0, 16]], jnp.float32))  # wrong category, integer, rank
    free = jnp.asarray(~sp.categorical_dims(MIXED))
    best = acqopt.maximize(score, start, 1, 10, lambda V: sp.snap(MIXED, V), free=free,
                           neighbors=lambda u: sp.discrete_neighbors(MIXED, u))
    np.testing.assert_allclose(sp.decode(MIXED, best[None])[0], target[0], rtol=1e-3)


@pytest.mark.parametrize("n_edges", [6, 12])
def test_discrete_moves_continue_until_no_restart_improves(n_edges):
    # Each move can fix one category: from a start that matches none, the search needs one round per
    # category, and stops after _MAX_DISCRETE_SWEEPS rounds however many remain.
    space = {f"e{i}": hx.DiscreteSpace(["zero", "skip", "linear", "relu", "tanh"]) for i in range(n_edges)}
    target = jnp.asarray([[1 + i % 4 for i in range(n_edges)]], jnp.float32)  # never the start's 0
    u_target = sp.encode(space, target)[0]
    score = lambda V: V @ u_target  # the number of categories that match
    start = sp.encode(space, jnp.zeros((1, n_edges), jnp.float32))
    best = acqopt.maximize(score, start, 1, 0, lambda V: sp.snap(space, V),
                           free=jnp.asarray(~sp.categorical_dims(space)),
                           neighbors=lambda u: sp.discrete_neighbors(space, u))
    assert float(score(start)[0]) == 0.0
    assert float(score(best[None])[0]) == min(n_edges, acqopt._MAX_DISCRETE_SWEEPS)


def test_l_bfgs_leaves_the_coordinates_that_are_not_free():
    score = lambda V: -jnp.sum((V - 0.7) ** 2, axis=-1)
    start = jnp.array([[0.1, 0.2, 0.3]])
    best = acqopt.maximize(score, start, 1, 10, lambda V: V, free=jnp.array([True, False, True]))
    np.testing.assert_allclose(best, [0.7, 0.2, 0.7], atol=1e-3)


def test_tied_fit_shares_a_category_length_scale_and_counts_it_once(key):
    model = gp.GPModel(KERNEL, tied=(0, 1, 1, 1))
    X = jax.random.uniform(key, (10, 4))
    y = jnp.sin(3 * X[:, 0])
    valid = jnp.ones(10, bool)
    init = model.init_params(4)
    fitted = gp.fit_hyperparameters(model, X, y, valid, init, 10)
    ls = np.asarray(fitted.gp.log_length_scale)
    np.testing.assert_allclose(ls[1:], ls[1], rtol=1e-6)
    # the objective is the untied one at the tied parameters, with the prior over 2 dimensions, not 4
    params = init._replace(gp=init.gp._replace(log_length_scale=jnp.array([0.1, 0.5, 0.5, 0.5])))
    z, _ = model.targets(params, y, valid)
    untied = gp.neg_log_marginal_likelihood(params.gp, KERNEL, X, z, valid, 1e-6)
    prior = gp.GPPrior().log_prob(params.gp._replace(log_length_scale=jnp.array([0.1, 0.5])))
    np.testing.assert_allclose(model.objective(params, X, z, valid), untied - prior, rtol=1e-5)


@pytest.mark.slow
def test_preset_fills_batches_of_64_and_compiles_once(key):
    # The preset's strategy end to end at a population's size (Fantasies from 16 points): distinct points
    # in the space, every step compiled once (the first batch is random, the next two come from the GP).
    space = {"x": hx.LinearSpace(-2.0, 2.0), "y": hx.LinearSpace(-2.0, 2.0)}
    small = dict(n_candidates=96, n_restarts=1, n_lbfgs_steps=3, n_hparam_steps=5)
    state, opt = hx.BayesianSearch.init(space, n_max=192, **{**hx.RECOMMENDED, **small}, n_parallel=64)
    assert opt.batch == hx.BySize(hx.Thompson(greedy_first=True, greedy_slots="sqrt", exploit=True), hx.Fantasies(), threshold=16)
    loss = lambda k, p: (p["x"] - 0.5) ** 2 + (p["y"] + 0.3) ** 2
    state, _ = opt.optimize(state, key, loss, n_iterations=2)
    before = base.compile_count()
    params = opt.get_next_params(state, jax.random.key(5))
    state = opt.update_state(state, jax.random.key(6), jax.vmap(loss, (None, 0))(None, params), params)
    assert base.compile_count() == before
    X = np.stack([np.asarray(params["x"]), np.asarray(params["y"])], 1)
    assert X.shape == (64, 2) and np.all(np.abs(X) <= 2.0)
    d = np.linalg.norm(X[:, None] - X[None], axis=-1) + np.eye(64)
    assert d.min() >= 4.0 * bt.MIN_SPACING * 0.999  # the unit cube's spacing, in a range of 4
    assert int(state.mask.sum()) == 192
