"""hyperoptax: parallel Bayesian hyperparameter optimization for JAX."""

from hyperoptax import errors
from hyperoptax.spaces import (
    DiscreteSpace,
    LinearSpace,
    LogSpace,
    QLinearSpace,
    QLogSpace,
    Space,
    decode_params,
    log_transform,
)

__version__ = "0.3.0"
