"""GridSearch: every combination of a finite space, in order or shuffled."""

from __future__ import annotations

import dataclasses
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from hyperoptax import spaces as sp
from hyperoptax.base import Optimizer, OptimizerState, empty_buffers
from hyperoptax.errors import SpaceError

__all__ = ["GridSearch", "GridSearchState"]

_MAX_GRID = 10_000_000


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GridSearchState(OptimizerState):
    """State for :class:`GridSearch`.

    Attributes:
        grid: ``(n_total, n_params)`` all combinations (stored values).
        grid_idx: next position in ``grid``; advanced by ``n_parallel`` per update.
    """

    grid: jax.Array = None
    grid_idx: jax.Array = 0


def _grid_values(leaf: sp.Space, path: str) -> list[float]:
    if isinstance(leaf, sp.DiscreteSpace):
        if leaf.is_categorical:
            return list(range(len(leaf.values)))
        return sorted(float(v) for v in leaf.values)
    if isinstance(leaf, (sp.QLinearSpace, sp.QLogSpace)):
        lo, hi = leaf._int_bounds()
        return list(range(lo, hi + 1))
    raise SpaceError(
        f"GridSearch needs finite spaces, but {path} is {leaf!r}. Use DiscreteSpace([...]) with the values "
        f"to try, an integer space (QLinearSpace/QLogSpace), or BayesianSearch/RandomSearch for continuous ranges."
    )


@dataclasses.dataclass(frozen=True)
class GridSearch(Optimizer):
    """Exhaustive search over DiscreteSpace and integer-space leaves.

    Attributes:
        shuffle: randomize the traversal order at ``init`` (pass ``key``).

    ``n_parallel`` grid points are taken per iteration, and each
    ``update_state`` advances by one batch; ``update_state(state, key, results)``
    without params records the results against the current batch. When the grid
    is exhausted the traversal wraps around (every point is evaluated once before
    any repeats). ``maximize`` as for every optimizer.
    """

    shuffle: bool = False

    @classmethod
    def init(cls, space, key=None, n_max: int | None = None, **kwargs):
        """Create ``(state, optimizer)``; ``n_max`` defaults to the grid size."""
        optimizer = cls(**kwargs)
        leaves, _ = sp.space_leaves(space)
        paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(space, is_leaf=lambda x: isinstance(x, sp.Space))[0]]
        axes = [_grid_values(leaf, path or "the space") for leaf, path in zip(leaves, paths)]
        size = math.prod(len(a) for a in axes)
        if size > _MAX_GRID:
            raise SpaceError(f"The grid has {size} points (> {_MAX_GRID}). Coarsen the spaces or use BayesianSearch.")
        grid = jnp.asarray(np.array(list(itertools.product(*axes)), dtype=float).reshape(size, len(axes)), jnp.zeros(()).dtype)
        if optimizer.shuffle:
            grid = jax.random.permutation(jax.random.key(0) if key is None else key, grid)
        buffers = empty_buffers(space, size if n_max is None else n_max)
        state = GridSearchState(space=space, **buffers, grid=grid, grid_idx=jnp.zeros((), jnp.int32))
        return state, optimizer

    def default_n_iterations(self, state) -> int:
        done = 0 if isinstance(state.grid_idx, jax.core.Tracer) else int(state.grid_idx)
        remaining = state.grid.shape[0] - done
        return max(0, math.ceil(remaining / self.n_parallel))

    def _next(self, state, key):
        idx = (state.grid_idx + jnp.arange(self.n_parallel)) % state.grid.shape[0]
        return state.grid[idx]

    def _batch_params(self, state, m):
        # Without params, the results are those of the batch get_next_params returns now.
        return self._next(state, None)[:m] if m <= self.n_parallel else super()._batch_params(state, m)

    def _learn(self, state, key, previous):
        # One update consumes one batch, however many of its results were reported.
        return state.replace(grid_idx=state.grid_idx + self.n_parallel)
