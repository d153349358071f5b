"""Checkpoints of the sweeps that train one long-lived population (ASHA / Hyperband slots, PBT members).

Their state is the population (Orbax arrays, saved as the checkpoint's population item) and JSON metadata
under ``"tune"``; the checkpoint's search item is a placeholder array. Restoring takes two reads: the
metadata first (it says the shapes of the population: its buckets), then the arrays onto a template.
"""

from __future__ import annotations

import numpy as np

from hyperoptax.errors import CheckpointError

__all__ = ["save", "restore"]

_SEARCH_ITEM = {"step": np.zeros((), np.int32)}


def save(checkpointer, step: int, population, metadata: dict) -> None:
    checkpointer.save(step, search_state=_SEARCH_ITEM, population_state=population, force=True,
                      metadata={"tune": metadata})


def restore(checkpointer, kind: str, load_state_dict) -> dict:
    """The newest checkpoint's metadata, after ``load_state_dict(metadata[kind], restore_population)``
    has rebuilt the population (``restore_population(template)`` reads its arrays)."""
    restored = checkpointer.restore(_SEARCH_ITEM)
    info = restored.metadata.get("tune")
    if not isinstance(info, dict) or kind not in info:
        raise CheckpointError(f"The checkpoint in {checkpointer.directory} was not written by a {kind} sweep.")

    def population(template):
        return checkpointer.restore(_SEARCH_ITEM, template, step=restored.step).population_state

    load_state_dict(info[kind], population)
    return info
