"""The Ray Tune adapter on a real local Ray cluster."""

from __future__ import annotations

import json
import math

import pytest

ray = pytest.importorskip("ray")
tune = pytest.importorskip("ray.tune")

import hyperoptax as hx  # noqa: E402
from hyperoptax.errors import ConfigurationError  # noqa: E402
from hyperoptax.integrations.ray import HyperoptaxSearch, from_ray_space  # noqa: E402


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_tune_experiment_with_two_concurrent_trials(local_cluster, tmp_path):
    # Defined here so Ray pickles it by value (workers cannot import this test module).
    def objective(config):
        x, lr = config["x"], config["lr"]
        if x > 9.5:
            raise RuntimeError("diverged")  # an errored trial: a failure, never data
        return {"loss": (x - 2.0) ** 2 + (math.log10(lr) + 2.0) ** 2 + 0.1 * config["layers"]}

    search = HyperoptaxSearch(random_seed=0, num_init_random=4, skip_local_optimization=True)
    tuner = tune.Tuner(
        objective,
        param_space={"x": tune.uniform(-5.0, 10.0), "lr": tune.loguniform(1e-4, 1e-1), "layers": tune.randint(1, 4)},
        tune_config=tune.TuneConfig(search_alg=search, metric="loss", mode="min", num_samples=12,
                                    max_concurrent_trials=2, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    results = tuner.fit()
    assert len(results) == 12
    ok = [r for r in results if r.error is None]
    assert ok and all(1 <= r.config["layers"] <= 3 for r in ok)
    best = results.get_best_result(metric="loss", mode="min")
    assert best.metrics["loss"] < 10.0
    searcher = search.gp_searcher
    statuses = [t["status"] for t in searcher._trials.values()]
    assert len(statuses) == 12 and "pending" not in statuses
    assert statuses.count("observed") == len(ok)

    # save / restore: a fresh adapter continues with the same next suggestion.
    path = tmp_path / "searcher.json"
    search.save(str(path))
    json.loads(path.read_text())
    restored = HyperoptaxSearch(random_seed=0, num_init_random=4, skip_local_optimization=True)
    restored.set_search_properties("loss", "min", {"x": tune.uniform(-5.0, 10.0),
                                                   "lr": tune.loguniform(1e-4, 1e-1), "layers": tune.randint(1, 4)})
    restored.restore(str(path))
    assert restored.suggest("next") == search.suggest("next")


def test_space_conversion_and_errors():
    space = from_ray_space({"a": tune.uniform(0, 1), "b": tune.loguniform(1e-3, 1), "c": tune.randint(0, 5),
                            "d": tune.choice(["x", "y"]), "e": 3})
    assert space["a"] == hx.LinearSpace(0, 1) and space["b"] == hx.LogSpace(1e-3, 1)
    assert space["c"] == hx.QLinearSpace(0, 4) and space["d"] == hx.DiscreteSpace(["x", "y"]) and space["e"] == 3
    with pytest.raises(ConfigurationError, match="no hyperoptax equivalent"):
        from_ray_space({"n": tune.randn(0, 1)})
    with pytest.raises(ConfigurationError, match="no search space"):
        HyperoptaxSearch().suggest("1")


def test_exhausted_space_finishes():
    search = HyperoptaxSearch(space={"k": hx.DiscreteSpace(["a", "b"])}, metric="loss", mode="min", random_seed=0)
    assert {search.suggest("1")["k"], search.suggest("2")["k"]} == {"a", "b"}
    search.on_trial_complete("1", {"loss": 1.0})
    search.on_trial_complete("2", error=True)
    assert search.suggest("3") == "FINISHED"
