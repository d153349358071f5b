"""``hyperoptax tune`` with a scheduler: options checked, curves recorded, interrupted anywhere and resumed exactly."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hyperoptax import tune
from hyperoptax.errors import ConfigurationError
from hyperoptax.integrations.flax import PopulationTrainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scheduled(optimizer="bayesian", scheduler="asha", **options):
    config = tune.default_config()
    config.model.width = 16
    config.training.n_steps = 27
    config.training.batch_size = 32
    config.search.optimizer = optimizer
    config.search.scheduler = scheduler
    config.search.n_parallel, config.search.n_iterations = 2, 3
    config.search.space = {"learning_rate": "log(1e-3, 1.0)", "weight_decay": "log(1e-5, 1e-2)"}
    config.scheduler.min_steps = 3
    config.scheduler.min_pairs = 0  # plain ASHA: this small budget would otherwise go to the first trials
    config.output.plots = False
    for key, value in options.items():
        config.scheduler[key] = value
    return config


def timeless(trials):
    return [{k: v for k, v in t.items() if k != "duration"} for t in trials]


class Interrupt(Exception):
    pass


def interrupt(monkeypatch, method, call):
    """Make ``PopulationTrainer.<method>`` raise on its ``call``-th call, like a process killed there."""
    original, calls = getattr(PopulationTrainer, method), []

    def wrapped(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise Interrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PopulationTrainer, method, wrapped)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    return tune.tune(scheduled(), tmp_path_factory.mktemp("full"), verbose=False)


def test_a_scheduled_sweep_records_curves_steps_and_statuses(full):
    trials = full["trials"]
    assert full["finished"] and len(trials) > 2 and {t["status"] for t in trials} <= {"completed", "stopped", "failed"}
    assert full["n_stopped"] == sum(t["status"] == "stopped" for t in trials) > 0
    for t in trials:
        assert [s for s, _ in t["curve"]] == [3, 9, 27][: len(t["curve"])] or t["status"] != "completed"
        assert t["steps"] == (t["curve"][-1][0] if t["curve"] else t["steps"])
        assert t["metric"] == (t["curve"][-1][1] if t["status"] != "failed" else None)
    # Every trial trained was paid for by the budget: n_iterations * n_parallel * max_steps member-steps.
    assert sum(t["steps"] for t in trials) <= 3 * 2 * 27
    best = full["best"]
    assert best["steps"] == max(t["steps"] for t in trials if t["metric"] is not None)


@pytest.mark.parametrize("method, call", [("train_and_evaluate", 4), ("refill", 2), ("refill", 4)])
def test_interrupted_anywhere_resumes_to_the_uninterrupted_trials(full, tmp_path, monkeypatch, method, call):
    config = scheduled()
    with monkeypatch.context() as m:
        interrupt(m, method, call)
        with pytest.raises(Interrupt):
            tune.tune(config, tmp_path, verbose=False)
    resumed = tune.tune(config, tmp_path, verbose=False)
    assert timeless(resumed["trials"]) == timeless(full["trials"])


def test_random_refills_and_hyperband_brackets(tmp_path):
    results = tune.tune(scheduled("random", "hyperband"), tmp_path, verbose=False)
    levels = {tuple(s for s, _ in t["curve"]) for t in results["trials"] if t["status"] == "completed"}
    assert levels <= {(3, 9, 27), (9, 27), (27,)}  # each bracket's own rungs
    assert (tmp_path / "trials.csv").exists()


@pytest.mark.parametrize("change, match", [
    (dict(task="synthetic"), "does not train"),
    (dict(optimizer="grid"), "fixed list"),
    (dict(min_steps=30), "scheduler.min_steps=30 is larger than max_steps=27"),
    (dict(eta=1), "scheduler.eta"),
    (dict(n_brackets=2), "ASHA has one bracket"),
    (dict(scheduler="asha_"), "Did you mean 'asha'"),
    (dict(model="bohb"), "scheduler.model='bohb' is not supported"),
    (dict(optimizer="random", model="rung"), "models one rung with BayesianSearch"),
])
def test_bad_scheduler_options_get_clear_errors(change, match, tmp_path):
    config = scheduled()
    for key, value in change.items():
        if key in ("task",):
            config[key] = value
        elif key in ("optimizer", "scheduler"):
            config.search[key] = value
        else:
            config.scheduler[key] = value
    with pytest.raises(ConfigurationError, match=match):
        tune.tune(config, tmp_path, verbose=False)
    assert not os.listdir(tmp_path)  # a bad config leaves the workdir as it was


def test_the_gp_refills_take_the_steps_as_an_input_unless_told_to_model_one_rung(tmp_path):
    from hyperoptax.schedulers import OptimizerRefills, SearcherRefills
    from hyperoptax.tune.config import successive_halving
    from hyperoptax.tune.scheduled import _refills
    from hyperoptax.tune.space_strings import build_space

    config = scheduled()
    space, rule = build_space(config.search.space), successive_halving(config)
    refills = _refills(config, space, rule)
    assert isinstance(refills, SearcherRefills)  # MOBSTER-style: measured level with full fidelity on crossing curves
    assert refills.searcher.resource_attr == "steps" and refills.searcher._options["max_resource"] == rule.max_steps
    config.scheduler.model = "rung"
    assert isinstance(_refills(config, space, rule), OptimizerRefills)  # BOHB-style
    # BayesianSearch options cannot configure the GPFIFOSearcher that refills by default.
    config.scheduler.model = "resource"
    config.search.options = {"n_candidates": 64}
    with pytest.raises(ConfigurationError, match="are BayesianSearch options"):
        tune.tune(config, tmp_path, verbose=False)


def test_searching_n_steps_under_a_scheduler_is_refused(tmp_path):
    config = scheduled()
    config.search.space = {"learning_rate": "log(1e-3, 1.0)", "n_steps": "choice(9, 27)"}
    with pytest.raises(ConfigurationError, match="the scheduler decides how long"):
        tune.tune(config, tmp_path, verbose=False)


CONFIG = """
from hyperoptax.tune import default_config

def get_config():
    c = default_config()
    c.model.width = 16
    c.training.n_steps = 27
    c.training.batch_size = 32
    c.search.scheduler = "asha"
    c.search.n_parallel, c.search.n_iterations = 2, 4
    c.search.space = {"learning_rate": "log(1e-3, 1.0)", "weight_decay": "log(1e-5, 1e-2)"}
    c.scheduler.min_steps = 3
    c.scheduler.min_pairs = 0
    c.output.plots = False
    return c
"""
# Every segment slowed down, so the test can kill the process between (or during) checkpoints.
SLOW_CLI = """
import sys, time
from hyperoptax.integrations.flax import PopulationTrainer
segment = PopulationTrainer.train_and_evaluate
def slow(self, *args):
    time.sleep(0.3)
    return segment(self, *args)
PopulationTrainer.train_and_evaluate = slow
from hyperoptax.cli import main
sys.exit(main())
"""


def _rows(workdir):
    with open(workdir / "trials.csv") as f:
        return [{k: v for k, v in r.items() if k != "duration_s"} for r in csv.DictReader(f)]


def sigkill_after_checkpoint(command, checkpoints, step):
    """Run ``command`` and SIGKILL it as soon as ``checkpoints`` holds a step >= ``step``."""
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            steps = [n for n in os.listdir(checkpoints) if n.isdigit()] if checkpoints.is_dir() else []
            if steps and max(map(int, steps)) >= step:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-2000:]


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_equals_the_uninterrupted_run(tmp_path):
    config = tmp_path / "tiny.py"
    config.write_text(CONFIG)
    command = [sys.executable, "-c", SLOW_CLI, "tune", "--config", str(config), "--quiet"]
    full = subprocess.run([*command, "--workdir", str(tmp_path / "full")], cwd=ROOT, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-2000:]

    workdir = tmp_path / "killed"
    sigkill_after_checkpoint([*command, "--workdir", str(workdir)], workdir / "checkpoints", 4)
    resumed = subprocess.run([*command, "--workdir", str(workdir)], cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _rows(workdir) == _rows(tmp_path / "full")
    results = json.loads((workdir / "results.json").read_text())
    assert results["finished"] and results["n_stopped"] > 0
