"""Validated ingest of behaviour files into the shop's DuckDB store.

``ingest_paths`` runs one whole ingest in a single DuckDB transaction on a private copy of the
shop file (``analytics.db.rewriting``) and rebuilds the profile tables in that same transaction;
only a complete, checkpointed copy replaces the shop file (``os.replace``). So any fatal problem
(a missing or unreadable file, a file that is not in the claimed format, a full disk, a kill)
leaves the database exactly as it was (or absent, if it did not exist), a running server keeps
its read-only connection to the old file and never blocks the ingest, and readers see the old
store or the new one, never a mix. When every file was ingested before, the shop file is left
as it is.

Per file, the adapter validates and stages the rows in SQL; this module then does what is the
same for every format:

- customer ids are pseudonymised before anything is stored: the distinct raw ids of the file are
  hashed in Python (``analytics.privacy.pseudonymise``) and joined, also into the text of each
  reject, so no raw customer id reaches ``events``, ``users`` or ``rejects``;
- a file whose content (sha256) was ingested before in the same format is skipped and said so;
  events already in the store (same customer, item, type, time, session, quantity, price and
  rating) are not added again, so re-ingesting overlapping exports does not duplicate events;
- items and users are upserted (new non-empty values win); every event's item gets an items row
  (empty if the file has no catalogue data for it) and every customer a users row; item
  descriptions, where a format has them, are upserted the same way into ``item_texts``;
- every input row is accounted for: rows read = accepted + rejected, per reason, checked against
  a row count taken independently of the validation SQL.

Files ingested are recorded in the table ``ingested_files`` (file name, sha256, format, rows read,
time), which is also how later steps can tell which format a store came from.
"""

from __future__ import annotations

import logging
import time
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import pyarrow as pa

from analytics import schema as S
from analytics.adapters import get_adapter
from analytics.adapters._files import file_sha256
from analytics.adapters._sources import MARKER, one, sql_str
from analytics.adapters.base import Adapter, Staged, Unit
from analytics.db import rewriting
from analytics.privacy import pseudonymise
from analytics.profile_build import build_profiles
from errors import RecsightError
from progress import SILENT, Progress

__all__ = ["ingest_paths", "IngestSummary", "FileReport", "INGESTED_FILES"]

log = logging.getLogger(__name__)

INGESTED_FILES = "ingested_files"
_INGESTED_DDL = (
    f"CREATE TABLE IF NOT EXISTS {INGESTED_FILES} (file_name VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, "
    "format VARCHAR NOT NULL, rows_read BIGINT NOT NULL, ingested_at TIMESTAMP NOT NULL, PRIMARY KEY (sha256, format))"
)
# Problems with the input or the machine, not bugs: shown to the user as one line.
# A FatalException is what DuckDB raises when a write fails (a full disk) and it gives up on the
# file: here that file is the private working copy, so the shop file is still unchanged.
_USER_FACING = (duckdb.IOException, duckdb.InvalidInputException, duckdb.ConversionException,
                duckdb.OutOfMemoryException, duckdb.FatalException)
_EVENT_COLUMNS = (S.ITEM_ID, S.EVENT_TYPE, S.TS, S.SESSION_ID, S.QUANTITY, S.PRICE, S.RATING)


@dataclass(frozen=True)
class FileReport:
    """What happened to one input file."""

    source: str
    role: str
    rows_read: int = 0
    accepted: int = 0
    rejected: tuple[tuple[str, int], ...] = ()  # (reason, count), most frequent first
    new_events: int = 0
    already_stored: int = 0
    skipped: str | None = None  # why the whole file was skipped (same content ingested before)
    notes: tuple[str, ...] = ()
    row_word: str = "rows"

    @property
    def rejected_total(self) -> int:
        return sum(n for _, n in self.rejected)

    @property
    def balanced(self) -> bool:
        """Rows read = accepted + rejected (trivially true for a skipped file)."""
        return self.skipped is not None or self.accepted + self.rejected_total == self.rows_read


@dataclass(frozen=True)
class IngestSummary:
    """The outcome of one ``ingest_paths`` call; ``render()`` is what the command line prints."""

    fmt: str
    db_path: Path
    files: tuple[FileReport, ...]
    new_users: int
    new_items: int
    store: dict[str, int] = field(default_factory=dict)  # rows per table after the ingest
    seconds: float = 0.0

    @property
    def balanced(self) -> bool:
        return all(f.balanced for f in self.files)

    def render(self) -> str:
        lines = [f"ingest --format {self.fmt} into {self.db_path} ({self.seconds:.1f} s)"]
        for f in self.files:
            if f.skipped is not None:
                lines.append(f"  {f.source}: skipped, {f.skipped}")
                continue
            lines.append(f"  {f.source} ({f.role}): {f.rows_read:,} {f.row_word} read, {f.accepted:,} accepted, "
                         f"{f.rejected_total:,} rejected")
            lines.extend(f"      {n:>10,}  {reason}" for reason, n in f.rejected)
            status = "ok" if f.balanced else "MISMATCH"
            lines.append(f"    check: {f.accepted:,} accepted + {f.rejected_total:,} rejected = "
                         f"{f.accepted + f.rejected_total:,} of {f.rows_read:,} read: {status}")
            if f.new_events or f.already_stored:
                stored = f", {f.already_stored:,} already in the store (not added again)" if f.already_stored else ""
                lines.append(f"    {f.new_events:,} new events{stored}")
            lines.extend(f"    note: {note}" for note in f.notes)
        lines.append(f"  new users: {self.new_users:,}, new items: {self.new_items:,}")
        if self.store:
            lines.append("  store now: " + ", ".join(f"{n:,} {table}" for table, n in self.store.items()))
        return "\n".join(lines)


def ingest_paths(db_path: Path, fmt: str, paths: list[Path], secret: str,
                 progress: Progress = SILENT) -> IngestSummary:
    """Validate ``paths`` as format ``fmt`` and load them into the DuckDB file ``db_path``;
    ``progress`` hears the phases (working copy, files one by one, profiles, saving)."""
    started = time.perf_counter()
    adapter = get_adapter(fmt)
    if not secret:
        raise RecsightError("a secret is needed to pseudonymise customer ids: set RECSIGHT_SECRET")
    if not paths:
        raise RecsightError("no input paths given")
    units = adapter.units([Path(p) for p in paths])
    db_path = Path(db_path)
    try:
        progress.phase("working copy of the store")
        with rewriting(db_path) as rewrite:
            summary = _ingest_units(rewrite.con, adapter, units, fmt, db_path, secret, progress)
            if all(f.skipped is not None for f in summary.files):
                rewrite.discard()  # nothing new: readers keep the file they have
            progress.phase("saving the store")
    except _USER_FACING as exc:
        raise RecsightError(f"ingest failed, database unchanged: {_first_line(exc)}") from None
    elapsed = time.perf_counter() - started
    log.info("ingested %d file(s) as %s in %.1f s", len(units), fmt, elapsed)
    return replace(summary, seconds=elapsed)


def _ingest_units(con: duckdb.DuckDBPyConnection, adapter: Adapter, units: list[Unit], fmt: str,
                  db_path: Path, secret: str, progress: Progress) -> IngestSummary:
    """Every unit, then the profiles, in one transaction on the working copy ``con``."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")  # CSV line numbers rely on it
    con.execute("SET enable_progress_bar = false")
    con.execute("BEGIN TRANSACTION")
    try:
        S.create_tables(con)
        con.execute(_INGESTED_DDL)
        users_before, items_before = _count(con, S.USERS), _count(con, S.ITEMS)
        progress.phase("files", total=len(units), unit="files")
        done: list[FileReport] = []
        for i, unit in enumerate(units):
            done.append(_ingest_unit(con, adapter, unit, f"_ing{i}", secret))
            progress.advance()
        reports = tuple(done)
        summary = IngestSummary(
            fmt=fmt, db_path=db_path, files=reports,
            new_users=_count(con, S.USERS) - users_before, new_items=_count(con, S.ITEMS) - items_before,
            store={t: _count(con, t) for t in (S.EVENTS, S.ITEMS, S.USERS, S.REJECTS)},
        )
        if not summary.balanced:  # a bug in an adapter, never the user's data: keep the store clean
            raise RuntimeError("ingest lost rows between reading and storing: " + summary.render())
        if summary.store[S.EVENTS] and any(f.skipped is None for f in reports):
            progress.phase("profiles")
            build_profiles(con)  # readers must never see new events beside old profiles
        con.execute("COMMIT")
    except BaseException:
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
    return summary


def _ingest_unit(con: duckdb.DuckDBPyConnection, adapter: Adapter, unit: Unit, tag: str, secret: str) -> FileReport:
    clock = _Clock()
    digest = file_sha256(unit.path)
    prior = one(con, f"SELECT file_name, ingested_at FROM {INGESTED_FILES} WHERE sha256 = ? AND format = ?",
                [digest, adapter.fmt])  # the same bytes claimed as another format are checked again
    if prior is not None:
        return FileReport(source=unit.name, role=unit.role,
                          skipped=f"same content as {prior[0]}, ingested {prior[1]:%Y-%m-%d %H:%M} UTC")
    clock.lap("hash")
    try:
        staged = adapter.stage(con, unit, tag)
    except _USER_FACING as exc:
        raise RecsightError(f"cannot read {unit.name} as {adapter.fmt}: {_first_line(exc)}") from None
    clock.lap("validate")
    rejected = tuple(con.execute(
        f"SELECT reason, count(*) AS n FROM ({staged.rejects}) GROUP BY reason ORDER BY n DESC, reason").fetchall())
    accepted = one(con, f"SELECT count(*) FROM ({staged.accepted})")[0]
    idmap = _pseudonyms(con, staged, secret, tag)
    clock.lap("pseudonymise")
    if staged.items:
        _upsert_items(con, staged.items)
    if staged.texts:
        _upsert_texts(con, staged.texts)
    new_events = already = 0
    if staged.events:
        new_events, already = _insert_events(con, staged.events, idmap)
    clock.lap("store events and items")
    if staged.events or staged.users:
        _upsert_users(con, staged, idmap)
    con.execute(
        f"INSERT INTO {S.REJECTS} ({S.SOURCE}, {S.LINE}, {S.RAW}, {S.REASON}) "
        f"SELECT {sql_str(unit.name)}, r.line, replace(r.raw_template, {sql_str(MARKER)}, coalesce(m.pid, '')), "
        f"r.reason FROM ({staged.rejects}) r LEFT JOIN {idmap} m ON m.raw = r.user_raw ORDER BY r.line"
    )
    con.execute(f"INSERT INTO {INGESTED_FILES} VALUES (?, ?, ?, ?, CAST(now() AS TIMESTAMP))",
                [unit.name, digest, adapter.fmt, staged.rows_read])
    _drop_temp(con, tag)
    clock.lap("store users and rejects")
    log.info("%s: %d read, %d accepted, %d new events (%s)", unit.name, staged.rows_read, accepted, new_events, clock)
    return FileReport(source=unit.name, role=unit.role, rows_read=staged.rows_read, accepted=accepted,
                      rejected=rejected, new_events=new_events, already_stored=already, notes=tuple(staged.notes),
                      row_word=staged.row_word)


class _Clock:
    """Wall time per phase of one file, for the log."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._laps: list[tuple[str, float]] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self._laps.append((name, now - self._last))
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self._laps)


def _pseudonyms(con: duckdb.DuckDBPyConnection, staged: Staged, secret: str, tag: str) -> str:
    """A temp table (raw, pid) for the unit's distinct raw customer ids: hashed once each, then joined."""
    parts = [q for q in (staged.events, staged.users, staged.rejects) if q]
    union = " UNION ALL ".join(f"SELECT user_raw FROM ({q})" for q in parts)
    rows = con.execute(f"SELECT DISTINCT user_raw FROM ({union}) WHERE user_raw IS NOT NULL").fetchall()
    raw_ids = [r[0] for r in rows]
    mapping = pa.table({"raw": pa.array(raw_ids, pa.string()),
                        "pid": pa.array([pseudonymise(r, secret) for r in raw_ids], pa.string())})
    table = f"{tag}_idmap"
    con.register(f"{table}_in", mapping)
    try:
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT raw, pid FROM {table}_in")
    finally:
        con.unregister(f"{table}_in")
    return table


def _insert_events(con: duckdb.DuckDBPyConnection, events: str, idmap: str) -> tuple[int, int]:
    """Insert the staged events not already stored; return (inserted, already stored)."""
    columns = ", ".join((S.USER_ID,) + _EVENT_COLUMNS)
    values = ", ".join(("m.pid",) + tuple(f"e.{c}" for c in _EVENT_COLUMNS))
    total = one(con, f"SELECT count(*) FROM ({events})")[0]
    dedup = ""
    if one(con, f"SELECT EXISTS (SELECT 1 FROM {S.EVENTS})")[0]:
        same = " AND ".join([f"x.{S.USER_ID} = m.pid"] + [f"x.{c} IS NOT DISTINCT FROM e.{c}" for c in _EVENT_COLUMNS])
        dedup = f" WHERE NOT EXISTS (SELECT 1 FROM {S.EVENTS} x WHERE {same})"
    inserted = one(con, f"INSERT INTO {S.EVENTS} ({columns}) SELECT {values} FROM ({events}) e "
                        f"JOIN {idmap} m ON m.raw = e.user_raw{dedup}")[0]
    if not dedup and inserted != total:
        raise RuntimeError(f"stored {inserted} of {total} accepted events")
    con.execute(f"INSERT OR IGNORE INTO {S.ITEMS} ({S.ITEM_ID}) SELECT DISTINCT item_id FROM ({events})")
    return inserted, total - inserted


def _upsert_items(con: duckdb.DuckDBPyConnection, items: str) -> None:
    keep = ", ".join(f"{c} = coalesce(excluded.{c}, {c})" for c in (S.TITLE, S.CATEGORY, S.BRAND, S.PRICE))
    con.execute(
        f"INSERT INTO {S.ITEMS} ({S.ITEM_ID}, {S.TITLE}, {S.CATEGORY}, {S.BRAND}, {S.PRICE}) "
        f"SELECT item_id, title, category, brand, price FROM ({items}) "
        f"ON CONFLICT ({S.ITEM_ID}) DO UPDATE SET {keep}"
    )


def _upsert_texts(con: duckdb.DuckDBPyConnection, texts: str) -> None:
    con.execute(S.ITEM_TEXTS_DDL)
    con.execute(
        f"INSERT INTO {S.ITEM_TEXTS} ({S.ITEM_ID}, {S.DESCRIPTION}) SELECT item_id, description FROM ({texts}) "
        f"WHERE description IS NOT NULL "
        f"ON CONFLICT ({S.ITEM_ID}) DO UPDATE SET {S.DESCRIPTION} = excluded.{S.DESCRIPTION}"
    )


def _upsert_users(con: duckdb.DuckDBPyConnection, staged: Staged, idmap: str) -> None:
    parts = []
    if staged.users:
        parts.append(f"SELECT user_raw, country, first_seen FROM ({staged.users})")
    if staged.events:
        parts.append(f"SELECT user_raw, NULL::VARCHAR, min(ts) FROM ({staged.events}) GROUP BY user_raw")
    con.execute(
        f"INSERT INTO {S.USERS} ({S.USER_ID}, {S.COUNTRY}, {S.FIRST_SEEN}) "
        f"SELECT m.pid, max(u.country), min(u.first_seen) FROM ({' UNION ALL '.join(parts)}) "
        f"u(user_raw, country, first_seen) JOIN {idmap} m ON m.raw = u.user_raw GROUP BY m.pid "
        f"ON CONFLICT ({S.USER_ID}) DO UPDATE SET {S.COUNTRY} = coalesce(excluded.{S.COUNTRY}, {S.COUNTRY}), "
        f"{S.FIRST_SEEN} = least({S.FIRST_SEEN}, excluded.{S.FIRST_SEEN})"
    )


def _drop_temp(con: duckdb.DuckDBPyConnection, tag: str) -> None:
    names = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary AND starts_with(table_name, ?)",
                        [tag + "_"]).fetchall()
    for (name,) in names:
        con.execute(f"DROP TABLE {name}")


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return one(con, f"SELECT count(*) FROM {table}")[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
