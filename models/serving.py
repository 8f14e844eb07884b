"""Serving: a loaded model version ranks one customer at a time, fast enough for a request.

:class:`Recommender` loads a trained model version once (the app keeps it) and ranks one customer
at a time with the same SQL as training (:mod:`models.batch`), keeping the feature rows of the
returned items for the explanations. Requests for known customers are answered from the lists
ranked at training time (:mod:`models.precompute`, read here as :class:`TopItems`) when they hold
the answer; the live path answers the rest (cold starts, larger ``k``, a model version written
before the table existed, customers with events newer than the model: :mod:`models.live_serving`),
and ``rescore`` always runs live. The connection sees the live segment (acknowledged intake
batches) as part of ``events``; every request first reads the segment files written since the
last one.

Which customer a typed id names is not decided here: that is the product's one customer-id rule,
:func:`analytics.customers.resolve_customer`, run on :meth:`Recommender.connection`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb

from analytics import schema as s
from analytics.customers import is_known_customer
from analytics.db import connect_read_only
from errors import RecsightError
from models import registry
from models.attention import AttentionModel
from models.batch import HistoryTables, Models, feature_frame
from models.candidates import CandidateIndex
from models.coalesce import Coalescer
from models.cold_items import refresh_cold_items
from models.config import EngineConfig, engine_config_from
from models.deferred import Deferred, ServingLock
from models.features import AS_OF, label_of
from models.item_norms import ItemNorms, item_norms
from models.live_covis import CovisLinks, LiveCovis, chunk_end
from models.live_serving import LiveFeed
from models.precompute import item_titles
from models.ranker import Ranker
from models.recommendation import MatchScale, Recommendation, RecommendedItem, TopItems, load_top_items
from models.rescoring import HistoryChange, variant_cutoffs, write_variants
from models.sequences import Histories

__all__ = ["RecommendedItem", "Recommendation", "CovisLinks", "TopItems", "Recommender", "SERVING_INDEX",
           "HistoryChange"]

log = logging.getLogger(__name__)

_HISTORY_CACHE_EVENTS = 2_000_000  # shops up to this many events keep every customer's window in memory
_LINKS_CHUNK_EVENTS = 1_000  # live events folded into the co-visitation links per hold of the serving lock
SERVING_INDEX = "serve_ix"  # prefix of the serving index tables, and of their files in serving/


class Recommender:
    """A loaded model version bound to the shop database; safe to share between threads.

    Load it once (``Recommender.load``). :meth:`recommend` answers from the version's precomputed
    lists when it can (no SQL, no lock); otherwise it runs the serving SQL for one customer under
    a lock (the DuckDB connection and its work tables are not thread-safe).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, artifact: registry.Artifact, tables: HistoryTables,
                 models: Models, config: EngineConfig, top: TopItems | None = None, live: LiveFeed | None = None,
                 live_covis: LiveCovis | None = None, db_path: Path | None = None) -> None:
        self.con = con
        self.artifact = artifact
        self.tables = tables
        self.models = models
        self.config = config
        self.top = top
        self.live = live
        self.db_path = db_path  # the shop file it serves (None: a connection made elsewhere, as tests do)
        self.live_covis = live_covis  # None: co-visitation stays as trained (no live feed, or an old version)
        self._lock = ServingLock()
        self._live_requests: Coalescer[tuple[str, int], Recommendation] = Coalescer(self._serve_live, self._lock)
        self._covis: CovisLinks | None = None
        self._links_from: int | None = None  # co-visitation lacks the segments above this (None: current)
        self._links = Deferred(self._apply_links, name="recsight-live-links")
        self._all_histories: Histories | None = None
        self._cache_histories: bool | None = None  # None: not decided yet
        # The network windows of the customers of the last live pass or changed read, and the
        # last live segment they include: explanations of those lists reuse them.
        self._live_windows: tuple[int, frozenset[str], Histories] | None = None
        self.match_scale = MatchScale.of(top.scores) if top is not None else None  # the served scores' spread
        self.item_norms = ItemNorms({})  # the catalogue's quartiles, read at load (reasons' words)
        # Items first seen through the intake, scored from their content and live counts until the
        # next training (models.cold_items); replaced whole, so lock-free readers see one state.
        self.cold_items: frozenset[str] = frozenset()

    @property
    def ranker(self) -> Ranker:
        """The ranker whose scores the customer sees (the one chosen at training: ``Models.served``)."""
        return self.models.serving

    @property
    def attention(self) -> AttentionModel:
        """The network behind the ranker's ``attention_score`` feature (explanations run it)."""
        return self.models.attention

    @staticmethod
    def feature_label(name: str) -> str:
        """The readable label of a ranker feature, for explanations that only hold the recommender."""
        return label_of(name)

    @classmethod
    def load(cls, db_path: Path, models_dir: Path, version: str | None = None) -> Recommender:
        """Open the shop read-only and load the current model version, or the published ``version``
        (an experiment's variant), checked against the data."""
        con = connect_read_only(db_path)
        try:
            artifact = (registry.load_current(Path(models_dir), con, follow_compactions=True) if version is None
                        else registry.load_version(Path(models_dir), version, con, follow_compactions=True))
            config = engine_config_from(artifact.metadata["config"])
            index = CandidateIndex.load(artifact.path / "serving", con, SERVING_INDEX, config.candidates)
            items = "serve_items"
            path = artifact.path / "serving" / f"{items}.parquet"
            if not path.exists():
                raise RecsightError(f"model artifact is incomplete: {path.name} is missing; retrain")
            con.execute(f"CREATE OR REPLACE TEMP TABLE {items} AS SELECT * FROM read_parquet('{path}')")
            models = Models.load(artifact.path, artifact.metadata["features"], registry.served_model(artifact.metadata))
            as_of = datetime.fromisoformat(artifact.metadata["serving_as_of"])
            # After the fingerprint check: it reads the snapshot (and, when the shop was compacted
            # since training, shows the events folded after the model's snapshot as live again).
            live = LiveFeed.attach(con, Path(db_path), as_of, model_seq=artifact.base_seq)
            live_covis = LiveCovis.attach(con, index)
        except duckdb.Error as exc:  # a damaged serving table (Parquet) of the version
            con.close()
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RecsightError(f"cannot load the model in {models_dir} ({reason}); retrain") from None
        except BaseException:
            con.close()
            raise
        top = load_top_items(artifact, models.serving.features)
        rec = cls(con, artifact, HistoryTables(s.EVENTS, as_of, index, items), models, config, top, live, live_covis,
                  Path(db_path))
        rec.item_norms = item_norms(con, items)
        with rec._lock:  # the live events already there when the model loads
            rec._refresh_cold_items(None)
        if live_covis is not None:  # their links, in the deferred update's chunks, before the first request
            rec._links_from = live.view.base_seq
            rec._links.settle()
        return rec

    def close(self) -> None:
        """Close the shop connection (the recommender is unusable afterwards)."""
        self._links.close()
        if self.live_covis is not None:
            self.live_covis.close()
        self.con.close()

    def retire(self) -> None:
        """Stop the background co-visitation thread of a recommender a newer one replaces, leaving
        the connection to the requests still using it (it closes when the last reference goes;
        the running thread would otherwise keep the whole recommender alive)."""
        self._links.close(wait=False)

    def recommend(self, user_id: str, k: int = 10) -> Recommendation:
        """Top ``k`` items for a known customer (pseudonym); a customer without events is a cold start.

        From the precomputed lists when they hold the answer (the same items, scores and feature
        rows as :meth:`_rank` gives) and the customer has no event newer than the model, else by
        the live path.
        """
        if k <= 0:
            raise RecsightError("k must be a positive number of items")
        self.catch_up()
        if self.top is not None and not (self.live is not None and self.live.changed(user_id)):
            stored = self.top.get(user_id, k)
            if stored is not None:
                return stored.with_strength(self.match_scale)
        return self.recommend_live(user_id, k)

    def recommend_live(self, user_id: str, k: int = 10) -> Recommendation:
        """:meth:`recommend` by the live path only (candidates, features, network and ranker run now).

        Customers asked for while a live pass runs are ranked together in the next one
        (:class:`models.coalesce.Coalescer`): the same lists as one at a time, at a fraction of
        the cost per customer."""
        if k <= 0:
            raise RecsightError("k must be a positive number of items")
        self.catch_up()
        return self._live_requests.submit((user_id, k)).with_strength(self.match_scale)

    def _serve_live(self, requests: list[tuple[str, int]]) -> list[Recommendation | RecsightError]:
        """One live pass for the (customer, k) requests that came together (the coalescer's
        ``serve``, run under the serving lock)."""
        known = {user for user, _ in requests if self.listed(user) or is_known_customer(self.con, user)}
        ranked = {}
        if known:
            users = sorted(known)
            history = "serve_history"  # every serving query filters by customer: one scan here
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {history} AS SELECT * FROM {self.tables.history} "
                             f"WHERE {s.USER_ID} IN (SELECT unnest(?::VARCHAR[]))", [users])
            k = max(k for user, k in requests if user in known)
            windows = self.attention.histories(self.con, history, users)
            ranked = self._rank({user: self.as_of(user) for user in users}, k,
                                dataclasses.replace(self.tables, history=history), windows)
            if self.live is not None:  # the explanations of these lists read the same windows
                self._live_windows = (self.live.last_seq, frozenset(users), windows)
        return [ranked[user].head(k) if user in ranked
                else RecsightError(f"unknown customer {user!r}: not in the shop's events or users")
                for user, k in requests]

    def rescore(self, user_id: str, k: int = 10, *, without_items: Collection[str] = (),
                extra_events: Sequence[tuple[str, str, datetime]] = (),
                before: datetime | None = None) -> Recommendation:
        """The list ``recommend`` would give had the customer's history lacked every event on
        ``without_items`` and held ``extra_events`` ((item_id, event_type, ts) triples).

        Why: counterfactual explanations must be verified through the real pipeline (candidates,
        features, attention network, ranker), not estimated. Only the customer's own history
        changes; the shop-wide tables (co-visitation, popularity, item statistics) stay as
        trained, since one customer's events barely move them.

        ``before`` (naive UTC, as event times are stored) also drops every event at or after it,
        and computes the features as of the time the live feed would have used then (the serving
        time, or just after the newest event kept when that is later): the list as it was served
        before that moment, which "what changed since" (:mod:`workflows.changes`) compares with now.
        """
        (ranked,) = self.rescore_many(user_id, [HistoryChange.of(without_items, extra_events)], k, before=before)
        return ranked

    def rescore_many(self, user_id: str, changes: Sequence[HistoryChange], k: int = 10, *,
                     before: datetime | None = None) -> list[Recommendation]:
        """:meth:`rescore` for several changes of the customer's history, in one pass: the lists,
        in the order of ``changes``, are the ones ``rescore`` gives for each alone.

        Why: a verified counterfactual needs many re-scorings of one customer, and a pass costs
        nearly as much for one history as for fifteen (:mod:`models.rescoring`: each variant is
        ranked as a virtual customer of its own)."""
        if k <= 0:
            raise RecsightError("k must be a positive number of items")
        if not changes:
            return []
        self.catch_up()
        with self._lock:
            if not is_known_customer(self.con, user_id):
                raise RecsightError(f"unknown customer {user_id!r}: not in the shop's events or users")
            history = "serve_cf_history"
            ids = write_variants(self.con, self.tables.history, user_id, changes, before, history)
            as_of = dict.fromkeys(ids, self.as_of(user_id))
            if before is not None and self.tables.as_of is not None:  # LiveFeed.as_of over the kept events
                as_of = variant_cutoffs(self.con, history, ids, self.tables.as_of)
            ranked = self._rank(as_of, k, dataclasses.replace(self.tables, history=history))
        for vid in ids:  # the customer's own id in the rows (each list's rows are its own copy)
            ranked[vid].features[s.USER_ID] = user_id
        return [dataclasses.replace(ranked[vid], user_id=user_id).with_strength(self.match_scale) for vid in ids]

    def histories(self, user_ids: Sequence[str]) -> Histories:
        """The attention network's input windows of these customers, read from the serving history.

        The windows of every customer are read once, on first use, and shared (each customer's
        window is built alone, so it is the same as a query for that customer would give; the
        result covers ``user_ids`` and others). Shops above :data:`_HISTORY_CACHE_EVENTS` events
        are read per call instead, to keep memory bounded. Customers with live events are read per
        call too, their window having moved since the shared one was read; the windows of the last
        live pass (or of the last such read) serve until the next segment arrives, so explaining
        a list just ranked live reads nothing again.
        """
        if self.live is not None and any(self.live.changed(u) for u in user_ids):
            kept = self._live_windows  # the last live pass's, or the last such read
            if kept is not None and kept[0] == self.live.last_seq and kept[1].issuperset(user_ids):
                return kept[2]
            with self._lock:
                windows = self.attention.histories(self.con, self.tables.history, list(user_ids))
                self._live_windows = (self.live.last_seq, frozenset(user_ids), windows)
                return windows
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

    def listed(self, user_id: str) -> bool:
        """Whether the pseudonym is a known customer by what is in memory (a list precomputed at
        training, or live events): no query and no lock. False means "ask the store"
        (:func:`analytics.customers.is_known_customer`), not "unknown"."""
        return (self.top is not None and user_id in self.top.spans) or (
            self.live is not None and self.live.changed(user_id))

    def as_of(self, user_id: str) -> datetime | None:
        """When the customer's features are computed: the model's serving time, or just after
        the customer's newest live event when later (so the profile counts it)."""
        if self.live is None:
            return self.tables.as_of
        return self.live.as_of(user_id)

    def catch_up(self) -> None:
        """Read the live segment files written since the last request (nothing to do, and no lock
        taken, when there are none: one directory listing).

        Their events reach the co-visitation links (:mod:`models.live_covis`) a quarter of a
        second later, from a background thread (:mod:`models.deferred`: the update costs several
        times what ranking the customer does, and a customer's own list does not need it);
        :meth:`settle` applies them at once. Items first seen in them (or in new catalogue rows)
        get their item-feature and attribute rows at once, under the lock (:mod:`models.cold_items`:
        a few items' rows, cheap beside the refresh itself).
        """
        live = self.live
        if live is not None and live.has_news():
            with self._lock:
                before = live.last_seq
                added = live.refresh(self.con)
                if live.last_seq != before:  # new events or catalogue rows: the cold items' rows move
                    self._refresh_cold_items(before)
                if added and self.live_covis is not None:
                    self._links_from = before if self._links_from is None else min(self._links_from, before)
                    self._links.due()

    def settle(self) -> None:
        """Read new segments and bring the co-visitation links up to date now (tests, the replay
        benchmark: anything comparing the links with a rebuild)."""
        self.catch_up()
        self._links.settle()

    def _refresh_cold_items(self, after_seq: int | None) -> None:
        """Give the items first seen through the intake (the segments above ``after_seq``; None:
        at load, all) their item-feature and attribute rows (:mod:`models.cold_items`; caller
        holds the lock). A failure leaves the rows as they were (the items keep blank features),
        it does not stop the serving."""
        if self.live is None:
            return
        try:
            self.cold_items = refresh_cold_items(self.con, self.tables, self.cold_items, after_seq)
        except duckdb.Error as exc:
            log.warning("cold-item update failed (%s): new items keep their earlier rows",
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)

    def _apply_links(self, background: bool = False) -> bool:
        """One chunk of the deferred co-visitation update: the segments after the last one applied,
        up to about :data:`_LINKS_CHUNK_EVENTS` events; returns whether more segments are due.

        The serving lock is held only to read the chunk's histories and to publish its rows
        (:class:`models.live_covis.LiveCovis`); the update itself runs on the updater's own
        connection while requests are served, and in the ``background`` it waits between its
        steps for a gap between requests (:meth:`ServingLock.yield_to_requests`). A failure stops
        the updates, not the serving: the links stay as they were.
        """
        with self._lock:
            after, live, covis = self._links_from, self.live, self.live_covis
            if after is None or live is None or covis is None:
                return False
            end = chunk_end(self.con, after, _LINKS_CHUNK_EVENTS)
            upto = live.last_seq if end is None else end
            try:
                batch = covis.read_batch(self.con, after, upto)
            except duckdb.Error as exc:
                return self._stop_links(exc)
        try:
            if batch is not None:
                pause = self._lock.yield_to_requests if background else None
                with covis.update(batch, pause) as update, self._lock:
                    changed = covis.publish(self.con, update)
                    if changed and self._covis is not None:
                        self._covis = self._covis.replaced(self.con, self.tables.index.covis_tables, changed)
        except duckdb.Error as exc:
            with self._lock:
                return self._stop_links(exc)
        with self._lock:  # segments read meanwhile lowered nothing: they are all above upto
            more = upto < live.last_seq
            self._links_from = upto if more else None
        return more

    def _stop_links(self, exc: duckdb.Error) -> bool:
        """Stop updating co-visitation after a failure (caller holds the lock): links stay as they were."""
        log.warning("live co-visitation update failed (%s): links stay as trained until the next training",
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        if self.live_covis is not None:
            self.live_covis.close()
        self.live_covis = None
        self._links_from = None
        return False

    def warm(self) -> Recommender:
        """Build what explanations read from memory (every customer's network window, the
        co-visitation links) now rather than on the first explanation, and rank one customer by
        the live path: the first live ranking in a process pays one-time costs (torch loads its
        compiler modules on the first switch to deterministic kernels, about 1.5 s) that would
        otherwise fall on the first changed customer. A server calls this once after loading.
        Returns the recommender."""
        self.histories([])
        self.covis_links()
        with self._lock:
            first = self.con.execute(f"SELECT {s.USER_ID} FROM {self.tables.history} LIMIT 1").fetchone()
        if first is not None:
            self.recommend_live(first[0], 1)
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
        """The shop connection under the serving lock, for read queries (explanations' evidence,
        :func:`analytics.customers.resolve_customer`): the connection is not thread-safe."""
        with self._lock:
            yield self.con

    def _rank(self, as_of: dict[str, datetime | None], k: int, tables: HistoryTables,
              windows: Histories | None = None) -> dict[str, Recommendation]:
        """The serving SQL and the ranker for these customers over ``tables``, each customer's
        features as of their own ``as_of`` (caller holds the lock; ``windows``: their network
        windows when already read). The network scores each customer's rows on their own, so a
        list is the same ranked alone or beside others."""
        con = self.con
        users = list(as_of)
        con.execute(f"CREATE OR REPLACE TEMP TABLE serve_user AS SELECT unnest(?::VARCHAR[]) AS {s.USER_ID}, "
                    f"unnest(?::TIMESTAMP[]) AS {AS_OF}", [users, [as_of[u] for u in users]])
        frame = feature_frame(con, tables, "serve_user", "serve", attention=self.attention,
                              attention_per_user=True, own_as_of=True, histories=windows)
        if not frame.empty:
            frame = frame.assign(score=self.ranker.predict(frame))
            frame = frame.sort_values([s.USER_ID, "score", "cand_rank"], ascending=[True, False, True], kind="stable")
            frame = frame[frame.groupby(s.USER_ID, sort=False).cumcount() < k]
        titles = item_titles(con, frame[s.ITEM_ID].unique().tolist())
        ranked = {}
        by_user = dict(iter(frame.groupby(s.USER_ID, sort=False))) if len(users) > 1 and not frame.empty else {}
        for user in users:  # one split, not one scan per customer (rescore_many ranks fifteen at a time)
            rows = (by_user.get(user, frame.iloc[:0]) if by_user else frame[frame[s.USER_ID] == user]
                    ).reset_index(drop=True)
            items = [RecommendedItem(rank, item, titles.get(item) or item, float(score))
                     for rank, (item, score) in enumerate(zip(rows[s.ITEM_ID], rows.get("score", [])), start=1)]
            ranked[user] = Recommendation(user, bool(rows.empty or rows["user_events"].isna().all()), items, rows)
        return ranked
