"""The configs of ``hyperoptax tune``: the schema, loading, command-line overrides and validation.

Config files follow the Flax examples: ``get_config()`` returns an ``ml_collections.ConfigDict`` that starts
from :func:`default_config` and overrides its fields. Every check of a config lives here, so a bad config
fails before anything is built or written: unknown keys (with the closest valid spelling), choices, and the
task's own rules (which names a task can search, how many parameters a test function takes).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import os

from ml_collections import config_dict

from hyperoptax import spaces as sp
from hyperoptax.errors import ConfigurationError, check_choice, check_positive_int, closest

__all__ = [
    "default_config", "load_config", "apply_overrides", "validate_config", "check_task", "config_json",
    "n_iterations_of", "successive_halving", "pbt_rule", "training_steps", "TUNABLE", "STATIC", "SYNTHETIC_ARITY",
]

_FREE_FORM = ("search.space", "search.options")  # groups whose keys the user chooses
OPTIMIZERS = ("bayesian", "gp_fifo", "random", "grid")
SCHEDULERS = ("none", "asha", "hyperband", "pbt")
SCHEDULER_MODELS = ("resource", "rung")  # how a GP refill learns from the rungs (asha / hyperband)
MODELS = ("mlp", "cnn")
TRAINING_OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("cosine", "constant")
# Hyperparameters the classification task reads, and which of them are static (they change the program:
# shapes, step counts, code paths), so the trainer buckets members by them.
TUNABLE = {
    "model": ("width", "depth", "features", "kernel_size"),
    "training": ("n_steps", "batch_size", "optimizer", "schedule", "learning_rate", "weight_decay", "b1",
                 "momentum", "label_smoothing"),
}
STATIC = ("width", "depth", "features", "kernel_size", "n_steps", "batch_size", "optimizer", "schedule")
# Test functions of the synthetic task and how many parameters each takes (None: any number >= 2).
SYNTHETIC_ARITY = {"branin": 2, "rosenbrock": None, "sphere": None}

# ---------------------------------------------------------------------------
# The schema


def default_config() -> config_dict.ConfigDict:
    """Every field a tune config may set, with its default. Config files start from this."""
    c = config_dict.ConfigDict()
    c.seed = 0
    c.task = "classification"  # or "synthetic": a test function, no training

    c.dataset = config_dict.ConfigDict()
    c.dataset.name = "digits"  # "digits" is embedded; any other TFDS name must be prepared (array_record)
    c.dataset.data_dir = config_dict.placeholder(str)  # default ~/.cache/hyperoptax/tensorflow_datasets
    c.dataset.train_split = "train"
    c.dataset.eval_split = "validation"

    # Fixed values of the model and training; an entry of search.space with the same name overrides one.
    c.model = config_dict.ConfigDict()
    c.model.name = "mlp"  # "mlp" or "cnn"
    c.model.width = 128  # hidden units (mlp) / dense units after the convolutions (cnn)
    c.model.depth = 1  # hidden layers (mlp) / conv blocks (cnn)
    c.model.features = 32  # channels of the first conv block, doubled per block (cnn)
    c.model.kernel_size = 3  # (cnn)

    c.training = config_dict.ConfigDict()
    c.training.n_steps = 300
    c.training.batch_size = 64
    c.training.optimizer = "adamw"  # "adamw", "adam", "sgd"
    c.training.schedule = "cosine"  # "cosine" (decay to 0 over n_steps) or "constant"
    c.training.learning_rate = 1e-3
    c.training.weight_decay = 1e-4
    c.training.b1 = 0.9  # adam(w)
    c.training.momentum = 0.9  # sgd
    c.training.label_smoothing = 0.0
    c.training.eval_batch_size = config_dict.placeholder(int)

    c.synthetic = config_dict.ConfigDict()
    c.synthetic.function = "branin"  # "branin", "rosenbrock", "sphere"
    c.synthetic.noise = 0.0  # std of Gaussian noise added to every evaluation

    c.search = config_dict.ConfigDict()
    c.search.optimizer = "bayesian"  # see OPTIMIZERS
    c.search.preset = "recommended"  # bayesian: "recommended" (hx.RECOMMENDED) or "default"
    c.search.options = config_dict.ConfigDict()  # keyword options of the optimizer
    c.search.n_parallel = 4
    c.search.n_iterations = 5
    c.search.n_trials = config_dict.placeholder(int)  # if set: ceil(n_trials / n_parallel) iterations
    c.search.metric = "accuracy"  # classification: "accuracy" or "loss"; synthetic: "value"
    c.search.mode = "max"  # "max" or "min"
    c.search.space = config_dict.ConfigDict({"learning_rate": "log(1e-4, 1e-1)"})
    # Early stopping (classification): "none" trains every trial to the end; "asha" / "hyperband" stop
    # unpromising trials at rungs and refill their population slots (options in c.scheduler); "pbt" trains
    # one population of n_parallel members with population-based training.
    c.search.scheduler = "none"

    c.scheduler = config_dict.ConfigDict()
    c.scheduler.eta = 3  # a rung keeps the top 1/eta; rungs are eta times apart
    c.scheduler.min_steps = config_dict.placeholder(int)  # first rung; default max_steps // eta**2
    c.scheduler.max_steps = config_dict.placeholder(int)  # full training; default training.n_steps
    c.scheduler.n_brackets = config_dict.placeholder(int)  # hyperband: default every bracket; asha: 1
    # asha / hyperband: the first min_pairs trials at the first rung continue (and every eta-th at any rung), and a
    # rung whose selection of them would lose the next rung's winners stops pruning, the GP refills then fitting
    # each trial's latest metric only (hyperoptax.schedulers.trust); 0 is plain ASHA.
    c.scheduler.min_pairs = 6
    # asha / hyperband with search.optimizer="bayesian": how the GP that refills slots learns from the rungs.
    # "resource": one GP over (configuration, steps) that proposes at max_steps (MOBSTER-style, a GPFIFOSearcher
    # on the same GP core); "rung": a BayesianSearch GP of one rung's metrics (BOHB-style). Measured on synthetic
    # curves (benchmarks/RESULTS.md), "resource" wins where early ranking predicts and is misled far less where
    # curves cross.
    c.scheduler.model = "resource"
    c.scheduler.ready_steps = config_dict.placeholder(int)  # pbt: steps between exploits; default max_steps // 10
    c.scheduler.quantile = 0.25  # pbt: the bottom quantile copies the top one
    c.scheduler.explore = "perturb"  # pbt: "perturb" (x0.8 / x1.2), "resample" or "pb2" (GP-UCB)
    c.scheduler.resample_probability = 0.25  # pbt, explore="resample": chance of a fresh draw per value

    c.output = config_dict.ConfigDict()
    c.output.top_k = 5  # rows of the final table
    c.output.plots = True
    return c


def _paths(cfg, prefix="") -> list[str]:
    out = []
    for key, value in cfg.items():
        out.append(prefix + key)
        if isinstance(value, config_dict.ConfigDict) and (prefix + key) not in _FREE_FORM:
            out += _paths(value, prefix + key + ".")
    return out


def _unknown_key_error(path: str, valid: list[str], where: str) -> ConfigurationError:
    return ConfigurationError(
        f"Unknown config key {path!r} ({where}).{closest(path, valid) or ' Valid keys: ' + ', '.join(valid) + '.'}"
    )


def validate_config(config) -> None:
    """Every key must be one of :func:`default_config` (search.space / search.options are free-form)."""
    valid = _paths(default_config())
    for path in _paths(config):
        if path not in valid and not any(path.startswith(f + ".") for f in _FREE_FORM):
            raise _unknown_key_error(path, valid, "in the config file")
    check_choice("task", config.task, ("classification", "synthetic"))
    check_choice("search.optimizer", config.search.optimizer, OPTIMIZERS)
    check_choice("search.mode", config.search.mode, ("max", "min"))
    check_choice("search.preset", config.search.preset, ("recommended", "default"))
    check_choice("search.scheduler", config.search.scheduler, SCHEDULERS)
    if config.search.scheduler == "pbt":
        pbt_rule(config)  # checks the scheduler's options
    elif config.search.scheduler != "none":
        successive_halving(config)


def training_steps(config) -> int:
    """How many steps a trial trains at most: ``scheduler.max_steps`` under a scheduler (when set), else
    ``training.n_steps``; learning-rate schedules decay over it."""
    if config.search.scheduler != "none" and config.scheduler.max_steps is not None:
        return config.scheduler.max_steps
    return config.training.n_steps


def successive_halving(config):
    """The :class:`~hyperoptax.schedulers.SuccessiveHalving` rules of a config with an ASHA / Hyperband scheduler."""
    from hyperoptax.schedulers import SuccessiveHalving

    c, s = config.scheduler, config.search
    if config.task != "classification":
        raise ConfigurationError(
            f"search.scheduler={s.scheduler!r} stops trainings early; task={config.task!r} does not train. "
            f"Use search.scheduler='none'."
        )
    if s.optimizer == "grid":
        raise ConfigurationError(
            "search.scheduler refills stopped trials with new configurations; search.optimizer='grid' has a fixed "
            "list. Use 'bayesian', 'gp_fifo' or 'random'."
        )
    max_steps = training_steps(config)
    check_positive_int("scheduler.min_pairs", c.min_pairs, minimum=0)
    check_choice("scheduler.model", c.model, SCHEDULER_MODELS)
    if c.model == "rung" and s.optimizer != "bayesian":
        raise ConfigurationError(
            f"scheduler.model='rung' models one rung with BayesianSearch; search.optimizer={s.optimizer!r} "
            f"{'always takes the steps as a GP input' if s.optimizer == 'gp_fifo' else 'has no model'}. "
            f"Use search.optimizer='bayesian', or leave scheduler.model='resource'."
        )
    if c.model == "resource" and s.optimizer == "bayesian" and len(s.options):
        raise ConfigurationError(
            f"search.options={s.options.to_dict()!r} are BayesianSearch options, but with a scheduler and "
            f"scheduler.model='resource' the slots are refilled by a GPFIFOSearcher over (configuration, steps). "
            f"Pass GPFIFOSearcher options with search.optimizer='gp_fifo', or use scheduler.model='rung'."
        )
    try:
        rule = SuccessiveHalving(max_steps, c.min_steps, c.eta, 1, s.mode == "max")
        if s.scheduler == "hyperband":
            rule = SuccessiveHalving(max_steps, c.min_steps, c.eta, c.n_brackets or rule.s_max + 1, s.mode == "max")
        elif c.n_brackets not in (None, 1):
            raise ConfigurationError(
                f"n_brackets={c.n_brackets}: ASHA has one bracket. Use search.scheduler='hyperband' for several."
            )
    except ConfigurationError as err:
        raise ConfigurationError(f"scheduler.{err}") from None
    return rule


def pbt_rule(config):
    """The :class:`~hyperoptax.schedulers.PBT` rules of a config with ``search.scheduler="pbt"``."""
    from hyperoptax.schedulers import PBT

    c, s = config.scheduler, config.search
    if config.task != "classification":
        raise ConfigurationError(
            f"search.scheduler='pbt' trains a population; task={config.task!r} does not train. Use search.scheduler='none'."
        )
    defaults = default_config().scheduler
    for name in ("min_steps", "n_brackets", "model"):
        if c[name] != defaults[name]:
            raise ConfigurationError(
                f"scheduler.{name}={c[name]!r} is an option of asha / hyperband; search.scheduler='pbt' uses "
                f"scheduler.ready_steps, quantile, explore and resample_probability. Remove it."
            )
    if s.n_parallel < 2:
        raise ConfigurationError(
            f"search.n_parallel={s.n_parallel}: population-based training needs at least 2 members (one to copy "
            f"from). Use e.g. search.n_parallel=8."
        )
    max_steps = c.max_steps if c.max_steps is not None else config.training.n_steps
    ready = c.ready_steps if c.ready_steps is not None else max(1, max_steps // 10)
    try:
        rule = PBT(ready, c.quantile, c.explore, resample_probability=c.resample_probability, maximize=s.mode == "max")
    except ConfigurationError as err:
        raise ConfigurationError(f"scheduler.{err}") from None
    if ready >= max_steps:
        raise ConfigurationError(
            f"scheduler.ready_steps={ready} is not below max_steps={max_steps}: the population would never be "
            f"ready. Use e.g. scheduler.ready_steps={max(1, max_steps // 10)}."
        )
    return rule, max_steps


def check_task(config, space: dict[str, sp.Space]) -> None:
    """The task's rules for the searched ``space`` (built from ``config.search.space``)."""
    if config.task == "synthetic":
        name = config.synthetic.function
        check_choice("synthetic.function", name, SYNTHETIC_ARITY)
        arity = SYNTHETIC_ARITY[name]
        if arity is not None and len(space) != arity:
            raise ConfigurationError(
                f"synthetic.function={name!r} takes {arity} parameters, but search.space has "
                f"{len(space)} ({', '.join(space)}). Use e.g. {{'x1': 'linear(-5, 10)', 'x2': 'linear(0, 15)'}}."
            )
        if arity is None and len(space) < 2 and name == "rosenbrock":
            raise ConfigurationError("synthetic.function='rosenbrock' needs at least 2 parameters in search.space.")
        return
    check_choice("model.name", config.model.name, MODELS)
    check_choice("search.metric", config.search.metric, ("accuracy", "loss"))
    tunable = TUNABLE["model"] + TUNABLE["training"]
    if config.search.scheduler != "none" and "n_steps" in space:
        raise ConfigurationError(
            f"search.space.n_steps: with search.scheduler={config.search.scheduler!r} the scheduler decides how long "
            f"each trial trains (up to scheduler.max_steps). Remove n_steps from the space."
        )
    for name in space:
        if name not in tunable:
            raise ConfigurationError(
                f"search.space.{name}: the classification task has no hyperparameter {name!r}. Tunable: "
                f"{', '.join(tunable)}.{closest(name, tunable)}"
            )
    if config.search.scheduler == "pbt" and all(static_name(name, leaf) for name, leaf in space.items()):
        raise ConfigurationError(
            f"search.scheduler='pbt' explores traced hyperparameters, but every name in search.space "
            f"({', '.join(space)}) is static (it changes the program). Search e.g. learning_rate or weight_decay."
        )
    for name, allowed in (("optimizer", TRAINING_OPTIMIZERS), ("schedule", SCHEDULES)):
        check_choice(f"training.{name}", config.training[name], allowed)
        for value in getattr(space.get(name), "values", ()):
            check_choice(f"search.space.{name} value", value, allowed)


def static_name(name: str, leaf) -> bool:
    """Whether the classification task treats ``name`` as static (trainer buckets) rather than traced."""
    return name in STATIC or (isinstance(leaf, sp.DiscreteSpace) and leaf.is_categorical)


# ---------------------------------------------------------------------------
# Loading and overrides


def load_config(path, overrides=()) -> config_dict.ConfigDict:
    """Load ``get_config()`` from a config file, apply ``--config.a.b=value`` overrides, validate."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigurationError(f"Config file {path!r} does not exist. Pass e.g. --config configs/digits_mlp.py.")
    spec = importlib.util.spec_from_file_location(f"_hyperoptax_config_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        if not hasattr(module, "get_config"):
            raise ConfigurationError(f"Config file {path!r} defines no get_config() function.")
        config = module.get_config()
    except (TypeError, AttributeError, KeyError) as err:
        raise ConfigurationError(f"Config file {path!r} failed: {type(err).__name__}: {err}") from None
    if not isinstance(config, config_dict.ConfigDict):
        raise ConfigurationError(f"get_config() in {path!r} must return an ml_collections.ConfigDict.")
    validate_config(config)
    apply_overrides(config, overrides)
    validate_config(config)
    return config


def _parse_value(raw: str, current, field_type):
    if field_type is bool or isinstance(current, bool):
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        return raw
    if raw.strip() in ("None", "none", "null"):
        return None
    if field_type is str or isinstance(current, str):
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            return raw[1:-1]
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def apply_overrides(config, overrides) -> None:
    """Apply ``"--config.a.b=value"`` / ``"a.b=value"`` strings with ml_collections' type-safe assignment.

    A misspelled key raises ConfigurationError naming the closest valid key.
    """
    valid = _paths(config)
    for item in overrides:
        text = item[len("--config."):] if item.startswith("--config.") else item
        dotted, sep, raw = text.partition("=")
        if not sep:
            raise ConfigurationError(f"Override {item!r} has no value. Write --config.{dotted}=VALUE.")
        parts = dotted.split(".")
        node = config
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, config_dict.ConfigDict) else None
            if not isinstance(child, config_dict.ConfigDict):
                raise _unknown_key_error(dotted, valid, f"in --config.{dotted}")
            node = child
        parent, last = ".".join(parts[:-1]), parts[-1]
        free = parent in _FREE_FORM
        if last not in node and not free:
            raise _unknown_key_error(dotted, valid, f"in --config.{dotted}")
        current = node.get(last)
        try:
            field_type = node.get_type(last) if last in node else None
        except (KeyError, AttributeError):
            field_type = None
        value = _parse_value(raw, current, field_type)
        try:
            node[last] = value
        except TypeError:
            expected = field_type.__name__ if field_type is not None else type(current).__name__
            raise ConfigurationError(
                f"--config.{dotted}={raw!r}: expected a value of type {expected} (the current value is {current!r})."
            ) from None


def config_json(config) -> dict:
    """The config as plain JSON types (what ``config.json`` and ``results.json`` hold)."""
    return json.loads(config.to_json_best_effort(sort_keys=True))


def n_iterations_of(config) -> int:
    """Iterations of the sweep: ``search.n_iterations``, or enough batches for ``search.n_trials``."""
    s = config.search
    if s.n_trials is not None:
        return max(1, math.ceil(s.n_trials / s.n_parallel))
    return s.n_iterations
