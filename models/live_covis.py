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
plus every delta so far in a TEMP overlay (``<table>_live_w``), and rewrites the served rows of
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
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from analytics import schema as s
from analytics.live_read import SNAPSHOT_EVENTS
from models.candidates import CandidateIndex, build_sequences, covis_top_sql, covis_weights_sql

__all__ = ["chunk_end", "LiveCovis", "CovisLinks"]

log = logging.getLogger(__name__)

_OVERLAY_SUFFIX = "_live_w"


class LiveCovis:
    """The serving index's co-visitation tables, updated in place from live events.

    Every method runs under the serving lock (it writes the connection's TEMP tables).
    """

    def __init__(self, index: CandidateIndex, snapshot_events: str, files: Mapping[str, Path]) -> None:
        self.index = index
        self.snapshot_events = snapshot_events
        self.files = dict(files)
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
        for table in index.covis_tables.values():
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table}{_OVERLAY_SUFFIX} "
                        "(src VARCHAR, dst VARCHAR, wi BIGINT)")
        attached = con.execute("SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = ?",
                               [SNAPSHOT_EVENTS]).fetchone()[0]
        snapshot = SNAPSHOT_EVENTS if attached else f'"{catalog}".main.{s.EVENTS}'
        return cls(index, snapshot, {n: p for n, p in files.items() if p is not None})

    def apply(self, con: duckdb.DuckDBPyConnection, after_seq: int,
              upto_seq: int | None = None) -> dict[str, list[str]]:
        """Add the live events of segments above ``after_seq`` (up to ``upto_seq``; all when None) to
        the co-visitation tables; return, per variant, the sources whose served rows were rewritten
        (sorted).

        All or nothing: one transaction over the TEMP tables, so a failure (a damaged weights file)
        leaves the tables as they were; the error is raised for the caller to stop updating.
        """
        loaded = {name: set(items) for name, items in self._loaded.items()}
        con.execute("BEGIN TRANSACTION")
        try:
            changed = self._apply(con, after_seq, upto_seq)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            self._loaded = loaded
            raise
        return changed

    def _apply(self, con: duckdb.DuckDBPyConnection, after_seq: int,
               upto_seq: int | None) -> dict[str, list[str]]:
        upto = 2**62 if upto_seq is None else upto_seq  # segments (after_seq, upto] only
        users = "lc_users"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {users} AS SELECT DISTINCT {s.USER_ID} FROM live_events "
                    "WHERE seq > ? AND seq <= ?", [after_seq, upto])
        if not con.execute(f"SELECT count(*) FROM {users}").fetchone()[0]:
            return {}
        columns = f"{s.USER_ID}, {s.ITEM_ID}, {s.TS}"
        mine = f"{s.USER_ID} IN (SELECT {s.USER_ID} FROM {users})"
        old = f"SELECT {columns} FROM {self.snapshot_events} WHERE {mine}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE lc_old AS {old} "
                    f"UNION ALL SELECT {columns} FROM live_events WHERE seq <= ? AND {mine}", [after_seq])
        con.execute(f"CREATE OR REPLACE TEMP TABLE lc_new AS SELECT * FROM lc_old UNION ALL SELECT {columns} "
                    f"FROM live_events WHERE seq > ? AND seq <= ? AND {mine}", [after_seq, upto])
        build_sequences(con, "lc_old", "lc_old_seq")
        build_sequences(con, "lc_new", "lc_new_seq")
        changed = {}
        for covis in self.index.config.covis:
            sources = self._apply_variant(con, covis.name)
            if sources:
                changed[covis.name] = sources
        for table in ("lc_users", "lc_old", "lc_new", "lc_old_seq", "lc_new_seq", "lc_delta", "lc_merged"):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        log.debug("live co-visitation: %s", {name: len(v) for name, v in changed.items()})
        return changed

    def _apply_variant(self, con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
        """One variant: the delta of the changed customers' sequences, merged into the overlay, and
        the served rows of the touched sources recomputed from it."""
        covis = next(c for c in self.index.config.covis if c.name == name)
        table = self.index.covis_tables[name]
        overlay = f"{table}{_OVERLAY_SUFFIX}"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE lc_delta AS
            SELECT src, dst, sum(wi)::BIGINT AS wi FROM (
                SELECT src, dst, wi FROM ({covis_weights_sql('lc_new_seq', covis)})
                UNION ALL SELECT src, dst, -wi FROM ({covis_weights_sql('lc_old_seq', covis)}))
            GROUP BY ALL HAVING sum(wi) <> 0""")
        sources = [r[0] for r in con.execute("SELECT DISTINCT src FROM lc_delta ORDER BY 1").fetchall()]
        if not sources:
            return []
        unread = [src for src in sources if src not in self._loaded[name]]
        if unread:  # the stored weights of sources touched for the first time
            con.execute(f"INSERT INTO {overlay} SELECT src, dst, wi FROM read_parquet('{self.files[name]}') "
                        "WHERE src IN (SELECT unnest(?::VARCHAR[]))", [unread])
            self._loaded[name].update(unread)
        touched = "src IN (SELECT DISTINCT src FROM lc_delta)"
        con.execute(f"""CREATE OR REPLACE TEMP TABLE lc_merged AS
            SELECT src, dst, sum(wi)::BIGINT AS wi FROM (
                SELECT src, dst, wi FROM {overlay} WHERE {touched} UNION ALL SELECT src, dst, wi FROM lc_delta)
            GROUP BY ALL HAVING sum(wi) > 0""")
        con.execute(f"DELETE FROM {overlay} WHERE {touched}")
        con.execute(f"INSERT INTO {overlay} SELECT * FROM lc_merged")
        con.execute(f"DELETE FROM {table} WHERE {touched}")
        con.execute(f"INSERT INTO {table} SELECT src, dst, w, p FROM ({covis_top_sql('lc_merged', covis)})")
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
