"""The Flax (NNX) models of ``hyperoptax tune``'s classification task: an MLP and a small CNN."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["mlp", "cnn", "MLP", "CNN", "conv_as_matmul", "halve"]


def conv_as_matmul(conv: nnx.Conv, x):
    """``conv(x)`` (stride 1, SAME padding) computed as image patches times the kernel matrix.

    The same function with the same parameters, but several times faster on CPU for the small images of
    these models: XLA's CPU convolution, and above all its weight gradient, is slow at this size, and under
    ``vmap`` over a population it becomes a grouped convolution that is slower still, while patches times a
    matrix becomes a batched matrix product (measured on 2 cores, one training step of the digits CNN with
    batch 64: 5.2 vs 0.6 ms for one member, 96 vs 16 ms for 16 members).
    """
    kh, kw, c_in, c_out = conv.kernel.shape
    patches = jax.lax.conv_general_dilated_patches(  # (..., h, w, c_in * kh * kw), channel-major
        x, (kh, kw), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    kernel = jnp.transpose(conv.kernel[...], (2, 0, 1, 3)).reshape(c_in * kh * kw, c_out)
    y = patches @ kernel
    return y if conv.bias is None else y + conv.bias[...]


def halve(x):
    """2x2 average pooling with stride 2 (VALID: an odd last row or column is dropped), as ``nnx.avg_pool``
    computes it, written as a reshape and a mean: XLA's CPU ``reduce_window`` and its gradient cost more
    than the rest of these small models' step."""
    *lead, h, w, c = x.shape
    x = x[..., : h - h % 2, : w - w % 2, :]
    return x.reshape(*lead, h // 2, 2, w // 2, 2, c).mean(axis=(-4, -2))


# The classes live at module level, not inside the factories: a class made anew per call gives every model a
# new type, so ``nnx.jit`` (keyed on the graph definition, the type included) compiled a user's training step
# again for every model built.


class MLP(nnx.Module):
    def __init__(self, in_features, width, depth, n_classes, rngs):
        sizes = [in_features] + [width] * depth
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
        self.out = nnx.Linear(sizes[-1], n_classes, rngs=rngs)

    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        for layer in self.hidden:
            x = nnx.relu(layer(x))
        return self.out(x)


class CNN(nnx.Module):
    def __init__(self, image_shape, features, kernel_size, depth, width, n_classes, rngs):
        h, w, channels = image_shape
        convs, pools = [], []
        for block in range(depth):
            out = features * 2**block
            convs.append(nnx.Conv(channels, out, (kernel_size, kernel_size), rngs=rngs))
            pools.append(h >= 4 and w >= 4)  # halve the image while it is big enough
            if pools[-1]:
                h, w = h // 2, w // 2
            channels = out
        self.convs, self.pools = nnx.List(convs), tuple(pools)
        self.dense = nnx.Linear(h * w * channels, width, rngs=rngs)
        self.out = nnx.Linear(width, n_classes, rngs=rngs)

    def __call__(self, x):
        for conv, pool in zip(self.convs, self.pools):
            x = nnx.relu(conv_as_matmul(conv, x))
            if pool:
                x = halve(x)
        x = nnx.relu(self.dense(x.reshape(x.shape[0], -1)))
        return self.out(x)


def mlp(in_features, width, depth, n_classes, rngs) -> MLP:
    return MLP(in_features, width, depth, n_classes, rngs)


def cnn(image_shape, features, kernel_size, depth, width, n_classes, rngs) -> CNN:
    return CNN(image_shape, features, kernel_size, depth, width, n_classes, rngs)
