"""The sweep driver behind ``hyperoptax tune``: config -> space, search, trainer -> checkpointed sweep -> results.

A config is an ``ml_collections.ConfigDict`` that starts from :func:`default_config` (the Flax examples
convention: ``configs/*.py`` define ``get_config()`` and override fields of the default). :func:`tune`
runs it in a workdir::

    from hyperoptax import tune
    config = tune.load_config("configs/digits_mlp.py", ["--config.search.n_parallel=8"])
    result = tune.tune(config, "runs/digits")
    result["best"]          # {"trial", "metric", "params"}

Every iteration ``i`` uses ``k_suggest, k_eval, k_update = split(fold_in(key(seed), i), 3)`` and ends with
a checkpoint (search state + trial records), so a run resumed from its workdir produces exactly the trials of
an uninterrupted one. ``trials.csv`` and ``results.json`` are rewritten after every iteration, the plots at
the end (see :mod:`hyperoptax.plotting`).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import shutil
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import config_dict

from hyperoptax import spaces as sp
from hyperoptax.bayesian import RECOMMENDED, BayesianSearch
from hyperoptax.errors import CheckpointError, ConfigurationError, HyperoptaxError, check_choice, closest
from hyperoptax.grid import GridSearch
from hyperoptax.random import RandomSearch

__all__ = [
    "default_config", "load_config", "apply_overrides", "parse_space", "space_spec", "build_space",
    "tune", "TRIALS_CSV", "RESULTS_JSON", "CONFIG_JSON", "CHECKPOINT_DIR",
]

TRIALS_CSV, RESULTS_JSON, CONFIG_JSON, CHECKPOINT_DIR = "trials.csv", "results.json", "config.json", "checkpoints"
CONVERGENCE_PNG, SLICES_PNG = "convergence.png", "slices.png"
_OUTPUTS = (TRIALS_CSV, RESULTS_JSON, CONFIG_JSON, CONVERGENCE_PNG, SLICES_PNG)
_FREE_FORM = ("search.space", "search.options")  # groups whose keys the user chooses
_OPTIMIZERS = ("bayesian", "gp_fifo", "random", "grid")
# Config fields that may differ between a run and its resumption.
_RESUME_HARMLESS = ("output.",)

# ---------------------------------------------------------------------------
# Search spaces written as strings


_SPACE_KINDS = {
    "linear": sp.LinearSpace, "log": sp.LogSpace, "int": sp.QLinearSpace, "qlinear": sp.QLinearSpace,
    "int_log": sp.QLogSpace, "qlog": sp.QLogSpace, "choice": sp.DiscreteSpace,
}


def parse_space(spec) -> sp.Space:
    """``"log(1e-4, 1e-1)"``, ``"linear(0, 0.5)"``, ``"int(1, 4)"``, ``"int_log(8, 256)"``,
    ``"choice(32, 64)"``, ``"choice('adam', 'sgd')"`` (or a Space) -> a hyperoptax Space."""
    if isinstance(spec, sp.Space):
        return spec
    example = "Write e.g. 'log(1e-4, 1e-1)', 'linear(0, 0.5)', 'int(1, 4)' or \"choice('adam', 'sgd')\"."
    if not isinstance(spec, str):
        raise ConfigurationError(f"A search space must be a string such as 'log(1e-4, 1e-1)', got {spec!r}. {example}")
    try:
        node = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError:
        node = None
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise ConfigurationError(f"Cannot parse the search space {spec!r}. {example}")
    kind = node.func.id
    if kind not in _SPACE_KINDS:
        raise ConfigurationError(
            f"Unknown search space kind {kind!r} in {spec!r}. Allowed: {', '.join(_SPACE_KINDS)}."
            f"{closest(kind, _SPACE_KINDS)}"
        )
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    except ValueError:
        raise ConfigurationError(f"The arguments of {spec!r} must be literals (numbers, strings). {example}") from None
    if kind == "choice":
        return sp.DiscreteSpace(tuple(args), **kwargs)
    try:
        return _SPACE_KINDS[kind](*args, **kwargs)
    except TypeError as err:
        raise ConfigurationError(f"{spec!r}: {err}. {example}") from None


def space_spec(leaf: sp.Space) -> str:
    """The string form of a Space (inverse of :func:`parse_space`)."""
    if isinstance(leaf, sp.DiscreteSpace):
        return f"choice({', '.join(repr(v) for v in leaf.values)})"
    kind = {sp.QLogSpace: "int_log", sp.QLinearSpace: "int", sp.LogSpace: "log", sp.LinearSpace: "linear"}[type(leaf)]
    base = f", base={leaf.base!r}" if isinstance(leaf, sp.LogSpace) and leaf.base != 10 else ""
    return f"{kind}({leaf.lower_bound!r}, {leaf.upper_bound!r}{base})"


def build_space(space_config) -> dict[str, sp.Space]:
    """``config.search.space`` (name -> spec string; None drops an entry) -> dict of Spaces."""
    items = dict(space_config.items()) if space_config is not None else {}
    space = {}
    for name, spec in items.items():
        if spec is None:
            continue
        try:
            space[name] = parse_space(spec)
        except HyperoptaxError as err:
            raise type(err)(f"search.space.{name}: {err}") from None
    if not space:
        raise ConfigurationError(
            "config.search.space is empty. Add e.g. config.search.space = {'learning_rate': 'log(1e-4, 1e-1)'}."
        )
    return space


# ---------------------------------------------------------------------------
# Configs


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
    c.search.optimizer = "bayesian"  # "bayesian", "gp_fifo", "random", "grid"
    c.search.preset = "recommended"  # bayesian: "recommended" (hx.RECOMMENDED) or "default"
    c.search.options = config_dict.ConfigDict()  # keyword options of the optimizer
    c.search.n_parallel = 4
    c.search.n_iterations = 5
    c.search.n_trials = config_dict.placeholder(int)  # if set: ceil(n_trials / n_parallel) iterations
    c.search.metric = "accuracy"  # classification: "accuracy" or "loss"; synthetic: "value"
    c.search.mode = "max"  # "max" or "min"
    c.search.space = config_dict.ConfigDict({"learning_rate": "log(1e-4, 1e-1)"})

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
    check_choice("search.optimizer", config.search.optimizer, _OPTIMIZERS)
    check_choice("search.mode", config.search.mode, ("max", "min"))
    check_choice("search.preset", config.search.preset, ("recommended", "default"))


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


def _config_json(config) -> dict:
    return json.loads(config.to_json_best_effort(sort_keys=True))


# ---------------------------------------------------------------------------
# Searches: one interface over the synchronous optimizers and the ask/tell searcher


class _OptimizerSearch:
    """BayesianSearch / RandomSearch / GridSearch behind suggest / tell; its state is a pytree."""

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
            self.state, self.optimizer = cls.init(space, **kwargs)
        except TypeError as err:
            allowed = [f.name for f in dataclasses.fields(cls)]
            bad = next((k for k in options if k not in allowed), None)
            if bad is None:
                raise
            raise ConfigurationError(
                f"search.options.{bad} is not an option of {cls.__name__}. Allowed: {', '.join(allowed)}."
                f"{closest(bad, allowed)}"
            ) from None
        self.space = space

    def suggest(self, key, first_trial):
        return self.optimizer.get_next_params(self.state, key)

    def tell(self, key, params, results, first_trial):
        self.state = self.optimizer.update_state(self.state, key, jnp.asarray(results), params)

    def checkpoint(self):
        return self.state, None

    def restore(self, search_state, saved):
        self.state = search_state


class _FIFOSearch:
    """GPFIFOSearcher asked for ``n_parallel`` configurations per iteration (pending ones are fantasized)."""

    def __init__(self, config, space, n_trials, key):
        from hyperoptax.searchers import GPFIFOSearcher

        s = config.search
        self.space, self.n_parallel, self.metric = space, s.n_parallel, s.metric
        self.searcher = GPFIFOSearcher(space, metric=s.metric, mode=s.mode, random_seed=int(config.seed),
                                       **s.options.to_dict())
        self._configs = []

    def suggest(self, key, first_trial):
        configs = [self.searcher.get_config(trial_id=first_trial + j) for j in range(self.n_parallel)]
        if any(c is None for c in configs):
            raise ConfigurationError("gp_fifo: the search space is exhausted; run fewer trials.")
        self._configs = configs
        leaves = {}
        for name, leaf in self.space.items():
            values = [c[name] for c in configs]
            if isinstance(leaf, sp.DiscreteSpace) and leaf.is_categorical:
                values = [leaf.values.index(v) for v in values]
            leaves[name] = jnp.asarray(np.asarray(values), leaf.dtype)
        return leaves

    def tell(self, key, params, results, first_trial):
        for j, (config, value) in enumerate(zip(self._configs, np.asarray(results))):
            self.searcher.on_trial_result(first_trial + j, config, {self.metric: float(value)})

    def checkpoint(self):
        return {"told": np.zeros((), np.int32)}, self.searcher.get_state()

    def restore(self, search_state, saved):
        self.searcher = self.searcher.clone_from_state(saved)


def _make_search(config, space, n_trials, key):
    cls = _FIFOSearch if config.search.optimizer == "gp_fifo" else _OptimizerSearch
    return cls(config, space, n_trials, key)


# ---------------------------------------------------------------------------
# Trial records and output files


def _records(first_trial, iteration, space, params, results, duration) -> list[dict]:
    decoded = sp.decode_params(space, jax.tree.map(np.asarray, params))
    records = []
    for j, value in enumerate(np.asarray(results, np.float64).reshape(-1)):
        ok = bool(np.isfinite(value))
        records.append({
            "trial": first_trial + j,
            "iteration": iteration,
            "status": "ok" if ok else "failed",
            "metric": float(value) if ok else None,
            "duration": round(float(duration), 4),
            "params": {name: decoded[name][j] for name in space},
        })
    return records


def best_trial(trials, mode):
    ok = [t for t in trials if t["status"] == "ok"]
    if not ok:
        return None
    return (max if mode == "max" else min)(ok, key=lambda t: t["metric"])


def _write_atomic(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_results(workdir, config, space, trials, *, finished, n_iterations, wall_time):
    """Write ``trials.csv`` and ``results.json`` (every trial so far)."""
    s = config.search
    names = list(space)
    header = ["trial", "iteration", "status", s.metric, "duration_s", *names]
    lines = [",".join(header)]
    for t in trials:
        metric = "nan" if t["metric"] is None else repr(t["metric"])
        values = [_csv_cell(t["params"][n]) for n in names]
        lines.append(",".join([str(t["trial"]), str(t["iteration"]), t["status"], metric, repr(t["duration"]), *values]))
    _write_atomic(os.path.join(workdir, TRIALS_CSV), "\n".join(lines) + "\n")
    results = {
        "metric": s.metric,
        "mode": s.mode,
        "optimizer": s.optimizer,
        "finished": finished,
        "n_iterations": n_iterations,
        "iterations_done": (max(t["iteration"] for t in trials) + 1) if trials else 0,
        "n_trials": len(trials),
        "n_failed": sum(t["status"] == "failed" for t in trials),
        "wall_time_s": round(wall_time, 3),
        "best": best_trial(trials, s.mode),
        "space": {name: space_spec(leaf) for name, leaf in space.items()},
        "trials": trials,
        "config": _config_json(config),
    }
    _write_atomic(os.path.join(workdir, RESULTS_JSON), json.dumps(results, indent=1) + "\n")
    return results


def _csv_cell(value) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    return f'"{text}"' if ("," in text or '"' in text) else text


# ---------------------------------------------------------------------------
# Resume bookkeeping


def _diff(a, b, prefix=""):
    keys = sorted(set(a) | set(b)) if isinstance(a, dict) and isinstance(b, dict) else None
    if keys is None:
        return [] if a == b else [prefix.rstrip(".")]
    out = []
    for k in keys:
        if k not in a or k not in b:
            out.append(prefix + k)
        else:
            out += _diff(a[k], b[k], prefix + k + ".")
    return out


def _check_resumable(workdir, config):
    path = os.path.join(workdir, CONFIG_JSON)
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    changed = [k for k in _diff(saved, _config_json(config)) if not k.startswith(_RESUME_HARMLESS)]
    if changed:
        raise ConfigurationError(
            f"The workdir {workdir!r} holds a checkpoint of a sweep with a different config "
            f"(changed: {', '.join(changed)}); resuming it would mix two sweeps. Rerun with --fresh to start "
            f"over (this deletes the checkpoints and results there), use another --workdir, or restore the "
            f"original config (saved in {path})."
        )


def _clear(workdir):
    shutil.rmtree(os.path.join(workdir, CHECKPOINT_DIR), ignore_errors=True)
    for name in _OUTPUTS:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(workdir, name))


# ---------------------------------------------------------------------------
# The driver


def _say(message, verbose):
    if verbose:
        from tqdm.auto import tqdm

        tqdm.write(message, file=sys.stdout)
        sys.stdout.flush()


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _iteration_line(i, n_iterations, metric, records, best, seconds):
    members = " | ".join(_member_text(r) for r in records)
    best_text = "none yet" if best is None else f"{best['metric']:.4f} (trial {best['trial']})"
    return f"[iter {i + 1}/{n_iterations}] {seconds:.1f}s {metric}: {members} || best {best_text}"


def _member_text(record) -> str:
    value = "failed" if record["metric"] is None else f"{record['metric']:.4f}"
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in record["params"].items())
    return f"{value} ({params})"


def n_iterations_of(config) -> int:
    s = config.search
    if s.n_trials is not None:
        return max(1, math.ceil(s.n_trials / s.n_parallel))
    return s.n_iterations


def tune(config, workdir, *, fresh: bool = False, verbose: bool = True) -> dict:
    """Run (or resume) the sweep ``config`` describes in ``workdir``; returns the results dict.

    Writes ``config.json``, ``checkpoints/`` (after every iteration), ``trials.csv`` and ``results.json``
    (after every iteration) and, at the end, ``convergence.png`` and ``slices.png``.
    """
    from hyperoptax import tune_tasks
    from hyperoptax.integrations.orbax import SweepCheckpointer

    validate_config(config)
    workdir = os.path.abspath(os.fspath(workdir))
    os.makedirs(workdir, exist_ok=True)
    s = config.search
    space = build_space(s.space)
    n_iterations = n_iterations_of(config)
    n_trials = n_iterations * s.n_parallel
    key = jax.random.key(int(config.seed))
    ckpt_dir = os.path.join(workdir, CHECKPOINT_DIR)

    has_checkpoint = os.path.isdir(ckpt_dir) and any(n.isdigit() for n in os.listdir(ckpt_dir))
    if has_checkpoint and not fresh:
        _check_resumable(workdir, config)
    # Build (and check) everything before touching the workdir: a bad config leaves it as it was.
    task = tune_tasks.make_task(config, space)
    search = _make_search(config, space, n_trials, key)
    if fresh or not has_checkpoint:
        _clear(workdir)
    _write_atomic(os.path.join(workdir, CONFIG_JSON), json.dumps(_config_json(config), indent=1, sort_keys=True) + "\n")

    start, trials, elapsed_before = 0, [], 0.0
    with SweepCheckpointer(ckpt_dir, max_to_keep=2) as checkpointer:
        if checkpointer.latest_step() is not None:
            template, _ = search.checkpoint()
            restored = checkpointer.restore(template)
            info = restored.metadata.get("tune")
            if not isinstance(info, dict):
                raise CheckpointError(f"The checkpoint in {ckpt_dir} was not written by hyperoptax tune. Rerun with --fresh.")
            start, trials = int(info["iterations_done"]), list(info["trials"])
            elapsed_before = float(info.get("wall_time_s", 0.0))
            search.restore(restored.search_state, info.get("searcher"))
            _say(f"Resuming {workdir}: {start} of {n_iterations} iterations ({len(trials)} trials) already done.", verbose)
        else:
            _say(f"Starting a sweep of {n_iterations} iterations x {s.n_parallel} trials in {workdir}.", verbose)

        t0 = time.perf_counter()
        bar = _progress(start, n_iterations, verbose)
        best = best_trial(trials, s.mode)
        _update_bar(bar, best, s.metric)
        try:
            for i in range(start, n_iterations):
                t_iter = time.perf_counter()
                k_suggest, k_eval, k_update = jax.random.split(jax.random.fold_in(key, i), 3)
                params = search.suggest(k_suggest, len(trials))
                t_eval = time.perf_counter()
                results = np.asarray(task(k_eval, params), np.float64)
                duration = time.perf_counter() - t_eval
                search.tell(k_update, params, results, len(trials))
                records = _records(len(trials), i, space, params, results, duration)
                trials += records
                best = best_trial(trials, s.mode)
                wall = elapsed_before + time.perf_counter() - t0
                search_state, searcher_state = search.checkpoint()
                checkpointer.save(i + 1, search_state=search_state, force=True, metadata={"tune": {
                    "iterations_done": i + 1, "trials": trials, "searcher": searcher_state, "wall_time_s": wall,
                }})
                write_results(workdir, config, space, trials, finished=False, n_iterations=n_iterations, wall_time=wall)
                _say(_iteration_line(i, n_iterations, s.metric, records, best, time.perf_counter() - t_iter), verbose)
                if bar is not None:
                    bar.update(1)
                    _update_bar(bar, best, s.metric)
        finally:
            if bar is not None:
                bar.close()
        checkpointer.wait_until_finished()
    wall = elapsed_before + time.perf_counter() - t0
    results = write_results(workdir, config, space, trials, finished=True, n_iterations=n_iterations, wall_time=wall)
    from hyperoptax import plotting

    if config.output.plots:
        plotting.render_plots(results, workdir)
    _say(plotting.summary(results, top_k=config.output.top_k, workdir=workdir), verbose)
    return results


def _progress(start, total, verbose):
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="tune", unit="iter", file=sys.stderr, dynamic_ncols=True, disable=None,
                bar_format="{desc}: {n_fmt}/{total_fmt} iter |{bar}| [{elapsed}<{remaining}]{postfix}")


def _update_bar(bar, best, metric):
    if bar is not None:
        bar.set_postfix_str(f"best {metric}={'-' if best is None else format(best['metric'], '.4f')}")
