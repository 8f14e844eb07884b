"""The engine configurations tests train with, in one place, and ``fast_train`` (what
``cli.py train`` runs, with a configuration passed in: ``train_shop(..., config=...)``).

* ``ONE_THREAD`` — the quick configuration on one thread: the session's trained shop
  (tests/shop.py), whose explanation tests need the real quick model.
* ``FAST`` — a cut-down one for tests that train again and are about files and processes, not
  model quality (the fault tests): fewer candidates and trees, a small network and validation set.

Both run one thread per job: two threads per job on a shared 2-core machine run several times
slower than one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from models.config import QUICK, EngineConfig
from workflows.training import train_shop

__all__ = ["FAST", "ONE_THREAD", "fast_train"]

FAST: EngineConfig = dataclasses.replace(
    QUICK,
    candidates=dataclasses.replace(QUICK.candidates, n_candidates=50),
    ranker=dataclasses.replace(QUICK.ranker, max_rounds=10, threads=1),
    attention=dataclasses.replace(QUICK.attention, threads=1, dim=16, negatives=16, max_history=10,
                                  valid_users=100, valid_negatives=50),
)


# The quick configuration itself on one thread: for tests whose assertions need the real quick
# model (explanations, the serving lists), not a cut-down one.
ONE_THREAD: EngineConfig = dataclasses.replace(
    QUICK,
    attention=dataclasses.replace(QUICK.attention, threads=1),
    ranker=dataclasses.replace(QUICK.ranker, threads=1),
)


def fast_train(db: Path, models: Path, config: EngineConfig = FAST, serve: str | None = None) -> dict:
    """``train_shop`` (what ``cli.py train`` runs) with ``config``; ``serve`` pins the served ranker."""
    return train_shop(db, models, config=config, serve=serve)
