"""Search spaces.

A search space is any pytree (dicts, lists, tuples, dataclasses) whose leaves
are :class:`Space` objects. Each Space is a frozen dataclass with only static
fields, so a space pytree can live inside jitted state at no cost.

Every Space maps its values to and from the unit cube:

* ``encode(value) -> (n_dims,)`` coordinates in ``[0, 1]``;
* ``decode(u) -> value``, already transformed (integers rounded, discrete
  values snapped).

Log spaces are encoded on a log scale, integer spaces continuously over
``[lo - 0.5, hi + 0.5]`` (so every integer owns an equal share of the cube),
numeric discrete values by their rank, and categories (strings, booleans, any
non-numeric value) one-hot. The GP only ever sees these coordinates. Sampling
a space is decoding a uniform point of its cube, so random search and the GP's
candidate sampler share one definition of "uniform".

Values are *stored* as numbers: a category is stored as its index into
``values``. :func:`decode_params` turns stored values back into the user's
strings.
"""

from __future__ import annotations

import math
import numbers
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from hyperoptax.errors import BoundsError, HyperoptaxWarning, SpaceError, ValueSnappedWarning

__all__ = [
    "Space",
    "LinearSpace",
    "LogSpace",
    "QLinearSpace",
    "QLogSpace",
    "DiscreteSpace",
    "log_transform",
    "space_leaves",
    "n_params",
    "n_dims",
    "encode",
    "decode",
    "encode_rows",
    "snap",
    "sample_unit",
    "flatten_params",
    "unflatten_params",
    "decode_params",
    "stored_params",
    "categorical_dims",
    "check_values",
    "leaf_names",
    "coordinate_groups",
    "discrete_neighbors",
    "has_discrete",
]

_STATIC = dict(static=True)


def log_transform(x, base):
    """Logarithm of ``x`` in base ``base``."""
    return jnp.log(x) / jnp.log(base)


def _is_real_number(value) -> bool:
    return isinstance(value, (numbers.Real, np.number)) and not isinstance(value, (bool, np.bool_))


def _check_bound(cls_name: str, name: str, value) -> float:
    if not _is_real_number(value) or not math.isfinite(float(value)):
        raise BoundsError(
            f"{cls_name}: {name} must be a finite real number, got {value!r}. "
            f"Example: {cls_name}(0.0, 1.0)."
        )
    return float(value)


# Values reach the search in float32: a bound like 0.1 is stored as 0.10000000149, an
# exp(log(x)) trip moves a value by an ulp. Values this close to a bound are on it.
_SLACK = 4 * float(np.finfo(np.float32).eps)


def _shown(values) -> str:
    values = [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).reshape(-1)[:3].tolist()]
    return ", ".join(repr(v) for v in values) + (", ..." if np.size(values) > 3 else "")


def _check_finite(values: np.ndarray, name: str, space) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        raise SpaceError(
            f"{name} = {_shown(values[bad])} is not a finite number, so it is no point of {space.describe()}. "
            f"A configuration must be finite; to report a failed trial, pass a NaN *result* instead."
        )


def _snapped(name: str, space, before: np.ndarray, after: np.ndarray, what: str) -> None:
    changed = np.abs(after - before) > _SLACK * np.maximum(np.abs(before), np.abs(after))
    if changed.any():
        warnings.warn(
            f"{name} = {_shown(before[changed])} {what} of {space.describe()}; recorded as "
            f"{_shown(after[changed])}.",
            ValueSnappedWarning,
            stacklevel=4,
        )


@dataclass(frozen=True)
class Space(ABC):
    """Abstract base class for hyperparameter search spaces."""

    @property
    @abstractmethod
    def n_dims(self) -> int:
        """Number of unit-cube coordinates this space encodes to."""

    @property
    def dtype(self):
        """dtype of the values this space produces (as stored)."""
        return float

    @abstractmethod
    def encode(self, value: jax.Array) -> jax.Array:
        """Map a stored value (scalar) to unit-cube coordinates, shape ``(n_dims,)``."""

    @abstractmethod
    def decode(self, u: jax.Array) -> jax.Array:
        """Map unit-cube coordinates ``(n_dims,)`` to a stored, transformed scalar value."""

    def sample(self, key: jax.Array, shape=(1,)) -> jax.Array:
        """Values drawn uniformly with respect to this space's scale, an array of ``shape``.

        The default ``(1,)`` is hyperoptax 0.2.0's: one value in a 1-element
        array. ``shape=()`` gives a scalar, ``shape=(n,)`` ``n`` values.
        """
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        U = jax.random.uniform(key, (math.prod(shape), self.n_dims))
        return jax.vmap(self.decode)(U).reshape(shape)

    def transform(self, value):
        """Snap ``value`` onto the space (rounding, nearest discrete value)."""
        return value

    def to_python(self, value) -> Any:
        """A stored value as the plain Python value a user passes to their code."""
        return float(value)

    def describe(self) -> str:
        """The space as a user wrote it, for messages."""
        return repr(self)

    def check(self, values, name: str = "value") -> np.ndarray:
        """Stored values (a 1-D array) checked against the space, as float64.

        A value outside the space (or NaN/inf) raises :class:`~hyperoptax.errors.SpaceError`
        naming ``name``, the value and the space; a value inside it that is not one of
        its points (a non-integer of an integer space, a number between two values of a
        :class:`DiscreteSpace`) is moved onto it with a
        :class:`~hyperoptax.errors.ValueSnappedWarning` saying what changed.
        """
        values = np.asarray(values, np.float64)
        _check_finite(values, name, self)
        return values


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class LinearSpace(Space):
    """Uniform continuous space over ``[lower_bound, upper_bound]``.

    Attributes:
        lower_bound: Inclusive lower bound of the interval.
        upper_bound: Exclusive upper bound of the interval.
    """

    lower_bound: float = field(metadata=_STATIC)
    upper_bound: float = field(metadata=_STATIC)

    def __post_init__(self):
        name = type(self).__name__
        lo = _check_bound(name, "lower_bound", self.lower_bound)
        hi = _check_bound(name, "upper_bound", self.upper_bound)
        if not lo < hi:
            raise BoundsError(
                f"{name}: lower_bound must be smaller than upper_bound, got "
                f"lower_bound={self.lower_bound!r}, upper_bound={self.upper_bound!r}. "
                f"Swap them or widen the interval; for a fixed value use DiscreteSpace([value])."
            )

    @property
    def n_dims(self) -> int:
        return 1

    def _edges(self) -> tuple[float, float]:
        """The interval, on the encoding scale, that the unit cube stretches over."""
        return float(self.lower_bound), float(self.upper_bound)

    def _to_scale(self, value):
        return value

    def _from_scale(self, s):
        return s

    def encode(self, value):
        lo, hi = self._edges()
        s = self._to_scale(jnp.asarray(value, float))
        return jnp.reshape((s - lo) / (hi - lo), (1,))

    def decode(self, u):
        lo, hi = self._edges()
        s = lo + jnp.clip(jnp.reshape(u, ()), 0.0, 1.0) * (hi - lo)
        return self.transform(self._clip(self._from_scale(s)))

    def _clip(self, value):
        # exp(log(x)) can land a hair outside the bounds in float32.
        return jnp.clip(value, self.lower_bound, self.upper_bound)

    def describe(self) -> str:
        return f"{type(self).__name__}({self.lower_bound!r}, {self.upper_bound!r})"

    def _slack(self) -> tuple[float, float]:
        scale = max(abs(float(self.lower_bound)), abs(float(self.upper_bound)))
        return _SLACK * scale, _SLACK * scale

    def check(self, values, name: str = "value") -> np.ndarray:
        values = Space.check(self, values, name)
        lo, hi = float(self.lower_bound), float(self.upper_bound)
        slack_lo, slack_hi = self._slack()
        bad = (values < lo - slack_lo) | (values > hi + slack_hi)
        if bad.any():
            raise SpaceError(
                f"{name} = {_shown(values[bad])} is outside {self.describe()}: values must lie in "
                f"[{lo!r}, {hi!r}]. Pass configurations from get_next_params, or widen the space."
            )
        return np.clip(values, lo, hi)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class LogSpace(LinearSpace):
    """Log-uniform continuous space over ``[lower_bound, upper_bound]``.

    Attributes:
        lower_bound: Inclusive lower bound (in original scale, e.g. ``1e-5``).
        upper_bound: Exclusive upper bound (in original scale, e.g. ``1e-1``).
        base: Logarithm base (default ``10``). Must be greater than 1.
    """

    base: float = field(default=10, metadata=_STATIC)

    def __post_init__(self):
        super().__post_init__()
        name = type(self).__name__
        if self.lower_bound <= 0:
            raise BoundsError(
                f"{name}: bounds must be positive on a log scale, got "
                f"lower_bound={self.lower_bound!r}. Use a positive lower bound such as 1e-6, "
                f"or LinearSpace for ranges that include zero."
            )
        base = _check_bound(name, "base", self.base)
        if base <= 1:
            raise BoundsError(f"{name}: base must be greater than 1, got base={self.base!r}. Use base=10 or base=2.")

    def _edges(self):
        return math.log(self.lower_bound), math.log(self.upper_bound)

    def _to_scale(self, value):
        return jnp.log(value)

    def _from_scale(self, s):
        return jnp.exp(s)

    def _slack(self):
        return _SLACK * float(self.lower_bound), _SLACK * float(self.upper_bound)

    def describe(self) -> str:
        base = "" if self.base == 10 else f", base={self.base!r}"
        return f"{type(self).__name__}({self.lower_bound!r}, {self.upper_bound!r}{base})"


class _Quantized:
    """Mixin: integer values, each owning an equal share ``[k - 0.5, k + 0.5]`` of the cube."""

    @property
    def dtype(self):
        return self.datatype

    def _int_bounds(self) -> tuple[int, int]:
        return math.ceil(self.lower_bound), math.floor(self.upper_bound)

    def _check_integers(self):
        lo, hi = self._int_bounds()
        if lo > hi:
            raise BoundsError(
                f"{type(self).__name__}({self.lower_bound!r}, {self.upper_bound!r}) contains no integer. "
                f"Widen the interval so it includes at least one integer."
            )

    def _clip(self, value):
        lo, hi = self._int_bounds()
        return jnp.clip(value, lo, hi)

    def transform(self, value):
        lo, hi = self._int_bounds()
        return jnp.clip(jnp.round(value), lo, hi).astype(self.datatype)

    def to_python(self, value):
        return int(value)

    def check(self, values, name: str = "value") -> np.ndarray:
        values = super().check(values, name)
        lo, hi = self._int_bounds()
        rounded = np.clip(np.round(values), lo, hi)
        _snapped(name, self, values, rounded, "are not integers" if np.size(values) > 1 else "is not an integer")
        return rounded


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class QLinearSpace(_Quantized, LinearSpace):
    """Quantized (integer) variant of :class:`LinearSpace`: integers in ``[lower_bound, upper_bound]``.

    Attributes:
        datatype: Integer dtype used after rounding (default ``jnp.int32``).
    """

    datatype: type = field(default=jnp.int32, metadata=_STATIC)

    def __post_init__(self):
        LinearSpace.__post_init__(self)
        self._check_integers()

    def _edges(self):
        lo, hi = self._int_bounds()
        return lo - 0.5, hi + 0.5


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class QLogSpace(_Quantized, LogSpace):
    """Quantized (integer) variant of :class:`LogSpace`: integers on a log scale.

    Attributes:
        datatype: Integer dtype used after rounding (default ``jnp.int32``).
    """

    datatype: type = field(default=jnp.int32, metadata=_STATIC)

    def __post_init__(self):
        LogSpace.__post_init__(self)
        self._check_integers()
        if self._int_bounds()[0] < 1:
            raise BoundsError(
                f"QLogSpace: the smallest integer must be >= 1 on a log scale, got "
                f"lower_bound={self.lower_bound!r}. Use QLinearSpace to include 0."
            )

    def _edges(self):
        lo, hi = self._int_bounds()
        return math.log(lo - 0.5), math.log(hi + 0.5)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class DiscreteSpace(Space):
    """Discrete space over a fixed set of values.

    Numbers are searched by rank (an ordinal coordinate); any other values
    (strings, booleans, ...) are categories, searched one-hot and stored as
    their index into ``values``. ``transform`` snaps any number to the nearest
    element.

    Attributes:
        values: Tuple of candidate values to sample from.
    """

    values: tuple = field(metadata=_STATIC)

    def __post_init__(self):
        values = self.values
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise SpaceError(
                f"DiscreteSpace: values must be a list or tuple, got {values!r}. "
                f"Example: DiscreteSpace(['adam', 'sgd']) or DiscreteSpace([16, 32, 64])."
            )
        values = tuple(v.item() if isinstance(v, np.generic) else v for v in values)
        if not values:
            raise SpaceError("DiscreteSpace: values is empty. Pass at least one value, e.g. DiscreteSpace([0.1]).")
        numeric = [_is_real_number(v) for v in values]
        if any(numeric) and not all(numeric):
            raise SpaceError(
                f"DiscreteSpace: values mix numbers and non-numbers: {values!r}. "
                f"Use only numbers (searched by rank) or only categories such as strings."
            )
        if all(numeric) and not all(math.isfinite(v) for v in values):
            raise SpaceError(f"DiscreteSpace: values must be finite, got {values!r}.")
        try:
            duplicates = len(set(values)) != len(values)
        except TypeError:
            raise SpaceError(f"DiscreteSpace: values must be hashable, got {values!r}.") from None
        if duplicates:
            unique = tuple(dict.fromkeys(values))
            warnings.warn(
                f"DiscreteSpace: values {values!r} repeat {_shown([v for v in unique if values.count(v) > 1])}; "
                f"each value is searched once: {unique!r}.",
                HyperoptaxWarning,
                stacklevel=3,
            )
            values = unique
        if all(numeric):
            # The search stores values in float32, where subnormals flush to zero.
            f32 = np.asarray(values, np.float32)
            f32 = np.where(np.abs(f32) < np.finfo(np.float32).tiny, 0.0, f32)
            if len(set(f32.tolist())) != len(values):
                raise SpaceError(
                    f"DiscreteSpace: values {values!r} are not all distinct in float32, which the search "
                    f"stores them in. Use values that differ by more than float32 precision."
                )
        object.__setattr__(self, "values", values)

    @property
    def is_categorical(self) -> bool:
        return not _is_real_number(self.values[0])

    @property
    def n_dims(self) -> int:
        return len(self.values) if self.is_categorical else 1

    @property
    def dtype(self):
        if self.is_categorical:
            return jnp.int32
        return jnp.int32 if all(isinstance(v, numbers.Integral) for v in self.values) else float

    @property
    def lower_bound(self) -> float:
        return 0.0 if self.is_categorical else float(min(self.values))

    @property
    def upper_bound(self) -> float:
        return float(len(self.values) - 1) if self.is_categorical else float(max(self.values))

    def _sorted(self):
        return jnp.asarray(sorted(self.values), self.dtype)

    def encode(self, value):
        k = len(self.values)
        value = jnp.asarray(value)
        if self.is_categorical:
            return jax.nn.one_hot(jnp.round(value).astype(jnp.int32), k, dtype=float)
        rank = jnp.argmin(jnp.abs(self._sorted().astype(float) - value.astype(float)))
        return jnp.reshape((rank + 0.5) / k, (1,)).astype(float)

    def decode(self, u):
        k = len(self.values)
        if self.is_categorical:
            return jnp.argmax(u).astype(jnp.int32)
        rank = jnp.clip(jnp.floor(jnp.reshape(u, ()) * k), 0, k - 1).astype(jnp.int32)
        return self._sorted()[rank]

    def transform(self, value):
        value = jnp.asarray(value)
        if self.is_categorical:
            return jnp.clip(jnp.round(value), 0, len(self.values) - 1).astype(jnp.int32)
        vals = self._sorted()
        flat = jnp.ravel(value).astype(float)
        snapped = vals[jnp.argmin(jnp.abs(vals[:, None].astype(float) - flat[None, :]), axis=0)]
        return snapped.reshape(value.shape)

    def to_python(self, value):
        if self.is_categorical:
            return self.values[int(value)]
        # The user's own value, not its float32 image (0.1, not 0.10000000149).
        return min(self.values, key=lambda v: abs(v - float(value)))

    def describe(self) -> str:
        return f"DiscreteSpace({list(self.values)!r})"

    def check(self, values, name: str = "value") -> np.ndarray:
        values = Space.check(self, values, name)
        if self.is_categorical:
            k = len(self.values)
            index = np.round(values)
            bad = (np.abs(values - index) > _SLACK) | (index < 0) | (index >= k)
            if bad.any():
                raise SpaceError(
                    f"{name} = {_shown(values[bad])} is not a category of {self.describe()}: a category is "
                    f"stored as its index, an integer in 0..{k - 1} (or pass the category itself, e.g. "
                    f"{self.values[0]!r})."
                )
            return index
        allowed = np.asarray(sorted(float(v) for v in self.values))
        slack = _SLACK * max(abs(allowed[0]), abs(allowed[-1]))
        bad = (values < allowed[0] - slack) | (values > allowed[-1] + slack)
        if bad.any():
            raise SpaceError(
                f"{name} = {_shown(values[bad])} is outside {self.describe()}: values must lie in "
                f"[{allowed[0]!r}, {allowed[-1]!r}]. Pass configurations from get_next_params, or add the value."
            )
        nearest = allowed[np.argmin(np.abs(allowed[None, :] - values[:, None]), axis=1)]
        _snapped(name, self, values, nearest, "are not values" if np.size(values) > 1 else "is not a value")
        return nearest


# --------------------------------------------------------------------------
# Whole space pytrees
# --------------------------------------------------------------------------


def _is_space(x) -> bool:
    return isinstance(x, Space)


def space_leaves(space) -> tuple[list[Space], Any]:
    """The Space leaves of a space pytree and its treedef; a clear error for anything else."""
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(space, is_leaf=_is_space)
    leaves = []
    for path, leaf in leaves_with_path:
        if not _is_space(leaf):
            where = jax.tree_util.keystr(path) or "the root"
            raise SpaceError(
                f"The search space has a non-Space leaf at {where}: {leaf!r}. Every leaf must be a "
                f"hyperoptax Space; wrap a fixed value as DiscreteSpace([{leaf!r}]) or pass it to your "
                f"objective directly."
            )
        leaves.append(leaf)
    if not leaves:
        raise SpaceError(
            f"The search space {space!r} contains no Space. Pass a pytree of spaces, e.g. "
            f"{{'learning_rate': LogSpace(1e-5, 1e-1), 'dropout': LinearSpace(0.0, 0.5)}}."
        )
    return leaves, treedef


def n_params(space) -> int:
    """Number of hyperparameters (Space leaves)."""
    return len(space_leaves(space)[0])


def n_dims(space) -> int:
    """Dimension of the unit cube the space encodes to."""
    return sum(leaf.n_dims for leaf in space_leaves(space)[0])


def categorical_dims(space) -> np.ndarray:
    """Boolean mask over unit-cube dims: True for one-hot category coordinates."""
    flags = []
    for leaf in space_leaves(space)[0]:
        flags += [isinstance(leaf, DiscreteSpace) and leaf.is_categorical] * leaf.n_dims
    return np.asarray(flags, bool)


class _Layout:
    """Static, vectorized description of a space's interval leaves.

    Interval spaces (Linear, Log and their integer variants) are encoded with one
    affine map per column on a linear or log scale; doing all of them as array
    ops, instead of one small op chain per leaf, keeps compiled programs small
    (a 30-parameter space compiles as fast as a 2-parameter one).
    """

    def __init__(self, leaves: list[Space]):
        self.leaves = leaves
        self.interval = [i for i, leaf in enumerate(leaves) if isinstance(leaf, LinearSpace)]
        interval = [leaves[i] for i in self.interval]
        self.lo = np.array([leaf._edges()[0] for leaf in interval])
        self.hi = np.array([leaf._edges()[1] for leaf in interval])
        self.is_log = np.array([isinstance(leaf, LogSpace) for leaf in interval], bool)
        self.is_int = np.array([isinstance(leaf, _Quantized) for leaf in interval], bool)
        bounds = [leaf._int_bounds() if isinstance(leaf, _Quantized) else (leaf.lower_bound, leaf.upper_bound) for leaf in interval]
        self.vlo = np.array([b[0] for b in bounds], float)
        self.vhi = np.array([b[1] for b in bounds], float)
        self.dims = [leaf.n_dims for leaf in leaves]
        self.offsets = np.concatenate([[0], np.cumsum(self.dims)])[:-1].astype(int)

    def encode(self, X):
        pieces = [None] * len(self.leaves)
        if self.interval:
            x = X[:, self.interval]
            scaled = jnp.where(self.is_log, jnp.log(jnp.where(self.is_log, x, 1.0)), x)
            u = (scaled - self.lo) / (self.hi - self.lo)
            if len(self.interval) == len(self.leaves):
                return u
            for j, i in enumerate(self.interval):
                pieces[i] = u[:, j : j + 1]
        for i, leaf in enumerate(self.leaves):
            if pieces[i] is None:
                pieces[i] = jax.vmap(leaf.encode)(X[:, i])
        return jnp.concatenate(pieces, axis=-1)

    def decode(self, U):
        cols = [None] * len(self.leaves)
        if self.interval:
            u = jnp.clip(U[:, self.offsets[self.interval]], 0.0, 1.0)
            scaled = self.lo + u * (self.hi - self.lo)
            x = jnp.where(self.is_log, jnp.exp(scaled), scaled)
            x = jnp.where(self.is_int, jnp.round(x), x)
            x = jnp.clip(x, self.vlo, self.vhi)
            if len(self.interval) == len(self.leaves):
                return x
            for j, i in enumerate(self.interval):
                cols[i] = x[:, j]
        for i, leaf in enumerate(self.leaves):
            if cols[i] is None:
                start = self.offsets[i]
                cols[i] = jax.vmap(leaf.decode)(U[:, start : start + leaf.n_dims]).astype(float)
        return jnp.stack(cols, axis=-1)


def encode(space, X: jax.Array) -> jax.Array:
    """Stored values ``(..., n_params)`` -> unit-cube coordinates ``(..., n_dims)``."""
    layout = _Layout(space_leaves(space)[0])
    X = jnp.asarray(X, float)
    U = layout.encode(X.reshape(-1, X.shape[-1]))
    return U.reshape(*X.shape[:-1], U.shape[-1])


def encode_rows(space, X: jax.Array, rows: jax.Array) -> jax.Array:
    """:func:`encode` for a buffer whose unselected ``rows`` hold no value.

    Unwritten buffer rows are zeros, and ``log(0)`` would put ``-inf`` (and NaN
    gradients, which ``jnp.where`` does not stop) into the GP. They are encoded
    as the cube's center instead.
    """
    center = decode(space, jnp.full((1, n_dims(space)), 0.5))
    return encode(space, jnp.where(rows[:, None], X, center))


def decode(space, U: jax.Array) -> jax.Array:
    """Unit-cube coordinates ``(..., n_dims)`` -> stored, transformed values ``(..., n_params)``."""
    layout = _Layout(space_leaves(space)[0])
    X = layout.decode(U.reshape(-1, U.shape[-1])).astype(float)
    return X.reshape(*U.shape[:-1], X.shape[-1])


def snap(space, U: jax.Array) -> jax.Array:
    """Unit-cube points moved onto the space: the encoding of what they decode to.

    Integers and categories land on their cells' coordinates and every
    coordinate in ``[0, 1]``, so a snapped point decodes and re-encodes exactly.
    """
    return encode(space, decode(space, U))


def sample_unit(space, key: jax.Array, n: int) -> jax.Array:
    """``n`` uniform unit-cube points, snapped (:func:`snap`)."""
    return snap(space, jax.random.uniform(key, (n, n_dims(space))))


def leaf_names(space, prefix: str = "params") -> list[str]:
    """How a user writes each leaf of ``space``: ``params['lr']``, ``params['opt']['b1']``, ..."""
    paths, _ = jax.tree_util.tree_flatten_with_path(space, is_leaf=_is_space)
    return [prefix + jax.tree_util.keystr(path) for path, _ in paths]


def check_values(space, X, prefix: str = "params") -> np.ndarray:
    """Stored values ``(n, n_params)`` checked against ``space`` leaf by leaf (:meth:`Space.check`), as float64.

    Raises :class:`~hyperoptax.errors.SpaceError` for a value outside its space (naming it as
    ``prefix['name']``); values moved onto a space are reported by a warning.
    """
    leaves, _ = space_leaves(space)
    X = np.array(X, np.float64, copy=True).reshape(-1, len(leaves))
    for i, (leaf, name) in enumerate(zip(leaves, leaf_names(space, prefix))):
        X[:, i] = leaf.check(X[:, i], name)
    return X


def _category_indices(leaf: DiscreteSpace, name: str, values) -> np.ndarray:
    """Categories given as themselves (``"adam"``) -> their indices; indices pass through."""
    array = np.asarray(values, dtype=object).reshape(-1)
    if all(_is_real_number(v) or isinstance(v, (np.ndarray, jax.Array)) for v in array):
        return np.asarray(values)
    out = []
    for v in array:
        if v not in leaf.values:
            raise SpaceError(f"{name} = {v!r} is not one of {list(leaf.values)!r}.")
        out.append(leaf.values.index(v))
    return np.asarray(out).reshape(np.shape(values))


def flatten_params(space, params) -> jax.Array:
    """A params pytree (leaves ``(n,)``) or an ``(n, n_params)`` array -> ``(n, n_params)`` float32.

    A category may be given as its index or as itself (``"adam"``).
    """
    leaves, treedef = space_leaves(space)
    if isinstance(params, (jax.Array, np.ndarray)):
        X = jnp.atleast_2d(jnp.asarray(params, float))
        if X.shape[-1] != len(leaves):
            raise SpaceError(
                f"params array has shape {X.shape}, expected (n_parallel, {len(leaves)}) for a space "
                f"with {len(leaves)} parameters. Pass the params pytree returned by get_next_params instead."
            )
        return X
    try:
        param_leaves = treedef.flatten_up_to(params)
    except (ValueError, TypeError) as err:
        raise SpaceError(
            f"params do not match the search space structure {treedef}: {err}. Pass the pytree "
            f"returned by get_next_params."
        ) from None
    names = leaf_names(space)
    param_leaves = [
        _category_indices(leaf, names[i], p)
        if isinstance(leaf, DiscreteSpace) and leaf.is_categorical and not isinstance(p, jax.Array) else p
        for i, (leaf, p) in enumerate(zip(leaves, param_leaves))
    ]
    if any(isinstance(p, jax.core.Tracer) for p in param_leaves):
        return jnp.stack([jnp.atleast_1d(jnp.asarray(p, float)) for p in param_leaves], axis=-1)
    # Concrete values are stacked by NumPy and cross to JAX once: one dispatch instead of two per leaf,
    # which was a tenth of a sequential suggestion's cost.
    dtype = jax.dtypes.canonicalize_dtype(float)
    return jnp.asarray(np.stack([np.atleast_1d(np.asarray(p, dtype)) for p in param_leaves], axis=-1))


def unflatten_params(space, X: jax.Array):
    """``(..., n_params)`` stored values -> params pytree with each leaf in its space's dtype."""
    leaves, treedef = space_leaves(space)
    return treedef.unflatten([X[..., i].astype(leaf.dtype) for i, leaf in enumerate(leaves)])


def decode_params(space, params):
    """Turn search-side params into the plain values a user reads.

    Categories come back as their original values (strings), integers as ``int``
    and floats as ``float``. Works on one configuration (scalar leaves) and on a
    batch (leaves of shape ``(n,)`` become lists).

    Example::

        space = {"opt": DiscreteSpace(["adam", "sgd"]), "lr": LogSpace(1e-4, 1e-1)}
        params = optimizer.get_next_params(state, key)
        hyperoptax.decode_params(space, params)
        # {'opt': ['sgd', 'adam', ...], 'lr': [0.0031, ...]}
    """
    leaves, treedef = space_leaves(space)
    values = treedef.flatten_up_to(params)
    out = []
    for leaf, value in zip(leaves, values):
        arr = np.asarray(value)
        if arr.ndim == 0:
            out.append(leaf.to_python(arr))
        else:
            out.append([leaf.to_python(v) for v in arr.reshape(-1)])
    return treedef.unflatten(out)


def stored_params(space, configs) -> Any:
    """Plain-valued configurations (a list of pytrees shaped like ``space``) -> a params batch of stored
    values, leaves ``(len(configs),)`` in each space's dtype; the inverse of :func:`decode_params`."""
    leaves, treedef = space_leaves(space)
    rows = [treedef.flatten_up_to(config) for config in configs]
    columns = []
    for i, leaf in enumerate(leaves):
        values = [row[i] for row in rows]
        if isinstance(leaf, DiscreteSpace) and leaf.is_categorical:
            values = [leaf.values.index(v) for v in values]
        columns.append(jnp.asarray(np.asarray(values), leaf.dtype))
    return treedef.unflatten(columns)


def coordinate_groups(space) -> np.ndarray:
    """``(n_dims,)`` int: the parameter (leaf index) each unit-cube coordinate encodes.

    A category's one-hot coordinates share their parameter's index; tying their
    length scales makes the kernel see a category change as one step, whichever
    two categories (the Hamming distance of Optuna's GPSampler).
    """
    return np.repeat(np.arange(n_params(space)), [leaf.n_dims for leaf in space_leaves(space)[0]])


def has_discrete(space) -> bool:
    """Whether any parameter takes discrete values (a category, an integer, a numeric choice)."""
    return any(isinstance(leaf, (DiscreteSpace, _Quantized)) for leaf in space_leaves(space)[0])


def _integer_moves(leaf, u, steps):
    """Unit-cube coordinates of the integers ``value + s`` for ``s`` in ``steps`` (clipped to the bounds)."""
    lo, hi = leaf._edges()
    scaled = lo + jnp.clip(u, 0.0, 1.0) * (hi - lo)
    value = jnp.round(jnp.exp(scaled) if isinstance(leaf, LogSpace) else scaled)
    ilo, ihi = leaf._int_bounds()
    moved = jnp.clip(value + jnp.asarray(steps, u.dtype), ilo, ihi)
    moved_scaled = jnp.log(moved) if isinstance(leaf, LogSpace) else moved
    return (moved_scaled - lo) / (hi - lo)


def discrete_neighbors(space, u: jax.Array) -> jax.Array | None:
    """The discrete moves from one snapped point ``u (n_dims,)``: ``(n_moves, n_dims)`` snapped points.

    Every value of each category, and for each integer or numeric discrete
    parameter the values one and two steps up and down (clipped to the space);
    None when the space has none (:func:`has_discrete`). Gradient steps cannot
    move between categories or integers; an acquisition search tries these
    moves after its continuous refinement (as Optuna's GPSampler does).
    """
    leaves = space_leaves(space)[0]
    offsets = np.concatenate([[0], np.cumsum([leaf.n_dims for leaf in leaves])])[:-1]
    steps = (-2.0, -1.0, 1.0, 2.0)
    moves = []
    for leaf, o in zip(leaves, offsets):
        if isinstance(leaf, DiscreteSpace) and leaf.is_categorical:
            k = leaf.n_dims
            block = jnp.eye(k, dtype=u.dtype)
            moves.append(jnp.tile(u, (k, 1)).at[:, o : o + k].set(block))
        elif isinstance(leaf, DiscreteSpace):
            k = len(leaf.values)
            coords = jnp.clip(u[o] + jnp.asarray(steps, u.dtype) / k, 0.5 / k, 1.0 - 0.5 / k)
            moves.append(jnp.tile(u, (len(steps), 1)).at[:, o].set(coords))
        elif isinstance(leaf, _Quantized):
            coords = _integer_moves(leaf, u[o], steps)
            moves.append(jnp.tile(u, (len(steps), 1)).at[:, o].set(coords))
    if not moves:
        return None
    return snap(space, jnp.concatenate(moves))
