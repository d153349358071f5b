"""Checkpoint and resume a sweep with Orbax.

:class:`SweepCheckpointer` keeps the last ``max_to_keep`` checkpoints of a
sweep in one directory. Each checkpoint holds

* ``search``: the search state (any pytree of arrays, e.g. a
  ``BayesianSearchState``; static fields such as the space live in the
  treedef and are not written),
* ``population``: optionally, the population's train states (params, optax
  states, step counters, PRNG keys),
* ``metadata``: a JSON dict of the caller's (iteration, trial records, ...),
* ``hyperoptax``: a manifest of every array leaf (path, shape, dtype, CRC32)
  used to tell a corrupt checkpoint from a run whose configuration changed.

Arrays are written as a flat ``{"leaf_00000": array, ...}`` dict through
``ocp.args.StandardSave`` and restored onto a template: the freshly ``init``-ed
state or its ``jax.eval_shape``. Typed PRNG keys (``jax.random.key``) are
stored as their ``key_data`` and re-wrapped on restore.

Atomicity comes from Orbax: a step is written to
``<step>.orbax-checkpoint-tmp`` and renamed to ``<step>`` only once every file
and ``commit_success.txt`` is written. Unfinished temporary directories are
never listed as steps and are removed when the next checkpointer opens the
directory. A finalized step can still be damaged afterwards (disk full, a
partial copy, a half-deleted step); ``restore()`` then warns, moves the bad
step to ``<directory>/corrupt/`` (nothing is deleted) and restores the newest
step that reads back cleanly.

:func:`resumable_optimize` runs a search loop that checkpoints after every
iteration and, started again on the same directory, continues where it
stopped with the same per-iteration keys, so its results equal those of an
uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zlib
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

try:
    import orbax.checkpoint as ocp
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "hyperoptax.integrations.orbax needs orbax-checkpoint. "
        "Install it with `pip install 'hyperoptax[flax]'`."
    ) from err

from hyperoptax import sweep
from hyperoptax._keys import is_key
from hyperoptax.errors import CheckpointError, ConfigurationError, check_positive_int

__all__ = ["Restored", "SweepCheckpointer", "resumable_optimize"]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1
_MANIFEST_ITEM = "hyperoptax"
_METADATA_ITEM = "metadata"
_FRESH_HINT = "To start over, delete the checkpoint directory or point the run at a new one."


class Restored(NamedTuple):
    """What :meth:`SweepCheckpointer.restore` returns.

    Attributes:
      step: the step that was restored.
      search_state: the search state, structured like the search template.
      population_state: the population state, or None when no population
        template was given or the checkpoint holds no population.
      metadata: the JSON metadata saved with the step (``{}`` if none).
    """

    step: int
    search_state: Any
    population_state: Any
    metadata: dict


# ---------------------------------------------------------------------------
# pytree <-> flat dict of arrays, with a manifest describing every leaf


def _leaf_entries(tree) -> list[tuple[str, Any]]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in leaves]


def _crc32(array) -> int | None:
    if not getattr(array, "is_fully_addressable", True):
        return None  # spread over hosts: no single process can read all of it
    return zlib.crc32(np.ascontiguousarray(np.asarray(array)).tobytes())


def _to_storable(leaf):
    """(array to write, manifest entry) for one leaf of a state being saved."""
    key_impl = None
    if is_key(leaf):
        key_impl = str(jax.random.key_impl(leaf))
        dtype = str(leaf.dtype)
        shape = tuple(leaf.shape)
        leaf = jax.random.key_data(leaf)
    elif isinstance(leaf, jax.Array):
        dtype, shape = str(leaf.dtype), tuple(leaf.shape)
    else:
        # Copy host values: an async save must not see later in-place edits.
        leaf = np.array(leaf, copy=True)
        dtype, shape = str(leaf.dtype), tuple(leaf.shape)
    entry = {"shape": list(shape), "dtype": dtype, "key_impl": key_impl}
    return leaf, entry


def _flatten_for_save(tree) -> tuple[dict, list[dict]]:
    arrays, manifest = {}, []
    for i, (path, leaf) in enumerate(_leaf_entries(tree)):
        stored, entry = _to_storable(leaf)
        entry["path"] = path
        entry["crc32"] = _crc32(stored)
        arrays[f"leaf_{i:05d}"] = stored
        manifest.append(entry)
    return arrays, manifest


def _template_entry(path: str, leaf) -> dict:
    if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
        leaf = np.asarray(leaf)
    return {"path": path, "shape": list(leaf.shape), "dtype": str(leaf.dtype)}


def _default_sharding():
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def _restore_target(leaf, stored_entry: dict):
    """ShapeDtypeStruct to restore one leaf onto, honouring the template's sharding."""
    if is_key(leaf):
        data = jax.eval_shape(jax.random.key_data, leaf)
        sharding = None
        if isinstance(leaf, jax.Array):
            sharding = jax.random.key_data(leaf).sharding
        return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=sharding or _default_sharding())
    if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct)):
        sharding = getattr(leaf, "sharding", None) or _default_sharding()
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)
    # numpy / Python scalars: restored as host numpy, as they were written
    array = np.asarray(leaf)
    return jax.ShapeDtypeStruct(array.shape, array.dtype)


def _uncommitted(template_leaf) -> bool:
    """Whether the template leaf is a default-placed array (no device chosen)."""
    if isinstance(template_leaf, jax.Array):
        return not template_leaf.committed
    return isinstance(template_leaf, jax.ShapeDtypeStruct) and template_leaf.sharding is None


def _from_stored(template_leaf, stored, stored_entry: dict):
    if isinstance(template_leaf, (jax.Array, jax.ShapeDtypeStruct)) and _uncommitted(template_leaf):
        # Orbax places restored arrays explicitly ("committed"); jitted functions
        # compiled for the freshly init-ed state would compile again for those.
        # Give them back uncommitted, like the template.
        stored = jnp.asarray(np.asarray(stored))
    if is_key(template_leaf):
        impl = stored_entry.get("key_impl")
        if isinstance(template_leaf, jax.Array):
            impl = jax.random.key_impl(template_leaf)
        return jax.random.wrap_key_data(stored, impl=impl)
    if isinstance(template_leaf, (jax.Array, jax.ShapeDtypeStruct)):
        return stored
    if isinstance(template_leaf, (bool, int, float, complex)):
        return type(template_leaf)(np.asarray(stored).item())
    return np.asarray(stored)


def _describe_mismatch(name: str, template: list[dict], stored: list[dict]) -> list[str]:
    problems = []
    stored_by_path = {e["path"]: e for e in stored}
    template_paths = {e["path"] for e in template}
    for entry in template:
        other = stored_by_path.get(entry["path"])
        if other is None:
            problems.append(f"{name}{entry['path']} is not in the checkpoint")
        elif (other["shape"], other["dtype"]) != (entry["shape"], entry["dtype"]):
            problems.append(
                f"{name}{entry['path']}: checkpoint has {other['dtype']}{tuple(other['shape'])}, "
                f"this run expects {entry['dtype']}{tuple(entry['shape'])}"
            )
    for entry in stored:
        if entry["path"] not in template_paths:
            problems.append(f"{name}{entry['path']} is in the checkpoint but not in this run's state")
    if not problems and [e["path"] for e in template] != [e["path"] for e in stored]:
        problems.append(f"{name}: the leaves are in a different order")
    return problems


class _ConfigChanged(Exception):
    pass


class _Damaged(Exception):
    """A step's files do not read back (missing, truncated, unparsable, failing their checksums)."""


# What reading damaged files raises (Orbax, TensorStore, the JSON parser). Anything else -- a TypeError
# or AttributeError from a bad template or a bug -- is not evidence against the checkpoint and propagates.
_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, RuntimeError)


def _read(what: str, read: Callable):
    """``read()``, with a read failure reported as damage to the step."""
    try:
        return read()
    except _READ_ERRORS as err:
        raise _Damaged(f"{what}: {type(err).__name__}: {err}") from err


# ---------------------------------------------------------------------------


class SweepCheckpointer:
    """Saves and restores a sweep's search state and population with Orbax.

    Args:
      directory: where the step directories live (created if missing).
      max_to_keep: how many of the newest checkpoints to keep on disk.
      checkpoint_every: if set, :meth:`save` only writes steps that are a
        multiple of it, unless called with ``force=True``. None writes every
        call.
      async_save: write in a background thread (Orbax's async checkpointing);
        :meth:`wait_until_finished` / :meth:`close` wait for it.

    **Steps.** ``step`` is a monotone counter chosen by the caller; each call to
    :meth:`save` must use a larger step than the last checkpoint on disk.
    :func:`resumable_optimize` and the ``hyperoptax tune`` driver save once per
    iteration, after it completes, at ``step = iterations completed``.

    Use as a context manager, or call :meth:`close` when done.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        max_to_keep: int | None = 3,
        checkpoint_every: int | None = None,
        async_save: bool = True,
    ):
        if max_to_keep is not None:
            check_positive_int("max_to_keep", max_to_keep)
        if checkpoint_every is not None:
            check_positive_int("checkpoint_every", checkpoint_every)
        self.directory = os.path.abspath(os.fspath(directory))
        self.max_to_keep = max_to_keep
        self.checkpoint_every = checkpoint_every
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep,
                create=True,
                # Leftovers of a save killed midway; never listed as steps.
                cleanup_tmp_directories=True,
                enable_async_checkpointing=async_save,
            ),
        )

    # -- saving ------------------------------------------------------------

    def save(
        self,
        step: int,
        *,
        search_state,
        population_state=None,
        metadata: dict | None = None,
        force: bool = False,
    ) -> bool:
        """Write a checkpoint at ``step``; returns whether one was written.

        ``metadata`` must be JSON-serializable (lists, dicts, str, numbers;
        NaN is written as the non-standard ``NaN`` token). With
        ``checkpoint_every`` set, steps that are not a multiple of it are
        skipped unless ``force``.
        """
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ConfigurationError(f"step must be an integer >= 0, got {step!r}.")
        step = int(step)
        if not force and self.checkpoint_every and step % self.checkpoint_every:
            return False
        latest = self.latest_step()
        if latest is not None and step <= latest:
            raise CheckpointError(
                f"Cannot save step {step}: {self.directory} already holds step {latest}, "
                f"and steps must increase (e.g. use the number of completed iterations). {_FRESH_HINT}"
            )
        if metadata is not None and not isinstance(metadata, dict):
            raise ConfigurationError(
                f"metadata must be a JSON dict, got {type(metadata).__name__}. "
                "Pass e.g. metadata={'iteration': 3}."
            )
        try:
            json.dumps(metadata or {})
        except (TypeError, ValueError) as err:
            raise ConfigurationError(
                f"metadata must be JSON-serializable: {err}. Convert arrays with "
                "`.tolist()` and numpy scalars with `float()` / `int()`."
            ) from None
        manifest = {"format": _FORMAT_VERSION, "step": step, "items": {}}
        items = {}
        for name, state in (("search", search_state), ("population", population_state)):
            if state is None:
                continue
            arrays, manifest["items"][name] = _flatten_for_save(state)
            if arrays:
                items[name] = ocp.args.StandardSave(arrays)
        items[_MANIFEST_ITEM] = ocp.args.JsonSave(manifest)
        items[_METADATA_ITEM] = ocp.args.JsonSave(dict(metadata or {}))
        saved = self._manager.save(step, args=ocp.args.Composite(**items), force=True)
        if not saved:  # pragma: no cover - force=True always saves
            raise CheckpointError(f"Orbax declined to save step {step} in {self.directory}.")
        return True

    # -- reading -----------------------------------------------------------

    def all_steps(self) -> list[int]:
        """Finalized steps on disk, oldest first."""
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest finalized step, or None if the directory holds none."""
        return self._manager.latest_step()

    def restore(self, search_template, population_template=None, *, step: int | None = None) -> Restored:
        """Restore a checkpoint onto templates of the states.

        Args:
          search_template: a search state of the run's configuration (e.g.
            the freshly ``init``-ed one) or its ``jax.eval_shape``. The
            restored state has its structure, static fields and shardings.
          population_template: the same for the population, or None to skip it.
          step: the step to restore; None restores the newest one that reads
            back cleanly. Newer steps that do not are reported with a warning
            and moved to ``<directory>/corrupt/`` (so the sweep can save
            those step numbers again).

        Raises:
          CheckpointError: no checkpoint, none readable, or the checkpoint was
            written by a run with a different configuration (shapes, dtypes or
            structure of the states differ).
        """
        self.wait_until_finished()
        # The templates are checked before any step is read: an error in them (or in this code) is raised
        # as it is and never taken for a damaged checkpoint, so nothing is moved aside.
        for template in (search_template, population_template):
            if template is not None:
                for path, leaf in _leaf_entries(template):
                    _restore_target(leaf, _template_entry(path, leaf))
        steps = self.all_steps()
        if step is not None:
            if step not in steps:
                raise CheckpointError(
                    f"No checkpoint at step {step} in {self.directory}; available steps: {steps}."
                )
            try:
                return self._restore_step(step, search_template, population_template)
            except _ConfigChanged as err:
                raise CheckpointError(str(err)) from None
            except _Damaged as err:
                raise CheckpointError(f"Checkpoint step {step} in {self.directory} is unreadable ({err}).") from err
        if not steps:
            raise CheckpointError(f"No checkpoint to restore in {self.directory}.")
        failures = []
        for candidate in reversed(steps):
            try:
                restored = self._restore_step(candidate, search_template, population_template)
            except _ConfigChanged as err:
                raise CheckpointError(str(err)) from None
            except _Damaged as err:  # only a failure to read the step's files counts against it
                logger.warning(
                    "Checkpoint step %d in %s is corrupt or truncated and will be skipped: %s",
                    candidate, self.directory, err,
                )
                failures.append((candidate, err))
                continue
            for bad_step, _ in failures:
                self._quarantine(bad_step)
            return restored
        details = "; ".join(f"step {s}: {e}" for s, e in failures)
        raise CheckpointError(
            f"None of the checkpoints in {self.directory} could be restored ({details}). "
            f"{_FRESH_HINT}"
        )

    def _restore_step(self, step, search_template, population_template) -> Restored:
        header = _read("reading the manifest and metadata", lambda: self._manager.restore(
            step,
            args=ocp.args.Composite(
                **{_MANIFEST_ITEM: ocp.args.JsonRestore(), _METADATA_ITEM: ocp.args.JsonRestore()}
            ),
        ))
        manifest = header[_MANIFEST_ITEM]
        metadata = header[_METADATA_ITEM]
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT_VERSION:
            raise _Damaged(f"unrecognised manifest {manifest!r:.200}")
        if not isinstance(metadata, dict):
            raise _Damaged(f"metadata is {type(metadata).__name__}, not a dict")
        stored_items = manifest.get("items")
        if not isinstance(stored_items, dict):
            raise _Damaged(f"the manifest has no items: {manifest!r:.200}")

        templates = {"search": search_template}
        if population_template is not None and "population" in stored_items:
            templates["population"] = population_template
        problems = []
        plans = {}
        for name, template in templates.items():
            entries = _leaf_entries(template)
            expected = [_template_entry(p, leaf) for p, leaf in entries]
            stored = stored_items.get(name)
            if stored is None:
                problems.append(f"the checkpoint holds no {name} state")
                continue
            try:
                mismatch = _describe_mismatch(name, expected, stored)
            except (KeyError, TypeError, AttributeError) as err:  # the manifest on disk, not the template
                raise _Damaged(f"malformed manifest entry for {name}: {type(err).__name__}: {err}") from err
            problems.extend(mismatch)
            if not mismatch:
                plans[name] = (template, entries, stored)
        if problems:
            shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
            raise _ConfigChanged(
                f"The checkpoint at step {step} in {self.directory} was written by a run with a "
                f"different configuration (e.g. n_max, n_parallel, the search space or the model "
                f"changed): {shown}. {_FRESH_HINT}"
            )

        # Leaves are named by position; the manifests matched, so positions agree.
        args = {
            name: ocp.args.StandardRestore(
                {f"leaf_{i:05d}": _restore_target(leaf, entry)
                 for i, ((_, leaf), entry) in enumerate(zip(entries, stored))}
            )
            for name, (_, entries, stored) in plans.items()
            if entries
        }
        arrays = _read("reading the arrays", lambda: self._manager.restore(step, args=ocp.args.Composite(**args))) if args else {}

        states = {}
        for name, (template, entries, stored) in plans.items():
            new_leaves = []
            for i, ((path, leaf), entry) in enumerate(zip(entries, stored)):
                value = arrays[name][f"leaf_{i:05d}"]
                if list(np.shape(value)) != list(_restore_target(leaf, entry).shape):
                    raise _Damaged(f"{name}{path} came back with shape {np.shape(value)}")
                if entry.get("crc32") is not None:
                    crc = _crc32(value)
                    if crc is not None and crc != entry["crc32"]:
                        raise _Damaged(f"{name}{path}: checksum mismatch (data corrupted on disk)")
                new_leaves.append(_from_stored(leaf, value, entry))
            treedef = jax.tree_util.tree_structure(template)
            states[name] = jax.tree_util.tree_unflatten(treedef, new_leaves)
        return Restored(step, states["search"], states.get("population"), metadata)

    def _quarantine(self, step: int) -> None:
        if jax.process_index() != 0:
            return
        source = os.path.join(self.directory, str(step))
        target_dir = os.path.join(self.directory, "corrupt")
        os.makedirs(target_dir, exist_ok=True)
        target = os.path.join(target_dir, f"{step}-{time.time_ns()}")
        try:
            os.replace(source, target)
        except OSError as err:
            logger.warning("Could not move corrupt checkpoint %s aside: %s", source, err)
            return
        logger.warning("Moved corrupt checkpoint step %d to %s", step, target)
        self._manager.reload()

    # -- lifecycle ---------------------------------------------------------

    def wait_until_finished(self) -> None:
        """Block until pending asynchronous saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release Orbax's resources."""
        self._manager.close()

    def __enter__(self) -> "SweepCheckpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SweepCheckpointer({self.directory!r}, max_to_keep={self.max_to_keep})"


# ---------------------------------------------------------------------------
# a resumable search loop


def _key_record(key) -> dict:
    if is_key(key):
        return {"data": np.asarray(jax.random.key_data(key)).ravel().tolist(),
                "impl": str(jax.random.key_impl(key))}
    return {"data": np.asarray(key).ravel().tolist(), "impl": None}


def resumable_optimize(
    optimizer,
    state,
    key,
    func_batched: Callable,
    n_iterations: int,
    checkpointer: SweepCheckpointer,
    *,
    metadata: dict | None = None,
):
    """Run ``n_iterations`` of suggest / evaluate / update, checkpointing each one.

    Iteration ``i`` runs :func:`hyperoptax.sweep.run`'s step with
    ``k_suggest, k_eval, k_update = jax.random.split(jax.random.fold_in(key, i), 3)``::

        params = optimizer.get_next_params(state, k_suggest)   # leaves (n_parallel, ...)
        results = func_batched(k_eval, params)                   # (n_parallel,)
        state = optimizer.update_state(state, k_update, results, params)

    and then saves a checkpoint at step ``i + 1`` (the number of completed
    iterations) holding the state and, in its metadata, the trial records of
    every iteration so far. If ``checkpointer`` already holds a checkpoint,
    the loop first restores it onto ``state`` (which serves as the template)
    and continues after the last completed iteration; since the keys depend
    only on ``key`` and the iteration, the results equal those of an
    uninterrupted run. ``n_iterations`` is the total, counting the restored
    iterations.

    Returns:
      ``(state, trials)``: the final search state and one
      :class:`~hyperoptax.sweep.TrialRecord` per evaluated configuration
      (``metric`` None and status ``"failed"`` for NaN/inf; ``params`` decoded
      with the state's ``space`` when it has one).

    Raises:
      CheckpointError: the checkpoint was written with another key or another
        configuration.
    """
    check_positive_int("n_iterations", n_iterations, minimum=0)
    key_record = _key_record(key)
    start, trials = 0, []
    if checkpointer.latest_step() is not None:
        restored = checkpointer.restore(state)
        info = restored.metadata.get("resumable_optimize")
        if not isinstance(info, dict):
            raise CheckpointError(
                f"The checkpoint at step {restored.step} in {checkpointer.directory} was not "
                f"written by resumable_optimize. {_FRESH_HINT}"
            )
        if info.get("key") != key_record:
            raise CheckpointError(
                f"The checkpoint in {checkpointer.directory} belongs to a sweep with another key "
                f"(saved {info.get('key')}, this run {key_record}); resuming it would not reproduce "
                f"that sweep. Pass the original seed. {_FRESH_HINT}"
            )
        start = int(info["iterations_done"])
        trials = list(info["trials"])
        if start != restored.step:
            raise CheckpointError(
                f"Checkpoint step {restored.step} records {start} completed iterations; "
                f"the directory {checkpointer.directory} is inconsistent. {_FRESH_HINT}"
            )
        state = restored.search_state
        logger.info("Resuming sweep from %s after iteration %d", checkpointer.directory, start)

    search = sweep.BoundOptimizer(optimizer, state)

    def save(iteration):
        trials.extend(sweep.trial_records(len(trials), iteration, search.configs(iteration.params)))
        done = iteration.index + 1
        checkpointer.save(done, search_state=search.state, force=True, metadata={
            **(metadata or {}),
            "resumable_optimize": {"iterations_done": done, "key": key_record, "trials": trials},
        })

    sweep.run(search, func_batched, key, range(start, n_iterations), save)
    state = search.state
    checkpointer.wait_until_finished()
    return state, trials
