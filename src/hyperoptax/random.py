"""RandomSearch: independent uniform samples of the space (a strong baseline)."""

from __future__ import annotations

import dataclasses

import jax

from hyperoptax import spaces as sp
from hyperoptax.base import Optimizer, OptimizerState, empty_buffers

__all__ = ["RandomSearch"]


@dataclasses.dataclass(frozen=True)
class RandomSearch(Optimizer):
    """Samples each space independently; records results so ``best_*`` work.

    ``n_parallel`` (configurations per iteration) and ``maximize`` are the
    keyword-only options of every :class:`~hyperoptax.base.Optimizer`.
    """

    @classmethod
    def init(cls, space, n_max: int = 200, **kwargs):
        """Create ``(state, optimizer)``; ``n_max`` bounds the recorded history."""
        optimizer = cls(**kwargs)
        return OptimizerState(space=space, **empty_buffers(space, n_max)), optimizer

    def _next(self, state, key):
        U = jax.random.uniform(key, (self.n_parallel, sp.n_dims(state.space)), state.y.dtype)
        return sp.decode(state.space, U).astype(state.X.dtype)
