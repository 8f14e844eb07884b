"""The engine's configuration: everything that shapes a trained engine, in one value.

It is stored in each model version's metadata (as a plain dict) so that serving and evaluation
rebuild the very candidates, features and network the version was trained with; a test or a
benchmark passes its own value to :func:`models.training.train` instead of patching globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from errors import RecsightError
from models.attention import AttentionConfig, attention_config_from
from models.candidates import CandidateConfig, Covis
from models.ranker import RankerConfig

__all__ = ["EngineConfig", "QUICK", "engine_config_from"]


@dataclass(frozen=True)
class EngineConfig:
    """Everything that shapes a trained engine; stored in the model's metadata."""

    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    list_length: int = 100  # items kept per user and model when evaluating (MRR looks this deep)


# The demo's `make run` budget: smaller candidate sets, fewer trees and attention epochs. The
# network's epoch is capped at 1,000 batches (512,000 examples): the 5,000-customer demo shop
# (~630 batches) trains on everything; a 10M-event shop (~16,000 batches) on a sample.
QUICK = EngineConfig(
    candidates=CandidateConfig(n_candidates=100),
    ranker=RankerConfig(max_rounds=200, early_stopping=10),
    attention=AttentionConfig(epochs=1, dim=32, negatives=32, max_history=20, max_batches_per_epoch=1000),
)


def engine_config_from(data: dict[str, Any]) -> EngineConfig:
    """Rebuild an :class:`EngineConfig` from the metadata's plain dict (a version on disk)."""
    try:
        cand = dict(data["candidates"])
        cand["covis"] = tuple(Covis(**c) for c in cand["covis"])
        return EngineConfig(
            candidates=CandidateConfig(**cand),
            ranker=RankerConfig(**data["ranker"]),
            attention=attention_config_from(data["attention"]),
            list_length=data["list_length"],
        )
    except (KeyError, TypeError) as exc:
        raise RecsightError(f"model metadata has an unreadable configuration ({exc}); retrain") from None
