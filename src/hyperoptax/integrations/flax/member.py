"""One member of the population: its state and the pure functions that build, train and evaluate it.

Everything here works on one member; the trainer vmaps these functions over the
population axis and shards them (:mod:`hyperoptax.integrations.flax.sharding`).
Each is pure in its arguments and separately callable, so a program may chain
them differently (train in segments, re-initialize one slot) without changing
what a member computes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from hyperoptax._keys import as_key
from hyperoptax.errors import ObjectiveError

__all__ = ["MemberSpec", "PopulationState"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PopulationState:
    """Everything needed to resume a population; every leaf has a leading ``n_parallel`` axis.

    Only plain arrays (PRNG keys as raw ``uint32`` key data), so Orbax can save it as is.

    Attributes:
      model: ``{"params": ..., "state": ...}``: trained weights and the rest of the
        model state (NNX RNG streams and batch statistics, Linen non-param collections).
      opt_state: the Optax state (with ``inject_hyperparams``, the per-member hyperparameters).
      step: ``(n,)`` int32, training steps taken.
      rng: ``(n, ...)`` uint32 key data; minibatches and Linen dropout fold in ``step``.
      finite: ``(n,)`` bool, False once a member's training loss was NaN/inf.
    """

    model: Any
    opt_state: Any
    step: jax.Array
    rng: jax.Array
    finite: jax.Array

    def replace(self, **kwargs):
        return dataclasses.replace(self, **kwargs)


def _static_key(static: Mapping):
    return tuple(sorted(static.items()))


@dataclasses.dataclass(frozen=True, eq=False)
class MemberSpec:
    """What one member is: a model adapter, the optimizer, loss and metric, and where the data is.

    The methods take ``static`` (the member's static values, which select the
    NNX graph) and ``hparams`` (the merged dict user code sees) and return a
    :class:`PopulationState` without the population axis, or a scalar metric.

    Attributes:
      model: an adapter from :func:`~hyperoptax.integrations.flax.models.model_adapter`.
      optimizer_fn, loss_fn, metric_fn: as in :class:`~hyperoptax.integrations.flax.PopulationTrainer`.
      inputs_key, labels_key: keys of the data dicts.
      x_example: one input batch (a leading axis of 1) for Linen's ``init``.
      eval_batch_size: evaluate in chunks of this size (None: the whole eval set at once).
    """

    model: Any
    optimizer_fn: Callable[[Any], optax.GradientTransformation]
    loss_fn: Callable
    metric_fn: Callable
    inputs_key: str
    labels_key: str
    x_example: np.ndarray
    eval_batch_size: int | None = None

    def init(self, static: Mapping, key, hparams) -> PopulationState:
        """A fresh member from ``key`` (typed, or raw key data): model variables and optimizer state."""
        del static  # the adapters build from hparams, which already hold the static values
        key = as_key(key)
        model_key, rng_key = jax.random.split(key)
        x_example = jnp.asarray(self.x_example)
        model = self.model.init(hparams, model_key, x_example)
        opt_state = self.optimizer_fn(hparams).init(model["params"])
        return PopulationState(
            model=model,
            opt_state=opt_state,
            step=jnp.zeros((), jnp.int32),
            rng=jax.random.key_data(rng_key),
            finite=jnp.ones((), bool),
        )

    def set_hyperparams(self, member: PopulationState, hparams) -> PopulationState:
        """``member`` with the hyperparameters that ``optax.inject_hyperparams`` keeps in its optimizer state
        set from ``hparams``; everything else (moments, counts, schedule states) is kept.

        The optimizer reads its injected hyperparameters from its state, not from ``optimizer_fn``'s
        arguments, so this is how a changed value reaches it without recompiling anything.
        """
        fresh = self.optimizer_fn(hparams).init(member.model["params"])

        def pick(path, old, new):
            injected = any(isinstance(k, jax.tree_util.GetAttrKey) and k.name == "hyperparams" for k in path)
            return new.astype(old.dtype) if injected else old

        return member.replace(opt_state=jax.tree_util.tree_map_with_path(pick, member.opt_state, fresh))

    def train(self, static: Mapping, member: PopulationState, hparams, batch_size: int, n_steps, train) -> PopulationState:
        """``n_steps`` steps from ``member``'s current step, on i.i.d. minibatches of ``train``.

        ``n_steps`` is a Python int (a ``scan`` of that length) or a traced scalar (a loop whose length is
        an argument of the compiled program: one program for segments of any length).
        """
        step = self._step_fn(static, hparams, batch_size, train)
        if isinstance(n_steps, int):
            return jax.lax.scan(lambda m, _: (step(m), None), member, None, length=n_steps)[0]
        return jax.lax.fori_loop(0, n_steps, lambda _, m: step(m), member)

    def _step_fn(self, static: Mapping, hparams, batch_size: int, train):
        """One training step of a member, ``member -> member``."""
        static_key = _static_key(static)
        tx = self.optimizer_fn(hparams)
        n_train = train[self.inputs_key].shape[0]

        def step(m: PopulationState) -> PopulationState:
            # Keys depend on (rng, step) only, so chunked training replays the same batches.
            batch_key, dropout_key = jax.random.split(jax.random.fold_in(as_key(m.rng), m.step))
            idx = jax.random.randint(batch_key, (batch_size,), 0, n_train)
            x, y = train[self.inputs_key][idx], train[self.labels_key][idx]

            def loss_of(params):
                variables = {"params": params, "state": m.model["state"]}
                logits, state = self.model.apply(static_key, variables, hparams, x, True, dropout_key)
                return self.loss_fn(logits, y, hparams), state

            (loss, state), grads = jax.value_and_grad(loss_of, has_aux=True)(m.model["params"])
            if jnp.shape(loss) != ():
                raise ObjectiveError(f"loss_fn must return a scalar, got shape {jnp.shape(loss)}.")
            updates, opt_state = tx.update(grads, m.opt_state, m.model["params"])
            params = optax.apply_updates(m.model["params"], updates)
            return PopulationState(
                model={"params": params, "state": state},
                opt_state=opt_state,
                step=m.step + 1,
                rng=m.rng,
                finite=m.finite & jnp.isfinite(loss),
            )

        return step

    def evaluate(self, static: Mapping, member: PopulationState, hparams, eval_data) -> jax.Array:
        """The mean of ``metric_fn`` over ``eval_data``; NaN if the loss or weights went non-finite."""
        static_key = _static_key(static)
        x, y = eval_data[self.inputs_key], eval_data[self.labels_key]
        n = x.shape[0]
        chunk = min(self.eval_batch_size or n, n)
        n_chunks = -(-n // chunk)
        pad = n_chunks * chunk - n
        mask = jnp.arange(n_chunks * chunk) < n

        def chunk_scores(xy):
            xs, ys = xy
            logits, _ = self.model.apply(static_key, member.model, hparams, xs, False, jax.random.key(0))
            scores = self.metric_fn(logits, ys)
            if jnp.shape(scores) != (xs.shape[0],):
                raise ObjectiveError(
                    f"metric_fn must return per-example scores of shape ({xs.shape[0]},), got "
                    f"{jnp.shape(scores)}; the trainer averages them over the eval set."
                )
            return scores.astype(jnp.float32)

        def padded(a):
            return jnp.concatenate([a, jnp.repeat(a[:1], pad, axis=0)]).reshape(n_chunks, chunk, *a.shape[1:])

        if n_chunks == 1:  # no loop: a smaller program, faster to compile
            scores = chunk_scores((x, y))
        else:
            scores = jax.lax.map(chunk_scores, (padded(x), padded(y))).reshape(-1)
        value = jnp.sum(jnp.where(mask, scores, 0.0)) / n
        weights_ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(member.model["params"])]))
        healthy = member.finite & weights_ok & jnp.isfinite(value)
        return jnp.where(healthy, value, jnp.nan)
