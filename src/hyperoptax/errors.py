"""Exceptions raised by hyperoptax.

Every error names what was received, what is allowed, and how to fix it. They
subclass the builtin ``ValueError`` / ``TypeError`` so existing ``except``
clauses keep working.
"""

from __future__ import annotations

import difflib
from typing import Iterable

import numpy as np


class HyperoptaxError(Exception):
    """Base class of every hyperoptax error."""


class SpaceError(HyperoptaxError, ValueError):
    """A search space was constructed with invalid bounds or values, or a value lies outside its space."""


class BoundsError(SpaceError, AssertionError):
    """An interval space's bounds are invalid (``lower_bound >= upper_bound``, a log base <= 1, ...).

    Also an ``AssertionError``: hyperoptax 0.2.0 checked bounds with ``assert``,
    and code written for it may catch that.
    """


class ConfigurationError(HyperoptaxError, ValueError):
    """An optimizer, searcher or job was given an invalid option."""


class ObjectiveError(HyperoptaxError, TypeError):
    """The objective function has the wrong signature or returns the wrong thing."""


class DatasetNotFoundError(HyperoptaxError, FileNotFoundError):
    """A TFDS dataset is not prepared in the given data directory."""


class CheckpointError(HyperoptaxError, RuntimeError):
    """A checkpoint could not be read or does not match the run."""


class HyperoptaxWarning(UserWarning):
    """Base class of every hyperoptax warning."""


class ValueSnappedWarning(HyperoptaxWarning):
    """A value given to the search was moved onto its space (rounded to an integer, to the nearest allowed value)."""


class ResultsDroppedWarning(HyperoptaxWarning):
    """Results arrived after the observation buffers (``n_max``) were full and were not recorded."""


def closest(name: str, allowed: Iterable[str]) -> str:
    """A ' Did you mean ...?' hint naming the closest allowed spelling, or ''."""
    match = difflib.get_close_matches(str(name), [str(a) for a in allowed], n=1)
    return f" Did you mean {match[0]!r}?" if match else ""


def check_choice(what: str, value, allowed: Iterable) -> None:
    """Raise ConfigurationError unless ``value`` is one of ``allowed``."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigurationError(
            f"{what}={value!r} is not supported. Allowed values: "
            f"{', '.join(repr(a) for a in allowed)}.{closest(value, allowed)}"
        )


def as_real(value) -> float | None:
    """``value`` as a Python float if it is a real number, else None.

    Numbers are numbers: Python ``int``/``float``, NumPy scalars, and 0-d or 1-element
    NumPy/JAX arrays of a real dtype all count; ``bool`` and strings do not.
    """
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        return None
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        if getattr(dtype, "kind", "f") not in ("i", "u", "f") or getattr(value, "size", 1) != 1:
            return None
        value = value.reshape(()) if hasattr(value, "reshape") else value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check_positive_int(what: str, value, minimum: int = 1) -> int:
    """``value`` as a Python int; ConfigurationError unless it is an integer >= ``minimum``.

    NumPy and JAX integer scalars count (numbers are numbers); bools and floats do not.
    """
    integral = not isinstance(value, (bool, np.bool_)) and (
        isinstance(value, (int, np.integer))
        or (getattr(value, "shape", None) == () and getattr(getattr(value, "dtype", None), "kind", "") in ("i", "u"))
    )
    if not integral or value < minimum:
        raise ConfigurationError(
            f"{what} must be an integer >= {minimum}, got {value!r}. "
            f"Pass e.g. {what}={max(minimum, 1)}."
        )
    return int(value)
