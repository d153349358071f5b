"""How far low rungs can be trusted: would a rung's selection have kept the trials that win higher up?

On some tasks the ranking after a few steps predicts the final one; on others curves cross (fast starters
plateau, slow starters win) and a rung that stops trials, or a model fitted to low-rung metrics, throws the
winners away. The evidence is in the trials themselves: every trial that reported at two successive rungs is
a *pair*. For the pairs of a link ``low -> high``, the rung's selection is the top ``1/eta`` by the metric at
``low``; its *loss* is how much worse the best of that selection does at ``high`` than the best pair overall,
in units of the spread at ``high`` (best minus median)::

    loss = (best_high - best_high_within_selection) / (best_high - median_high)

0 when the selection holds the winner; about 1 when it holds only median trials. (A rank correlation over all
pairs is reported too, but it is the top end that decides: curves can agree on the bulk and still reverse
among the best.)

* A rung *stops* trials unless the evidence says it, or a rung above it, misleads: ``min_pairs`` pairs with
  the next rung and a loss above ``max_loss`` (then it lets every trial through; it is checked again as pairs
  accumulate). ``max_loss`` is 0.1: the selection must keep a trial within a tenth of the best-to-median
  spread of the winner. What decides a sweep is the difference among its best trials, a small part of that
  spread; at 0.5 a rung that kept a fast starter half-way down the spread went on pruning. Measured
  (``benchmarks/schedulers.py``, synthetic curves, 30 seeds, median regret): crossing curves 0.0040 with 0.1
  against 0.0048 with 0.5; predictive curves unchanged (no rung flagged), and with noise 7 times the
  benchmark's (sd 0.02) 0.0066 against 0.0071: noise alone did not make rungs look misleading. A rung is only as good as the rungs above it: a first rung that ranks like a misleading second
  rung keeps that rung's winners, not the top's (measured on curves that cross, the first rung's link looks
  sound exactly because the second rung is fooled the same way).
* A model may stand on a rung's metrics only with positive evidence: every link from that rung up to the
  top has ``min_pairs`` pairs and a loss of at most ``max_loss``.
"""

from __future__ import annotations

import math
from typing import Iterable, NamedTuple

import numpy as np

__all__ = ["Link", "links", "misleading", "may_prune", "trusted_levels", "MIN_PAIRS", "MAX_LOSS"]

MIN_PAIRS = 6
MAX_LOSS = 0.1


class Link(NamedTuple):
    """The evidence between two successive rung levels ``low`` and ``high``.

    ``loss`` and ``correlation`` (Spearman's rho) are NaN with fewer than 3 pairs or no spread at ``high``.
    """

    low: int
    high: int
    n_pairs: int
    loss: float
    correlation: float


def _ranks(v):
    return np.argsort(np.argsort(v, kind="stable"), kind="stable").astype(float)


def _spearman(a, b) -> float:
    ra, rb = _ranks(a) - (len(a) - 1) / 2, _ranks(b) - (len(b) - 1) / 2
    denom = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / denom if denom > 0 else math.nan


def _loss(low, high, eta) -> float:
    spread = high.max() - np.median(high)
    if not spread > 0:
        return math.nan
    kept = np.argsort(-low, kind="stable")[: max(1, round(len(low) / eta))]
    return float((high.max() - high[kept].max()) / spread)


def links(curves: Iterable[dict], levels, eta: int, maximize: bool = True) -> list[Link]:
    """The evidence for every pair of successive ``levels``; ``curves`` map steps -> finite metric, one per trial."""
    curves = list(curves)
    sign = 1.0 if maximize else -1.0
    out = []
    for low, high in zip(levels[:-1], levels[1:]):
        pairs = np.asarray([(c[low], c[high]) for c in curves if low in c and high in c], float).reshape(-1, 2)
        a, b = sign * pairs[:, 0], sign * pairs[:, 1]
        few = len(pairs) < 3
        out.append(Link(low, high, len(pairs), math.nan if few else _loss(a, b, eta),
                        math.nan if few else _spearman(a, b)))
    return out


def misleading(link: Link, min_pairs: int = MIN_PAIRS, max_loss: float = MAX_LOSS) -> bool:
    """Enough pairs, and the rung's selection would have lost the winners."""
    return link.n_pairs >= min_pairs and link.loss > max_loss


def may_prune(all_links: list[Link], min_pairs: int = MIN_PAIRS, max_loss: float = MAX_LOSS) -> list[bool]:
    """For each link's ``low`` level: whether it may stop trials, i.e. neither it nor a link above it misleads."""
    flags = [misleading(link, min_pairs, max_loss) for link in all_links]
    return [not any(flags[i:]) for i in range(len(flags))]


def trusted_levels(all_links: list[Link], min_pairs: int = MIN_PAIRS, max_loss: float = MAX_LOSS) -> list[int]:
    """The levels whose selections keep the top rung's winners, with evidence for every link up to it (the
    top level itself always)."""
    if not all_links:
        return []
    trusted = [all_links[-1].high]
    for link in reversed(all_links):
        if link.n_pairs >= min_pairs and link.loss <= max_loss:
            trusted.append(link.low)
        else:
            break
    return sorted(trusted)
