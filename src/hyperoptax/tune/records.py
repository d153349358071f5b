"""A sweep's results on disk: ``trials.csv`` and ``results.json``, written and read back.

Both hold every trial as a :class:`hyperoptax.sweep.TrialRecord`; they are rewritten (atomically) after every
iteration, so an interrupted sweep leaves its trials readable. Reports and plots read ``results.json`` only
(:func:`load_results`), so ``hyperoptax report WORKDIR`` needs nothing but the workdir.
"""

from __future__ import annotations

import json
import os

from hyperoptax.errors import ConfigurationError
from hyperoptax.sweep import TrialRecord

__all__ = [
    "TRIALS_CSV", "RESULTS_JSON", "CONFIG_JSON", "CHECKPOINT_DIR", "CONVERGENCE_PNG", "SLICES_PNG", "CURVES_PNG",
    "SCHEDULES_PNG",
    "OUTPUTS",
    "comparable", "best_trial", "results_dict", "write_results", "write_atomic", "load_results", "fmt",
]

TRIALS_CSV, RESULTS_JSON, CONFIG_JSON, CHECKPOINT_DIR = "trials.csv", "results.json", "config.json", "checkpoints"
CONVERGENCE_PNG, SLICES_PNG, CURVES_PNG = "convergence.png", "slices.png", "curves.png"
SCHEDULES_PNG = "schedules.png"
OUTPUTS = (TRIALS_CSV, RESULTS_JSON, CONFIG_JSON, CONVERGENCE_PNG, SLICES_PNG, CURVES_PNG, SCHEDULES_PNG)  # a sweep's files


def comparable(trials: list[TrialRecord]) -> list[TrialRecord]:
    """The trials whose metrics compare: those with a metric, at the most steps any of them trained
    (a trial a scheduler stopped early was scored after fewer steps)."""
    scored = [t for t in trials if t["metric"] is not None]
    top = max((t.get("steps") or 0 for t in scored), default=0)
    return [t for t in scored if (t.get("steps") or 0) == top]


def best_trial(trials: list[TrialRecord], mode: str) -> TrialRecord | None:
    """The best of the :func:`comparable` trials (highest metric for ``mode="max"``); None if none."""
    ok = comparable(trials)
    if not ok:
        return None
    return (max if mode == "max" else min)(ok, key=lambda t: t["metric"])


def results_dict(trials, *, metric, mode, optimizer, space, config, finished, n_iterations, wall_time) -> dict:
    """What ``results.json`` holds; ``space`` from :func:`hyperoptax.tune.space_strings.describe_space`."""
    return {
        "metric": metric,
        "mode": mode,
        "optimizer": optimizer,
        "finished": finished,
        "n_iterations": n_iterations,
        "iterations_done": (max(t["iteration"] for t in trials) + 1) if trials else 0,
        "n_trials": len(trials),
        "n_failed": sum(t["status"] == "failed" for t in trials),
        "n_stopped": sum(t["status"] == "stopped" for t in trials),
        "wall_time_s": round(wall_time, 3),
        "best": best_trial(trials, mode),
        "space": space,
        "trials": trials,
        "config": config,
    }


def write_results(workdir, results: dict) -> None:
    """Write ``trials.csv`` (one row per trial) and ``results.json`` (``results``) into ``workdir``."""
    names = list(results["space"])
    header = ["trial", "iteration", "status", results["metric"], "steps", "duration_s", *names, "curve"]
    pbt = any("lineage" in t for t in results["trials"])
    header += ["copied_from"] if pbt else []  # "start_step<-member" at every exploit of a pbt member
    lines = [",".join(header)]
    for t in results["trials"]:
        metric = "nan" if t["metric"] is None else repr(t["metric"])
        steps = "" if t.get("steps") is None else str(t["steps"])
        values = [_csv_cell(t["params"][n]) for n in names]
        curve = " ".join(f"{s}:{'nan' if m is None else repr(m)}" for s, m in (t.get("curve") or []))
        copies = [" ".join(f"{e['steps'][0]}<-{e['parent']}" for e in t.get("lineage") or [] if e["parent"] is not None)]
        lines.append(",".join([str(t["trial"]), str(t["iteration"]), t["status"], metric, steps, repr(t["duration"]),
                               *values, curve, *(copies if pbt else [])]))
    write_atomic(os.path.join(workdir, TRIALS_CSV), "\n".join(lines) + "\n")
    write_atomic(os.path.join(workdir, RESULTS_JSON), json.dumps(results, indent=1) + "\n")


def _csv_cell(value) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    return f'"{text}"' if ("," in text or '"' in text) else text


def write_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file: a reader never sees half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def load_results(workdir) -> dict:
    """The ``results.json`` of a workdir, with a clear error when there is none."""
    path = os.path.join(os.fspath(workdir), RESULTS_JSON)
    if not os.path.exists(path):
        raise ConfigurationError(
            f"{path} does not exist: {workdir!r} is not the workdir of a sweep (or no iteration has finished yet). "
            f"Run `hyperoptax tune --config CONFIG --workdir {workdir}` first."
        )
    with open(path) as f:
        return json.load(f)


def fmt(value) -> str:
    """A hyperparameter value as the reports print it (floats to 4 significant digits)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
