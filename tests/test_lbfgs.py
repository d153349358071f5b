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


def test_quadratic_reaches_the_solution_of_the_linear_system():
    minimize = jax.jit(lambda x0: lbfgs.minimize(quadratic, x0, 20))
    x, value = minimize(jnp.array([5.0, -4.0]))
    # A x = b by hand: x = A⁻¹ b = [3, -4] / 5
    np.testing.assert_allclose(x, [0.6, -0.8], atol=1e-4)
    np.testing.assert_allclose(value, quadratic(jnp.array([0.6, -0.8])), rtol=1e-5)


def test_rosenbrock_from_the_classic_start():
    x, value = jax.jit(lambda x0: lbfgs.minimize(rosenbrock, x0, 200, grad_tol=1e-6, rel_tol=0.0))(
        jnp.array([-1.2, 1.0])
    )
    np.testing.assert_allclose(x, [1.0, 1.0], atol=2e-2)
    assert float(value) < 1e-3


def test_returned_value_is_the_objective_at_the_returned_point():
    x, value = jax.jit(lambda x0: lbfgs.minimize(rosenbrock, x0, 7))(jnp.array([-1.2, 1.0]))
    np.testing.assert_allclose(value, rosenbrock(x), rtol=1e-6)
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
    starts = jnp.array([[5.0, -4.0], [-1.2, 1.0], [0.0, 0.0]])
    run = lambda x0: lbfgs.minimize(rosenbrock, x0, 15)
    xs, values = jax.jit(jax.vmap(run))(starts)
    for i, x0 in enumerate(starts):
        x, value = jax.jit(run)(x0)
        np.testing.assert_allclose(xs[i], x, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(values[i], value, rtol=1e-5, atol=1e-6)

