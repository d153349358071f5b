"""PopulationTrainer: a vmapped population equals its members trained alone.

Compiles are the cost here (seconds each on a CPU), so the tests share one
trainer and one set of results through module fixtures. The helpers at the top
are imported by the multi-device / multi-process subprocess scripts below.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen, nnx

import hyperoptax
from hyperoptax.errors import ConfigurationError
from hyperoptax.integrations.flax import PopulationState, PopulationTrainer

HERE = os.path.dirname(os.path.abspath(__file__))
N_STEPS = 60
LRS = [0.02, 0.1, 0.3, 1e6]  # the last one diverges


def digits(n_train=600, n_eval=300):
    """sklearn digits as the trainer expects them: images (N, 8, 8, 1) in [0, 1], int32 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target.astype(np.int32)
    perm = np.random.RandomState(0).permutation(len(y))
    tr, ev = perm[:n_train], perm[n_train : n_train + n_eval]
    return {"image": x[tr], "label": y[tr]}, {"image": x[ev], "label": y[ev]}


class MLP(nnx.Module):
    def __init__(self, width, rngs):
        self.hidden = nnx.Linear(64, width, rngs=rngs)
        self.out = nnx.Linear(width, 10, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))


def model_fn(hparams, rngs):
    return MLP(hparams.get("width", 16), rngs)


def sgd(hparams):
    # Weight decay makes a huge learning rate blow the weights up (|1 - lr * wd| > 1) instead of
    # merely killing every ReLU, so lr=1e6 really diverges to inf/NaN.
    return optax.chain(
        optax.add_decayed_weights(5e-4),
        optax.inject_hyperparams(optax.sgd)(learning_rate=hparams["learning_rate"], momentum=0.9),
    )


def neg_cross_entropy(logits, labels):
    # A smooth metric, so "equal" can be checked tightly (accuracy moves in steps of 1/n_eval).
    return -optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def make_trainer(**kwargs):
    train, eval_ = digits()
    kwargs = {"n_steps": N_STEPS, "batch_size": 32, "metric_fn": neg_cross_entropy, **kwargs}
    return PopulationTrainer(model_fn, sgd, train=train, eval=eval_, **kwargs)


def lr_batch(lrs=LRS):
    return {"learning_rate": jnp.asarray(lrs, jnp.float32)}


KEY_SEED = 0


# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trainer():
    return make_trainer()


@pytest.fixture(scope="module")
def population(trainer):
    return np.asarray(trainer(jax.random.key(KEY_SEED), lr_batch()))


def test_members_equal_training_alone(trainer, population):
    keys = jax.random.split(jax.random.key(KEY_SEED), len(LRS))
    alone = jax.jit(trainer.objective)
    for i, lr in enumerate(LRS[:3]):
        single = alone(keys[i], {"learning_rate": jnp.float32(lr)})
        np.testing.assert_allclose(population[i], single, rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(population[:3]))
    assert len(set(np.round(population[:3], 4))) == 3, population  # different lrs, different metrics
    assert trainer.n_compiles == 1


def test_diverging_member_is_nan_for_itself_only(trainer, population):
    assert np.isnan(population[3])
    healthy = np.asarray(trainer(jax.random.key(KEY_SEED), lr_batch(LRS[:3] + [0.05])))
    np.testing.assert_array_equal(healthy[:3], population[:3])  # bitwise: members never interact
    assert np.isfinite(healthy[3])
    assert trainer.n_compiles == 1  # same shapes, same program


def test_chunked_training_and_resume_equal_one_shot(trainer, population):
    saved = {}

    def checkpoint_fn(pop_state, step):
        assert isinstance(pop_state, PopulationState)
        np.testing.assert_array_equal(np.asarray(pop_state.step), step)
        saved[step] = jax.tree.map(np.asarray, pop_state)  # what Orbax would write: plain arrays

    params = lr_batch()
    chunked = np.asarray(trainer.run(jax.random.key(KEY_SEED), params, checkpoint_fn=checkpoint_fn, checkpoint_every=30))
    assert sorted(saved) == [30, 60]
    np.testing.assert_allclose(chunked, population, rtol=1e-5, atol=1e-6, equal_nan=True)
    resumed = trainer.run(jax.random.key(123), params, start_state=saved[30])  # the key is unused on resume
    np.testing.assert_allclose(resumed, population, rtol=1e-5, atol=1e-6, equal_nan=True)
    # Every leaf of the state is a plain array with the population axis first.
    assert all(np.asarray(x).shape[0] == len(LRS) for x in jax.tree.leaves(saved[30]))
    assert not any(jnp.issubdtype(x.dtype, jax.dtypes.prng_key) for x in jax.tree.leaves(saved[30]))


def test_population_checkpointed_with_orbax_mid_training_resumes_identically(trainer, population, tmp_path):
    """Train states go to real Orbax checkpoints every 20 steps with the search state; a run
    restored from disk (the process that wrote them is gone) ends with the uninterrupted metrics."""
    from hyperoptax.integrations.orbax import SweepCheckpointer

    params = lr_batch()
    search_state, opt = hyperoptax.RandomSearch.init({"learning_rate": hyperoptax.LogSpace(1e-2, 1.0)}, n_max=8)
    with SweepCheckpointer(tmp_path / "ckpt", max_to_keep=2) as ckpt:
        trainer.run(jax.random.key(KEY_SEED), params, checkpoint_every=20,
                    checkpoint_fn=lambda pop, step: ckpt.save(step, search_state=search_state, population_state=pop,
                                                              metadata={"train_step": step}))
        ckpt.wait_until_finished()
        assert ckpt.all_steps() == [40, 60]  # max_to_keep=2
    template = trainer.init_population(jax.random.key(0), params)  # any state of the right shapes
    with SweepCheckpointer(tmp_path / "ckpt") as reopened:
        restored = reopened.restore(search_state, template, step=40)
    assert restored.metadata == {"train_step": 40} and int(np.asarray(restored.population_state.step)[0]) == 40
    resumed = trainer.run(jax.random.key(KEY_SEED), params, start_state=restored.population_state)
    np.testing.assert_allclose(resumed, population, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_static_width_is_bucketed_and_compiled_once_per_bucket():
    space = {"learning_rate": hyperoptax.LogSpace(1e-3, 1.0), "width": hyperoptax.DiscreteSpace([8, 16])}
    trainer = make_trainer(static=("width",), space=space, n_steps=20)
    params = {"learning_rate": jnp.asarray([0.1, 0.1, 0.3, 0.3]), "width": jnp.asarray([8, 16, 16, 8], jnp.int32)}
    first = np.asarray(trainer(jax.random.key(1), params))
    assert trainer.n_compiles == 2
    swapped = {"learning_rate": params["learning_rate"][::-1], "width": params["width"][::-1]}
    second = np.asarray(trainer(jax.random.key(1), swapped))
    assert trainer.n_compiles == 2  # cached per static value, whatever the member order
    assert np.all(np.isfinite(first)) and len(set(first.tolist())) == 4
    # Results come back in the caller's order: member i equals member i trained alone.
    keys = jax.random.split(jax.random.key(1), 4)
    alone = jax.jit(lambda k, lr: trainer.objective(k, {"learning_rate": lr, "width": 16}))
    np.testing.assert_allclose(first[1], alone(keys[1], params["learning_rate"][1]), rtol=1e-4)
    assert second.shape == (4,)

    with pytest.raises(ConfigurationError, match="'width' is static"):
        jax.vmap(trainer.objective)(keys, params)
    with pytest.raises(ConfigurationError, match="different values of the static"):
        trainer.init_population(jax.random.key(0), params)


def test_configuration_errors():
    with pytest.raises(ConfigurationError, match="'depth'.*Did you mean 'width'"):
        make_trainer(static=("depth",), space={"learning_rate": hyperoptax.LogSpace(1e-3, 1.0), "width": hyperoptax.DiscreteSpace([8])})
    with pytest.raises(ConfigurationError, match="continuous space"):
        make_trainer(static=("learning_rate",), space={"learning_rate": hyperoptax.LogSpace(1e-3, 1.0)})
    with pytest.raises(ConfigurationError, match="names 'depth'"):
        make_trainer(static=("depth",))(jax.random.key(0), lr_batch())
    trainer = make_trainer()
    with pytest.raises(ConfigurationError, match=r"\['dropout'\] are never read"):
        trainer(jax.random.key(0), {**lr_batch(), "dropout": jnp.zeros(4)})
    if jax.device_count() > 1:
        with pytest.raises(ConfigurationError, match="multiple of"):
            trainer(jax.random.key(0), lr_batch([0.1] * (jax.device_count() + 1)))
    with pytest.raises(ConfigurationError, match="'learning_rate'"):
        PopulationTrainer(model_fn, train=digits()[0], eval=digits()[1], n_steps=2, batch_size=4)(
            jax.random.key(0), {"lr": jnp.ones(jax.device_count())}
        )


class LinenMLP(linen.Module):
    width: int
    dropout: jax.Array  # traced per member: Linen modules are rebuilt inside the program

    @linen.compact
    def __call__(self, x, train: bool):
        x = linen.relu(linen.Dense(self.width)(x.reshape(x.shape[0], -1)))
        keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.dropout, x.shape) if train else True
        return linen.Dense(10)(jnp.where(keep, x / (1.0 - self.dropout), 0.0) if train else x)


def test_linen_factory_with_traced_dropout_and_default_adamw():
    train, eval_ = digits()
    trainer = PopulationTrainer(
        lambda hp: LinenMLP(32, hp["dropout"]), train=train, eval=eval_, n_steps=N_STEPS, batch_size=32
    )
    n = max(2, jax.device_count())
    params = {"learning_rate": jnp.full((n,), 1e-2), "dropout": jnp.linspace(0.0, 0.5, n), "label_smoothing": jnp.full((n,), 0.1)}
    acc = np.asarray(trainer(jax.random.key(0), params))
    assert np.all((acc > 0.6) & (acc <= 1.0)), acc  # default metric: accuracy


# ---------------------------------------------------------------------------
# Several devices / processes: subprocesses, since the device count is fixed at import.


def _run_script(body, env_extra, n_procs=1, timeout=240):
    env = {**os.environ, "PYTHONPATH": HERE + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # Unoptimized XLA compiles ~4x faster; these tests check sharding, not speed.
    env["XLA_FLAGS"] = env_extra.pop("XLA_FLAGS") + " --xla_backend_optimization_level=0"
    env.update(env_extra)
    env.pop("JAX_PLATFORMS", None)
    script = textwrap.dedent(body)
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(i)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(n_procs)
    ]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


@pytest.mark.slow
def test_sharded_over_four_devices_equals_single_device(population):
    [out] = _run_script(
        f"""
        import json, jax, numpy as np
        from test_population import make_trainer, lr_batch
        from hyperoptax.errors import ConfigurationError
        assert jax.device_count() == 4
        trainer = make_trainer()
        metrics = trainer(jax.random.key({KEY_SEED}), lr_batch())
        state = trainer.init_population(jax.random.key(0), lr_batch())
        n_shards = len(state.step.sharding.device_set)
        try:
            trainer(jax.random.key(0), lr_batch([0.1] * 6))
            error = None
        except ConfigurationError as err:
            error = str(err)
        print(json.dumps({{"metrics": np.asarray(metrics).tolist(), "shards": n_shards, "error": error}}))
        """,
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
    )
    assert out["shards"] == 4
    assert "multiple of the 4 devices" in out["error"]
    np.testing.assert_allclose(np.asarray(out["metrics"], np.float32), population, rtol=1e-4, atol=1e-5, equal_nan=True)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_one_sharded_population(population):
    outs = _run_script(
        f"""
        import json, sys, jax, numpy as np
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address="localhost:{_free_port()}", num_processes=2,
                                   process_id=int(sys.argv[1]), initialization_timeout=120)
        from test_population import make_trainer, lr_batch
        assert jax.device_count() == 4 and jax.local_device_count() == 2
        metrics = make_trainer()(jax.random.key({KEY_SEED}), lr_batch())
        print(json.dumps({{"metrics": np.asarray(metrics).tolist()}}))
        """,
        {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        n_procs=2,
    )
    a, b = (np.asarray(o["metrics"], np.float32) for o in outs)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, population, rtol=1e-4, atol=1e-5, equal_nan=True)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(hyperoptax, "BayesianSearch"), reason="BayesianSearch not available")
def test_whole_sweep_is_one_program():
    space = {"learning_rate": hyperoptax.LogSpace(1e-3, 0.5)}
    state, opt = hyperoptax.BayesianSearch.init(
        space, n_max=12, n_parallel=4, n_candidates=32, n_restarts=1, n_lbfgs_steps=2, n_hparam_steps=2
    )
    trainer = make_trainer(n_steps=20)
    sweep = jax.jit(lambda s, k: opt.optimize_scan(s, k, trainer.objective, n_iterations=3))
    state, (params_hist, results_hist) = sweep(state, jax.random.key(0))
    assert results_hist.shape == (3, 4) and params_hist["learning_rate"].shape == (3, 4)
    sweep(state, jax.random.key(1))
    assert sweep._cache_size() == 1
    assert np.isfinite(float(opt.best_result(state)))
