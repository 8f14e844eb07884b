"""Reading a shop with its live segment: the snapshot and the newer batches as one consistent state.

:func:`attach_live` takes a read-only connection to the snapshot (``analytics.db.connect_read_only``)
and loads every segment numbered above the snapshot's last folded number into the temp table
``live_rows``, in one statement over an explicit list of files taken once. Temp views then show
the store as it is with those batches applied:

- ``live_events`` (seq, line, event_id, received_at and the event columns): the new events;
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

When the connection's snapshot fell behind a compaction whose files it did not load (the
``FOLDED`` marker is above the last file it read, or numbers are missing), the files it needs may
be gone: :class:`LiveStale` says reopen; :func:`open_live` does that itself.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

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
from analytics.live_sql import EVENT_VALUES, folded_seq, merged_items_sql, merged_users_sql
from errors import RecsightError

__all__ = ["LiveView", "LiveStale", "open_live", "attach_live", "refresh_live", "live_events_since",
           "changed_customers", "LIVE_EVENT_COLUMNS"]

log = logging.getLogger(__name__)

_OPEN_TRIES = 5
_ROWS = "live_rows"
_ROW_COLUMNS = {
    "seq": "BIGINT", "kind": "VARCHAR", "line": "BIGINT", "event_id": "VARCHAR", "received_at": "TIMESTAMP",
    **S.EVENTS_COLUMNS, "title": "VARCHAR", "category": "VARCHAR", "brand": "VARCHAR",
}
LIVE_EVENT_COLUMNS = ("seq", "line", "event_id", "received_at", *S.EVENTS_COLUMNS)


class LiveStale(RecsightError):
    """This connection's snapshot is older than a compaction whose segment files are gone: reopen."""


@dataclass
class LiveView:
    """What a connection's live views hold: the snapshot's folded number and the last file read."""

    db_path: Path
    folded_seq: int
    last_seq: int
    shadow: bool = False


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


def attach_live(con: duckdb.DuckDBPyConnection, db_path: Path | str, *, shadow: bool = False) -> LiveView:
    """Load the live segment above ``con``'s snapshot into temp tables and create the views."""
    catalog = con.execute("SELECT current_database()").fetchall()[0][0]
    folded = folded_seq(con)
    columns = ", ".join(f"{name} {kind.replace(' NOT NULL', '')}" for name, kind in _ROW_COLUMNS.items())
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_ROWS} ({columns})")
    view = LiveView(db_path=Path(db_path), folded_seq=folded, last_seq=folded, shadow=shadow)
    _read_new(con, view)
    _create_views(con, catalog, shadow)
    return view


def refresh_live(con: duckdb.DuckDBPyConnection, view: LiveView) -> int:
    """Add the segments written since ``view`` was last read; return how many new events.

    Raises :class:`LiveStale` when a compaction got ahead of this connection (reopen it).
    """
    before = view.last_seq
    added = _read_new(con, view)
    if view.shadow and view.last_seq != before:
        _materialise_items(con, after_seq=before)
    return added


def live_events_since(con: duckdb.DuckDBPyConnection, since: datetime | None = None, *,
                      user_id: str | None = None, after_seq: int = 0) -> pd.DataFrame:
    """The live events received after ``since`` (naive UTC) and in segments above ``after_seq``,
    optionally one customer's (a pseudonym), oldest first; columns :data:`LIVE_EVENT_COLUMNS`."""
    where, params = ["seq > ?"], [after_seq]
    if since is not None:
        where.append("received_at > ?")
        params.append(since)
    if user_id is not None:
        where.append(f"{S.USER_ID} = ?")
        params.append(user_id)
    return con.execute(f"SELECT {', '.join(LIVE_EVENT_COLUMNS)} FROM live_events WHERE {' AND '.join(where)} "
                       f"ORDER BY seq, line", params).fetchdf()


def changed_customers(con: duckdb.DuckDBPyConnection, after_seq: int = 0) -> list[str]:
    """The customers (pseudonyms) with live events in segments above ``after_seq``."""
    rows = con.execute(f"SELECT DISTINCT {S.USER_ID} FROM live_events WHERE seq > ? ORDER BY 1", [after_seq])
    return [r[0] for r in rows.fetchall()]


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
    ``after_seq`` name (their merged rows replace the copied ones)."""
    if after_seq is None:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {S.ITEMS} AS SELECT * FROM all_{S.ITEMS}")
        return
    touched = f"SELECT DISTINCT {S.ITEM_ID} FROM {_ROWS} WHERE seq > {int(after_seq)} AND {S.ITEM_ID} IS NOT NULL"
    con.execute(f"DELETE FROM temp.{S.ITEMS} WHERE {S.ITEM_ID} IN ({touched})")
    con.execute(f"INSERT INTO temp.{S.ITEMS} SELECT * FROM live_{S.ITEMS} WHERE {S.ITEM_ID} IN ({touched})")


def _create_views(con: duckdb.DuckDBPyConnection, catalog: str, shadow: bool) -> None:
    base = f'"{catalog}".main'
    events = ", ".join(LIVE_EVENT_COLUMNS)
    item_rows = f"(SELECT * FROM {_ROWS} WHERE kind = '{KIND_ITEM}')"
    statements = [
        f"CREATE OR REPLACE TEMP VIEW live_events AS SELECT {events} FROM {_ROWS} WHERE kind = '{KIND_EVENT}'",
        f"CREATE OR REPLACE TEMP VIEW live_items AS {merged_items_sql(f'{base}.{S.ITEMS}', item_rows, 'live_events')}",
        f"CREATE OR REPLACE TEMP VIEW live_users AS {merged_users_sql(f'{base}.{S.USERS}', 'live_events')}",
        f"CREATE OR REPLACE TEMP VIEW all_events AS SELECT {EVENT_VALUES} FROM {base}.{S.EVENTS} "
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
