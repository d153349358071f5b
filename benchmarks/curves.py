"""Synthetic learning curves for the early-stopping benchmark: documented, parametric, instant.

A configuration ``x`` in ``[0, 1]^4`` has a final quality ``q(x)`` and a time constant ``tau(x)``; its
validation metric after ``t`` of ``T`` steps is

    f(x, t) = q(x) * (1 - exp(-(t / T) / tau(x)))  +  N(0, 0.003^2)

with ``q(x) = 0.10 + 0.85 * exp(-|x - c|^2 / 0.3)``, ``c = (0.7, 0.3, 0.6, 0.4)``: the best configuration
reaches 0.95 * (1 - exp(-1 / tau)). Two regimes:

* ``predictive``: ``tau = 0.15`` for every configuration: curves never cross, the ranking after a ninth of
  training is the final one;
* ``crossing``: ``tau(x) = 0.02 + 0.5 * ((q(x) - 0.10) / 0.85)^2``: the good configurations start slowly,
  the poor ones rise fast and plateau (after a ninth of training a configuration with ``q = 0.5`` leads one
  with ``q = 0.95``; they are level after a third; at the end the good one wins by 0.3).

:class:`CurveTrainer` evaluates these curves behind the interface of a
:class:`~hyperoptax.integrations.flax.PopulationTrainer` (``init_population``, ``train_and_evaluate``,
``refill``), so the benchmark runs the real :class:`~hyperoptax.integrations.flax.scheduled.ScheduledPopulation`
slot logic with no training.
"""

from __future__ import annotations

import numpy as np

import hyperoptax as hx

CENTER = np.array([0.7, 0.3, 0.6, 0.4])
SPACE = {f"x{i}": hx.LinearSpace(0.0, 1.0) for i in range(4)}
NOISE = 0.003
REGIMES = ("predictive", "crossing")


def quality(x):
    x = np.asarray(x, float)
    return 0.10 + 0.85 * np.exp(-np.sum((x - CENTER) ** 2, axis=-1) / 0.3)


def tau(x, regime):
    if regime == "predictive":
        return np.full(np.shape(x)[:-1], 0.15)
    return 0.02 + 0.5 * ((quality(x) - 0.10) / 0.85) ** 2


def final(x, regime):
    """The noiseless metric after all ``T`` steps: what a returned configuration is worth."""
    return quality(x) * (1 - np.exp(-1.0 / tau(x, regime)))


def best_final(regime) -> float:
    return float(final(CENTER, regime))


class CurveTrainer:
    """The curves behind a PopulationTrainer's slot interface; ``state`` is the slots' step counts."""

    static = ()

    def __init__(self, regime: str, max_steps: int, seed: int):
        self.regime, self.max_steps = regime, max_steps
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def _x(params):
        return np.stack([np.asarray(params[f"x{i}"], float) for i in range(4)], axis=-1)

    def init_population(self, keys, params):
        return np.zeros(len(keys), int)

    def refill(self, state, params, keys, mask):
        return np.where(np.asarray(mask), 0, state)

    def train_and_evaluate(self, state, params, n_steps):
        state = state + int(n_steps)
        x = self._x(params)
        t = state / self.max_steps
        value = quality(x) * (1 - np.exp(-t / tau(x, self.regime)))
        return state, value + NOISE * self.rng.standard_normal(len(state))
