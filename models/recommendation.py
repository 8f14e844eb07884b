"""What a recommendation is, and the lists precomputed at training time that answer most of them.

:class:`Recommendation` is what every interface shows (the API, the pages, the reports);
:class:`TopItems` holds a model version's precomputed lists (:mod:`models.precompute`), read by
:class:`models.serving.Recommender` for customers whose history has not moved since training.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analytics import schema as s
from errors import RecsightError
from models import registry
from models.precompute import TITLE, TOP_ITEMS_FILE, TOP_ITEMS_META

__all__ = ["RecommendedItem", "Recommendation", "MatchScale", "match_words", "STRONG", "GOOD", "TopItems",
           "load_top_items"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecommendedItem:
    """One line of a customer's list, as every interface shows it."""

    rank: int
    item_id: str
    title: str
    score: float  # the ranker's raw score: base value + sum of TreeSHAP contributions
    strength: int | None = None  # match strength 0-100 (MatchScale); None where the version has no scale


STRONG, GOOD = 75, 40  # match strength from which a match reads "strong", "good" (else "weaker")


@dataclass(frozen=True)
class MatchScale:
    """Match strength: where a score falls among every score in the lists the model serves.

    The ranker's raw scores are LambdaRank margins with no unit (most are negative from rank 5
    down), which no support agent can read out. A strength of 80 says "a stronger match than 80 %
    of the recommendations this model makes": bounded, explained in one sentence, and in the same
    order as the scores, so it never contradicts the ranking. The reference is the precomputed
    lists of every customer (:class:`TopItems`), fixed per model version.
    """

    reference: np.ndarray  # the served scores, sorted ascending

    @classmethod
    def of(cls, scores: Sequence[float]) -> MatchScale | None:
        """The scale of these served scores; None for fewer than :data:`_MIN_REFERENCE` (no
        distribution to place a score in)."""
        reference = np.sort(np.asarray(scores, dtype=np.float64))
        reference = reference[np.isfinite(reference)]
        return cls(reference) if len(reference) >= _MIN_REFERENCE else None

    def strength(self, score: float) -> int:
        """0-100: the share of served scores at or below ``score``, in percent."""
        return int(round(100 * np.searchsorted(self.reference, score, side="right") / len(self.reference)))


def match_words(strength: int) -> str:
    """The strength in words: "strong match" (top quarter of served matches), "good match", or
    "weaker match" (the bottom two fifths)."""
    return "strong match" if strength >= STRONG else ("good match" if strength >= GOOD else "weaker match")


_MIN_REFERENCE = 50


@dataclass(frozen=True)
class Recommendation:
    """One customer's list, with the ranker's feature rows of the returned items (rank order)."""

    user_id: str
    cold_start: bool
    items: list[RecommendedItem]
    features: pd.DataFrame  # one row per returned item, columns = ranker.features (+ user/item ids)

    def with_strength(self, scale: MatchScale | None) -> Recommendation:
        """The list with each item's match strength on ``scale`` (unchanged without one)."""
        if scale is None:
            return self
        items = [dataclasses.replace(i, strength=scale.strength(i.score)) for i in self.items]
        return Recommendation(self.user_id, self.cold_start, items, self.features)

    def head(self, k: int) -> Recommendation:
        """The first ``k`` items of the list, with their feature rows."""
        if len(self.items) <= k:
            return self
        return Recommendation(self.user_id, self.cold_start, self.items[:k], self.features.head(k))

    def to_dict(self) -> dict:
        """The list as ``recommend --json`` and the API print it (no feature rows: they are internals)."""
        return {
            "user_id": self.user_id,
            "cold_start": self.cold_start,
            "items": [{"rank": i.rank, "item_id": i.item_id, "title": i.title, "score": i.score,
                       **({} if i.strength is None else {"match_strength": i.strength})} for i in self.items],
        }


class TopItems:
    """The precomputed lists of a model version: per customer, the first ``k`` rows the live path
    ranks (feature rows, ``score``, and the title it shows), customers contiguous in rank order.

    Read-only once loaded, so requests read it without the serving lock.
    """

    def __init__(self, frame: pd.DataFrame, k: int) -> None:
        if frame.empty:
            self.features, self.titles, self.scores = frame.drop(columns=[TITLE], errors="ignore"), [], []
            self.spans: dict[str, tuple[int, int]] = {}
            self.k = k
            return
        users = frame[s.USER_ID].to_numpy()
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        ends = np.r_[starts[1:], len(users)]
        self.spans = dict(zip(users[starts].tolist(), zip(starts.tolist(), ends.tolist())))
        if len(self.spans) != len(starts):
            raise RecsightError("precomputed lists are not grouped by customer")
        self.titles = frame[TITLE].tolist()
        self.scores = frame["score"].tolist()
        self.features = frame.drop(columns=[TITLE])
        self.k = k

    @classmethod
    def read(cls, path: Path, k: int, features: Sequence[str]) -> TopItems:
        """The table written by :func:`models.precompute.precompute_top_items`, checked for the
        columns the ranker ``features`` and the lists need."""
        frame = pd.read_parquet(path)
        missing = sorted({s.USER_ID, s.ITEM_ID, "cand_rank", "score", TITLE, *features} - set(frame.columns))
        if missing:
            raise RecsightError(f"{path.name} lacks the columns {', '.join(missing)}")
        return cls(frame, k)

    def __len__(self) -> int:
        return len(self.spans)

    def get(self, user_id: str, k: int) -> Recommendation | None:
        """The customer's top ``k`` as the live path gives it, or None when the table cannot tell
        (customer absent, or ``k`` beyond the stored rows of a list that was cut at ``self.k``)."""
        span = self.spans.get(user_id)
        if span is None:
            return None
        start, stop = span
        if k > stop - start and stop - start >= self.k:
            return None  # the stored rows are the list's head only
        stop = min(stop, start + k)
        features = self.features.iloc[start:stop].reset_index(drop=True)
        items = [RecommendedItem(rank, item, title, score) for rank, (item, title, score) in enumerate(
            zip(features[s.ITEM_ID].tolist(), self.titles[start:stop], self.scores[start:stop]), start=1)]
        return Recommendation(user_id, bool(features["user_events"].isna().all()), items, features)


def load_top_items(artifact: registry.Artifact, features: Sequence[str]) -> TopItems | None:
    """The version's precomputed lists, or None (a version written before them, or an unreadable
    file: the live path gives the same answers, only slower, so that is a warning, not an error)."""
    meta = artifact.metadata.get(TOP_ITEMS_META)
    if not isinstance(meta, dict):
        return None
    path = artifact.path / "serving" / TOP_ITEMS_FILE
    try:
        top = TopItems.read(path, int(meta["k"]), features)
    except Exception as exc:  # noqa: BLE001 - any damage: serve live, say why
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("precomputed lists of %s unusable (%s): every request runs the live path",
                    artifact.path.name, reason)
        return None
    log.info("precomputed lists of %d customers (top %d) loaded", len(top), top.k)
    return top
