"""What ``hyperoptax tune`` evaluates: a Flax classifier trained by a PopulationTrainer, or a test function.

A task is ``task(key, params_batch) -> metrics (n_parallel,)`` (NaN for a failed trial). The classifier's
fixed settings come from ``config.model`` / ``config.training``; an entry of ``config.search.space`` with the
same name replaces the fixed value. Names that change shapes or step counts (and every category) are
*static*: the trainer buckets the batch by them and compiles each bucket once; the rest are traced, so
members with different learning rates share one compiled program.

Tasks take a config that :mod:`hyperoptax.tune.config` has validated (``validate_config`` and
``check_task``); they check nothing themselves.
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
from hyperoptax.tune.config import TUNABLE, static_name, training_steps

__all__ = ["make_task", "ClassificationTask", "SyntheticTask", "FUNCTIONS"]


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


# Keyed like hyperoptax.tune.config.SYNTHETIC_ARITY, which the config is checked against.
FUNCTIONS = {"branin": branin, "rosenbrock": rosenbrock, "sphere": sphere}


class SyntheticTask:
    """A standard test function of the space's values (in the space's order); no training."""

    def __init__(self, config, space):
        fn = FUNCTIONS[config.synthetic.function]
        self.names, self.noise = list(space), float(config.synthetic.noise)

        def batch(key, params):
            values = fn(*[jnp.asarray(params[n], jnp.float32) for n in self.names])
            return values + self.noise * jax.random.normal(key, values.shape, values.dtype)

        self._batch = jax.jit(batch)

    def __call__(self, key, params):
        return np.asarray(self._batch(key, params))


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
        # Flax is imported only when a classification task is built.
        from hyperoptax.integrations.flax import PopulationTrainer, accuracy, softmax_cross_entropy
        from hyperoptax.tune.models import cnn, mlp

        m, t, s = config.model, config.training, config.search
        fixed = {**{k: m[k] for k in TUNABLE["model"]}, **{k: t[k] for k in TUNABLE["training"]},
                 "n_steps": training_steps(config)}
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
                return mlp(int(np.prod(image_shape)), value(hp, "width"), value(hp, "depth"), n_classes, rngs)
            return cnn(image_shape, value(hp, "features"), value(hp, "kernel_size"), value(hp, "depth"),
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

        static = [n for n, leaf in space.items() if static_name(n, leaf)]
        self.trainer = PopulationTrainer(
            model_fn, optimizer_fn, train=train, eval=evaluation, n_steps=fixed["n_steps"],
            batch_size=fixed["batch_size"], loss_fn=loss_fn, metric_fn=accuracy if s.metric == "accuracy" else cross_entropy,
            static=static, space=space, eval_batch_size=t.eval_batch_size, inputs_key=image_key, labels_key=label_key,
        )

    def __call__(self, key, params):
        return np.asarray(self.trainer(key, params))
