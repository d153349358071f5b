"""GPFIFOSearcher: asynchronous ask/tell Bayesian optimization (the Syne Tune GP searcher).

The searcher is a host-side object holding Python lists of trials. Each model
based suggestion hands fixed-size, padded arrays to the jitted model step in
:mod:`hyperoptax.fifo_model` (which uses the GP core, :mod:`hyperoptax.gp`):

* observed data is padded to a power-of-two bucket (at least 64 rows; at most
  the bucket of ``max_size_data_for_model``), pending points to a power-of-two
  bucket of at least 4, restricted candidate lists to a power of two; a whole
  search compiles each step once per (data bucket, pending bucket): with the
  defaults the data buckets are 64, 128, 256, 512, so a search of up to 64
  observations and 3 pending trials compiles fit / propose / refine once each,
  however many trials it runs;
* equal option sets share compilations across searcher objects.

The searcher minimizes an internal criterion: the metric for ``mode="min"``,
``map_reward(metric)`` for ``mode="max"``.

**Multi-fidelity** (``resource_attr`` and ``max_resource`` set; MOBSTER, Klein et al. 2020): a result that
carries ``result[resource_attr]`` (training steps, epochs: at least 1, at most ``max_resource``) is an
observation of the trial at that resource; the trial stays pending (fantasized) until
:meth:`~GPFIFOSearcher.on_trial_complete`. The GP takes the resource, on a log scale, as its last input and
learns how far low resources predict the full one (a long length scale where rankings hold, a short one
where curves cross); new configurations are proposed at ``max_resource``, where the running trials are
fantasized.

Its arithmetic is float64 whatever ``jax_enable_x64`` says (as in Syne Tune and
Optuna). Near an optimum the targets differ by a few 1e-4 of their standard
deviation while the fitted amplitude and tiny noise give the Gram matrix a
condition number near 1e7: a float32 Cholesky cannot tell such points apart,
and on Branin the median regret was 15x worse (async benchmark, 30 seeds).
"""

from __future__ import annotations

import functools
import logging
import math
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from hyperoptax import fifo_model as fm
from hyperoptax import spaces as sp
from hyperoptax.errors import ConfigurationError, SpaceError, as_real, check_choice, check_positive_int, closest

__all__ = ["GPFIFOSearcher", "DEFAULT_OPTIONS"]

logger = logging.getLogger("hyperoptax")

DEFAULT_OPTIONS: dict[str, Any] = dict(
    num_init_random=3,
    num_init_candidates=250,
    num_fantasy_samples=20,
    no_fantasizing=False,
    input_warping=False,
    boxcox_transform=False,
    gp_base_kernel="matern52-ard",
    acq_function="ei",
    acq_function_kwargs=None,
    initial_scoring="thompson_indep",
    skip_local_optimization=False,
    opt_nstarts=2,
    opt_maxiter=50,
    opt_warmstart=False,
    opt_verbose=False,
    max_size_data_for_model=500,
    max_size_top_fraction=0.25,
    opt_skip_init_length=150,
    opt_skip_period=1,
    allow_duplicates=False,
    restrict_configurations=None,
    map_reward="1_minus_x",
    transfer_learning_task_attr=None,
    transfer_learning_active_task=None,
    transfer_learning_active_config_space=None,
    transfer_learning_model="matern52_product",
    resource_attr=None,
    cost_attr=None,
    max_resource=None,
)
"""Every option of :class:`GPFIFOSearcher` with its default (Syne Tune's ``gp_fifo_searcher_defaults``; plus
``max_resource``, the full resource of a multi-fidelity search, which Syne Tune's schedulers pass in)."""

_BASE_KERNELS = ("matern52-ard", "matern52-noard")
_INITIAL_SCORING = ("thompson_indep", "acq_func")
_TL_MODELS = ("matern52_product", "matern52_same")
# Small problems fit in the first data bucket: one compilation for most searches.
_MIN_DATA_BUCKET, _MIN_PENDING_BUCKET = 64, 4
_RANDOM_RETRIES = 8


def _float64(method):
    """Run ``method`` with 64-bit JAX types (see the module docstring)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with jax.enable_x64(True):
            return method(*args, **kwargs)

    return wrapper


def _bucket(n: int, minimum: int) -> int:
    return max(minimum, 1 << max(n - 1, 0).bit_length())


def _parse_map_reward(map_reward) -> Callable[[float], float]:
    if callable(map_reward):
        return map_reward
    match = re.fullmatch(r"(?:(.+)_)?minus_x", str(map_reward))
    try:
        offset = 0.0 if match and match.group(1) is None else float(match.group(1))
    except (AttributeError, ValueError, TypeError):
        raise ConfigurationError(
            f"map_reward={map_reward!r} is not supported. Allowed: 'minus_x' (criterion = -metric), "
            f"'<a>_minus_x' such as '1_minus_x' (criterion = a - metric), or a callable metric -> criterion."
            f"{closest(map_reward, ['minus_x', '1_minus_x'])}"
        ) from None
    return lambda x: offset - x


class GPFIFOSearcher:
    """Gaussian-process Bayesian optimization for asynchronous (FIFO) scheduling.

    Matérn-5/2 ARD kernel with a constant mean, all hyperparameters fitted by
    empirical Bayes (MAP); expected improvement; pending evaluations are
    fantasized (``num_fantasy_samples`` joint posterior draws, the acquisition
    averaged over them). Options and defaults follow Syne Tune's
    ``GPFIFOSearcher`` (see :data:`DEFAULT_OPTIONS` and the project docs).

    Args:
        config_space: dict of hyperparameter name -> hyperoptax Space (other
            values are constants, passed through into every configuration).
        metric: name of the metric in the results passed to :meth:`on_trial_result`.
        mode: ``"min"`` or ``"max"``.
        points_to_evaluate: configurations (dicts, possibly partial: missing
            entries take the midpoint) to evaluate first. ``None`` evaluates
            the midpoint configuration first; ``[]`` nothing.
        random_seed: seed of the searcher's random stream (drawn at random if None).
        **options: see :data:`DEFAULT_OPTIONS`.

    Example::

        searcher = GPFIFOSearcher({"lr": LogSpace(1e-4, 1e-1), "layers": QLinearSpace(1, 4)},
                                  metric="loss", mode="min", random_seed=0)
        config = searcher.get_config(trial_id=0)      # registered as pending
        searcher.on_trial_result(0, config, {"loss": 0.3})
    """

    @_float64
    def __init__(self, config_space: dict, metric: str, mode: str = "min", points_to_evaluate=None,
                 random_seed: int | None = None, **options):
        if not isinstance(config_space, dict):
            raise ConfigurationError(
                f"config_space must be a dict of name -> Space, got {type(config_space).__name__}. "
                f"Example: {{'lr': LogSpace(1e-4, 1e-1)}}."
            )
        if not isinstance(metric, str):
            raise ConfigurationError(f"metric must be the name (str) of the metric to optimize, got {metric!r}.")
        check_choice("mode", mode, ("min", "max"))
        unknown = [k for k in options if k not in DEFAULT_OPTIONS]
        if unknown:
            raise ConfigurationError(
                f"GPFIFOSearcher got unknown option {unknown[0]!r}. Allowed options: "
                f"{', '.join(DEFAULT_OPTIONS)}.{closest(unknown[0], DEFAULT_OPTIONS)}"
            )
        self._config_space, self._metric, self._mode = config_space, metric, mode
        self._user_options = dict(options)
        self._options = opts = {**DEFAULT_OPTIONS, **options}
        self._check_options(opts)
        self._names = [k for k, v in config_space.items() if isinstance(v, sp.Space)]
        if not self._names:
            raise ConfigurationError("config_space contains no hyperoptax Space to search over.")
        self._constants = {k: v for k, v in config_space.items() if not isinstance(v, sp.Space)}
        self._leaves = tuple(config_space[n] for n in self._names)
        self._continuous = np.asarray(
            [isinstance(leaf, sp.LinearSpace) and np.dtype(leaf.dtype).kind == "f" for leaf in self._leaves]
        )
        self._map_reward = _parse_map_reward(opts["map_reward"]) if mode == "max" else (lambda x: x)
        self._resource = None if opts["resource_attr"] is None else sp.LogSpace(1, max(opts["max_resource"], 2))
        self._cfg = fm.model_config(self._names, self._leaves, opts, self._resource)
        self._seed = int(np.random.default_rng().integers(2**31)) if random_seed is None else int(random_seed)
        self._counter = 0
        self._trials: dict[Any, dict] = {}
        self._params = None
        self._n_obs_at_fit = -1
        self._model_data_kind = "all"  # see set_model_data
        self._points = self._initial_points(points_to_evaluate)
        restrict = opts["restrict_configurations"]
        self._restrict = None if restrict is None else self._restrict_entries(restrict)

    # --- options ------------------------------------------------------------

    def _check_options(self, o):
        for name in ("num_init_candidates", "num_fantasy_samples", "opt_nstarts", "opt_skip_period"):
            o[name] = check_positive_int(name, o[name])
        for name in ("num_init_random", "opt_maxiter", "opt_skip_init_length"):
            o[name] = check_positive_int(name, o[name], minimum=0)
        if o["cost_attr"] is not None and not isinstance(o["cost_attr"], str):
            raise ConfigurationError(f"cost_attr must be the name (str) of the cost in each result, got {o['cost_attr']!r}.")
        for name in ("no_fantasizing", "input_warping", "boxcox_transform", "skip_local_optimization",
                     "opt_warmstart", "opt_verbose", "allow_duplicates"):
            if not isinstance(o[name], (bool, np.bool_)):
                raise ConfigurationError(f"{name} must be True or False, got {o[name]!r}.")
        check_choice("gp_base_kernel", o["gp_base_kernel"], _BASE_KERNELS)
        check_choice("acq_function", o["acq_function"], tuple(fm.ACQUISITIONS))
        check_choice("initial_scoring", o["initial_scoring"], _INITIAL_SCORING)
        check_choice("transfer_learning_model", o["transfer_learning_model"], _TL_MODELS)
        kwargs = o["acq_function_kwargs"] or {}
        _, allowed = fm.ACQUISITIONS[o["acq_function"]]
        for k in kwargs:
            if k not in allowed:
                raise ConfigurationError(
                    f"acq_function_kwargs has {k!r}, which acq_function={o['acq_function']!r} does not take. "
                    f"Allowed: {', '.join(allowed) or 'none'}.{closest(k, allowed)}"
                )
        if o["max_size_data_for_model"] is not None:
            o["max_size_data_for_model"] = check_positive_int("max_size_data_for_model", o["max_size_data_for_model"])
        if not 0.0 <= o["max_size_top_fraction"] <= 1.0:
            raise ConfigurationError(f"max_size_top_fraction must lie in [0, 1], got {o['max_size_top_fraction']!r}.")
        if o["restrict_configurations"] is not None:
            if self._user_options.get("skip_local_optimization") is False:
                raise ConfigurationError(
                    "restrict_configurations needs skip_local_optimization=True (a local optimizer would leave "
                    "the list). Drop skip_local_optimization=False."
                )
            o["skip_local_optimization"] = True
        _parse_map_reward(o["map_reward"])
        tl = o["transfer_learning_task_attr"]
        if tl is not None:
            space = self._config_space.get(tl)
            if not (isinstance(space, sp.DiscreteSpace) and space.is_categorical):
                raise ConfigurationError(
                    f"transfer_learning_task_attr={tl!r} must name a DiscreteSpace of task IDs (categories) in "
                    f"config_space.{closest(tl, self._config_space)}"
                )
            check_choice("transfer_learning_active_task", o["transfer_learning_active_task"], space.values)
        if o["resource_attr"] is not None:
            if not isinstance(o["resource_attr"], str):
                raise ConfigurationError(f"resource_attr must be the name (str) of the resource in results, got "
                                         f"{o['resource_attr']!r}.")
            if o["max_resource"] is None:
                raise ConfigurationError(
                    f"resource_attr={o['resource_attr']!r} makes a multi-fidelity searcher, which proposes at the "
                    f"full resource: pass max_resource= (e.g. the most training steps a trial takes)."
                )
            check_positive_int("max_resource", o["max_resource"])

    # --- configurations -----------------------------------------------------

    def _values(self, config: dict) -> np.ndarray:
        """A user config -> stored values ``(n_params,)``, checked against the space.

        A value outside its space (or NaN/inf, or not a number) raises
        :class:`~hyperoptax.errors.SpaceError`; a non-integer of an integer space or a number
        between the values of a DiscreteSpace is moved onto it with a
        :class:`~hyperoptax.errors.ValueSnappedWarning`.
        """
        if not isinstance(config, dict):
            raise ConfigurationError(f"A configuration must be a dict of name -> value, got {config!r}.")
        row = []
        for name, leaf in zip(self._names, self._leaves):
            if name not in config:
                raise ConfigurationError(
                    f"Configuration {config!r} has no value for {name!r}. Expected keys: {', '.join(self._names)}."
                )
            value = config[name]
            if isinstance(leaf, sp.DiscreteSpace) and leaf.is_categorical:
                if value not in leaf.values:
                    raise SpaceError(
                        f"config[{name!r}] = {value!r} is not one of {list(leaf.values)!r}.{closest(value, leaf.values)}"
                    )
                row.append(float(leaf.values.index(value)))
                continue
            number = as_real(value)
            if number is None:
                raise SpaceError(f"config[{name!r}] = {value!r} is not a number; {leaf.describe()} holds numbers.")
            row.append(float(leaf.check(np.asarray([number]), f"config[{name!r}]")[0]))
        snapped = np.asarray(fm.canonical(self._cfg, jnp.asarray([self._with_resource(row)])), np.float64)[0]
        snapped = snapped[: len(row)]
        # Continuous values are kept as given (checked): a float32 exp(log(x)) trip could move them by an
        # ulp, and a searcher rebuilt from its JSON state must see bit-identical data.
        return np.where(self._continuous, row, snapped)

    def _with_resource(self, values, resource=None) -> list:
        """Stored values, and the resource (default: the full one) as the model's last input if it has one."""
        if self._resource is None:
            return list(values)
        return [*values, self._options["max_resource"] if resource is None else resource]

    def _config(self, values: np.ndarray) -> dict:
        params = {n: leaf.to_python(v) for n, leaf, v in zip(self._names, self._leaves, values)}
        return {k: params[k] if k in params else self._constants[k] for k in self._config_space}

    def _full_config(self, config: dict) -> dict:
        return self._config(self._values(config))

    def _restrict_entries(self, configs) -> list[dict]:
        """Restricted configurations with their stored values and keys, computed once."""
        entries = []
        for c in configs:
            values = self._values(c)
            entries.append(dict(config=self._config(values), values=values, key=self._key(values)))
        return entries

    def _key(self, values: np.ndarray) -> tuple:
        return tuple(
            int(round(v)) if np.dtype(leaf.dtype).kind in "iu" else float(f"{v:.7g}")
            for leaf, v in zip(self._leaves, values)
        )

    def _initial_points(self, points):
        if points is None:
            u = np.full((1, self._cfg.n_dims), 0.5)
            return [self._config(np.asarray(fm.decode(self._cfg, jnp.asarray(u)))[0])]
        mid = self._config(np.asarray(fm.decode(self._cfg, jnp.full((1, self._cfg.n_dims), 0.5)))[0])
        return [self._full_config({**mid, **p}) for p in points]

    def _is_active(self, trial) -> bool:
        tl = self._options["transfer_learning_task_attr"]
        return tl is None or trial["config"][tl] == self._options["transfer_learning_active_task"]

    def _taken(self) -> set:
        """Keys of configurations not to propose again: observed, pending and failed (active task)."""
        if self._options["allow_duplicates"]:
            return set()
        return {t["key"] for t in self._trials.values() if self._is_active(t)}

    # --- the ask/tell API -------------------------------------------------------

    @_float64
    def get_config(self, trial_id=None) -> dict | None:
        """The next configuration to evaluate, or None if the space is exhausted.

        With a ``trial_id`` it is registered as pending right away.
        """
        key = jax.random.fold_in(jax.random.PRNGKey(self._seed), self._counter)
        self._counter += 1
        config = self._suggest(key)
        if config is not None and trial_id is not None:
            self.register_pending(trial_id, config)
        return config

    @_float64
    def register_pending(self, trial_id, config: dict) -> None:
        """Mark ``config`` as being evaluated by ``trial_id`` (fantasized until its result arrives).

        A pending trial registered again with another configuration now runs that one.
        """
        trial = self._trials.get(trial_id)
        if trial is None or trial["status"] != "pending":
            self._record(trial_id, config, "pending")
        elif self._key(self._values(config)) != trial["key"]:
            self._record(trial_id, config, "pending", observations=trial["observations"])

    @_float64
    def on_trial_result(self, trial_id, config: dict, result: dict) -> None:
        """Record ``result[metric]`` for ``trial_id``; NaN/inf marks the trial failed.

        Unknown trial IDs are accepted (e.g. data of other tasks for transfer learning).
        """
        if not isinstance(result, dict) or self._metric not in result:
            keys = list(result) if isinstance(result, dict) else result
            raise ConfigurationError(
                f"on_trial_result for trial {trial_id!r}: the result {keys!r} has no {self._metric!r} "
                f"(the metric this searcher optimizes).{closest(self._metric, result if isinstance(result, dict) else [])}"
            )
        value = as_real(result[self._metric])
        if value is None:
            raise ConfigurationError(
                f"on_trial_result for trial {trial_id!r}: result[{self._metric!r}] = {result[self._metric]!r} is not "
                f"a number. Report the metric as a number (NaN marks a failed trial)."
            )
        cost = self._cost(trial_id, result, required=math.isfinite(value))
        if not math.isfinite(value):
            self._record(trial_id, config, "failed", cost=cost)
            return
        criterion = float(self._map_reward(value))
        if self._options["boxcox_transform"] and not criterion > 0:
            raise ConfigurationError(
                f"boxcox_transform needs a positive criterion, got {criterion!r} from {self._metric}={value!r} "
                f"(trial {trial_id!r}). For mode='max' choose map_reward='<a>_minus_x' with a > every metric value; "
                f"for mode='min' shift the metric, or set boxcox_transform=False."
            )
        if self._resource is None:
            self._record(trial_id, config, "observed", metric=value, criterion=criterion, cost=cost)
            return
        resource = self._resource_of(trial_id, result)
        previous = self._trials.get(trial_id)
        observations = list(previous["observations"]) if previous is not None else []
        observations.append(dict(resource=resource, metric=value, criterion=criterion, x=None, cost=cost))
        status = previous["status"] if previous is not None and previous["status"] != "failed" else "pending"
        self._record(trial_id, config, status, metric=value, criterion=criterion, observations=observations,
                     cost=cost)

    def _cost(self, trial_id, result: dict, required: bool) -> float | None:
        """``result[cost_attr]`` (a finite number >= 0) when ``cost_attr`` is set, else None.

        A failed trial (NaN/inf metric) may come without a cost. With a resource, the latest result's cost
        is the trial's (Ray's ``time_total_s``, for one, is cumulative).
        """
        name = self._options["cost_attr"]
        if name is None or (name not in result and not required):
            return None
        cost = as_real(result.get(name))
        if cost is None or not math.isfinite(cost) or cost < 0:
            raise ConfigurationError(
                f"on_trial_result for trial {trial_id!r}: cost_attr={name!r} is set, so each result needs a finite "
                f"cost >= 0 under {name!r}; got {result.get(name)!r} (the result has {list(result)!r})."
            )
        return cost

    def _resource_of(self, trial_id, result) -> float:
        name, top = self._options["resource_attr"], self._options["max_resource"]
        if name not in result:
            raise ConfigurationError(
                f"on_trial_result for trial {trial_id!r}: the result {list(result)!r} has no {name!r}, the resource "
                f"this multi-fidelity searcher reads (resource_attr).{closest(name, result)}"
            )
        resource = as_real(result[name])
        if resource is None or not 1 <= resource <= top:
            raise ConfigurationError(
                f"on_trial_result for trial {trial_id!r}: {name}={result[name] if resource is None else resource!r} "
                f"is outside [1, max_resource={top}]."
            )
        return resource

    def on_trial_complete(self, trial_id) -> None:
        """A multi-fidelity trial has stopped training (completed or stopped early): it is no longer pending;
        its observations stay data. Without ``resource_attr`` the result of :meth:`on_trial_result` is final
        and this does nothing."""
        trial = self._trials.get(trial_id)
        if self._resource is None or trial is None or trial["status"] != "pending":
            return
        trial["status"] = "observed" if trial["observations"] else "failed"

    def evaluation_failed(self, trial_id) -> None:
        """The evaluation of ``trial_id`` failed: it is never data, and never proposed again."""
        trial = self._trials.get(trial_id)
        if trial is None:
            logger.warning("evaluation_failed: unknown trial %r ignored.", trial_id)
            return
        trial.update(status="failed", metric=None, criterion=None)

    def _record(self, trial_id, config, status, metric=None, criterion=None, observations=None, cost=None):
        previous = self._trials.get(trial_id)
        if config is None and previous is not None:
            config = previous["config"]
        values = self._values(config)
        if observations is None:  # without a resource, a trial's one observation is its result
            observations = [] if metric is None else [dict(resource=None, metric=metric, criterion=criterion, x=None)]
        self._trials[trial_id] = dict(
            config=self._config(values), values=values, key=self._key(values), status=status,
            metric=metric, criterion=criterion, observations=observations, cost=cost,
        )

    # --- suggestions --------------------------------------------------------

    def set_model_data(self, which: str) -> None:
        """Which observations of a multi-fidelity trial the GP fits: ``"all"`` (every resource it reported at,
        the default) or ``"latest"`` (its report at the highest resource only; the others stay recorded).

        A scheduler whose low rungs rank trials unlike the full resource (curves that cross) fits the latest
        only: a stationary kernel over (configuration, resource) cannot follow one configuration's curve
        falling behind another's, and the earlier reports of the trials that went on pull its prediction at
        the full resource toward the fast starters (:class:`hyperoptax.schedulers.SearcherRefills`).
        """
        check_choice("set_model_data", which, ("all", "latest"))
        if which != "all" and self._resource is None:
            raise ConfigurationError("set_model_data('latest') needs a multi-fidelity searcher (resource_attr and "
                                     "max_resource set): without a resource each trial has one observation.")
        if which != self._model_data_kind:
            self._n_obs_at_fit = -1  # other rows, possibly as many: fit again
        self._model_data_kind = which

    def _modelled(self, trial) -> list:
        """The observations of ``trial`` the GP fits (see :meth:`set_model_data`)."""
        observations = trial["observations"]
        if self._model_data_kind == "all" or len(observations) < 2:
            return observations
        return [max(reversed(observations), key=lambda o: o["resource"])]  # the highest resource, the newest of ties

    def _suggest(self, key):
        taken = self._taken()
        allowed = None if self._restrict is None else {e["key"] for e in self._restrict}
        while self._points:
            config = self._points.pop(0)
            k = self._key(self._values(config))
            if k not in taken and (allowed is None or k in allowed):
                return self._take(config, k)
        n_active = sum(self._is_active(t) for t in self._trials.values())
        observed = [t for t in self._trials.values() if t["status"] in ("observed", "pending") and t["observations"]]
        k_model, k_random = jax.random.split(key)
        if n_active < self._options["num_init_random"] or not observed:
            return self._random(k_random, taken)
        return self._model_based(k_model, k_random, observed, taken)

    def _take(self, config, key):
        """Hand out ``config``; a restricted entry is popped off the list unless duplicates are allowed."""
        if self._restrict is not None and not self._options["allow_duplicates"]:
            self._restrict = [e for e in self._restrict if e["key"] != key]
        return dict(config)

    def _restricted_candidates(self, taken):
        return [e for e in self._restrict if e["key"] not in taken]

    def _random(self, key, taken):
        if self._restrict is not None:
            entries = self._restricted_candidates(taken)
            if not entries:
                return None
            e = entries[int(jax.random.randint(key, (), 0, len(entries)))]
            return self._take(e["config"], e["key"])
        for attempt in range(_RANDOM_RETRIES):
            U = fm.sample_candidates(self._cfg, jax.random.fold_in(key, attempt), self._options["num_init_candidates"])
            for values in np.asarray(fm.decode(self._cfg, U)):
                if self._key(values) not in taken:
                    return self._config(values)
        return None

    def _model_data(self, key, observed):
        """Inputs and criterion of the observations the GP sees (subsampled beyond ``max_size_data_for_model``)."""
        rows = [(t, o) for t in observed for o in self._modelled(t)]
        c = np.asarray([o["criterion"] for _, o in rows])
        for t, o in rows:
            if o["x"] is None:
                values = self._with_resource(t["values"], o["resource"])
                o["x"] = np.asarray(fm.encode(self._cfg, jnp.asarray(np.asarray(values)[None])))[0]
        X = np.stack([o["x"] for _, o in rows])
        keep = fm.subsample(c, self._options["max_size_data_for_model"], self._options["max_size_top_fraction"],
                            np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel()))
        return X[keep], c[keep]

    def _model_based(self, key, k_random, observed, taken):
        k_sub, k_fit, k_fant, k_cand = jax.random.split(key, 4)
        o, cfg = self._options, self._cfg
        X, c = self._model_data(k_sub, observed)
        n_obs = len(c)
        cap = None if o["max_size_data_for_model"] is None else _bucket(o["max_size_data_for_model"], _MIN_DATA_BUCKET)
        n_pad = _bucket(len(c), _MIN_DATA_BUCKET) if cap is None else min(_bucket(len(c), _MIN_DATA_BUCKET), cap)
        Xb = np.zeros((n_pad, cfg.n_dims))
        cb = np.ones(n_pad)
        valid = np.arange(n_pad) < len(c)
        Xb[: len(c)], cb[: len(c)] = X, c
        Xb, cb, valid = jnp.asarray(Xb), jnp.asarray(cb), jnp.asarray(valid)
        self._maybe_fit(n_obs, Xb, cb, valid, k_fit)

        pending = [] if o["no_fantasizing"] else [t for t in self._trials.values() if t["status"] == "pending"]
        p_pad = _bucket(len(pending), _MIN_PENDING_BUCKET)
        Xp = np.zeros((p_pad, cfg.n_dims))
        if pending:  # fantasized where new configurations are proposed (at the full resource)
            V = np.stack([self._with_resource(t["values"]) for t in pending])
            Xp[: len(pending)] = np.asarray(fm.encode(cfg, jnp.asarray(V)))
        pmask = jnp.asarray(np.arange(p_pad) < len(pending))
        if self._restrict is not None:
            configs = self._restricted_candidates(taken)
            if not configs:
                return None
            m = _bucket(len(configs), _MIN_PENDING_BUCKET)
            V = np.stack([self._with_resource(e["values"]) for e in configs]
                         + [self._with_resource(configs[0]["values"])] * (m - len(configs)))
            U = fm.unembed(cfg, fm.encode(cfg, jnp.asarray(V)))
        else:
            U = fm.sample_candidates(cfg, k_cand, o["num_init_candidates"])
            configs = None
        fant, scores = fm.propose(cfg, self._params, Xb, cb, valid, jnp.asarray(Xp), pmask, U, k_fant)
        scores = np.array(scores)
        if configs is not None:
            scores[len(configs):] = -np.inf
        decoded = np.asarray(fm.decode(cfg, U))
        order = np.argsort(-np.where(np.isfinite(scores), scores, -np.inf), kind="stable")
        best = next((i for i in order if np.isfinite(scores[i]) and self._key(decoded[i]) not in taken), None)
        if best is None:
            best = next((i for i in order if self._key(decoded[i]) not in taken and (configs is None or i < len(configs))), None)
        if best is None:
            return self._random(k_random, taken)
        if configs is not None:
            return self._take(configs[best]["config"], configs[best]["key"])
        if o["skip_local_optimization"]:
            return self._config(decoded[best])
        u = fm.refine(cfg, fant, U[best])
        values = np.asarray(fm.decode(cfg, u[None]))[0]
        if self._key(values) in taken:
            values = decoded[best]
        return self._config(values)

    def _maybe_fit(self, n_obs, X, c, valid, key):
        o = self._options
        skip = n_obs >= o["opt_skip_init_length"] and (n_obs - o["opt_skip_init_length"]) % o["opt_skip_period"] != 0
        if self._params is not None and (n_obs == self._n_obs_at_fit or skip):
            return
        init = self._params if (o["opt_warmstart"] and self._params is not None) else fm.default_params(self._cfg)
        self._params = fm.fit(self._cfg, init, X, c, valid, key)
        self._n_obs_at_fit = n_obs
        if o["opt_verbose"]:
            logger.info("GPFIFOSearcher: fitted on %d observations: %s", n_obs, fm.params_to_json(self._params))

    # --- state --------------------------------------------------------------

    def get_state(self) -> dict:
        """The mutable state as plain JSON types (see :meth:`clone_from_state`).

        ``trials`` lists every trial: ``trial_id``, ``config``, ``status`` (``pending``, ``observed``,
        ``failed``), ``metric`` and ``cost`` (``result[cost_attr]`` when ``cost_attr`` is set, else None; with
        a resource, the latest report's); with ``resource_attr``, ``observations``: ``[resource, metric]`` of
        each report (``[resource, metric, cost]`` with ``cost_attr``).
        """
        return {
            "version": 1,
            "trials": [
                {"trial_id": tid, "config": t["config"], "status": t["status"], "metric": t["metric"],
                 "cost": t.get("cost"),
                 **({} if self._resource is None else
                    {"observations": [[o["resource"], o["metric"], *([] if self.cost_attr is None else [o["cost"]])]
                                      for o in t["observations"]]})}
                for tid, t in self._trials.items()
            ],
            "points_to_evaluate": [dict(p) for p in self._points],
            "restrict_configurations": None if self._restrict is None else [dict(e["config"]) for e in self._restrict],
            "random_seed": self._seed,
            "counter": self._counter,
            "theta": None if self._params is None else fm.params_to_json(self._params),
            "n_obs_at_fit": self._n_obs_at_fit,
            "model_data": self._model_data_kind,
        }

    @_float64
    def clone_from_state(self, state: dict) -> "GPFIFOSearcher":
        """A searcher with this one's options and ``state`` (from :meth:`get_state`, possibly via JSON)."""
        if not isinstance(state, dict) or state.get("version") != 1:
            raise ConfigurationError("clone_from_state expects a dict returned by GPFIFOSearcher.get_state().")
        clone = GPFIFOSearcher(self._config_space, self._metric, self._mode, points_to_evaluate=[],
                               random_seed=state["random_seed"], **self._user_options)
        for t in state["trials"]:
            tid = t["trial_id"]
            cost = {} if t.get("cost") is None else {self._options["cost_attr"]: t["cost"]}
            if clone._resource is not None:
                clone._record(tid, t["config"], "pending")
                for resource, metric, *costs in t["observations"]:  # with cost_attr, each report's cost
                    report = {self._metric: metric, clone._options["resource_attr"]: resource}
                    clone.on_trial_result(tid, None, {**report, **cost, **{self.cost_attr: c for c in costs}})
                clone._trials[tid].update(status=t["status"], cost=t.get("cost"))
            elif t["status"] == "observed":
                clone.on_trial_result(tid, t["config"], {self._metric: t["metric"], **cost})
            else:
                clone._record(tid, t["config"], t["status"], cost=t.get("cost"))
        clone._points = [clone._full_config(p) for p in state["points_to_evaluate"]]
        if state["restrict_configurations"] is not None:
            clone._restrict = clone._restrict_entries(state["restrict_configurations"])
        clone._counter = int(state["counter"])
        clone._params = None if state["theta"] is None else fm.params_from_json(clone._cfg, state["theta"])
        clone._n_obs_at_fit = int(state["n_obs_at_fit"])
        clone._model_data_kind = state.get("model_data", "all")  # states saved before it existed fit every one
        return clone

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def cost_attr(self) -> str | None:
        """The name of the cost in each result (``cost_attr``), or None."""
        return self._options["cost_attr"]

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def resource_attr(self) -> str | None:
        """The resource's name in results (multi-fidelity), or None."""
        return self._options["resource_attr"]
