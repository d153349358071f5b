"""The defaults of :class:`~hyperoptax.integrations.flax.PopulationTrainer`: loss, metric, optimizer."""

from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import optax

from hyperoptax.errors import ConfigurationError

__all__ = ["accuracy", "default_optimizer", "softmax_cross_entropy"]


def softmax_cross_entropy(logits, labels, hparams):
    """Mean softmax cross-entropy on integer labels, smoothed by ``hparams["label_smoothing"]`` if present."""
    smoothing = hparams.get("label_smoothing", 0.0) if isinstance(hparams, Mapping) else 0.0
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype), smoothing)
    return optax.softmax_cross_entropy(logits, targets).mean()


def accuracy(logits, labels):
    """Per-example 0/1 correctness; the trainer averages it over the eval set."""
    return (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)


def default_optimizer(hparams) -> optax.GradientTransformation:
    """AdamW from ``learning_rate`` (required), ``weight_decay``, ``b1``, ``b2`` (optional).

    ``inject_hyperparams`` keeps the values as arrays in the optimizer state, so
    each member carries its own and they are visible in checkpoints.
    """
    if not isinstance(hparams, Mapping) or "learning_rate" not in hparams:
        names = list(hparams) if isinstance(hparams, Mapping) else type(hparams).__name__
        raise ConfigurationError(
            f"The default optimizer (AdamW) needs a 'learning_rate' hyperparameter, got {names}. "
            f"Add e.g. 'learning_rate': LogSpace(1e-4, 1e-1) to the space or pass optimizer_fn=."
        )
    return optax.inject_hyperparams(optax.adamw)(
        learning_rate=hparams["learning_rate"],
        b1=hparams.get("b1", 0.9),
        b2=hparams.get("b2", 0.999),
        weight_decay=hparams.get("weight_decay", 0.0),
    )
