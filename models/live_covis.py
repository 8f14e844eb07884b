"""Co-visitation kept current with the live segment: exact, and paid per batch, not per store.

A co-visitation weight is a sum over customers of each customer's contribution (1/distance per
pair occurrence in their step sequence, or 1 when they have the pair at all: see
:func:`models.candidates.covis_weights_sql`). So when a batch of events arrives, the weights move
by ``weights(new sequences) - weights(old sequences)`` over the batch's customers only, computed
with the batch build's own SQL from those customers' histories; nobody else's sequence changed.

The served tables keep each source's ``top_n`` neighbours and ``p`` is a share of the source's
whole mass, so the delta cannot be applied to them: a neighbour below the cut may rise above it.
Training therefore saves each variant's untruncated integer weights beside the served table
(``<table>_w.parquet``, sorted by source, small row groups). :class:`LiveCovis` reads only the
rows of the sources a batch touches (the row groups' src statistics skip the rest), keeps them
plus every delta so far in a TEMP overlay (``<table>_live_w``, on the updater's own connection, so
the work runs beside the requests rather than between them), and rewrites the served rows of
those sources from it with the batch SQL (:func:`models.candidates.covis_top_sql`). Weights are
integers, so the result equals a rebuild over snapshot + live events bit for bit, and costs the
batch's customers' histories plus the touched sources' rows, whatever the store's size.

The served index was built at training time from the snapshot's ``events`` (the model's
fingerprint check guarantees the loaded snapshot is that history), so the first update at load
covers every live event already there, and each refresh then adds the segments it read. After a
compaction the shop file holds events the model never saw: the "old" histories are then read
from the reader's ``snapshot_events`` (:data:`analytics.live_read.SNAPSHOT_EVENTS`, the snapshot
without the events folded after the model's), and those events come as live events, so the
deltas are the ones the same events gave before the fold.

:class:`CovisLinks` is the same tables in memory for explanations; :meth:`CovisLinks.replaced`
gives a copy with the rewritten sources, so a live update never rebuilds it whole.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from analytics import schema as s
from analytics.live_read import SNAPSHOT_EVENTS
from models.candidates import CandidateIndex, build_sequences, covis_top_sql, covis_weights_sql

__all__ = ["chunk_end", "CovisBatch", "CovisUpdate", "LiveCovis", "CovisLinks"]

log = logging.getLogger(__name__)

_OVERLAY_SUFFIX = "_live_w"


@dataclass(frozen=True)
class CovisBatch:
    """What one update reads from the serving connection (under its lock): the histories of the
    customers with events in segments ``(after_seq, upto_seq]``, snapshot rows with ``seq`` NULL."""

    after_seq: int
    upto_seq: int
    rows: pa.Table  # user_id, item_id, ts, seq


@dataclass(frozen=True)
class CovisUpdate:
    """The served rows of the sources one batch moved, per variant, ready to be published."""

    sources: dict[str, list[str]]  # variant -> the sources whose rows are replaced (sorted)
    rows: dict[str, pa.Table]  # variant -> src, dst, w, p of those sources


class LiveCovis:
    """The serving index's co-visitation tables, updated in place from live events.

    An update has three steps, so that requests never wait for the expensive one:
    :meth:`read_batch` (under the serving lock: a few milliseconds of reads), :meth:`update` (on
    the updater's own connection to the same database, where the untruncated weights and the
    scratch tables live: no serving lock, so requests run meanwhile), :meth:`publish` (under the
    serving lock: the touched sources' served rows replaced in one transaction, so a request sees
    the links before or after a batch, never half of it). One update runs at a time (the caller's
    background thread; :meth:`update` also holds an updater lock).
    """

    def __init__(self, index: CandidateIndex, snapshot_events: str, files: Mapping[str, Path],
                 worker: duckdb.DuckDBPyConnection) -> None:
        self.index = index
        self.snapshot_events = snapshot_events
        self.files = dict(files)
        self._worker = worker  # the updater's connection: the overlay and scratch tables are its TEMP tables
        self._worker_lock = threading.Lock()
        self._loaded: dict[str, set[str]] = {name: set() for name in files}  # sources in the overlay

    @classmethod
    def attach(cls, con: duckdb.DuckDBPyConnection, index: CandidateIndex) -> LiveCovis | None:
        """The updater of ``index`` (the serving index read from a model version), or None when the
        version has no saved weights (trained before them): its links then stay as trained."""
        files = {name: index.weights_file(name) for name in index.covis_tables}
        if any(path is None for path in files.values()):
            log.warning("model version without untruncated co-visitation weights: live events do not "
                        "update co-visitation until the next training")
            return None
        catalog = con.execute("SELECT current_database()").fetchone()[0]
        attached = con.execute("SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = ?",
                               [SNAPSHOT_EVENTS]).fetchone()[0]
        snapshot = SNAPSHOT_EVENTS if attached else f'"{catalog}".main.{s.EVENTS}'
        worker = con.cursor()
        for table in index.covis_tables.values():
            worker.execute(f"CREATE OR REPLACE TEMP TABLE {table}{_OVERLAY_SUFFIX} "
                           "(src VARCHAR, dst VARCHAR, wi BIGINT)")
        return cls(index, snapshot, {n: p for n, p in files.items() if p is not None}, worker)

    def close(self) -> None:
        """Close the updater's connection (waits for an update in progress)."""
        with self._worker_lock:
            self._worker.close()

    def read_batch(self, con: duckdb.DuckDBPyConnection, after_seq: int, upto_seq: int) -> CovisBatch | None:
        """The histories an update of segments ``(after_seq, upto_seq]`` needs, read from the serving
        connection (caller holds the serving lock); None when those segments hold no events."""
        users = [r[0] for r in con.execute(f"SELECT DISTINCT {s.USER_ID} FROM live_events WHERE seq > ? AND seq <= ?",
                                           [after_seq, upto_seq]).fetchall()]
        if not users:
            return None
        columns = f"{s.USER_ID}, {s.ITEM_ID}, {s.TS}"
        mine = f"{s.USER_ID} IN (SELECT unnest(?::VARCHAR[]))"
        rows = con.sql(
            f"""SELECT {columns}, NULL::BIGINT AS seq FROM {self.snapshot_events} WHERE {mine}
                UNION ALL SELECT {columns}, seq FROM live_events WHERE seq <= ? AND {mine}""",
            params=[users, upto_seq, users]).to_arrow_table()
        return CovisBatch(after_seq, upto_seq, rows)

    @contextmanager
    def update(self, batch: CovisBatch, pause: Callable[[], None] | None = None) -> Iterator[CovisUpdate]:
        """Compute the served rows the batch moves, on the updater's connection (no serving lock).

        ``pause`` is called between the steps: a server waits there for a gap between requests
        (:meth:`models.deferred.ServingLock.yield_to_requests`), so the update does not slow them.

        The overlay change stays uncommitted until the ``with`` block ends without an error (the
        caller publishes inside it), so a failure anywhere (a damaged weights file, a failed
        publish) leaves the overlay and the served tables as they were; the error is raised for
        the caller to stop updating.
        """
        with self._worker_lock:
            worker, loaded = self._worker, {name: set(items) for name, items in self._loaded.items()}
            worker.register("lc_rows", batch.rows)
            worker.execute("BEGIN TRANSACTION")
            try:
                yield self._compute(worker, batch, pause or _no_pause)
                worker.execute("COMMIT")
            except BaseException:
                worker.execute("ROLLBACK")
                self._loaded = loaded
                raise
            finally:
                worker.unregister("lc_rows")

    def publish(self, con: duckdb.DuckDBPyConnection, update: CovisUpdate) -> dict[str, list[str]]:
        """Replace the served rows of the touched sources (caller holds the serving lock), all
        variants in one transaction; return, per variant, the sources rewritten."""
        con.execute("BEGIN TRANSACTION")
        try:
            for name, sources in update.sources.items():
                table = self.index.covis_tables[name]
                con.execute(f"DELETE FROM {table} WHERE src IN (SELECT unnest(?::VARCHAR[]))", [sources])
                con.register("lc_served", update.rows[name])
                con.execute(f"INSERT INTO {table} SELECT src, dst, w, p FROM lc_served")
                con.unregister("lc_served")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return update.sources

    def _compute(self, worker: duckdb.DuckDBPyConnection, batch: CovisBatch,
                 pause: Callable[[], None]) -> CovisUpdate:
        pause()
        columns = f"{s.USER_ID}, {s.ITEM_ID}, {s.TS}"
        worker.execute(f"CREATE OR REPLACE TEMP TABLE lc_old AS SELECT {columns} FROM lc_rows "
                       "WHERE seq IS NULL OR seq <= ?", [batch.after_seq])
        worker.execute(f"CREATE OR REPLACE TEMP TABLE lc_new AS SELECT {columns} FROM lc_rows")
        build_sequences(worker, "lc_old", "lc_old_seq")
        build_sequences(worker, "lc_new", "lc_new_seq")
        sources, rows = {}, {}
        for covis in self.index.config.covis:
            pause()
            touched = self._update_variant(worker, covis.name)
            if touched:
                sources[covis.name] = touched
                rows[covis.name] = worker.sql(
                    f"SELECT src, dst, w, p FROM ({covis_top_sql('lc_merged', covis)})").to_arrow_table()
        log.debug("live co-visitation: %s", {name: len(v) for name, v in sources.items()})
        return CovisUpdate(sources, rows)

    def _update_variant(self, worker: duckdb.DuckDBPyConnection, name: str) -> list[str]:
        """One variant: the delta of the changed customers' sequences merged into the overlay;
        returns the touched sources (their merged weights left in ``lc_merged``)."""
        covis = next(c for c in self.index.config.covis if c.name == name)
        overlay = f"{self.index.covis_tables[name]}{_OVERLAY_SUFFIX}"
        worker.execute(
            f"""CREATE OR REPLACE TEMP TABLE lc_delta AS
            SELECT src, dst, sum(wi)::BIGINT AS wi FROM (
                SELECT src, dst, wi FROM ({covis_weights_sql('lc_new_seq', covis)})
                UNION ALL SELECT src, dst, -wi FROM ({covis_weights_sql('lc_old_seq', covis)}))
            GROUP BY ALL HAVING sum(wi) <> 0""")
        sources = [r[0] for r in worker.execute("SELECT DISTINCT src FROM lc_delta ORDER BY 1").fetchall()]
        if not sources:
            return []
        unread = [src for src in sources if src not in self._loaded[name]]
        if unread:  # the stored weights of sources touched for the first time
            worker.execute(f"INSERT INTO {overlay} SELECT src, dst, wi FROM read_parquet('{self.files[name]}') "
                           "WHERE src IN (SELECT unnest(?::VARCHAR[]))", [unread])
            self._loaded[name].update(unread)
        touched = "src IN (SELECT DISTINCT src FROM lc_delta)"
        worker.execute(f"""CREATE OR REPLACE TEMP TABLE lc_merged AS
            SELECT src, dst, sum(wi)::BIGINT AS wi FROM (
                SELECT src, dst, wi FROM {overlay} WHERE {touched} UNION ALL SELECT src, dst, wi FROM lc_delta)
            GROUP BY ALL HAVING sum(wi) > 0""")
        worker.execute(f"DELETE FROM {overlay} WHERE {touched}")
        worker.execute(f"INSERT INTO {overlay} SELECT * FROM lc_merged")
        return sources


class CovisLinks:
    """The serving co-visitation tables in memory, grouped by source item, for explanations that
    cite "shoppers who looked at X also looked at this": a few array slices per request instead of
    a scan of every table. Same rows as the tables (codes instead of item ids), read-only once built;
    a live update makes a new one (:meth:`replaced`) that shares the untouched sources' arrays.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, covis_tables: dict[str, str]) -> None:
        frames = {name: con.execute(f"SELECT src, dst, w FROM {table} ORDER BY src, w DESC, dst").df()
                  for name, table in covis_tables.items()}
        ids = pd.concat([col for f in frames.values() for col in (f["src"], f["dst"])], ignore_index=True)
        codes, uniques = pd.factorize(ids) if len(ids) else (np.zeros(0, np.int64), pd.Index([]))
        self._code = {item: i for i, item in enumerate(uniques.tolist())}
        self._ids = np.asarray(uniques, dtype=object)
        self._variants: dict[str, tuple[dict[int, tuple[int, int]], np.ndarray, np.ndarray]] = {}
        # per variant, sources rewritten by live updates: {source id: [(dst id, w)] strongest first}
        self._replaced: dict[str, dict[str, list[tuple[str, float]]]] = {name: {} for name in frames}
        at = 0
        for name, frame in frames.items():
            n = len(frame)
            src, dst = codes[at:at + n].astype(np.int64), codes[at + n:at + 2 * n].astype(np.int64)
            at += 2 * n
            starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]]) if n else np.zeros(0, np.int64)
            ends = np.r_[starts[1:], n] if n else np.zeros(0, np.int64)
            spans = dict(zip(src[starts].tolist(), zip(starts.tolist(), ends.tolist())))
            self._variants[name] = (spans, dst, frame["w"].to_numpy(np.float64))

    def replaced(self, con: duckdb.DuckDBPyConnection, covis_tables: dict[str, str],
                 sources: Mapping[str, Sequence[str]]) -> CovisLinks:
        """A copy whose rows for ``sources`` (per variant) are read again from ``covis_tables``."""
        copy = object.__new__(CovisLinks)
        copy._code, copy._ids, copy._variants = self._code, self._ids, self._variants
        copy._replaced = {name: dict(rows) for name, rows in self._replaced.items()}
        for name, items in sources.items():
            if name not in copy._replaced or not items:
                continue
            rows = con.execute(f"SELECT src, dst, w FROM {covis_tables[name]} WHERE src IN "
                               "(SELECT unnest(?::VARCHAR[])) ORDER BY src, w DESC, dst", [list(items)]).fetchall()
            fresh: dict[str, list[tuple[str, float]]] = {src: [] for src in items}
            for src, dst, w in rows:
                fresh[src].append((dst, float(w)))
            copy._replaced[name].update(fresh)
        return copy

    def links(self, variants: Sequence[str], sources: Sequence[str],
              targets: Sequence[str]) -> dict[str, list[tuple[str, str, float]]]:
        """{target: [(variant, source, weight)]} over the links source -> target of ``variants``,
        strongest first (ties: source, then the order of ``variants``)."""
        out: dict[str, list[tuple[str, str, float]]] = {t: [] for t in targets}
        wanted_ids = set(targets)
        wanted = {self._code[t] for t in targets if t in self._code}
        found: list[tuple[float, str, int, str, str]] = []
        for order, name in enumerate(variants):
            if name not in self._variants:
                continue
            spans, dst, w = self._variants[name]
            replaced = self._replaced[name]
            for source in sources:
                if source in replaced:
                    found += [(-weight, source, order, name, target) for target, weight in replaced[source]
                              if target in wanted_ids]
                    continue
                span = spans.get(self._code.get(source, -1))
                if span is None or not wanted:
                    continue
                a, b = span
                for j in np.flatnonzero(np.isin(dst[a:b], list(wanted))).tolist():
                    found.append((-float(w[a + j]), source, order, name, self._ids[int(dst[a + j])]))
        for negative_w, source, _, name, target in sorted(found, key=lambda f: f[:3]):
            out[target].append((name, source, -negative_w))
        return out


def _no_pause() -> None:
    """The update's steps run back to back (settling now: nobody is waiting for a gap)."""


def chunk_end(con: duckdb.DuckDBPyConnection, after_seq: int, max_events: int) -> int | None:
    """The last segment of the next chunk of live segments after ``after_seq`` holding about
    ``max_events`` events (at least one segment); None when all of them fit."""
    rows = con.execute("SELECT seq, count(*) FROM live_events WHERE seq > ? GROUP BY seq ORDER BY seq",
                       [after_seq]).fetchall()
    total = 0
    for n, (seq, events) in enumerate(rows):
        total += events
        if total >= max_events and n + 1 < len(rows):
            return int(seq)
    return None
