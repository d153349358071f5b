"""SweepCheckpointer and resumable_optimize: real Orbax checkpoints on disk."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

pytest.importorskip("orbax.checkpoint")

from hyperoptax.errors import CheckpointError, ConfigurationError  # noqa: E402
from hyperoptax.integrations.orbax import (  # noqa: E402
    SweepCheckpointer,
    resumable_optimize,
)

# A stand-in search (state dataclass + optimizer + objective + a sweep entry
# point). It is written to a file so the SIGKILL test can run it in a
# subprocess, and imported from that file by the in-process tests.
_SWEEP_SOURCE = textwrap.dedent(
    '''
    import json, sys, time
    from dataclasses import dataclass, field

    import jax
    import jax.numpy as jnp

    import hyperoptax
    from hyperoptax.integrations.orbax import SweepCheckpointer, resumable_optimize


    @dataclass(frozen=True)
    class Settings:
        n_parallel: int = 3


    @jax.tree_util.register_dataclass
    @dataclass(frozen=True)
    class StandInState:
        space: dict                       # Space objects: no array leaves
        X: jax.Array                      # (n_max, d)
        y: jax.Array                      # (n_max,)
        mask: jax.Array                   # (n_max,)
        count: jax.Array                  # ()
        settings: Settings = field(metadata=dict(static=True))


    SPACE = {"x": hyperoptax.LinearSpace(-1.0, 1.0), "z": hyperoptax.LinearSpace(0.0, 2.0)}


    def init(n_max=32, n_parallel=3):
        d = len(SPACE)
        return StandInState(SPACE, jnp.zeros((n_max, d)), jnp.zeros(n_max), jnp.zeros(n_max, bool),
                            jnp.zeros((), jnp.int32), Settings(n_parallel))


    @jax.jit
    def suggest(state, key):
        """Half random, half perturbations of the best point so far: depends on the state."""
        n = state.settings.n_parallel
        k1, k2 = jax.random.split(key)
        names = sorted(state.space)
        lo = jnp.array([state.space[k].lower_bound for k in names])
        hi = jnp.array([state.space[k].upper_bound for k in names])
        rand = lo + (hi - lo) * jax.random.uniform(k1, (n, len(names)))
        best = state.X[jnp.argmax(jnp.where(state.mask, state.y, -jnp.inf))]
        local = jnp.clip(best + 0.1 * jax.random.normal(k2, (n, len(names))), lo, hi)
        pts = jnp.where(state.count > 0, jnp.where(jnp.arange(n)[:, None] % 2 == 0, rand, local), rand)
        return {k: pts[:, i] for i, k in enumerate(names)}


    @jax.jit
    def update(state, results, params):
        names = sorted(state.space)
        pts = jnp.stack([params[k] for k in names], axis=1)
        idx = state.count + jnp.arange(pts.shape[0])
        return StandInState(state.space, state.X.at[idx].set(pts), state.y.at[idx].set(results),
                            state.mask.at[idx].set(True), state.count + pts.shape[0], state.settings)


    class StandInSearch:
        def get_next_params(self, state, key):
            return suggest(state, key)

        def update_state(self, state, key, results, params):
            return update(state, results, params)


    @jax.jit
    def objective(key, params):
        noise = 0.01 * jax.random.normal(key, params["x"].shape)
        return -(params["x"] - 0.3) ** 2 - (params["z"] - 1.2) ** 2 + noise


    def run(directory, n_iterations, seed=0, sleep=0.0, max_to_keep=3):
        def func_batched(key, params):
            time.sleep(sleep)
            return objective(key, params)
        with SweepCheckpointer(directory, max_to_keep=max_to_keep) as ckpt:
            return resumable_optimize(StandInSearch(), init(), jax.random.key(seed), func_batched,
                                      n_iterations, ckpt)


    if __name__ == "__main__":
        directory, n_iterations, sleep, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
        state, trials = run(directory, n_iterations, sleep=sleep)
        with open(out, "w") as f:
            json.dump({"y": state.y.tolist(), "best": float(state.y.max()), "trials": trials}, f)
    '''
)


@pytest.fixture
def sweep(tmp_path):
    path = tmp_path / "sweep_standin.py"
    path.write_text(_SWEEP_SOURCE)
    spec = importlib.util.spec_from_file_location(f"sweep_standin_{id(path)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.path = path
    return module


def _population(n_parallel=3, seed=0, host=True):
    params = {"w": jnp.ones((n_parallel, 4, 2)), "b": jnp.zeros((n_parallel, 2), jnp.bfloat16)}
    opt_state = jax.vmap(optax.adam(1e-3).init)(params)
    population = {
        "params": params,
        "opt_state": opt_state,
        "step": jnp.array(7, jnp.int32),
        "key": jax.random.split(jax.random.key(seed), n_parallel),  # typed keys
        "raw_key": jax.random.PRNGKey(seed + 1),  # raw uint32 key
    }
    if host:  # a numpy leaf (jax.eval_shape would turn it into a jax int32)
        population["host"] = np.arange(3, dtype=np.int64)
    return population


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype
        assert np.shape(x) == np.shape(y)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert jax.random.key_impl(x) == jax.random.key_impl(y)
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _filled_state(sweep, n_max=32, seed=0):
    state = sweep.init(n_max=n_max)
    k = jax.random.key(seed)
    return type(state)(state.space, jax.random.uniform(k, state.X.shape), jnp.arange(n_max, dtype=jnp.float32),
                       jnp.arange(n_max) < 5, jnp.array(5, jnp.int32), state.settings)


def test_round_trip_restores_arrays_dtypes_keys_and_metadata(sweep, tmp_path):
    state, population = _filled_state(sweep), _population()
    metadata = {"iteration": 2, "key": [0, 42], "trials": [{"trial": 0, "result": 1.5, "status": "ok"}]}
    with SweepCheckpointer(tmp_path / "ckpt") as ckpt:
        assert ckpt.latest_step() is None
        assert ckpt.save(10, search_state=state, population_state=population, metadata=metadata)
        ckpt.wait_until_finished()
        assert ckpt.latest_step() == 10
        restored = ckpt.restore(sweep.init(), _population(seed=5))
    assert restored.step == 10
    assert restored.metadata == metadata
    _assert_trees_equal(restored.search_state, state)
    assert restored.search_state.space == state.space and restored.search_state.settings == state.settings
    _assert_trees_equal(restored.population_state, population)
    assert isinstance(restored.population_state["host"], np.ndarray)
    # The restored typed keys still work as keys.
    jax.random.uniform(restored.population_state["key"][0])


def test_restore_onto_abstract_template(sweep, tmp_path):
    state, population = _filled_state(sweep), _population(host=False)
    with SweepCheckpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, search_state=state, population_state=population)
        abstract_state = jax.eval_shape(sweep.init)
        abstract_population = jax.eval_shape(lambda: _population(host=False))
        restored = ckpt.restore(abstract_state, abstract_population)
    _assert_trees_equal(restored.search_state, state)
    _assert_trees_equal(restored.population_state, population)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(restored.population_state))


def test_restored_state_does_not_recompile_jitted_steps(sweep, tmp_path):
    state = _filled_state(sweep)
    step = jax.jit(lambda s, k: sweep.suggest(s, k))
    key = jax.random.key(1)
    step(state, key)
    with SweepCheckpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, search_state=state)
        restored = ckpt.restore(sweep.init()).search_state
    np.testing.assert_array_equal(step(restored, key)["x"], step(state, key)["x"])
    assert step._cache_size() == 1


def test_restore_uses_the_template_sharding(sweep, tmp_path):
    device = jax.devices()[0]
    mesh = jax.sharding.Mesh(np.array([device]), ("members",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("members"))
    population = {"w": jax.device_put(jnp.arange(6.0).reshape(3, 2), sharding)}
    with SweepCheckpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, search_state=sweep.init(), population_state=population)
        template = {"w": jax.ShapeDtypeStruct((3, 2), jnp.float32, sharding=sharding)}
        restored = ckpt.restore(sweep.init(), template)
    assert restored.population_state["w"].sharding == sharding
    np.testing.assert_array_equal(restored.population_state["w"], population["w"])


def test_max_to_keep_is_honoured_on_disk(sweep, tmp_path):
    directory = tmp_path / "ckpt"
    with SweepCheckpointer(directory, max_to_keep=2) as ckpt:
        for step in range(1, 6):
            ckpt.save(step, search_state=sweep.init(), metadata={"step": step})
        ckpt.wait_until_finished()
        assert ckpt.all_steps() == [4, 5]
    assert sorted(p for p in os.listdir(directory) if p.isdigit()) == ["4", "5"]
    with SweepCheckpointer(directory, max_to_keep=2) as ckpt:
        assert ckpt.restore(sweep.init()).metadata == {"step": 5}


def test_steps_must_increase_and_checkpoint_every_skips(sweep, tmp_path):
    with SweepCheckpointer(tmp_path / "ckpt", checkpoint_every=5) as ckpt:
        assert not ckpt.save(3, search_state=sweep.init())
        assert ckpt.save(5, search_state=sweep.init())
        assert ckpt.save(7, search_state=sweep.init(), force=True)
        with pytest.raises(CheckpointError, match="steps must increase"):
            ckpt.save(7, search_state=sweep.init(), force=True)
        with pytest.raises(ConfigurationError, match="JSON-serializable"):
            ckpt.save(8, search_state=sweep.init(), metadata={"y": np.zeros(2)}, force=True)
        ckpt.wait_until_finished()
        assert ckpt.all_steps() == [5, 7]


def test_population_is_optional(sweep, tmp_path):
    with SweepCheckpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, search_state=sweep.init())
        assert ckpt.restore(sweep.init(), _population()).population_state is None
        ckpt.save(2, search_state=sweep.init(), population_state=_population())
        assert ckpt.restore(sweep.init()).population_state is None


def _corrupt(step_dir, how):
    if how == "delete_array_files":
        for root, _, files in os.walk(step_dir / "population"):
            for name in files:
                if root != str(step_dir / "population"):  # the data files, not the metadata
                    os.remove(os.path.join(root, name))
    elif how == "truncate_array_files":
        for root, _, files in os.walk(step_dir / "search"):
            for name in files:
                path = os.path.join(root, name)
                if root != str(step_dir / "search"):
                    with open(path, "r+b") as f:
                        f.truncate(os.path.getsize(path) // 2)
    elif how == "garbage_manifest":
        (step_dir / "hyperoptax" / "metadata").write_text("{not json")
    elif how == "delete_metadata":
        os.remove(step_dir / "metadata" / "metadata")
    else:
        raise AssertionError(how)


# A failed TensorStore read can leave a callback for Orbax's closed event loop.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    "how", ["delete_array_files", "truncate_array_files", "garbage_manifest", "delete_metadata"]
)
def test_corrupt_latest_is_reported_and_previous_restored(sweep, tmp_path, caplog, how):
    directory = tmp_path / "ckpt"
    with SweepCheckpointer(directory) as ckpt:
        for step in (1, 2):
            ckpt.save(step, search_state=_filled_state(sweep, seed=step), population_state=_population(seed=step),
                      metadata={"step": step})
    _corrupt(directory / "2", how)
    with SweepCheckpointer(directory) as ckpt:
        with caplog.at_level(logging.WARNING, logger="hyperoptax.integrations.orbax"):
            restored = ckpt.restore(sweep.init(), _population())
        assert restored.step == 1 and restored.metadata == {"step": 1}
        _assert_trees_equal(restored.search_state, _filled_state(sweep, seed=1))
        _assert_trees_equal(restored.population_state, _population(seed=1))
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("step 2" in w and "corrupt" in w for w in warnings), warnings
        # The bad step is kept aside, not deleted, and the sweep can save step 2 again.
        assert os.listdir(directory / "corrupt")[0].startswith("2-")
        assert ckpt.all_steps() == [1]
        ckpt.save(2, search_state=sweep.init())


@jax.tree_util.register_pytree_node_class
class _FragileTemplate:
    """A user's pytree whose unflatten has a bug: restoring onto it fails whatever the files hold."""

    def __init__(self, w, broken=True):
        self.w, self.broken = w, broken

    def tree_flatten(self):
        return (self.w,), self.broken

    @classmethod
    def tree_unflatten(cls, broken, children):
        if broken and isinstance(children[0], (jax.Array, np.ndarray)):
            raise TypeError("a bug in the template's unflatten")
        return cls(*children, broken=broken)


def test_an_error_in_the_template_surfaces_and_moves_no_checkpoint(sweep, tmp_path, caplog):
    # Step 2 holds a population, step 1 does not: restoring step 2 onto a broken population template used to
    # be taken for corruption -- step 2 moved to corrupt/ and step 1 restored with only a warning.
    directory = tmp_path / "ckpt"
    with SweepCheckpointer(directory) as ckpt:
        ckpt.save(1, search_state=_filled_state(sweep, seed=1))
        ckpt.save(2, search_state=_filled_state(sweep, seed=2), population_state=_FragileTemplate(jnp.ones((3, 2))))
    with SweepCheckpointer(directory) as ckpt:
        with caplog.at_level(logging.WARNING, logger="hyperoptax.integrations.orbax"):
            with pytest.raises(TypeError, match="a bug in the template"):
                ckpt.restore(sweep.init(), _FragileTemplate(jnp.zeros((3, 2))))
            with pytest.raises(TypeError, match="a bug in the template"):
                ckpt.restore(sweep.init(), _FragileTemplate(jnp.zeros((3, 2))), step=2)
        assert ckpt.all_steps() == [1, 2] and not (directory / "corrupt").exists()
        assert not [r for r in caplog.records if "corrupt" in r.getMessage()]
        # With a sound template, the same checkpoint restores.
        restored = ckpt.restore(sweep.init(), _FragileTemplate(jnp.zeros((3, 2)), broken=False))
        assert restored.step == 2
        np.testing.assert_array_equal(restored.population_state.w, np.ones((3, 2)))


def test_data_that_no_longer_matches_its_checksum_is_rejected(sweep, tmp_path, caplog):
    # Array files are compressed, so a flipped bit cannot be planted in place;
    # instead make the recorded CRC32 disagree with the stored bytes.
    directory = tmp_path / "ckpt"
    with SweepCheckpointer(directory) as ckpt:
        ckpt.save(1, search_state=sweep.init())
        ckpt.save(2, search_state=_filled_state(sweep))
    manifest_path = directory / "2" / "hyperoptax" / "metadata"
    manifest = json.loads(manifest_path.read_text())
    manifest["items"]["search"][1]["crc32"] ^= 1
    manifest_path.write_text(json.dumps(manifest))
    with SweepCheckpointer(directory) as ckpt:
        with caplog.at_level(logging.WARNING, logger="hyperoptax.integrations.orbax"):
            assert ckpt.restore(sweep.init()).step == 1
    assert any("checksum mismatch" in r.getMessage() for r in caplog.records)


def test_all_corrupt_raises_checkpoint_error(sweep, tmp_path):
    directory = tmp_path / "ckpt"
    with SweepCheckpointer(directory) as ckpt:
        for step in (1, 2):
            ckpt.save(step, search_state=sweep.init())
    for step in (1, 2):
        _corrupt(directory / str(step), "garbage_manifest")
    with SweepCheckpointer(directory) as ckpt:
        with pytest.raises(CheckpointError, match=r"None of the checkpoints.*step 2.*step 1.*start over, delete the checkpoint directory"):
            ckpt.restore(sweep.init())
        assert ckpt.all_steps() == [1, 2]  # left in place for inspection
    with SweepCheckpointer(tmp_path / "empty") as ckpt:
        with pytest.raises(CheckpointError, match="No checkpoint"):
            ckpt.restore(sweep.init())


def test_changed_configuration_raises_clear_error(sweep, tmp_path, caplog):
    directory = tmp_path / "ckpt"
    with SweepCheckpointer(directory) as ckpt:
        ckpt.save(1, search_state=sweep.init(n_max=32), population_state=_population())
        with pytest.raises(CheckpointError) as info:
            ckpt.restore(sweep.init(n_max=64))
        message = str(info.value)
        assert "different configuration" in message and "n_max" in message and "start over" in message
        assert "--fresh" not in message  # a library error does not name a flag of the CLI
        assert "float32(32, 2)" in message and "float32(64, 2)" in message
        with pytest.raises(CheckpointError, match=r"population\['key'\]: checkpoint has key<fry>\(3,\)"):
            ckpt.restore(sweep.init(), _population(n_parallel=4))
        assert ckpt.all_steps() == [1]  # a config change does not quarantine anything
        with pytest.raises(CheckpointError, match="No checkpoint at step 5"):
            ckpt.restore(sweep.init(), step=5)


def test_unfinished_write_is_ignored_and_cleaned_up(sweep, tmp_path):
    directory = tmp_path / "ckpt"
    with SweepCheckpointer(directory) as ckpt:
        ckpt.save(1, search_state=_filled_state(sweep))
    # What a save killed midway leaves behind: a temporary dir, no commit marker.
    import shutil

    tmp_dir = directory / "2.orbax-checkpoint-tmp"
    shutil.copytree(directory / "1", tmp_dir)
    os.remove(tmp_dir / "commit_success.txt")
    with SweepCheckpointer(directory) as ckpt:
        assert ckpt.latest_step() == 1
        assert ckpt.restore(sweep.init()).step == 1
        ckpt.save(2, search_state=sweep.init())
        ckpt.wait_until_finished()
        assert ckpt.all_steps() == [1, 2]
    assert not tmp_dir.exists()


def _timeless(trials):
    """Trial records without their wall-clock ``duration``, the one field a rerun cannot reproduce."""
    return [{k: v for k, v in t.items() if k != "duration"} for t in trials]


def test_resumable_optimize_resumes_to_identical_results(sweep, tmp_path):
    full_state, full_trials = sweep.run(tmp_path / "full", 6)
    sweep.run(tmp_path / "split", 2)
    state, trials = sweep.run(tmp_path / "split", 6)
    np.testing.assert_array_equal(state.y, full_state.y)
    np.testing.assert_array_equal(state.X, full_state.X)
    assert _timeless(trials) == _timeless(full_trials)
    assert set(trials[0]) == {"trial", "iteration", "status", "metric", "duration", "params", "steps", "curve"}
    assert set(trials[0]["params"]) == {"x", "z"} and isinstance(trials[0]["params"]["x"], float)
    assert [t["trial"] for t in trials] == list(range(18))
    assert sorted({t["iteration"] for t in trials}) == list(range(6))
    # Running again with the work done is a no-op that returns the results.
    again, again_trials = sweep.run(tmp_path / "split", 6)
    np.testing.assert_array_equal(again.y, full_state.y)
    assert again_trials == trials
    with pytest.raises(CheckpointError, match="another key"):
        sweep.run(tmp_path / "split", 8, seed=1)


def _step_dirs(directory):
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return [], []
    return [n for n in names if n.isdigit()], [n for n in names if "orbax-checkpoint-tmp" in n]


def test_sigkill_midway_then_resume_equals_uninterrupted_run(sweep, tmp_path):
    n_iterations = 12
    full_state, full_trials = sweep.run(tmp_path / "full", n_iterations)

    directory, out = tmp_path / "killed", tmp_path / "out.json"
    command = [sys.executable, str(sweep.path), str(directory), str(n_iterations), "0.05", str(out)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    killed_during_write = False
    try:
        while time.monotonic() < deadline and process.poll() is None:
            done, writing = _step_dirs(directory)
            # Prefer to kill while a checkpoint is being written.
            if len(done) >= 3 and (writing or len(done) >= 5):
                os.kill(process.pid, signal.SIGKILL)
                killed_during_write = bool(writing)
                break
            time.sleep(0.001)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    assert not out.exists()
    done, _ = _step_dirs(directory)
    assert 3 <= max(map(int, done)) < n_iterations

    result = subprocess.run(command, env=env, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    resumed = json.loads(out.read_text())
    np.testing.assert_array_equal(np.asarray(resumed["y"], np.float32), np.asarray(full_state.y))
    assert resumed["best"] == float(full_state.y.max())
    assert _timeless(resumed["trials"]) == _timeless(full_trials)  # nothing lost, nothing repeated
    assert [t["trial"] for t in resumed["trials"]] == list(range(3 * n_iterations))
    print("killed during a checkpoint write:", killed_during_write)


@pytest.mark.slow
def test_bayesian_search_sweep_resumes_to_identical_results(tmp_path):
    hyperoptax = pytest.importorskip("hyperoptax")
    if not hasattr(hyperoptax, "BayesianSearch"):
        pytest.skip("hyperoptax.BayesianSearch is not available")
    space = {"x": hyperoptax.LinearSpace(-1.0, 1.0), "lr": hyperoptax.LogSpace(1e-4, 1e-1)}
    state, optimizer = hyperoptax.BayesianSearch.init(
        space, n_max=12, n_parallel=2, n_candidates=32, n_restarts=1, n_lbfgs_steps=2, n_hparam_steps=2
    )
    func_batched = jax.jit(jax.vmap(lambda key, p: -(p["x"] - 0.3) ** 2 - (jnp.log10(p["lr"]) + 2) ** 2,
                                    in_axes=(None, 0)))
    key = jax.random.key(3)

    def run(directory, n_iterations, template):
        with SweepCheckpointer(directory) as ckpt:
            return resumable_optimize(optimizer, template, key, func_batched, n_iterations, ckpt)

    full, full_trials = run(tmp_path / "full", 3, state)
    run(tmp_path / "split", 1, state)
    resumed, trials = run(tmp_path / "split", 3, state)
    _assert_trees_equal(resumed, full)
    assert resumed.space == state.space
    assert _timeless(trials) == _timeless(full_trials) and len(trials) == 6
    assert optimizer.best_result(resumed) == optimizer.best_result(full)
    # The search state restores onto an abstract template too.
    with SweepCheckpointer(tmp_path / "split") as ckpt:
        restored = ckpt.restore(jax.eval_shape(lambda: state))
    _assert_trees_equal(restored.search_state, full)
