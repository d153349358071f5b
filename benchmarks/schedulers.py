"""Early stopping: ASHA / Hyperband in the population against full-fidelity search, at equal training steps.

Part 1, ``synthetic`` (``benchmarks/curves.py``): parametric learning curves in two regimes, curves that keep
their ranking and curves that cross. Every method runs the real slot logic
(:class:`~hyperoptax.integrations.flax.scheduled.ScheduledPopulation`, 4 slots) on a budget of 24 full
trainings; the score is the regret of the configuration each method returns (the best at the most steps):
``final(x*) - final(x_returned)``, noiseless. 30 seeds.

Part 2, ``digits``: a real training sweep, a Flax CNN on the embedded digits (16 3x3 filters, 64 dense
units, AdamW, batch 64), learning rate in [1e-5, 1] (many members diverge or crawl), weight decay and label
smoothing searched; 4 slots, ``max_steps`` 729 (rungs at 81, 243, 729), a budget of 16 full trainings
(11664 member-steps), 10 seeds. Methods: (a) full-fidelity hyperoptax (BayesianSearch preset, batches of 4
trained as one population), (b) ASHA in the population with GP refills over (configuration, steps) (MOBSTER-style, the default of
``hyperoptax tune``; b2: BOHB-style BayesianSearch refills), (c) ASHA with random
refills, (d) Optuna TPE with its HyperbandPruner (81 to 729 steps, factor 3) driving the usual Flax loop: a
jitted train step (compiled once: one ``optax.inject_hyperparams`` transformation, each trial's values
written into its state), a Python loop, ``trial.report``
at the rungs (81, 243, 729 steps). Reported: the best validation accuracy each method has seen, against member-steps and wall
time (programs compiled before timing; the same warm-up for every method).

    python benchmarks/schedulers.py                       # both parts, writes the schedulers section of RESULTS.md
    python benchmarks/schedulers.py --part synthetic --seeds 3 --no-write     # smoke run
    python benchmarks/schedulers.py --part synthetic --seeds 100 --methods full-gp asha-gp   # rerun some rows,
                                                       # keeping the others from results/schedulers_synthetic.json
"""

from __future__ import annotations

import argparse
import json
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
SYNTHETIC_RUNS = Path(__file__).resolve().parent / "results" / "schedulers_synthetic.json"


def _refills(kind, capacity, seed=0, space=None, max_steps=T):
    space = curves.SPACE if space is None else space
    if kind == "random":
        return RandomRefills(space)
    if kind == "mobster":
        return hx.GPFIFOSearcher(space, "metric", "max", random_seed=seed, resource_attr="steps",
                                 max_resource=max_steps)
    return OptimizerRefills(hx.BayesianSearch, space, capacity, **hx.RECOMMENDED, n_parallel=SLOTS)


# name -> (refills, scheduler options). "gp" is BayesianSearch (BOHB-style under a scheduler), "mobster" a
# GPFIFOSearcher with the steps as a GP input: what `hyperoptax tune` refills with by default
# (search.optimizer="bayesian", scheduler.model="resource"), so asha-mobster is the method (b) of issue 14.
SYNTHETIC_METHODS = {
    "full-gp": ("gp", dict(min_steps=T)),
    "full-random": ("random", dict(min_steps=T)),
    "full-mobster": ("mobster", dict(min_steps=T)),  # the default GP refill without early stopping
    "asha-gp": ("gp", dict()),
    "asha-random": ("random", dict()),
    "asha-mobster": ("mobster", dict()),
    "hyperband-gp": ("gp", dict(n_brackets=3)),
    "hyperband-mobster": ("mobster", dict(n_brackets=3)),
    "asha-gp-plain": ("gp", dict(min_pairs=0)),
    "asha-mobster-plain": ("mobster", dict(min_pairs=0)),
}
DEFAULT_METHOD, FULL_METHOD = "asha-mobster", "full-gp"


def synthetic_run(method, regime, seed):
    kind, options = SYNTHETIC_METHODS[method]
    scheduler = Scheduler(_refills(kind, FULL_TRAININGS * SLOTS * 3, seed), max_steps=T, eta=3, seed=seed, **options)
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


def _with_earlier_rows(rows, seeds):
    """``rows`` and, for the methods not rerun, the rows of the run saved in SYNTHETIC_RUNS (same seeds only).

    Rerunning some methods (``--methods``) after a change that touches only them keeps the table whole.
    Returns the rows and the methods to show, in SYNTHETIC_METHODS order.
    """
    earlier = json.loads(SYNTHETIC_RUNS.read_text()) if SYNTHETIC_RUNS.exists() else {}
    merged = dict(rows)
    for name, row in earlier.items():
        regime, method = name.split("/")
        if (regime, method) not in merged and len(row["regret"]) == seeds:
            merged[regime, method] = dict(regret=np.array(row["regret"]), trials=row["trials"])
    shown = [m for m in SYNTHETIC_METHODS if all((r, m) in merged for r in curves.REGIMES)]
    return merged, shown


def synthetic_table(rows, seeds, methods) -> str:
    lines = [
        "## Early stopping: synthetic learning curves (`benchmarks/schedulers.py`, `benchmarks/curves.py`)",
        "",
        f"{SLOTS} slots, a budget of {FULL_TRAININGS} full trainings ({FULL_TRAININGS * T} member-steps, T = {T}), "
        f"ASHA rungs at {', '.join(map(str, Scheduler(curves.SPACE, max_steps=T).rule.levels()))}; {seeds} seeds. "
        "Regret of the returned configuration (lower is better), median [IQR] and mean; trials started (median). "
        f"Per-seed regrets: `benchmarks/results/{SYNTHETIC_RUNS.name}`.",
        "",
        "| method | " + " | ".join(f"{r} regret | {r} trials" for r in curves.REGIMES) + " |",
        "|---|" + "---|---|" * len(curves.REGIMES),
    ]
    for m in methods:
        cells = []
        for regime in curves.REGIMES:
            r = rows[regime, m]["regret"]
            cells += [f"{np.median(r):.4f} [{np.quantile(r, .25):.4f}, {np.quantile(r, .75):.4f}], mean {np.mean(r):.4f}",
                      f"{rows[regime, m]['trials']:.0f}"]
        lines.append(f"| {m}{' (default)' if m == DEFAULT_METHOD else ''} | " + " | ".join(cells) + " |")
    if {DEFAULT_METHOD, FULL_METHOD} <= set(methods):
        lines += ["", f"{DEFAULT_METHOD} is what `hyperoptax tune` with `search.scheduler=asha` refills with by "
                      f"default (the GP with the steps as an input). Target (crossing curves: ASHA with GP refills no "
                      f"worse than full fidelity at equal steps, median regret): {_versus(rows, 'crossing')}. "
                      f"Predictive curves: {_versus(rows, 'predictive')}."]
    return "\n".join(lines)


def _versus(rows, regime) -> str:
    """The default method against full fidelity in ``regime``: verdict, medians, means, and seed by seed; then
    against full fidelity with the refills' own GP (``full-mobster``) where it ran."""
    b, a = rows[regime, DEFAULT_METHOD]["regret"], rows[regime, FULL_METHOD]["regret"]
    verdict = "met" if np.median(b) <= np.median(a) else "not met"
    text = (f"{verdict}, {DEFAULT_METHOD} median {np.median(b):.4f} (mean {np.mean(b):.4f}) against {FULL_METHOD} "
            f"{np.median(a):.4f} (mean {np.mean(a):.4f}); no worse on {int(np.sum(b <= a))} of {len(a)} seeds")
    if (regime, "full-mobster") in rows:
        m = rows[regime, "full-mobster"]["regret"]
        text += (f"; against full-mobster median {np.median(m):.4f} (mean {np.mean(m):.4f}), no worse on "
                 f"{int(np.sum(b <= m))} of {len(m)} seeds")
    return text


# --- part 2: digits -------------------------------------------------------------

MAX_STEPS, DIGITS_SLOTS, DIGITS_TRAININGS, BATCH = 729, 4, 16, 64
DIGITS_SPACE = {
    "learning_rate": hx.LogSpace(1e-5, 1.0),
    "weight_decay": hx.LogSpace(1e-6, 1e-1),
    "label_smoothing": hx.LinearSpace(0.0, 0.3),
}
TARGET = 0.975  # the accuracy "time to target" waits for
RUNGS = (81, 243, 729)  # every method evaluates (and counts the accuracy it saw) here: ASHA's and Hyperband's rungs


LABEL_NOISE = 0.3  # of the training labels, redrawn at random: a task where the schedule and regularization matter


def _digits_data():
    from hyperoptax.integrations import tfds as hdata

    train, evaluation = hdata.load_splits("digits")
    rng = np.random.default_rng(0)
    noisy = rng.random(len(train["label"])) < LABEL_NOISE
    labels = np.where(noisy, rng.integers(0, 10, len(noisy)), train["label"]).astype(np.int32)
    return {"image": train["image"], "label": labels}, evaluation


def _model(rngs):
    from hyperoptax.tune.models import cnn

    return cnn((8, 8, 1), 16, 3, 1, 64, 10, rngs)


def _optimizer(hp):
    import optax

    return optax.inject_hyperparams(optax.adamw)(learning_rate=hp["learning_rate"], weight_decay=hp["weight_decay"])


def digits_trainer(data):
    from hyperoptax.integrations.flax import PopulationTrainer

    train, evaluation = data
    return PopulationTrainer(lambda hp, rngs: _model(rngs), _optimizer, train=train, eval=evaluation,
                             n_steps=MAX_STEPS, batch_size=BATCH)


# (b) is what `hyperoptax tune` does with search.scheduler="asha": GP refills with the steps as a GP input
# (MOBSTER-style, scheduler.model="resource"); b2 is the BOHB-style alternative (scheduler.model="rung").
B_METHOD = "b: ASHA + GP refills (steps as a GP input, the default)"
DIGITS_METHODS = {
    "a: full fidelity": ("gp", dict(min_steps=MAX_STEPS, min_pairs=0)),
    B_METHOD: ("mobster", dict()),
    "b2: ASHA + BOHB-style GP refills (one rung's model)": ("gp", dict()),
    "c: ASHA + random refills": ("random", dict()),
}


class Trace:
    """The best metric seen so far, against member-steps and seconds."""

    def __init__(self):
        self.t0, self.points, self.best = time.perf_counter(), [(0, 0.0, 0.0)], 0.0

    def add(self, steps, metrics):
        finite = [m for m in metrics if m is not None and np.isfinite(m)]
        if finite:
            self.best = max(self.best, max(finite))
        self.points.append((steps, time.perf_counter() - self.t0, self.best))

    def first(self, value, column):
        """The first steps (column 0) or seconds (column 1) at which the best reached ``value``; inf if never."""
        return next((p[column] for p in self.points if p[2] >= value - 1e-9), np.inf)


def hyperoptax_run(method, trainer, seed):
    kind, options = DIGITS_METHODS[method]
    refills = _refills(kind, DIGITS_TRAININGS * DIGITS_SLOTS * 3, seed, DIGITS_SPACE, MAX_STEPS)
    scheduler = Scheduler(refills, max_steps=MAX_STEPS, eta=3, seed=seed, **options)
    population = ScheduledPopulation(trainer, scheduler, DIGITS_SPACE, DIGITS_SLOTS, DIGITS_TRAININGS * MAX_STEPS,
                                     jax.random.key(seed))
    trace, seen = Trace(), [0]

    def segment(_):
        new = scheduler.history[seen[0]:]
        seen[0] = len(scheduler.history)
        trace.add(population.steps_used, [h[2] for h in new])

    population.run(on_segment=segment)
    return trace, len(scheduler.trials)


class OptunaFlaxLoop:
    """Optuna TPE + HyperbandPruner over the usual Flax training loop, one trial at a time."""

    def __init__(self, data):
        import optax
        from flax import nnx

        self.nnx, self.optax = nnx, optax
        (train, evaluation) = data
        self.x, self.y = jax.numpy.asarray(train["image"]), jax.numpy.asarray(train["label"])
        self.xe, self.ye = jax.numpy.asarray(evaluation["image"]), jax.numpy.asarray(evaluation["label"])

        @nnx.jit
        def train_step(model, optimizer, smoothing, key):
            idx = jax.random.randint(key, (BATCH,), 0, self.x.shape[0])

            def loss_fn(model):
                logits = model(self.x[idx])
                targets = optax.smooth_labels(jax.nn.one_hot(self.y[idx], 10), smoothing)
                return optax.softmax_cross_entropy(logits, targets).mean()

            loss, grads = nnx.value_and_grad(loss_fn)(model)
            optimizer.update(model, grads)
            return loss

        @nnx.jit
        def accuracy(model):
            return jax.numpy.mean(jax.numpy.argmax(model(self.xe), -1) == self.ye)

        self.train_step, self.accuracy = train_step, accuracy
        # One optax transformation for every trial: nnx.jit keys its cache on the optimizer's graph, the
        # transformation object included, so a new one per trial compiled the step again (2.5-3 s a trial, and
        # a process that compiled ~300 times ran out of memory maps). Each trial writes its hyperparameters
        # into the state that inject_hyperparams reads.
        self.tx = _optimizer({"learning_rate": 1e-3, "weight_decay": 0.0})

    def objective(self, trial, trace, budget):
        hp = {"learning_rate": trial.suggest_float("learning_rate", 1e-5, 1.0, log=True),
              "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
              "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.3)}
        model = _model(self.nnx.Rngs(trial.number))
        optimizer = self.nnx.Optimizer(model, self.tx, wrt=self.nnx.Param)
        for name in ("learning_rate", "weight_decay"):  # the trial's values, into the injected hyperparameters
            optimizer.opt_state.hyperparams[name][...] = jax.numpy.float32(hp[name])
        key = jax.random.key(trial.number)
        smoothing = jax.numpy.float32(hp["label_smoothing"])
        for step in range(1, MAX_STEPS + 1):
            if trace.steps >= budget:
                raise self.optuna.TrialPruned()  # the budget is spent
            loss = self.train_step(model, optimizer, smoothing, jax.random.fold_in(key, step))
            trace.steps += 1
            if step in RUNGS:  # trial.report per rung, as the hyperoptax methods evaluate at their rungs
                acc = float(self.accuracy(model)) if np.isfinite(float(loss)) else float("nan")
                trace.add(trace.steps, [acc])
                trial.report(acc if np.isfinite(acc) else 0.0, step)
                if not np.isfinite(acc) or trial.should_prune():
                    raise self.optuna.TrialPruned()
        return acc

    def run(self, seed):
        import optuna

        self.optuna = optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        pruner = optuna.pruners.HyperbandPruner(min_resource=81, max_resource=MAX_STEPS, reduction_factor=3)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner)
        trace, budget = Trace(), DIGITS_TRAININGS * MAX_STEPS
        trace.steps = 0
        while trace.steps < budget:
            study.optimize(lambda t: self.objective(t, trace, budget), n_trials=1)
        return trace, len(study.trials)


# Every finished (method, seed) run is kept here, so a run that dies (a shared machine runs out of memory)
# resumes where it stopped: `--part digits` skips what is already measured. `--fresh` starts over.
DIGITS_RUNS = Path(__file__).resolve().parent / "results" / "schedulers_digits.jsonl"


def _finished_runs() -> dict:
    if not DIGITS_RUNS.exists():
        return {}
    runs = {}
    for line in DIGITS_RUNS.read_text().splitlines():
        r = json.loads(line)
        trace = Trace()
        trace.points, trace.best = [tuple(p) for p in r["points"]], r["best"]
        runs[r["method"], r["seed"]] = (trace, r["trials"])
    return runs


def digits(seeds, methods):
    data = _digits_data()
    trainer = digits_trainer(data)
    optuna_loop = OptunaFlaxLoop(data)
    finished = _finished_runs()
    todo = {m for m in methods for seed in range(seeds) if (m, seed) not in finished}
    # Warm-up: compile every program before any timing (only for what is still to run).
    kinds = {}  # one warm-up run per refill kind still to run: the trainer's programs and the GP's
    for m in sorted(todo - {"d: Optuna TPE + Hyperband"}):
        kinds.setdefault(DIGITS_METHODS[m][0], m)
    for m in kinds.values():
        hyperoptax_run(m, trainer, 10_000)
    if "d: Optuna TPE + Hyperband" in todo:
        optuna_loop.run(10_000)
    rows = {}
    for method in methods:
        traces = []
        for seed in range(seeds):
            if (method, seed) in finished:
                traces.append(finished[method, seed])
                continue
            t0 = time.perf_counter()
            if method.startswith("d"):
                trace, n = optuna_loop.run(seed)
            else:
                trace, n = hyperoptax_run(method, trainer, seed)
            traces.append((trace, n))
            DIGITS_RUNS.parent.mkdir(exist_ok=True)
            with DIGITS_RUNS.open("a") as f:
                f.write(json.dumps(dict(method=method, seed=seed, trials=n, best=trace.best,
                                        points=[list(map(float, p)) for p in trace.points])) + "\n")
            print(f"{method:28s} seed {seed}: best {trace.best:.4f}, {n} trials, {time.perf_counter() - t0:.0f}s",
                  flush=True)
        rows[method] = traces
    return rows


def digits_table(rows, seeds) -> str:
    budget = DIGITS_TRAININGS * MAX_STEPS
    full = rows.get("a: full fidelity")
    lines = [
        "## Early stopping: a real training sweep, digits CNN (`benchmarks/schedulers.py`)",
        "",
        f"{DIGITS_SLOTS} slots, max_steps {MAX_STEPS} (rungs 81, 243, 729), a budget of {DIGITS_TRAININGS} full "
        f"trainings ({budget} member-steps), {seeds} seeds. Best validation accuracy seen (270 examples), median "
        f"[IQR]; steps to reach (a)'s final best, per seed as a fraction of the budget (median; inf: never); wall "
        f"time to reach {TARGET} accuracy (median over all seeds, a seed that never reached it counting as inf; "
        f"how many reached it).",
        "",
        "| method | best accuracy | trials | steps to (a)'s best | time to target (s) | reached target | wall time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    medians = {}
    for method, traces in rows.items():
        best = np.array([t.best for t, _ in traces])
        trials = np.median([n for _, n in traces])
        to_full = [t.first(f.best, 0) / budget for (t, _), (f, _) in zip(traces, full)] if full else [np.nan]
        to_target = np.array([t.first(TARGET, 1) for t, _ in traces])
        reached = np.isfinite(to_target)
        medians[method] = np.median(to_target), np.median(to_full)
        wall = np.median([t.points[-1][1] for t, _ in traces])
        lines.append(
            f"| {method} | {np.median(best):.4f} [{np.quantile(best, .25):.4f}, {np.quantile(best, .75):.4f}] | "
            f"{trials:.0f} | {np.median(to_full):.2f} | "
            f"{np.median(to_target):.1f} | {reached.sum()}/{len(traces)} | {wall:.0f} |"
        )
    b, d = medians.get(B_METHOD), medians.get("d: Optuna TPE + Hyperband")
    if b and d:
        lines += ["", f"Targets: (b) reaches (a)'s best with {b[1]:.2f} of the budget (target <= 0.33); (b) reaches "
                      f"{TARGET} in {b[0]:.1f} s against (d)'s {d[0]:.1f} s, {d[0] / b[0]:.1f}x sooner (target >= 3x)."]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("synthetic", "digits", "both"), default="both")
    ap.add_argument("--seeds", type=int, default=None, help="default: 30 (synthetic), 10 (digits)")
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="forget the digits runs already measured")
    args = ap.parse_args(argv)
    if args.fresh and DIGITS_RUNS.exists():
        DIGITS_RUNS.unlink()
    command = "python benchmarks/schedulers.py --part {}"
    if args.part in ("synthetic", "both"):
        seeds = args.seeds or 30
        methods = args.methods or list(SYNTHETIC_METHODS)
        shown = (command.format("synthetic") + (f" --seeds {seeds}" if args.seeds else "")
                 + (" --methods " + " ".join(methods) if args.methods else ""))
        rows = synthetic(seeds, methods)
        if args.methods:
            rows, methods = _with_earlier_rows(rows, seeds)
        if not args.no_write:
            SYNTHETIC_RUNS.write_text(json.dumps(
                {f"{regime}/{m}": dict(regret=r["regret"].tolist(), trials=float(r["trials"]))
                 for (regime, m), r in rows.items()}, indent=1) + "\n")
        _emit("schedulers-synthetic", synthetic_table(rows, seeds, methods), shown, args.no_write)
    if args.part in ("digits", "both"):
        seeds = args.seeds or 10
        names = [*DIGITS_METHODS, "d: Optuna TPE + Hyperband"]
        # a method by its full name or its letter ("a", "b2", ...)
        methods = [n for n in names if not args.methods or any(n == m or n.startswith(m + ":") for m in args.methods)]
        shown = command.format("digits") + (" --methods " + " ".join(args.methods) if args.methods else "")
        _emit("schedulers-digits", digits_table(digits(seeds, methods), seeds), shown, args.no_write)


def _emit(section, table, command, no_write):
    text = f"{table}\n\nCommand: `{command}`; machine: {_machine()}."
    print(text)
    if not no_write:
        write_section(section, text)


def _machine() -> str:
    import os
    import platform

    load = os.getloadavg()[0]
    return (f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), jax {jax.__version__} "
            f"({jax.default_backend()}), load average {load:.1f} at the end (a shared machine)")


if __name__ == "__main__":
    main()
