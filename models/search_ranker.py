"""The personalised search ranker: LightGBM LambdaRank over query and customer features.

Two boosters in one artifact, both :class:`models.ranker.Ranker`:

- ``personal``: every feature of :data:`models.search_features.SEARCH_FEATURES`, for a search by
  a customer with a history;
- ``anonymous``: the query features only, for a search by nobody (or a customer without any
  event). Its customer columns are NaN in the feature rows and it never reads them, so an
  anonymous ranking is what the query alone says, not a personal model guessing around missing
  values it never saw in training.

Scores are raw LambdaRank scores; :meth:`SearchRanker.contributions` gives the exact TreeSHAP
values of the booster that ranked a result (their sum is the score). Files, in one folder (e.g.
``<model version>/search/``): ``ranker.txt``, ``anonymous.txt`` and ``search_ranker.json`` (feature
lists, format, what it was trained on), written atomically (:mod:`atomic`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analytics import schema as S
from atomic import write_text
from errors import RecsightError
from models.ranker import Ranker
from models.search_features import CUSTOMER_FEATURES, ItemStats, PersonalContext, feature_rows
from models.search_index import SearchIndex
from models.search_query import Candidate, Retrieval

__all__ = ["SearchRanker", "SearchHit", "SearchResult", "rank_search", "PERSONAL_FILE", "ANONYMOUS_FILE",
           "META_FILE", "K_CANDIDATES"]

log = logging.getLogger(__name__)

PERSONAL_FILE = "ranker.txt"
ANONYMOUS_FILE = "anonymous.txt"
META_FILE = "search_ranker.json"
FORMAT = "recsight-search-ranker"
FORMAT_VERSION = 1
K_CANDIDATES = 100  # retrieved items the ranker orders; training used the same number


class SearchRanker:
    """The personal and the anonymous booster with what they were trained on."""

    def __init__(self, personal: Ranker, anonymous: Ranker, info: dict | None = None) -> None:
        if any(f in CUSTOMER_FEATURES for f in anonymous.features):
            raise RecsightError("the anonymous search ranker must not read customer features; retrain")
        self.personal = personal
        self.anonymous = anonymous
        self.info = dict(info or {})

    def model(self, personalised: bool) -> Ranker:
        """The booster for a personalised (True) or anonymous (False) search."""
        return self.personal if personalised else self.anonymous

    def predict(self, frame: pd.DataFrame, personalised: bool) -> np.ndarray:
        return self.model(personalised).predict(frame)

    def contributions(self, frame: pd.DataFrame, personalised: bool) -> np.ndarray:
        """Exact TreeSHAP values (rows, features + 1), last column the base value, in the column
        order of ``self.model(personalised).features``."""
        return self.model(personalised).contributions(frame)

    def save(self, folder: Path | str) -> None:
        """Both boosters, then the metadata last (a folder without it reads as incomplete)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.personal.save(folder / PERSONAL_FILE)
        self.anonymous.save(folder / ANONYMOUS_FILE)
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "personal_features": self.personal.features,
                "anonymous_features": self.anonymous.features, "trained": self.info}
        write_text(folder / META_FILE, json.dumps(meta, indent=2), private=False)

    @classmethod
    def load(cls, folder: Path | str) -> SearchRanker:
        """The ranker saved in ``folder``; a missing or corrupt file is a one-line RecsightError."""
        folder = Path(folder)
        path = folder / META_FILE
        if not path.is_file():
            raise RecsightError(f"search ranker {folder} is missing ({META_FILE} not found); run `python cli.py train`")
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            personal_features = [str(f) for f in meta["personal_features"]]
            anonymous_features = [str(f) for f in meta["anonymous_features"]]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RecsightError(f"search ranker {path} is corrupt ({type(exc).__name__}); retrain") from None
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise RecsightError(f"search ranker {path} has format {meta.get('format_version')!r}, this version "
                                f"reads {FORMAT_VERSION}; retrain")
        personal = Ranker.load(folder / PERSONAL_FILE, personal_features)
        anonymous = Ranker.load(folder / ANONYMOUS_FILE, anonymous_features)
        return cls(personal, anonymous, meta.get("trained"))


@dataclass(frozen=True)
class SearchHit:
    """One ranked search result with what it was retrieved on (for matched terms, similarity)."""

    rank: int
    item_id: str
    score: float
    candidate: Candidate


@dataclass(frozen=True)
class SearchResult:
    """A ranked search: the top hits, and every candidate's feature row with its ``score`` (the
    frame TreeSHAP needs: ``ranker.contributions(frame, personalised)`` adds up to ``score``)."""

    query: str
    personalised: bool
    hits: list[SearchHit]
    frame: pd.DataFrame
    retrieval: Retrieval
    features: list[str] = field(default_factory=list)  # the columns the ranking booster read


def rank_search(index: SearchIndex, ranker: SearchRanker, query: str, k: int = 10, *,
                stats: ItemStats, personal: PersonalContext | None = None,
                k_candidates: int = K_CANDIDATES, retrieval: Retrieval | None = None) -> SearchResult:
    """Retrieve ``k_candidates`` items for ``query`` and rank them; the top ``k`` as hits.

    ``personal`` None is an anonymous search (the query-only booster). The frame keeps every
    candidate, best first, so that "why A above B" can reach below the top ``k``. An empty query
    is the RecsightError of :func:`models.search_query.check_query`. ``retrieval``: the same
    query's candidates already retrieved on this ``index`` (ranking one query for someone else:
    the retrieval, with its query embedding, is the same for everyone).
    """
    if k < 1:
        raise RecsightError(f"k must be at least 1, not {k}")
    if retrieval is None:
        retrieval = index.retrieve(query, k_candidates)
    frame = feature_rows(retrieval, index, stats, personal)
    personalised = personal is not None
    frame["score"] = ranker.predict(frame, personalised) if len(frame) else np.zeros(0)
    frame = frame.sort_values(["score", "cand_rank"], ascending=[False, True], kind="stable").reset_index(drop=True)
    by_id = {c.item_id: c for c in retrieval.candidates}
    hits = [SearchHit(rank, item, float(score), by_id[item])
            for rank, (item, score) in enumerate(zip(frame[S.ITEM_ID].head(k), frame["score"].head(k)), start=1)]
    return SearchResult(retrieval.query, personalised, hits, frame, retrieval,
                        list(ranker.model(personalised).features))
