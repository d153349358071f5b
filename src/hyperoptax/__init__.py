"""hyperoptax: parallel Bayesian hyperparameter optimization for JAX."""

from hyperoptax import errors
from hyperoptax._threads import limit_lapack_threads
from hyperoptax.acquisition import (
    EI,
    PI,
    UCB,
    BaseAcquisition,
    BaseHallucination,
    ConstantHallucination,
    LogEI,
    LogPI,
    MeanHallucination,
    SampleHallucination,
    ThompsonSampling,
    UCBHallucination,
)
from hyperoptax.base import Optimizer, OptimizerState
from hyperoptax.batch import UCBPE, BatchStrategy, BySize, Fantasies, KrigingBeliever, LocalPenalization, Thompson
from hyperoptax.bayesian import RECOMMENDED, BayesianSearch, BayesianSearchState
from hyperoptax.grid import GridSearch, GridSearchState
from hyperoptax.kernels import RBF, BaseKernel, Matern
from hyperoptax.random import RandomSearch
from hyperoptax.searchers import GPFIFOSearcher
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

limit_lapack_threads()

__all__ = [
    "BayesianSearch", "BayesianSearchState", "RECOMMENDED", "RandomSearch", "GridSearch", "GridSearchState",
    "Optimizer", "OptimizerState",
    "Space", "LinearSpace", "LogSpace", "QLinearSpace", "QLogSpace", "DiscreteSpace", "log_transform",
    "decode_params",
    "BaseKernel", "Matern", "RBF",
    "BaseAcquisition", "PI", "EI", "LogEI", "LogPI", "UCB", "ThompsonSampling",
    "BaseHallucination", "MeanHallucination", "SampleHallucination", "UCBHallucination", "ConstantHallucination",
    "BatchStrategy", "KrigingBeliever", "Fantasies", "UCBPE", "Thompson", "LocalPenalization", "BySize",
    "GPFIFOSearcher",
    "errors",
]
