"""PopulationTrainer: the user-facing object that trains a batch of configurations as one population.

It validates the configuration, buckets members by static hyperparameters, and
runs the per-member functions of :mod:`~hyperoptax.integrations.flax.member`
as sharded, compiled programs (:mod:`~hyperoptax.integrations.flax.sharding`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from hyperoptax._keys import as_key, is_key
from hyperoptax.errors import ConfigurationError, check_positive_int
from hyperoptax.integrations.flax.defaults import accuracy, default_optimizer, softmax_cross_entropy
from hyperoptax.integrations.flax.hyperparams import (
    UsageCheck,
    bucket_config,
    check_static_space,
    group_by_static,
    host_batch,
    is_traced,
    merge,
    python_value,
    split_static,
)
from hyperoptax.integrations.flax.member import MemberSpec, PopulationState
from hyperoptax.integrations.flax.models import model_adapter
from hyperoptax.integrations.flax.sharding import (
    AXIS,
    Programs,
    check_population_size,
    host,
    population_mesh,
    population_program,
    put,
)

__all__ = ["PopulationTrainer"]


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
def _member_keys(key, n: int) -> np.ndarray:
    """Raw key data ``(n, ...)``: ``key`` split ``n`` ways, or ``key`` itself if it already holds ``n`` keys."""
    data = np.asarray(jax.random.key_data(key) if is_key(key) else key, np.uint32)
    single = data.ndim == (jax.random.key_data(jax.random.key(0)).ndim)
    if single:
        return np.asarray(jax.random.key_data(jax.random.split(as_key(key), n)))
    if data.shape[0] != n:
        raise ConfigurationError(f"Got {data.shape[0]} member keys for a population of {n}.")
    return data


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
        self._model = model_adapter(model)
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
            check_static_space(space, self.static)
        self._programs = Programs()  # (kind, static values, n, n_steps) -> compiled executable
        self._usage = UsageCheck()
        self._device_data = None

    @property
    def n_compiles(self) -> int:
        """How many programs this trainer has compiled (one per kind, static bucket, size and step count)."""
        return self._programs.n_compiles

    @property
    def _member(self) -> MemberSpec:
        # Built from the attributes on each use, so the trainer's attributes stay the one source.
        return MemberSpec(
            model=self._model,
            optimizer_fn=self.optimizer_fn,
            loss_fn=self.loss_fn,
            metric_fn=self.metric_fn,
            inputs_key=self.inputs_key,
            labels_key=self.labels_key,
            x_example=self.train_data[self.inputs_key][:1],
            eval_batch_size=self.eval_batch_size,
        )

    # -- hyperparameter bookkeeping -------------------------------------------

    def _split(self, params):
        """``params`` -> (traced part, {static name: per-member values})."""
        return split_static(params, self.static)

    def _config(self, static: Mapping):
        """Batch size and step count of a bucket: static overrides of the trainer's defaults."""
        return bucket_config(static, self.batch_size, self.n_steps)

    def _check_usage(self, traced_one, static: Mapping):
        """Trace one member once with a recording dict; unread hyperparameters raise."""

        def one_member(key, hparams):  # every component that reads hyperparameters, one step
            member, (train, eval_data) = self._member, self._constants()
            state = member.init(static, key, hparams)
            state = member.train(static, state, hparams, self._config(static)[0], 1, train)
            return member.evaluate(static, state, hparams, eval_data)

        self._usage(one_member, traced_one, static, self.allow_unused)

    def _full_member(self, static, key, hparams, train, eval_data):
        batch_size, n_steps = self._config(static)
        hp = merge(hparams, static)
        member = self._member
        state = member.init(static, key, hp)
        state = member.train(static, state, hp, batch_size, n_steps, train)
        return member.evaluate(static, state, hp, eval_data)

    # -- single-member objective ----------------------------------------------

    def objective(self, key, params) -> jax.Array:
        """``func(key, params) -> scalar``: train and evaluate one member.

        Traceable, so ``optimize_scan`` can ``jax.vmap`` it and jit a whole sweep.
        Static hyperparameters must be concrete here; under tracing use
        ``trainer(key, params_batch)`` with ``optimize`` / ``update_state`` instead.
        """
        traced, static_values = self._split(params)
        for name, value in static_values.items():
            if is_traced(value):
                raise ConfigurationError(
                    f"Hyperparameter {name!r} is static (it changes shapes or step counts), but "
                    f"trainer.objective received it as a traced value (under jit/vmap, e.g. inside "
                    f"optimize_scan), where members cannot be bucketed by it. Use "
                    f"metrics = trainer(key, params_batch) with optimizer.optimize or "
                    f"optimizer.update_state instead, or fix {name!r} outside the search space."
                )
        static = {k: python_value(v) for k, v in static_values.items()}
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
        return population_mesh()

    def _put(self, tree, spec):
        return put(tree, self.mesh, spec)

    def _data(self):
        if self._device_data is None:
            self._device_data = (self._put(self.train_data, P()), self._put(self.eval_data, P()))
        return self._device_data

    def _program(self, kind, static, n, n_steps, member_fn, args, n_replicated=2):
        """Compile ``jit(shard_map(vmap(member_fn)))`` once per (kind, static values, n, n_steps).

        ``args``: per-member arguments, then ``n_replicated`` shared ones (last the train / eval data).
        """
        cache_key = (kind, tuple(sorted(static.items())), n, n_steps)
        return self._programs.compile(
            cache_key, lambda: population_program(member_fn, self.mesh, len(args) - n_replicated, n_replicated), args
        )

    def _host_batch(self, params_batch):
        host_params, n = host_batch(params_batch)
        check_population_size(n)
        return host_params, n

    def buckets(self, params_batch):
        """Members grouped by static values: a list of ``(static dict, member indices)``, in a fixed order."""
        host_params, n = self._host_batch(params_batch)
        _, static_values = self._split(host_params)
        return group_by_static(static_values, n)

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
        if is_traced(params_batch) or is_traced(key):
            return self._traced_call(key, params_batch)
        host_params, n = self._host_batch(params_batch)
        keys = np.asarray(jax.random.key_data(jax.random.split(as_key(key), n)))
        traced, _ = self._split(host_params)
        results = np.full((n,), np.nan, np.float32)
        d = jax.device_count()
        for static, idx in self.buckets(host_params):
            # Pad to a power-of-two number of device-multiples: few distinct sizes, few compiles.
            size = min(d * 2 ** math.ceil(math.log2(-(-len(idx) // d))), n)
            sel = np.concatenate([idx, np.repeat(idx[:1], size - len(idx))])
            sub = jax.tree.map(lambda x: x[sel], traced)
            self._check_usage(jax.tree.map(lambda x: x[0], sub), static)
            args = (*self._put((keys[sel], sub), P(AXIS)), *self._data())
            fn = lambda k, h, tr, ev, s=static: self._full_member(s, k, h, tr, ev)  # noqa: E731
            out = self._program("full", static, size, self._config(static)[1], fn, args)(*args)
            results[idx] = host(out)[: len(idx)]
        return jnp.asarray(results)

    def _traced_call(self, key, params_batch):
        traced, static_values = self._split(params_batch)
        if static_values:
            return self.objective(key, jax.tree.map(lambda x: x[0], params_batch))  # raises the static error
        n = jax.tree.leaves(params_batch)[0].shape[0]
        return jax.vmap(self.objective)(jax.random.split(as_key(key), n), params_batch)

    # -- checkpointing hooks ------------------------------------------------------

    def init_population(self, key, params_batch) -> PopulationState:
        """Fresh members for ``params_batch`` (one static bucket), sharded over the population axis.

        ``key`` is split into one key per member, or is already one key per member (a leading ``n`` axis).
        """
        static = self._one_bucket(params_batch)
        host_params, n = self._host_batch(params_batch)
        traced, _ = self._split(host_params)
        self._check_usage(jax.tree.map(lambda x: x[0], traced), static)
        keys = _member_keys(key, n)
        args = (*self._put((keys, traced), P(AXIS)), *self._data())
        fn = lambda k, h, tr, ev: self._member.init(static, k, merge(h, static))  # noqa: E731
        return self._program("init", static, n, None, fn, args)(*args)

    def train_steps(self, pop_state: PopulationState, params_batch, n_steps: int) -> PopulationState:
        """``n_steps`` more training steps of every member (compiled once per ``n_steps``)."""
        check_positive_int("n_steps", n_steps)
        static = self._one_bucket(params_batch)
        host_params, n = self._host_batch(params_batch)
        traced, _ = self._split(host_params)
        batch_size, _ = self._config(static)
        args = (*self._put((pop_state, traced), P(AXIS)), *self._data())

        def fn(m, h, tr, ev):
            return self._member.train(static, m, merge(h, static), batch_size, n_steps, tr)

        return self._program("train", static, n, n_steps, fn, args)(*args)

    def evaluate(self, pop_state: PopulationState, params_batch) -> jax.Array:
        """The eval metric of every member, ``(n_parallel,)``; NaN for diverged members."""
        static = self._one_bucket(params_batch)
        host_params, n = self._host_batch(params_batch)
        traced, _ = self._split(host_params)
        args = (*self._put((pop_state, traced), P(AXIS)), *self._data())
        fn = lambda m, h, tr, ev: self._member.evaluate(static, m, merge(h, static), ev)  # noqa: E731
        return jnp.asarray(host(self._program("eval", static, n, None, fn, args)(*args)))

    # -- slots: segments of any length, members re-initialized in place -----------

    def train_and_evaluate(self, pop_state: PopulationState, params_batch, n_steps) -> tuple[PopulationState, jax.Array]:
        """``n_steps`` more steps of every member, then its eval metric: ``(pop_state, metrics (n,))``.

        ``n_steps`` is an argument of the compiled program, not part of it: segments of any length share one
        program per static bucket and population size (schedulers train in segments between rungs).
        """
        check_positive_int("n_steps", int(n_steps))
        static = self._one_bucket(params_batch)
        host_params, n = self._host_batch(params_batch)
        traced, _ = self._split(host_params)
        batch_size, _ = self._config(static)
        args = (*self._put((pop_state, traced), P(AXIS)), *self._put((jnp.asarray(n_steps, jnp.int32),), P()),
                *self._data())

        def fn(m, h, steps, tr, ev):
            hp = merge(h, static)
            m = self._member.train(static, m, hp, batch_size, steps, tr)
            return m, self._member.evaluate(static, m, hp, ev)

        pop_state, metrics = self._program("segment", static, n, None, fn, args, n_replicated=3)(*args)
        return pop_state, jnp.asarray(host(metrics))

    def refill(self, pop_state: PopulationState, params_batch, keys, mask) -> PopulationState:
        """Members where ``mask`` start afresh (new weights and optimizer state from ``keys[i]`` and the
        hyperparameters of ``params_batch``); the others keep their state. Shapes never change."""
        static = self._one_bucket(params_batch)
        host_params, n = self._host_batch(params_batch)
        traced, _ = self._split(host_params)
        self._check_usage(jax.tree.map(lambda x: x[0], traced), static)
        keys = _member_keys(keys, n)
        mask = np.asarray(mask, bool)
        args = (*self._put((pop_state, traced, keys, mask), P(AXIS)), *self._data())

        def fn(m, h, k, fresh, tr, ev):
            new = self._member.init(static, k, merge(h, static))
            return jax.tree.map(lambda a, b: jnp.where(fresh, a, b), new, m)

        return self._program("refill", static, n, None, fn, args)(*args)

    def exploit(self, pop_state: PopulationState, params_batch, source) -> PopulationState:
        """Member ``i`` takes the weights, optimizer state, step and health of member ``source[i]`` (a gather
        across the population axis, sharded or not, in one compiled program), keeps its own data stream
        (``rng``), and continues with the hyperparameters of ``params_batch``: those that
        ``optax.inject_hyperparams`` keeps in the optimizer state are set there. Population-based training's
        exploit step (:mod:`hyperoptax.integrations.flax.pbt`); ``source[i] = i`` only sets hyperparameters.
        """
        static = self._one_bucket(params_batch)
        host_params, n = self._host_batch(params_batch)
        traced, _ = self._split(host_params)
        source = np.asarray(source, np.int32).reshape(-1)
        if source.shape != (n,) or source.min(initial=0) < 0 or source.max(initial=0) >= n:
            raise ConfigurationError(f"source must hold {n} member indices in [0, {n}), got {source.tolist()}.")
        args = (*self._put((pop_state, traced), P(AXIS)), *self._put((source,), P()))
        member, mesh = self._member, self.mesh

        def build():
            def program(state, hparams, src):
                copied = jax.tree.map(lambda x: x[src], state).replace(rng=state.rng)
                set_hp = lambda m, h: member.set_hyperparams(m, merge(h, static))  # noqa: E731
                return population_program(set_hp, mesh, 2, 0)(copied, hparams)

            return program

        return self._programs.compile(("exploit", tuple(sorted(static.items())), n, None), build, args)(*args)

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
        done = int(host(state.step).reshape(-1)[0])
        if done > n_steps:
            raise ConfigurationError(f"start_state has taken {done} steps, more than n_steps={n_steps}.")
        while done < n_steps:
            chunk = min(every or n_steps, n_steps - done)
            state = self.train_steps(state, params_batch, chunk)
            done += chunk
            if checkpoint_fn is not None:
                checkpoint_fn(state, done)
        return self.evaluate(state, params_batch)
