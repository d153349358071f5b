"""Ray Tune search algorithm backed by :class:`hyperoptax.GPFIFOSearcher`, and hyperoptax's early stopping
as a Ray Tune scheduler (extra ``[ray]``).

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

With early stopping (Ray's ``ASHAScheduler``, or :class:`HyperoptaxScheduler`), pass
``resource_attr="training_iteration"`` (what the scheduler counts) and ``max_resource=max_t``: every
intermediate result is then an observation at its resource (MOBSTER-style), so a trial stopped early is data,
not a failure, and new configurations are proposed at the full resource::

    search = HyperoptaxSearch(random_seed=0, resource_attr="training_iteration", max_resource=27)
    scheduler = HyperoptaxScheduler(max_t=27, grace_period=3, reduction_factor=3)   # or ray's ASHAScheduler
    tune.TuneConfig(search_alg=search, scheduler=scheduler, metric="loss", mode="min", num_samples=40)
"""

from __future__ import annotations

import json
import math
from typing import Any

try:
    from ray.tune.schedulers import FIFOScheduler, TrialScheduler
    from ray.tune.search import Searcher
    from ray.tune.search import sample as ray_sample
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "hyperoptax.integrations.ray needs Ray Tune: pip install 'hyperoptax[ray]'."
    ) from err

from hyperoptax import spaces as sp
from hyperoptax.errors import ConfigurationError
from hyperoptax.schedulers import Scheduler
from hyperoptax.searchers import GPFIFOSearcher

__all__ = ["HyperoptaxSearch", "HyperoptaxScheduler", "from_ray_space"]


def _number(value) -> float | None:
    """A metric as a float (NumPy and JAX scalars included), or None if it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


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
        """With ``resource_attr``, an intermediate result is an observation at its resource; without, it is
        not used (FIFO: the final result counts)."""
        searcher = self._require()
        if searcher.resource_attr is None:
            return
        value, resource = _number(result.get(self._metric)), _number(result.get(searcher.resource_attr))
        if value is not None and math.isfinite(value) and resource is not None:
            searcher.on_trial_result(trial_id, None, {self._metric: value, searcher.resource_attr: resource})

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        searcher = self._require()
        value = None if (error or not result) else _number(result.get(self._metric))
        if value is None or not math.isfinite(value):
            searcher.evaluation_failed(trial_id)
        elif searcher.resource_attr is None:
            searcher.on_trial_result(trial_id, None, {self._metric: value})
        else:  # its results arrived through on_trial_result; it is no longer pending
            searcher.on_trial_complete(trial_id)

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


class HyperoptaxScheduler(FIFOScheduler):
    """hyperoptax's early stopping (:class:`~hyperoptax.schedulers.Scheduler`: ASHA or asynchronous Hyperband,
    with its check of how far low rungs can be trusted) as a Ray Tune scheduler.

    Options are named as in Ray's ``ASHAScheduler``: ``time_attr`` (the resource in results, default
    ``training_iteration``), ``max_t``, ``grace_period`` (the first rung; default ``max_t // reduction_factor**2``),
    ``reduction_factor``, ``brackets``; ``min_pairs`` is the trust check's (0: plain ASHA). A trial is judged
    when its ``time_attr`` reaches its next rung (with the metric it reports then), and stopped or continued.
    """

    def __init__(self, time_attr: str = "training_iteration", metric: str | None = None, mode: str | None = None,
                 max_t: int = 100, grace_period: int | None = None, reduction_factor: int = 3, brackets: int = 1,
                 min_pairs: int = 6, seed: int = 0):
        super().__init__()
        self._time_attr, self._metric, self._mode = time_attr, metric, mode
        self._options = dict(max_steps=max_t, min_steps=grace_period, eta=reduction_factor, n_brackets=brackets,
                             min_pairs=min_pairs, seed=seed)
        self._scheduler: Scheduler | None = None
        self._trials: dict[str, tuple[int, int]] = {}  # ray trial id -> (our trial id, steps of its next rung)
        if mode is not None:
            self._build()

    def _build(self):
        if self._mode not in ("min", "max"):
            raise ConfigurationError(f"HyperoptaxScheduler needs mode='min' or 'max', got {self._mode!r}.")
        self._scheduler = Scheduler(None, maximize=self._mode == "max", **self._options)

    def set_search_properties(self, metric, mode, **spec) -> bool:
        if self._scheduler is not None and self._metric is not None:
            return False
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        if self._mode is not None:
            self._build()
        return True

    @property
    def scheduler(self) -> Scheduler | None:
        """The underlying :class:`~hyperoptax.schedulers.Scheduler` (its trials, curves and rung tables)."""
        return self._scheduler

    def on_trial_add(self, tune_controller, trial) -> None:
        if self._scheduler is None:
            raise ConfigurationError("HyperoptaxScheduler has no metric/mode: pass them here or in TuneConfig.")
        added = self._scheduler.add(trial.config)
        self._trials[trial.trial_id] = (added.trial_id, added.steps)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        ours, target = self._trials[trial.trial_id]
        steps, value = _number(result.get(self._time_attr)), _number(result.get(self._metric))
        if steps is None or value is None:
            return TrialScheduler.CONTINUE
        if math.isfinite(value) and steps < target:
            return TrialScheduler.CONTINUE
        # Judged at its rung (a trial that reports less often is judged at the first report past it).
        decision = self._scheduler.report(ours, target if math.isfinite(value) else steps, value)
        if decision.action == "continue":
            self._trials[trial.trial_id] = (ours, decision.trial.steps)
            return TrialScheduler.CONTINUE
        return TrialScheduler.STOP

    def _end(self, trial) -> None:
        ours, _ = self._trials.get(trial.trial_id, (None, None))
        if ours is not None and self._scheduler.trials[ours]["status"] == "running":
            self._scheduler.stop(ours)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._end(trial)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._end(trial)

    def debug_string(self) -> str:
        if self._scheduler is None:
            return "HyperoptaxScheduler (not set up)"
        statuses = [t["status"] for t in self._scheduler.trials.values()]
        return (f"HyperoptaxScheduler: rungs {self._scheduler.rule.levels()}; " +
                ", ".join(f"{statuses.count(s)} {s}" for s in ("running", "stopped", "completed", "failed")))
