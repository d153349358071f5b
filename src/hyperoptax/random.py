"""RandomSearch: independent uniform samples of the space (a strong baseline)."""

from __future__ import annotations

import dataclasses
import warnings

import jax

from hyperoptax import spaces as sp
from hyperoptax.base import Optimizer, OptimizerState, empty_buffers
from hyperoptax.errors import HyperoptaxWarning

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

    def update_state(self, state, key, results, params=None):
        """Record results (see :meth:`Optimizer.update_state`).

        Without ``params`` (hyperoptax 0.2.0's memoryless call) nothing can be
        recorded: the state is returned unchanged, with a warning, and
        ``best_*`` will not see those results.
        """
        if params is None:
            self._check_results(results)
            warnings.warn(
                "RandomSearch.update_state(state, key, results) without params records nothing: best_result and "
                "best_params will not see these results. Pass the params from get_next_params to record them.",
                HyperoptaxWarning,
                stacklevel=2,
            )
            return state
        return super().update_state(state, key, results, params)

    def _next(self, state, key):
        U = jax.random.uniform(key, (self.n_parallel, sp.n_dims(state.space)), state.y.dtype)
        return sp.decode(state.space, U).astype(state.X.dtype)
