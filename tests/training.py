"""The small engine configuration that test fixtures train with, in one place.

Fixtures that need *a* trained model (the service, the pages, the fault tests) are about files,
pages and boundaries, not model quality: fewer trees, a smaller validation set and one thread
per job (two threads per job on a shared 2-core machine run several times slower than one).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from models import pipeline
from models.hybrid import QUICK, EngineConfig

__all__ = ["FAST", "ONE_THREAD", "fast_train"]

FAST: EngineConfig = dataclasses.replace(
    QUICK,
    ranker=dataclasses.replace(QUICK.ranker, max_rounds=30, threads=1),
    attention=dataclasses.replace(QUICK.attention, threads=1, valid_users=200, valid_negatives=100),
)


# The quick configuration itself on one thread: for tests whose assertions need the real quick
# model (explanations, the serving lists), not a cut-down one.
ONE_THREAD: EngineConfig = dataclasses.replace(
    QUICK,
    attention=dataclasses.replace(QUICK.attention, threads=1),
    ranker=dataclasses.replace(QUICK.ranker, threads=1),
)


def fast_train(db: Path, models: Path, config: EngineConfig = FAST) -> dict:
    """``pipeline.train(quick=True)`` with ``config`` as the quick configuration."""
    original, pipeline.QUICK = pipeline.QUICK, config
    try:
        return pipeline.train(db, models, quick=True)
    finally:
        pipeline.QUICK = original
