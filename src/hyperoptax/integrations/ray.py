"""Ray Tune search algorithm backed by :class:`hyperoptax.GPFIFOSearcher` (extra ``[ray]``).

Example::

    from ray import tune
    from hyperoptax.integrations.ray import HyperoptaxSearch

    search = HyperoptaxSearch(random_seed=0, num_init_random=4)
    tuner = tune.Tuner(
        train_fn,
        param_space={"lr": tune.loguniform(1e-4, 1e-1), "layers": tune.randint(1, 5)},
        tune_config=tune.TuneConfig(search_alg=search, metric="loss", mode="min",
                                    num_samples=20, max_concurrent_trials=2),
    )

The search space is either given here as hyperoptax spaces (``space=``) or
taken from Ray's ``param_space`` (``tune.uniform``, ``loguniform``,
``randint``, ``lograndint``, ``choice``; constants pass through). Trials
running in parallel are fantasized by the searcher; errored trials and
results without a finite metric are failures, never data.
"""

from __future__ import annotations

import json
import math
from typing import Any

try:
    from ray.tune.search import Searcher
    from ray.tune.search import sample as ray_sample
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "hyperoptax.integrations.ray needs Ray Tune: pip install 'hyperoptax[ray]'."
    ) from err

from hyperoptax import spaces as sp
from hyperoptax.errors import ConfigurationError, as_real
from hyperoptax.searchers import GPFIFOSearcher

__all__ = ["HyperoptaxSearch", "from_ray_space"]


def _convert(name: str, domain):
    if not isinstance(domain, ray_sample.Domain):
        return domain  # a constant
    sampler = domain.get_sampler()
    if isinstance(domain, ray_sample.Categorical):
        return sp.DiscreteSpace(list(domain.categories))
    if isinstance(sampler, ray_sample.Quantized):
        raise ConfigurationError(f"param_space[{name!r}]: quantized Ray domains are not supported; use randint/choice.")
    if isinstance(domain, ray_sample.Integer):
        # Ray's upper bound is exclusive for integers.
        cls = sp.QLogSpace if isinstance(sampler, ray_sample.LogUniform) else sp.QLinearSpace
        return cls(domain.lower, domain.upper - 1)
    if isinstance(domain, ray_sample.Float):
        if isinstance(sampler, ray_sample.LogUniform):
            return sp.LogSpace(domain.lower, domain.upper)
        if isinstance(sampler, ray_sample.Uniform):
            return sp.LinearSpace(domain.lower, domain.upper)
    raise ConfigurationError(
        f"param_space[{name!r}] = {domain!r} has no hyperoptax equivalent. Use tune.uniform, tune.loguniform, "
        f"tune.randint, tune.lograndint or tune.choice, or pass hyperoptax spaces as HyperoptaxSearch(space=...)."
    )


def from_ray_space(param_space: dict) -> dict:
    """A flat Ray Tune ``param_space`` as a dict of hyperoptax spaces (constants kept)."""
    out = {}
    for name, value in param_space.items():
        if isinstance(value, dict):
            raise ConfigurationError(f"param_space[{name!r}] is nested; HyperoptaxSearch needs a flat space.")
        out[name] = _convert(name, value)
    return out


class HyperoptaxSearch(Searcher):
    """Ray Tune ``Searcher`` running :class:`~hyperoptax.GPFIFOSearcher`.

    Args:
        space: dict of hyperoptax spaces (or None: Ray's ``param_space`` is converted).
        metric, mode: as in Ray Tune (may come from ``TuneConfig`` instead).
        points_to_evaluate: configurations to try first (None: the midpoint).
        random_seed: seed of the searcher.
        **options: :class:`GPFIFOSearcher` options (``num_init_random``, ``acq_function``, ...).
    """

    def __init__(self, space: dict | None = None, metric: str | None = None, mode: str | None = None,
                 points_to_evaluate=None, random_seed: int | None = None, **options):
        super().__init__(metric=metric, mode=mode)
        self._space = space
        self._points = points_to_evaluate
        self._seed = random_seed
        self._options = options
        self._searcher: GPFIFOSearcher | None = None
        if space is not None and metric is not None:
            self._build()

    def _build(self):
        self._searcher = GPFIFOSearcher(self._space, self._metric, self._mode or "min",
                                        points_to_evaluate=self._points, random_seed=self._seed, **self._options)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        if self._searcher is not None:
            return False
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        if self._space is None:
            if not config:
                return False
            self._space = from_ray_space(config)
        self._build()
        return True

    def _require(self):
        if self._searcher is None:
            raise ConfigurationError(
                "HyperoptaxSearch has no search space or metric yet: pass space= and metric= here, or "
                "param_space / TuneConfig(metric=...) to the Tuner."
            )
        return self._searcher

    def suggest(self, trial_id: str):
        config = self._require().get_config(trial_id=trial_id)
        if config is None:
            return Searcher.FINISHED
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Intermediate results are not used (FIFO: the final result counts)."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        searcher = self._require()
        # Numbers are numbers: a metric reported as np.float32 or a 0-d JAX array counts.
        value = None if (error or not result) else as_real(result.get(self._metric))
        if value is None or not math.isfinite(value):
            searcher.evaluation_failed(trial_id)
            return
        report = {self._metric: value}
        cost_attr = searcher.cost_attr
        if cost_attr is not None and cost_attr in result:
            report[cost_attr] = result[cost_attr]
        searcher.on_trial_result(trial_id, None, report)

    def get_state(self) -> dict:
        return {
            "metric": self._metric, "mode": self._mode,
            "searcher": None if self._searcher is None else self._searcher.get_state(),
        }

    def set_state(self, state: dict) -> None:
        self._metric, self._mode = state["metric"], state["mode"]
        if state["searcher"] is not None:
            if self._searcher is None:
                self._build()
            self._searcher = self._searcher.clone_from_state(state["searcher"])

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "w") as f:
            json.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path) as f:
            self.set_state(json.load(f))

    @property
    def gp_searcher(self) -> GPFIFOSearcher | None:
        """The underlying :class:`GPFIFOSearcher`."""
        return self._searcher
