"""GPFIFOSearcher's asynchronous ask/tell loop with a thread pool of simulated workers.

Each worker "trains" for a random time and reports the Branin value of its configuration; as soon as one
finishes, the searcher is told its result and asked for the next configuration, while the configurations
still running are fantasized (pending). No batch waits for its slowest member.

    python examples/async_searcher.py
"""

import concurrent.futures as cf
import random
import time

import numpy as np

import hyperoptax as hx


def branin(x1, x2):
    b, c, t = 5.1 / (4 * np.pi**2), 5 / np.pi, 1 / (8 * np.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10  # minimum 0.397887


def evaluate(config):
    time.sleep(random.uniform(0.05, 0.3))  # a worker training for a while
    return {"value": float(branin(config["x1"], config["x2"]))}


searcher = hx.GPFIFOSearcher({"x1": hx.LinearSpace(-5.0, 10.0), "x2": hx.LinearSpace(0.0, 15.0)},
                             metric="value", mode="min", random_seed=0)
n_workers, n_trials = 4, 24
best = float("inf")
with cf.ThreadPoolExecutor(n_workers) as pool:
    running, started = {}, 0
    while started < n_trials or running:
        while started < n_trials and len(running) < n_workers:  # ask: one configuration per free worker
            config = searcher.get_config(trial_id=started)  # registered as pending
            running[pool.submit(evaluate, config)] = (started, config)
            started += 1
        done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
        for future in done:  # tell: results arrive in any order
            trial_id, config = running.pop(future)
            result = future.result()
            searcher.on_trial_result(trial_id, config, result)
            best = min(best, result["value"])
            print(f"trial {trial_id:2d}: value {result['value']:8.4f}  x1={config['x1']:.3f} x2={config['x2']:.3f}"
                  f"  (best {best:.4f})")

print(f"\nbest Branin value after {n_trials} trials: {best:.4f} (global minimum 0.3979)")
