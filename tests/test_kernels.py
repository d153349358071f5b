"""Kernels: hand-computed values, positive definiteness, ARD, composition, gradients."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hyperoptax import RBF, Matern
from hyperoptax.errors import ConfigurationError
from hyperoptax.kernels import BaseKernel, Product, Subset, Sum

pytestmark = pytest.mark.usefixtures("strict_promotion")

NUS = [0.5, 1.5, 2.5, math.inf]
ALL_KERNELS = [Matern(nu=nu) for nu in NUS] + [RBF()]


def _reference(nu, r):
    """Matérn profiles written out from their textbook formulas (float64 numpy)."""
    if nu == 0.5:
        return np.exp(-r)
    if nu == 1.5:
        return (1 + math.sqrt(3) * r) * np.exp(-math.sqrt(3) * r)
    if nu == 2.5:
        return (1 + math.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-math.sqrt(5) * r)
    return np.exp(-(r**2) / 2)


def _pair(r, d=1):
    """Two points at Euclidean distance r in d dimensions."""
    x = jnp.zeros((1, d))
    y = jnp.zeros((1, d)).at[0, 0].set(r)
    return x, y


def test_matern52_at_unit_distance_hand_computed():
    expected = (1 + math.sqrt(5) + 5 / 3) * math.exp(-math.sqrt(5))
    np.testing.assert_allclose(Matern(nu=2.5)(*_pair(1.0))[0, 0], expected, rtol=1e-6)


def test_matern_hand_computed_values():
    x, y = _pair(1.0)
    np.testing.assert_allclose(Matern(nu=0.5)(x, y)[0, 0], math.exp(-1.0), rtol=1e-6)
    np.testing.assert_allclose(Matern(nu=1.5)(x, y)[0, 0], (1 + math.sqrt(3)) * math.exp(-math.sqrt(3)), rtol=1e-6)


@pytest.mark.parametrize("r", [0.0, 0.3, 1.0, 2.0])
def test_rbf_hand_computed(r):
    np.testing.assert_allclose(RBF()(*_pair(r))[0, 0], math.exp(-(r**2) / 2), rtol=1e-6)


@pytest.mark.parametrize("nu", NUS)
def test_matern_matches_reference_profile(nu):
    rng = np.random.default_rng(0)
    X, Y = rng.uniform(size=(7, 3)), rng.uniform(size=(5, 3))
    ls = 0.4
    r = np.sqrt(((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1)) / ls
    got = Matern(length_scale=ls, nu=nu, amplitude=1.7)(jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32))
    assert got.shape == (7, 5)
    np.testing.assert_allclose(got, 1.7 * _reference(nu, r), rtol=2e-5, atol=1e-6)


def test_matern_inf_equals_rbf():
    X = jax.random.uniform(jax.random.key(0), (9, 2))
    Y = jax.random.uniform(jax.random.key(1), (4, 2))
    np.testing.assert_allclose(Matern(0.3, nu=math.inf)(X, Y), RBF(0.3)(X, Y), rtol=1e-6)
    np.testing.assert_allclose(Matern(nu=float("inf"))(X, X), RBF()(X, X), rtol=1e-6)


def test_positional_arguments_are_length_scale_then_nu():
    k = Matern(0.25, 1.5)
    assert k.length_scale == 0.25 and k.nu == 1.5 and k.amplitude == 1.0
    assert Matern() == Matern(length_scale=1.0, nu=2.5)
    assert hash(Matern(0.5, 2.5)) == hash(Matern(0.5, 2.5))


@pytest.mark.parametrize("nu", [0.0, 1.0, 2.0, 3.5, -0.5, "2.5"])
def test_invalid_nu_raises_configuration_error(nu):
    with pytest.raises(ConfigurationError, match=f"nu={nu!r}"):
        Matern(nu=nu)


@pytest.mark.parametrize("make", [lambda: RBF(amplitude=0.0), lambda: Matern(amplitude=-1.0)])
def test_non_positive_amplitude_raises(make):
    with pytest.raises(ConfigurationError, match="amplitude"):
        make()


@pytest.mark.parametrize("kernel", ALL_KERNELS, ids=repr)
@pytest.mark.parametrize("d, n, ls", [(1, 15, 0.1), (4, 40, 0.3)])
def test_gram_matrix_positive_definite(kernel, d, n, ls):
    if d == 1:  # stratified, so no two points nearly coincide
        X = (jnp.linspace(0.0, 1.0, n) + 0.01 * jax.random.uniform(jax.random.key(1), (n,)))[:, None]
    else:
        X = jax.random.uniform(jax.random.key(d), (n, d))
    K = np.asarray(kernel(X, X, jnp.array(ls)), np.float64)
    assert K.shape == (n, n)
    np.testing.assert_allclose(K, K.T, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.diag(K), kernel.amplitude, rtol=1e-6)
    # Smallest eigenvalue well above float32 rounding (~1e-6 for these sizes).
    eig = np.linalg.eigvalsh(K)
    assert eig.min() > 1e-4, eig.min()


@pytest.mark.parametrize("kernel", ALL_KERNELS, ids=repr)
def test_gram_matrix_admits_cholesky(kernel):
    X = jax.random.uniform(jax.random.key(7), (25, 3))
    L = jnp.linalg.cholesky(kernel(X, X) + 1e-5 * jnp.eye(25))
    assert bool(jnp.all(jnp.isfinite(L)))


@pytest.mark.parametrize("kernel", [Matern(nu=0.5), Matern(nu=2.5), RBF()], ids=repr)
def test_ard_length_scales_act_per_dimension(kernel):
    x = jnp.array([[0.0, 0.0]])
    y = jnp.array([[0.3, 0.8]])
    ls = jnp.array([0.1, 2.0])
    scaled = jnp.sqrt((0.3 / 0.1) ** 2 + (0.8 / 2.0) ** 2)
    expected = kernel(jnp.zeros((1, 1)), scaled.reshape(1, 1), 1.0)
    np.testing.assert_allclose(kernel(x, y, ls), expected, rtol=1e-6)
    # A huge length scale makes a dimension irrelevant.
    np.testing.assert_allclose(
        kernel(x, y, jnp.array([0.1, 1e6])), kernel(x[:, :1], y[:, :1], jnp.array([0.1])), rtol=1e-6
    )


def test_length_scale_argument_overrides_the_kernel_own():
    X = jax.random.uniform(jax.random.key(3), (5, 2))
    np.testing.assert_allclose(Matern(0.2)(X, X), Matern(5.0)(X, X, jnp.array(0.2)), rtol=1e-6)
    np.testing.assert_allclose(RBF(np.array([0.2, 0.7]))(X, X), RBF()(X, X, jnp.array([0.2, 0.7])), rtol=1e-6)


def test_ard_length_scale_as_tuple():
    X = jax.random.uniform(jax.random.key(3), (5, 2))
    kernel = Matern((0.2, 0.7), nu=2.5)
    hash(kernel)
    np.testing.assert_allclose(kernel(X, X), Matern(nu=2.5)(X, X, jnp.array([0.2, 0.7])), rtol=1e-6)


def test_amplitude_scales_the_kernel():
    X = jax.random.uniform(jax.random.key(4), (6, 2))
    np.testing.assert_allclose(Matern(nu=1.5, amplitude=3.0)(X, X), 3.0 * Matern(nu=1.5)(X, X), rtol=1e-6)


def test_sum_and_product_composition():
    X = jax.random.uniform(jax.random.key(5), (6, 2))
    Y = jax.random.uniform(jax.random.key(6), (4, 2))
    k1, k2 = Matern(0.3, nu=2.5), RBF(0.8, amplitude=2.0)
    total, prod = k1 + k2, k1 * k2
    assert isinstance(total, Sum) and isinstance(prod, Product)
    assert isinstance(total, BaseKernel)
    np.testing.assert_allclose(total(X, Y), k1(X, Y) + k2(X, Y), rtol=1e-6)
    np.testing.assert_allclose(prod(X, Y), k1(X, Y) * k2(X, Y), rtol=1e-6)
    nested = (k1 + k2) * Matern(nu=0.5)
    np.testing.assert_allclose(nested(X, Y), (k1(X, Y) + k2(X, Y)) * Matern(nu=0.5)(X, Y), rtol=1e-6)
    # Composite kernels pass an override length scale to both parts.
    ls = jnp.array([0.5, 0.1])
    np.testing.assert_allclose(total(X, Y, ls), k1(X, Y, ls) + k2(X, Y, ls), rtol=1e-6)


def test_kernel_is_jittable_and_hashable_as_static():
    k = Matern(0.3, nu=1.5)
    f = jax.jit(lambda kern, X: kern(X, X), static_argnums=0)
    X = jax.random.uniform(jax.random.key(8), (5, 2))
    np.testing.assert_allclose(f(k, X), k(X, X), rtol=1e-6)


@pytest.mark.parametrize("kernel", ALL_KERNELS, ids=repr)
def test_gradients_finite_at_zero_distance(kernel):
    x = jnp.array([0.3, 0.6])

    def k_xy(y, log_ls):
        return kernel.evaluate(x, y, jnp.exp(log_ls))

    g_y, g_ls = jax.grad(k_xy, argnums=(0, 1))(x, jnp.zeros(2))
    assert bool(jnp.all(jnp.isfinite(g_y))) and bool(jnp.all(jnp.isfinite(g_ls)))
    # At r = 0 the kernel is at its maximum: no direction increases it.
    np.testing.assert_allclose(g_ls, 0.0, atol=1e-6)
    # Gram matrices (which compare every point with itself) differentiate cleanly too.
    X = jax.random.uniform(jax.random.key(9), (5, 2))
    g = jax.grad(lambda X: jnp.sum(kernel(X, X)))(X)
    assert bool(jnp.all(jnp.isfinite(g)))


@pytest.mark.parametrize("nu", [1.5, 2.5, math.inf])
def test_smooth_kernel_gradient_matches_finite_difference(nu):
    k = Matern(0.5, nu=nu)
    x = jnp.array([0.1, 0.2])
    f = lambda y: k.evaluate(x, y)
    y = jnp.array([0.4, -0.1])
    g = jax.grad(f)(y)
    h = 1e-2
    fd = [(f(y.at[i].add(h)) - f(y.at[i].add(-h))) / (2 * h) for i in range(2)]
    np.testing.assert_allclose(g, fd, rtol=2e-2, atol=1e-4)


@pytest.mark.parametrize(
    "kernel",
    ALL_KERNELS + [
        Matern(length_scale=(0.3, 2.0, 0.7), nu=2.5), Matern(nu=1.5) + RBF(), Matern(nu=2.5) * RBF(0.5),
        Subset(Matern(nu=2.5), (0, 2)), Subset(Matern(nu=2.5), (1, 2), tied=True),
        Subset(Matern(nu=2.5), (0,), tied=True) * Subset(Matern(nu=2.5), (1, 2)),  # transfer learning's
    ],
    ids=repr,
)
def test_matrix_fast_path_equals_the_pairwise_definition(kernel):
    # __call__ sums squared differences one coordinate at a time; it must agree with
    # vmapping evaluate() over the pairs, in value and in length-scale gradient.
    X1 = jax.random.uniform(jax.random.key(1), (7, 3))
    X2 = jax.random.uniform(jax.random.key(2), (5, 3))
    ls = jnp.array([0.4, 1.3, 0.8])
    pairwise = lambda ls: BaseKernel.__call__(kernel, X1, X2, ls)
    fast = lambda ls: kernel(X1, X2, ls)
    np.testing.assert_allclose(fast(ls), pairwise(ls), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(kernel(X1, X2), BaseKernel.__call__(kernel, X1, X2), rtol=1e-6, atol=1e-7)
    grad = lambda f: jax.grad(lambda ls: jnp.sum(f(ls) * X1[:, :1]))(ls)
    np.testing.assert_allclose(grad(fast), grad(pairwise), rtol=1e-5, atol=1e-6)


def test_subset_kernel_sees_only_its_coordinates():
    X1 = jax.random.uniform(jax.random.key(3), (6, 4))
    X2 = jax.random.uniform(jax.random.key(4), (3, 4))
    ls = jnp.array([0.2, 0.5, 0.9, 1.7])
    k = Matern(nu=2.5)
    i13, i20 = np.array([1, 3]), np.array([2, 0])
    np.testing.assert_allclose(Subset(k, (1, 3))(X1, X2, ls), k(X1[:, i13], X2[:, i13], ls[i13]), rtol=1e-6)
    # Tied: one length scale, the first of its dims', for all of them (no ARD).
    np.testing.assert_allclose(Subset(k, (2, 0), tied=True)(X1, X2, ls), k(X1[:, i20], X2[:, i20], 0.9), rtol=1e-6)
    # The other coordinates change nothing.
    moved = X2.at[:, 0].add(5.0).at[:, 2].add(-3.0)
    np.testing.assert_allclose(Subset(k, (1, 3))(X1, moved, ls), Subset(k, (1, 3))(X1, X2, ls), rtol=1e-6)
    assert hash(Subset(k, (1, 3))) == hash(Subset(Matern(nu=2.5), (1, 3)))


def test_subset_matern52_matches_its_textbook_formula():
    # The kernel of GPFIFOSearcher's "matern52-noard" and transfer learning, written out.
    x, y = jnp.array([0.1, 0.4, 0.8]), jnp.array([0.3, 0.1, 0.2])
    ls = jnp.array([0.5, 0.3, 2.0])
    r = math.sqrt(((0.1 - 0.3) / 0.5) ** 2 + ((0.8 - 0.2) / 0.5) ** 2)  # dims (0, 2), tied to dim 0's 0.5
    expected = (1 + math.sqrt(5) * r + 5 * r**2 / 3) * math.exp(-math.sqrt(5) * r)
    kernel = Subset(Matern(nu=2.5), (0, 2), tied=True)
    np.testing.assert_allclose(kernel.evaluate(x, y, ls), expected, rtol=1e-6)
    np.testing.assert_allclose(kernel(x[None], y[None], ls)[0, 0], expected, rtol=1e-6)

