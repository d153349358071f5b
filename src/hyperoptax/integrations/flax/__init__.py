"""Train ``n_parallel`` Flax models as one vmapped population.

A search proposes a batch of configurations; :class:`PopulationTrainer` trains
all of them together: one member per configuration, the population axis
vmapped (and sharded across devices), the training loop a ``lax.scan`` inside
one jitted program. Every numeric hyperparameter the optimizer, model or loss
reads is a per-member *traced* array, so members with different learning rates,
weight decays or label smoothings share one compiled program::

    def model_fn(hparams, rngs):
        return MLP(width=hparams["width"], rngs=rngs)          # width is static

    def optimizer_fn(hparams):                                 # lr is traced
        return optax.inject_hyperparams(optax.adamw)(
            learning_rate=hparams["learning_rate"], weight_decay=hparams["weight_decay"])

    trainer = PopulationTrainer(model_fn, optimizer_fn, train=train, eval=eval,
                                n_steps=300, batch_size=64, static=("width",))
    metrics = trainer(key, params)          # params leaves (n_parallel,) -> (n_parallel,)

Hyperparameters that change shapes or step counts (``static=``) cannot be
traced: :meth:`PopulationTrainer.__call__` groups members with equal static
values into buckets and compiles each bucket once. Without static
hyperparameters, :meth:`PopulationTrainer.objective` is a traceable
``func(key, params) -> scalar`` that a search can vmap inside ``optimize_scan``,
so a whole sweep is one program.

The metric is *higher is better* (default: accuracy), matching the search's
default ``maximize=True``. A member whose training loss or weights become
NaN/inf reports NaN, which the search records as a failed trial.

The package, one idea a module:

- ``defaults``: the default loss (:func:`softmax_cross_entropy`), metric
  (:func:`accuracy`) and optimizer (:func:`default_optimizer`).
- ``models``: adapters giving NNX and Linen models one functional interface.
- ``hyperparams``: the static/traced split, buckets of static values, the check
  that every hyperparameter is read.
- ``member``: :class:`PopulationState` and the pure per-member functions
  (init, train ``n`` steps, evaluate).
- ``sharding``: the mesh, device placement, host gather, compiled programs.
- ``trainer``: :class:`PopulationTrainer`.
"""

from __future__ import annotations

from hyperoptax.integrations.flax.defaults import accuracy, default_optimizer, softmax_cross_entropy
from hyperoptax.integrations.flax.member import PopulationState
from hyperoptax.integrations.flax.trainer import PopulationTrainer

__all__ = [
    "PopulationState",
    "PopulationTrainer",
    "default_optimizer",
    "softmax_cross_entropy",
    "accuracy",
]
