"""The searches ``hyperoptax tune`` can drive, behind one interface.

Every search is a :class:`hyperoptax.sweep.Search` (``suggest(key)``, ``tell(key, params, results)``) with

* ``configs(params)``: the batch as one dict of plain values per member (what the trial records hold);
* ``checkpoint() -> (pytree, json)`` and ``restore(pytree, json)``: its state, as Orbax saves it (arrays)
  plus what goes into the checkpoint's JSON metadata.

``bayesian``, ``random`` and ``grid`` are :class:`~hyperoptax.base.Optimizer` s with their state;
``gp_fifo`` is a :class:`~hyperoptax.GPFIFOSearcher` asked for ``n_parallel`` configurations per iteration
(the pending ones are fantasized).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from hyperoptax import spaces as sp
from hyperoptax.bayesian import RECOMMENDED, BayesianSearch
from hyperoptax.errors import ConfigurationError, closest
from hyperoptax.grid import GridSearch
from hyperoptax.random import RandomSearch
from hyperoptax.sweep import BoundOptimizer

__all__ = ["make_search", "OptimizerSearch", "FIFOSearch"]


def make_search(config, space, n_trials: int, key):
    """The search ``config.search`` describes, with room for ``n_trials`` trials."""
    cls = FIFOSearch if config.search.optimizer == "gp_fifo" else OptimizerSearch
    return cls(config, space, n_trials, key)


class OptimizerSearch(BoundOptimizer):
    """BayesianSearch / RandomSearch / GridSearch and their state (a pytree, checkpointed as arrays)."""

    def __init__(self, config, space, n_trials, key):
        s = config.search
        options = s.options.to_dict()
        common = dict(n_parallel=s.n_parallel, maximize=s.mode == "max")
        if s.optimizer == "bayesian":
            preset = RECOMMENDED if s.preset == "recommended" else {}
            cls, kwargs = BayesianSearch, dict(n_max=n_trials, **{**preset, **options}, **common)
        elif s.optimizer == "random":
            cls, kwargs = RandomSearch, dict(n_max=n_trials, **options, **common)
        else:
            cls, kwargs = GridSearch, dict(key=jax.random.fold_in(key, -1 % 2**31), n_max=n_trials, **options, **common)
        try:
            state, optimizer = cls.init(space, **kwargs)
        except TypeError as err:
            allowed = [f.name for f in dataclasses.fields(cls)]
            bad = next((k for k in options if k not in allowed), None)
            if bad is None:
                raise
            raise ConfigurationError(
                f"search.options.{bad} is not an option of {cls.__name__}. Allowed: {', '.join(allowed)}."
                f"{closest(bad, allowed)}"
            ) from None
        super().__init__(optimizer, state)

    def checkpoint(self):
        return self.state, None

    def restore(self, search_state, saved):
        self.state = search_state


class FIFOSearch:
    """GPFIFOSearcher asked for ``n_parallel`` configurations per iteration (pending ones are fantasized)."""

    def __init__(self, config, space, n_trials, key):
        from hyperoptax.searchers import GPFIFOSearcher

        s = config.search
        self.space, self.n_parallel, self.metric = space, s.n_parallel, s.metric
        self.searcher = GPFIFOSearcher(space, metric=s.metric, mode=s.mode, random_seed=int(config.seed),
                                       **s.options.to_dict())
        self._batch = []  # the configurations of the batch being evaluated
        self._next_trial = 0

    def suggest(self, key):
        first = self._next_trial
        batch = [self.searcher.get_config(trial_id=first + j) for j in range(self.n_parallel)]
        if any(c is None for c in batch):
            raise ConfigurationError("gp_fifo: the search space is exhausted; run fewer trials.")
        self._batch, self._next_trial = batch, first + self.n_parallel
        return sp.stored_params(self.space, [{name: c[name] for name in self.space} for c in batch])

    def configs(self, params) -> list[dict]:
        return [{name: c[name] for name in self.space} for c in self._batch]

    def tell(self, key, params, results):
        first = self._next_trial - len(self._batch)
        for j, (config, value) in enumerate(zip(self._batch, np.asarray(results))):
            self.searcher.on_trial_result(first + j, config, {self.metric: float(value)})

    def checkpoint(self):
        return {"told": np.zeros((), np.int32)}, self.searcher.get_state()

    def restore(self, search_state, saved):
        self.searcher = self.searcher.clone_from_state(saved)
        self._next_trial = len(saved["trials"])
