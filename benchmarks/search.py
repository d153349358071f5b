"""Sample efficiency, batches and speed of the search: hyperoptax against random search and Optuna.

For each problem and seed, every method minimizes it for a fixed number of evaluations; the simple
regret is ``best value found - global minimum`` (for the real HPO problems of ``hpo.py``, whose
minimum is unknown: ``- the best value any method found in the run``). Problems: the test functions of
``functions.py`` and the real HPO problems of ``hpo.py`` (scikit-learn and JAX models on bundled
datasets, mixed spaces). A separate probe times one suggestion once 100 observations of Hartmann-6
are in the model.

    python benchmarks/search.py                  # everything (several hours on 2 busy cores), writes RESULTS.md
    python benchmarks/search.py --quick          # smoke run, writes nothing tracked

The committed results come from a run sized for about an hour on 2 shared cores (its command is in
RESULTS.md): the preset at every batch size, Optuna's GPSampler and TPE at 8, the other strategies
measured separately (``--section search-strategies``).

Methods (``q`` = configurations asked per iteration; every method gets the same evaluations):

* ``hx-default``: ``BayesianSearch`` with its documented defaults, one point per iteration.
* ``hx-preset``, ``hx-preset-x{q}``: the recommended preset, sequential and in batches of ``q``
  (its batch strategy, ``RECOMMENDED["batch"]``).
* ``hx-{strategy}-x{q}``: the preset with another batch strategy (believer, fantasies, ucbpe,
  thompson, penalize; see ``hyperoptax.batch``).
* ``random``: ``hyperoptax.RandomSearch``.
* ``optuna-gp[-x{q}]`` / ``optuna-tpe[-x{q}]``: ``GPSampler(seed=seed)`` / ``TPESampler(seed=seed,
  constant_liar=True)``; a batch of ``q`` is ``q`` asks (the earlier ones RUNNING when a later one is
  asked), then ``q`` tells.

The cost of a hyperoptax suggestion is ``get_next_params`` plus ``update_state`` (that is where the GP
hyperparameters are refit); the cost of an Optuna suggestion is ``study.ask`` (where the sampler
fits its GP / Parzen estimators and optimizes the acquisition).
"""

from __future__ import annotations

import argparse
import json
import os
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
import hpo  # noqa: E402
import search_report  # noqa: E402
from functions import FUNCTIONS, TestFunction  # noqa: E402
from sections import write_section  # noqa: E402

import hyperoptax  # noqa: E402

HERE = Path(__file__).resolve().parent

DEFAULT_FUNCTIONS = ("branin", "hartmann3", "levy4", "hartmann6")
DEFAULT_PROBLEMS = tuple(hpo.PROBLEMS)
DEFAULT_BUDGETS = {"branin": 40, "hartmann3": 48, "levy4": 64, "hartmann6": 80, "ackley5": 80, "camel": 40}
BATCH_SIZES = (1, 4, 8, 16)
# Sized for about an hour on 2 shared cores: the other strategies at 8 only, Optuna's GP sequential and at 8.
STRATEGY_BATCH_SIZES = (8,)
GP_BATCH_SIZES = (1, 8)
STRATEGIES = {
    "believer": lambda: hyperoptax.KrigingBeliever(),
    "fantasies": lambda: hyperoptax.Fantasies(),
    "ucbpe": lambda: hyperoptax.UCBPE(),
    "thompson": lambda: hyperoptax.Thompson(),
    "thompson-greedy": lambda: hyperoptax.Thompson(greedy_first=True),
    "thompson-exploit": lambda: hyperoptax.Thompson(greedy_first=True, exploit=True),  # slot 2 after 10 obs/dim
    # The preset's below 16 since greedy_slots: ceil(sqrt(q)) searched q-LogEI slots, then the mean's, then draws.
    "thompson-exploit-sqrt": lambda: hyperoptax.Thompson(greedy_first=True, greedy_slots="sqrt", exploit=True),
    "thompson-exploit-always": lambda: hyperoptax.Thompson(greedy_first=True, exploit=True, exploit_after=0),
    "penalize": lambda: hyperoptax.LocalPenalization(),
    # The preset's small batches with draws half as far from the posterior mean.
    "thompson-tempered": lambda: hyperoptax.Thompson(greedy_first=True, exploit=True, draw_scale=0.5),
}
PROBE_OBSERVATIONS = 100
DEFAULT_TITLE = "Search: sample efficiency, batches, mixed spaces and seconds per suggestion"


# --------------------------------------------------------------------------------------------------
# Problems: a test function or a real HPO problem, behind one interface
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    name: str
    spec: dict  # hpo.py's space specs
    evaluate: Callable[[dict], float]
    budget: int
    optimum: float | None  # None: unknown (regret against the best found in the run)
    kind: str  # "function" or "hpo"


def function_problem(f: TestFunction, budget: int) -> Problem:
    spec = {f"x{i}": ("linear", float(lo), float(hi)) for i, (lo, hi) in enumerate(f.bounds)}
    return Problem(f.name, spec, lambda c: f.evaluate([c[f"x{i}"] for i in range(f.dim)]), budget, f.optimum,
                   "function")


def hpo_problem(p: hpo.HPOProblem, budget: int | None) -> Problem:
    return Problem(p.name, p.space, p.evaluate, budget or p.budget, None, "hpo")


# --------------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    values: list[float]  # every evaluation, in order
    suggest_seconds: list[float]  # one per iteration (a batch counts as one iteration)
    points_per_iteration: int
    first_iteration_seconds: float | None  # hyperoptax: includes compilation (cached after seed 0)
    # Leading entries of suggest_seconds that are random start-up suggestions, not model-based ones.
    startup_suggestions: int = 0


def preset(**overrides) -> dict:
    return {**hyperoptax.RECOMMENDED, **overrides}


def preset_description() -> str:
    return "BayesianSearch.recommended() = BayesianSearch(" + ", ".join(
        f"{k}={v!r}" for k, v in hyperoptax.RECOMMENDED.items()) + ")"


_OPTIMIZERS: dict = {}


def make_hyperoptax(kind: str, space: dict, n_max: int, n_parallel: int, reuse: bool = True):
    """``(state, optimizer)`` minimizing; ``kind`` is ``default``, ``preset``, ``random`` or a strategy name.

    The optimizer is frozen configuration and its steps are compiled per configuration, so the benchmark
    keeps one instance per configuration and gives each seed only a fresh state: seeds after the first
    run compiled code, as a user's sweep over seeds would.
    """
    common = dict(n_max=n_max, n_parallel=n_parallel, maximize=False)
    if kind == "default":
        state, opt = hyperoptax.BayesianSearch.init(space, **common)
    elif kind == "preset":
        state, opt = hyperoptax.BayesianSearch.init(space, **common, **preset())
    elif kind == "random":
        state, opt = hyperoptax.RandomSearch.init(space, **common)
    else:
        state, opt = hyperoptax.BayesianSearch.init(space, **common, **preset(batch=STRATEGIES[kind]()))
    if reuse:
        opt = _OPTIMIZERS.setdefault((kind, repr(space), n_max, n_parallel), opt)
    return state, opt


def _configs(space: dict, params) -> list[dict]:
    """A batch of params -> one dict of plain values per configuration."""
    plain = hyperoptax.decode_params(space, params)
    n = len(next(iter(plain.values())))
    return [{k: v[i] for k, v in plain.items()} for i in range(n)]


def run_hyperoptax(kind: str, problem: Problem, seed: int, q: int = 1) -> RunResult:
    n_iterations = problem.budget // q
    space = hpo.hyperoptax_space(problem.spec)
    state, opt = make_hyperoptax(kind, space, n_max=n_iterations * q, n_parallel=q)
    key = jax.random.key(seed)
    values, times = [], []
    for _ in range(n_iterations):
        key, k_next, k_update = jax.random.split(key, 3)
        t0 = time.perf_counter()
        params = jax.block_until_ready(opt.get_next_params(state, k_next))
        elapsed = time.perf_counter() - t0
        results = [problem.evaluate(c) for c in _configs(space, params)]
        t0 = time.perf_counter()
        state = jax.block_until_ready(opt.update_state(state, k_update, jnp.asarray(results, state.y.dtype), params))
        times.append(elapsed + time.perf_counter() - t0)
        values.extend(results)
    return RunResult(values, times[1:], q, times[0])


def run_optuna(sampler_name: str, problem: Problem, seed: int, q: int = 1) -> RunResult:
    import optuna

    if sampler_name == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    distributions = hpo.optuna_distributions(problem.spec)
    values, times = [], []
    for _ in range(problem.budget // q):
        t0 = time.perf_counter()
        trials = [study.ask(distributions) for _ in range(q)]  # fixed distributions: the sampler works here
        times.append(time.perf_counter() - t0)
        results = [problem.evaluate(t.params) for t in trials]
        for trial, value in zip(trials, results):
            study.tell(trial, value)
        values.extend(results)
    # Both samplers suggest their first n_startup_trials (default 10) at random.
    startup = getattr(sampler, "_n_startup_trials", 10)
    return RunResult(values, times[1:], q, times[0], startup_suggestions=max(startup // q - 1, 0))


def run_random(problem: Problem, seed: int) -> RunResult:
    return run_hyperoptax("random", problem, seed)


def methods(batch_sizes, strategies, strategy_sizes=None, gp_sizes=None) -> dict[str, Callable]:
    """Name -> ``run(problem, seed)``, for the test functions (every batch size) and HPO problems (q = 1).

    The other strategies run at the batch sizes in ``strategy_sizes`` and Optuna's GPSampler at those in
    ``gp_sizes`` (default: every batch size), the preset and TPE at every batch size.
    """
    ms: dict[str, Callable] = {
        "hx-default": lambda p, s: run_hyperoptax("default", p, s),
        "random": run_random,
    }
    preset_strategy = _strategy_name(hyperoptax.RECOMMENDED.get("batch"))
    for q in batch_sizes:
        suffix = "" if q == 1 else f"-x{q}"
        ms[f"hx-preset{suffix}"] = lambda p, s, q=q: run_hyperoptax("preset", p, s, q)
        if q > 1 and (strategy_sizes is None or q in strategy_sizes):
            for name in strategies:
                if name != preset_strategy:
                    ms[f"hx-{name}{suffix}"] = lambda p, s, q=q, name=name: run_hyperoptax(name, p, s, q)
        ms[f"optuna-tpe{suffix}"] = lambda p, s, q=q: run_optuna("tpe", p, s, q)
        if gp_sizes is None or q in gp_sizes:
            ms[f"optuna-gp{suffix}"] = lambda p, s, q=q: run_optuna("gp", p, s, q)
    return ms


def _strategy_name(strategy) -> str | None:
    for name, make in STRATEGIES.items():
        if strategy is not None and strategy == make():
            return name
    return None


HPO_METHODS = ("hx-preset", "random", "optuna-gp")
# The rows the targets compare; their functions get 30 seeds when a median moves between blocks of seeds.
TARGET_METHODS = ("hx-default", "random", "hx-preset", "hx-preset-x4", "hx-preset-x8", "optuna-gp-x8",
                  "optuna-tpe-x8")


# --------------------------------------------------------------------------------------------------
# The 100-observation cost probe
# --------------------------------------------------------------------------------------------------


class _HyperoptaxProbe:
    """A hyperoptax optimizer holding ``n_obs`` random observations; ``step()`` times one suggestion."""

    def __init__(self, kind, f, n_obs, n_timed, seed):
        self.f = f
        space = hpo.hyperoptax_space(function_problem(f, 0).spec)
        self.state, self.opt = make_hyperoptax(kind, space, n_max=n_obs + n_timed + 10, n_parallel=1, reuse=False)
        rng = np.random.default_rng(seed)
        lo, hi = np.array(f.bounds).T
        self.key = jax.random.key(seed)
        for _ in range(n_obs):
            x = lo + rng.random(f.dim) * (hi - lo)
            params = {f"x{i}": jnp.asarray([x[i]], jnp.float32) for i in range(f.dim)}
            self.key, k = jax.random.split(self.key)
            self.state = self.opt.update_state(self.state, k, jnp.asarray([f.evaluate(x)], jnp.float32), params)
        jax.block_until_ready(self.state)

    def step(self) -> tuple[float, float]:
        """Seconds of (get_next_params, get_next_params + update_state)."""
        self.key, k_next, k_update = jax.random.split(self.key, 3)
        t0 = time.perf_counter()
        params = jax.block_until_ready(self.opt.get_next_params(self.state, k_next))
        t_get = time.perf_counter() - t0
        x = [float(params[f"x{i}"][0]) for i in range(self.f.dim)]
        results = jnp.asarray([self.f.evaluate(x)], jnp.float32)
        t0 = time.perf_counter()
        self.state = jax.block_until_ready(self.opt.update_state(self.state, k_update, results, params))
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
        "hx-preset": _HyperoptaxProbe("preset", f, n_obs, n_timed, seed),
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
# Main
# --------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=10, help="number of seeds (0..seeds-1)")
    p.add_argument("--extend-to", type=int, default=30,
                   help="seeds for a function whose target rows' median moves more than 3x between the first "
                        "and second half of the seeds (0: never)")
    p.add_argument("--budget", type=int, default=None, help="evaluations per run for every problem")
    p.add_argument("--functions", default=",".join(DEFAULT_FUNCTIONS), help=f"from {', '.join(FUNCTIONS)}")
    p.add_argument("--problems", default=",".join(DEFAULT_PROBLEMS), help=f"real HPO problems, from "
                                                                          f"{', '.join(hpo.PROBLEMS)}; '' for none")
    p.add_argument("--batch-sizes", default=",".join(map(str, BATCH_SIZES)))
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--strategy-batch-sizes", default=",".join(map(str, STRATEGY_BATCH_SIZES)),
                   help="batch sizes at which the strategies other than the preset's run")
    p.add_argument("--gp-batch-sizes", default=",".join(map(str, GP_BATCH_SIZES)),
                   help="batch sizes at which Optuna's GPSampler runs (TPE runs at every batch size)")
    p.add_argument("--hpo-methods", default=",".join(HPO_METHODS), help="methods run on the real HPO problems")
    p.add_argument("--methods", default=None, help="comma-separated subset of the methods (default: all)")
    p.add_argument("--gp-seeds", type=int, default=None,
                   help="Optuna's GPSampler (the slowest method by far) runs only the first GP_SEEDS seeds")
    p.add_argument("--probe-observations", type=int, default=PROBE_OBSERVATIONS)
    p.add_argument("--probe-suggestions", type=int, default=30)
    p.add_argument("--no-probe", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 2 seeds, budget 16, branin and svm, batches of 1 and 4; writes "
                        "results/search_quick.json only")
    p.add_argument("--json", default=None, help="raw results path (default benchmarks/results/search.json)")
    p.add_argument("--no-write-md", action="store_true", help="do not touch benchmarks/RESULTS.md")
    p.add_argument("--section", default="search", help="the RESULTS.md section this run rewrites")
    p.add_argument("--title", default=None,
                   help=f"the section's heading (default for a run: '{DEFAULT_TITLE}'; with --render: the run's own)")
    p.add_argument("--render", metavar="JSON", default=None,
                   help="only rebuild the report (stdout and RESULTS.md) from an earlier run's raw JSON; several "
                        "comma-separated runs (made side by side on other problems) are combined into --json")
    p.add_argument("--merge", metavar="JSON", default=None,
                   help="report this run together with an earlier run's raw JSON: this run's rows replace the "
                        "earlier ones of the same problem and method, the others are kept and marked as earlier")
    p.add_argument("--note", action="append", default=[],
                   help="a line added to the report's notes (repeatable; with --render it is also saved in the JSON)")
    p.add_argument("--earlier-preset-name", default=None,
                   help="with --merge, when the preset's batch strategy changed since the earlier run: the name "
                        "(from --strategies) of the earlier preset's strategy; its batched rows are renamed "
                        "hx-NAME-x{q} (the sequential preset is the same search)")
    p.add_argument("--earlier-preset-sizes", default=None,
                   help="with --earlier-preset-name: only the batch sizes whose preset strategy changed (default: all)")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.extend_to = min(args.seeds, 2), 0
        args.budget = args.budget or 16
        if args.functions == ",".join(DEFAULT_FUNCTIONS):
            args.functions = "branin"
        if args.problems == ",".join(DEFAULT_PROBLEMS):
            args.problems = "svm"
        args.batch_sizes = "1,4"
        args.probe_suggestions = min(args.probe_suggestions, 3)
        args.no_write_md = True
    if args.json is None:
        args.json = str(HERE / "results" / ("search_quick.json" if args.quick else "search.json"))
    return args


def _run_seeds(problem: Problem, all_methods: dict, names, seeds, raw, start, gp_seeds=None):
    runs = raw["runs"].setdefault(problem.name, {})
    for seed in seeds:
        line = []
        for mname in names:
            if gp_seeds is not None and seed >= gp_seeds and mname.startswith("optuna-gp"):
                continue
            t0 = time.perf_counter()
            result = all_methods[mname](problem, seed)
            runs.setdefault(mname, []).append(result.__dict__)
            shown = min(result.values) - (problem.optimum or 0.0)
            line.append(f"{mname} {search_report.fmt(shown)} ({time.perf_counter() - t0:.1f}s)")
        print(f"[{(time.perf_counter() - start) / 60:5.1f} min] {problem.name} seed {seed}: " + ", ".join(line),
              flush=True)


def merge(earlier: dict, raw: dict, earlier_preset_name: str | None = None, renamed_sizes=None) -> dict:
    """``raw`` reported with ``earlier``'s rows that it did not rerun (see ``--merge``)."""
    merged = {**raw, "runs": {}, "budgets": {**earlier["budgets"], **raw["budgets"]},
              "kinds": {**earlier["kinds"], **raw["kinds"]}, "optima": {**earlier["optima"], **raw["optima"]},
              "batch_sizes": sorted(set(earlier.get("batch_sizes", [])) | set(raw["batch_sizes"])),
              "strategies": list(dict.fromkeys(earlier.get("strategies", []) + raw["strategies"])),
              # The earlier run's seed count describes most rows; each row's own count is in its table.
              "seeds": earlier["seeds"], "gp_seeds": raw.get("gp_seeds") or earlier.get("gp_seeds"),
              "extended": {**earlier.get("extended", {}), **raw.get("extended", {})}}
    for pname in dict.fromkeys(list(earlier["runs"]) + list(raw["runs"])):
        rows = {}
        for mname, seeds in earlier["runs"].get(pname, {}).items():
            q = mname.rsplit("-x", 1)[-1]
            if earlier_preset_name and mname.startswith("hx-preset-x") and (renamed_sizes is None or
                                                                               int(q) in renamed_sizes):
                mname = f"hx-{earlier_preset_name}-x{q}"
            # A rerun row takes the earlier one's place: the report lists rows in this order.
            rows[mname] = raw["runs"].get(pname, {}).get(mname, seeds)
        rows.update(raw["runs"].get(pname, {}))
        merged["runs"][pname] = rows
    rerun = [f"{p}: {', '.join(r)}" for p, r in raw["runs"].items()]
    if "probe" in raw:
        rerun.append("the cost probe")
    elif "probe" in earlier:
        merged["probe"] = earlier["probe"]
    merged["command"] = raw["command"] + "` ; earlier rows: `" + earlier["command"]
    sizes = "" if renamed_sizes is None else f" at q = {', '.join(map(str, renamed_sizes))}"
    renamed = (f" The earlier preset's batched rows{sizes} (its batch strategy was {earlier_preset_name}) are named "
               f"hx-{earlier_preset_name}-x{{q}}." if earlier_preset_name else "")
    merged["notes"] = [
        f"`{raw['command']}` reran, at {raw['machine'].get('git_commit') or 'this commit'} (load average "
        f"{raw['load_average']['start'][0]:.1f} / {raw['load_average']['end'][0]:.1f} at start / end, "
        f"{raw['wall_seconds'] / 60:.0f} min): " + "; ".join(rerun) + ". Every other row is an earlier figure, "
        "not rerun; the earlier runs' commits and load are in the notes below." + renamed,
    ] + [n if n.startswith("Earlier runs: ") else f"Earlier runs: {n}" for n in earlier.get("notes", [])]
    merged["json"] = raw["json"]
    merged.pop("wall_seconds", None)
    merged.pop("load_average", None)
    return merged


def combine(raws: list[dict], json_path: str) -> dict:
    """One report of runs made side by side (say, one process per core, each on other problems).

    Each problem's rows come from the run that measured it (a later run's rows replace an earlier one's);
    the probe from the last run that has one; the notes say how each run was made.
    """
    out = {**raws[0], "runs": {}, "extended": {}, "budgets": {}, "kinds": {}, "optima": {},
           "command": " ; ".join(r["command"] for r in raws), "json": json_path}
    out["notes"] = []
    for r in raws:
        for key in ("runs", "extended", "budgets", "kinds", "optima"):
            for name, value in r.get(key, {}).items():
                out[key][name] = {**out[key].get(name, {}), **value} if key == "runs" else value
        for key in ("batch_sizes", "strategies"):
            out[key] = list(dict.fromkeys(out.get(key, []) + r.get(key, [])))
        if "probe" in r:
            out["probe"] = r["probe"]
        load = r.get("load_average")
        if load:
            out["notes"].append(
                f"`{r['command']}`: {', '.join(r['runs']) or 'the cost probe'}; load average {load['start'][0]:.1f} / "
                f"{load['end'][0]:.1f} at start / end, {r['wall_seconds'] / 60:.0f} min.")
        out["notes"] += r.get("notes", [])
    out["batch_sizes"] = sorted(out["batch_sizes"])
    out["seeds"] = max(r["seeds"] for r in raws)
    for key in ("wall_seconds", "load_average", "summary"):
        out.pop(key, None)
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.render:
        paths = args.render.split(",")
        raws = [json.loads(Path(p).read_text()) for p in paths]
        raw = raws[0] if len(raws) == 1 else combine(raws, os.path.relpath(args.json, HERE.parent))
        if args.note:
            raw["notes"] = raw.get("notes", []) + args.note
        if args.title:
            raw["title"] = args.title
        if args.note or args.title or len(raws) > 1:
            Path(args.json if len(raws) > 1 else paths[0]).write_text(json.dumps(raw, indent=1, default=float))
        raw["summary"] = search_report.summarize(raw)
        text = search_report.render(raw, raw["summary"])
        print(text)
        if not args.no_write_md:
            write_section(args.section, text)
        return raw
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    batch_sizes = [int(q) for q in args.batch_sizes.split(",") if q]
    strategies = [s for s in args.strategies.split(",") if s]
    sizes = lambda text: [int(q) for q in text.split(",") if q]
    all_methods = methods(batch_sizes, strategies, sizes(args.strategy_batch_sizes), sizes(args.gp_batch_sizes))
    hpo_methods = [m for m in args.hpo_methods.split(",") if m]
    wanted = set(args.methods.split(",")) if args.methods else None
    pick = lambda names: [m for m in names if m in all_methods and (wanted is None or m in wanted)]
    fnames = [s for s in args.functions.split(",") if s]
    pnames = [s for s in args.problems.split(",") if s]
    problems = [function_problem(FUNCTIONS[f], args.budget or DEFAULT_BUDGETS[f]) for f in fnames]
    problems += [hpo_problem(hpo.PROBLEMS[p], args.budget) for p in pnames]

    command = "python benchmarks/search.py" + ("" if argv is None and len(sys.argv) == 1 else
                                               " " + " ".join(argv if argv is not None else sys.argv[1:]))
    raw = {
        "command": command,
        "title": args.title or DEFAULT_TITLE,
        "seeds": args.seeds,
        "gp_seeds": args.gp_seeds,
        "budgets": {p.name: p.budget for p in problems},
        "kinds": {p.name: p.kind for p in problems},
        "optima": {p.name: p.optimum for p in problems},
        "batch_sizes": batch_sizes,
        "strategies": strategies,
        "preset": preset_description(),
        "machine": search_report.machine_info(),
        "json": os.path.relpath(args.json, HERE.parent),
        "runs": {},
        "extended": {},
    }
    load_at_start = os.getloadavg()
    start = time.perf_counter()
    out_partial = Path(args.json).with_suffix(".partial.json")
    out_partial.parent.mkdir(parents=True, exist_ok=True)
    for problem in problems:
        # --methods picks among the functions' methods; --hpo-methods are the HPO problems' own.
        names = pick(list(all_methods)) if problem.kind == "function" else hpo_methods
        _run_seeds(problem, all_methods, names, range(args.seeds), raw, start, args.gp_seeds)
        if problem.kind == "function" and args.extend_to > args.seeds:
            moving = search_report.moving_rows(raw["runs"][problem.name], problem.optimum, TARGET_METHODS)
            if moving:
                extra = pick([m for m in TARGET_METHODS if m in raw["runs"][problem.name]])
                print(f"{problem.name}: median of {', '.join(moving)} moves between blocks of seeds; "
                      f"{args.extend_to} seeds for {', '.join(extra)}", flush=True)
                raw["extended"][problem.name] = {"rows": moving, "methods": extra, "seeds": args.extend_to,
                                                 "first": args.seeds}
                _run_seeds(problem, all_methods, extra, range(args.seeds, args.extend_to), raw, start)
        out_partial.write_text(json.dumps(raw, default=float))  # progress, in case the run is cut short
    if not args.no_probe:
        print(f"probe: {args.probe_observations} observations, {args.probe_suggestions} timed suggestions", flush=True)
        raw["probe"] = run_probe(args.probe_observations, args.probe_suggestions)
    raw["wall_seconds"] = time.perf_counter() - start
    raw["load_average"] = {"start": load_at_start, "end": os.getloadavg()}

    if args.merge:
        sizes = [int(q) for q in args.earlier_preset_sizes.split(",") if q] if args.earlier_preset_sizes else None
        raw = merge(json.loads(Path(args.merge).read_text()), raw, args.earlier_preset_name, sizes)
    raw["notes"] = raw.get("notes", []) + args.note
    summary = search_report.summarize(raw)
    raw["summary"] = summary
    text = search_report.render(raw, summary)
    print()
    print(text)
    out = Path(args.json)
    out.write_text(json.dumps(raw, indent=1, default=float))
    out_partial.unlink(missing_ok=True)
    if not args.no_write_md:
        write_section(args.section, text)
        print(f"\nwrote {search_report.RESULTS_MD} and {out}")
    else:
        print(f"\nwrote {out}")
    return raw


if __name__ == "__main__":
    main()
