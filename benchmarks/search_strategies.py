"""Choosing the preset's batch strategy: batch strategies of ``hyperoptax.batch`` at batches of 4 and 8.

The preset's sequential settings (``RECOMMENDED``) with each batch strategy (``search.STRATEGIES``), at the
functions' usual budgets, seeds 0..N-1, the same runs as ``search.py``'s (``search.run_hyperoptax``). One
line per (function, strategy, batch size) goes to stdout, after a ``#`` line naming the run; ``--render
LOG [LOG ...]`` turns such logs into the ``search-strategies`` section of RESULTS.md (each log's ``#`` lines
become the text above its tables).

    python benchmarks/search_strategies.py > benchmarks/results/search_strategies.log   # ~25 min
    python benchmarks/search_strategies.py --functions branin,hartmann3 --strategies thompson-greedy,thompson-exploit
    python benchmarks/search_strategies.py --render benchmarks/results/search_strategies_exploit.log \
        benchmarks/results/search_strategies.log
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search  # noqa: E402
from functions import FUNCTIONS  # noqa: E402
from search_report import fmt  # noqa: E402
from sections import write_section  # noqa: E402

FUNCTIONS_RUN = ("hartmann3", "levy4", "hartmann6")
SIZES = (8, 4)


def run(seeds, functions=FUNCTIONS_RUN, sizes=SIZES, strategies=tuple(search.STRATEGIES)):
    print(f"# Command: `python benchmarks/search_strategies.py {' '.join(sys.argv[1:])}` (seeds 0-{len(seeds) - 1}).",
          flush=True)
    for q in sizes:
        for f in functions:
            problem = search.function_problem(FUNCTIONS[f], search.DEFAULT_BUDGETS[f])
            for name in strategies:
                t0 = time.perf_counter()
                regrets = [min(search.run_hyperoptax(name, problem, s, q).values) - problem.optimum for s in seeds]
                print(f, name, q, "median %.4g" % np.median(regrets), np.round(regrets, 4),
                      "%.0fs" % (time.perf_counter() - t0), flush=True)


def _tables(lines: list[str]) -> list[str]:
    table: dict = {}
    for line in lines:
        f, name, q, _, median = line.split()[:5]
        table.setdefault(int(q), {}).setdefault(name, {})[f] = float(median)
    out = []
    for q, rows in table.items():
        functions = list(dict.fromkeys(f for per in rows.values() for f in per))
        out += [f"| q = {q} | " + " | ".join(functions) + " |", "|---|" + "---|" * len(functions)]
        for name, per in rows.items():
            out.append(f"| {name} | " + " | ".join(fmt(per[f]) if f in per else "" for f in functions) + " |")
        out.append("")
    return out


def render(logs: list[Path]) -> str:
    lines = ["## Search: choosing the preset's batch strategy", "",
             "Median simple regret over seeds 0-4 at the functions' usual budgets (Branin 40, Hartmann-3 48, "
             "Levy-4 64, Hartmann-6 80 evaluations), the preset's settings with each batch strategy; lower is "
             "better. Names: `thompson-greedy` = `Thompson(greedy_first=True)` (the preset's before issue 13's "
             "batch targets), `thompson-exploit` = `Thompson(greedy_first=True, exploit=True)` (the preset's now), "
             "the others as in `search.STRATEGIES`. Each log below: its text, then its tables.", ""]
    for log in logs:
        text = log.read_text().splitlines()
        lines += [f"From `{log.relative_to(log.parents[1])}`: " + " ".join(t.lstrip("# ").strip() for t in text
                                                                          if t.startswith("#")), ""]
        lines += _tables([t for t in text if t.strip() and not t.startswith("#")])
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--functions", default=",".join(FUNCTIONS_RUN))
    p.add_argument("--sizes", default=",".join(map(str, SIZES)), help="batch sizes")
    p.add_argument("--strategies", default=",".join(search.STRATEGIES), help=f"from {', '.join(search.STRATEGIES)}")
    p.add_argument("--render", metavar="LOG", nargs="+", default=None)
    args = p.parse_args()
    if args.render:
        text = render([Path(log).resolve() for log in args.render])
        print(text)
        write_section("search-strategies", text)
    else:
        split = lambda text: [t for t in text.split(",") if t]
        run(range(args.seeds), split(args.functions), [int(q) for q in split(args.sizes)], split(args.strategies))
