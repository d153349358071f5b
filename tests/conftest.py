"""Shared fixtures.

``strict_promotion`` runs a test under ``jax.numpy_dtype_promotion('strict')``,
which turns any implicit dtype promotion (int32 / float32, python float * int32,
...) into an error. It is opt-in, per module, because only part of the library
passes under it (see the module docstrings of the test files that do not use it:
the GP core mixes int32 counts into float32 arithmetic, and Optax's Adam is not
strict-clean either).
"""

from __future__ import annotations

import os

# The suite is bound by XLA compile time, not run time: skipping LLVM's
# optimizations compiles the search's step functions ~3x faster on a small CPU.
# Numerics are unchanged in every comparison the tests make (both sides run
# under the same flags); subprocesses inherit the flag with the environment.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax
import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "standard_promotion(reason): opt this test out of the module's strict_promotion "
        "(the code under test is not strict-promotion clean; the reason says where)",
    )


@pytest.fixture
def strict_promotion(request):
    if request.node.get_closest_marker("standard_promotion"):
        yield
        return
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture
def key():
    return jax.random.key(0)
