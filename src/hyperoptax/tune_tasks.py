"""What ``hyperoptax tune`` evaluates: a Flax classifier trained by a PopulationTrainer, or a test function.

A task is ``task(key, params_batch) -> metrics (n_parallel,)`` (NaN for a failed trial). The classifier's
fixed settings come from ``config.model`` / ``config.training``; an entry of ``config.search.space`` with the
same name replaces the fixed value. Names that change shapes or step counts (and every category) are
*static*: the trainer buckets the batch by them and compiles each bucket once; the rest are traced, so
members with different learning rates share one compiled program.
"""

from __future__ import annotations

import contextlib
import io
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hyperoptax import spaces as sp
from hyperoptax.errors import ConfigurationError, check_choice, closest

__all__ = ["make_task", "ClassificationTask", "SyntheticTask", "TUNABLE", "STATIC"]

# Hyperparameters the classification task reads, and which of them are static.
TUNABLE = {
    "model": ("width", "depth", "features", "kernel_size"),
    "training": ("n_steps", "batch_size", "optimizer", "schedule", "learning_rate", "weight_decay", "b1",
                 "momentum", "label_smoothing"),
}
STATIC = ("width", "depth", "features", "kernel_size", "n_steps", "batch_size", "optimizer", "schedule")
_MODELS = ("mlp", "cnn")
_OPTIMIZERS = ("adamw", "adam", "sgd")
_SCHEDULES = ("cosine", "constant")


def make_task(config, space):
    if config.task == "synthetic":
        return SyntheticTask(config, space)
    return ClassificationTask(config, space)


# ---------------------------------------------------------------------------
# Test functions


def branin(x1, x2):
    """Branin-Hoo on [-5, 10] x [0, 15]; minimum 0.397887 at (-pi, 12.275), (pi, 2.275), (9.42478, 2.475)."""
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * jnp.cos(x1) + 10


def rosenbrock(*x):
    """Rosenbrock in any dimension >= 2; minimum 0 at (1, ..., 1)."""
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))


def sphere(*x):
    """Sum of squares; minimum 0 at the origin."""
    return sum(v**2 for v in x)


_FUNCTIONS = {"branin": (branin, 2), "rosenbrock": (rosenbrock, None), "sphere": (sphere, None)}


class SyntheticTask:
    """A standard test function of the space's values (in the space's order); no training."""

    def __init__(self, config, space):
        check_choice("synthetic.function", config.synthetic.function, _FUNCTIONS)
        fn, n_args = _FUNCTIONS[config.synthetic.function]
        if n_args is not None and len(space) != n_args:
            raise ConfigurationError(
                f"synthetic.function={config.synthetic.function!r} takes {n_args} parameters, but search.space has "
                f"{len(space)} ({', '.join(space)}). Use e.g. {{'x1': 'linear(-5, 10)', 'x2': 'linear(0, 15)'}}."
            )
        if n_args is None and len(space) < 2 and fn is rosenbrock:
            raise ConfigurationError("synthetic.function='rosenbrock' needs at least 2 parameters in search.space.")
        self.names, self.noise = list(space), float(config.synthetic.noise)

        def batch(key, params):
            values = fn(*[jnp.asarray(params[n], jnp.float32) for n in self.names])
            return values + self.noise * jax.random.normal(key, values.shape, values.dtype)

        self._batch = jax.jit(batch)

    def __call__(self, key, params):
        return np.asarray(self._batch(key, params))


# ---------------------------------------------------------------------------
# Models


def _mlp(in_features, width, depth, n_classes, rngs):
    from flax import nnx

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


def _cnn(image_shape, features, kernel_size, depth, width, n_classes, rngs):
    from flax import nnx

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


# ---------------------------------------------------------------------------
# The classification task


@contextlib.contextmanager
def _file_lock(path):
    """Serialize preparing the embedded dataset between processes (pytest -n, two sweeps at once)."""
    import fcntl

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load_data(dataset_config):
    """``(train, eval)`` arrays of ``config.dataset`` through :mod:`hyperoptax.integrations.tfds`."""
    from hyperoptax.integrations import tfds as hdata

    data_dir = dataset_config.data_dir or hdata.DEFAULT_DATA_DIR
    lock = _file_lock(os.path.join(data_dir, ".hyperoptax.lock")) if dataset_config.name in (
        hdata.DIGITS_ALIAS, hdata.DIGITS_NAME) else contextlib.nullcontext()
    # TFDS prints its own banner while it builds the embedded dataset (once); keep the sweep's output clean.
    with lock, contextlib.redirect_stdout(io.StringIO()):
        return hdata.load_splits(dataset_config.name, data_dir=data_dir, train_split=dataset_config.train_split,
                                 eval_split=dataset_config.eval_split)


class ClassificationTask:
    """A PopulationTrainer over ``config.model`` / ``config.training``; the metric is computed on the eval split."""

    def __init__(self, config, space):
        from hyperoptax.integrations.flax import PopulationTrainer, accuracy, softmax_cross_entropy

        m, t, s = config.model, config.training, config.search
        check_choice("model.name", m.name, _MODELS)
        check_choice("search.metric", s.metric, ("accuracy", "loss"))
        tunable = TUNABLE["model"] + TUNABLE["training"]
        for name in space:
            if name not in tunable:
                raise ConfigurationError(
                    f"search.space.{name}: the classification task has no hyperparameter {name!r}. Tunable: "
                    f"{', '.join(tunable)}.{closest(name, tunable)}"
                )
        fixed = {**{k: m[k] for k in TUNABLE["model"]}, **{k: t[k] for k in TUNABLE["training"]}}
        check_choice("training.optimizer", fixed["optimizer"], _OPTIMIZERS)
        check_choice("training.schedule", fixed["schedule"], _SCHEDULES)
        for name in ("optimizer", "schedule"):
            leaf = space.get(name)
            if leaf is not None:
                allowed = _OPTIMIZERS if name == "optimizer" else _SCHEDULES
                for value in getattr(leaf, "values", (None,)):
                    check_choice(f"search.space.{name} value", value, allowed)
        self.space = space
        train, evaluation = load_data(config.dataset)
        image_key, label_key = list(train)
        image_shape = tuple(train[image_key].shape[1:])
        n_classes = int(max(train[label_key].max(), evaluation[label_key].max())) + 1

        def value(hp, name):
            if name not in space:
                return fixed[name]
            v = hp[name]
            leaf = space[name]
            if isinstance(leaf, sp.DiscreteSpace) and leaf.is_categorical:
                return leaf.values[int(v)]  # static categories arrive as their index
            return v

        def model_fn(hp, rngs):
            if m.name == "mlp":
                return _mlp(int(np.prod(image_shape)), value(hp, "width"), value(hp, "depth"), n_classes, rngs)
            return _cnn(image_shape, value(hp, "features"), value(hp, "kernel_size"), value(hp, "depth"),
                        value(hp, "width"), n_classes, rngs)

        def optimizer_fn(hp):
            lr, n_steps = value(hp, "learning_rate"), value(hp, "n_steps")
            if value(hp, "schedule") == "cosine":
                lr_fn = lambda count: lr * 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(count, n_steps) / n_steps))  # noqa: E731
            else:
                lr_fn = lr
            wd, name = value(hp, "weight_decay"), value(hp, "optimizer")
            if name == "sgd":
                def sgd(learning_rate, momentum, weight_decay):
                    return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate, momentum))

                return optax.inject_hyperparams(sgd)(learning_rate=lr_fn, momentum=value(hp, "momentum"), weight_decay=wd)
            if name == "adam":
                def adam(learning_rate, b1, weight_decay):
                    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate, b1))

                return optax.inject_hyperparams(adam)(learning_rate=lr_fn, b1=value(hp, "b1"), weight_decay=wd)
            return optax.inject_hyperparams(optax.adamw)(learning_rate=lr_fn, b1=value(hp, "b1"), weight_decay=wd)

        def loss_fn(logits, labels, hp):
            return softmax_cross_entropy(logits, labels, {"label_smoothing": value(hp, "label_smoothing")})

        def cross_entropy(logits, labels):
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels)

        static = [n for n, leaf in space.items()
                  if n in STATIC or (isinstance(leaf, sp.DiscreteSpace) and leaf.is_categorical)]
        self.trainer = PopulationTrainer(
            model_fn, optimizer_fn, train=train, eval=evaluation, n_steps=fixed["n_steps"],
            batch_size=fixed["batch_size"], loss_fn=loss_fn, metric_fn=accuracy if s.metric == "accuracy" else cross_entropy,
            static=static, space=space, eval_batch_size=t.eval_batch_size, inputs_key=image_key, labels_key=label_key,
        )

    def __call__(self, key, params):
        return np.asarray(self.trainer(key, params))
