"""The tune models' fast layers compute exactly what the Flax layers they stand in for compute."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hyperoptax.tune.models import cnn, conv_as_matmul, halve


@pytest.mark.parametrize("shape, kernel", [((5, 8, 8, 3), 3), ((2, 7, 9, 4), 3), ((3, 6, 5, 2), 5)])
def test_conv_as_matmul_is_the_flax_convolution(shape, kernel):
    conv = nnx.Conv(shape[-1], 7, (kernel, kernel), rngs=nnx.Rngs(0))
    conv.bias[...] = jax.random.normal(jax.random.key(2), (7,))  # a zero bias would hide a missing term
    x = jax.random.normal(jax.random.key(1), shape)
    expected = conv(x)
    got = conv_as_matmul(conv, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * float(jnp.abs(expected).max()))


@pytest.mark.parametrize("shape", [(5, 8, 8, 3), (2, 7, 9, 4), (4, 2, 2, 1)])
def test_halve_is_two_by_two_average_pooling(shape):
    x = jax.random.normal(jax.random.key(0), shape)
    np.testing.assert_allclose(halve(x), nnx.avg_pool(x, (2, 2), strides=(2, 2)), rtol=1e-6, atol=1e-6)
    # by hand, the first window of the first image and channel
    assert float(halve(x)[0, 0, 0, 0]) == pytest.approx(float(x[0, :2, :2, 0].mean()), rel=1e-6, abs=1e-6)


def test_cnn_gradients_match_the_flax_layers():
    """Same parameters, same loss gradient as the CNN written with nnx.Conv and nnx.avg_pool."""
    model = cnn((8, 8, 1), 4, 3, 2, 16, 10, nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (6, 8, 8, 1))

    def reference(m, x):
        for conv, pool in zip(m.convs, m.pools):
            x = nnx.relu(conv(x))
            if pool:
                x = nnx.avg_pool(x, (2, 2), strides=(2, 2))
        return m.out(nnx.relu(m.dense(x.reshape(x.shape[0], -1))))

    g_fast = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
    g_ref = nnx.grad(lambda m: jnp.sum(reference(m, x) ** 2))(model)
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * (1 + float(jnp.abs(b).max())))


def test_models_of_one_shape_share_one_compiled_step():
    """Every cnn(...) / mlp(...) of the same shape is the same type, so a user's nnx.jit step compiles once."""
    traces = []

    @nnx.jit
    def forward(model, x):
        traces.append(1)  # runs only while tracing
        return model(x)

    x = jnp.ones((2, 8, 8, 1))
    for seed in range(3):
        forward(cnn((8, 8, 1), 4, 3, 1, 16, 10, nnx.Rngs(seed)), x)
    assert len(traces) == 1
    from hyperoptax.tune.models import mlp

    assert type(mlp(64, 8, 1, 10, nnx.Rngs(0))) is type(mlp(64, 8, 2, 10, nnx.Rngs(1)))
