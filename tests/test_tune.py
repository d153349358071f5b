"""The sweep driver in-process: config parsing, the search adapters, failed trials, interruption and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

import hyperoptax as hx
from hyperoptax import tune
from hyperoptax.tune import plotting, report, tasks
from hyperoptax.errors import ConfigurationError, SpaceError


@pytest.mark.parametrize("spec, expected", [
    ("log(1e-4, 1e-1)", hx.LogSpace(1e-4, 1e-1)),
    ("linear(0, 0.5)", hx.LinearSpace(0, 0.5)),
    ("int(1, 4)", hx.QLinearSpace(1, 4)),
    ("int_log(8, 256)", hx.QLogSpace(8, 256)),
    ("log(1, 1024, base=2)", hx.LogSpace(1, 1024, base=2)),
    ("choice(32, 64, 128)", hx.DiscreteSpace([32, 64, 128])),
    ("choice('adam', 'sgd')", hx.DiscreteSpace(["adam", "sgd"])),
])
def test_parse_space_and_back(spec, expected):
    leaf = tune.parse_space(spec)
    assert leaf == expected
    assert tune.parse_space(tune.space_spec(leaf)) == leaf


@pytest.mark.parametrize("spec, match", [
    ("logg(1e-4, 1e-1)", "Did you mean 'log'"),
    ("log(1e-4", "Cannot parse"),
    ("log(x, 1)", "must be literals"),
    (0.1, "must be a string"),
    ("log(1, 2, 3, 4)", "log"),
])
def test_parse_space_errors(spec, match):
    with pytest.raises(ConfigurationError, match=match):
        tune.parse_space(spec)


def test_bad_bounds_are_space_errors_naming_the_entry():
    with pytest.raises(SpaceError, match="search.space.lr: .*positive"):
        tune.build_space({"lr": "log(0, 1)"})


def test_overrides_are_type_safe_and_typos_name_the_closest_key():
    config = tune.default_config()
    tune.apply_overrides(config, ["--config.search.n_parallel=8", "--config.search.optimizer=random",
                                  "--config.training.learning_rate=1e-2", "--config.output.plots=false",
                                  "--config.search.space.weight_decay=log(1e-6, 1e-2)", "--config.search.n_trials=10",
                                  "--config.dataset.data_dir=/data"])
    assert config.search.n_parallel == 8 and config.search.optimizer == "random"
    assert config.training.learning_rate == 0.01 and config.output.plots is False
    assert config.search.space.weight_decay == "log(1e-6, 1e-2)" and config.search.n_trials == 10
    assert config.dataset.data_dir == "/data" and tune.n_iterations_of(config) == 2
    with pytest.raises(ConfigurationError, match="Did you mean 'training.learning_rate'"):
        tune.apply_overrides(config, ["--config.training.learning_rat=1"])
    with pytest.raises(ConfigurationError, match="Did you mean 'model.width'"):
        tune.apply_overrides(config, ["model.widht=3"])
    with pytest.raises(ConfigurationError, match="expected a value of type int"):
        tune.apply_overrides(config, ["--config.search.n_parallel=many"])
    with pytest.raises(ConfigurationError, match="has no value"):
        tune.apply_overrides(config, ["--config.search.n_parallel"])


def test_config_file_typos_and_bad_choices(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("from hyperoptax.tune import default_config\n"
                    "def get_config():\n    c = default_config()\n    c.search.n_iteration = 3\n    return c\n")
    with pytest.raises(ConfigurationError, match="'search.n_iteration'.*Did you mean 'search.n_iterations'"):
        tune.load_config(path)
    with pytest.raises(ConfigurationError, match="does not exist"):
        tune.load_config(tmp_path / "missing.py")
    path.write_text("from hyperoptax.tune import default_config\ndef get_config():\n    return default_config()\n")
    with pytest.raises(ConfigurationError, match="Did you mean 'bayesian'"):
        tune.load_config(path, ["--config.search.optimizer=bayesain"])
    config = tune.load_config(path, ["--config.search.space.learnin_rate=log(1e-3, 1e-1)"])
    with pytest.raises(ConfigurationError, match="Did you mean 'learning_rate'"):
        tune.tune(config, tmp_path / "run", verbose=False)


def synthetic(optimizer="bayesian", **search):
    config = tune.default_config()
    config.task = "synthetic"
    config.search.optimizer = optimizer
    config.search.metric, config.search.mode = "value", "min"
    config.search.n_parallel, config.search.n_iterations = 2, 3
    config.search.space = {"x1": "linear(-5, 10)", "x2": "linear(0, 15)"}
    config.output.plots = False
    for key, value in search.items():
        config.search[key] = value
    return config


class Interrupt(Exception):
    pass


def interrupt_at(monkeypatch, iteration):
    """Make the task raise on its ``iteration``-th call, like a killed process."""
    make = tasks.make_task

    def make_task(config, space):
        task, calls = make(config, space), []

        def call(key, params):
            calls.append(1)
            if len(calls) == iteration + 1:
                raise Interrupt
            return task(key, params)

        return call

    monkeypatch.setattr(tasks, "make_task", make_task)


@pytest.mark.parametrize("optimizer", ["gp_fifo", "random", "grid"])
def test_interrupted_sweep_resumes_to_the_uninterrupted_result(optimizer, tmp_path, monkeypatch):
    config = synthetic(optimizer)
    if optimizer == "grid":
        config.search.space = {"x1": "choice(-3.0, 0.0, 3.0)", "x2": "int(0, 1)"}
    if optimizer == "gp_fifo":
        config.search.options = {"num_init_random": 2}
    full = tune.tune(config, tmp_path / "full", verbose=False)
    assert full["n_trials"] == 6 and full["finished"]
    with monkeypatch.context() as m:
        interrupt_at(m, 2)
        with pytest.raises(Interrupt):
            tune.tune(config, tmp_path / "cut", verbose=False)
    partial = json.loads((tmp_path / "cut" / "results.json").read_text())
    assert partial["n_trials"] == 4 and not partial["finished"]
    resumed = tune.tune(config, tmp_path / "cut", verbose=False)
    assert [t["metric"] for t in resumed["trials"]] == [t["metric"] for t in full["trials"]]
    assert [t["params"] for t in resumed["trials"]] == [t["params"] for t in full["trials"]]
    if optimizer == "grid":  # a grid visits its points in order
        assert [t["params"]["x1"] for t in full["trials"]] == [-3.0, -3.0, 0.0, 0.0, 3.0, 3.0]


def test_failed_trials_are_recorded_and_never_best(tmp_path, monkeypatch):
    make = tasks.make_task

    def make_task(config, space):
        task = make(config, space)
        return lambda key, params: np.where(np.arange(2) == 0, np.nan, task(key, params))

    monkeypatch.setattr(tasks, "make_task", make_task)
    config = synthetic("random")
    config.output.plots = True
    results = tune.tune(config, tmp_path, verbose=False)
    statuses = [t["status"] for t in results["trials"]]
    assert statuses == ["failed", "completed"] * 3 and results["n_failed"] == 3
    assert all(t["metric"] is None for t in results["trials"] if t["status"] == "failed")
    assert results["best"]["trial"] in (1, 3, 5)
    csv_rows = (tmp_path / "trials.csv").read_text().splitlines()
    assert csv_rows[1].split(",")[2:4] == ["failed", "nan"]
    assert (tmp_path / "convergence.png").stat().st_size > 0 and (tmp_path / "slices.png").stat().st_size > 0
    text = report.summary(tune.load_results(tmp_path), top_k=2)
    assert "3 failed" in text and text.count("\n   ") <= 3


def test_plots_with_categories_and_log_axes(tmp_path):
    trials = [
        {"trial": i, "iteration": i // 2, "status": "completed", "metric": 0.5 + 0.1 * i, "duration": 1.0,
         "params": {"lr": 10.0 ** -(i + 1), "opt": ["adam", "sgd"][i % 2], "width": [32, 64][i // 2]}}
        for i in range(4)
    ]
    results = {"metric": "accuracy", "mode": "max", "optimizer": "bayesian", "trials": trials, "best": trials[-1],
               "space": tune.describe_space({"lr": hx.LogSpace(1e-4, 0.1), "opt": hx.DiscreteSpace(["adam", "sgd"]),
                                             "width": hx.DiscreteSpace([32, 64])})}
    paths = plotting.render_plots(results, tmp_path)
    import matplotlib.image

    assert all(matplotlib.image.imread(p).shape[0] > 100 for p in paths)
    assert "rank" in report.top_table(results, 2)
