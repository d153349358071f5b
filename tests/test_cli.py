"""End to end: the ``hyperoptax`` console script in a subprocess, killed midway and resumed.

The sweeps here are tiny (a 16-unit MLP, n_parallel=2, 3 iterations); most of their time is compilation,
which JAX's persistent cache (``~/.cache/hyperoptax/jax_cache``, enabled by the CLI) removes on reruns.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = textwrap.dedent("""
    from hyperoptax.tune import default_config

    def get_config():
        c = default_config()
        c.model.width = 16
        c.training.n_steps = 200
        c.training.batch_size = 32
        c.search.n_parallel = 2
        c.search.n_iterations = 3
        c.search.space = {"learning_rate": "log(1e-3, 1e-1)", "weight_decay": "log(1e-5, 1e-2)"}
        return c
""")
# The CLI with every evaluation slowed down, so the test can kill it between two checkpoints.
SLOW_CLI = textwrap.dedent("""
    import sys, time
    from hyperoptax.tune import tasks as tune_tasks
    evaluate = tune_tasks.ClassificationTask.__call__
    def slow(self, key, params):
        time.sleep(2.0)
        return evaluate(self, key, params)
    tune_tasks.ClassificationTask.__call__ = slow
    from hyperoptax.cli import main
    sys.exit(main())
""")


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "hyperoptax", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("configs") / "tiny.py"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def full_run(tiny_config, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("full")
    proc = cli("tune", "--config", tiny_config, "--workdir", workdir)
    assert proc.returncode == 0, proc.stderr
    return workdir, proc


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def assert_png(path):
    import matplotlib.image

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


@pytest.mark.slow
def test_tune_writes_every_output(full_run):
    workdir, proc = full_run
    rows = read_csv(workdir / "trials.csv")
    assert [int(r["trial"]) for r in rows] == list(range(6))
    assert [int(r["iteration"]) for r in rows] == [0, 0, 1, 1, 2, 2]
    assert list(rows[0]) == ["trial", "iteration", "status", "accuracy", "steps", "duration_s", "learning_rate",
                             "weight_decay", "curve"]
    for r in rows:
        assert r["status"] == "completed" and r["steps"] == r["curve"] == ""
        assert 0.0 <= float(r["accuracy"]) <= 1.0
        assert 1e-3 <= float(r["learning_rate"]) <= 1e-1 and float(r["duration_s"]) >= 0
    results = json.loads((workdir / "results.json").read_text())
    assert results["finished"] and results["n_trials"] == 6 and results["n_failed"] == 0
    assert results["metric"] == "accuracy" and results["mode"] == "max" and results["optimizer"] == "bayesian"
    assert results["space"] == {"learning_rate": {"spec": "log(0.001, 0.1)", "scale": "log"},
                                "weight_decay": {"spec": "log(1e-05, 0.01)", "scale": "log"}}
    assert results["best"]["metric"] == max(float(r["accuracy"]) for r in rows)
    for trial, row in zip(results["trials"], rows):
        assert set(trial) == {"trial", "iteration", "status", "metric", "duration", "params", "steps", "curve"}
        assert trial["metric"] == float(row["accuracy"])
    for name in ("convergence.png", "slices.png"):
        assert_png(workdir / name)
    assert json.loads((workdir / "config.json").read_text())["search"]["n_parallel"] == 2
    assert any(n.isdigit() for n in os.listdir(workdir / "checkpoints"))
    # What the user sees: one line per iteration, a table, the files; no wall of warnings.
    assert proc.stdout.count("[iter ") == 3
    assert "Top 5 configurations" in proc.stdout and "trials.csv, results.json" in proc.stdout
    assert "Traceback" not in proc.stderr and "WARNING" not in proc.stderr, proc.stderr


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_results(full_run, tiny_config, tmp_path):
    full_dir, _ = full_run
    workdir = tmp_path / "killed"
    args = ["tune", "--config", str(tiny_config), "--workdir", str(workdir)]
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLI, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (workdir / "checkpoints").is_dir() or not any(n.isdigit() for n in os.listdir(workdir / "checkpoints")):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()
    rows_before = read_csv(workdir / "trials.csv") if (workdir / "trials.csv").exists() else []
    assert len(rows_before) < 6

    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stdout
    rows = read_csv(workdir / "trials.csv")
    expected = read_csv(full_dir / "trials.csv")
    assert [r["trial"] for r in rows] == [str(i) for i in range(6)]  # every trial exactly once
    for key in ("iteration", "status", "accuracy", "learning_rate", "weight_decay"):
        assert [r[key] for r in rows] == [r[key] for r in expected], key

    # A finished sweep reruns as a no-op; an incompatible config is refused.
    again = cli(*args)
    assert again.returncode == 0 and "3 of 3 iterations" in again.stdout
    assert read_csv(workdir / "trials.csv") == rows
    changed = cli(*args, "--config.search.n_parallel=3")
    assert changed.returncode == 2
    assert "different config" in changed.stderr and "search.n_parallel" in changed.stderr and "--fresh" in changed.stderr

    # `report` re-renders table and plots from the workdir alone.
    for name in ("convergence.png", "slices.png"):
        os.remove(workdir / name)
    report = cli("report", workdir)
    assert report.returncode == 0, report.stderr
    assert "Best accuracy" in report.stdout and "learning_rate" in report.stdout
    for name in ("convergence.png", "slices.png"):
        assert_png(workdir / name)


def test_config_typo_names_the_closest_key(tiny_config, tmp_path):
    proc = cli("tune", "--config", tiny_config, "--workdir", tmp_path, "--config.search.n_paralel=8")
    assert proc.returncode == 2
    assert "Did you mean 'search.n_parallel'?" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("tune", "--config", tiny_config, "--workdir", tmp_path, "--config.search.n_parallel=eight")
    assert proc.returncode == 2 and "expected a value of type int" in proc.stderr
    assert not os.listdir(tmp_path)  # a bad config leaves the workdir untouched


def test_missing_dataset_is_a_message_not_a_traceback(tiny_config, tmp_path):
    proc = cli("tune", "--config", ROOT + "/configs/mnist_cnn.py", "--workdir", tmp_path / "run",
               f"--config.dataset.data_dir={tmp_path / 'data'}")
    assert proc.returncode == 2
    assert "TFDS dataset 'mnist' is not prepared" in proc.stderr and "tfds build mnist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_report_without_results_is_a_message(tmp_path):
    proc = cli("report", tmp_path)
    assert proc.returncode == 2 and "results.json does not exist" in proc.stderr


@pytest.mark.slow
def test_synthetic_config_resumes_and_fresh_starts_over(tmp_path):
    args = ["tune", "--config", "configs/synthetic.py", "--workdir", tmp_path, "--config.search.n_iterations=3",
            "--config.search.n_parallel=2"]
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    assert "Starting a sweep" in first.stdout and "Best value" in first.stdout
    rows = read_csv(tmp_path / "trials.csv")
    assert len(rows) == 6 and np.isfinite([float(r["value"]) for r in rows]).all()
    again = cli(*args)
    assert "Resuming" in again.stdout and again.returncode == 0
    fresh = cli(*args, "--fresh")
    assert fresh.returncode == 0 and "Starting a sweep" in fresh.stdout
    same_seed = read_csv(tmp_path / "trials.csv")
    assert [r["value"] for r in same_seed] == [r["value"] for r in rows]
