"""Population-based training inside the population: exploit is a gather, explore writes into Optax's state.

A vmapped population is what PBT (Jaderberg et al. 2017) was made for. :class:`PBTPopulation` trains every
member ``ready_steps`` steps (one compiled segment program, :meth:`PopulationTrainer.train_and_evaluate`),
then decides on device who copies whom and the explored hyperparameters (:meth:`hyperoptax.schedulers.PBT.ready`,
one jitted program), and copies: :meth:`PopulationTrainer.exploit` gathers the parents' weights and optimizer
states along the population axis (across devices when sharded) and writes the new values into the optimizer
state that ``optax.inject_hyperparams`` keeps. The new values are arguments of the programs, never
constants: a whole run compiles each program once.

**Static hyperparameters** (``trainer.static``: widths, depths, categories) change shapes, so members with
equal static values form a bucket, and a member only copies within its bucket (the quantiles are taken per
bucket); static values never change. Only traced hyperparameters are explored.

**Keys.** Member ``i`` is initialized from ``fold_in(k_members, i)`` and keeps its own data stream when it
copies (minibatches and dropout depend on its key and the step), so the lineage says exactly what trained
the final weights; ready step ``k`` draws from ``sweep.iteration_keys(k_ready, k)``
(``k_members, k_ready = split(key)``). Hence a run resumed from :meth:`state_dict` and the population
restored by Orbax continues exactly as the uninterrupted one, and :func:`replay` retrains a member's
schedule alone.
"""

from __future__ import annotations

import weakref

import jax
import numpy as np

from hyperoptax import spaces as sp
from hyperoptax import sweep
from hyperoptax._keys import as_key
from hyperoptax.errors import ConfigurationError, check_positive_int
from hyperoptax.integrations.flax.sharding import Programs, host
from hyperoptax.schedulers.lineage import Lineage
from hyperoptax.schedulers.pb2 import pb2_data
from hyperoptax.schedulers.pbt import PBT

__all__ = ["PBTPopulation", "replay", "member_keys"]

# The ready-step programs of each trainer: a rule, space and population size compile once per trainer,
# whatever the number of populations (seeds) it trains.
_READY_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def member_keys(key, n: int) -> np.ndarray:
    """Raw key data ``(n, ...)`` of the members of a population run from ``key``: ``fold_in(k_members, i)``."""
    k_members = jax.random.split(as_key(key))[0]
    return np.stack([np.asarray(jax.random.key_data(jax.random.fold_in(k_members, i))) for i in range(n)])


def _intervals(n_steps: int, ready_steps: int) -> list[tuple[int, int]]:
    """``(start, end)`` of every interval; the last one is shorter when ``ready_steps`` does not divide."""
    return [(s, min(s + ready_steps, n_steps)) for s in range(0, n_steps, ready_steps)]


class PBTPopulation:
    """A population of ``len(configs)`` members trained with population-based training.

    Args:
        trainer: the :class:`~hyperoptax.integrations.flax.PopulationTrainer` (its ``n_steps`` is unused).
        rule: the :class:`~hyperoptax.schedulers.PBT` rules (``ready_steps``, ``quantile``, ``explore``...);
            its ``maximize`` must match the metric (the trainer's is higher-is-better).
        space: a dict of Spaces holding every hyperparameter of ``configs``; explore keeps values inside it.
        configs: the initial hyperparameters, one dict of plain values per member.
        n_steps: the training steps of every member.
        key: a PRNG key (members' initialization and data, and the ready steps).

    After :meth:`run`, :attr:`lineage` holds every member's history; :meth:`best`, :meth:`schedule` and
    :meth:`replay` give the result.
    """

    def __init__(self, trainer, rule: PBT, space: dict, configs: list[dict], n_steps: int, key):
        if not isinstance(rule, PBT):
            raise ConfigurationError(f"rule must be a hyperoptax.schedulers.PBT, got {rule!r}.")
        check_positive_int("n_steps", n_steps)
        if not isinstance(space, dict):
            raise ConfigurationError(f"space must be a dict of Spaces, got {type(space).__name__}.")
        sp.space_leaves(space)  # a clear error for a bad space
        self.trainer, self.rule, self.space, self.n_steps, self.key = trainer, rule, space, n_steps, as_key(key)
        self.traced_space = {k: v for k, v in space.items() if k not in trainer.static}
        if not self.traced_space:
            raise ConfigurationError(
                f"Every hyperparameter of the space ({', '.join(space)}) is static (trainer.static), and PBT "
                f"explores only traced ones (learning rates, weight decays...). Add one to the space."
            )
        self.n_members = len(configs)
        check_positive_int("len(configs)", self.n_members)
        self.intervals = _intervals(n_steps, rule.ready_steps)
        self.member_keys = member_keys(key, self.n_members)
        self.params = sp.stored_params(space, configs)  # the current hyperparameters, leaves (n,)
        self.buckets = [{"static": static, "members": idx} for static, idx in trainer.buckets(self.params)]
        for bucket in self.buckets:
            bucket["state"] = trainer.init_population(self.member_keys[bucket["members"]], self._of(bucket))
        self.lineage = Lineage(self.n_members)
        self._parents: list = [None] * self.n_members
        self._decisions = _READY_PROGRAMS.setdefault(trainer, Programs())

    @property
    def n_compiles(self) -> int:
        """Programs compiled for the trainer: its own (init, segment, exploit per bucket) and the ready steps'."""
        return self.trainer.n_compiles + self._decisions.n_compiles

    @property
    def interval(self) -> int:
        """Intervals trained so far."""
        return self.lineage.n_intervals

    def _of(self, bucket, params=None):
        """The hyperparameter batch of ``bucket``'s members."""
        return jax.tree.map(lambda x: np.asarray(x)[bucket["members"]], self.params if params is None else params)

    # --- the loop: sweep.run's suggest (ready step) / evaluate (train an interval) / tell (record) ---------

    def run(self, on_interval=None) -> None:
        """Train the remaining intervals; ``on_interval(sweep.Iteration)`` after each (its ``params`` are the
        hyperparameters of the interval, its ``results`` the metrics at its end)."""
        k_ready = jax.random.split(self.key)[1]
        sweep.run(self, self.train_interval, k_ready, range(self.interval, len(self.intervals)), on_interval)

    def suggest(self, key):
        """The ready step before the next interval (none before the first); returns the population's
        hyperparameters for it."""
        self._parents = [None] * self.n_members
        if self.interval == 0:
            return self.params
        metrics = self.lineage.metrics()
        data = self._pb2_data() if self.rule.explore == "pb2" else None
        new_params = jax.tree.map(np.array, self.params)
        for b, bucket in enumerate(self.buckets):
            idx = bucket["members"]
            values = np.asarray(sp.flatten_params(self.traced_space, self._of(bucket, self.traced_params)))
            args = (jax.random.fold_in(key, b), np.asarray(metrics[idx], np.float32), values, data)
            cache_key = ("ready", self.rule, tuple(self.traced_space.items()), len(idx))
            ready = self._decisions.compile(cache_key, self._ready_program, args)(*args)
            source, copied = np.asarray(ready.source), np.asarray(ready.copied)
            if not copied.any():
                continue
            explored = sp.unflatten_params(self.traced_space, ready.values)
            for name in self.traced_space:
                new_params[name][idx] = np.asarray(explored[name])
            bucket["state"] = self.trainer.exploit(bucket["state"], self._of(bucket, new_params), source)
            for i in np.flatnonzero(copied):
                self._parents[idx[i]] = int(idx[source[i]])
        self.params = new_params
        return self.params

    def _ready_program(self):
        rule, space = self.rule, self.traced_space  # not self: the program outlives this population
        return lambda key, metrics, values, data: rule.ready(key, space, metrics, values, data)

    @property
    def traced_params(self):
        return {name: self.params[name] for name in self.traced_space}

    def train_interval(self, key, params) -> np.ndarray:
        """Every member trains to the end of the next interval; ``(n,)`` metrics after it."""
        start, end = self.intervals[self.interval]
        metrics = np.full(self.n_members, np.nan)
        for bucket in self.buckets:
            bucket["state"], out = self.trainer.train_and_evaluate(bucket["state"], self._of(bucket), end - start)
            metrics[bucket["members"]] = np.asarray(out)
        return metrics

    def tell(self, key, params, metrics) -> None:
        configs = sweep.member_configs(self.space, params)
        self.lineage.record(self.interval, self.intervals[self.interval], self._parents, configs, metrics)

    def _pb2_data(self):
        """The improvements of the last ``pb2.window`` intervals, as PB2's buffers."""
        window, n_intervals = self.rule.pb2.window, len(self.intervals)
        observed = [obs for obs in self.lineage.improvements(self.rule.maximize) if obs[0] >= self.interval - window]
        configs = [{n: params[n] for n in self.traced_space} for _, params, _ in observed]
        values = np.asarray(sp.flatten_params(self.traced_space, sp.stored_params(self.traced_space, configs))) \
            if configs else []
        rows = [(k / n_intervals, v, gain) for (k, _, gain), v in zip(observed, values)]
        return pb2_data(self.traced_space, rows, self.n_members * window, self.interval / n_intervals)

    # --- results -------------------------------------------------------------------------------------

    def best(self) -> int | None:
        """The member with the best final metric (None if every member failed)."""
        return self.lineage.best(self.rule.maximize)

    def schedule(self, member: int | None = None) -> list[dict]:
        """The hyperparameter schedule ``member``'s weights trained with (default: the best member's)."""
        return self.lineage.schedule(self.best() if member is None else member)

    def replay(self, member: int | None = None, trainer=None) -> list[float]:
        """Retrain ``member``'s schedule alone (default: the best member's); see :func:`replay`."""
        return replay(trainer or self.trainer, self.space, self.schedule(member), self.member_keys)

    # --- checkpoints ---------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The JSON part of a checkpoint; the arrays go to Orbax (:attr:`population`)."""
        return {"lineage": self.lineage.get_state()}

    @property
    def population(self) -> dict:
        """The arrays of a checkpoint: each bucket's population state and the current hyperparameters."""
        return {"states": {str(b): bucket["state"] for b, bucket in enumerate(self.buckets)}, "params": self.params}

    def load_state_dict(self, saved: dict, restore_population) -> None:
        """Continue from :meth:`state_dict`; ``restore_population(template)`` returns :attr:`population`
        (e.g. from an Orbax checkpoint) given a template of its shapes, dtypes and shardings."""
        self.lineage.set_state(saved["lineage"])
        restored = restore_population(self.population)  # a fresh population has the right shapes
        self.params = jax.tree.map(np.asarray, restored["params"])
        for b, bucket in enumerate(self.buckets):
            bucket["state"] = restored["states"][str(b)]


def replay(trainer, space: dict, schedule: list[dict], keys) -> list[float]:
    """Train one model with ``schedule`` (:meth:`~hyperoptax.schedulers.Lineage.schedule`); its metric after
    each interval.

    ``keys`` are the population's member keys (:func:`member_keys`): the model starts from the first
    interval's member's key and trains each interval on the data stream of the member that trained it
    there, so it retraces the scheduled member's weights (up to the rounding of a population of another
    size). On several devices every device trains the same copy.
    """
    if not schedule:
        raise ConfigurationError("The schedule is empty: replay needs at least one interval.")
    keys = np.asarray(keys)
    d = jax.device_count()

    def batch(entry):
        return sp.stored_params(space, [entry["params"]] * d)

    def streams(member):  # the data stream of ``member``: the rng its initialization draws
        return trainer.init_population(np.repeat(keys[member][None], d, 0), batch(schedule[0])).rng

    state = trainer.init_population(np.repeat(keys[schedule[0]["member"]][None], d, 0), batch(schedule[0]))
    curve = []
    for entry in schedule:
        params = batch(entry)
        state = trainer.exploit(state.replace(rng=streams(entry["member"])), params, np.arange(d))
        state, metrics = trainer.train_and_evaluate(state, params, entry["steps"][1] - entry["steps"][0])
        curve.append(float(host(metrics)[0]))
    return curve
