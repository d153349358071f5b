"""Early stopping in Ray Tune with hyperoptax: Ray's own ASHA scheduler, then hyperoptax's.

    python examples/ray_early_stopping.py

Both runs search with HyperoptaxSearch (GPFIFOSearcher) reading every intermediate result as an observation at
its `training_iteration` (multi-fidelity, MOBSTER-style), so trials stopped early are data, not failures.
"""

import math

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from hyperoptax.integrations.ray import HyperoptaxScheduler, HyperoptaxSearch

MAX_T = 9


def trainable(config):
    """A stand-in for a training loop: the loss falls with iterations, fastest near lr = 1e-2, x = 2."""
    quality = (math.log10(config["lr"]) + 2.0) ** 2 + 0.1 * (config["x"] - 2.0) ** 2
    for iteration in range(1, MAX_T + 1):
        tune.report({"loss": quality + 1.0 / iteration})


def run(scheduler, name):
    search = HyperoptaxSearch(random_seed=0, num_init_random=4, resource_attr="training_iteration",
                              max_resource=MAX_T)
    tuner = tune.Tuner(
        trainable,
        param_space={"lr": tune.loguniform(1e-4, 1e-1), "x": tune.uniform(-5.0, 5.0)},
        tune_config=tune.TuneConfig(search_alg=search, scheduler=scheduler, metric="loss", mode="min",
                                    num_samples=16, max_concurrent_trials=2,
                                    # One worker process serves many trials: starting one per trial costs
                                    # more than these trials' training.
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=name, verbose=0),
    )
    results = tuner.fit()
    iterations = sorted(r.metrics["training_iteration"] for r in results)
    best = results.get_best_result()
    print(f"{name}: {len(results)} trials, {sum(i < MAX_T for i in iterations)} stopped early; best loss "
          f"{best.metrics['loss']:.4f} at lr={best.config['lr']:.3g}")
    return search


ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
run(ASHAScheduler(max_t=MAX_T, grace_period=1, reduction_factor=3), "ray-asha")
run(HyperoptaxScheduler(max_t=MAX_T, grace_period=1, reduction_factor=3), "hyperoptax-scheduler")
ray.shutdown()
