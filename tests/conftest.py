"""Shared fixtures.

``strict_promotion`` runs a test under ``jax.numpy_dtype_promotion('strict')``,
which turns any implicit dtype promotion (int32 / float32, python float * int32,
...) into an error. It is opt-in, per module, because only part of the library
passes under it (see the module docstrings of the test files that do not use it:
the GP core mixes int32 counts into float32 arithmetic, and Optax's Adam is not
strict-clean either).
"""

from __future__ import annotations

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
