"""Population-based training (Jaderberg et al. 2017): exploit and explore as pure, jittable functions.

Every ``ready_steps`` training steps the population is *ready*. Members in the bottom ``quantile`` by their
metric -- and every member whose metric is NaN/inf -- **exploit**: each takes the weights and optimizer state
of a member drawn uniformly from the top ``quantile``. Then each of them **explores**: its hyperparameters
become its parent's, changed by

* ``"perturb"``: each multiplied by a factor drawn from ``perturb_factors`` (0.8 or 1.2), clipped to its
  space; integer spaces round, discrete spaces (numbers or categories) move to the neighbouring value, up
  for a factor above 1 and down below it (Ray Tune's rule);
* ``"resample"``: each, with probability ``resample_probability``, a fresh uniform draw of its space, and
  otherwise perturbed (Ray Tune's ``resample_probability``);
* ``"pb2"``: the values a GP-UCB proposes, fitted on (hyperparameters, time) -> improvement over an interval
  (PB2, Parker-Holder et al. 2020; :mod:`~hyperoptax.schedulers.pb2`), perturbed while it has too few
  observations.

As in Ray Tune, ``ceil(quantile * n)`` members (at most ``n // 2``) are in each quantile; ties are broken
by member index. A population of one never exploits.

Hyperparameters are handled as *stored values* ``(n, n_params)`` of a flat dict of Spaces (the columns in
:func:`hyperoptax.spaces.space_leaves` order; a category as its index), so everything here runs inside a
compiled program: :meth:`PBT.ready` draws the pairs and the new values in one jitted call.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hyperoptax import spaces as sp
from hyperoptax.errors import ConfigurationError, check_choice, check_positive_int
from hyperoptax.schedulers.pb2 import PB2, PB2Data

__all__ = ["PBT", "Ready", "EXPLORES", "n_exploit", "exploit", "perturb", "resample"]

EXPLORES = ("perturb", "resample", "pb2")


def n_exploit(n: int, quantile: float) -> int:
    """Members in each quantile: ``ceil(quantile * n)``, at most ``n // 2`` (Ray Tune's rule)."""
    return min(math.ceil(quantile * n - 1e-9), n // 2)


def exploit(key, metrics, quantile: float, maximize: bool = True):
    """Who copies whom: ``(source (n,) int32, copied (n,) bool)``; ``source[i] = i`` where not copied.

    The bottom ``quantile`` and every non-finite metric copy a member drawn uniformly from the finite
    members of the top ``quantile``; with no finite member there, nothing is copied.
    """
    metrics = jnp.asarray(metrics)
    n = metrics.shape[0]
    k = n_exploit(n, quantile)
    own = jnp.arange(n, dtype=jnp.int32)
    if k == 0:
        return own, jnp.zeros(n, bool)
    finite = jnp.isfinite(metrics)
    score = jnp.where(finite, metrics if maximize else -metrics, -jnp.inf)
    order = jnp.argsort(-score, stable=True).astype(jnp.int32)  # best first, ties by index
    rank = jnp.zeros(n, jnp.int32).at[order].set(own)
    top = order[:k]
    top_ok = finite[top]
    is_top = jnp.zeros(n, bool).at[top].set(top_ok)
    logits = jnp.broadcast_to(jnp.where(top_ok, 0.0, -jnp.inf), (n, k))
    pick = jax.random.categorical(key, logits, axis=-1)
    copied = ((rank >= n - k) | ~finite) & ~is_top & jnp.any(top_ok)
    return jnp.where(copied, top[pick], own), copied


def _step_discrete(leaf: sp.DiscreteSpace, x, up, down):
    """Move a discrete value to its neighbour (``up`` / ``down``), clipped to the ends."""
    k = len(leaf.values)
    if leaf.is_categorical:
        index = jnp.round(x).astype(jnp.int32)
    else:
        ordered = jnp.asarray(sorted(leaf.values), jnp.float32)
        index = jnp.argmin(jnp.abs(ordered[None, :] - x[:, None]), axis=1).astype(jnp.int32)
    index = jnp.clip(index + up.astype(jnp.int32) - down.astype(jnp.int32), 0, k - 1)
    return index.astype(x.dtype) if leaf.is_categorical else ordered[index].astype(x.dtype)


def perturb(key, space, values, factors=(0.8, 1.2)):
    """Each value multiplied by a factor drawn uniformly from ``factors``, kept inside its space.

    Interval spaces are clipped to their bounds (integers rounded); discrete spaces move one value up for a
    factor above 1 and down below it. ``values (n, n_params)`` stored values -> the same shape.
    """
    leaves, _ = sp.space_leaves(space)
    values = jnp.asarray(values)
    factors = jnp.asarray(factors, values.dtype)
    f = factors[jax.random.randint(key, values.shape, 0, factors.shape[0])]
    columns = []
    for j, leaf in enumerate(leaves):
        x = values[:, j]
        if isinstance(leaf, sp.DiscreteSpace):
            columns.append(_step_discrete(leaf, x, f[:, j] > 1, f[:, j] < 1))
        else:
            scaled = jnp.clip(x * f[:, j], leaf.lower_bound, leaf.upper_bound)
            columns.append(jnp.asarray(leaf.transform(scaled)).astype(values.dtype))
    return jnp.stack(columns, axis=1)


def resample(key, space, values, probability: float, factors=(0.8, 1.2)):
    """Each value, with ``probability``, a fresh uniform draw of its space; otherwise :func:`perturb`-ed."""
    k_perturb, k_fresh, k_coin = jax.random.split(key, 3)
    values = jnp.asarray(values)
    fresh = sp.decode(space, jax.random.uniform(k_fresh, (values.shape[0], sp.n_dims(space)))).astype(values.dtype)
    coin = jax.random.bernoulli(k_coin, probability, values.shape)
    return jnp.where(coin, fresh, perturb(k_perturb, space, values, factors))


class Ready(NamedTuple):
    """What a ready step decided.

    Attributes:
        source: ``(n,)`` int32, the member each one copies (itself where not copied).
        copied: ``(n,)`` bool, the members that exploited.
        values: ``(n, n_params)`` the hyperparameters of the next interval (explored where copied).
    """

    source: jax.Array
    copied: jax.Array
    values: jax.Array


@dataclasses.dataclass(frozen=True)
class PBT:
    """The rules of population-based training.

    Attributes:
        ready_steps: training steps between two ready steps (exploit and explore).
        quantile: the fraction of the population that copies (bottom) and is copied (top), in (0, 0.5].
        explore: ``"perturb"``, ``"resample"`` or ``"pb2"`` (see the module docstring).
        perturb_factors: the factors a perturbation multiplies by.
        resample_probability: with ``explore="resample"``, the chance that a value is drawn afresh.
        maximize: whether a higher metric is better.
        pb2: the GP-UCB options of ``explore="pb2"``.
    """

    ready_steps: int
    quantile: float = 0.25
    explore: str = "perturb"
    perturb_factors: tuple = (0.8, 1.2)
    resample_probability: float = 0.25
    maximize: bool = True
    pb2: PB2 = dataclasses.field(default_factory=PB2)

    def __post_init__(self):
        check_positive_int("ready_steps", self.ready_steps)
        if isinstance(self.quantile, bool) or not isinstance(self.quantile, (int, float)) or not 0 < self.quantile <= 0.5:
            raise ConfigurationError(
                f"quantile={self.quantile!r}: the bottom and top quantiles must not overlap. Use a fraction in "
                f"(0, 0.5], e.g. quantile=0.25 (a quarter of the population copies the best quarter)."
            )
        check_choice("explore", self.explore, EXPLORES)
        factors = tuple(self.perturb_factors) if isinstance(self.perturb_factors, (tuple, list)) else ()
        if not factors or not all(isinstance(f, (int, float)) and math.isfinite(f) and f > 0 for f in factors):
            raise ConfigurationError(
                f"perturb_factors={self.perturb_factors!r}: must be a non-empty tuple of positive numbers, "
                f"e.g. (0.8, 1.2)."
            )
        object.__setattr__(self, "perturb_factors", factors)
        p = self.resample_probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ConfigurationError(f"resample_probability={p!r}: must be a probability in [0, 1], e.g. 0.25.")
        if not isinstance(self.maximize, (bool, np.bool_)):
            raise ConfigurationError(f"maximize must be True or False, got {self.maximize!r}.")
        if not isinstance(self.pb2, PB2):
            raise ConfigurationError(f"pb2 must be a hyperoptax.schedulers.PB2, got {self.pb2!r}.")

    def ready(self, key, space, metrics, values, data: PB2Data | None = None) -> Ready:
        """One ready step of a population: who copies whom, and the explored hyperparameters.

        ``space`` is a flat dict of Spaces (the hyperparameters that may change), ``metrics (n,)`` the metrics
        of the interval that just ended, ``values (n, n_params)`` its hyperparameters (stored values).
        ``data`` (``explore="pb2"`` only) holds the observed improvements (:func:`~hyperoptax.schedulers.pb2.pb2_data`).
        Jittable with ``space`` closed over.
        """
        values = jnp.asarray(values, jnp.float32)
        k_exploit, k_explore = jax.random.split(key)
        source, copied = exploit(k_exploit, metrics, self.quantile, self.maximize)
        parents = values[source]
        if self.explore == "perturb":
            explored = perturb(k_explore, space, parents, self.perturb_factors)
        elif self.explore == "resample":
            explored = resample(k_explore, space, parents, self.resample_probability, self.perturb_factors)
        else:
            if data is None:
                raise ConfigurationError("explore='pb2' needs the observed improvements: pass data=pb2_data(...).")
            k_perturb, k_gp = jax.random.split(k_explore)
            explored = jax.lax.cond(
                jnp.sum(data.valid) >= self.pb2.min_points(space),
                lambda: self.pb2.propose(k_gp, space, data, parents, copied),
                lambda: perturb(k_perturb, space, parents, self.perturb_factors),
            )
        return Ready(source, copied, jnp.where(copied[:, None], explored, values))
