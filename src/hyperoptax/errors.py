"""Exceptions raised by hyperoptax.

Every error names what was received, what is allowed, and how to fix it. They
subclass the builtin ``ValueError`` / ``TypeError`` so existing ``except``
clauses keep working.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class HyperoptaxError(Exception):
    """Base class of every hyperoptax error."""


class SpaceError(HyperoptaxError, ValueError):
    """A search space was constructed with invalid bounds or values."""


class ConfigurationError(HyperoptaxError, ValueError):
    """An optimizer, searcher or job was given an invalid option."""


class ObjectiveError(HyperoptaxError, TypeError):
    """The objective function has the wrong signature or returns the wrong thing."""


class DatasetNotFoundError(HyperoptaxError, FileNotFoundError):
    """A TFDS dataset is not prepared in the given data directory."""


class CheckpointError(HyperoptaxError, RuntimeError):
    """A checkpoint could not be read or does not match the run."""


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


def check_positive_int(what: str, value, minimum: int = 1) -> None:
    """Raise ConfigurationError unless ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(
            f"{what} must be an integer >= {minimum}, got {value!r}. "
            f"Pass e.g. {what}={max(minimum, 1)}."
        )
