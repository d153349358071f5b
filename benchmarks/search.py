"""Sample efficiency and speed of the search: hyperoptax against random search and Optuna.

For each test function (``benchmarks/functions.py``) and seed, every method minimizes the function
for a fixed number of evaluations; the simple regret is ``best value found - global minimum``. The
time of each suggestion is measured as well, and a separate probe times a suggestion once 100
observations of Hartmann-6 are in the model.

    python benchmarks/search.py                 # full run, writes benchmarks/RESULTS.md
    python benchmarks/search.py --quick         # ~2 minute smoke run, writes nothing tracked

Methods:

* ``hx-default``: ``BayesianSearch`` with its documented defaults, one point per iteration.
* ``hx-recommended``: the recommended preset, one point per iteration.
* ``hx-recommended-x4``: the preset proposing batches of 4 (budget/4 iterations, same evaluations).
* ``random``: ``hyperoptax.RandomSearch``.
* ``optuna-tpe`` / ``optuna-gp``: ``TPESampler(seed=seed)`` / ``GPSampler(seed=seed)``, ask/tell.

The cost of a hyperoptax suggestion is ``get_next_params`` plus ``update_state`` (that is where the GP
hyperparameters are refit); the cost of an Optuna suggestion is ``study.ask`` (where the sampler
fits its GP / Parzen estimators and optimizes the acquisition). The first hyperoptax iteration
includes compilation and is reported separately.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from functions import FUNCTIONS, TestFunction  # noqa: E402

import hyperoptax  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"
BEGIN, END = "<!-- search:begin -->", "<!-- search:end -->"

DEFAULT_FUNCTIONS = ("branin", "hartmann3", "levy4", "hartmann6")
# Evaluations per run, chosen so the full run fits in ~25 minutes on 2 CPU cores.
DEFAULT_BUDGETS = {"branin": 40, "hartmann3": 50, "levy4": 60, "hartmann6": 80, "ackley5": 80, "camel": 40}
PROBE_OBSERVATIONS = 100
BATCH = 4


# --------------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    values: list[float]  # every evaluation, in order
    suggest_seconds: list[float]  # one per iteration (a batch counts as one iteration)
    points_per_iteration: int
    first_iteration_seconds: float | None  # hyperoptax: includes compilation (cached after seed 0)
    best_x: list[float]
    # Leading entries of suggest_seconds that are random start-up suggestions, not model-based ones.
    startup_suggestions: int = 0


def space_for(f: TestFunction) -> dict:
    return {f"x{i}": hyperoptax.LinearSpace(float(lo), float(hi)) for i, (lo, hi) in enumerate(f.bounds)}


def _rows(params: dict, dim: int) -> np.ndarray:
    """Batched params ``{x0: (n,), ...}`` -> points ``(n, dim)``."""
    return np.stack([np.asarray(params[f"x{i}"], dtype=np.float64).reshape(-1) for i in range(dim)], axis=-1)


def _block(tree):
    return jax.block_until_ready(tree)


def recommended_kwargs() -> tuple[str, dict]:
    """The fields of the recommended preset, and where they came from."""
    preset = getattr(hyperoptax, "RECOMMENDED", None)
    if preset is not None:
        fields = ", ".join(f"{k}={v!r}" for k, v in preset.items())
        return f"BayesianSearch.recommended() = BayesianSearch({fields})", dict(preset)
    from hyperoptax import LogEI, Matern

    return (
        "BayesianSearch(kernel=Matern(nu=2.5), acquisition=LogEI())  [stand-in: no preset found]",
        dict(kernel=Matern(nu=2.5), acquisition=LogEI()),
    )


_OPTIMIZERS: dict = {}


def make_hyperoptax(kind: str, space: dict, n_max: int, n_parallel: int, reuse: bool = True):
    """``(state, optimizer)`` for a hyperoptax method, minimizing.

    The optimizer is frozen configuration and its step functions are jitted per instance, so the
    benchmark keeps one instance per configuration and gives each seed only a fresh state: seeds after
    the first run compiled code, as a user's sweep over seeds would.
    """
    state, optimizer = _make_hyperoptax(kind, space, n_max, n_parallel)
    if reuse:
        optimizer = _OPTIMIZERS.setdefault((kind, repr(space), n_max, n_parallel), optimizer)
    return state, optimizer


def _make_hyperoptax(kind: str, space: dict, n_max: int, n_parallel: int):
    common = dict(n_max=n_max, n_parallel=n_parallel, maximize=False)
    if kind == "default":
        return hyperoptax.BayesianSearch.init(space, **common)
    if kind == "recommended":
        return hyperoptax.BayesianSearch.init(space, **common, **recommended_kwargs()[1])
    if kind == "random":
        return hyperoptax.RandomSearch.init(space, **common)
    raise ValueError(kind)


def run_hyperoptax(kind: str, f: TestFunction, budget: int, seed: int, n_parallel: int = 1) -> RunResult:
    n_iterations = budget // n_parallel
    state, opt = make_hyperoptax(kind, space_for(f), n_max=n_iterations * n_parallel, n_parallel=n_parallel)
    key = jax.random.key(seed)
    values, times = [], []
    for _ in range(n_iterations):
        key, k_next, k_update = jax.random.split(key, 3)
        t0 = time.perf_counter()
        params = _block(opt.get_next_params(state, k_next))
        elapsed = time.perf_counter() - t0
        points = _rows(params, f.dim)
        results = [f.evaluate(p) for p in points]
        t0 = time.perf_counter()
        state = _block(opt.update_state(state, k_update, jnp.asarray(results, jnp.float32), params))
        times.append(elapsed + time.perf_counter() - t0)
        values.extend(results)
    return RunResult(values, times[1:], n_parallel, times[0], _best_x(values, state, opt, f))


def _best_x(values, state, opt, f) -> list[float]:
    try:
        best = opt.best_params(state)
        return [float(np.asarray(best[f"x{i}"]).reshape(())) for i in range(f.dim)]
    except Exception:  # best_params is a convenience; the regret does not depend on it
        return []


def run_random_numpy(f: TestFunction, budget: int, seed: int) -> RunResult:
    rng = np.random.default_rng(seed)
    lo, hi = np.array(f.bounds).T
    values, times, xs = [], [], []
    for _ in range(budget):
        t0 = time.perf_counter()
        x = lo + rng.random(f.dim) * (hi - lo)
        times.append(time.perf_counter() - t0)
        xs.append(x)
        values.append(f.evaluate(x))
    return RunResult(values, times[1:], 1, times[0], xs[int(np.argmin(values))].tolist())


def run_optuna(sampler_name: str, f: TestFunction, budget: int, seed: int) -> RunResult:
    import optuna
    from optuna.distributions import FloatDistribution

    sampler = {"tpe": optuna.samplers.TPESampler, "gp": optuna.samplers.GPSampler}[sampler_name](seed=seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    distributions = {f"x{i}": FloatDistribution(float(lo), float(hi)) for i, (lo, hi) in enumerate(f.bounds)}
    values, times = [], []
    for _ in range(budget):
        t0 = time.perf_counter()
        trial = study.ask(distributions)  # fixed distributions: the sampler does its work here
        times.append(time.perf_counter() - t0)
        value = f.evaluate([trial.params[f"x{i}"] for i in range(f.dim)])
        study.tell(trial, value)
        values.append(value)
    # Both samplers suggest their first n_startup_trials (default 10) at random.
    startup = getattr(sampler, "_n_startup_trials", 10)
    return RunResult(values, times[1:], 1, times[0], [study.best_params[f"x{i}"] for i in range(f.dim)],
                     startup_suggestions=max(startup - 1, 0))


def methods(include_batched: bool, random_impl: str) -> dict[str, Callable]:
    ms: dict[str, Callable] = {
        "hx-default": lambda f, b, s: run_hyperoptax("default", f, b, s),
        "hx-recommended": lambda f, b, s: run_hyperoptax("recommended", f, b, s),
    }
    if include_batched:
        ms["hx-recommended-x4"] = lambda f, b, s: run_hyperoptax("recommended", f, b, s, n_parallel=BATCH)
    if random_impl == "hyperoptax":
        ms["random"] = lambda f, b, s: run_hyperoptax("random", f, b, s)
    else:
        ms["random"] = run_random_numpy
    ms["optuna-tpe"] = lambda f, b, s: run_optuna("tpe", f, b, s)
    ms["optuna-gp"] = lambda f, b, s: run_optuna("gp", f, b, s)
    return ms


# --------------------------------------------------------------------------------------------------
# The 100-observation cost probe
# --------------------------------------------------------------------------------------------------


class _HyperoptaxProbe:
    """A hyperoptax optimizer holding ``n_obs`` random observations; ``step()`` times one suggestion."""

    def __init__(self, kind, f, n_obs, n_timed, seed):
        self.f = f
        self.state, self.opt = make_hyperoptax(kind, space_for(f), n_max=n_obs + n_timed + 10, n_parallel=1,
                                               reuse=False)
        rng = np.random.default_rng(seed)
        lo, hi = np.array(f.bounds).T
        self.key = jax.random.key(seed)
        for _ in range(n_obs):
            x = lo + rng.random(f.dim) * (hi - lo)
            params = {f"x{i}": jnp.asarray([x[i]], jnp.float32) for i in range(f.dim)}
            self.key, k = jax.random.split(self.key)
            self.state = self.opt.update_state(self.state, k, jnp.asarray([f.evaluate(x)], jnp.float32), params)
        _block(self.state)

    def step(self) -> tuple[float, float]:
        """Seconds of (get_next_params, get_next_params + update_state)."""
        self.key, k_next, k_update = jax.random.split(self.key, 3)
        t0 = time.perf_counter()
        params = _block(self.opt.get_next_params(self.state, k_next))
        t_get = time.perf_counter() - t0
        results = jnp.asarray([self.f.evaluate(p) for p in _rows(params, self.f.dim)], jnp.float32)
        t0 = time.perf_counter()
        self.state = _block(self.opt.update_state(self.state, k_update, results, params))
        return t_get, t_get + time.perf_counter() - t0


class _OptunaProbe:
    """An Optuna study holding ``n_obs`` random trials; ``step()`` times one ``ask``."""

    def __init__(self, sampler_name, f, n_obs, n_timed, seed, torch_threads=None):
        import optuna
        from optuna.distributions import FloatDistribution

        self.f = f
        self.torch_threads = torch_threads
        sampler = {"tpe": optuna.samplers.TPESampler, "gp": optuna.samplers.GPSampler}[sampler_name](seed=seed)
        self.study = optuna.create_study(direction="minimize", sampler=sampler)
        self.distributions = {f"x{i}": FloatDistribution(float(lo), float(hi)) for i, (lo, hi) in enumerate(f.bounds)}
        rng = np.random.default_rng(seed)
        lo, hi = np.array(f.bounds).T
        for _ in range(n_obs):
            x = lo + rng.random(f.dim) * (hi - lo)
            params = {f"x{i}": float(x[i]) for i in range(f.dim)}
            self.study.add_trial(optuna.trial.create_trial(params=params, distributions=self.distributions,
                                                           value=f.evaluate(x)))

    def step(self) -> tuple[None, float]:
        import torch

        default_threads = torch.get_num_threads()
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        try:
            t0 = time.perf_counter()
            trial = self.study.ask(self.distributions)
            elapsed = time.perf_counter() - t0
        finally:
            torch.set_num_threads(default_threads)
        self.study.tell(trial, self.f.evaluate([trial.params[f"x{i}"] for i in range(self.f.dim)]))
        return None, elapsed


def run_probe(n_obs: int, n_timed: int, seed: int = 0) -> dict:
    """Time suggestions with ``n_obs`` observations of Hartmann-6 in every model.

    The methods take turns, one suggestion each per round, so that they share whatever else the
    machine is doing at the time. One untimed round first: it compiles hyperoptax's step functions for
    this ``n_max`` and lets Optuna's GPSampler fit once (later asks warm-start from that fit, as
    hyperoptax's updates warm-start from the previous fit).
    """
    f = FUNCTIONS["hartmann6"]
    probes = {
        "hx-default": _HyperoptaxProbe("default", f, n_obs, n_timed, seed),
        "hx-recommended": _HyperoptaxProbe("recommended", f, n_obs, n_timed, seed),
        "optuna-gp": _OptunaProbe("gp", f, n_obs, n_timed, seed),
        "optuna-tpe": _OptunaProbe("tpe", f, n_obs, n_timed, seed),
        # hyperoptax keeps its LAPACK on one thread; this row shows Optuna's GP under the same restriction.
        "optuna-gp-1thread": _OptunaProbe("gp", f, n_obs, n_timed, seed, torch_threads=1),
    }
    out = {"function": f.name, "observations": n_obs, "timed_suggestions": n_timed}
    for name, probe in probes.items():
        _, first = probe.step()
        out[name] = {"get_next_params": [], "suggestion": [], "first_suggestion": first}
    for _ in range(n_timed):
        for name, probe in probes.items():
            t_get, t_total = probe.step()
            if t_get is not None:
                out[name]["get_next_params"].append(t_get)
            out[name]["suggestion"].append(t_total)
    return out


# --------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------


def quartiles(xs) -> tuple[float, float, float]:
    q25, q50, q75 = np.percentile(np.asarray(xs, dtype=np.float64), [25, 50, 75])
    return float(q50), float(q25), float(q75)


def fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100 or abs(x) < 1e-3:
        return f"{x:.2e}"
    return f"{x:.4g}"


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import optuna
    import torch

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=HERE).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "../src"], capture_output=True, text=True,
                               cwd=HERE).stdout.strip()
        if dirty:
            commit += " + uncommitted changes under src/"
    except OSError:
        commit = ""
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "optuna": optuna.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "hyperoptax": getattr(hyperoptax, "__version__", "?"),
        "git_commit": commit,
    }


def summarize(raw: dict) -> dict:
    """Per function and method: regret quartiles, per-suggestion seconds; the targets."""
    summary = {"functions": {}, "targets": {}}
    for fname, per_method in raw["runs"].items():
        opt = FUNCTIONS[fname].optimum
        rows = {}
        for mname, seeds in per_method.items():
            regrets = [min(r["values"]) - opt for r in seeds]
            per_point = [t / r["points_per_iteration"] for r in seeds
                         for t in r["suggest_seconds"][r.get("startup_suggestions", 0):]]
            first = [r["first_iteration_seconds"] for r in seeds if r["first_iteration_seconds"] is not None]
            rows[mname] = {
                "regret": quartiles(regrets),
                "regrets": regrets,
                "seconds_median": float(np.median(per_point)) if per_point else float("nan"),
                "seconds_mean": float(np.mean(per_point)) if per_point else float("nan"),
                "first_call_seed0": first[0] if first else None,
                "first_call_later_median": float(np.median(first[1:])) if len(first) > 1 else None,
            }
        summary["functions"][fname] = rows

    funcs = summary["functions"]
    rec, rnd, gp = "hx-recommended", "random", "optuna-gp"
    if all(rec in r and rnd in r and gp in r for r in funcs.values()):
        beats_random = {f: r[rec]["regret"][0] < r[rnd]["regret"][0] for f, r in funcs.items()}
        vs_gp = {f: r[rec]["regret"][0] <= r[gp]["regret"][0] for f, r in funcs.items()}
        summary["targets"]["recommended_beats_random_everywhere"] = all(beats_random.values())
        summary["targets"]["beats_random"] = beats_random
        summary["targets"]["matches_or_beats_gp"] = vs_gp
        summary["targets"]["matches_or_beats_gp_on_half"] = sum(vs_gp.values()) * 2 >= len(vs_gp)
    probe = raw.get("probe")
    if probe:
        gp_cost = float(np.median(probe["optuna-gp"]["suggestion"]))
        ratios = {}
        for kind in ("hx-default", "hx-recommended"):
            ratios[kind] = float(np.median(probe[kind]["suggestion"])) / gp_cost
        summary["targets"]["probe_ratio_vs_gp"] = ratios
        if "optuna-gp-1thread" in probe:
            gp1 = float(np.median(probe["optuna-gp-1thread"]["suggestion"]))
            summary["targets"]["probe_ratio_vs_gp_1thread"] = {
                kind: float(np.median(probe[kind]["suggestion"])) / gp1 for kind in ("hx-default", "hx-recommended")}
        summary["targets"]["suggestion_cost_at_most_tenth_of_gp"] = ratios["hx-recommended"] <= 0.1
    return summary


def paired_wins(a: list[float], b: list[float]) -> str:
    wins = sum(x < y for x, y in zip(a, b))
    ties = sum(x == y for x, y in zip(a, b))
    return f"{wins}/{len(a)}" + (f" (+{ties} ties)" if ties else "")


def render(raw: dict, summary: dict) -> str:
    info = raw["machine"]
    lines = [
        "## Search: sample efficiency and seconds per suggestion",
        "",
        f"Command: `{raw['command']}`  ",
        f"Wall time of the whole run: {raw['wall_seconds'] / 60:.1f} min. "
        f"Machine: {info['nproc']} cores, {info['cpu']}, backend {info['jax_backend']}. "
        f"Versions: jax {info['jax']}, optuna {info['optuna']}, torch {info['torch']}, numpy {info['numpy']}, "
        f"hyperoptax {info['hyperoptax']} (commit {info['git_commit']}), python {info['python']}. "
        f"Load average (1 min) at start / end: {raw['load_average']['start'][0]:.1f} / "
        f"{raw['load_average']['end'][0]:.1f} (the machine is shared; timings of all methods share the noise).  ",
        f"Recommended preset: `{raw['recommended_preset']}`. Random search: {raw['random_impl']}.",
        "",
        f"Simple regret = best value found - global minimum after the budget of evaluations, over "
        f"{raw['seeds']} seeds (median and interquartile range); lower is better. "
        "'vs GP' counts the seeds on which the method found a lower value than Optuna GPSampler with the same "
        "seed. Seconds per suggestion: median (and mean) over the model-based suggestions of every seed, that is "
        "after hyperoptax's first (warm-up, compiling) iteration and after Optuna's 10 random start-up trials "
        "(hyperoptax: `get_next_params` + `update_state`; Optuna: `study.ask`); a batched "
        f"iteration's time is divided by its {BATCH} points. "
        "'first call' is the first hyperoptax iteration of seed 0 (compilation) and of later seeds.",
        "",
    ]
    for fname, rows in summary["functions"].items():
        f = FUNCTIONS[fname]
        lines += [
            f"### {fname} (d={f.dim}, optimum {f.optimum:.6f}, budget {raw['budgets'][fname]} evaluations)",
            "",
            "| method | median regret | IQR | vs GP | s / suggestion (median) | mean | first call: seed 0 / later |",
            "|---|---|---|---|---|---|---|",
        ]
        gp = rows.get("optuna-gp")
        for mname, r in rows.items():
            med, q25, q75 = r["regret"]
            vs = paired_wins(r["regrets"], gp["regrets"]) if gp and mname != "optuna-gp" else ""
            first = ""
            if r["first_call_seed0"] is not None and mname.startswith("hx"):
                later = r["first_call_later_median"]
                first = f"{r['first_call_seed0']:.2f} s / {later:.3f} s" if later is not None else \
                    f"{r['first_call_seed0']:.2f} s"
            lines.append(
                f"| {mname} | {fmt(med)} | [{fmt(q25)}, {fmt(q75)}] | {vs} | {r['seconds_median'] * 1e3:.1f} ms "
                f"| {r['seconds_mean'] * 1e3:.1f} ms | {first} |"
            )
        lines.append("")

    probe = raw.get("probe")
    t = summary["targets"]
    if probe:
        gp_cost = float(np.median(probe["optuna-gp"]["suggestion"]))
        lines += [
            f"### Cost of one suggestion at {probe['observations']} observations ({probe['function']})",
            "",
            f"Each method is given {probe['observations']} uniformly random observations, then "
            f"{probe['timed_suggestions']} further suggestions are timed (median), the methods taking turns "
            f"so that they share the machine's load. One untimed suggestion each comes first (hyperoptax "
            f"compiles; Optuna's GP fits from scratch; 'first' column). hyperoptax: n_max = "
            f"{probe['observations'] + probe['timed_suggestions'] + 10}, n_parallel = 1. The target's ratio is "
            "against Optuna's GPSampler as shipped (torch's default thread count); 'optuna-gp-1thread' is the "
            "same sampler with `torch.set_num_threads(1)` during `ask`, for comparison with hyperoptax, which "
            "keeps its LAPACK on one thread.",
            "",
            "| method | get_next_params | suggestion (get + update) | ratio to Optuna GP | IQR of suggestion | first |",
            "|---|---|---|---|---|---|",
        ]
        for kind in ("hx-default", "hx-recommended"):
            p = probe[kind]
            cost = float(np.median(p["suggestion"]))
            _, q25, q75 = quartiles(p["suggestion"])
            lines.append(f"| {kind} | {np.median(p['get_next_params']) * 1e3:.1f} ms | {cost * 1e3:.1f} ms "
                         f"| {cost / gp_cost:.3f} | [{q25 * 1e3:.1f}, {q75 * 1e3:.1f}] ms "
                         f"| {p['first_suggestion']:.2f} s |")
        for name in ("optuna-gp", "optuna-gp-1thread", "optuna-tpe"):
            if name not in probe:
                continue
            p = probe[name]
            cost = float(np.median(p["suggestion"]))
            _, q25, q75 = quartiles(p["suggestion"])
            lines.append(f"| {name} | | {cost * 1e3:.1f} ms | {cost / gp_cost:.3f} | [{q25 * 1e3:.1f}, {q75 * 1e3:.1f}] ms "
                         f"| {p['first_suggestion']:.2f} s |")
        lines.append("")

    if t:
        def yes(b):
            return "**met**" if b else "**not met**"

        lines += ["### Targets", ""]
        if "beats_random" in t:
            per_f = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in t["beats_random"].items())
            lines.append(f"- Recommended preset beats random search (median regret) on every function: "
                         f"{yes(t['recommended_beats_random_everywhere'])} ({per_f}).")
            per_f = ", ".join(
                f"{k}: {fmt(summary['functions'][k]['hx-recommended']['regret'][0])} vs "
                f"{fmt(summary['functions'][k]['optuna-gp']['regret'][0])}" for k in t["matches_or_beats_gp"])
            n_ok = sum(t["matches_or_beats_gp"].values())
            lines.append(f"- Recommended preset's median regret <= Optuna GPSampler's on at least half the functions: "
                         f"{yes(t['matches_or_beats_gp_on_half'])} ({n_ok}/{len(t['matches_or_beats_gp'])}; "
                         f"{per_f}).")
        if "probe_ratio_vs_gp" in t:
            lines.append(f"- A suggestion costs at most a tenth of Optuna GPSampler's at {probe['observations']} "
                         f"observations: {yes(t['suggestion_cost_at_most_tenth_of_gp'])} (ratio "
                         f"{t['probe_ratio_vs_gp']['hx-recommended']:.3f} for the preset, "
                         f"{t['probe_ratio_vs_gp']['hx-default']:.3f} for the defaults"
                         + (f"; against the single-threaded GPSampler: "
                            f"{t['probe_ratio_vs_gp_1thread']['hx-recommended']:.3f} and "
                            f"{t['probe_ratio_vs_gp_1thread']['hx-default']:.3f}" if "probe_ratio_vs_gp_1thread" in t
                            else "") + ").")
        lines.append("")
    lines += per_seed_table(raw)
    lines.append(f"Raw per-seed results: `{raw['json']}`.")
    return "\n".join(lines)


def per_seed_table(raw: dict) -> list[str]:
    """Regret of every seed for the methods the targets compare."""
    wanted = [m for m in ("hx-recommended", "hx-recommended-x4", "random", "optuna-gp") if m in raw["methods"]]
    if not wanted:
        return []
    lines = [
        "<details><summary>Regret per seed (the preset against random search and Optuna GPSampler)</summary>",
        "",
        "| function | seed | " + " | ".join(wanted) + " |",
        "|---|---|" + "---|" * len(wanted),
    ]
    for fname, per_method in raw["runs"].items():
        opt = FUNCTIONS[fname].optimum
        for seed in range(raw["seeds"]):
            cells = [fmt(min(per_method[m][seed]["values"]) - opt) for m in wanted]
            lines.append(f"| {fname} | {seed} | " + " | ".join(cells) + " |")
    return lines + ["", "</details>", ""]


def write_section(text: str, path: Path = RESULTS_MD) -> None:
    """Replace the search section of RESULTS.md, leaving the other sections as they are."""
    block = f"{BEGIN}\n{text}\n{END}"
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        new = head + block + tail
    else:
        new = current.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10, help="number of seeds (0..seeds-1)")
    p.add_argument("--budget", type=int, default=None,
                   help="evaluations per run for every function (default: per function, "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_BUDGETS.items()) + ")")
    p.add_argument("--functions", default=",".join(DEFAULT_FUNCTIONS),
                   help=f"comma-separated, from {', '.join(FUNCTIONS)}")
    p.add_argument("--methods", default=None, help="comma-separated subset of the methods (default: all)")
    p.add_argument("--probe-observations", type=int, default=PROBE_OBSERVATIONS)
    p.add_argument("--probe-suggestions", type=int, default=9)
    p.add_argument("--no-batched", action="store_true", help=f"skip the n_parallel={BATCH} variant")
    p.add_argument("--no-probe", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="smoke run (~3 min, mostly compilation): 2 seeds, budget 16, branin only, no batched "
                        "variant; writes results/search_quick.json only")
    p.add_argument("--json", default=None, help="raw results path (default benchmarks/results/search.json)")
    p.add_argument("--no-write-md", action="store_true", help="do not touch benchmarks/RESULTS.md")
    p.add_argument("--render", metavar="JSON", default=None,
                   help="only rebuild the report (stdout and RESULTS.md) from an earlier run's raw JSON")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds = min(args.seeds, 2)
        args.budget = args.budget or 16
        if args.functions == ",".join(DEFAULT_FUNCTIONS):
            args.functions = "branin"
        args.no_batched = True
        args.probe_suggestions = min(args.probe_suggestions, 3)
        args.no_write_md = True
    if args.json is None:
        args.json = str(HERE / "results" / ("search_quick.json" if args.quick else "search.json"))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.render:
        raw = json.loads(Path(args.render).read_text())
        raw["summary"] = summarize(raw)
        text = render(raw, raw["summary"])
        print(text)
        if not args.no_write_md:
            write_section(text)
        return raw
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    random_impl = "hyperoptax" if hasattr(hyperoptax, "RandomSearch") else "numpy"
    all_methods = methods(include_batched=not args.no_batched, random_impl=random_impl)
    if args.methods:
        all_methods = {k: v for k, v in all_methods.items() if k in args.methods.split(",")}
    if not hasattr(hyperoptax, "BayesianSearch"):
        print("hyperoptax.BayesianSearch is not available yet: skipping the hyperoptax methods and the probe.")
        all_methods = {k: v for k, v in all_methods.items() if not k.startswith("hx-")}
        args.no_probe = True
    fnames = [s.strip() for s in args.functions.split(",") if s.strip()]
    for name in fnames:
        if name not in FUNCTIONS:
            raise SystemExit(f"unknown function {name!r}; choose from {', '.join(FUNCTIONS)}")

    budgets = {f: args.budget or DEFAULT_BUDGETS[f] for f in fnames}
    command = "python benchmarks/search.py" + ("" if argv is None and len(sys.argv) == 1 else
                                               " " + " ".join(argv if argv is not None else sys.argv[1:]))
    raw = {
        "command": command,
        "seeds": args.seeds,
        "budgets": budgets,
        "methods": list(all_methods),
        "recommended_preset": recommended_kwargs()[0] if hasattr(hyperoptax, "BayesianSearch") else None,
        "random_impl": "hyperoptax.RandomSearch" if random_impl == "hyperoptax" else "numpy uniform (RandomSearch "
                                                                                    "not available)",
        "machine": machine_info(),
        "json": os.path.relpath(args.json, HERE.parent),
        "runs": {},
    }
    load_at_start = os.getloadavg()
    start = time.perf_counter()
    for fname in fnames:
        f = FUNCTIONS[fname]
        raw["runs"][fname] = {m: [] for m in all_methods}
        for seed in range(args.seeds):
            line = []
            for mname, run in all_methods.items():
                t0 = time.perf_counter()
                result = run(f, budgets[fname], seed)
                raw["runs"][fname][mname].append(result.__dict__)
                line.append(f"{mname} {fmt(min(result.values) - f.optimum)} ({time.perf_counter() - t0:.1f}s)")
            print(f"[{(time.perf_counter() - start) / 60:5.1f} min] {fname} seed {seed}: " + ", ".join(line),
                  flush=True)
        out_partial = Path(args.json).with_suffix(".partial.json")
        out_partial.parent.mkdir(parents=True, exist_ok=True)
        out_partial.write_text(json.dumps(raw, default=float))  # progress, in case the run is cut short
    if not args.no_probe:
        print(f"probe: {args.probe_observations} observations, {args.probe_suggestions} timed suggestions", flush=True)
        raw["probe"] = run_probe(args.probe_observations, args.probe_suggestions)
    raw["wall_seconds"] = time.perf_counter() - start
    raw["load_average"] = {"start": load_at_start, "end": os.getloadavg()}

    summary = summarize(raw)
    raw["summary"] = summary
    text = render(raw, summary)
    print()
    print(text)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(raw, indent=1, default=float))
    out.with_suffix(".partial.json").unlink(missing_ok=True)
    if not args.no_write_md:
        write_section(text)
        print(f"\nwrote {RESULTS_MD} and {out}")
    else:
        print(f"\nwrote {out}")
    return raw


if __name__ == "__main__":
    main()
