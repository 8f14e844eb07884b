"""Build the user-profile and item-stats tables (:mod:`analytics.profiles`) as of a timestamp.

:func:`build_profiles` runs the two queries (:mod:`analytics.user_profiles`,
:mod:`analytics.item_stats`) over the events before ``as_of``: the engine calls it with its training
cutoff, ingest as of all events inside its own transaction. :func:`refresh_profiles` rebuilds the
tables of a shop file written some other way.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from analytics import schema
from analytics.db import rewriting
from analytics.item_stats import item_stats_sql
from analytics.profiles import ITEM_STATS, USER_PROFILES
from analytics.sql_steps import Step
from analytics.user_profiles import user_profiles_sql
from errors import RecsightError

__all__ = ["build_profiles", "refresh_profiles", "resolve_as_of", "profile_steps", "user_key"]

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def build_profiles(
    con: duckdb.DuckDBPyConnection,
    as_of: datetime | None = None,
    *,
    events_table: str = schema.EVENTS,
    user_table: str | None = USER_PROFILES,
    item_table: str | None = ITEM_STATS,
    temporary: bool = False,
) -> None:
    """(Re)create the user-profile and item-stats tables from the events before ``as_of``.

    ``as_of`` None means "now": the last event's time plus one microsecond, so every event counts.
    A timezone-aware ``as_of`` is converted to UTC (event times are stored naive, in UTC).
    ``events_table`` may be a view (the engine passes its training window); ``temporary`` makes
    session-local tables so a training run never touches the shop's own profiles. A table name
    of None skips that table (the user half costs about two thirds of the time).
    """
    for name in (events_table, user_table, item_table):
        if name is not None and not _IDENTIFIER.match(name):
            raise RecsightError(f"bad table name {name!r}: use letters, digits and underscores")
    _require_table(con, events_table)
    _require_table(con, schema.ITEMS)
    cutoff = resolve_as_of(con, events_table, as_of)
    kind = "TEMP TABLE" if temporary else "TABLE"
    started = time.perf_counter()
    key = _user_key(con, events_table)
    for table, sql in ((user_table, user_profiles_sql), (item_table, item_stats_sql)):
        if table is not None:
            con.execute(f"CREATE OR REPLACE {kind} {table} AS {sql(events_table, key)}", {"as_of": cutoff})
    log.info("built %s as of %s in %.2f s", " and ".join(t for t in (user_table, item_table) if t),
             cutoff, time.perf_counter() - started)


def profile_steps(events_table: str = schema.EVENTS, key: str = "{}") -> list[Step]:
    """The two tables as output steps of a batch job (:mod:`analytics.sql_steps`): the very SQL
    :func:`build_profiles` runs, as of the ``$as_of`` parameter. ``key`` is :func:`user_key` on
    DuckDB; other engines key users by their id (the results never depend on the key)."""
    return [Step(USER_PROFILES, user_profiles_sql(events_table, key), output=True),
            Step(ITEM_STATS, item_stats_sql(events_table, key), output=True)]


def user_key(con: duckdb.DuckDBPyConnection, events_table: str) -> str:
    """How DuckDB's side passes key users for ``events_table`` (see :func:`_user_key`)."""
    return _user_key(con, events_table)


def refresh_profiles(db_path: Path) -> None:
    """Rebuild the shop's profile tables as of all its events, in one transaction.

    Written through a private copy of the shop file (``analytics.db.rewriting``), so a running
    server neither blocks the rebuild nor sees it half done. ``ingest_paths`` already rebuilds
    the profiles in its own transaction; this is for a store written some other way.
    """
    path = Path(db_path)
    if not path.exists():
        raise RecsightError(f"database {path} does not exist: run `python cli.py ingest` first")
    try:
        with rewriting(path) as rewrite:
            con = rewrite.con
            _require_table(con, schema.EVENTS)
            if not con.execute(f"SELECT 1 FROM {schema.EVENTS} LIMIT 1").fetchall():
                raise RecsightError(f"database {path} has no events: ingest some behaviour data first")
            con.execute("BEGIN TRANSACTION")
            build_profiles(con)
            con.execute("COMMIT")
    except duckdb.Error as exc:
        raise RecsightError(f"cannot build profiles in {path}: {str(exc).strip().splitlines()[0]}") from None


# --------------------------------------------------------------------------- helpers


def _require_table(con: duckdb.DuckDBPyConnection, name: str) -> None:
    try:
        con.execute(f"SELECT * FROM {name} LIMIT 0").fetchall()
    except duckdb.CatalogException:
        raise RecsightError(f"table {name} not found: run `python cli.py ingest` first") from None


def resolve_as_of(con: duckdb.DuckDBPyConnection, events_table: str, as_of: datetime | None) -> datetime | None:
    """The naive UTC cutoff :func:`build_profiles` uses for ``as_of`` (None: just after the newest
    event of ``events_table``); public so a caller ranking against a build
    (:mod:`analytics.live_profiles`) measures recency from the very same instant."""
    if as_of is None:
        last = con.execute(f"SELECT max({schema.TS}) FROM {events_table}").fetchall()[0][0]
        return None if last is None else last + timedelta(microseconds=1)
    if not isinstance(as_of, datetime):
        raise RecsightError(f"as_of must be a datetime, got {type(as_of).__name__}")
    if as_of.tzinfo is not None:
        as_of = as_of.astimezone(UTC).replace(tzinfo=None)
    return as_of


def _user_key(con: duckdb.DuckDBPyConnection, events_table: str) -> str:
    """How the grouped side passes key users: ``hash({})`` where that is exact, else ``{}``.

    User ids are long strings (pseudonyms), and the passes grouped by (user, something) -
    distinct sessions, category weights, distinct users per item - spend much of their time
    hashing and comparing them. A 64-bit hash is a far cheaper key, and it is *exact* whenever
    no two of the shop's user ids share a hash, which this checks on the distinct user ids
    (cheap: grouping by the one string column is fast). Should two ever collide, the plain
    string key is used instead, so the results never depend on the hash.
    """
    e = schema
    unique = con.execute(
        f"SELECT count(*) = count(DISTINCT hash(u)) FROM (SELECT DISTINCT {e.USER_ID} AS u FROM {events_table})"
    ).fetchall()[0][0]
    return "hash({})" if unique else "{}"

