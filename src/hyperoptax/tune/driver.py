"""The driver behind ``hyperoptax tune``: config -> space, search, task -> a checkpointed sweep -> results.

The loop is :func:`hyperoptax.sweep.run` (the one every front end uses): iteration ``i`` draws
``k_suggest, k_eval, k_update = split(fold_in(key(seed), i), 3)`` and ends with a checkpoint (search state +
trial records), so a run resumed from its workdir produces exactly the trials of an uninterrupted one.
``trials.csv`` and ``results.json`` are rewritten after every iteration, the plots at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time

import jax
import numpy as np

from hyperoptax import sweep
from hyperoptax.errors import CheckpointError, ConfigurationError
from hyperoptax.integrations.orbax import SweepCheckpointer
from hyperoptax.tune import plotting, records, report, tasks
from hyperoptax.tune.config import check_task, config_json, n_iterations_of, validate_config
from hyperoptax.tune.progress import Progress, say
from hyperoptax.tune.pbt import PBTSweep
from hyperoptax.tune.scheduled import ScheduledSweep
from hyperoptax.tune.search import make_search
from hyperoptax.tune.space_strings import build_space, describe_space

__all__ = ["tune"]

# Config fields that may differ between a run and its resumption.
_RESUME_HARMLESS = ("output.",)
_FRESH = "Rerun with --fresh (tune(..., fresh=True)) to start over, which deletes the checkpoints and results there"


def tune(config, workdir, *, fresh: bool = False, verbose: bool = True) -> dict:
    """Run (or resume) the sweep ``config`` describes in ``workdir``; returns the results dict.

    Writes ``config.json``, ``checkpoints/``, ``trials.csv`` and ``results.json`` (after every iteration, or
    every segment of a scheduled sweep, every interval of a pbt one) and, at the end, the plots
    (``convergence.png``, ``slices.png``, ``curves.png`` for a scheduled sweep, ``schedules.png`` for pbt).
    """
    validate_config(config)
    workdir = os.path.abspath(os.fspath(workdir))
    os.makedirs(workdir, exist_ok=True)
    s = config.search
    space = build_space(s.space)
    check_task(config, space)
    n_iterations = n_iterations_of(config)
    key = jax.random.key(int(config.seed))
    ckpt_dir = os.path.join(workdir, records.CHECKPOINT_DIR)

    has_checkpoint = os.path.isdir(ckpt_dir) and any(n.isdigit() for n in os.listdir(ckpt_dir))
    if has_checkpoint and not fresh:
        _check_resumable(workdir, config)
    # Build everything before touching the workdir: a config that fails here leaves it as it was.
    task = tasks.make_task(config, space)
    if s.scheduler == "none":
        loop = _Iterations(config, space, task, key, make_search(config, space, n_iterations * s.n_parallel, key))
    elif s.scheduler == "pbt":
        loop = PBTSweep(config, space, task)  # one population, trained with population-based training
    else:
        loop = ScheduledSweep(config, space, task, key)  # ASHA / Hyperband: slots refilled at rungs
    if fresh or not has_checkpoint:
        _clear(workdir)
    records.write_atomic(os.path.join(workdir, records.CONFIG_JSON),
                         json.dumps(config_json(config), indent=1, sort_keys=True) + "\n")

    def results_of(trials, finished, wall):
        return records.results_dict(
            trials, metric=s.metric, mode=s.mode, space=describe_space(space),
            optimizer=f"pbt ({config.scheduler.explore})" if s.scheduler == "pbt" else s.optimizer,
            config=config_json(config), finished=finished, n_iterations=n_iterations, wall_time=wall)

    def save_results(trials, wall):
        records.write_results(workdir, results_of(trials, False, wall))

    with SweepCheckpointer(ckpt_dir, max_to_keep=2) as checkpointer:
        try:
            trials, wall = loop.run(checkpointer, workdir, save_results, verbose)
        except CheckpointError as err:
            raise CheckpointError(f"{err} {_FRESH}.") from None
        checkpointer.wait_until_finished()
    results = results_of(trials, True, wall)
    records.write_results(workdir, results)
    if config.output.plots:
        plotting.render_plots(results, workdir)
    if verbose:
        say(report.summary(results, top_k=config.output.top_k, workdir=workdir))
    return results


class _Iterations:
    """A sweep of whole batches: suggest ``n_parallel`` configurations, train each fully, tell; repeat."""

    def __init__(self, config, space, task, key, search):
        self.config, self.task, self.key, self.search = config, task, key, search

    def run(self, checkpointer, workdir, save_results, verbose):
        s = self.config.search
        n_iterations = n_iterations_of(self.config)
        start, trials, elapsed_before = _resume(checkpointer, self.search)
        progress = Progress(start, n_iterations, s.metric, verbose)
        if start:
            progress.say(f"Resuming {workdir}: {start} of {n_iterations} iterations ({len(trials)} trials) already done.")
        else:
            progress.say(f"Starting a sweep of {n_iterations} iterations x {s.n_parallel} trials in {workdir}.")
        progress.show_best(records.best_trial(trials, s.mode))
        t0 = last = time.perf_counter()

        def after_iteration(iteration):
            nonlocal last
            new = sweep.trial_records(len(trials), iteration, self.search.configs(iteration.params))
            trials.extend(new)
            wall = elapsed_before + time.perf_counter() - t0
            search_state, searcher_state = self.search.checkpoint()
            checkpointer.save(iteration.index + 1, search_state=search_state, force=True, metadata={"tune": {
                "iterations_done": iteration.index + 1, "trials": trials, "searcher": searcher_state,
                "wall_time_s": wall,
            }})
            save_results(trials, wall)
            now = time.perf_counter()
            progress.iteration(iteration.index, new, records.best_trial(trials, s.mode), now - last)
            last = now

        try:
            sweep.run(self.search, lambda k, params: np.asarray(self.task(k, params), np.float64), self.key,
                      range(start, n_iterations), after_iteration)
        finally:
            progress.close()
        return trials, elapsed_before + time.perf_counter() - t0


def _resume(checkpointer, search):
    """``(iterations done, trial records, wall time so far)`` from the newest checkpoint, restoring ``search``."""
    if checkpointer.latest_step() is None:
        return 0, [], 0.0
    template, _ = search.checkpoint()
    restored = checkpointer.restore(template)
    info = restored.metadata.get("tune")
    if not isinstance(info, dict) or "iterations_done" not in info:
        raise CheckpointError(f"The checkpoint in {checkpointer.directory} was not written by this kind of sweep.")
    search.restore(restored.search_state, info.get("searcher"))
    return int(info["iterations_done"]), list(info["trials"]), float(info.get("wall_time_s", 0.0))


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
    path = os.path.join(workdir, records.CONFIG_JSON)
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    changed = [k for k in _diff(saved, config_json(config)) if not k.startswith(_RESUME_HARMLESS)]
    if changed:
        raise ConfigurationError(
            f"The workdir {workdir!r} holds a checkpoint of a sweep with a different config "
            f"(changed: {', '.join(changed)}); resuming it would mix two sweeps. {_FRESH}, use another "
            f"--workdir, or restore the original config (saved in {path})."
        )


def _clear(workdir):
    shutil.rmtree(os.path.join(workdir, records.CHECKPOINT_DIR), ignore_errors=True)
    for name in records.OUTPUTS:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(workdir, name))
