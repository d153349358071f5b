"""A sweep's results as text: the top-k table and the end-of-sweep summary, from ``results.json`` alone."""

from __future__ import annotations

import os

from hyperoptax.tune.records import (
    CONVERGENCE_PNG,
    CURVES_PNG,
    RESULTS_JSON,
    SCHEDULES_PNG,
    SLICES_PNG,
    TRIALS_CSV,
    comparable,
    fmt,
)

__all__ = ["summary", "top_table"]


def _ranked(results) -> list[dict]:
    return sorted(comparable(results["trials"]), key=lambda t: t["metric"], reverse=results["mode"] == "max")


def _ended(results) -> str:
    stopped = results.get("n_stopped", 0)
    return f"{results['n_failed']} failed" + (f", {stopped} stopped early" if stopped else "")


def top_table(results, top_k: int = 5) -> str:
    """The ``top_k`` best trials as a plain-text table."""
    names = list(results["space"])
    header = ["rank", "trial", "iter", results["metric"], *names]
    rows = [
        [str(rank + 1), str(t["trial"]), str(t["iteration"]), f"{t['metric']:.4f}", *(fmt(t["params"][n]) for n in names)]
        for rank, t in enumerate(_ranked(results)[:top_k])
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def schedule_text(schedule) -> str:
    """A PBT schedule as ``steps 0-20: lr=0.01; 20-40: lr=0.008``, equal neighbours merged."""
    spans = []
    for entry in schedule:
        if spans and spans[-1][2] == entry["params"]:
            spans[-1][1] = entry["steps"][1]
        else:
            spans.append([entry["steps"][0], entry["steps"][1], entry["params"]])
    return "steps " + "; ".join(f"{a}-{b}: " + ", ".join(f"{k}={fmt(v)}" for k, v in p.items()) for a, b, p in spans)


def summary(results, top_k: int = 5, workdir=None) -> str:
    """The end-of-sweep report: counts, the best configuration, the top table, the files written."""
    best = results.get("best")
    state = "finished" if results.get("finished") else f"interrupted after {results.get('iterations_done', 0)} iterations"
    lines = [
        f"\nSweep {state}: {results['n_trials']} trials ({_ended(results)}), "
        f"{results['optimizer']} search, {results['wall_time_s']:.1f}s.",
    ]
    if best is None:
        lines.append("No trial succeeded.")
    else:
        params = ", ".join(f"{k}={fmt(v)}" for k, v in best["params"].items())
        lines.append(f"Best {results['metric']} = {best['metric']:.4f} (trial {best['trial']}): {params}")
        if best.get("schedule"):
            lines.append(f"Its schedule (population-based training): {schedule_text(best['schedule'])}")
        lines += ["", f"Top {min(top_k, len(_ranked(results)))} configurations ({results['mode']} {results['metric']}):",
                  top_table(results, top_k)]
    if workdir is not None:
        files = [f for f in (TRIALS_CSV, RESULTS_JSON, CONVERGENCE_PNG, SLICES_PNG, CURVES_PNG, SCHEDULES_PNG)
                 if os.path.exists(os.path.join(workdir, f))]
        lines += ["", f"Wrote {', '.join(files)} to {workdir}"]
    return "\n".join(lines)
