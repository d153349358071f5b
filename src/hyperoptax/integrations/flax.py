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
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen, nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from hyperoptax import spaces as sp
from hyperoptax.errors import (
    ConfigurationError,
    HyperoptaxError,
    ObjectiveError,
    check_positive_int,
    closest,
)

__all__ = [
    "PopulationState",
    "PopulationTrainer",
    "default_optimizer",
    "softmax_cross_entropy",
    "accuracy",
]

AXIS = "population"
# Names the trainer itself reads when they are listed as static.
_TRAINER_STATIC = ("batch_size", "n_steps")


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


# ---------------------------------------------------------------------------
# Defaults: loss, metric, optimizer
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Model adapters: one interface over NNX and Linen
# ---------------------------------------------------------------------------


def _raw_keys(tree):
    """Typed PRNG keys -> uint32 key data, so states hold plain arrays only."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _as_key(key):
    return key if _is_key(key) else jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))


class _NNXModel:
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
        return {"params": _raw_keys(params.to_pure_dict()), "state": _raw_keys(rest.to_pure_dict())}

    def _template(self, static_key, hparams):
        # The graph structure depends only on static values; trace it once per bucket.
        if static_key not in self._templates:
            box, static = {}, dict(static_key)
            if isinstance(hparams, Mapping):  # dict.items: do not count this read as a use
                hparams = {k: v for k, v in dict.items(hparams) if k not in static}

            def build(hp, key):
                graphdef, params, rest = self._build(_merge(hp, static), key)
                box["graphdef"] = graphdef
                return params, rest

            abstract = jax.eval_shape(build, _abstract(hparams), jax.random.key(0))
            self._templates[static_key] = (box["graphdef"], *abstract)
        return self._templates[static_key]

    def apply(self, static_key, variables, hparams, x, train, key):
        graphdef, abs_params, abs_rest = self._template(static_key, hparams)
        model = nnx.merge(graphdef, _from_pure(abs_params, variables["params"]), _from_pure(abs_rest, variables["state"]))
        # Dropout/BatchNorm mode; NNX dropout draws from the RNG streams in `state`.
        model = nnx.view(model, deterministic=not train, use_running_average=not train, raise_if_not_found=False)
        logits = model(x)
        return logits, _raw_keys(nnx.state(model, nnx.Not(nnx.Param)).to_pure_dict())


def _abstract(tree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), tree)


def _from_pure(abstract_state, pure):
    """Plain arrays back into an ``nnx.State`` (re-wrapping raw key data as keys)."""
    state = jax.tree.map(lambda a: a, abstract_state)  # a fresh copy: replace_by_pure_dict mutates
    flat_abstract = dict(nnx.to_flat_state(abstract_state))
    pure = nnx.traversals.unflatten_mapping(
        {
            path: jax.random.wrap_key_data(value) if _is_key(flat_abstract[path]) else value
            for path, value in nnx.traversals.flatten_mapping(pure).items()
        }
    )
    nnx.replace_by_pure_dict(state, pure)
    return state


class _LinenModel:
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


def _model_adapter(model):
    if isinstance(model, linen.Module):
        return _LinenModel(model)
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
    return _LinenModel(model) if n_args == 1 else _NNXModel(model)


# ---------------------------------------------------------------------------
# Hyperparameter bookkeeping
# ---------------------------------------------------------------------------


class _UsageRecorder(dict):
    """A dict that remembers which keys user code read, to catch unused hyperparameters."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.used = set()

    def __getitem__(self, name):
        self.used.add(name)
        return super().__getitem__(name)

    def get(self, name, default=None):
        self.used.add(name)
        return super().get(name, default)

    def _all(self):
        self.used.update(super().keys())

    def keys(self):
        self._all()
        return super().keys()

    def items(self):
        self._all()
        return super().items()

    def values(self):
        self._all()
        return super().values()

    def __iter__(self):
        self._all()
        return super().__iter__()


def _merge(hparams, static: Mapping):
    """The hyperparameters user code sees: traced arrays plus static Python values."""
    if not static:
        return hparams
    return {**hparams, **static}


def _is_traced(tree) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(tree))


def _python_value(value):
    value = np.asarray(value).item()
    return int(value) if isinstance(value, float) and value.is_integer() else value


# ---------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------


def _check_data(name, data, inputs_key, labels_key):
    if not isinstance(data, Mapping) or inputs_key not in data or labels_key not in data:
        got = list(data) if isinstance(data, Mapping) else type(data).__name__
        raise ConfigurationError(
            f"{name} must be a dict with {inputs_key!r} and {labels_key!r} arrays, got {got}. "
            f"Pass e.g. {name}={{'{inputs_key}': images, '{labels_key}': labels}} or set inputs_key=/labels_key=."
        )
    arrays = {k: np.asarray(data[k]) for k in (inputs_key, labels_key)}
    n = {k: v.shape[0] if v.ndim else 0 for k, v in arrays.items()}
    if len(set(n.values())) != 1 or not n[inputs_key]:
        raise ConfigurationError(f"{name} arrays must share a non-empty leading axis, got lengths {n}.")
    return arrays


class PopulationTrainer:
    """Trains one Flax model per hyperparameter configuration, all members at once.

    Args:
      model: NNX ``model_fn(hparams, rngs) -> nnx.Module``; or a ``linen.Module``;
        or a Linen factory ``model_fn(hparams) -> linen.Module``. Called with one
        member's hyperparameters: numeric ones are traced scalars, static ones
        Python values.
      optimizer_fn: ``optimizer_fn(hparams) -> optax.GradientTransformation``,
        called with one member's traced hyperparameters (wrap the Optax factory
        in ``optax.inject_hyperparams`` to keep them in the optimizer state).
        Default :func:`default_optimizer` (AdamW).
      train, eval: dicts of arrays with ``inputs_key`` and ``labels_key``.
      n_steps: training steps per member.
      batch_size: minibatch size; minibatches are drawn i.i.d. per member and step.
      loss_fn: ``loss_fn(logits, labels, hparams) -> scalar`` minimized by training.
        Default :func:`softmax_cross_entropy` (reads ``label_smoothing`` if given).
      metric_fn: ``metric_fn(logits, labels) -> (batch,)`` per-example scores,
        averaged over the eval set; *higher is better*. Default :func:`accuracy`.
      static: names of hyperparameters that change shapes or step counts (width,
        depth, ``batch_size``, ``n_steps``); members are bucketed by them.
      space: the search space, optional; checks that ``static`` names exist and are
        integer or discrete spaces.
      allow_unused: hyperparameter names no component reads that are nevertheless
        accepted (any other unread name raises ConfigurationError).
      checkpoint_every: default chunk length of :meth:`run`.
      eval_batch_size: evaluate in chunks of this size (default: the whole eval set).
      inputs_key, labels_key: keys of ``train`` / ``eval``.
    """

    def __init__(
        self,
        model,
        optimizer_fn: Callable[[Any], optax.GradientTransformation] | None = None,
        *,
        train: Mapping,
        eval: Mapping,
        n_steps: int,
        batch_size: int,
        loss_fn: Callable | None = None,
        metric_fn: Callable | None = None,
        static: Sequence[str] = (),
        space=None,
        allow_unused: Sequence[str] = (),
        checkpoint_every: int | None = None,
        eval_batch_size: int | None = None,
        inputs_key: str = "image",
        labels_key: str = "label",
    ):
        check_positive_int("n_steps", n_steps)
        check_positive_int("batch_size", batch_size)
        if checkpoint_every is not None:
            check_positive_int("checkpoint_every", checkpoint_every)
        if eval_batch_size is not None:
            check_positive_int("eval_batch_size", eval_batch_size)
        if isinstance(static, str) or not all(isinstance(s, str) for s in static):
            raise ConfigurationError(f"static must be a sequence of hyperparameter names, got {static!r}.")
        for name, fn in (("optimizer_fn", optimizer_fn), ("loss_fn", loss_fn), ("metric_fn", metric_fn)):
            if fn is not None and not callable(fn):
                raise ConfigurationError(f"{name} must be callable, got {fn!r}.")
        self._model = _model_adapter(model)
        self.optimizer_fn = optimizer_fn or default_optimizer
        self.loss_fn = loss_fn or softmax_cross_entropy
        self.metric_fn = metric_fn or accuracy
        self.inputs_key, self.labels_key = inputs_key, labels_key
        self.train_data = _check_data("train", train, inputs_key, labels_key)
        self.eval_data = _check_data("eval", eval, inputs_key, labels_key)
        self.n_steps, self.batch_size = n_steps, batch_size
        self.static = tuple(static)
        self.allow_unused = frozenset(allow_unused)
        self.checkpoint_every = checkpoint_every
        self.eval_batch_size = eval_batch_size
        self.maximize = True  # the metric is higher-is-better; pass maximize=trainer.maximize to a search
        if space is not None:
            self._check_static_space(space)
        self._programs = {}  # (kind, static values, n, n_steps) -> compiled executable
        self._checked = set()  # hyperparameter signatures already checked for unused names
        self._device_data = None
        self.n_compiles = 0

    # -- configuration checks -----------------------------------------------

    def _check_static_space(self, space):
        if not isinstance(space, Mapping):
            raise ConfigurationError("space= must be a dict of spaces when static names are given.")
        for name in self.static:
            if name not in space:
                raise ConfigurationError(
                    f"static={self.static!r} names {name!r}, which is not in the search space "
                    f"{sorted(space)}.{closest(name, space)}"
                )
            leaf = space[name]
            discrete = isinstance(leaf, (sp.DiscreteSpace, sp.QLinearSpace, sp.QLogSpace))
            if not discrete:
                raise ConfigurationError(
                    f"Static hyperparameter {name!r} has the continuous space {leaf!r}: every distinct "
                    f"value would compile a new program. Use DiscreteSpace or QLinearSpace for it, or "
                    f"remove it from static= if it does not change shapes or step counts."
                )

    def _split(self, params):
        """``params`` -> (traced part, {static name: per-member values})."""
        if not self.static:
            return params, {}
        if not isinstance(params, Mapping):
            raise ConfigurationError(
                f"static={self.static!r} needs params to be a dict of hyperparameters, got {type(params).__name__}."
            )
        for name in self.static:
            if name not in params:
                raise ConfigurationError(
                    f"static={self.static!r} names {name!r}, but the params have only {sorted(params)}."
                    f"{closest(name, params)} Remove it from static= or add it to the search space."
                )
        return {k: v for k, v in params.items() if k not in self.static}, {k: params[k] for k in self.static}

    def _config(self, static: Mapping):
        """Batch size and step count of a bucket: static overrides of the trainer's defaults."""
        batch_size = int(static.get("batch_size", self.batch_size))
        n_steps = int(static.get("n_steps", self.n_steps))
        check_positive_int("batch_size", batch_size)
        check_positive_int("n_steps", n_steps, minimum=0)
        return batch_size, n_steps

    def _check_usage(self, traced_one, static: Mapping):
        """Trace one member once with a recording dict; unread hyperparameters raise."""
        if not isinstance(traced_one, Mapping):
            return
        signature = (tuple(sorted(traced_one)), tuple(sorted(static.items())))
        if signature in self._checked:
            return
        recorder_box = []

        def traced(key, hp):
            recorder = _UsageRecorder(_merge(hp, static))
            recorder_box.append(recorder)
            member = self._init_member(static, key, recorder)
            member = self._train_member(static, member, recorder, self._config(static)[0], 1, train)
            return self._eval_member(static, member, recorder, eval_data)

        train, eval_data = self._constants()

        try:
            jax.eval_shape(traced, jax.random.key(0), _abstract(traced_one))
        except HyperoptaxError:
            raise
        except Exception:  # noqa: BLE001 - the real call will raise the user's error with its own traceback
            return
        used = set().union(*(r.used for r in recorder_box)) | {n for n in static if n in _TRAINER_STATIC}
        unused = [n for n in list(traced_one) + list(static) if n not in used and n not in self.allow_unused]
        if unused:
            raise ConfigurationError(
                f"Hyperparameter(s) {unused} are never read by model_fn, optimizer_fn or loss_fn, so "
                f"searching them would be wasted. Read them (e.g. hparams[{unused[0]!r}] in optimizer_fn), "
                f"remove them from the space, or pass allow_unused={tuple(unused)!r}."
            )
        self._checked.add(signature)

    # -- one member: pure functions, vmapped below -----------------------------

    def _init_member(self, static, key, hparams) -> PopulationState:
        key = _as_key(key)
        model_key, rng_key = jax.random.split(key)
        x_example = jnp.asarray(self.train_data[self.inputs_key][:1])
        model = self._model.init(hparams, model_key, x_example)
        opt_state = self.optimizer_fn(hparams).init(model["params"])
        return PopulationState(
            model=model,
            opt_state=opt_state,
            step=jnp.zeros((), jnp.int32),
            rng=jax.random.key_data(rng_key),
            finite=jnp.ones((), bool),
        )

    def _train_member(self, static, member, hparams, batch_size, n_steps, train) -> PopulationState:
        static_key = tuple(sorted(static.items()))
        tx = self.optimizer_fn(hparams)
        n_train = train[self.inputs_key].shape[0]

        def step(m: PopulationState, _):
            # Keys depend on (rng, step) only, so chunked training replays the same batches.
            batch_key, dropout_key = jax.random.split(jax.random.fold_in(_as_key(m.rng), m.step))
            idx = jax.random.randint(batch_key, (batch_size,), 0, n_train)
            x, y = train[self.inputs_key][idx], train[self.labels_key][idx]

            def loss_of(params):
                variables = {"params": params, "state": m.model["state"]}
                logits, state = self._model.apply(static_key, variables, hparams, x, True, dropout_key)
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
            ), None

        return jax.lax.scan(step, member, None, length=n_steps)[0]

    def _eval_member(self, static, member, hparams, eval_data) -> jax.Array:
        static_key = tuple(sorted(static.items()))
        x, y = eval_data[self.inputs_key], eval_data[self.labels_key]
        n = x.shape[0]
        chunk = min(self.eval_batch_size or n, n)
        n_chunks = -(-n // chunk)
        pad = n_chunks * chunk - n
        mask = jnp.arange(n_chunks * chunk) < n

        def chunk_scores(xy):
            xs, ys = xy
            logits, _ = self._model.apply(static_key, member.model, hparams, xs, False, jax.random.key(0))
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

    def _full_member(self, static, key, hparams, train, eval_data):
        batch_size, n_steps = self._config(static)
        hp = _merge(hparams, static)
        member = self._init_member(static, key, hp)
        member = self._train_member(static, member, hp, batch_size, n_steps, train)
        return self._eval_member(static, member, hp, eval_data)

    # -- single-member objective ----------------------------------------------

    def objective(self, key, params) -> jax.Array:
        """``func(key, params) -> scalar``: train and evaluate one member.

        Traceable, so ``optimize_scan`` can ``jax.vmap`` it and jit a whole sweep.
        Static hyperparameters must be concrete here; under tracing use
        ``trainer(key, params_batch)`` with ``optimize`` / ``update_state`` instead.
        """
        traced, static_values = self._split(params)
        for name, value in static_values.items():
            if _is_traced(value):
                raise ConfigurationError(
                    f"Hyperparameter {name!r} is static (it changes shapes or step counts), but "
                    f"trainer.objective received it as a traced value (under jit/vmap, e.g. inside "
                    f"optimize_scan), where members cannot be bucketed by it. Use "
                    f"metrics = trainer(key, params_batch) with optimizer.optimize or "
                    f"optimizer.update_state instead, or fix {name!r} outside the search space."
                )
        static = {k: _python_value(v) for k, v in static_values.items()}
        self._check_usage(traced, static)
        data = self._constants()
        return self._full_member(static, key, traced, *data)

    def _constants(self):
        return (
            {k: jnp.asarray(v) for k, v in self.train_data.items()},
            {k: jnp.asarray(v) for k, v in self.eval_data.items()},
        )

    # -- population: sharding, bucketing, compiled programs ---------------------

    @property
    def mesh(self) -> Mesh:
        """A 1-D mesh over every device of every process, axis ``'population'``."""
        return Mesh(np.asarray(jax.devices()), (AXIS,))

    def _check_n(self, n):
        d = jax.device_count()
        if n % d:
            raise ConfigurationError(
                f"n_parallel={n} is not a multiple of the {d} devices the population is sharded over. "
                f"Use n_parallel={d * max(1, round(n / d))} (a multiple of {d})."
            )

    def _put(self, tree, spec):
        """Host or device values -> global arrays with ``spec`` over the mesh (each process holds the full value)."""
        sharding = NamedSharding(self.mesh, spec)

        def put(x):
            if isinstance(x, jax.Array) and not x.is_fully_addressable:
                return x if x.sharding == sharding else jax.jit(lambda a: a, out_shardings=sharding)(x)
            if jax.process_count() == 1:
                return jax.device_put(x, sharding)
            x = np.asarray(x)
            return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

        return jax.tree.map(put, tree)

    def _data(self):
        if self._device_data is None:
            self._device_data = (self._put(self.train_data, P()), self._put(self.eval_data, P()))
        return self._device_data

    def _program(self, kind, static, n, n_steps, member_fn, args):
        """Compile ``jit(shard_map(vmap(member_fn)))`` once per (kind, static values, n, n_steps)."""
        cache_key = (kind, tuple(sorted(static.items())), n, n_steps)
        if cache_key not in self._programs:
            n_pop = len(args) - 2  # the last two arguments are the replicated train / eval data
            batched = jax.vmap(member_fn, in_axes=(0,) * n_pop + (None, None))
            sharded = jax.shard_map(
                batched, mesh=self.mesh, in_specs=(P(AXIS),) * n_pop + (P(), P()), out_specs=P(AXIS), check_vma=False
            )
            self._programs[cache_key] = jax.jit(sharded).lower(*args).compile()
            self.n_compiles += 1
        return self._programs[cache_key]

    @staticmethod
    def _host(x) -> np.ndarray:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    def _host_batch(self, params_batch):
        leaves = jax.tree.leaves(params_batch)
        if not leaves:
            raise ConfigurationError("params_batch is empty; pass the pytree returned by get_next_params.")
        host = jax.tree.map(np.asarray, params_batch)
        sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(host)}
        if len(sizes) != 1 or None in sizes:
            raise ConfigurationError(
                f"Every params_batch leaf must have the same leading n_parallel axis, got leading sizes {sizes}."
            )
        n = sizes.pop()
        self._check_n(n)
        return host, n

    def buckets(self, params_batch):
        """Members grouped by static values: a list of ``(static dict, member indices)``, in a fixed order."""
        host, n = self._host_batch(params_batch)
        _, static_values = self._split(host)
        groups = {}
        for i in range(n):
            static = tuple((k, _python_value(v[i])) for k, v in static_values.items())
            groups.setdefault(static, []).append(i)
        return [(dict(s), np.asarray(idx)) for s, idx in sorted(groups.items())]

    def _one_bucket(self, params_batch):
        groups = self.buckets(params_batch)
        if len(groups) > 1:
            raise ConfigurationError(
                f"The members of params_batch have {len(groups)} different values of the static "
                f"hyperparameters {self.static} ({[g[0] for g in groups]}); a PopulationState holds one "
                f"shape. Split the batch with trainer.buckets(params_batch), or call trainer(key, params_batch)."
            )
        return groups[0][0]

    def __call__(self, key, params_batch) -> jax.Array:
        """Train and evaluate every member: ``metrics (n_parallel,)``, NaN for diverged members.

        Member ``i`` is trained exactly as ``trainer.objective(jax.random.split(key, n)[i], params_i)``.
        """
        if _is_traced(params_batch) or _is_traced(key):
            return self._traced_call(key, params_batch)
        host, n = self._host_batch(params_batch)
        keys = np.asarray(jax.random.key_data(jax.random.split(_as_key(key), n)))
        traced, _ = self._split(host)
        results = np.full((n,), np.nan, np.float32)
        d = jax.device_count()
        for static, idx in self.buckets(host):
            # Pad to a power-of-two number of device-multiples: few distinct sizes, few compiles.
            size = min(d * 2 ** math.ceil(math.log2(-(-len(idx) // d))), n)
            sel = np.concatenate([idx, np.repeat(idx[:1], size - len(idx))])
            sub = jax.tree.map(lambda x: x[sel], traced)
            self._check_usage(jax.tree.map(lambda x: x[0], sub), static)
            args = (*self._put((keys[sel], sub), P(AXIS)), *self._data())
            fn = lambda k, h, tr, ev, s=static: self._full_member(s, k, h, tr, ev)  # noqa: E731
            out = self._program("full", static, size, self._config(static)[1], fn, args)(*args)
            results[idx] = self._host(out)[: len(idx)]
        return jnp.asarray(results)

    def _traced_call(self, key, params_batch):
        traced, static_values = self._split(params_batch)
        if static_values:
            return self.objective(key, jax.tree.map(lambda x: x[0], params_batch))  # raises the static error
        n = jax.tree.leaves(params_batch)[0].shape[0]
        return jax.vmap(self.objective)(jax.random.split(_as_key(key), n), params_batch)

    # -- checkpointing hooks ------------------------------------------------------

    def init_population(self, key, params_batch) -> PopulationState:
        """Fresh members for ``params_batch`` (one static bucket), sharded over the population axis."""
        static = self._one_bucket(params_batch)
        host, n = self._host_batch(params_batch)
        traced, _ = self._split(host)
        self._check_usage(jax.tree.map(lambda x: x[0], traced), static)
        keys = np.asarray(jax.random.key_data(jax.random.split(_as_key(key), n)))
        args = (*self._put((keys, traced), P(AXIS)), *self._data())
        fn = lambda k, h, tr, ev: self._init_member(static, k, _merge(h, static))  # noqa: E731
        return self._program("init", static, n, None, fn, args)(*args)

    def train_steps(self, pop_state: PopulationState, params_batch, n_steps: int) -> PopulationState:
        """``n_steps`` more training steps of every member (compiled once per ``n_steps``)."""
        check_positive_int("n_steps", n_steps)
        static = self._one_bucket(params_batch)
        host, n = self._host_batch(params_batch)
        traced, _ = self._split(host)
        batch_size, _ = self._config(static)
        args = (*self._put((pop_state, traced), P(AXIS)), *self._data())

        def fn(m, h, tr, ev):
            return self._train_member(static, m, _merge(h, static), batch_size, n_steps, tr)

        return self._program("train", static, n, n_steps, fn, args)(*args)

    def evaluate(self, pop_state: PopulationState, params_batch) -> jax.Array:
        """The eval metric of every member, ``(n_parallel,)``; NaN for diverged members."""
        static = self._one_bucket(params_batch)
        host, n = self._host_batch(params_batch)
        traced, _ = self._split(host)
        args = (*self._put((pop_state, traced), P(AXIS)), *self._data())
        fn = lambda m, h, tr, ev: self._eval_member(static, m, _merge(h, static), ev)  # noqa: E731
        return jnp.asarray(self._host(self._program("eval", static, n, None, fn, args)(*args)))

    def run(self, key, params_batch, *, checkpoint_fn=None, start_state=None, checkpoint_every=None) -> jax.Array:
        """Train in chunks of ``checkpoint_every`` steps, calling ``checkpoint_fn(pop_state, step)`` after each.

        ``start_state`` (e.g. restored from a checkpoint) resumes at its ``step``.
        Batches and dropout depend only on the key and the step, so the metrics
        equal those of ``trainer(key, params_batch)`` however training is chunked.
        """
        every = checkpoint_every or self.checkpoint_every
        if every is not None:
            check_positive_int("checkpoint_every", every)
        static = self._one_bucket(params_batch)
        _, n_steps = self._config(static)
        state = self.init_population(key, params_batch) if start_state is None else start_state
        done = int(self._host(state.step).reshape(-1)[0])
        if done > n_steps:
            raise ConfigurationError(f"start_state has taken {done} steps, more than n_steps={n_steps}.")
        while done < n_steps:
            chunk = min(every or n_steps, n_steps - done)
            state = self.train_steps(state, params_batch, chunk)
            done += chunk
            if checkpoint_fn is not None:
                checkpoint_fn(state, done)
        return self.evaluate(state, params_batch)
