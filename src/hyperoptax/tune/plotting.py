"""A sweep's results as plots (matplotlib, Agg backend), drawn from ``results.json`` alone::

    results = records.load_results("runs/digits")
    plotting.render_plots(results, "runs/digits")   # convergence.png, slices.png (and curves.png)

Under a scheduler a stopped trial's metric was measured after fewer steps: the plots draw such trials faded
and compare (best so far, the star) only the trials that trained the most steps.
"""

from __future__ import annotations

import math
import os

import numpy as np

from hyperoptax.tune.records import CONVERGENCE_PNG, CURVES_PNG, SCHEDULES_PNG, SLICES_PNG, comparable

__all__ = ["render_plots", "plot_convergence", "plot_slices", "plot_curves", "plot_schedules"]


# ---------------------------------------------------------------------------
# Plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_convergence(results, path) -> None:
    """Every trial's metric (failed trials marked on the axis) and the best-so-far line."""
    plt = _pyplot()
    trials = sorted(results["trials"], key=lambda t: t["trial"])
    maximize = results["mode"] == "max"
    top = {t["trial"] for t in comparable(trials)}
    x = np.array([t["trial"] for t in trials])
    y = np.array([np.nan if t["metric"] is None else t["metric"] for t in trials], float)
    full = np.array([t["trial"] in top for t in trials])
    best, running = [], -math.inf if maximize else math.inf
    for v, counts in zip(y, full):
        if np.isfinite(v) and counts:
            running = max(running, v) if maximize else min(running, v)
        best.append(running if math.isfinite(running) else np.nan)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ok = np.isfinite(y)
    ax.scatter(x[ok & full], y[ok & full], s=18, alpha=0.6, label="trial")
    if (ok & ~full).any():
        ax.scatter(x[ok & ~full], y[ok & ~full], s=14, alpha=0.25, color="0.5", label="stopped early")
    ax.step(x, best, where="post", color="C3", label="best so far")
    if (~ok).any():
        floor = np.nanmin(y) if ok.any() else 0.0
        ax.scatter(x[~ok], np.full((~ok).sum(), floor), marker="x", color="k", label="failed")
    ax.set_xlabel("trial")
    ax.set_ylabel(results["metric"])
    ax.set_title(f"{results['optimizer']} search: best {results['metric']} so far")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_slices(results, path) -> None:
    """One panel per hyperparameter: metric against its value (log axis for log spaces, categories as labels)."""
    plt = _pyplot()
    names = list(results["space"])
    ok = comparable(results["trials"])
    best = results.get("best")
    n_cols = min(3, len(names))
    n_rows = math.ceil(len(names) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, 3.4 * n_rows), dpi=100, squeeze=False)
    y = np.array([t["metric"] for t in ok], float)
    color = np.array([t["iteration"] for t in ok], float)
    for ax, name in zip(axes.flat, names):
        axis = results["space"][name]
        values = [t["params"][name] for t in ok]
        if axis["scale"] == "categorical":
            categories = [str(v) for v in axis["values"]]
            x = np.array([categories.index(str(v)) for v in values], float)
            jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(x))
            points = ax.scatter(x + jitter, y, c=color, cmap="viridis", s=22, alpha=0.8)
            ax.set_xticks(range(len(categories)), categories)
            ax.set_xlim(-0.5, len(categories) - 0.5)
            best_x = categories.index(str(best["params"][name])) if best else None
        else:
            x = np.array(values, float)
            points = ax.scatter(x, y, c=color, cmap="viridis", s=22, alpha=0.8)
            if axis["scale"] == "log":
                ax.set_xscale("log")
            best_x = best["params"][name] if best else None
        if best is not None:
            ax.scatter([best_x], [best["metric"]], marker="*", s=180, color="C3", edgecolor="k", zorder=3)
        ax.set_xlabel(f"{name}  {axis['spec']}")
        ax.set_ylabel(results["metric"])
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if ok:
        fig.colorbar(points, ax=axes, label="iteration", shrink=0.8)
    fig.suptitle(f"{results['metric']} against each hyperparameter (star: best)")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def plot_curves(results, path) -> None:
    """Every trial's metric against the steps it trained (stopped trials faded, the best highlighted)."""
    plt = _pyplot()
    best = results.get("best")
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for t in results["trials"]:
        points = [(s, m) for s, m in (t.get("curve") or []) if m is not None]
        if not points:
            continue
        steps, metric = zip(*points)
        if best is not None and t["trial"] == best["trial"]:
            continue  # drawn last, on top
        stopped = t["status"] != "completed"
        ax.plot(steps, metric, marker="o", ms=3, lw=1, color="0.6" if stopped else "C0", alpha=0.35 if stopped else 0.8)
    if best is not None and best.get("curve"):
        steps, metric = zip(*[(s, m) for s, m in best["curve"] if m is not None])
        ax.plot(steps, metric, marker="o", ms=4, lw=2.2, color="C3", label=f"best (trial {best['trial']})")
        ax.legend(loc="best")
    ax.set_xscale("log")
    ax.set_xlabel("training steps")
    ax.set_ylabel(results["metric"])
    stopped = results.get("n_stopped", 0)
    ax.set_title(f"learning curves: {results['n_trials']} trials" + (f", {stopped} stopped early" if stopped else ""))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_schedules(results, path) -> None:
    """Population-based training: each hyperparameter over the steps, along the ancestry of every member
    of the final population (its ``schedule``), the best member highlighted."""
    plt = _pyplot()
    trials = [t for t in results["trials"] if t.get("schedule")]
    best = (results.get("best") or {}).get("trial")
    changing = [n for n in results["space"] if len({str(e["params"][n]) for t in trials for e in t["schedule"]}) > 1]
    names = changing or list(results["space"])
    fig, axes = plt.subplots(len(names), 1, figsize=(6.4, 2.6 * len(names)), dpi=100, squeeze=False, sharex=True)
    for ax, name in zip(axes[:, 0], names):
        axis = results["space"][name]
        categories = [str(v) for v in axis.get("values", ())] if axis["scale"] == "categorical" else None
        for t in sorted(trials, key=lambda t: t["trial"] == best):  # the best drawn last, on top
            edges = [t["schedule"][0]["steps"][0]] + [e["steps"][1] for e in t["schedule"]]
            values = [e["params"][name] for e in t["schedule"]]
            values = [categories.index(str(v)) for v in values] if categories else values
            top = t["trial"] == best
            ax.stairs(values, edges, baseline=None, lw=2.4 if top else 1.0, color="C3" if top else "C0",
                      alpha=1.0 if top else 0.45, label=f"best (member {best})" if top else None)
        if axis["scale"] == "log":
            ax.set_yscale("log")
        if categories:
            ax.set_yticks(range(len(categories)), categories)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("training steps")
    if best is not None:
        axes[0, 0].legend(loc="best")
    axes[0, 0].set_title(f"hyperparameter schedules of the final population ({len(trials)} members)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render_plots(results, workdir) -> list[str]:
    """Write ``convergence.png``, ``slices.png`` and, when trials have learning curves, ``curves.png``
    (and ``schedules.png`` when they have PBT schedules) into ``workdir``; returns their paths."""
    paths = [os.path.join(workdir, CONVERGENCE_PNG), os.path.join(workdir, SLICES_PNG)]
    plot_convergence(results, paths[0])
    plot_slices(results, paths[1])
    if any(t.get("curve") for t in results["trials"]):
        paths.append(os.path.join(workdir, CURVES_PNG))
        plot_curves(results, paths[-1])
    if any(t.get("schedule") for t in results["trials"]):
        paths.append(os.path.join(workdir, SCHEDULES_PNG))
        plot_schedules(results, paths[-1])
    return paths
