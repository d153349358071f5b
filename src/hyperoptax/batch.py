"""Batch strategies: how :class:`~hyperoptax.BayesianSearch` fills the ``n_parallel`` slots of a batch.

A strategy gets a :class:`BatchProblem` -- the GP conditioned on the
observations, the incumbent, the configurations still being evaluated
(``pending``) and the acquisition search -- and returns the batch. Pending
points are treated like the batch's own earlier members: believed,
fantasized or explored around, depending on the strategy.

* :class:`KrigingBeliever` -- slot by slot, the chosen point gets a
  hallucinated observation (the documented behaviour).
* :class:`Fantasies` -- greedy q-LogEI (or q-EI, q-PI: the search's
  acquisition) by Monte Carlo: each slot maximizes the acquisition averaged
  over ``n_samples`` fantasies, joint posterior draws at the batch's earlier
  points (BoTorch's qLogNEI built slot by slot, Ament et al. 2023).
* :class:`UCBPE` -- GP-UCB-PE (Contal et al. 2013): the first slot maximizes the
  acquisition, the others the posterior variance (given the earlier slots)
  inside the region where the upper confidence bound reaches the best lower
  bound.
* :class:`Thompson` -- parallel Thompson sampling (Kandasamy et al. 2018):
  each slot is the maximizer of its own joint posterior draw over one shared
  candidate set; one Cholesky factor serves every slot, so batches of 64
  cost little more than batches of 4. Optionally behind searched slots: the
  acquisition's maximizer (``greedy_first``) and the posterior mean's
  maximizer (``exploit``), which refine the incumbent as no draw over a
  discrete candidate set does; ``greedy_slots`` searches more leading slots,
  each for q-LogEI given the earlier ones. The preset's below 16 points is
  ``Thompson(greedy_first=True, greedy_slots="sqrt", exploit=True)``.
* :class:`LocalPenalization` -- González et al. (2016): each slot maximizes
  the acquisition times a penalty around the earlier slots, whose radius comes
  from a Lipschitz constant of the posterior mean. No GP update per slot.
* :class:`BySize` -- one strategy for small batches, another for large ones.
  The preset is ``BySize(Thompson(greedy_first=True, greedy_slots="sqrt",
  exploit=True), Fantasies(), threshold=16)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from hyperoptax import acquisition as acq
from hyperoptax import gp
from hyperoptax import kernels
from hyperoptax.errors import ConfigurationError, check_positive_int

__all__ = [
    "BatchProblem",
    "BatchStrategy",
    "KrigingBeliever",
    "Fantasies",
    "UCBPE",
    "Thompson",
    "LocalPenalization",
    "BySize",
]

# Smallest unit-cube distance between two points of one batch (or a batch point and a pending one).
MIN_SPACING = 1e-3


@dataclasses.dataclass(frozen=True)
class BatchProblem:
    """What a strategy works with; built inside the jitted step.

    Attributes:
        kernel, jitter: the GP's covariance and diagonal jitter.
        acquisition: the search's acquisition (maximized, standardized targets).
        hallucination: the search's Kriging-Believer value for a chosen point.
        posterior: the GP conditioned on the observations; rows from
            ``first_free`` on are free: ``m`` for the pending points, then
            ``n_parallel`` for the batch.
        y_best: the incumbent (best standardized observation).
        first_free: the first free row.
        pending: ``(m, D)`` unit-cube points being evaluated; ``pending_valid``
            ``(m,)`` marks the real ones.
        n_parallel: the batch size.
        find: ``find(score, key, posterior) -> (D,)``: the acquisition search
            (random and local candidates, L-BFGS, discrete moves) for a score
            ``(k, D) -> (k,)``, higher is better.
        candidates: ``candidates(key, posterior) -> (c, D)``: the search's
            candidate set (random and around the best observations), snapped.
    """

    kernel: kernels.BaseKernel
    jitter: float
    acquisition: acq.BaseAcquisition
    hallucination: Callable
    posterior: gp.Posterior
    y_best: jax.Array
    first_free: jax.Array
    pending: jax.Array
    pending_valid: jax.Array
    n_parallel: int
    find: Callable
    candidates: Callable

    @property
    def n_pending(self) -> int:
        return self.pending.shape[0]

    def slot(self, j):
        """Row of the batch's ``j``-th point."""
        return self.first_free + self.n_pending + j

    def avoid(self):
        """``(points, valid)``: room for every point a slot must keep away from (pending, then the batch)."""
        points = jnp.concatenate([self.pending, jnp.zeros((self.n_parallel, self.pending.shape[1]), self.pending.dtype)])
        valid = jnp.concatenate([self.pending_valid, jnp.zeros(self.n_parallel, bool)])
        return points, valid

    def after(self, points, n_parallel=None):
        """The problem of the next slots once the batch's first points ``(k, D)`` are chosen: they are pending.

        ``n_parallel``: how many slots it fills (default: all that are left).
        """
        k = points.shape[0]
        return dataclasses.replace(
            self,
            pending=jnp.concatenate([self.pending, points]),
            pending_valid=jnp.concatenate([self.pending_valid, jnp.ones(k, bool)]),
            n_parallel=self.n_parallel - k if n_parallel is None else n_parallel,
        )

    def keep(self, avoid, j, u):
        """``avoid`` with the batch's ``j``-th point ``u`` added."""
        points, valid = avoid
        i = self.n_pending + j
        return points.at[i].set(u), valid.at[i].set(True)

    def believe_at_mean(self, posterior, j, u):
        """``posterior`` with the batch's ``j``-th point ``u`` appended at its posterior mean."""
        mean, _ = gp.predict(self.kernel, posterior, u[None])
        return gp.append(self.kernel, posterior, u, mean[0], self.slot(j), self.jitter)

    def spaced(self, values, V, avoid):
        """``values`` of points ``V (k, D)``, ``-inf`` within :data:`MIN_SPACING` of a point to avoid."""
        points, valid = avoid
        d2 = jnp.sum((V[:, None, :] - points[None, :, :]) ** 2, axis=-1)
        return jnp.where(jnp.any((d2 < MIN_SPACING**2) & valid[None, :], axis=1), -jnp.inf, values)

    def believe_pending(self, posterior, y_best, key, hallucinate):
        """The posterior with every pending point appended at a hallucinated value (and the incumbent)."""

        def one(carry, inputs):
            posterior, y_best = carry
            u, valid, i, k = inputs
            mean, std = gp.predict(self.kernel, posterior, u[None])
            y_fake = hallucinate(mean, std, k, y_best)
            grown = gp.append(self.kernel, posterior, u, y_fake, self.first_free + i, self.jitter)
            posterior = jax.tree.map(lambda a, b: jnp.where(valid, a, b), grown, posterior)
            return (posterior, jnp.where(valid, jnp.maximum(y_best, y_fake), y_best)), None

        if self.n_pending == 0:
            return posterior, y_best
        keys = jax.random.split(key, self.n_pending)
        inputs = (self.pending, self.pending_valid, jnp.arange(self.n_pending), keys)
        (posterior, y_best), _ = jax.lax.scan(one, (posterior, y_best), inputs)
        return posterior, y_best


@dataclasses.dataclass(frozen=True)
class BatchStrategy:
    """Base class: ``propose(problem, key) -> (n_parallel, D)`` unit-cube points."""

    def propose(self, problem: BatchProblem, key: jax.Array) -> jax.Array:
        raise NotImplementedError


def _mean_hallucination(mean, std, key, y_max):
    return mean[0]


@dataclasses.dataclass(frozen=True)
class KrigingBeliever(BatchStrategy):
    """Slot by slot: maximize the acquisition, then believe a hallucinated value at the chosen point.

    ``hallucination`` (None: the search's ``hallucination`` field) picks the
    value; a believed value above the incumbent becomes the incumbent, or the
    next slot would pick the same point again for its apparent improvement.
    """

    hallucination: acq.BaseHallucination | None = None

    def propose(self, problem, key):
        hallucinate = self.hallucination or problem.hallucination
        k_pending, k_slots = jax.random.split(key)
        posterior, y_best = problem.believe_pending(problem.posterior, problem.y_best, k_pending, hallucinate)

        def fill_slot(carry, j):
            posterior, y_best, avoid, key = carry
            key, k_find, k_acq, k_hal = jax.random.split(key, 4)

            def score(V):
                mean, std = gp.predict(problem.kernel, posterior, V)
                return problem.spaced(problem.acquisition(mean, std, y_best, key=k_acq), V, avoid)

            u = problem.find(score, k_find, posterior)
            mean, std = gp.predict(problem.kernel, posterior, u[None])
            y_fake = hallucinate(mean, std, k_hal, y_best)
            posterior = gp.append(problem.kernel, posterior, u, y_fake, problem.slot(j), problem.jitter)
            avoid = problem.keep(avoid, j, u)
            return (posterior, jnp.maximum(y_best, y_fake), avoid, key), u

        _, batch = jax.lax.scan(fill_slot, (posterior, y_best, problem.avoid(), k_slots), jnp.arange(problem.n_parallel))
        return batch


@dataclasses.dataclass(frozen=True)
class Fantasies(BatchStrategy):
    """Greedy batch q-acquisition by Monte Carlo over ``n_samples`` fantasized batches.

    Each fantasy draws the latent values at the pending points and at the
    batch's earlier slots jointly from the posterior (one draw after another,
    each conditioned on the fantasy's earlier draws); its incumbent is the
    better of the real one and its draws. A slot maximizes the acquisition
    averaged over the fantasies (:meth:`~hyperoptax.acquisition.BaseAcquisition.average_over_samples`:
    the log of the mean EI for LogEI). With LogEI this is q-LogEI maximized one
    slot at a time (the new point's own randomness integrated exactly), BoTorch's
    sequential greedy qLogNEI; with one slot and nothing pending it is the
    sequential acquisition.
    """

    n_samples: int = 32

    def __post_init__(self):
        check_positive_int("n_samples", self.n_samples)

    def propose(self, problem, key):
        S = self.n_samples
        posterior = problem.posterior
        fantasies = jnp.broadcast_to(posterior.residual, (S, posterior.residual.shape[0]))
        y_best = jnp.full((S,), problem.y_best)

        def draw(carry, u, slot, valid, k):
            """Every fantasy's latent value at ``u``, appended at row ``slot`` (if ``valid``)."""
            posterior, fantasies, y_best = carry
            alphas = gp.fantasy_alphas(posterior, fantasies)
            means, std = gp.predict_fantasies(problem.kernel, posterior, alphas, u[None])
            f = means[:, 0] + std[0] * jax.random.normal(k, (S,), means.dtype)
            grown = gp.append(problem.kernel, posterior, u, jnp.mean(f), slot, problem.jitter)
            posterior = jax.tree.map(lambda a, b: jnp.where(valid, a, b), grown, posterior)
            fantasies = jnp.where(valid, fantasies.at[:, slot].set(f - posterior.params.mean), fantasies)
            return posterior, fantasies, jnp.where(valid, jnp.maximum(y_best, f), y_best)

        def pending_step(carry, inputs):
            u, valid, i, k = inputs
            return draw(carry, u, problem.first_free + i, valid, k), None

        k_pending, k_slots = jax.random.split(key)
        carry = (posterior, fantasies, y_best)
        if problem.n_pending:
            inputs = (problem.pending, problem.pending_valid, jnp.arange(problem.n_pending),
                      jax.random.split(k_pending, problem.n_pending))
            carry, _ = jax.lax.scan(pending_step, carry, inputs)

        def fill_slot(carry, j):
            (posterior, fantasies, y_best), avoid, key = carry
            key, k_find, k_acq, k_draw = jax.random.split(key, 4)
            alphas = gp.fantasy_alphas(posterior, fantasies)

            def score(V):
                means, std = gp.predict_fantasies(problem.kernel, posterior, alphas, V)
                value = problem.acquisition.average_over_samples(means, std, y_best[:, None], key=k_acq)
                return problem.spaced(value, V, avoid)

            u = problem.find(score, k_find, posterior)
            state = draw((posterior, fantasies, y_best), u, problem.slot(j), True, k_draw)
            return (state, problem.keep(avoid, j, u), key), u

        _, batch = jax.lax.scan(fill_slot, (carry, problem.avoid(), k_slots), jnp.arange(problem.n_parallel))
        return batch


@dataclasses.dataclass(frozen=True)
class UCBPE(BatchStrategy):
    """GP-UCB-PE: the acquisition's maximizer, then pure exploration in the relevant region.

    The region is where ``mean + kappa * std`` reaches the best ``mean - kappa *
    std`` (over the candidates and the observations), both from the posterior
    before the batch; a later slot maximizes the posterior standard deviation
    given the earlier slots and the pending points (which need no values).
    Points outside the region are penalized by how far their bound falls short.
    """

    kappa: float = 2.0

    def __post_init__(self):
        if not self.kappa > 0:
            raise ConfigurationError(f"UCBPE: kappa must be > 0, got {self.kappa!r}.")

    def propose(self, problem, key):
        k_pending, k_region, k_slots = jax.random.split(key, 3)
        posterior, y_best = problem.believe_pending(problem.posterior, problem.y_best, k_pending, _mean_hallucination)
        before = posterior
        mean, std = gp.predict(problem.kernel, before, problem.candidates(k_region, before))
        data_mean, data_std = gp.predict(problem.kernel, before, before.X)
        lower = jnp.maximum(jnp.max(mean - self.kappa * std),
                            jnp.max(jnp.where(before.valid, data_mean - self.kappa * data_std, -jnp.inf)))

        def fill_slot(carry, j):
            posterior, avoid, key = carry
            key, k_find, k_acq = jax.random.split(key, 3)

            def exploit(V):
                mean, std = gp.predict(problem.kernel, posterior, V)
                return problem.acquisition(mean, std, y_best, key=k_acq)

            def explore(V):
                mean0, std0 = gp.predict(problem.kernel, before, V)
                _, std = gp.predict(problem.kernel, posterior, V)
                shortfall = jnp.maximum(lower - (mean0 + self.kappa * std0), 0.0)
                return std - 10.0 * shortfall

            def score(V):
                return problem.spaced(jnp.where(j == 0, exploit(V), explore(V)), V, avoid)

            u = problem.find(score, k_find, posterior)
            posterior = problem.believe_at_mean(posterior, j, u)
            return (posterior, problem.keep(avoid, j, u), key), u

        _, batch = jax.lax.scan(fill_slot, (posterior, problem.avoid(), k_slots), jnp.arange(problem.n_parallel))
        return batch


@dataclasses.dataclass(frozen=True)
class Thompson(BatchStrategy):
    """Parallel Thompson sampling over one candidate set, behind up to two searched slots.

    ``n_parallel`` joint posterior draws of the latent function over the
    search's candidates (random and around the best observations); slot ``j``
    takes draw ``j``'s best candidate not yet in the batch nor next to a pending
    point. The posterior is first conditioned on the pending points at their
    mean (their values are unknown, but their neighbourhood is no longer), so
    draws rarely pick what is already running.

    ``greedy_first``: the first slot is instead the acquisition's maximizer
    (the full acquisition search, as a sequential step would choose), and the
    draws fill the others.

    ``greedy_slots`` (with ``greedy_first``): how many leading slots are searched
    for the acquisition, an int or ``"sqrt"`` (``ceil(sqrt(n_parallel))``: 2 of
    4, 3 of 8). After the first, each maximizes q-LogEI over fantasies of the
    earlier ones and the pending points (:class:`Fantasies`' slots), so the
    batch holds several refining moves a sequential search would make, not one.
    The draws see these slots believed at their mean, as they see pending
    points. Measured in ``benchmarks/RESULTS.md`` (100 seeds, ``"sqrt"`` against
    one greedy slot, both with ``exploit``): lower regret on all four test
    functions at 4 and 8 but Hartmann-3 at 4 (level), most on Levy-4 and
    Hartmann-6 (per-seed geometric mean ratios 0.53-0.67, Wilcoxon p = 0.002-0.063).

    ``exploit``: the next slot is the maximizer of the posterior mean (the same
    search, L-BFGS included), the point the model believes best. A draw's best
    candidate is only as precise as the candidate set and the posterior's spread
    near the optimum allow, and the acquisition's maximizer often explores
    elsewhere late in a search: without this slot no point of the batch refines
    the incumbent (measured in ``benchmarks/RESULTS.md``). With ``exploit`` the
    draws also see the searched slots as they see pending points, believed at
    their mean, so they look away from them.

    ``exploit_after``: observations per unit-cube dimension the model needs
    before the exploit slot is used (0: always); until then that slot is one
    more draw, exactly as without ``exploit``. The posterior mean is a
    trustworthy guess of the optimum's place only once a GP has about ten
    points per dimension (the ``n = 10 d`` rule of Loeppky et al. 2009); before
    that its maximizer is the best observation's neighbourhood, and a slot spent
    there early costs the exploration a short or noisy search cannot spare
    (measured in ``benchmarks/RESULTS.md``: the slot's gains on the test
    functions all come after ``10 d`` observations, its losses on a noisy
    24-evaluation problem before).

    ``draw_scale``: the draws' deviations from the posterior mean are multiplied
    by this (tempered Thompson sampling). 1 is Thompson sampling; below 1 the
    draws stay nearer the mean and spend fewer slots far from the incumbent.
    Measured at 0.5 behind the preset's two searched slots (``benchmarks/RESULTS.md``,
    60 seeds): Branin in batches of 4 and 8 4.9e-5 and 1.5e-4 against 1.3e-4
    and 7.0e-4 (Mann-Whitney p = 0.006 and 0.010), Hartmann-3 and -6 level,
    Levy-4 mixed; not the preset's yet.

    The preset uses ``Thompson(greedy_first=True, greedy_slots="sqrt",
    exploit=True)`` for batches of fewer than 16 points (:class:`BySize`); with
    one slot it is the sequential step alone. Each searched slot costs one
    acquisition search (over fantasies after the first); the draws cost one
    Cholesky factor of the candidate set, whatever the batch size.
    """

    greedy_first: bool = False
    greedy_slots: int | str = 1
    exploit: bool = False
    exploit_after: float = 10.0
    draw_scale: float = 1.0

    def __post_init__(self):
        if not (self.greedy_slots == "sqrt" or (isinstance(self.greedy_slots, int) and self.greedy_slots >= 1)):
            raise ConfigurationError(
                f"Thompson: greedy_slots must be a positive int or 'sqrt' (ceil(sqrt(n_parallel)) slots), got "
                f"{self.greedy_slots!r}."
            )
        if not self.exploit_after >= 0:
            raise ConfigurationError(
                f"Thompson: exploit_after must be >= 0 (observations per dimension), got {self.exploit_after!r}."
            )
        if not 0 < self.draw_scale < math.inf:
            raise ConfigurationError(
                f"Thompson: draw_scale must be a positive number (1: Thompson sampling; below 1 the draws stay "
                f"nearer the posterior mean), got {self.draw_scale!r}."
            )

    def propose(self, problem, key):
        k_pending, k_cand, k_draw, k_first, k_acq = jax.random.split(key, 5)
        k_mean = jax.random.fold_in(key, 1)  # beside the others: the slots without it keep their keys
        posterior, y_best = problem.believe_pending(problem.posterior, problem.y_best, k_pending, _mean_hallucination)

        def search(value, key, avoid):
            """The point maximizing ``value(mean, std)``, kept apart from ``avoid``."""

            def score(V):
                mean, std = gp.predict(problem.kernel, posterior, V)
                return problem.spaced(value(mean, std), V, avoid)

            return problem.find(score, key, posterior)

        avoid, searched = problem.avoid(), []
        if self.greedy_first:
            u = search(lambda mean, std: problem.acquisition(mean, std, y_best, key=k_acq), k_first, avoid)
            avoid, searched = problem.keep(avoid, 0, u), [u]
            n_more = self.n_greedy(problem.n_parallel) - 1
            if n_more:  # q-LogEI given the first slot and the pending points (Fantasies' slots)
                more = Fantasies().propose(problem.after(u[None], n_more), jax.random.fold_in(key, 2))
                for j in range(n_more):
                    avoid = problem.keep(avoid, 1 + j, more[j])
                searched += list(more)
        if len(searched) == problem.n_parallel:
            return jnp.stack(searched)  # with one slot, the sequential step: no draws to pay for

        C = problem.candidates(k_cand, posterior)

        def believing(slots):
            """The posterior with the batch's first ``slots`` appended at their mean, as pending points are."""
            believed = posterior
            for i, v in enumerate(slots):
                believed = problem.believe_at_mean(believed, i, v)
            return believed

        def draws_from(first, posterior, avoid):
            """Slots ``first..n_parallel-1``: each the best candidate of its own joint draw."""
            draws = _joint_draws(problem, posterior, C, k_draw, self.draw_scale)

            def fill_slot(avoid, j):
                u = C[jnp.argmax(problem.spaced(draws[j], C, avoid))]
                return problem.keep(avoid, j, u), u

            return jax.lax.scan(fill_slot, avoid, jnp.arange(first, problem.n_parallel))[1]

        def without_mean():
            # A single searched slot is not believed (as measured before greedy_slots): spacing keeps draws off it.
            return draws_from(len(searched), believing(searched) if len(searched) > 1 else posterior, avoid)

        def with_mean():
            u = search(lambda mean, std: mean, k_mean, avoid)
            slots = searched + [u]
            if len(slots) == problem.n_parallel:
                return u[None]
            return jnp.concatenate([u[None], draws_from(len(slots), believing(slots),
                                                        problem.keep(avoid, len(searched), u))])

        if not self.exploit:
            rest = without_mean()
        elif self.exploit_after == 0:
            rest = with_mean()
        else:
            enough = problem.first_free >= math.ceil(self.exploit_after * problem.pending.shape[1])
            rest = jax.lax.cond(enough, with_mean, without_mean)
        return rest if not searched else jnp.concatenate([jnp.stack(searched), rest])

    def n_greedy(self, n_parallel: int) -> int:
        """How many leading slots of a batch of ``n_parallel`` maximize the acquisition."""
        if not self.greedy_first:
            return 0
        wanted = math.ceil(math.sqrt(n_parallel)) if self.greedy_slots == "sqrt" else self.greedy_slots
        return min(wanted, n_parallel)


def _joint_draws(problem, posterior, C, key, scale=1.0):
    """``(n_parallel, c)`` joint posterior draws of the latent function at the candidates ``C``.

    ``scale`` multiplies their deviations from the mean (1: the posterior's own).
    """
    mean, cov = gp.predict_joint(problem.kernel, posterior, C)
    floor = gp.noise_floor(cov.dtype) * jnp.exp(posterior.params.log_amplitude)
    L = jnp.linalg.cholesky(cov + floor * jnp.eye(C.shape[0], dtype=cov.dtype))
    eps = jax.random.normal(key, (problem.n_parallel, C.shape[0]), cov.dtype)
    if scale != 1.0:  # a static choice: the plain draws compile exactly as before
        eps = scale * eps
    draws = mean[None, :] + eps @ L.T
    # A factor that failed (NaN) leaves the marginal draws, which are still Thompson samples pointwise.
    _, std = gp.predict(problem.kernel, posterior, C)
    return jnp.where(jnp.all(jnp.isfinite(draws)), draws, mean[None, :] + eps * std[None, :])


@dataclasses.dataclass(frozen=True)
class LocalPenalization(BatchStrategy):
    """Local penalization: each slot maximizes the acquisition times a penalty around the earlier slots.

    The penalty of an earlier point ``x_j`` is the probability that ``x`` lies
    outside the ball around ``x_j`` that cannot hold the maximum given a
    Lipschitz constant ``L`` of the function: ``Φ((L |x - x_j| - M + μ(x_j)) /
    σ(x_j))``, ``M`` the incumbent and ``L`` the largest gradient norm of the
    posterior mean over the candidates. Log acquisitions add its log; others
    are made positive with a softplus first (González et al. 2016).
    """

    def propose(self, problem, key):
        k_lip, k_slots = jax.random.split(key)
        posterior, y_best = problem.posterior, problem.y_best
        C = problem.candidates(k_lip, posterior)
        grads = jax.vmap(jax.grad(lambda x: gp.predict(problem.kernel, posterior, x[None])[0][0]))(C)
        lipschitz = jnp.maximum(jnp.max(jnp.linalg.norm(grads, axis=1)), 1e-6)
        log_scale = isinstance(problem.acquisition, (acq.LogEI, acq.LogPI))

        def fill_slot(carry, j):
            avoid, key = carry
            key, k_find, k_acq = jax.random.split(key, 3)
            centers, valid = avoid
            # No update per slot: the earlier slots' means and stds are the posterior's.
            mu_c, std_c = gp.predict(problem.kernel, posterior, centers)

            def score(V):
                mean, std = gp.predict(problem.kernel, posterior, V)
                a = problem.acquisition(mean, std, y_best, key=k_acq)
                log_a = a if log_scale else jnp.log(jax.nn.softplus(a) + 1e-30)
                dist = jnp.sqrt(jnp.sum((V[:, None, :] - centers[None, :, :]) ** 2, axis=-1) + 1e-12)
                z = (lipschitz * dist - y_best + mu_c[None, :]) / std_c[None, :]
                penalty = jnp.sum(jnp.where(valid[None, :], log_ndtr(z), 0.0), axis=1)
                return problem.spaced(log_a + penalty, V, avoid)

            u = problem.find(score, k_find, posterior)
            return (problem.keep((centers, valid), j, u), key), u

        _, batch = jax.lax.scan(fill_slot, (problem.avoid(), k_slots), jnp.arange(problem.n_parallel))
        return batch


@dataclasses.dataclass(frozen=True)
class BySize(BatchStrategy):
    """``small`` fills batches of fewer than ``threshold`` points, ``large`` the others.

    The batch size is static, so only the chosen strategy is traced and
    compiled. The preset's: ``Thompson(greedy_first=True, greedy_slots="sqrt",
    exploit=True)`` below 16 points, :class:`Fantasies` from 16 on. Measured at
    equal evaluations (``benchmarks/RESULTS.md``, 30 seeds, with one greedy
    slot): at 4 and 8 the Thompson batch was ahead of Fantasies on Branin and
    Hartmann-3 (and Hartmann-6 at 8), behind on Levy-4; at 16 Fantasies was
    level or ahead on all four (Levy-4 0.73 against 1.41). With four batches of
    64 Fantasies was 40x ahead on Hartmann-6 (20 seeds), level on Levy-4 and
    Hartmann-3, behind on Branin: a few rounds of many points need every slot
    placed where the batch as a whole improves most, which draws over one
    candidate set do not do.
    """

    small: BatchStrategy = Thompson(greedy_first=True, greedy_slots="sqrt", exploit=True)
    large: BatchStrategy = Fantasies()
    threshold: int = 16

    def __post_init__(self):
        check_positive_int("threshold", self.threshold)

    def propose(self, problem, key):
        return (self.small if problem.n_parallel < self.threshold else self.large).propose(problem, key)
