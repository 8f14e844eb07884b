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

What is expensive per request is computed at training time instead: :func:`precompute_top_items`
runs the serving path for every customer of the shop in batch (SQL over all users at once is far
cheaper per user than one at a time) and stores each one's first :data:`K_PRECOMPUTED` items with
their feature rows and scores in the model version (``serving/top_items.parquet``). The
:class:`Recommender` answers ``recommend(user, k)`` from that table when it can (a customer in it,
``k`` within what was stored) and runs the live path otherwise (cold starts, larger ``k``,
a model version written before the table existed); ``rescore`` always runs the live path.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
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
    "K_PRECOMPUTED", "TOP_ITEMS_FILE", "TopItems", "prepare_history", "feature_frame", "rank_frame",
    "precompute_top_items",
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
    attention_per_user: bool = False,
) -> pd.DataFrame:
    """Feature rows (candidates x features, plus ``label``) for the users in table ``users``.

    With an attention model, ``attention_score`` is its logit for each row, read from the same
    history table (so it sees exactly what the other features see). ``attention_per_user`` scores
    each user's rows as one batch of their own, as serving one customer does: the network's float32
    sums then round exactly as they do at request time (a batch mixing users may differ in the
    last bit), which the precomputed serving lists rely on.
    """
    candidates = generate(con, tables.index, tables.history, users, f"{prefix}_cand")
    seq = f"{candidates}_seq"
    build_user_tables(con, tables.history, seq, users, tables.as_of, f"{prefix}_usr")
    frame = assemble(con, candidates, tables.items, f"{prefix}_usr", seq, labels)
    if attention is not None:
        user_ids = frame[s.USER_ID].unique().tolist()
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


# --------------------------------------------------------------------------- serving

# Items stored per customer at training time. Every list the product shows is the top 10 (the
# lookup page, reports, the API's default k); 50 also covers the API's larger k up to half its
# maximum (100; beyond 50 the live path answers). The cost is memory in the server: 50 rows x ~48
# float64 columns is ~19 KB per customer (~100 MB for the 5,000-customer demo shop, ~430 MB for
# Amazon Beauty's 22,363), and ~10 s of training per 4,000 customers.
K_PRECOMPUTED = 50
TOP_ITEMS_FILE = "top_items.parquet"  # in the version's serving/ folder
TOP_ITEMS_META = "top_items"  # the metadata key describing it
_PRECOMPUTE_CHUNK = 4000  # customers per batch: bounds the feature frame (~4000 x 100 rows x 48 columns)
_TITLE = "title"
_HISTORY_CACHE_EVENTS = 2_000_000  # shops up to this many events keep every customer's window in memory
SERVING_INDEX = "serve_ix"  # prefix of the serving index tables, and of their files in serving/


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


class CovisLinks:
    """The serving co-visitation tables in memory, grouped by source item, for explanations that
    cite "shoppers who looked at X also looked at this": a few array slices per request instead of
    a scan of every table. Same rows as the tables (codes instead of item ids), read-only once built.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, covis_tables: dict[str, str]) -> None:
        frames = {name: con.execute(f"SELECT src, dst, w FROM {table} ORDER BY src, w DESC, dst").df()
                  for name, table in covis_tables.items()}
        ids = pd.concat([col for f in frames.values() for col in (f["src"], f["dst"])], ignore_index=True)
        codes, uniques = pd.factorize(ids) if len(ids) else (np.zeros(0, np.int64), pd.Index([]))
        self._code = {item: i for i, item in enumerate(uniques.tolist())}
        self._ids = np.asarray(uniques, dtype=object)
        self._variants: dict[str, tuple[dict[int, tuple[int, int]], np.ndarray, np.ndarray]] = {}
        at = 0
        for name, frame in frames.items():
            n = len(frame)
            src, dst = codes[at:at + n].astype(np.int64), codes[at + n:at + 2 * n].astype(np.int64)
            at += 2 * n
            starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]]) if n else np.zeros(0, np.int64)
            ends = np.r_[starts[1:], n] if n else np.zeros(0, np.int64)
            spans = dict(zip(src[starts].tolist(), zip(starts.tolist(), ends.tolist())))
            self._variants[name] = (spans, dst, frame["w"].to_numpy(np.float64))

    def links(self, variants: Sequence[str], sources: Sequence[str],
              targets: Sequence[str]) -> dict[str, list[tuple[str, str, float]]]:
        """{target: [(variant, source, weight)]} over the links source -> target of ``variants``,
        strongest first (ties: source, then the order of ``variants``)."""
        out: dict[str, list[tuple[str, str, float]]] = {t: [] for t in targets}
        wanted = {self._code[t] for t in targets if t in self._code}
        found = []
        for order, name in enumerate(variants):
            if name not in self._variants or not wanted:
                continue
            spans, dst, w = self._variants[name]
            for source in sources:
                span = spans.get(self._code.get(source, -1))
                if span is None:
                    continue
                a, b = span
                for j in np.flatnonzero(np.isin(dst[a:b], list(wanted))).tolist():
                    found.append((-float(w[a + j]), source, order, name, int(dst[a + j])))
        for negative_w, source, _, name, code in sorted(found, key=lambda f: f[:3]):
            out[self._ids[code]].append((name, source, -negative_w))
        return out


class TopItems:
    """The precomputed lists of a model version: per customer, the first ``k`` rows the live path
    ranks (feature rows, ``score``, and the title it shows), customers contiguous in rank order.

    Read-only once loaded, so requests read it without the serving lock.
    """

    def __init__(self, frame: pd.DataFrame, k: int) -> None:
        if frame.empty:
            self.features, self.titles, self.scores = frame.drop(columns=[_TITLE], errors="ignore"), [], []
            self.spans: dict[str, tuple[int, int]] = {}
            self.k = k
            return
        users = frame[s.USER_ID].to_numpy()
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
        ends = np.r_[starts[1:], len(users)]
        self.spans = dict(zip(users[starts].tolist(), zip(starts.tolist(), ends.tolist())))
        if len(self.spans) != len(starts):
            raise RecsightError("precomputed lists are not grouped by customer")
        self.titles = frame[_TITLE].tolist()
        self.scores = frame["score"].tolist()
        self.features = frame.drop(columns=[_TITLE])
        self.k = k

    @classmethod
    def read(cls, path: Path, k: int, features: Sequence[str]) -> "TopItems":
        frame = pd.read_parquet(path)
        missing = sorted({s.USER_ID, s.ITEM_ID, "cand_rank", "score", _TITLE, *features} - set(frame.columns))
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


def precompute_top_items(
    con: duckdb.DuckDBPyConnection, tables: HistoryTables, models: Models, out: Path,
    k: int = K_PRECOMPUTED, chunk: int = _PRECOMPUTE_CHUNK,
) -> dict:
    """Rank every customer of the shop with the serving path and write each one's top ``k`` to ``out``.

    ``tables`` are the serving tables as :meth:`Recommender.load` binds them (the shop's events,
    the serving ``as_of``, the saved index and item table); the candidate, feature and ranker code
    of :meth:`Recommender._rank` runs over customers in batches of ``chunk``. Returns what the
    model's metadata records under ``top_items``.
    """
    started = time.perf_counter()
    users = [row[0] for row in con.execute(
        f"SELECT DISTINCT {s.USER_ID} FROM {tables.history} ORDER BY {s.USER_ID}").fetchall()]
    parts = []
    for begin in range(0, len(users), chunk):
        con.execute("CREATE OR REPLACE TEMP TABLE pre_users (user_id VARCHAR)")
        con.execute("INSERT INTO pre_users SELECT unnest(?::VARCHAR[])", [users[begin:begin + chunk]])
        frame = feature_frame(con, tables, "pre_users", "pre", attention=models.attention, attention_per_user=True)
        if frame.empty:
            continue
        frame = frame.assign(score=models.hybrid.predict(frame))
        frame = frame.sort_values([s.USER_ID, "score", "cand_rank"], ascending=[True, False, True], kind="stable")
        parts.append(frame[frame.groupby(s.USER_ID, sort=False).cumcount() < k])
    con.execute("DROP TABLE IF EXISTS pre_users")
    top = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if not top.empty:
        titles = _titles(con, top[s.ITEM_ID].unique().tolist())
        top[_TITLE] = [titles.get(item) or item for item in top[s.ITEM_ID].tolist()]
    top.to_parquet(out, index=False)
    seconds = time.perf_counter() - started
    log.info("precomputed the top %d of %d customers in %.1f s", k, len(users), seconds)
    return {"file": f"serving/{Path(out).name}", "k": k, "customers": int(top[s.USER_ID].nunique()) if len(top) else 0,
            "rows": len(top), "seconds": round(seconds, 2)}


def _titles(con: duckdb.DuckDBPyConnection, item_ids: list[str]) -> dict[str, str]:
    """{item_id: title} from the catalogue, for the items that have one."""
    return dict(con.execute(
        f"SELECT {s.ITEM_ID}, {s.TITLE} FROM {s.ITEMS} WHERE {s.ITEM_ID} IN (SELECT unnest(?::VARCHAR[]))",
        [item_ids]).fetchall())


class Recommender:
    """A loaded model version bound to the shop database; safe to share between threads.

    Load it once (``Recommender.load``). :meth:`recommend` answers from the version's precomputed
    lists when it can (no SQL, no lock); otherwise it runs the serving SQL for one customer under
    a lock (the DuckDB connection and its work tables are not thread-safe).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, artifact: registry.Artifact, tables: HistoryTables,
                 models: Models, config: EngineConfig, top: TopItems | None = None) -> None:
        self.con = con
        self.artifact = artifact
        self.tables = tables
        self.models = models
        self.config = config
        self.top = top
        self._lock = threading.Lock()
        self._covis: CovisLinks | None = None
        self._all_histories: Histories | None = None
        self._cache_histories: bool | None = None  # None: not decided yet

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
            index = CandidateIndex.load(artifact.path / "serving", con, SERVING_INDEX, config.candidates)
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
        top = _load_top_items(artifact, models.hybrid.features)
        return cls(con, artifact, HistoryTables(s.EVENTS, as_of, index, items), models, config, top)

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
        """Top ``k`` items for a known customer (pseudonym); a customer without events is a cold start.

        From the precomputed lists when they hold the answer (the same items, scores and feature
        rows as :meth:`_rank` gives), else by the live path.
        """
        if k <= 0:
            raise RecsightError("k must be a positive number of items")
        if self.top is not None:
            stored = self.top.get(user_id, k)
            if stored is not None:
                return stored
        return self.recommend_live(user_id, k)

    def recommend_live(self, user_id: str, k: int = 10) -> Recommendation:
        """:meth:`recommend` by the live path only (candidates, features, network and ranker run now)."""
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
        """The attention network's input windows of these customers, read from the serving history.

        The windows of every customer are read once, on first use, and shared (each customer's
        window is built alone, so it is the same as a query for that customer would give; the
        result covers ``user_ids`` and others). Shops above :data:`_HISTORY_CACHE_EVENTS` events
        are read per call instead, to keep memory bounded.
        """
        cached = self._all_histories
        if cached is not None:
            return cached
        with self._lock:
            if self._all_histories is None and self._cache_histories is None:
                (n_events,) = self.con.execute(f"SELECT count(*) FROM {self.tables.history}").fetchone()
                self._cache_histories = n_events <= _HISTORY_CACHE_EVENTS
            if not self._cache_histories:
                return self.attention.histories(self.con, self.tables.history, list(user_ids))
            if self._all_histories is None:
                self._all_histories = self.attention.histories(self.con, self.tables.history)
            return self._all_histories

    def warm(self) -> "Recommender":
        """Build what explanations read from memory (every customer's network window, the
        co-visitation links) now rather than on the first explanation; a server calls this once
        after loading. Returns the recommender."""
        self.histories([])
        self.covis_links()
        return self

    def covis_links(self) -> CovisLinks:
        """The serving co-visitation tables in memory (built on first use, then shared)."""
        links = self._covis
        if links is None:
            with self._lock:
                if self._covis is None:
                    self._covis = CovisLinks(self.con, self.tables.index.covis_tables)
                links = self._covis
        return links

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
        titles = _titles(con, frame[s.ITEM_ID].tolist())
        items = [
            RecommendedItem(rank, item, titles.get(item) or item, float(score))
            for rank, (item, score) in enumerate(zip(frame[s.ITEM_ID], frame["score"]), start=1)
        ]
        return Recommendation(user_id, cold_start, items, frame.reset_index(drop=True))


def _load_top_items(artifact: registry.Artifact, features: Sequence[str]) -> TopItems | None:
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
