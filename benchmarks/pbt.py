"""Population-based training vs full-fidelity BayesianSearch and ASHA at equal training steps.

The task is one where a schedule matters: an MLP on the embedded digits whose *training* labels are 40% noise
(a random class), validated and tested on clean labels. A network first learns the clean signal and then
memorizes the noise, so learning rate and weight decay that suit the start of training do not suit its end.

Every method spends ``N x S`` member-steps (N models of S steps):

  pbt (perturb)  one population of N members, ready every R = S/10 steps, the bottom quarter copies the top quarter
                 and multiplies each hyperparameter by 0.8 or 1.2
  pbt (pb2)      the same, new values from PB2's GP-UCB over (hyperparameters, time) -> improvement
  bayesian       BayesianSearch (recommended preset), N/4 batches of 4 trials, each trained S steps
  asha           ASHA (eta 3, random refills) in 4 population slots, a budget of N x S member-steps, max S steps
  random         N random configurations trained S steps (one population run, no PBT: the wall-time reference)

The score is the validation accuracy of each method's best final model (what every method selects on) and,
held out, its test accuracy: the best model retrained with the same keys on a trainer that evaluates on the test
set (PBT: its schedule replayed). Wall time is per seed; the first seed includes compilation (reported apart).
An ablation reruns both PBTs with ready intervals of S/40, S/20 and S/5.

    python benchmarks/pbt.py            # 10 seeds, writes its section of RESULTS.md and results/pbt.*
    python benchmarks/pbt.py --quick    # 2 seeds, fewer steps; writes only to the temp directory
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import hyperoptax as hx
from hyperoptax import spaces as sp
from hyperoptax import sweep
from hyperoptax.integrations.flax import PopulationTrainer
from hyperoptax.integrations.flax.pbt import PBTPopulation, replay
from hyperoptax.integrations.flax.scheduled import ScheduledPopulation
from hyperoptax.schedulers import PBT, Scheduler
from hyperoptax.tune.models import mlp

from sections import RESULTS, write_section

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = ("pbt (perturb)", "pbt (pb2)", "bayesian", "asha", "random")
SPACE = {"learning_rate": hx.LogSpace(1e-4, 1e-1), "weight_decay": hx.LogSpace(1e-5, 1.0)}


def noisy_digits(noise: float):
    """Train (labels ``noise`` random), clean validation and test splits of sklearn's digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target.astype(np.int32)
    perm = np.random.RandomState(0).permutation(len(y))
    tr, va, te = perm[:1000], perm[1000:1400], perm[1400:]
    rng = np.random.RandomState(1)
    noisy = y[tr].copy()
    flip = rng.rand(len(tr)) < noise
    noisy[flip] = rng.randint(0, 10, flip.sum())
    split = lambda idx, labels: {"image": x[idx], "label": labels}  # noqa: E731
    return split(tr, noisy), split(va, y[va]), split(te, y[te])


def trainers(args):
    train, val, test = noisy_digits(args.noise)

    def optimizer_fn(hp):
        return optax.inject_hyperparams(optax.adamw)(learning_rate=hp["learning_rate"], weight_decay=hp["weight_decay"])

    def make(eval_set):
        return PopulationTrainer(lambda hp, rngs: mlp(64, args.width, 1, 10, rngs), optimizer_fn, train=train, eval=eval_set,
                                 n_steps=args.steps, batch_size=args.batch)

    return make(val), make(test)


def random_configs(key, n):
    U = jax.random.uniform(key, (n, sp.n_dims(SPACE)))
    return sweep.member_configs(SPACE, sp.unflatten_params(SPACE, sp.decode(SPACE, U)))


def run_pbt(explore, seed, val, test, args):
    key = jax.random.key(seed)
    configs = random_configs(jax.random.fold_in(key, 1), args.members)
    t0 = time.perf_counter()
    population = PBTPopulation(val, PBT(args.ready, explore=explore), SPACE, configs, args.steps, key)
    population.run()
    wall = time.perf_counter() - t0
    best = population.best()
    test_curve = replay(test, SPACE, population.schedule(best), population.member_keys)
    return {"val": float(population.lineage.metrics()[best]), "test": test_curve[-1], "wall": wall,
            "schedule": population.schedule(best),
            "population": [population.schedule(i) for i in range(population.n_members)], "best": best}


def run_random(seed, val, test, args):
    """The same population as PBT, trained in the same intervals without ready steps: a single population run."""
    key = jax.random.key(seed)
    configs = random_configs(jax.random.fold_in(key, 1), args.members)
    params = sp.stored_params(SPACE, configs)
    t0 = time.perf_counter()
    state = val.init_population(jax.random.split(key)[0], params)
    for start in range(0, args.steps, args.ready):
        state, metrics = val.train_and_evaluate(state, params, min(args.ready, args.steps - start))
    wall = time.perf_counter() - t0
    best = int(np.nanargmax(np.asarray(metrics)))
    test_state = test.init_population(jax.random.split(key)[0], params)
    _, test_metrics = test.train_and_evaluate(test_state, params, args.steps)
    return {"val": float(metrics[best]), "test": float(test_metrics[best]), "wall": wall}


def run_bayesian(seed, val, test, args):
    key = jax.random.key(seed)
    n_parallel = 4
    state, opt = hx.BayesianSearch.init(SPACE, n_max=args.members, n_parallel=n_parallel, **hx.RECOMMENDED)
    best = (-np.inf, None, None, None)
    t0 = time.perf_counter()
    for i in range(args.members // n_parallel):
        k_suggest, k_eval, k_update = sweep.iteration_keys(key, i)
        params = opt.get_next_params(state, k_suggest)
        acc = np.asarray(val(k_eval, params))
        state = opt.update_state(state, k_update, jnp.asarray(acc), params)
        j = int(np.nanargmax(acc))
        if acc[j] > best[0]:
            best = (float(acc[j]), k_eval, params, j)
    wall = time.perf_counter() - t0
    value, k_eval, params, j = best
    return {"val": value, "test": float(np.asarray(test(k_eval, params))[j]), "wall": wall}


def run_asha(seed, val, test, args):
    key = jax.random.key(seed)
    scheduler = Scheduler(SPACE, max_steps=args.steps, eta=3, seed=seed)
    population = ScheduledPopulation(val, scheduler, SPACE, 4, args.members * args.steps, key)
    t0 = time.perf_counter()
    population.run()
    wall = time.perf_counter() - t0
    trial = scheduler.best()
    params = sp.stored_params(SPACE, [trial["config"]])
    keys = np.asarray(jax.random.key_data(jax.random.fold_in(key, trial["trial"])))[None]
    _, metrics = test.train_and_evaluate(test.init_population(keys, params), params, trial["steps"])
    return {"val": float(trial["curve"][-1][1]), "test": float(np.asarray(metrics)[0]), "wall": wall,
            "steps": trial["steps"]}


RUNNERS = {
    "pbt (perturb)": lambda *a: run_pbt("perturb", *a),
    "pbt (pb2)": lambda *a: run_pbt("pb2", *a),
    "bayesian": run_bayesian,
    "asha": run_asha,
    "random": run_random,
}


def _stats(values) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0:.4f}"


def _table(rows, seeds) -> str:
    lines = ["| method | val acc (mean ± sd) | test acc (mean ± sd) | test acc median | wall per seed (s, median) | "
             "first seed (s, with compile) |", "|---|---:|---:|---:|---:|---:|"]
    for m in METHODS:
        r = [rows[m][s] for s in seeds]
        walls = [x["wall"] for x in r]
        lines.append(f"| {m} | {_stats([x['val'] for x in r])} | {_stats([x['test'] for x in r])} | "
                     f"{np.median([x['test'] for x in r]):.4f} | {np.median(walls[1:] or walls):.2f} | {walls[0]:.1f} |")
    return "\n".join(lines)


def _wins(rows, seeds, a, b, key) -> str:
    d = np.array([rows[a][s][key] - rows[b][s][key] for s in seeds])
    return f"{a} vs {b} ({key}): {np.sum(d > 0)} wins, {np.sum(d == 0)} ties, {np.sum(d < 0)} losses, mean {d.mean():+.4f}"


def _ablation(rows, seeds, val, test, args) -> list[str]:
    """PBT (both explores) at other ready intervals: a table of lines."""
    lines = ["| ready every R steps | pbt (perturb) val | pbt (perturb) test | pbt (pb2) val | pbt (pb2) test |",
             "|---:|---:|---:|---:|---:|"]
    default = args.ready
    for ready in sorted({max(1, args.steps // k) for k in (40, 20, 10, 5)}):
        cells = []
        for explore in ("perturb", "pb2"):
            if ready == default:
                runs = [rows[f"pbt ({explore})"][s] for s in seeds]
            else:
                args.ready = ready
                runs = [run_pbt(explore, s, val, test, args) for s in seeds]
                args.ready = default
            cells += [_stats([r["val"] for r in runs]), _stats([r["test"] for r in runs])]
            print(f"ready {ready} {explore}: val {cells[-2]} test {cells[-1]}", flush=True)
        lines.append(f"| {ready}{' (default)' if ready == default else ''} | " + " | ".join(cells) + " |")
    return lines


def _figures(rows, seeds, prefix):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from hyperoptax.tune.plotting import plot_schedules

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100, sharey=True)
    for ax, key in zip(axes, ("val", "test")):
        data = [[rows[m][s][key] for s in seeds] for m in METHODS]
        ax.boxplot(data, showmeans=True)
        for i, d in enumerate(data):
            ax.scatter(np.full(len(d), i + 1) + np.random.default_rng(0).uniform(-0.12, 0.12, len(d)), d, s=12, alpha=0.6)
        ax.set_xticks(range(1, len(METHODS) + 1), METHODS, rotation=20)
        ax.set_title(f"best final model: {key} accuracy ({len(seeds)} seeds)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(prefix + "_accuracy.png")
    plt.close(fig)
    # One PBT run's schedules (the first seed), drawn by hyperoptax tune's own plot.
    run = rows["pbt (perturb)"][seeds[0]]
    space = {n: {"spec": repr(s), "scale": "log"} for n, s in SPACE.items()}
    trials = [{"trial": i, "schedule": sched} for i, sched in enumerate(run["population"])]
    plot_schedules({"trials": trials, "space": space, "best": {"trial": run["best"]}}, prefix + "_schedules.png")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--members", type=int, default=16, help="N: population size / trials (a multiple of 4)")
    parser.add_argument("--steps", type=int, default=1000, help="S: training steps of a model")
    parser.add_argument("--ready", type=int, default=None, help="R: steps between PBT's ready steps (default S // 10, "
                        "hyperoptax tune's default)")
    parser.add_argument("--no-ablation", action="store_true", help="skip PBT at other ready intervals")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--noise", type=float, default=0.4, help="fraction of training labels replaced by noise")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 300 steps; writes nothing tracked")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps, args.no_write, args.no_ablation = 2, 300, True, True
    args.ready = args.ready or max(1, args.steps // 10)
    command = "python benchmarks/pbt.py " + " ".join(sys.argv[1:])
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{command}\n{os.cpu_count()} cores, {platform.processor() or platform.machine()}, jax {jax.__version__}, "
          f"load {load}", flush=True)
    val, test = trainers(args)
    seeds = list(range(args.seeds))
    rows = {m: {} for m in METHODS}
    for seed in seeds:
        for m in METHODS:
            rows[m][seed] = RUNNERS[m](seed, val, test, args)
            r = rows[m][seed]
            print(f"seed {seed} {m:14s} val {r['val']:.4f} test {r['test']:.4f} wall {r['wall']:6.2f}s", flush=True)
    ablation = [] if args.no_ablation else _ablation(rows, seeds, val, test, args)
    table = _table(rows, seeds)
    wins = [_wins(rows, seeds, p, b, k) for p in METHODS[:2] for b in ("bayesian", "asha") for k in ("val", "test")]
    print("\n" + table + "\n\n" + "\n".join(wins))
    prefix = os.path.join(HERE, "results", "pbt") if not args.no_write else os.path.join(tempfile.gettempdir(), "pbt_quick")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    with open(prefix + ".json", "w") as f:
        json.dump({"command": command, "args": vars(args),
                   "rows": {m: {s: {k: v for k, v in r.items() if k not in ("population", "schedule")}
                                for s, r in rows[m].items()}
                            for m in METHODS}}, f, indent=1)
    _figures(rows, seeds, prefix)
    if args.no_write:
        return
    best = rows["pbt (perturb)"][0]["schedule"]
    spans = " -> ".join(f"{e['params']['learning_rate']:.2g} / {e['params']['weight_decay']:.2g}"
                        for e in best[:: max(1, len(best) // 5)])
    wall = {m: np.median([rows[m][s]["wall"] for s in seeds[1:] or seeds]) for m in METHODS}
    ratios = ", ".join(f"{m} {wall[m] / wall['random']:.2f}x" for m in METHODS[:2])
    section = "\n".join([
        "## Population-based training (`benchmarks/pbt.py`)",
        "",
        f"Command: `{command.strip()}`  ",
        f"Machine: {os.cpu_count()} cores, jax {jax.__version__} ({jax.default_backend()}); load average at start "
        f"{load} (shared machine: other jobs were running).",
        "",
        f"MLP 64-{args.width}-10 on sklearn digits, 1000 training images with {args.noise:.0%} of the labels replaced "
        f"by a random class, clean validation (400) and test (397) sets; AdamW, batch {args.batch}; searched: "
        f"learning rate log(1e-4, 1e-1) and weight decay log(1e-5, 1). Every method trains {args.members} x "
        f"{args.steps} member-steps: PBT one population of {args.members} (ready every {args.ready} steps, quantile "
        f"0.25), BayesianSearch (recommended preset) {args.members // 4} batches of 4 full trainings, ASHA (eta 3, "
        f"random refills) 4 slots with the same budget, random the {args.members} initial PBT members trained without "
        f"ready steps. Val: the best final model's validation accuracy (what each method selects on); test: the same "
        f"model retrained with its keys (PBT: its schedule replayed) and scored on the held-out test set. "
        f"{args.seeds} seeds; wall time per seed after the first (which compiles).",
        "",
        table,
        "",
        f"Wall time against a single population run of the same {args.members} members (random): {ratios}.",
        "",
        *[f"- {w}" for w in wins],
        "",
        *(["PBT's ready interval (same seeds and budget; the table above uses R = S / 10, the default of "
           "`hyperoptax tune`):", "", *ablation, ""] if ablation else []),
        f"![accuracy](results/pbt_accuracy.png)",
        "",
        f"Schedules of the first seed's PBT (perturb) population (best in red; learning rate / weight decay along "
        f"its ancestry: {spans}):",
        "",
        "![schedules](results/pbt_schedules.png)",
    ])
    write_section("pbt", section)
    print(f"\nwrote the pbt section of {RESULTS}")


if __name__ == "__main__":
    main()
