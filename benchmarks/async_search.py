"""Asynchronous search: GPFIFOSearcher vs Optuna GPSampler vs random search.

A discrete-event simulation of ``--workers`` workers (default 4). Each evaluation takes a random
duration (exponential, mean 1); whenever a worker frees up, the method is asked for a new
configuration while the other workers' trials are still running. GPFIFOSearcher fantasizes them;
Optuna's GPSampler sees them as RUNNING trials (ask/tell with the same number outstanding); random
search ignores them. Simple regret = best value - global minimum after ``--budget`` evaluations;
median over seeds. Seconds per suggestion = wall time of get_config / study.ask.

    python benchmarks/async_search.py                  # writes the async section of benchmarks/RESULTS.md
    python benchmarks/async_search.py --seeds 2 --budget 20 --no-write   # smoke run
"""

from __future__ import annotations

import argparse
import functools
import heapq
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from functions import FUNCTIONS  # noqa: E402
from sections import write_section  # noqa: E402

import hyperoptax as hx  # noqa: E402

HERE = Path(__file__).resolve().parent
# The core benchmark's four functions (benchmarks/search.py), plus the six-hump camel.
DEFAULT_FUNCTIONS = ("branin", "hartmann3", "levy4", "hartmann6", "camel")
DEFAULT_BUDGET, DEFAULT_WORKERS = 40, 4  # the saved run's (results/async.json)


def space_for(f):
    return {f"x{i}": hx.LinearSpace(lo, hi) for i, (lo, hi) in enumerate(f.bounds)}


class Hyperoptax:
    def __init__(self, f, seed, options=None):
        self.s = hx.GPFIFOSearcher(space_for(f), "y", mode="min", random_seed=seed, **(options or {}))

    def ask(self, tid):
        return self.s.get_config(trial_id=tid)

    def tell(self, tid, config, value):
        self.s.on_trial_result(tid, config, {"y": value})


class Random:
    def __init__(self, f, seed):
        self.rng, self.f = np.random.default_rng(seed), f

    def ask(self, tid):
        return {f"x{i}": float(self.rng.uniform(lo, hi)) for i, (lo, hi) in enumerate(self.f.bounds)}

    def tell(self, tid, config, value):
        pass


class OptunaGP:
    def __init__(self, f, seed):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna, self.f = optuna, f
        self.study = optuna.create_study(direction="minimize", sampler=optuna.samplers.GPSampler(seed=seed))
        self.trials = {}

    def ask(self, tid):
        trial = self.study.ask()
        config = {f"x{i}": trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(self.f.bounds)}
        self.trials[tid] = trial
        return config

    def tell(self, tid, config, value):
        self.study.tell(self.trials.pop(tid), value)


METHODS = {"hyperoptax-gpfifo": Hyperoptax, "optuna-gp": OptunaGP, "random": Random}


def simulate(method_cls, f, seed, budget, workers):
    """Run one asynchronous search; returns (simple regret, seconds of every suggestion)."""
    rng = np.random.default_rng(10_000 + seed)  # same durations for every method
    method = method_cls(f, seed)
    events, best, ask_times, n_asked, now = [], np.inf, [], 0, 0.0
    names = [f"x{i}" for i in range(f.dim)]

    def launch(now):
        nonlocal n_asked
        t = time.perf_counter()
        config = method.ask(n_asked)
        ask_times.append(time.perf_counter() - t)
        heapq.heappush(events, (now + rng.exponential(1.0), n_asked, config))
        n_asked += 1

    for _ in range(workers):
        launch(0.0)
    done = 0
    while done < budget:
        now, tid, config = heapq.heappop(events)
        value = f.evaluate([config[n] for n in names])
        best = min(best, value)
        method.tell(tid, config, value)
        done += 1
        if n_asked < budget:
            launch(now)
    return f.regret(best), ask_times


def _with_earlier_rows(raw, functions, seeds, budget, workers):
    """``raw`` and, for the methods not rerun, the saved run's rows (results/async.json, same seeds only).

    Rerunning one method (``--methods``) after a change that touches only it keeps the table whole; the
    simulated durations depend on the seed alone, so the saved rows saw the same workers' timings. Returns
    the rows and the methods to show, in METHODS order.
    """
    saved = HERE / "results" / "async.json"
    same_setup = (budget, workers) == (DEFAULT_BUDGET, DEFAULT_WORKERS)
    earlier = json.loads(saved.read_text()) if saved.exists() and same_setup else {}
    merged = dict(raw)
    for name, runs in earlier.items():
        fname, m = name.split("/")
        if (fname, m) not in merged and fname in functions and len(runs) == seeds:
            merged[fname, m] = [tuple(run) for run in runs]
    shown = [m for m in METHODS if all((f, m) in merged for f in functions)]
    return merged, shown


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--functions", nargs="+", default=list(DEFAULT_FUNCTIONS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--budget", type=int, default=DEFAULT_BUDGET)
    ap.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--gpfifo-options", type=json.loads, default={},
                    help='GPFIFOSearcher options as JSON, e.g. \'{"initial_scoring": "acq_func"}\'')
    args = ap.parse_args(argv)
    methods = {**METHODS, "hyperoptax-gpfifo": functools.partial(Hyperoptax, options=args.gpfifo_options)}

    raw = {}
    for fname in args.functions:
        f = FUNCTIONS[fname]
        for m in args.methods:
            runs = [simulate(methods[m], f, s, args.budget, args.workers) for s in range(args.seeds)]
            raw[(fname, m)] = runs
            regrets = [r for r, _ in runs]
            print(f"{fname:10s} {m:18s} median regret {np.median(regrets):.4g}  "
                  f"s/suggestion {np.median([t for _, ts in runs for t in ts]):.4f}", flush=True)

    rerun = list(args.methods)
    raw, shown = _with_earlier_rows(raw, args.functions, args.seeds, args.budget, args.workers)
    lines = [
        "## Asynchronous search (GPFIFOSearcher)",
        "",
        f"`python benchmarks/async_search.py`: {args.workers} simulated workers, exponential evaluation times "
        f"(mean 1, same durations for every method), {args.budget} evaluations, {args.seeds} seeds. "
        "Median simple regret (lower is better), seeds on which GPFIFOSearcher found a lower value than Optuna "
        "GPSampler, and median seconds per suggestion over every suggestion of every seed (the one that compiles "
        "hyperoptax's model step, once per process, is listed apart). Optuna GPSampler sees the running trials as "
        "RUNNING (ask/tell with the same number outstanding).",
        "",
        "| function | " + " | ".join(f"{m} regret" for m in shown) + " | gpfifo wins vs GP | "
        + " | ".join(f"{m} s/sugg" for m in shown) + " |",
        "|---" * (2 + 2 * len(shown)) + "|",
    ]
    slowest = {}
    for fname in args.functions:
        regs = [f"{np.median([r for r, _ in raw[(fname, m)]]):.4g}" for m in shown]
        times = [f"{np.median([t for _, ts in raw[(fname, m)] for t in ts]):.4f}" for m in shown]
        wins = "n/a"
        if "hyperoptax-gpfifo" in shown and "optuna-gp" in shown:
            pairs = zip(raw[(fname, "hyperoptax-gpfifo")], raw[(fname, "optuna-gp")])
            wins = f"{sum(a < b for (a, _), (b, _) in pairs)}/{args.seeds}"
        lines.append(f"| {fname} | " + " | ".join(regs) + f" | {wins} | " + " | ".join(times) + " |")
        for m in shown:
            slowest[m] = max(slowest.get(m, 0.0), max(t for _, ts in raw[(fname, m)] for t in ts))
    lines += ["", "Slowest single suggestion (hyperoptax: its first model-based one, compiling): "
              + ", ".join(f"{m} {t:.2f} s" for m, t in slowest.items()) + "."]
    if shown != rerun:
        lines += ["", f"Rerun now: {', '.join(rerun)}; the other rows are the saved run's "
                  f"(`benchmarks/results/async.json`, same seeds and durations; their timings shared another load)."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:  # a smoke run leaves the recorded results alone
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "async.json").write_text(json.dumps(
            {f"{k[0]}/{k[1]}": v for k, v in raw.items()}, indent=1))
        write_section("async", text)


if __name__ == "__main__":
    main()
