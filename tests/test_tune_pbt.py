"""``hyperoptax tune`` with ``search.scheduler="pbt"``: lineage and schedules in the records, replay from a
workdir, options checked, and a sweep interrupted or killed anywhere resumes to the uninterrupted population."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from hyperoptax import tune
from hyperoptax.errors import ConfigurationError
from hyperoptax.tune import pbt

from test_tune_scheduled import ROOT, SLOW_CLI, Interrupt, interrupt, sigkill_after_checkpoint, timeless

CONFIG = """
from hyperoptax.tune import default_config

def get_config():
    c = default_config()
    c.model.width = 16
    c.training.n_steps = 40
    c.training.batch_size = 32
    c.training.schedule = "constant"
    c.search.scheduler = "pbt"
    c.search.n_parallel = 4
    c.search.space = {"learning_rate": "log(1e-3, 1.0)", "weight_decay": "log(1e-5, 1e-2)"}
    c.scheduler.ready_steps = 10
    c.scheduler.explore = "pb2"
    return c
"""


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "pbt.py"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def full(config_file, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("full")
    tune.tune(tune.load_config(config_file), workdir, verbose=False)
    return workdir


def test_a_pbt_sweep_records_lineage_and_schedules(full):
    results = tune.load_results(full)
    trials = results["trials"]
    assert results["finished"] and results["optimizer"] == "pbt (pb2)" and len(trials) == 4
    assert {t["status"] for t in trials} == {"completed"} and all(t["steps"] == 40 for t in trials)
    for t in trials:
        assert [e["steps"] for e in t["lineage"]] == [[0, 10], [10, 20], [20, 30], [30, 40]]
        assert [e["steps"] for e in t["schedule"]] == [[0, 10], [10, 20], [20, 30], [30, 40]]
        assert t["curve"] == [[e["steps"][1], e["metric"]] for e in t["schedule"]]
        assert t["schedule"][-1]["member"] == t["trial"] and t["params"] == t["lineage"][-1]["params"]
        for e in t["lineage"]:
            assert 1e-3 <= e["params"]["learning_rate"] <= 1.0 and 1e-5 <= e["params"]["weight_decay"] <= 1e-2
    copies = [e for t in trials for e in t["lineage"] if e["parent"] is not None]
    assert len(copies) >= 3  # at each of the three ready steps, the worst of four members (and any failure)
    assert results["best"]["metric"] == max(t["metric"] for t in trials)
    with open(full / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert sum(len(r["copied_from"].split()) for r in rows) == len(copies)  # "start<-parent" per copy
    assert {"schedules.png", "curves.png", "convergence.png"} <= set(os.listdir(full))


def test_the_best_schedule_of_a_workdir_replays(full, config_file):
    results = tune.load_results(full)
    replayed = pbt.replay(tune.load_config(config_file), full)
    # A population of one rounds differently from one of four: a borderline example may flip (1/270 each).
    np.testing.assert_allclose(replayed, [m for _, m in results["best"]["curve"]], atol=0.01)


def test_interrupted_then_resumed_equals_the_uninterrupted_sweep(full, config_file, tmp_path, monkeypatch):
    config = tune.load_config(config_file)
    with monkeypatch.context() as m:
        interrupt(m, "exploit", 2)  # in the second ready step, after two checkpoints
        with pytest.raises(Interrupt):
            tune.tune(config, tmp_path, verbose=False)
    assert tune.load_results(tmp_path)["trials"][0]["status"] == "running"
    tune.tune(config, tmp_path, verbose=False)
    assert timeless(tune.load_results(tmp_path)["trials"]) == timeless(tune.load_results(full)["trials"])


@pytest.mark.parametrize("change, match", [
    (dict(task="synthetic"), "does not train"),
    (dict(quantile=0.7), "scheduler.quantile=0.7"),
    (dict(explore="pb"), "Did you mean 'pb2'"),
    (dict(ready_steps=40), "scheduler.ready_steps=40 is not below max_steps=40"),
    (dict(min_steps=3), "scheduler.min_steps=3 is an option of asha"),
    (dict(model="rung"), "scheduler.model='rung' is an option of asha"),
    (dict(n_parallel=1), "at least 2 members"),
    (dict(space={"width": "choice(16, 32)"}), "every name in search.space"),
])
def test_bad_pbt_options_get_clear_errors(config_file, change, match, tmp_path):
    config = tune.load_config(config_file)
    for key, value in change.items():
        if key == "task":
            config.task = value
        elif key in ("n_parallel", "space"):
            config.search[key] = value
        else:
            config.scheduler[key] = value
    with pytest.raises(ConfigurationError, match=match):
        tune.tune(config, tmp_path, verbose=False)
    assert not os.listdir(tmp_path)  # a bad config leaves the workdir as it was


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_equals_the_uninterrupted_run(full, config_file, tmp_path):
    # SLOW_CLI slows every interval down, so the kill lands between (or during) checkpoints.
    command = [sys.executable, "-c", SLOW_CLI, "tune", "--config", str(config_file), "--quiet",
               "--workdir", str(tmp_path)]
    sigkill_after_checkpoint(command, tmp_path / "checkpoints", 2)
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert timeless(tune.load_results(tmp_path)["trials"]) == timeless(tune.load_results(full)["trials"])
