"""A `hyperoptax tune` run killed with SIGKILL at five different moments still ends with the
results of an uninterrupted run: no trial lost, none repeated.

The moments, chosen by the test: during start-up (before any checkpoint), right after the first
checkpoint, in the middle of a checkpoint write (Orbax's temporary directory exists), halfway, and
one iteration before the end. One workdir lives through all five kills and a final run to completion.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_ITERATIONS, N_PARALLEL = 6, 2
ARGS = ["tune", "--config", "configs/synthetic.py", f"--config.search.n_iterations={N_ITERATIONS}",
        f"--config.search.n_parallel={N_PARALLEL}", "--config.output.plots=False"]  # plots: not what is tested
# Each evaluation sleeps, so the run lasts long enough to be killed where the test wants.
SLOW_CLI = textwrap.dedent("""
    import sys, time
    from hyperoptax.tune import tasks as tune_tasks
    evaluate = tune_tasks.SyntheticTask.__call__
    def slow(self, key, params):
        time.sleep(0.25)
        return evaluate(self, key, params)
    tune_tasks.SyntheticTask.__call__ = slow
    from hyperoptax.cli import main
    sys.exit(main())
""")


def steps(workdir):
    path = workdir / "checkpoints"
    return sorted(int(n) for n in os.listdir(path) if n.isdigit()) if path.is_dir() else []


def writing_checkpoint(workdir):
    path = workdir / "checkpoints"
    return path.is_dir() and any("tmp" in n for n in os.listdir(path))


def read_trials(workdir):
    with open(workdir / "trials.csv") as f:
        return list(csv.DictReader(f))


def kill_when(workdir, condition, what):
    proc = subprocess.Popen([sys.executable, "-c", SLOW_CLI, *ARGS, "--workdir", str(workdir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not condition():
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it could be killed {what}: {proc.stderr.read()[-2000:]}")
            assert time.monotonic() < deadline, f"never reached the moment {what}"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        proc.kill()


@pytest.mark.slow
def test_five_kills_end_with_the_uninterrupted_results(tmp_path):
    reference = tmp_path / "reference"
    done = subprocess.run([sys.executable, "-m", "hyperoptax", *ARGS, "--workdir", str(reference)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    workdir = tmp_path / "killed"
    started = time.monotonic()
    moments = [
        ("during start-up", lambda: time.monotonic() - started > 1.0),
        ("after the first checkpoint", lambda: len(steps(workdir)) >= 1),
        ("during a checkpoint write", lambda: writing_checkpoint(workdir)),
        ("halfway", lambda: len(steps(workdir)) >= N_ITERATIONS // 2),
        ("one iteration before the end", lambda: max(steps(workdir), default=0) >= N_ITERATIONS - 1),
    ]
    for what, condition in moments:
        started = time.monotonic()
        kill_when(workdir, condition, what)

    final = subprocess.run([sys.executable, "-m", "hyperoptax", *ARGS, "--workdir", str(workdir)], cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr
    assert "Resuming" in final.stdout
    rows, expected = read_trials(workdir), read_trials(reference)
    assert [r["trial"] for r in rows] == [str(i) for i in range(N_ITERATIONS * N_PARALLEL)]  # each exactly once
    for key in ("iteration", "status", "value", "x1", "x2"):
        assert [r[key] for r in rows] == [r[key] for r in expected], key
