"""Early stopping: ASHA / Hyperband in the population against full-fidelity search, at equal training steps.

Part 1, ``synthetic`` (``benchmarks/curves.py``): parametric learning curves in two regimes, curves that keep
their ranking and curves that cross. Every method runs the real slot logic
(:class:`~hyperoptax.integrations.flax.scheduled.ScheduledPopulation`, 4 slots) on a budget of 24 full
trainings; the score is the regret of the configuration each method returns (the best at the most steps):
``final(x*) - final(x_returned)``, noiseless. 30 seeds.

Part 2, ``digits`` (see ``--help``): a real training sweep, Flax CNN on the embedded digits, 10 seeds.

    python benchmarks/schedulers.py                       # both parts, writes the schedulers section of RESULTS.md
    python benchmarks/schedulers.py --part synthetic --seeds 3 --no-write     # smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import curves  # noqa: E402
from sections import write_section  # noqa: E402

import hyperoptax as hx  # noqa: E402
from hyperoptax.integrations.flax.scheduled import ScheduledPopulation  # noqa: E402
from hyperoptax.schedulers import OptimizerRefills, RandomRefills, Scheduler  # noqa: E402

T, SLOTS, FULL_TRAININGS = 81, 4, 24
SMALL_GP = dict(hx.RECOMMENDED)


def _refills(kind, capacity):
    if kind == "random":
        return RandomRefills(curves.SPACE)
    return OptimizerRefills(hx.BayesianSearch, curves.SPACE, capacity, **SMALL_GP, n_parallel=SLOTS)


# name -> (refills, scheduler options)
SYNTHETIC_METHODS = {
    "full-gp": ("gp", dict(min_steps=T)),
    "full-random": ("random", dict(min_steps=T)),
    "asha-gp": ("gp", dict()),
    "asha-random": ("random", dict()),
    "hyperband-gp": ("gp", dict(n_brackets=3)),
}


def synthetic_run(method, regime, seed):
    kind, options = SYNTHETIC_METHODS[method]
    scheduler = Scheduler(_refills(kind, FULL_TRAININGS * SLOTS * 3), max_steps=T, eta=3, seed=seed, **options)
    trainer = curves.CurveTrainer(regime, T, seed)
    population = ScheduledPopulation(trainer, scheduler, curves.SPACE, SLOTS, FULL_TRAININGS * T,
                                     jax.random.key(seed))
    population.run()
    best = scheduler.best()
    x = [best["config"][f"x{i}"] for i in range(4)]
    return curves.best_final(regime) - float(curves.final(x, regime)), len(scheduler.trials)


def synthetic(seeds, methods):
    rows = {}
    for regime in curves.REGIMES:
        for method in methods:
            t0 = time.perf_counter()
            out = [synthetic_run(method, regime, s) for s in range(seeds)]
            regret = np.array([r for r, _ in out])
            rows[regime, method] = dict(regret=regret, trials=np.median([n for _, n in out]))
            print(f"{regime:10s} {method:14s} median regret {np.median(regret):.4f}  "
                  f"IQR [{np.quantile(regret, .25):.4f}, {np.quantile(regret, .75):.4f}]  trials {rows[regime, method]['trials']:.0f}"
                  f"  ({time.perf_counter() - t0:.0f}s)", flush=True)
    return rows


def synthetic_table(rows, seeds, methods) -> str:
    lines = [
        "### Synthetic learning curves (`benchmarks/curves.py`)",
        "",
        f"{SLOTS} slots, a budget of {FULL_TRAININGS} full trainings ({FULL_TRAININGS * T} member-steps, T = {T}), "
        f"ASHA rungs at {', '.join(map(str, Scheduler(curves.SPACE, max_steps=T).rule.levels()))}; {seeds} seeds. "
        "Regret of the returned configuration (lower is better), median [IQR]; trials started (median).",
        "",
        "| method | " + " | ".join(f"{r} regret | {r} trials" for r in curves.REGIMES) + " |",
        "|---|" + "---|---|" * len(curves.REGIMES),
    ]
    for m in methods:
        cells = []
        for regime in curves.REGIMES:
            r = rows[regime, m]["regret"]
            cells += [f"{np.median(r):.4f} [{np.quantile(r, .25):.4f}, {np.quantile(r, .75):.4f}]",
                      f"{rows[regime, m]['trials']:.0f}"]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("synthetic", "digits", "both"), default="both")
    ap.add_argument("--seeds", type=int, default=None, help="default: 30 (synthetic), 10 (digits)")
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    sections = []
    if args.part in ("synthetic", "both"):
        seeds = args.seeds or 30
        methods = args.methods or list(SYNTHETIC_METHODS)
        sections.append(synthetic_table(synthetic(seeds, methods), seeds, methods))
    text = "\n\n".join(sections)
    print(text)
    if not args.no_write:
        write_section("schedulers", "## Early stopping (`benchmarks/schedulers.py`)\n\n" + text)


if __name__ == "__main__":
    main()
