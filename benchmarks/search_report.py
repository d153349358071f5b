"""The search benchmark's summary, targets and Markdown section (``benchmarks/search.py`` writes the runs)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"


def quartiles(xs) -> tuple[float, float, float]:
    q25, q50, q75 = np.percentile(np.asarray(xs, dtype=np.float64), [25, 50, 75])
    return float(q50), float(q25), float(q75)


def fmt(x: float) -> str:
    if x == 0:
        return "0"
    if not np.isfinite(x):
        return str(x)
    if abs(x) >= 100 or abs(x) < 1e-3:
        return f"{x:.2e}"
    return f"{x:.4g}"


def machine_info() -> dict:
    import jax
    import optuna
    import torch

    import hyperoptax

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=HERE).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "../src", "."], capture_output=True, text=True,
                               cwd=HERE).stdout.strip()
        if dirty:
            commit += " + uncommitted changes"
    except OSError:
        commit = ""
    return {
        "nproc": os.cpu_count(), "cpu": cpu, "platform": platform.platform(), "python": platform.python_version(),
        "jax": jax.__version__, "jax_backend": jax.default_backend(), "optuna": optuna.__version__,
        "torch": torch.__version__, "numpy": np.__version__, "hyperoptax": getattr(hyperoptax, "__version__", "?"),
        "git_commit": commit,
    }


def _best(run) -> float:
    values = np.asarray(run["values"], np.float64)
    return float(np.nanmin(values)) if np.isfinite(values).any() else np.inf


def regrets(runs: dict, optimum) -> dict:
    """Method -> regret per seed; against the best value of the whole run when the optimum is unknown."""
    if optimum is None:
        optimum = min(_best(r) for seeds in runs.values() for r in seeds)
    return {m: [_best(r) - optimum for r in seeds] for m, seeds in runs.items()}


def moving_rows(runs: dict, optimum, rows, factor: float = 3.0) -> list[str]:
    """The rows whose median over the first half of the seeds and over the second differ more than ``factor``."""
    out = []
    for m, values in regrets(runs, optimum).items():
        if m not in rows or len(values) < 4:
            continue
        half = len(values) // 2
        a, b = np.median(values[:half]), np.median(values[half:])
        lo, hi = sorted([max(a, 1e-12), max(b, 1e-12)])
        if hi > factor * lo:
            out.append(m)
    return out


def _paired_wins(a, b) -> str:
    n = min(len(a), len(b))
    wins = sum(x < y for x, y in zip(a[:n], b[:n]))
    ties = sum(x == y for x, y in zip(a[:n], b[:n]))
    return f"{wins}/{n}" + (f" (+{ties} ties)" if ties else "")


def summarize(raw: dict) -> dict:
    """Per problem and method: regret quartiles, seconds per suggestion; then the targets."""
    summary = {"problems": {}, "targets": {}}
    for pname, runs in raw["runs"].items():
        reg = regrets(runs, raw["optima"].get(pname))
        rows = {}
        for mname, seeds in runs.items():
            per_point = [t / r["points_per_iteration"] for r in seeds
                         for t in r["suggest_seconds"][r.get("startup_suggestions", 0):]]
            first = [r["first_iteration_seconds"] for r in seeds if r["first_iteration_seconds"] is not None]
            rows[mname] = {
                "regret": quartiles(reg[mname]),
                "regrets": reg[mname],
                "seeds": len(seeds),
                "seconds_median": float(np.median(per_point)) if per_point else float("nan"),
                "first_call_seed0": first[0] if first else None,
            }
        summary["problems"][pname] = rows
    summary["targets"] = targets(raw, summary)
    return summary


def _median(rows, m):
    return rows[m]["regret"][0] if m in rows else None


def targets(raw: dict, summary: dict) -> dict:
    t = {}
    functions = {p: rows for p, rows in summary["problems"].items() if raw["kinds"].get(p) == "function"}
    hpo = {p: rows for p, rows in summary["problems"].items() if raw["kinds"].get(p) == "hpo"}

    def per_function(check):
        out = {}
        for p, rows in functions.items():
            got = check(rows)
            if got is not None:
                out[p] = got
        return out

    t["defaults_beat_random"] = per_function(
        lambda r: _median(r, "hx-default") < _median(r, "random") if "hx-default" in r and "random" in r else None)
    t["x4_within_3x"] = per_function(
        lambda r: _median(r, "hx-preset-x4") <= 3 * _median(r, "hx-preset")
        if "hx-preset-x4" in r and "hx-preset" in r else None)
    t["x8_within_10x"] = per_function(
        lambda r: _median(r, "hx-preset-x8") <= 10 * _median(r, "hx-preset")
        if "hx-preset-x8" in r and "hx-preset" in r else None)
    for peer in ("optuna-gp-x8", "optuna-tpe-x8"):
        t[f"x8_ahead_of_{peer}"] = per_function(
            lambda r, peer=peer: _median(r, "hx-preset-x8") < _median(r, peer) if peer in r and "hx-preset-x8" in r
            else None)
    t["hpo_preset_le_optuna_gp"] = {
        p: _median(r, "hx-preset") <= _median(r, "optuna-gp") for p, r in hpo.items() if "optuna-gp" in r}
    t["hpo_defaults_beat_random"] = {
        p: _median(r, "hx-default") < _median(r, "random") for p, r in hpo.items() if "random" in r and "hx-default" in r}
    probe = raw.get("probe")
    if probe:
        gp_cost = _suggestion_cost(probe, "optuna-gp")
        t["probe_ratio_vs_gp"] = {k: _suggestion_cost(probe, k) / gp_cost for k in ("hx-default", "hx-preset")}
    return t


def _suggestion_cost(probe: dict, name: str) -> float:
    """Mean seconds per suggestion of one method of the cost probe.

    The mean, not the median: hyperoptax refits its GP every few observations, and a run pays every refit.
    """
    return float(np.mean(probe[name]["suggestion"]))


def _row_table(raw, pname, rows) -> list[str]:
    budget = raw["budgets"][pname]
    optimum = raw["optima"].get(pname)
    what = f"optimum {optimum:.6f}" if optimum is not None else "regret against the best value of the run"
    lines = [f"### {pname} ({what}, {budget} evaluations)", "",
             "| method | seeds | median regret | IQR | vs Optuna GP (same batch) | s / suggestion (median) "
             "| first call (compiles) |", "|---|---|---|---|---|---|---|"]
    for mname, r in rows.items():
        med, q25, q75 = r["regret"]
        suffix = mname.rsplit("-x", 1)[1] if "-x" in mname else None
        peer = "optuna-gp" + (f"-x{suffix}" if suffix else "")
        vs = _paired_wins(r["regrets"], rows[peer]["regrets"]) if peer in rows and peer != mname else ""
        first = f"{r['first_call_seed0']:.1f} s" if r["first_call_seed0"] is not None and mname.startswith("hx") else ""
        lines.append(f"| {mname} | {r['seeds']} | {fmt(med)} | [{fmt(q25)}, {fmt(q75)}] | {vs} "
                     f"| {r['seconds_median'] * 1e3:.1f} ms | {first} |")
    return lines + [""]


def _batch_table(raw, summary) -> list[str]:
    """Median regret per function of every batch method at every batch size, side by side."""
    sizes = [q for q in raw.get("batch_sizes", []) if q > 1]
    names = ["preset"] + [s for s in raw.get("strategies", [])] + ["optuna-gp", "optuna-tpe"]
    lines = ["### Batches at a glance (median regret; q = configurations per iteration, same evaluations)", "",
             "| function | method | q = 1 | " + " | ".join(f"q = {q}" for q in sizes) + " |",
             "|---|---|---|" + "---|" * len(sizes)]
    for pname, rows in summary["problems"].items():
        if raw["kinds"].get(pname) != "function":
            continue
        for n in names:
            base = f"hx-{n}" if not n.startswith("optuna") else n
            seq = rows.get("hx-preset" if n == "preset" else n if n.startswith("optuna") else None)
            batched = [rows.get(f"{base}-x{q}") for q in sizes]
            if seq is None and not any(batched):
                continue  # not run on this function
            cells = [fmt(seq["regret"][0]) if seq else ""] + [fmt(r["regret"][0]) if r else "" for r in batched]
            lines.append(f"| {pname} | {n} | " + " | ".join(cells) + " |")
    return lines + [""]


def render(raw: dict, summary: dict) -> str:
    info = raw["machine"]
    lines = [
        "## " + raw.get("title", "Search: sample efficiency, batches, mixed spaces and seconds per suggestion"),
        "",
        f"Command: `{raw['command']}`  ",
        (f"Wall time of the whole run: {raw['wall_seconds'] / 60:.1f} min. " if "wall_seconds" in raw else
         "Several runs, see below. " if raw.get("notes") else
         f"Run cut short after {', '.join(raw['runs'])} (rendered from the partial results). ") +
        f"Machine: {info['nproc']} cores, "
        f"{info['cpu']}, backend {info['jax_backend']}. Versions: jax {info['jax']}, optuna {info['optuna']}, torch "
        f"{info['torch']}, numpy {info['numpy']}, hyperoptax {info['hyperoptax']} (commit {info['git_commit']}), "
        f"python {info['python']}. " + (f"Load average (1 min) at start / end: {raw['load_average']['start'][0]:.1f} / "
        f"{raw['load_average']['end'][0]:.1f} " if "load_average" in raw else "") +
        "(the machine is shared; timings of all methods share the noise).  ",
        f"Preset: `{raw['preset']}`.",
        "",
        f"Simple regret = best value found - global minimum after the budget of evaluations (for the real HPO "
        f"problems: - the best value any method found in the run), over {raw['seeds']} seeds (more where a "
        "median moved between the first and second half of the seeds), median and interquartile range; lower "
        "is better" + (f"; Optuna GPSampler ran seeds 0-{raw['gp_seeds'] - 1} only (time), its medians and the "
                       "'vs Optuna GP' counts are over those" if raw.get("gp_seeds") else "") + ". '-x{q}' methods ask q configurations per iteration (same evaluations). 'vs Optuna GP' counts "
        "the seeds on which the method found a lower value than Optuna GPSampler asked in the same batch size. "
        "Seconds per suggestion: median over the model-based suggestions of every seed (hyperoptax: "
        "`get_next_params` + `update_state` after the first, compiling iteration; Optuna: `study.ask` after its 10 "
        "random start-up trials), a batch's time divided by its size.",
        "",
    ]
    if raw.get("extended"):
        for pname, e in raw["extended"].items():
            lines.append(f"- {pname}: {', '.join(e['rows'])} moved more than 3x between the two halves of the "
                         f"first {e.get('first', raw['seeds'])} seeds, so {', '.join(e['methods'])} ran {e['seeds']} seeds.")
        lines.append("")
    if raw.get("notes"):
        lines += [f"- {n}" for n in raw["notes"]] + [""]
    short = [f"{p} at {q}: {raw['budgets'][p] // q * q}" for p in raw["runs"] if raw["kinds"].get(p) == "function"
             for q in raw.get("batch_sizes", []) if raw["budgets"][p] % q]
    if short:
        lines += ["- A batch size that does not divide the budget runs whole batches only, so fewer evaluations "
                  "(" + ", ".join(short) + ").", ""]
    lines += _batch_table(raw, summary)
    for pname, rows in summary["problems"].items():
        lines += _row_table(raw, pname, rows)
    lines += _probe_table(raw)
    lines += _targets_text(raw, summary)
    lines.append(f"Raw per-seed results: `{raw['json']}`.")
    return "\n".join(lines)


def _probe_table(raw) -> list[str]:
    probe = raw.get("probe")
    if not probe:
        return []
    gp_cost = _suggestion_cost(probe, "optuna-gp")
    lines = [
        f"### Cost of one suggestion at {probe['observations']} observations ({probe['function']})",
        "",
        f"Each method is given {probe['observations']} uniformly random observations, then "
        f"{probe['timed_suggestions']} further suggestions are timed, the methods taking turns so that "
        "they share the machine's load. One untimed suggestion each comes first (hyperoptax compiles; Optuna's GP "
        "fits from scratch; 'first' column). hyperoptax: n_parallel = 1. The ratio is of the mean suggestion (what "
        "a run pays: the preset refits its GP's hyperparameters after every third observation at this size, and "
        "a refit costs more than the rest of an update) to Optuna's GPSampler's as shipped; 'optuna-gp-1thread' "
        "is the same sampler with `torch.set_num_threads(1)`.",
        "",
        "| method | get_next_params (median) | suggestion (get + update), mean | ratio to Optuna GP | median | IQR "
        "| first |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("hx-default", "hx-preset", "optuna-gp", "optuna-gp-1thread", "optuna-tpe"):
        if name not in probe:
            continue
        p = probe[name]
        cost = _suggestion_cost(probe, name)
        median, q25, q75 = quartiles(p["suggestion"])
        get = f"{np.median(p['get_next_params']) * 1e3:.1f} ms" if p["get_next_params"] else ""
        lines.append(f"| {name} | {get} | {cost * 1e3:.1f} ms | {cost / gp_cost:.3f} | {median * 1e3:.1f} ms | "
                     f"[{q25 * 1e3:.1f}, {q75 * 1e3:.1f}] ms | {p['first_suggestion']:.2f} s |")
    return lines + [""]


def _targets_text(raw, summary) -> list[str]:
    t = summary["targets"]
    probs = summary["problems"]

    def yes(b):
        return "**met**" if b else "**not met**"

    def detail(key, a, b, scale=1.0):
        # How many of a's seeds are below the bar: near half, the verdict needs more seeds.
        def one(p):
            bar = scale * probs[p][b]["regret"][0]
            below = sum(r < bar for r in probs[p][a]["regrets"])
            return f"{p}: {fmt(probs[p][a]['regret'][0])} vs {fmt(bar)}, below on {below}/{len(probs[p][a]['regrets'])}"

        return "; ".join(one(p) for p in t.get(key, {}))

    lines = ["### Targets", ""]
    checks = [
        ("defaults_beat_random", "The documented defaults beat random search on every function", "hx-default",
         "random", 1.0),
        ("x4_within_3x", "The preset in batches of 4 is within 3x of the sequential preset (x4 vs 3 x sequential)",
         "hx-preset-x4", "hx-preset", 3.0),
        ("x8_within_10x", "The preset in batches of 8 is within 10x of the sequential preset (x8 vs 10 x sequential)",
         "hx-preset-x8", "hx-preset", 10.0),
        ("x8_ahead_of_optuna-gp-x8", "The preset in batches of 8 is ahead of Optuna GPSampler asked 8 at a time",
         "hx-preset-x8", "optuna-gp-x8", 1.0),
        ("x8_ahead_of_optuna-tpe-x8", "The preset in batches of 8 is ahead of Optuna TPE (constant liar) asked 8 at "
         "a time", "hx-preset-x8", "optuna-tpe-x8", 1.0),
    ]
    for key, text, a, b, scale in checks:
        if t.get(key):
            lines.append(f"- {text}: {yes(all(t[key].values()))} ({detail(key, a, b, scale)}).")
    if t.get("hpo_preset_le_optuna_gp"):
        n_ok, n = sum(t["hpo_preset_le_optuna_gp"].values()), len(t["hpo_preset_le_optuna_gp"])
        lines.append(f"- On the real HPO problems the sequential preset matches or beats Optuna GPSampler on at least "
                     f"half: {yes(2 * n_ok >= n)} ({n_ok}/{n}; {detail('hpo_preset_le_optuna_gp', 'hx-preset', 'optuna-gp')}).")
    if t.get("hpo_defaults_beat_random"):
        n_ok, n = sum(t["hpo_defaults_beat_random"].values()), len(t["hpo_defaults_beat_random"])
        lines.append(f"- (Also measured) the documented defaults beat random search on the real HPO problems: {n_ok}/{n} "
                     f"({detail('hpo_defaults_beat_random', 'hx-default', 'random')}).")
    if "probe_ratio_vs_gp" in t:
        r = t["probe_ratio_vs_gp"]
        lines.append(f"- A suggestion costs at most a tenth of Optuna GPSampler's at {raw['probe']['observations']} "
                     f"observations: {yes(r['hx-preset'] <= 0.1)} (ratio {r['hx-preset']:.3f} for the preset, "
                     f"{r['hx-default']:.3f} for the defaults).")
    return lines + [""] if len(lines) > 2 else []  # a run without the targets' rows has no Targets heading
