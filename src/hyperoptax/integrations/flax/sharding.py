"""Sharding of the population: the mesh, device placement, host gather, the compiled-program cache.

The population axis is split over every device of every process (a 1-D mesh,
axis ``"population"``); data is replicated. :func:`population_program` turns a
per-member function into one that maps the whole population, and
:class:`Programs` compiles each program once per cache key and counts compiles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Hashable

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from hyperoptax.errors import ConfigurationError

__all__ = ["AXIS", "Programs", "check_population_size", "host", "population_mesh", "population_program", "put"]

AXIS = "population"


def population_mesh() -> Mesh:
    """A 1-D mesh over every device of every process, axis ``'population'``."""
    return Mesh(np.asarray(jax.devices()), (AXIS,))


def check_population_size(n: int) -> None:
    """``n`` members split evenly over the devices, or a ConfigurationError naming a size that does."""
    d = jax.device_count()
    if n % d:
        raise ConfigurationError(
            f"n_parallel={n} is not a multiple of the {d} devices the population is sharded over. "
            f"Use n_parallel={d * max(1, round(n / d))} (a multiple of {d})."
        )


def put(tree, mesh: Mesh, spec: P):
    """Host or device values -> global arrays with ``spec`` over ``mesh`` (each process holds the full value)."""
    sharding = NamedSharding(mesh, spec)

    def put_leaf(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return x if x.sharding == sharding else jax.jit(lambda a: a, out_shardings=sharding)(x)
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

    return jax.tree.map(put_leaf, tree)


def host(x) -> np.ndarray:
    """A (possibly multi-process) global array as one host array, the same in every process."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def population_program(member_fn: Callable, mesh: Mesh, n_population: int, n_replicated: int) -> Callable:
    """``shard_map(vmap(member_fn))``, a function of the whole population.

    The first ``n_population`` arguments carry the population axis (split across
    ``mesh``); the last ``n_replicated`` (the data) are shared by every member.
    """
    in_axes = (0,) * n_population + (None,) * n_replicated
    batched = jax.vmap(member_fn, in_axes=in_axes)
    in_specs = (P(AXIS),) * n_population + (P(),) * n_replicated
    return jax.shard_map(batched, mesh=mesh, in_specs=in_specs, out_specs=P(AXIS), check_vma=False)


class Programs(Mapping):
    """Compiled executables by cache key: each built, jitted and compiled once.

    A read-only mapping ``cache key -> jax.stages.Compiled``; :meth:`compile`
    adds to it. ``n_compiles`` counts the programs compiled.
    """

    def __init__(self):
        self._compiled: dict[Hashable, Any] = {}
        self.n_compiles = 0

    def compile(self, cache_key: Hashable, build: Callable[[], Callable], args: tuple):
        """The program for ``cache_key``; on a miss ``jit(build())`` is compiled for ``args``."""
        if cache_key not in self._compiled:
            self._compiled[cache_key] = jax.jit(build()).lower(*args).compile()
            self.n_compiles += 1
        return self._compiled[cache_key]

    def __getitem__(self, cache_key):
        return self._compiled[cache_key]

    def __iter__(self):
        return iter(self._compiled)

    def __len__(self):
        return len(self._compiled)
