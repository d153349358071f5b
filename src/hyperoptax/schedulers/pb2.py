"""PB2's explore step (Parker-Holder et al. 2020): a GP-UCB over (hyperparameters, time) -> improvement.

Each observation is one member's interval: the unit-cube coordinates of the hyperparameters it trained
with, the time the interval started (a fraction of the whole training), and the *improvement* of its metric
over that interval (measured from the metric of the weights it started from: its parent's, if it had just
copied). A GP on the GP core (:mod:`hyperoptax.gp`; Matérn-5/2 with an ARD length scale per coordinate, the
time's included, which lets old improvements count less) is fitted to the last ``window`` intervals, and each
exploiting member gets the point that maximizes UCB at the next interval's time. The members of one ready
step are chosen one after another, each pending choice conditioned on as an observation of its predicted
mean (the batch rule of GP-BUCB that PB2 uses), so they spread out. Everything is jittable, with
fixed-size, masked buffers: one compiled program serves every ready step.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hyperoptax import acqopt, gp, kernels
from hyperoptax import spaces as sp
from hyperoptax.acquisition import UCB
from hyperoptax.errors import ConfigurationError, check_positive_int

__all__ = ["PB2", "PB2Data", "pb2_data"]


class PB2Data(NamedTuple):
    """The observations of a ready step, in fixed-size buffers.

    Attributes:
        X: ``(capacity, n_dims + 1)`` unit-cube coordinates of the hyperparameters, then the time in [0, 1].
        y: ``(capacity,)`` improvements over an interval, maximized (negated when the metric is minimized).
        valid: ``(capacity,)`` bool, rows that hold an observation with a finite improvement.
        time: ``()`` the time of the interval the proposals are for.
    """

    X: jax.Array
    y: jax.Array
    valid: jax.Array
    time: jax.Array


def pb2_data(space, rows, capacity: int, time: float) -> PB2Data:
    """Buffers from ``rows``, a list of ``(time, values (n_params,), improvement)``, oldest first.

    The newest ``capacity`` rows are kept; a NaN/inf improvement is kept but masked.
    """
    check_positive_int("capacity", capacity)
    rows = list(rows)[-capacity:]
    n_params = sp.n_params(space)
    values = np.zeros((capacity, n_params), np.float32)
    times = np.zeros(capacity, np.float32)
    y = np.zeros(capacity, np.float32)
    for i, (t, v, improvement) in enumerate(rows):
        times[i], values[i], y[i] = t, v, improvement
    valid = np.isfinite(y) & (np.arange(capacity) < len(rows))
    U = np.asarray(sp.encode_rows(space, jnp.asarray(values), jnp.asarray(valid)), np.float32)
    X = np.concatenate([U, times[:, None]], axis=1)
    return PB2Data(jnp.asarray(X), jnp.asarray(np.where(valid, y, 0.0)), jnp.asarray(valid), jnp.float32(time))


@dataclasses.dataclass(frozen=True)
class PB2:
    """The GP-UCB of PB2.

    Attributes:
        kappa: UCB's exploration weight, ``mean + kappa * std``.
        window: intervals of observations the GP sees (the newest); older improvements say little about now.
        n_candidates: random points scored per proposal (plus the parent's own values).
        n_restarts, n_lbfgs_steps: L-BFGS refinements of the best candidates (0 restarts: candidates only).
        n_fit_steps: L-BFGS iterations fitting the GP's hyperparameters at each ready step.
    """

    kappa: float = 2.0
    window: int = 8
    n_candidates: int = 256
    n_restarts: int = 2
    n_lbfgs_steps: int = 10
    n_fit_steps: int = 30

    def __post_init__(self):
        if isinstance(self.kappa, bool) or not isinstance(self.kappa, (int, float)) or not self.kappa >= 0:
            raise ConfigurationError(f"PB2 kappa={self.kappa!r}: must be a number >= 0, e.g. 2.0.")
        for name in ("window", "n_candidates"):
            check_positive_int(name, getattr(self, name))
        for name in ("n_restarts", "n_lbfgs_steps", "n_fit_steps"):
            check_positive_int(name, getattr(self, name), minimum=0)

    @staticmethod
    def min_points(space) -> int:
        """Observations needed before the GP is used (else the parent's values are perturbed)."""
        return sp.n_dims(space) + 2

    def propose(self, key, space, data: PB2Data, parents, copied) -> jax.Array:
        """New values ``(n, n_params)`` for the ``copied`` members (the others keep ``parents``)."""
        model = gp.GPModel(kernels.Matern(length_scale=0.5, nu=2.5))
        kernel = model.kernel
        dtype = data.X.dtype
        n, d = parents.shape[0], data.X.shape[1]
        z, _, _ = gp.standardize(data.y, data.valid)
        params = gp.fit_hyperparameters(model, data.X, z, data.valid, model.init_params(d, 0.5, dtype),
                                        self.n_fit_steps, method="lbfgs").gp
        capacity = data.X.shape[0]
        # Room for this step's pending proposals after the observations.
        X = jnp.concatenate([data.X, jnp.zeros((n, d), dtype)])
        posterior = gp.condition(kernel, params, X, jnp.concatenate([z, jnp.zeros(n, dtype)]),
                                 jnp.concatenate([data.valid, jnp.zeros(n, bool)]))
        acquisition = UCB(self.kappa)
        snap = lambda V: sp.snap(space, V)  # noqa: E731
        own = sp.encode(space, parents).astype(dtype)

        def at_time(V):
            return jnp.concatenate([V, jnp.full((V.shape[0], 1), data.time, dtype)], axis=1)

        def choose(carry, j):
            posterior, n_pending, key = carry
            key, k_candidates = jax.random.split(key)
            candidates = jnp.concatenate([sp.sample_unit(space, k_candidates, self.n_candidates).astype(dtype),
                                          own[j][None]])

            def score(V, posterior=posterior):
                return acquisition(*gp.predict(kernel, posterior, at_time(V)))

            u = acqopt.maximize(score, candidates, self.n_restarts, self.n_lbfgs_steps, snap)
            mean, _ = gp.predict(kernel, posterior, at_time(u[None]))
            grown = gp.append(kernel, posterior, at_time(u[None])[0], mean[0], capacity + n_pending)
            posterior = jax.tree.map(lambda a, b: jnp.where(copied[j], a, b), grown, posterior)
            return (posterior, n_pending + copied[j].astype(jnp.int32), key), u

        _, U = jax.lax.scan(choose, (posterior, jnp.zeros((), jnp.int32), key), jnp.arange(n))
        proposed = sp.decode(space, U).astype(parents.dtype)
        return jnp.where(copied[:, None], proposed, parents)
