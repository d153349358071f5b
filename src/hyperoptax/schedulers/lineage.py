"""The lineage of a PBT population: every member's history, and the schedules it adds up to.

Member ``i``'s history holds one entry per interval::

    {"interval": k, "steps": [start, end], "parent": p, "params": {...}, "metric": m}

``params`` are the hyperparameters it trained with from ``start`` to ``end`` steps, ``metric`` its metric at
``end`` (None if NaN/inf), and ``parent`` the member whose weights and optimizer state it copied at
``start`` (None if it kept its own). The weights of a member at the end therefore went through its
*ancestry*: its own intervals back to its last copy, then its parent's before that, and so on. The
hyperparameters along that chain are the member's **schedule** (what :func:`schedule` returns and a replay
trains with), each interval with the member (population slot) that trained it, whose data stream it used.
All of it is JSON, for checkpoints and ``results.json``.
"""

from __future__ import annotations

import copy
import math

import numpy as np

__all__ = ["Lineage"]


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class Lineage:
    """The histories of ``n_members`` members, recorded one interval at a time."""

    def __init__(self, n_members: int):
        self.members: list[list[dict]] = [[] for _ in range(n_members)]

    @property
    def n_intervals(self) -> int:
        return len(self.members[0]) if self.members else 0

    def record(self, interval: int, steps, parents, configs, metrics) -> None:
        """Interval ``interval`` (``steps = (start, end)``) ended: each member's parent (or None), its
        hyperparameters (plain values) and its metric."""
        if interval != self.n_intervals:
            raise ValueError(f"interval {interval} recorded after {self.n_intervals} intervals")
        for history, parent, config, metric in zip(self.members, parents, configs, np.asarray(metrics).tolist()):
            history.append({"interval": int(interval), "steps": [int(steps[0]), int(steps[1])],
                            "parent": None if parent is None else int(parent), "params": dict(config),
                            "metric": _finite(metric)})

    def metrics(self, interval: int = -1) -> np.ndarray:
        """``(n,)`` metrics at the end of ``interval`` (NaN where failed)."""
        return np.asarray([np.nan if h[interval]["metric"] is None else h[interval]["metric"] for h in self.members])

    def best(self, maximize: bool = True) -> int | None:
        """The member with the best final metric (the lowest index among ties), None if all failed."""
        finals = self.metrics()
        if not self.n_intervals or not np.isfinite(finals).any():
            return None
        score = np.where(np.isfinite(finals), finals if maximize else -finals, -np.inf)
        return int(np.argmax(score))

    def schedule(self, member: int) -> list[dict]:
        """The hyperparameters ``member``'s weights trained with, oldest first: one entry per interval,
        ``{"steps": [start, end], "member": slot that trained it, "params": {...}, "metric": ...}``."""
        out, slot = [], member
        for interval in reversed(range(self.n_intervals)):
            entry = self.members[slot][interval]
            out.append({"steps": list(entry["steps"]), "member": slot, "params": dict(entry["params"]),
                        "metric": entry["metric"]})
            if entry["parent"] is not None:
                slot = entry["parent"]
        return out[::-1]

    def curve(self, member: int) -> list[list]:
        """``[[steps, metric], ...]`` of ``member``'s weights along its ancestry."""
        return [[entry["steps"][1], entry["metric"]] for entry in self.schedule(member)]

    def improvements(self, maximize: bool = True) -> list[tuple[int, dict, float]]:
        """``(interval, params, improvement)`` for every member and interval after the first, in order.

        The improvement is the metric at the interval's end minus that of the weights it started from (its
        parent's at the previous end, if it copied); negated when minimizing; NaN if either failed.
        """
        out = []
        before = None
        for interval in range(self.n_intervals):
            after = self.metrics(interval)
            for i, history in enumerate(self.members):
                if before is None:
                    continue
                entry = history[interval]
                start = before[i if entry["parent"] is None else entry["parent"]]
                gain = after[i] - start
                out.append((interval, entry["params"], float(gain if maximize else -gain)))
            before = after
        return out

    def get_state(self) -> dict:
        """A JSON copy (see :meth:`set_state`)."""
        return {"members": copy.deepcopy(self.members)}

    def set_state(self, state: dict) -> None:
        self.members = copy.deepcopy(state["members"])
