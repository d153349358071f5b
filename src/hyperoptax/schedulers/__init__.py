"""Early stopping: successive halving (ASHA), asynchronous Hyperband, and where new trials come from.

:class:`SuccessiveHalving` holds the rules as pure, jittable functions over a fixed-size rung table;
:class:`Scheduler` is the same rules as a host-side ask/tell object for any training loop; the refill
sources (:mod:`~hyperoptax.schedulers.refills`) propose the configurations of new trials and learn from every
rung.

Population-based training (:mod:`~hyperoptax.schedulers.pbt`): :class:`PBT`'s exploit and explore as jittable
functions over a population, PB2's GP-UCB explore (:mod:`~hyperoptax.schedulers.pb2`) and the population's
:class:`Lineage`.
"""

from hyperoptax.schedulers.ask_tell import STATUSES, Decision, Scheduler, Trial
from hyperoptax.schedulers.lineage import Lineage
from hyperoptax.schedulers.pb2 import PB2, PB2Data, pb2_data
from hyperoptax.schedulers.pbt import EXPLORES, PBT, Ready
from hyperoptax.schedulers.refills import OptimizerRefills, RandomRefills, SearcherRefills, make_refills
from hyperoptax.schedulers.successive_halving import (
    COMPLETE,
    CONTINUE,
    DECISIONS,
    FAIL,
    STOP,
    RungState,
    SuccessiveHalving,
)

__all__ = [
    "SuccessiveHalving", "RungState", "CONTINUE", "STOP", "COMPLETE", "FAIL", "DECISIONS",
    "Scheduler", "Trial", "Decision", "STATUSES",
    "RandomRefills", "OptimizerRefills", "SearcherRefills", "make_refills",
    "PBT", "Ready", "EXPLORES", "PB2", "PB2Data", "pb2_data", "Lineage",
]
