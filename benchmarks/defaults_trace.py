"""Why the documented defaults lost to random search: the step from one suggestion to the next.

``BayesianSearch()`` (Matérn-1/2, PI with ``xi = 0.01``, one point per batch) on Branin, 40 evaluations,
seeds 0-2, with plain PI (``pi_relative=0``, the behaviour before issue 13) and with the relative
threshold (``pi_relative=0.2``, the default now). For each run: the median distance between consecutive
suggestions in the unit square, the share of steps shorter than 0.05, the final simple regret and the
fitted length scales. Writes the ``search-defaults`` section of RESULTS.md.

    python benchmarks/defaults_trace.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from functions import FUNCTIONS  # noqa: E402
from sections import write_section  # noqa: E402

import hyperoptax as hx  # noqa: E402

N_EVALS, SEEDS = 40, (0, 1, 2)


def trace(pi_relative: float, seed: int) -> dict:
    f = FUNCTIONS["branin"]
    lo, hi = np.array(f.bounds).T
    space = {f"x{i}": hx.LinearSpace(float(a), float(b)) for i, (a, b) in enumerate(f.bounds)}
    state, opt = hx.BayesianSearch.init(space, n_max=N_EVALS, n_parallel=1, maximize=False, pi_relative=pi_relative)
    key, points, values = jax.random.key(seed), [], []
    for _ in range(N_EVALS):
        key, k_next, k_update = jax.random.split(key, 3)
        params = opt.get_next_params(state, k_next)
        x = np.array([float(params[f"x{i}"][0]) for i in range(f.dim)])
        value = f.evaluate(list(x))
        state = opt.update_state(state, k_update, jnp.asarray([value], jnp.float32), params)
        points.append((x - lo) / (hi - lo))
        values.append(value)
    steps = np.linalg.norm(np.diff(np.array(points), axis=0), axis=1)
    return {"median_step": float(np.median(steps)), "short": float(np.mean(steps < 0.05)),
            "regret": min(values) - f.optimum, "length_scales": np.exp(np.asarray(state.log_length_scale)).tolist()}


def main():
    lines = ["## Search: why the documented defaults lost to random search", "",
             "Command: `python benchmarks/defaults_trace.py`. `BayesianSearch()` on Branin (one point per batch, "
             f"{N_EVALS} evaluations): distance between consecutive suggestions in the unit square. With plain PI "
             "(`xi = 0.01` on standardized targets) the acquisition is maximized right next to the incumbent, so "
             "the search creeps from its first good point; asking for a fifth of the incumbent's lead "
             "(`pi_relative=0.2`, now the default) makes the steps about ten times longer.", "",
             "| PI threshold | seed | median step | steps < 0.05 | final regret | fitted length scales |",
             "|---|---|---|---|---|---|"]
    for rel in (0.0, 0.2):
        for seed in SEEDS:
            r = trace(rel, seed)
            label = "plain (`pi_relative=0`)" if rel == 0 else "relative (`pi_relative=0.2`)"
            lines.append(f"| {label} | {seed} | {r['median_step']:.3f} | {r['short']:.0%} | {r['regret']:.3g} | "
                         + ", ".join(f"{v:.2f}" for v in r["length_scales"]) + " |")
            print(lines[-1], flush=True)
    write_section("search-defaults", "\n".join(lines))


if __name__ == "__main__":
    main()
