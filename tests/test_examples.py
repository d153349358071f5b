"""The examples run as written (each in a subprocess, like a user would run it)."""

from __future__ import annotations

import os
import py_compile
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(f for f in os.listdir(os.path.join(ROOT, "examples")) if f.endswith(".py"))


def run(script, *args, cwd=ROOT):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("script", EXAMPLES)
def test_examples_compile(script):
    py_compile.compile(os.path.join(ROOT, "examples", script), doraise=True)


def test_async_searcher():
    out = run("async_searcher.py")
    assert out.count("trial ") == 24 and "best Branin value after 24 trials" in out


@pytest.mark.slow
def test_population_trainer():
    out = run("population_trainer.py")
    assert out.count("iteration ") == 16 and "best validation accuracy" in out


@pytest.mark.slow
def test_quickstart(tmp_path):
    out = run("quickstart.py", "--workdir", str(tmp_path), "--config.search.n_iterations=1",
              "--config.training.n_steps=100", cwd=tmp_path)
    assert "best validation accuracy" in out
    assert {"trials.csv", "results.json", "convergence.png", "slices.png"} <= set(os.listdir(tmp_path))


@pytest.mark.slow
def test_pbt():
    out = run("pbt.py")
    assert out.count("steps ") >= 8 and "its schedule:" in out and "replayed alone: accuracy" in out


@pytest.mark.slow
def test_early_stopping():
    out = run("early_stopping.py")
    assert "population:" in out and "3 programs compiled" in out and "ask/tell: best" in out


@pytest.mark.slow
def test_ray_early_stopping():
    out = run("ray_early_stopping.py")
    for name in ("ray-asha", "hyperoptax-scheduler"):
        line = next(l for l in out.splitlines() if l.startswith(name + ":"))
        assert "16 trials" in line and " 0 stopped early" not in line, line
