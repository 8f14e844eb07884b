"""The final ranked list: candidates -> features (+ the attention score) -> LightGBM, and serving.

The attention network enters as one ranker feature (stacking), so the ranker decides how much the
deep-interest signal counts next to co-visitation, popularity and affinity, and TreeSHAP on the
ranker splits every score over all of them, the attention score included.

Two uses of the same code:

- batch (training and evaluation): :func:`prepare_history` builds the item-level tables of one
  history table; :func:`feature_frame` computes the feature rows of many users at once;
- serving: :class:`Recommender` loads a trained model version once (the app keeps it) and ranks
  one customer at a time with the same SQL, keeping the feature rows of the returned items for
  the explanations.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Collection, Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd

from analytics import schema as s
from analytics.db import connect_read_only
from analytics.privacy import pseudonymise
from errors import RecsightError
from models import registry
from models.attention import AttentionConfig, AttentionModel
from models.candidates import CandidateConfig, CandidateIndex, Covis, build_index, generate
from models.features import ATTENTION_SCORE, assemble, build_item_table, build_user_tables, label_of
from models.ranker import Ranker, RankerConfig
from models.sequences import Histories

__all__ = [
    "EngineConfig", "QUICK", "HistoryTables", "Models", "RecommendedItem", "Recommendation", "Recommender",
    "prepare_history", "feature_frame", "rank_frame",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """Everything that shapes a trained engine; stored in the model's metadata."""

    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    list_length: int = 100  # items kept per user and model when evaluating (MRR looks this deep)


# The demo's `make run` budget: smaller candidate sets, fewer trees and attention epochs.
QUICK = EngineConfig(
    candidates=CandidateConfig(n_candidates=100),
    ranker=RankerConfig(max_rounds=200, early_stopping=10),
    attention=AttentionConfig(epochs=1, dim=32, negatives=32, max_history=20),
)


@dataclass(frozen=True)
class HistoryTables:
    """Item-level tables of one history table in the working connection."""

    history: str
    as_of: datetime | None
    index: CandidateIndex
    items: str


@dataclass
class Models:
    """The trained parts: the ranker without the attention feature, the hybrid, the network."""

    ranker: Ranker
    hybrid: Ranker
    attention: AttentionModel


def prepare_history(
    con: duckdb.DuckDBPyConnection, history: str, as_of: datetime | None, config: EngineConfig, prefix: str
) -> HistoryTables:
    """Co-visitation, popularity and item-feature tables of ``history``."""
    index = build_index(con, history, config.candidates, f"{prefix}_ix")
    items = build_item_table(con, history, index, as_of, f"{prefix}_items")
    return HistoryTables(history, as_of, index, items)


def feature_frame(
    con: duckdb.DuckDBPyConnection,
    tables: HistoryTables,
    users: str,
    prefix: str,
    *,
    labels: str | None = None,
    attention: AttentionModel | None = None,
) -> pd.DataFrame:
    """Feature rows (candidates x features, plus ``label``) for the users in table ``users``.

    With an attention model, ``attention_score`` is its logit for each row, read from the same
    history table (so it sees exactly what the other features see).
    """
    candidates = generate(con, tables.index, tables.history, users, f"{prefix}_cand")
    seq = f"{candidates}_seq"
    build_user_tables(con, tables.history, seq, users, tables.as_of, f"{prefix}_usr")
    frame = assemble(con, candidates, tables.items, f"{prefix}_usr", seq, labels)
    if attention is not None:
        user_ids = frame[s.USER_ID].unique().tolist()
        histories = attention.histories(con, tables.history, user_ids)
        frame[ATTENTION_SCORE] = attention.score(
            histories, frame[s.USER_ID].tolist(), frame[s.ITEM_ID].tolist()).astype(np.float64)
    return frame


def rank_frame(frame: pd.DataFrame, ranker: Ranker, n: int) -> dict[str, list[tuple[str, float]]]:
    """Each user's top ``n`` rows by the ranker's score (ties broken by candidate rank)."""
    if frame.empty:
        return {}
    scored = pd.DataFrame({
        "user": frame[s.USER_ID].to_numpy(), "item": frame[s.ITEM_ID].to_numpy(),
        "score": ranker.predict(frame), "cand_rank": frame["cand_rank"].to_numpy(),
    })
    scored = scored.sort_values(["user", "score", "cand_rank"], ascending=[True, False, True], kind="stable")
    scored = scored[scored.groupby("user").cumcount() < n]
    out: dict[str, list[tuple[str, float]]] = {}
    for user, item, score in zip(scored["user"], scored["item"], scored["score"]):
        out.setdefault(user, []).append((item, float(score)))
    return out


# --------------------------------------------------------------------------- serving


@dataclass(frozen=True)
class RecommendedItem:
    rank: int
    item_id: str
    title: str
    score: float  # the ranker's raw score: base value + sum of TreeSHAP contributions


@dataclass(frozen=True)
class Recommendation:
    """One customer's list, with the ranker's feature rows of the returned items (rank order)."""

    user_id: str
    cold_start: bool
    items: list[RecommendedItem]
    features: pd.DataFrame  # one row per returned item, columns = ranker.features (+ user/item ids)

    def to_dict(self) -> dict:
        return {
            "user_id": self.user_id,
            "cold_start": self.cold_start,
            "items": [{"rank": i.rank, "item_id": i.item_id, "title": i.title, "score": i.score} for i in self.items],
        }


class Recommender:
    """A loaded model version bound to the shop database; safe to share between threads.

    Load it once (``Recommender.load``); each :meth:`recommend` runs the serving SQL for one
    customer under a lock (the DuckDB connection and its work tables are not thread-safe).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, artifact: registry.Artifact, tables: HistoryTables,
                 models: Models, config: EngineConfig) -> None:
        self.con = con
        self.artifact = artifact
        self.tables = tables
        self.models = models
        self.config = config
        self._lock = threading.Lock()

    @property
    def ranker(self) -> Ranker:
        """The ranker whose scores the customer sees (the hybrid, with the attention feature)."""
        return self.models.hybrid

    @property
    def attention(self) -> AttentionModel:
        return self.models.attention

    @staticmethod
    def feature_label(name: str) -> str:
        return label_of(name)

    @classmethod
    def load(cls, db_path: Path, models_dir: Path) -> "Recommender":
        """Open the shop read-only and load the current model version (checked against the data)."""
        con = connect_read_only(db_path)
        try:
            artifact = registry.load_current(Path(models_dir), con)
            config = engine_config_from(artifact.metadata["config"])
            index = CandidateIndex.load(artifact.path / "serving", con, "serve_ix", config.candidates)
            items = "serve_items"
            path = artifact.path / "serving" / f"{items}.parquet"
            if not path.exists():
                raise RecsightError(f"model artifact is incomplete: {path.name} is missing; retrain")
            con.execute(f"CREATE OR REPLACE TEMP TABLE {items} AS SELECT * FROM read_parquet('{path}')")
            models = Models(
                ranker=Ranker.load(artifact.path / registry.RANKER_FILE, artifact.metadata["features"]["ranker"]),
                hybrid=Ranker.load(artifact.path / registry.HYBRID_FILE, artifact.metadata["features"]["hybrid"]),
                attention=AttentionModel.load(artifact.path / registry.ATTENTION_FILE),
            )
        except duckdb.Error as exc:  # a damaged serving table (Parquet) of the version
            con.close()
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RecsightError(f"cannot load the model in {models_dir} ({reason}); retrain") from None
        except BaseException:
            con.close()
            raise
        as_of = datetime.fromisoformat(artifact.metadata["serving_as_of"])
        return cls(con, artifact, HistoryTables(s.EVENTS, as_of, index, items), models, config)

    def close(self) -> None:
        self.con.close()

    def resolve_user(self, typed: str, secret: str = "") -> str:
        """The pseudonym of what an agent typed: a shop customer id (hashed with ``secret``) or a pseudonym."""
        typed = (typed or "").strip()
        if not typed:
            raise RecsightError("no customer id given")
        candidates = [typed] + ([pseudonymise(typed, secret)] if secret else [])
        with self._lock:
            for candidate in candidates:
                if self._known(candidate):
                    return candidate
        hint = "" if secret else " (RECSIGHT_SECRET is not set, so shop ids cannot be looked up)"
        raise RecsightError(f"unknown customer {typed!r}: not in the shop's events or users{hint}")

    def _known(self, user_id: str) -> bool:
        if self.con.execute(f"SELECT 1 FROM {s.EVENTS} WHERE {s.USER_ID} = ? LIMIT 1", [user_id]).fetchone():
            return True
        try:
            return bool(self.con.execute(f"SELECT 1 FROM {s.USERS} WHERE {s.USER_ID} = ? LIMIT 1",
                                         [user_id]).fetchone())
        except duckdb.CatalogException:
            return False

    def recommend(self, user_id: str, k: int = 10) -> Recommendation:
        """Top ``k`` items for a known customer (pseudonym); a customer without events is a cold start."""
        if k <= 0:
            raise RecsightError("k must be a positive number of items")
        with self._lock:
            if not self._known(user_id):
                raise RecsightError(f"unknown customer {user_id!r}: not in the shop's events or users")
            return self._rank(user_id, k, self.tables)

    def rescore(self, user_id: str, k: int = 10, *, without_items: Collection[str] = (),
                extra_events: Sequence[tuple[str, str, datetime]] = ()) -> Recommendation:
        """The list ``recommend`` would give had the customer's history lacked every event on
        ``without_items`` and held ``extra_events`` ((item_id, event_type, ts) triples).

        Why: counterfactual explanations must be verified through the real pipeline (candidates,
        features, attention network, ranker), not estimated. Only the customer's own history
        changes; the shop-wide tables (co-visitation, popularity, item statistics) stay as
        trained, since one customer's events barely move them.
        """
        if k <= 0:
            raise RecsightError("k must be a positive number of items")
        with self._lock:
            if not self._known(user_id):
                raise RecsightError(f"unknown customer {user_id!r}: not in the shop's events or users")
            con = self.con
            history = "serve_cf_history"
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE {history} AS SELECT * FROM {self.tables.history}
                    WHERE {s.USER_ID} = ? AND {s.ITEM_ID} NOT IN (SELECT unnest(?::VARCHAR[]))""",
                [user_id, sorted(set(without_items))])
            for item_id, event_type, ts in extra_events:
                con.execute(f"INSERT INTO {history} ({s.USER_ID}, {s.ITEM_ID}, {s.EVENT_TYPE}, {s.TS}) "
                            "VALUES (?, ?, ?, ?)", [user_id, item_id, event_type, ts])
            return self._rank(user_id, k, dataclasses.replace(self.tables, history=history))

    def histories(self, user_ids: Sequence[str]) -> Histories:
        """The attention network's input windows of these customers, read from the serving history."""
        with self._lock:
            return self.attention.histories(self.con, self.tables.history, list(user_ids))

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The shop connection under the serving lock, for read queries (explanations' evidence)."""
        with self._lock:
            yield self.con

    def _rank(self, user_id: str, k: int, tables: HistoryTables) -> Recommendation:
        """The serving SQL and the ranker for one customer over ``tables`` (caller holds the lock)."""
        con = self.con
        con.execute("CREATE OR REPLACE TEMP TABLE serve_user (user_id VARCHAR)")
        con.execute("INSERT INTO serve_user VALUES (?)", [user_id])
        frame = feature_frame(con, tables, "serve_user", "serve", attention=self.attention)
        cold_start = bool(frame.empty or frame["user_events"].isna().all())
        if frame.empty:
            return Recommendation(user_id, cold_start, [], frame)
        frame = frame.assign(score=self.ranker.predict(frame))
        frame = frame.sort_values(["score", "cand_rank"], ascending=[False, True], kind="stable").head(k)
        titles = dict(con.execute(
            f"SELECT {s.ITEM_ID}, {s.TITLE} FROM {s.ITEMS} WHERE {s.ITEM_ID} IN (SELECT unnest(?::VARCHAR[]))",
            [frame[s.ITEM_ID].tolist()]).fetchall())
        items = [
            RecommendedItem(rank, item, titles.get(item) or item, float(score))
            for rank, (item, score) in enumerate(zip(frame[s.ITEM_ID], frame["score"]), start=1)
        ]
        return Recommendation(user_id, cold_start, items, frame.reset_index(drop=True))


def engine_config_from(data: dict) -> EngineConfig:
    """Rebuild an :class:`EngineConfig` from the metadata's plain dict."""
    try:
        cand = dict(data["candidates"])
        cand["covis"] = tuple(Covis(**c) for c in cand["covis"])
        return EngineConfig(
            candidates=CandidateConfig(**cand),
            ranker=RankerConfig(**data["ranker"]),
            attention=AttentionConfig(**data["attention"]),
            list_length=data["list_length"],
        )
    except (KeyError, TypeError) as exc:
        raise RecsightError(f"model metadata has an unreadable configuration ({exc}); retrain") from None
