"""Hyperparameter bookkeeping: the static/traced split, buckets of static values, unread names.

Numeric hyperparameters are traced: one compiled program serves every value.
Static ones change shapes or step counts, so members are grouped into buckets
of equal static values, each compiled once. User code sees both merged into one
dict (:func:`merge`); a :class:`UsageRecorder` in its place catches names that no
component reads.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from hyperoptax import spaces as sp
from hyperoptax.errors import ConfigurationError, HyperoptaxError, check_positive_int, closest

__all__ = [
    "TRAINER_STATIC",
    "UsageCheck",
    "UsageRecorder",
    "abstract",
    "bucket_config",
    "check_static_space",
    "group_by_static",
    "host_batch",
    "is_traced",
    "merge",
    "python_value",
    "split_static",
]

# Names the trainer itself reads when they are listed as static.
TRAINER_STATIC = ("batch_size", "n_steps")


def merge(hparams, static: Mapping):
    """The hyperparameters user code sees: traced arrays plus static Python values."""
    if not static:
        return hparams
    return {**hparams, **static}


def is_traced(tree) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree))


def python_value(value):
    """One member's static value as a hashable Python scalar (integral floats become ints)."""
    value = np.asarray(value).item()
    return int(value) if isinstance(value, float) and value.is_integer() else value


def abstract(tree):
    """Shape-dtype structs of ``tree``'s leaves, to trace user code without running it."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), tree)


# ---------------------------------------------------------------------------
# The static/traced split and buckets
# ---------------------------------------------------------------------------


def check_static_space(space, static: Sequence[str]) -> None:
    """Every static name is in ``space`` and has a discrete space (each value compiles a program)."""
    if not isinstance(space, Mapping):
        raise ConfigurationError("space= must be a dict of spaces when static names are given.")
    for name in static:
        if name not in space:
            raise ConfigurationError(
                f"static={static!r} names {name!r}, which is not in the search space "
                f"{sorted(space)}.{closest(name, space)}"
            )
        leaf = space[name]
        discrete = isinstance(leaf, (sp.DiscreteSpace, sp.QLinearSpace, sp.QLogSpace))
        if not discrete:
            raise ConfigurationError(
                f"Static hyperparameter {name!r} has the continuous space {leaf!r}: every distinct "
                f"value would compile a new program. Use DiscreteSpace or QLinearSpace for it, or "
                f"remove it from static= if it does not change shapes or step counts."
            )


def split_static(params, static: Sequence[str]):
    """``params`` -> (traced part, {static name: per-member values})."""
    if not static:
        return params, {}
    if not isinstance(params, Mapping):
        raise ConfigurationError(
            f"static={static!r} needs params to be a dict of hyperparameters, got {type(params).__name__}."
        )
    for name in static:
        if name not in params:
            raise ConfigurationError(
                f"static={static!r} names {name!r}, but the params have only {sorted(params)}."
                f"{closest(name, params)} Remove it from static= or add it to the search space."
            )
    return {k: v for k, v in params.items() if k not in static}, {k: params[k] for k in static}


def host_batch(params_batch):
    """A batch of hyperparameters as host arrays, and its ``n_parallel`` (the shared leading size)."""
    leaves = jax.tree.leaves(params_batch)
    if not leaves:
        raise ConfigurationError("params_batch is empty; pass the pytree returned by get_next_params.")
    host = jax.tree.map(np.asarray, params_batch)
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(host)}
    if len(sizes) != 1 or None in sizes:
        raise ConfigurationError(
            f"Every params_batch leaf must have the same leading n_parallel axis, got leading sizes {sizes}."
        )
    return host, sizes.pop()


def group_by_static(static_values: Mapping, n: int):
    """Members grouped by static values: a list of ``(static dict, member indices)``, in a fixed order."""
    groups = {}
    for i in range(n):
        static = tuple((k, python_value(v[i])) for k, v in static_values.items())
        groups.setdefault(static, []).append(i)
    return [(dict(s), np.asarray(idx)) for s, idx in sorted(groups.items())]


def bucket_config(static: Mapping, batch_size: int, n_steps: int):
    """Batch size and step count of a bucket: its static values override the trainer's defaults."""
    batch_size = int(static.get("batch_size", batch_size))
    n_steps = int(static.get("n_steps", n_steps))
    check_positive_int("batch_size", batch_size)
    check_positive_int("n_steps", n_steps, minimum=0)
    return batch_size, n_steps


# ---------------------------------------------------------------------------
# Unread hyperparameters
# ---------------------------------------------------------------------------


class UsageRecorder(dict):
    """A dict that remembers which keys user code read, to catch unused hyperparameters."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.used = set()

    def __getitem__(self, name):
        self.used.add(name)
        return super().__getitem__(name)

    def get(self, name, default=None):
        self.used.add(name)
        return super().get(name, default)

    def _all(self):
        self.used.update(super().keys())

    def keys(self):
        self._all()
        return super().keys()

    def items(self):
        self._all()
        return super().items()

    def values(self):
        self._all()
        return super().values()

    def __iter__(self):
        self._all()
        return super().__iter__()


class UsageCheck:
    """Raises ConfigurationError for hyperparameters no component reads; checks each signature once."""

    def __init__(self):
        self._checked = set()  # hyperparameter signatures already checked

    def __call__(self, run_member: Callable, traced_one, static: Mapping, allow_unused=frozenset()) -> None:
        """Trace ``run_member(key, hparams)`` abstractly, ``hparams`` a recorder over one member's values.

        ``run_member`` should call every component that reads hyperparameters;
        names in ``allow_unused`` may go unread. A failure other than a
        :class:`HyperoptaxError` skips the check: the real call raises the
        user's error with its own traceback.
        """
        if not isinstance(traced_one, Mapping):
            return
        signature = (tuple(sorted(traced_one)), tuple(sorted(static.items())))
        if signature in self._checked:
            return
        recorders = []

        def traced(key, hp):
            recorder = UsageRecorder(merge(hp, static))
            recorders.append(recorder)
            return run_member(key, recorder)

        try:
            jax.eval_shape(traced, jax.random.key(0), abstract(traced_one))
        except HyperoptaxError:
            raise
        except Exception:  # noqa: BLE001 - see the docstring
            return
        used = set().union(*(r.used for r in recorders)) | {n for n in static if n in TRAINER_STATIC}
        unused = [n for n in list(traced_one) + list(static) if n not in used and n not in allow_unused]
        if unused:
            raise ConfigurationError(
                f"Hyperparameter(s) {unused} are never read by model_fn, optimizer_fn or loss_fn, so "
                f"searching them would be wasted. Read them (e.g. hparams[{unused[0]!r}] in optimizer_fn), "
                f"remove them from the space, or pass allow_unused={tuple(unused)!r}."
            )
        self._checked.add(signature)
