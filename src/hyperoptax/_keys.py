"""Typed PRNG keys <-> raw ``uint32`` key data.

States that are saved (Orbax) or carried through compiled programs hold plain
arrays only, so typed keys (``jax.random.key``) travel as their key data and
are wrapped again where they are used.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["as_key", "is_key", "raw_keys"]


def is_key(x) -> bool:
    """Whether ``x`` (an array, tracer or ``ShapeDtypeStruct``) holds typed PRNG keys."""
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def as_key(key):
    """A typed key from a typed key or from raw ``uint32`` key data (the default implementation)."""
    return key if is_key(key) else jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))


def raw_keys(tree):
    """``tree`` with every typed key replaced by its ``uint32`` key data."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)
