"""Feature rows in batch: candidates -> features (+ the attention score), for many users at once.

The final ranked list is candidates -> features (+ the attention score) -> LightGBM. The attention
network enters as one ranker feature (stacking), so the ranker decides how much the deep-interest
signal counts next to co-visitation, popularity and affinity, and TreeSHAP on the ranker splits
every score over all of them, the attention score included.

The same code serves two uses: batch (training and evaluation, here: :func:`prepare_history`
builds the item-level tables of one history table; :func:`feature_frame` computes the feature
rows of many users at once; :func:`rank_frame` cuts each user's list) and serving
(:mod:`models.serving` ranks one customer at a time with the same SQL, and
:mod:`models.precompute` runs it over every customer at training time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from analytics import schema as s
from models import registry
from models.attention import AttentionModel
from models.candidates import CandidateIndex, build_index, generate
from models.config import EngineConfig
from models.features import ATTENTION_SCORE, assemble, build_item_table, build_user_tables
from models.ranker import Ranker
from models.sequences import Histories

__all__ = ["HistoryTables", "Models", "prepare_history", "feature_frame", "rank_frame"]


@dataclass(frozen=True)
class HistoryTables:
    """Item-level tables of one history table in the working connection."""

    history: str
    as_of: datetime | None
    index: CandidateIndex
    items: str


@dataclass
class Models:
    """The trained parts: the ranker without the attention feature, the hybrid, the network, and
    which of the two rankers customers are served (``served``: chosen at training on the
    validation customers, :func:`models.training.choose_served`)."""

    ranker: Ranker
    hybrid: Ranker
    attention: AttentionModel
    served: str = "hybrid"

    @classmethod
    def load(cls, folder: Path, features: dict[str, list[str]], served: str) -> Models:
        """The three models of the version in ``folder``; ``features`` are its metadata's feature
        lists per ranker. One place for the server, the evaluation and the Dask workers."""
        return cls(ranker=Ranker.load(folder / registry.RANKER_FILE, features["ranker"]),
                   hybrid=Ranker.load(folder / registry.HYBRID_FILE, features["hybrid"]),
                   attention=AttentionModel.load(folder / registry.ATTENTION_FILE), served=served)

    @property
    def serving(self) -> Ranker:
        """The ranker whose scores customers see: every list, explanation and counterfactual."""
        return self.hybrid if self.served == "hybrid" else self.ranker


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
    attention_per_user: bool = False,
    own_as_of: bool = False,
    histories: Histories | None = None,
) -> pd.DataFrame:
    """Feature rows (candidates x features, plus ``label``) for the users in table ``users``.

    With an attention model, ``attention_score`` is its logit for each row, read from the same
    history table (so it sees exactly what the other features see). ``attention_per_user`` scores
    each user's rows as one batch of their own, as serving one customer does: the network's float32
    sums then round exactly as they do at request time (a batch mixing users may differ in the
    last bit), which the precomputed serving lists rely on. ``own_as_of``: the ``users`` table
    gives each user's feature cutoff (:func:`models.features.build_user_tables`). ``histories``:
    the network's windows of these users when the caller already read them from ``tables.history``.
    """
    candidates = generate(con, tables.index, tables.history, users, f"{prefix}_cand")
    seq = f"{candidates}_seq"
    build_user_tables(con, tables.history, seq, users, tables.as_of, f"{prefix}_usr", own_as_of=own_as_of)
    frame = assemble(con, candidates, tables.items, f"{prefix}_usr", seq, labels)
    if attention is not None:
        user_ids = frame[s.USER_ID].unique().tolist()
        if histories is None:
            histories = attention.histories(con, tables.history, user_ids)
        if attention_per_user:
            frame[ATTENTION_SCORE] = _scores_per_user(attention, histories, frame[s.USER_ID].to_numpy(),
                                                      frame[s.ITEM_ID].to_numpy())
        else:
            frame[ATTENTION_SCORE] = attention.score(
                histories, frame[s.USER_ID].tolist(), frame[s.ITEM_ID].tolist()).astype(np.float64)
    return frame


def _scores_per_user(attention: AttentionModel, histories: Histories, users: np.ndarray,
                     items: np.ndarray) -> np.ndarray:
    """The network's logits with one ``score`` call per user (rows grouped by user, as assembled)."""
    out = np.empty(len(users), dtype=np.float64)
    if not len(users):
        return out
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    for a, b in zip(starts.tolist(), ends.tolist()):
        out[a:b] = attention.score(histories, users[a:b].tolist(), items[a:b].tolist())
    return out


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
