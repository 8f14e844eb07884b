"""Folding the live segment into the snapshot: the compaction (``cli.py compact``, or a schedule).

One compaction at a time (:func:`analytics.live_segments.compaction_lock`); appends do not wait
for it. Inside :func:`analytics.db.rewriting` (a private copy of the shop file, one transaction)
it reads the snapshot's last folded number M, folds every segment numbered above M that exists
now (through N) exactly as ingest would have stored the same events, and records N; then the
copy replaces the shop file. Only after that it raises ``FOLDED`` to N and deletes the files
numbered <= N.

Why that order makes a kill at any point harmless:

- before the rename, the shop file and every segment are as they were (the copy is left over,
  and the next writer of the shop file removes it);
- after the rename, the new snapshot says it holds 1..N, so readers and writers skip those files
  even while they still exist; ``FOLDED`` lagging only means a reader of the *old* snapshot is
  not yet told to reopen, which it need not be while the files it reads are still there;
- files <= N left behind are deleted by the next compaction (before it folds anything).

What a fold stores, the same as an ingest of the same events would: the events (never one whose
``event_id`` is already folded), each event id in ``live_event_ids``, the catalogue changes (newest
non-empty value wins; an unknown item gets an empty row), customers (``first_seen`` the earliest),
the rejects with their source ('intake' for the API, the file name for ``cli.py ingest
--append``; one row per distinct refusal), then the profiles, rebuilt in the same transaction.

It also records the shop file's lineage in that transaction (``live_lineage``: the fingerprint
and folded number before the fold and after it; :mod:`analytics.fingerprint`) and where each
segment's events now sit (``live_event_rows``), so a model trained before the fold keeps serving:
it is recognised through the lineage, and its readers show the events folded since as live
again. The rows of earlier compactions travel with the copy. The two fingerprints cost two scans
of the events table, small beside the profile rebuild.

A :class:`progress.Progress` hears the phases (the command line shows them; the server's timer
leaves them silent): the working copy, the segments read (counted, :data:`_READ_FILES` at a
time), the fold, the profiles, saving the copy, and the files removed (counted).
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb

from analytics import schema as S
from analytics.db import rewriting
from analytics.fingerprint import fingerprint
from analytics.live_segments import (
    KIND_EVENT,
    KIND_ITEM,
    KIND_REJECT,
    compaction_lock,
    list_segments,
    live_folder,
    remove_segment,
    sql_file_list,
    write_folded_marker,
)
from analytics.live_sql import (
    LIVE_DDL,
    LIVE_EVENT_IDS,
    LIVE_EVENT_ROWS,
    LIVE_LINEAGE,
    LIVE_STATE,
    folded_seq,
    merged_items_sql,
    merged_users_sql,
)
from analytics.profile_build import build_profiles
from errors import RecsightError
from progress import SILENT, Progress

__all__ = ["compact", "CompactResult"]

log = logging.getLogger(__name__)

_USER_FACING = (duckdb.IOException, duckdb.InvalidInputException, duckdb.ConversionException,
                duckdb.OutOfMemoryException, duckdb.FatalException)
_EVENT_COLUMNS = ", ".join(S.EVENTS_COLUMNS)
_READ_FILES = 256  # segment files per read_parquet: a counted step, and still one scan of many files


@dataclass(frozen=True)
class CompactResult:
    """What one compaction did."""

    folded_through: int  # the snapshot's last folded sequence number afterwards
    segments: int = 0
    events: int = 0
    items: int = 0
    rejects: int = 0
    removed: int = 0     # segment files deleted (this fold's and any a killed compaction left)
    seconds: float = 0.0

    def render(self, db_path: Path) -> str:
        if not self.segments:
            left = f"; removed {self.removed} file(s) already folded" if self.removed else ""
            held = f" (the shop file holds segments 1..{self.folded_through})" if self.folded_through else ""
            return f"compact {db_path}: nothing to fold{held}{left}"
        return (f"compact {db_path}: folded {self.segments} segment(s) through {self.folded_through} in "
                f"{self.seconds:.1f} s: {self.events:,} new events, {self.items:,} catalogue changes, "
                f"{self.rejects:,} rejects; removed {self.removed} file(s)")


def compact(db_path: Path | str, progress: Progress = SILENT) -> CompactResult:
    """Fold every live segment written so far into the shop file; see the module docstring."""
    started = time.perf_counter()
    db_path = Path(db_path)
    folder = live_folder(db_path)
    if not folder.is_dir():
        return CompactResult(folded_through=0)
    with compaction_lock(folder):
        try:
            progress.phase("working copy of the store")
            with rewriting(db_path) as rewrite:
                result = _fold(rewrite.con, folder, progress)
                if not result.segments:
                    rewrite.discard()  # nothing new: readers keep the file they have
                else:
                    progress.phase("saving the store")
        except _USER_FACING as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RecsightError(f"compaction failed, shop file and live segment unchanged: {text}") from None
        write_folded_marker(folder, result.folded_through)
        removed = _remove_folded(folder, result.folded_through, progress)
    result = replace(result, removed=removed, seconds=time.perf_counter() - started)
    log.info("%s", result.render(db_path))
    return result


def _fold(con: duckdb.DuckDBPyConnection, folder: Path, progress: Progress) -> CompactResult:
    """Fold the segments above the copy's last folded number, in one transaction on ``con``."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute("BEGIN TRANSACTION")
    try:
        S.create_tables(con)
        for ddl in LIVE_DDL:
            con.execute(ddl)
        last = folded_seq(con)
        segments = list_segments(folder, after=last)
        if not segments:
            con.execute("ROLLBACK")
            return CompactResult(folded_through=last)
        through = segments[-1][0]
        _read_segments(con, [path for _, path in segments], progress)
        progress.phase("folding the events and the catalogue")
        before = fingerprint(con)
        result = _apply(con, through, len(segments))
        con.execute("DROP TABLE _fold")
        con.execute("DROP TABLE _fold_events")
        con.execute(f"INSERT INTO {LIVE_LINEAGE} VALUES (?, ?, ?, ?, CAST(now() AS TIMESTAMP))",
                    [last, before, through, fingerprint(con)])
        if con.execute(f"SELECT EXISTS (SELECT 1 FROM {S.EVENTS})").fetchall()[0][0]:
            progress.phase("profiles")
            build_profiles(con)  # readers must never see new events beside old profiles
        con.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    return result


def _read_segments(con: duckdb.DuckDBPyConnection, paths: list[Path], progress: Progress) -> None:
    """The segment files into the temp table ``_fold``, :data:`_READ_FILES` files at a time (a
    backlog of thousands of small files shows how far the read got). Every file has the one
    SEGMENT_SCHEMA; the rows are ordered by (seq, line) wherever order matters, not by the read."""
    progress.phase("reading the live segments", total=len(paths), unit="segments")
    for start in range(0, len(paths), _READ_FILES):
        files = sql_file_list(paths[start:start + _READ_FILES])
        if start == 0:
            con.execute(f"CREATE TEMP TABLE _fold AS SELECT * FROM read_parquet({files})")
        else:
            con.execute(f"INSERT INTO _fold BY NAME SELECT * FROM read_parquet({files})")
        progress.advance(min(_READ_FILES, len(paths) - start))


def _apply(con: duckdb.DuckDBPyConnection, through: int, segments: int) -> CompactResult:
    """Insert what ``_fold`` holds into the store's tables; record ``through`` as folded."""
    con.execute(f"""
        CREATE TEMP TABLE _fold_events AS
        SELECT * FROM _fold f
        WHERE kind = '{KIND_EVENT}' AND NOT EXISTS (SELECT 1 FROM {LIVE_EVENT_IDS} x WHERE x.event_id = f.event_id)
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY seq, line) = 1
    """)
    events = _count(con, "_fold_events")
    first_row = con.execute(f"SELECT coalesce(max(rowid) + 1, 0) FROM {S.EVENTS}").fetchall()[0][0]
    con.execute(f"INSERT INTO {S.EVENTS} ({_EVENT_COLUMNS}) "
                f"SELECT {_EVENT_COLUMNS} FROM _fold_events ORDER BY seq, line")
    # Appended in (seq, line) order from first_row on: each segment's events are one run of rowids.
    con.execute(f"""INSERT INTO {LIVE_EVENT_ROWS}
        SELECT seq, ? + sum(count(*)) OVER (ORDER BY seq) - count(*), count(*)
        FROM _fold_events GROUP BY seq""", [int(first_row)])
    con.execute(f"INSERT INTO {LIVE_EVENT_IDS} SELECT event_id, seq FROM _fold_events")
    item_rows = f"(SELECT * FROM _fold WHERE kind = '{KIND_ITEM}')"
    items = _count(con, item_rows)
    con.execute(f"INSERT OR REPLACE INTO {S.ITEMS} ({S.ITEM_ID}, {S.TITLE}, {S.CATEGORY}, {S.BRAND}, {S.PRICE}) "
                + merged_items_sql(S.ITEMS, item_rows, "_fold_events"))
    con.execute(f"INSERT OR REPLACE INTO {S.USERS} ({S.USER_ID}, {S.COUNTRY}, {S.FIRST_SEEN}) "
                + merged_users_sql(S.USERS, "_fold_events"))
    rejects = con.execute(f"""
        INSERT INTO {S.REJECTS} ({S.SOURCE}, {S.LINE}, {S.RAW}, {S.REASON})
        SELECT source, line, raw, reason FROM (
            SELECT * FROM _fold WHERE kind = '{KIND_REJECT}'
            QUALIFY row_number() OVER (PARTITION BY source, raw, reason ORDER BY seq, line) = 1
        ) r
        WHERE NOT EXISTS (SELECT 1 FROM {S.REJECTS} x WHERE x.{S.SOURCE} = r.source
                          AND x.{S.RAW} IS NOT DISTINCT FROM r.raw AND x.{S.REASON} = r.reason)
        ORDER BY seq, line
    """).fetchall()[0][0]
    con.execute(f"DELETE FROM {LIVE_STATE}")
    con.execute(f"INSERT INTO {LIVE_STATE} VALUES (?, CAST(now() AS TIMESTAMP))", [through])
    return CompactResult(folded_through=through, segments=segments, events=events, items=items, rejects=rejects)


def _remove_folded(folder: Path, through: int, progress: Progress) -> int:
    """Delete the segment files the snapshot holds (this fold's, and any left by a killed one)."""
    folded = [path for seq, path in list_segments(folder) if seq <= through]
    if folded:
        progress.phase("removing the folded files", total=len(folded), unit="files")
    for path in folded:
        remove_segment(path)
        progress.advance()
    return len(folded)


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0])
