"""Population training vs one model at a time: wall time and memory.

Trains N = 1, 4, 16, 64 MLPs (same model, data, steps; one learning rate each) three ways:

  (a) population   hyperoptax's PopulationTrainer: all N members vmapped in one jitted call
                   (init + lax.scan over steps + evaluation).
  (b) python loop  one model at a time as an Optuna-driven Flax script trains it: a jitted
                   train step called from a Python loop over steps, minibatches sampled on
                   the host. Given its best case: the learning rate lives in the optimizer
                   state (optax.inject_hyperparams), so one compile serves every trial.
  (c) scan each    one model at a time, each fully jitted (trainer.objective: the same
                   program as (a) for a single member, called N times).

Each (method, N) runs in its own subprocess, so peak RSS is not shared: "peak RSS" is the
growth of ru_maxrss over the run (compilation included, after imports and data loading).
"XLA temp" is the compiled program's own scratch memory from ``memory_analysis()``. Wall
time is measured after compilation (best of --repeats); compile time is reported apart.

    python benchmarks/population.py                 # full run, updates benchmarks/RESULTS.md
    python benchmarks/population.py --sizes 1,4 --steps 50 --no-write   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time

from sections import RESULTS, write_section

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = {"a": "(a) population, one jitted call", "b": "(b) python loop over jitted steps", "c": "(c) one jitted scan per model"}


def _digits():
    import numpy as np
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target.astype(np.int32)
    perm = np.random.RandomState(0).permutation(len(y))
    tr, ev = perm[:1437], perm[1437:]
    return {"image": x[tr], "label": y[tr]}, {"image": x[ev], "label": y[ev]}


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def worker(method: str, n: int, args) -> dict:
    """One (method, N) measurement, in a fresh process."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx

    from hyperoptax.integrations.flax import PopulationTrainer, default_optimizer

    train, eval_ = _digits()
    width = args.width

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(64, width, rngs=rngs)
            self.out = nnx.Linear(width, 10, rngs=rngs)

        def __call__(self, x):
            return self.out(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))

    lrs = np.geomspace(1e-3, 3e-2, n).astype(np.float32)
    params = {"learning_rate": jnp.asarray(lrs)}
    key = jax.random.key(0)
    trainer = PopulationTrainer(
        lambda hp, rngs: MLP(rngs), train=train, eval=eval_, n_steps=args.steps, batch_size=args.batch
    )
    rss0 = _maxrss_mb()
    xla_temp = None

    if method == "a":
        t0 = time.perf_counter()
        jax.block_until_ready(trainer(key, params))
        first = time.perf_counter() - t0
        run, metrics = _best_of(args.repeats, lambda: jax.block_until_ready(trainer(key, params)))
        compile_s = first - run
        [program] = trainer._programs.values()
        xla_temp = program.memory_analysis().temp_size_in_bytes

    elif method == "c":
        keys = jax.random.split(key, n)
        one = jax.jit(trainer.objective)
        t0 = time.perf_counter()
        compiled = one.lower(keys[0], {"learning_rate": params["learning_rate"][0]}).compile()
        compile_s = time.perf_counter() - t0
        xla_temp = compiled.memory_analysis().temp_size_in_bytes

        def all_models():
            return [float(compiled(keys[i], {"learning_rate": params["learning_rate"][i]})) for i in range(n)]

        run, metrics = _best_of(args.repeats, all_models)

    else:  # "b": the usual script, a jitted step in a Python loop
        def make_step(graphdef):
            @jax.jit
            def train_step(params, rest, opt_state, x, y):
                def loss_fn(p):
                    logits = nnx.merge(graphdef, p, rest)(x)
                    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

                grads = jax.grad(loss_fn)(params)
                updates, opt_state = tx.update(grads, opt_state, params)
                return optax.apply_updates(params, updates), opt_state

            @jax.jit
            def accuracy(params, rest, x, y):
                return jnp.mean(jnp.argmax(nnx.merge(graphdef, params, rest)(x), -1) == y)

            return train_step, accuracy

        tx = default_optimizer({"learning_rate": 1e-3})
        graphdef, _, _ = nnx.split(MLP(nnx.Rngs(0)), nnx.Param, ...)
        train_step, accuracy = make_step(graphdef)
        x_eval, y_eval = jnp.asarray(eval_["image"]), jnp.asarray(eval_["label"])

        def trial(i, n_steps):
            _, p, rest = nnx.split(MLP(nnx.Rngs(i)), nnx.Param, ...)
            opt_state = tx.init(p)
            opt_state.hyperparams["learning_rate"] = jnp.asarray(lrs[i % n])  # the trial's suggestion
            rng = np.random.default_rng(i)
            for _ in range(n_steps):
                idx = rng.integers(0, len(train["label"]), args.batch)
                p, opt_state = train_step(p, rest, opt_state, train["image"][idx], train["label"][idx])
            return float(accuracy(p, rest, x_eval, y_eval))

        t0 = time.perf_counter()
        trial(0, 1)  # compiles train_step and accuracy
        compile_s = time.perf_counter() - t0
        run, metrics = _best_of(args.repeats, lambda: [trial(i, args.steps) for i in range(n)])
        _, p, rest = nnx.split(MLP(nnx.Rngs(0)), nnx.Param, ...)
        batch = (train["image"][: args.batch], train["label"][: args.batch])
        xla_temp = train_step.lower(p, rest, tx.init(p), *batch).compile().memory_analysis().temp_size_in_bytes

    metrics = np.asarray(metrics, np.float64)
    return {
        "method": method,
        "n": n,
        "compile_s": compile_s,
        "run_s": run,
        "peak_rss_mb": _maxrss_mb() - rss0,
        "xla_temp_kb": None if xla_temp is None else xla_temp / 1024.0,
        "mean_metric": float(np.nanmean(metrics)),
    }


def _machine() -> dict:
    import jax

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def _table(rows) -> str:
    lines = [
        "| method | N | compile (s) | train+eval (s) | per model (ms) | peak RSS (MiB) | XLA temp (KiB) | mean acc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {METHODS[r['method']]} | {r['n']} | {r['compile_s']:.2f} | {r['run_s']:.3f} | "
            f"{1000 * r['run_s'] / r['n']:.1f} | {r['peak_rss_mb']:.0f} | {r['xla_temp_kb']:.0f} | {r['mean_metric']:.3f} |"
        )
    return "\n".join(lines)


def _speedups(rows) -> str:
    by = {(r["method"], r["n"]): r["run_s"] for r in rows}
    out = []
    for n in sorted({r["n"] for r in rows}):
        if all((m, n) in by for m in "abc"):
            out.append(
                f"- N={n}: (a) is {by[('b', n)] / by[('a', n)]:.1f}x faster than (b), "
                f"{by[('c', n)] / by[('a', n)]:.1f}x faster than (c)."
            )
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,4,16,64")
    parser.add_argument("--methods", default="abc")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args)))
        return

    machine = _machine()
    command = "python benchmarks/population.py " + " ".join(sys.argv[1:])
    print(f"{command}\n{machine}")
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        for method in args.methods:
            cmd = [sys.executable, __file__, "--worker", method, str(n)]
            cmd += ["--steps", str(args.steps), "--batch", str(args.batch), "--width", str(args.width)]
            cmd += ["--repeats", str(args.repeats)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode:
                sys.exit(f"worker {method} N={n} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"  {METHODS[method]:36s} N={n:3d}  compile {r['compile_s']:6.2f}s  run {r['run_s']:7.3f}s  "
                  f"peak RSS +{r['peak_rss_mb']:.0f} MiB", flush=True)

    table, speedups = _table(rows), _speedups(rows)
    print("\n" + table + "\n\n" + speedups)
    section = "\n".join(
        [
            "## Population training (`benchmarks/population.py`)",
            "",
            f"Command: `{command.strip()}`  ",
            f"Machine: {machine['nproc']} cores, {machine['cpu']}, jax {machine['jax']} ({machine['backend']}); "
            f"load average at start {machine['load']} (shared machine: other jobs were running).",
            "",
            f"MLP 64-{args.width}-10 (ReLU) on sklearn digits (1437 train / 360 eval), AdamW, batch {args.batch}, "
            f"{args.steps} steps, one learning rate per model. Train+eval is wall time after compilation, best of "
            f"{args.repeats}; compile is reported apart. Peak RSS: growth of `ru_maxrss` in a fresh subprocess per row "
            f"(compilation included). XLA temp: the compiled program's scratch memory (`memory_analysis()`), for (b) "
            f"of one train step.",
            "",
            table,
            "",
            speedups,
        ]
    )
    if not args.no_write:
        write_section("population", section)
        print(f"\nwrote the population section of {RESULTS}")


if __name__ == "__main__":
    main()
