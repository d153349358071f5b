"""``hyperoptax tune``: whole sweeps from a config file, with checkpoints, results, plots and resume.

A config is an ``ml_collections.ConfigDict`` that starts from :func:`default_config` (the Flax examples
convention: ``configs/*.py`` define ``get_config()`` and override fields of the default). :func:`tune`
runs it in a workdir::

    from hyperoptax import tune
    config = tune.load_config("configs/digits_mlp.py", ["--config.search.n_parallel=8"])
    result = tune.tune(config, "runs/digits")
    result["best"]          # {"trial", "metric", "params", ...}

The rooms: :mod:`~hyperoptax.tune.config` (schema, loading, overrides, every check),
:mod:`~hyperoptax.tune.space_strings` (``"log(1e-4, 1e-1)"`` <-> spaces), :mod:`~hyperoptax.tune.search`
(the searches behind one interface), :mod:`~hyperoptax.tune.tasks` and :mod:`~hyperoptax.tune.models`
(what a trial evaluates), :mod:`~hyperoptax.tune.driver` (the sweep), :mod:`~hyperoptax.tune.records`
(``trials.csv`` / ``results.json``), :mod:`~hyperoptax.tune.report` and :mod:`~hyperoptax.tune.plotting`
(the results as text and figures), :mod:`~hyperoptax.tune.progress` (the console).
"""

from hyperoptax.tune.config import (
    apply_overrides,
    check_task,
    default_config,
    load_config,
    n_iterations_of,
    validate_config,
)
from hyperoptax.tune.driver import tune
from hyperoptax.tune.records import (
    CHECKPOINT_DIR,
    CONFIG_JSON,
    RESULTS_JSON,
    TRIALS_CSV,
    best_trial,
    load_results,
    write_results,
)
from hyperoptax.tune.space_strings import build_space, describe_space, parse_space, space_spec

__all__ = [
    "tune", "default_config", "load_config", "apply_overrides", "validate_config", "check_task", "n_iterations_of",
    "parse_space", "space_spec", "build_space", "describe_space",
    "best_trial", "load_results", "write_results", "TRIALS_CSV", "RESULTS_JSON", "CONFIG_JSON", "CHECKPOINT_DIR",
]
