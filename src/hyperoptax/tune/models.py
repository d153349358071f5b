"""The Flax (NNX) models of ``hyperoptax tune``'s classification task: an MLP and a small CNN."""

from __future__ import annotations

from flax import nnx

__all__ = ["mlp", "cnn"]


def mlp(in_features, width, depth, n_classes, rngs):
    class MLP(nnx.Module):
        def __init__(self):
            sizes = [in_features] + [width] * depth
            self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])])
            self.out = nnx.Linear(sizes[-1], n_classes, rngs=rngs)

        def __call__(self, x):
            x = x.reshape(x.shape[0], -1)
            for layer in self.hidden:
                x = nnx.relu(layer(x))
            return self.out(x)

    return MLP()


def cnn(image_shape, features, kernel_size, depth, width, n_classes, rngs):
    class CNN(nnx.Module):
        def __init__(self):
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
                x = nnx.relu(conv(x))
                if pool:
                    x = nnx.avg_pool(x, (2, 2), strides=(2, 2))
            x = nnx.relu(self.dense(x.reshape(x.shape[0], -1)))
            return self.out(x)

    return CNN()
