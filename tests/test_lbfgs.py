"""L-BFGS with a stopping rule: minimizers against hand-computed optima, refusals, vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperoptax import lbfgs

pytestmark = pytest.mark.usefixtures("strict_promotion")

A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
B = jnp.array([1.0, -1.0])


def quadratic(x):
    return 0.5 * x @ A @ x - B @ x


def rosenbrock(x):
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


# A x = b by hand: x* = A⁻¹ b = [3, -4] / 5, f* = -b·x* / 2 = -0.7; A's smallest eigenvalue (5 - √5) / 2.
X_STAR, F_STAR, LAMBDA_MIN = np.array([0.6, -0.8]), -0.7, (5.0 - 5.0**0.5) / 2.0


def _distance_bound(gap):
    """How far from x* a point whose objective is ``gap`` above f* can be: f - f* >= λ_min |x - x*|² / 2.

    ``gap`` is measured in float32, so a few ulps of f (1e-6) are added before taking the root.
    """
    return float(np.sqrt(2.0 * (max(gap, 0.0) + 1e-6) / LAMBDA_MIN))


def test_quadratic_reaches_the_solution_of_the_linear_system():
    # The stopping rule (a step gaining <= 1e-6 |f|) bounds how far above f* the result may be; strong
    # convexity turns that into a distance. Both hold whatever a CPU's rounding.
    minimize = jax.jit(lambda x0: lbfgs.minimize(quadratic, x0, 20))
    x, value = minimize(jnp.array([5.0, -4.0]))
    gap = float(value) - F_STAR
    assert -1e-6 <= gap <= 1e-5, gap
    assert np.linalg.norm(np.asarray(x) - X_STAR) <= _distance_bound(gap)


def test_rosenbrock_from_the_classic_start():
    x, value = jax.jit(lambda x0: lbfgs.minimize(rosenbrock, x0, 200, grad_tol=1e-6, rel_tol=0.0))(
        jnp.array([-1.2, 1.0])
    )
    v = float(value)
    assert v < 1e-3
    # What a value v guarantees: (1 - x0)² <= v and 100 (x1 - x0²)² <= v.
    x0, x1 = float(x[0]), float(x[1])
    assert abs(1.0 - x0) <= v**0.5 + 1e-6
    assert abs(1.0 - x1) <= (v / 100) ** 0.5 + abs(1.0 - x0) * (2.0 + abs(1.0 - x0)) + 1e-6


def test_returned_value_is_the_objective_at_the_returned_point():
    x, value = jax.jit(lambda x0: lbfgs.minimize(rosenbrock, x0, 7))(jnp.array([-1.2, 1.0]))
    # The same function compiled inside and outside the loop may round differently: a few dozen ulps.
    np.testing.assert_allclose(value, rosenbrock(x), rtol=1e-5)
    assert float(value) < float(rosenbrock(jnp.array([-1.2, 1.0])))


def test_zero_steps_return_the_start():
    x0 = jnp.array([2.0, 2.0])
    x, value = lbfgs.minimize(quadratic, x0, 0)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_allclose(value, quadratic(x0))


def test_a_non_finite_region_is_never_entered():
    # The minimum of the parabola lies where the function is NaN: the search must
    # stop at a finite point no worse than where it started.
    fn = lambda x: jnp.where(x[0] > 1.0, jnp.nan, (x[0] - 3.0) ** 2)
    x0 = jnp.array([0.0])
    x, value = jax.jit(lambda x0: lbfgs.minimize(fn, x0, 30))(x0)
    assert bool(jnp.isfinite(value)) and float(x[0]) <= 1.0
    assert float(value) <= float(fn(x0))


def test_vmapped_starts_equal_separate_runs():
    # Each vmapped start runs its own search (its own stopping, no mixing): on the quadratic every start,
    # vmapped or alone, ends within the distance its own objective guarantees of the one minimizer. (Paths
    # are not compared step by step: vectorized arithmetic rounds differently, and on a curved valley such
    # as Rosenbrock's a last-ulp difference grows over the iterations.)
    starts = jnp.array([[5.0, -4.0], [-1.2, 1.0], [0.0, 0.0], [30.0, 7.0]])
    run = lambda x0: lbfgs.minimize(quadratic, x0, 20)
    xs, values = jax.jit(jax.vmap(run))(starts)
    for i, x0 in enumerate(starts):
        x, value = jax.jit(run)(x0)
        for point, v in ((xs[i], values[i]), (x, value)):
            gap = float(v) - F_STAR
            assert -1e-6 <= gap <= 1e-5, (i, gap)
            assert np.linalg.norm(np.asarray(point) - X_STAR) <= _distance_bound(gap)
    # On Rosenbrock, every vmapped start still only improves, and reports the value where it stopped.
    rs, rvalues = jax.jit(jax.vmap(lambda x0: lbfgs.minimize(rosenbrock, x0, 15)))(starts)
    for i, x0 in enumerate(starts):
        assert float(rvalues[i]) <= float(rosenbrock(x0))
        np.testing.assert_allclose(rvalues[i], rosenbrock(rs[i]), rtol=1e-5)

