"""Reading a shop with its live segment: the snapshot and the newer batches as one consistent state.

:func:`attach_live` takes a read-only connection to the snapshot (``analytics.db.connect_read_only``)
and loads every segment numbered above the snapshot's last folded number into the temp table
``live_rows``, in one statement over an explicit list of files taken once. Temp views then show
the store as it is with those batches applied:

- ``live_events`` (seq, line, event_id, received_at and the event columns): the new events;
- ``live_item_refs`` (seq, item_id): the items each segment names, by an event or a catalogue row;
- ``all_events``: the snapshot's ``events`` and ``live_events``, in the events table's columns;
- ``live_items`` / ``all_items``: the catalogue with the new rows applied; ``live_users`` /
  ``all_users``: the customers with the new events' ones (see :mod:`analytics.live_sql`, the
  same SQL a compaction folds with);
- with ``shadow=True`` also ``events``, ``items`` and ``users``, so existing SQL sees the live state
  unchanged (the profile tables stay the snapshot's). There ``items`` is a temp *table*, the
  merged catalogue copied once per refresh that adds rows: the serving path joins the catalogue
  in a dozen queries per request, and a view would redo the merge (an anti-join of the whole
  catalogue) in every one of them (a third of a live request's SQL time on the demo shop).

Why load rather than query the files lazily: a compaction may delete a file a lazy view still
names; rows already loaded cannot vanish, and the attached snapshot file stays readable while the
connection holds it. So a connection never sees half a batch, a batch twice, or a state that
never was. :func:`refresh_live` adds the files written since (their cost only).

**A model older than the snapshot** (``model_seq``): after a compaction, a model trained on an
earlier snapshot (recognised through the shop's lineage, :mod:`analytics.fingerprint`) must see
the store exactly as before the fold, or its lists, its changed customers and its co-visitation
deltas would silently treat the folded events as part of its training data. So the events folded
after ``model_seq`` (located through ``live_event_rows``: each folded segment is one run of
rowids of the append-only ``events``) are loaded into ``live_rows`` again, with their segment's
number and their order as lines (their ``event_id`` and ``received_at`` are not kept by the
snapshot: NULL), and the snapshot's events are read without them: ``snapshot_events``, the
events of the model's snapshot, is what ``all_events`` and the co-visitation deltas
(:mod:`models.live_covis`) build on. The catalogue and customers are the folded ones: the merge
of the same rows over them gives what it gave before the fold. :attr:`LiveView.base_seq` is the
number the views treat as the snapshot's.

When the connection's snapshot fell behind a compaction whose files it did not load (the
``FOLDED`` marker is above the last file it read, or numbers are missing), the files it needs may
be gone: :class:`LiveStale` says reopen; :func:`open_live` does that itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from analytics import schema as S
from analytics.db import connect_read_only
from analytics.live_segments import (
    KIND_EVENT,
    KIND_ITEM,
    KIND_REJECT,
    list_segments,
    live_folder,
    read_folded_marker,
    sql_file_list,
)
from analytics.live_sql import (
    EVENT_VALUES,
    LIVE_EVENT_ROWS,
    folded_seq,
    has_table,
    merged_items_sql,
    merged_users_sql,
)
from errors import RecsightError

__all__ = ["LiveView", "LiveStale", "open_live", "attach_live", "refresh_live",
           "LIVE_EVENT_COLUMNS", "SNAPSHOT_EVENTS", "LIVE_ITEM_REFS"]

log = logging.getLogger(__name__)

_OPEN_TRIES = 5
_ROWS = "live_rows"
_ROW_COLUMNS = {
    "seq": "BIGINT", "kind": "VARCHAR", "line": "BIGINT", "event_id": "VARCHAR", "received_at": "TIMESTAMP",
    **S.EVENTS_COLUMNS, "title": "VARCHAR", "category": "VARCHAR", "brand": "VARCHAR",
}
LIVE_EVENT_COLUMNS = ("seq", "line", "event_id", "received_at", *S.EVENTS_COLUMNS)
SNAPSHOT_EVENTS = "snapshot_events"  # temp view: the events of the snapshot the views build on
LIVE_ITEM_REFS = "live_item_refs"  # temp view (seq, item_id): every item a live event or catalogue row names


class LiveStale(RecsightError):
    """This connection's snapshot is older than a compaction whose segment files are gone: reopen."""


@dataclass
class LiveView:
    """What a connection's live views hold: the snapshot's folded number, the last file read, and
    the number the views treat as the snapshot's (``base_seq``: ``folded_seq``, or a model's older
    one; the events folded above it are live rows)."""

    db_path: Path
    folded_seq: int
    last_seq: int
    shadow: bool = False
    base_seq: int = -1  # -1: folded_seq

    def __post_init__(self) -> None:
        if self.base_seq < 0:
            self.base_seq = self.folded_seq


def open_live(db_path: Path | str, *, shadow: bool = False) -> tuple[duckdb.DuckDBPyConnection, LiveView]:
    """A read-only connection to the shop with its live segment attached (reopening on a race
    with a compaction). The caller closes the connection.

    A shop whose events so far all came through the intake has no shop file until its first
    compaction: it reads as an empty snapshot plus its segments.
    """
    for attempt in range(_OPEN_TRIES):
        con = _connect(Path(db_path))
        try:
            return con, attach_live(con, db_path, shadow=shadow)
        except LiveStale:
            con.close()
            time.sleep(0.01 * (attempt + 1))
        except BaseException:
            con.close()
            raise
    folder = live_folder(db_path)
    raise RecsightError(f"the live segment {folder} is ahead of the shop file {db_path} (FOLDED says "
                        f"{read_folded_marker(folder)}): was the shop file restored from an older copy?")


def _connect(db_path: Path) -> duckdb.DuckDBPyConnection:
    if db_path.exists() or not live_folder(db_path).is_dir():
        return connect_read_only(db_path)  # a missing shop without a live segment: its clear error
    con = duckdb.connect(":memory:")
    con.execute("SET enable_progress_bar = false")
    con.execute("ATTACH ':memory:' AS shop")
    con.execute("USE shop")
    S.create_tables(con)
    return con


def attach_live(con: duckdb.DuckDBPyConnection, db_path: Path | str, *, shadow: bool = False,
                model_seq: int | None = None) -> LiveView:
    """Load the live segment above ``con``'s snapshot into temp tables and create the views.

    ``model_seq``: the folded number of the snapshot a model was trained on, when the shop file
    was compacted since (``registry.Artifact.base_seq``); the events folded above it read as live
    (see the module docstring).
    """
    catalog = con.execute("SELECT current_database()").fetchall()[0][0]
    folded = folded_seq(con)
    base = folded if model_seq is None else min(model_seq, folded)
    columns = ", ".join(f"{name} {kind.replace(' NOT NULL', '')}" for name, kind in _ROW_COLUMNS.items())
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_ROWS} ({columns})")
    view = LiveView(db_path=Path(db_path), folded_seq=folded, last_seq=folded, shadow=shadow, base_seq=base)
    boundary = _reload_folded(con, f'"{catalog}".main.{S.EVENTS}', base) if base < folded else None
    _read_new(con, view)
    _create_views(con, catalog, shadow, boundary)
    return view


def _reload_folded(con: duckdb.DuckDBPyConnection, events: str, base: int) -> int | None:
    """Load the events folded above ``base`` into ``live_rows``; return the first rowid of
    ``events`` that is not the model's snapshot's (None: nothing was folded with events since)."""
    ranges = f"(SELECT * FROM {LIVE_EVENT_ROWS} WHERE seq > {int(base)})"
    if not has_table(con, LIVE_EVENT_ROWS):
        raise RecsightError("the shop file does not say where its folded events are (compacted by an "
                            "older version): run `python cli.py train` again")
    boundary, expected = con.execute(f"SELECT min(first_row), sum(events) FROM {ranges}").fetchall()[0]
    if boundary is None:
        return None
    values = ", ".join(S.EVENTS_COLUMNS)
    con.execute(f"""
        INSERT INTO {_ROWS} (seq, kind, line, {values})
        SELECT r.seq, '{KIND_EVENT}', row_number() OVER (PARTITION BY r.seq ORDER BY e.rowid), {values}
        FROM (SELECT rowid, * FROM {events} WHERE rowid >= ?) e
        JOIN {ranges} r ON e.rowid >= r.first_row AND e.rowid < r.first_row + r.events
    """, [int(boundary)])
    found = con.execute(f"SELECT count(*) FROM {events} WHERE rowid >= ?", [int(boundary)]).fetchall()[0][0]
    loaded = con.execute(f"SELECT count(*) FROM {_ROWS}").fetchall()[0][0]
    if not found == loaded == int(expected):
        raise RecsightError(f"the folded events above segment {base} are not where the shop file says "
                            f"({found} rows, {loaded} placed, {expected} recorded): run `python cli.py train` again")
    return int(boundary)


def refresh_live(con: duckdb.DuckDBPyConnection, view: LiveView) -> int:
    """Add the segments written since ``view`` was last read; return how many new events.

    Raises :class:`LiveStale` when a compaction got ahead of this connection (reopen it).
    """
    before = view.last_seq
    added = _read_new(con, view)
    if view.shadow and view.last_seq != before:
        _materialise_items(con, after_seq=before)
    return added


def _read_new(con: duckdb.DuckDBPyConnection, view: LiveView) -> int:
    """Load the files above ``view.last_seq`` (all or none), then check no compaction outran us."""
    folder = live_folder(view.db_path)
    segments = list_segments(folder, after=view.last_seq)
    numbers = [seq for seq, _ in segments]
    if numbers != list(range(view.last_seq + 1, view.last_seq + 1 + len(numbers))):
        raise LiveStale(f"segments of {folder} were folded into a newer shop file: reopen it")
    if not segments:
        if read_folded_marker(folder) > view.last_seq:
            raise LiveStale(f"{view.db_path} was compacted past this connection's snapshot: reopen it")
        return 0
    columns = ", ".join(_ROW_COLUMNS)
    try:
        files = sql_file_list([path for _, path in segments])
        con.execute(f"INSERT INTO {_ROWS} SELECT {columns} FROM read_parquet({files}) WHERE kind <> '{KIND_REJECT}'")
    except duckdb.IOException:  # a file went between the listing and the read: a compaction
        raise LiveStale(f"segments of {folder} were folded into a newer shop file: reopen it") from None
    if read_folded_marker(folder) > numbers[-1]:
        raise LiveStale(f"{view.db_path} was compacted past this connection's snapshot: reopen it")
    added = con.execute(f"SELECT count(*) FROM {_ROWS} WHERE seq > ? AND kind = '{KIND_EVENT}'",
                        [view.last_seq]).fetchall()[0][0]
    view.last_seq = numbers[-1]
    return int(added)


def _materialise_items(con: duckdb.DuckDBPyConnection, after_seq: int | None = None) -> None:
    """``items`` as a temp table holding ``all_items`` now (shadow mode; see the module docstring):
    the whole catalogue, or after a refresh only the rows of the items that segments above
    ``after_seq`` change (their merged rows replace the copied ones): those with a catalogue row
    there, and those an event names that have no row yet. An event never changes the row of an
    item that has one (the merge takes values from catalogue rows only), and most events name
    such items, so most refreshes rewrite nothing here."""
    if after_seq is None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {S.ITEMS} AS SELECT * FROM all_{S.ITEMS}")
        return
    touched = [r[0] for r in con.execute(
        f"SELECT DISTINCT {S.ITEM_ID} FROM {_ROWS} WHERE seq > ? AND {S.ITEM_ID} IS NOT NULL "
        f"AND (kind = '{KIND_ITEM}' OR {S.ITEM_ID} NOT IN (SELECT {S.ITEM_ID} FROM temp.{S.ITEMS}))",
        [int(after_seq)]).fetchall()]
    if not touched:  # the usual refresh: events on items the catalogue has
        return
    ids = "(SELECT unnest(?::VARCHAR[]))"
    con.execute(f"DELETE FROM temp.{S.ITEMS} WHERE {S.ITEM_ID} IN {ids}", [touched])
    con.execute(f"INSERT INTO temp.{S.ITEMS} SELECT * FROM live_{S.ITEMS} WHERE {S.ITEM_ID} IN {ids}", [touched])


def _create_views(con: duckdb.DuckDBPyConnection, catalog: str, shadow: bool, boundary: int | None) -> None:
    """The views of the module docstring; ``boundary``: the first rowid of ``events`` folded after
    the model's snapshot (those rows are live rows instead)."""
    base = f'"{catalog}".main'
    events = ", ".join(LIVE_EVENT_COLUMNS)
    item_rows = f"(SELECT * FROM {_ROWS} WHERE kind = '{KIND_ITEM}')"
    model_rows = "" if boundary is None else f" WHERE rowid < {int(boundary)}"
    statements = [
        f"CREATE OR REPLACE TEMP VIEW {SNAPSHOT_EVENTS} AS SELECT {EVENT_VALUES} FROM {base}.{S.EVENTS}{model_rows}",
        f"CREATE OR REPLACE TEMP VIEW live_events AS SELECT {events} FROM {_ROWS} WHERE kind = '{KIND_EVENT}'",
        f"CREATE OR REPLACE TEMP VIEW {LIVE_ITEM_REFS} AS SELECT seq, {S.ITEM_ID} FROM {_ROWS} "
        f"WHERE {S.ITEM_ID} IS NOT NULL",
        f"CREATE OR REPLACE TEMP VIEW live_items AS {merged_items_sql(f'{base}.{S.ITEMS}', item_rows, 'live_events')}",
        f"CREATE OR REPLACE TEMP VIEW live_users AS {merged_users_sql(f'{base}.{S.USERS}', 'live_events')}",
        f"CREATE OR REPLACE TEMP VIEW all_events AS SELECT {EVENT_VALUES} FROM {SNAPSHOT_EVENTS} "
        f"UNION ALL SELECT {EVENT_VALUES} FROM live_events",
    ]
    for table, key in ((S.ITEMS, S.ITEM_ID), (S.USERS, S.USER_ID)):
        statements.append(
            f"CREATE OR REPLACE TEMP VIEW all_{table} AS SELECT * FROM {base}.{table} b "
            f"WHERE NOT EXISTS (SELECT 1 FROM live_{table} l WHERE l.{key} = b.{key}) "
            f"UNION ALL SELECT * FROM live_{table}")
    if shadow:
        statements += [f"CREATE OR REPLACE TEMP VIEW {t} AS SELECT * FROM all_{t}" for t in (S.EVENTS, S.USERS)]
    for statement in statements:
        con.execute(statement)
    if shadow:
        _materialise_items(con)
