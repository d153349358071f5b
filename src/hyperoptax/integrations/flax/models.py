"""Model adapters: one functional interface over Flax NNX and Linen models.

An adapter turns the user's model into two pure functions on plain arrays:
``init(hparams, key, x_example) -> variables`` and
``apply(static_key, variables, hparams, x, train, key) -> (logits, state)``, where
``variables = {"params": ..., "state": ...}`` holds no typed PRNG keys, so the
population's state can be vmapped, sharded and checkpointed as is.
"""

from __future__ import annotations

import inspect
from typing import Mapping

import jax
from flax import linen, nnx

from hyperoptax._keys import is_key, raw_keys
from hyperoptax.errors import ConfigurationError
from hyperoptax.integrations.flax.hyperparams import abstract, merge

__all__ = ["LinenModel", "NNXModel", "model_adapter"]


class NNXModel:
    """``model_fn(hparams, rngs) -> nnx.Module``, run functionally through split/merge.

    NNX keeps plain module attributes static, so a traced value the model reads
    at call time (a dropout rate) must live in a Variable, e.g.
    ``self.rate = nnx.Variable(hparams["dropout"])``.
    """

    def __init__(self, model_fn):
        self.model_fn = model_fn
        self._templates = {}  # static values -> (graphdef, abstract params, abstract rest)

    def _build(self, hparams, key):
        model = self.model_fn(hparams, nnx.Rngs(key))
        if not isinstance(model, nnx.Module):
            raise ConfigurationError(
                f"model_fn(hparams, rngs) returned {type(model).__name__}, expected an nnx.Module. "
                f"For Linen pass the linen.Module itself, or a factory model_fn(hparams) -> linen.Module."
            )
        return nnx.split(model, nnx.Param, ...)

    def init(self, hparams, key, x_example):
        _, params, rest = self._build(hparams, key)
        return {"params": raw_keys(params.to_pure_dict()), "state": raw_keys(rest.to_pure_dict())}

    def _template(self, static_key, hparams):
        # The graph structure depends only on static values; trace it once per bucket.
        if static_key not in self._templates:
            box, static = {}, dict(static_key)
            if isinstance(hparams, Mapping):  # dict.items: do not count this read as a use
                hparams = {k: v for k, v in dict.items(hparams) if k not in static}

            def build(hp, key):
                graphdef, params, rest = self._build(merge(hp, static), key)
                box["graphdef"] = graphdef
                return params, rest

            abstract_state = jax.eval_shape(build, abstract(hparams), jax.random.key(0))
            self._templates[static_key] = (box["graphdef"], *abstract_state)
        return self._templates[static_key]

    def apply(self, static_key, variables, hparams, x, train, key):
        graphdef, abs_params, abs_rest = self._template(static_key, hparams)
        model = nnx.merge(graphdef, _from_pure(abs_params, variables["params"]), _from_pure(abs_rest, variables["state"]))
        # Dropout/BatchNorm mode; NNX dropout draws from the RNG streams in `state`.
        model = nnx.view(model, deterministic=not train, use_running_average=not train, raise_if_not_found=False)
        logits = model(x)
        return logits, raw_keys(nnx.state(model, nnx.Not(nnx.Param)).to_pure_dict())


def _from_pure(abstract_state, pure):
    """Plain arrays back into an ``nnx.State`` (re-wrapping raw key data as keys)."""
    state = jax.tree.map(lambda a: a, abstract_state)  # a fresh copy: replace_by_pure_dict mutates
    flat_abstract = dict(nnx.to_flat_state(abstract_state))
    pure = nnx.traversals.unflatten_mapping(
        {
            path: jax.random.wrap_key_data(value) if is_key(flat_abstract[path]) else value
            for path, value in nnx.traversals.flatten_mapping(pure).items()
        }
    )
    nnx.replace_by_pure_dict(state, pure)
    return state


class LinenModel:
    """A ``linen.Module``, or a factory ``model_fn(hparams) -> linen.Module``.

    A ``train`` argument of ``__call__`` gets True while training (or
    ``deterministic`` gets False); dropout uses the ``"dropout"`` RNG stream.
    """

    def __init__(self, model):
        self.model = model

    def _module(self, hparams):
        module = self.model if isinstance(self.model, linen.Module) else self.model(hparams)
        if not isinstance(module, linen.Module):
            raise ConfigurationError(
                f"The Linen model factory returned {type(module).__name__}, expected a linen.Module."
            )
        return module

    @staticmethod
    def _mode(module, train):
        params = inspect.signature(module.__call__).parameters
        if "train" in params:
            return {"train": train}
        if "deterministic" in params:
            return {"deterministic": not train}
        return {}

    def init(self, hparams, key, x_example):
        module = self._module(hparams)
        params_key, dropout_key = jax.random.split(key)
        variables = dict(module.init({"params": params_key, "dropout": dropout_key}, x_example, **self._mode(module, False)))
        params = variables.pop("params")
        return {"params": params, "state": variables}

    def apply(self, static_key, variables, hparams, x, train, key):
        module = self._module(hparams)
        full = {"params": variables["params"], **variables["state"]}
        # Non-param collections (batch statistics) update while training only.
        mutable = list(variables["state"]) if train and variables["state"] else False
        out = module.apply(full, x, rngs={"dropout": key}, mutable=mutable, **self._mode(module, train))
        if mutable:
            logits, updated = out
            return logits, {**variables["state"], **dict(updated)}
        return out, variables["state"]


def model_adapter(model):
    """The adapter for ``model``: an NNX factory (two arguments), a Linen module or a Linen factory."""
    if isinstance(model, linen.Module):
        return LinenModel(model)
    if not callable(model):
        raise ConfigurationError(
            f"model must be model_fn(hparams, rngs) -> nnx.Module, a linen.Module, or "
            f"model_fn(hparams) -> linen.Module; got {model!r}."
        )
    try:
        n_args = len(
            [
                p
                for p in inspect.signature(model).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
            ]
        )
    except (TypeError, ValueError):
        n_args = 2
    # NNX factories take (hparams, rngs); a one-argument factory builds a Linen module.
    return LinenModel(model) if n_args == 1 else NNXModel(model)
