"""Standard test functions for the search benchmark (all minimized).

Each function is written once in ``jax.numpy`` on a point ``x`` of shape ``(d,)`` and returns a
scalar, so it works under ``jit`` and ``vmap``. :meth:`TestFunction.evaluate` turns it into a plain
``float`` for numpy / Optuna callers; it evaluates in float64 (inside ``jax.enable_x64``) so that
simple regrets near the optimum are not swamped by float32 rounding.

Definitions, domains and optima follow the Virtual Library of Simulation Experiments
(Surjanovic & Bingham, https://www.sfu.ca/~ssurjano/optimization.html). The optimum values below are
the functions evaluated in float64 at their known minimizers (``python benchmarks/functions.py``
checks this and that a local optimizer started there finds nothing lower).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class TestFunction:
    """A benchmark function with its box domain and global minimum."""

    name: str
    bounds: tuple[tuple[float, float], ...]
    optimum: float
    minimizers: tuple[tuple[float, ...], ...]
    fn: Callable[[jax.Array], jax.Array]
    _jitted: dict = field(default_factory=dict, repr=False, compare=False)

    __test__ = False  # not a pytest class

    @property
    def dim(self) -> int:
        return len(self.bounds)

    def evaluate(self, x) -> float:
        """``fn(x)`` as a Python float, computed in float64."""
        with jax.enable_x64(True):
            if "f64" not in self._jitted:
                self._jitted["f64"] = jax.jit(self.fn)
            return float(self._jitted["f64"](jnp.asarray(np.asarray(x, dtype=np.float64))))

    def regret(self, value: float) -> float:
        return float(value) - self.optimum


# --- Branin (2-D) -----------------------------------------------------------------------------


def branin(x):
    x1, x2 = x[0], x[1]
    b = 5.1 / (4.0 * math.pi**2)
    c = 5.0 / math.pi
    t = 1.0 / (8.0 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6.0) ** 2 + 10.0 * (1.0 - t) * jnp.cos(x1) + 10.0


# --- Hartmann family (3-D and 6-D) -----------------------------------------------------------------

_HARTMANN_ALPHA = (1.0, 1.2, 3.0, 3.2)
_HARTMANN3_A = (
    (3.0, 10.0, 30.0),
    (0.1, 10.0, 35.0),
    (3.0, 10.0, 30.0),
    (0.1, 10.0, 35.0),
)
_HARTMANN3_P = (
    (0.3689, 0.1170, 0.2673),
    (0.4699, 0.4387, 0.7470),
    (0.1091, 0.8732, 0.5547),
    (0.0381, 0.5743, 0.8828),
)
_HARTMANN6_A = (
    (10.0, 3.0, 17.0, 3.5, 1.7, 8.0),
    (0.05, 10.0, 17.0, 0.1, 8.0, 14.0),
    (3.0, 3.5, 1.7, 10.0, 17.0, 8.0),
    (17.0, 8.0, 0.05, 10.0, 0.1, 14.0),
)
_HARTMANN6_P = (
    (0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886),
    (0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991),
    (0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650),
    (0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381),
)


def _hartmann(x, a, p):
    a = jnp.asarray(a, x.dtype)
    p = jnp.asarray(p, x.dtype)
    alpha = jnp.asarray(_HARTMANN_ALPHA, x.dtype)
    inner = jnp.sum(a * (x[None, :] - p) ** 2, axis=1)
    return -jnp.sum(alpha * jnp.exp(-inner))


def hartmann3(x):
    return _hartmann(x, _HARTMANN3_A, _HARTMANN3_P)


def hartmann6(x):
    return _hartmann(x, _HARTMANN6_A, _HARTMANN6_P)


# --- Levy (d-D) ----------------------------------------------------------------------------------


def levy(x):
    w = 1.0 + (x - 1.0) / 4.0
    head = jnp.sin(math.pi * w[0]) ** 2
    body = jnp.sum((w[:-1] - 1.0) ** 2 * (1.0 + 10.0 * jnp.sin(math.pi * w[:-1] + 1.0) ** 2))
    tail = (w[-1] - 1.0) ** 2 * (1.0 + jnp.sin(2.0 * math.pi * w[-1]) ** 2)
    return head + body + tail


# --- Ackley (d-D) ----------------------------------------------------------------------------------


def ackley(x):
    d = x.shape[0]
    # sqrt(sum + tiny) keeps the gradient finite at the minimizer x = 0.
    radius = jnp.sqrt(jnp.sum(x**2) / d + jnp.finfo(x.dtype).tiny)
    return -20.0 * jnp.exp(-0.2 * radius) - jnp.exp(jnp.sum(jnp.cos(2.0 * math.pi * x)) / d) + 20.0 + math.e


# --- Six-hump camel (2-D) ------------------------------------------------------------------------------


def six_hump_camel(x):
    x1, x2 = x[0], x[1]
    return (4.0 - 2.1 * x1**2 + x1**4 / 3.0) * x1**2 + x1 * x2 + (-4.0 + 4.0 * x2**2) * x2**2


FUNCTIONS: dict[str, TestFunction] = {
    f.name: f
    for f in (
        TestFunction(
            name="branin",
            bounds=((-5.0, 10.0), (0.0, 15.0)),
            optimum=0.39788735772973816,
            minimizers=((-math.pi, 12.275), (math.pi, 2.275), (3 * math.pi, 2.475)),
            fn=branin,
        ),
        TestFunction(
            name="hartmann3",
            bounds=((0.0, 1.0),) * 3,
            optimum=-3.862779787332663,
            minimizers=((0.114614, 0.555649, 0.852547),),
            fn=hartmann3,
        ),
        TestFunction(
            name="levy4",
            bounds=((-10.0, 10.0),) * 4,
            optimum=0.0,
            minimizers=((1.0, 1.0, 1.0, 1.0),),
            fn=levy,
        ),
        TestFunction(
            name="hartmann6",
            bounds=((0.0, 1.0),) * 6,
            optimum=-3.3223680114155156,
            minimizers=((0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573),),
            fn=hartmann6,
        ),
        TestFunction(
            name="ackley5",
            bounds=((-32.768, 32.768),) * 5,
            optimum=0.0,
            minimizers=((0.0,) * 5,),
            fn=ackley,
        ),
        TestFunction(
            name="camel",
            bounds=((-3.0, 3.0), (-2.0, 2.0)),
            optimum=-1.0316284534898774,
            minimizers=((0.0898, -0.7126), (-0.0898, 0.7126)),
            fn=six_hump_camel,
        ),
    )
}


def check_optima(verbose: bool = True) -> None:
    """Each optimum equals the function at its minimizers, and a local search finds nothing lower."""
    from scipy.optimize import minimize

    for f in FUNCTIONS.values():
        lo, hi = np.array(f.bounds).T
        at_minimizers = [f.evaluate(m) for m in f.minimizers]
        # Published minimizers carry ~6 digits, so their values may sit a hair above the optimum.
        assert all(abs(v - f.optimum) < 1e-4 for v in at_minimizers), (f.name, at_minimizers, f.optimum)
        polished = min(
            minimize(f.evaluate, np.asarray(m), bounds=list(zip(lo, hi)), method="L-BFGS-B", tol=1e-14).fun
            for m in f.minimizers
        )
        assert polished >= f.optimum - 1e-9, (f.name, polished, f.optimum)
        # float32 under jit/vmap agrees with the float64 evaluation.
        points = jnp.asarray(np.array(f.minimizers), jnp.float32)
        f32 = np.asarray(jax.jit(jax.vmap(f.fn))(points))
        assert np.allclose(f32, at_minimizers, atol=1e-4), (f.name, f32, at_minimizers)
        if verbose:
            print(f"{f.name:10s} d={f.dim}  optimum={f.optimum:.10f}  at minimizers={at_minimizers}  "
                  f"polished={polished:.10f}")


if __name__ == "__main__":
    check_optima()
