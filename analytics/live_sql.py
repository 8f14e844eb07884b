"""SQL shared by the live readers and the compaction, so both apply a segment the same way.

A reader shows the live segment over a snapshot exactly as a compaction will fold it into the next
snapshot: an item's newest non-empty value (in sequence order) wins over the stored one, as in an
ingest's upsert; an event whose item is not in the catalogue gives it an empty row; a customer's
``first_seen`` is the earliest of the stored one and their events'. Because the text is one, what
a reader saw before a compaction is what it sees after.

The snapshot keeps small tables of its own (created by the first compaction): ``live_state``,
the last folded sequence number; ``live_event_ids``, every folded client event id (the writer's
record of what is already stored, for idempotency); ``live_lineage``, one row per compaction
(fingerprint and folded number before and after it: :mod:`analytics.fingerprint`); and
``live_event_rows``, per folded segment where its events sit in ``events`` (first ``rowid`` and
count: a fold appends them in sequence order and nothing ever deletes an event), so a reader
serving a model older than the fold can show them as live again (:mod:`analytics.live_read`).
"""

from __future__ import annotations

import duckdb

from analytics import schema as S

__all__ = ["LIVE_STATE", "LIVE_EVENT_IDS", "LIVE_LINEAGE", "LIVE_EVENT_ROWS", "LIVE_DDL", "folded_seq",
           "has_table", "merged_items_sql", "merged_users_sql", "EVENT_VALUES"]

LIVE_STATE = "live_state"
LIVE_EVENT_IDS = "live_event_ids"
LIVE_LINEAGE = "live_lineage"
LIVE_EVENT_ROWS = "live_event_rows"
LIVE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {LIVE_STATE} (last_seq BIGINT NOT NULL, compacted_at TIMESTAMP NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {LIVE_EVENT_IDS} (event_id VARCHAR NOT NULL, seq BIGINT NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {LIVE_LINEAGE} (last_seq BIGINT NOT NULL, fingerprint VARCHAR NOT NULL, "
    "folded_seq BIGINT NOT NULL, folded_fingerprint VARCHAR NOT NULL, compacted_at TIMESTAMP NOT NULL)",
    f"CREATE TABLE IF NOT EXISTS {LIVE_EVENT_ROWS} (seq BIGINT NOT NULL, first_row BIGINT NOT NULL, "
    "events BIGINT NOT NULL)",
)
# The contract's event columns, in the events table's order.
EVENT_VALUES = ", ".join(S.EVENTS_COLUMNS)


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the current database (the snapshot) has the table ``name``."""
    sql = ("SELECT count(*) FROM duckdb_tables() WHERE NOT temporary AND table_name = ? "
           "AND database_name = current_database()")
    return con.execute(sql, [name]).fetchall()[0][0] > 0


def folded_seq(con: duckdb.DuckDBPyConnection) -> int:
    """The snapshot's last folded sequence number (0 before the first compaction)."""
    if not has_table(con, LIVE_STATE):
        return 0
    return int(con.execute(f"SELECT max(last_seq) FROM {LIVE_STATE}").fetchall()[0][0] or 0)


def merged_items_sql(items: str, item_rows: str, event_items: str) -> str:
    """The catalogue rows a segment changes, as they read after it: one row per item updated by
    ``item_rows`` (seq, line, item_id, title, category, brand, price) or named by an event of
    ``event_items`` (item_id), over the stored ``items``."""
    newest = ", ".join(f"last({c} ORDER BY seq, line) FILTER (WHERE {c} IS NOT NULL) AS {c}"
                       for c in (S.TITLE, S.CATEGORY, S.BRAND, S.PRICE))
    merged = ", ".join(f"coalesce(u.{c}, b.{c}) AS {c}" for c in (S.TITLE, S.CATEGORY, S.BRAND, S.PRICE))
    return f"""
        WITH u AS (SELECT {S.ITEM_ID}, {newest} FROM {item_rows} GROUP BY {S.ITEM_ID}),
             touched AS (SELECT {S.ITEM_ID} FROM u UNION SELECT {S.ITEM_ID} FROM {event_items})
        SELECT t.{S.ITEM_ID}, {merged}
        FROM touched t LEFT JOIN u ON u.{S.ITEM_ID} = t.{S.ITEM_ID} LEFT JOIN {items} b ON b.{S.ITEM_ID} = t.{S.ITEM_ID}
    """


def merged_users_sql(users: str, events: str) -> str:
    """The customers a segment's ``events`` name, as they read after it (country kept, first_seen
    the earliest of the stored one and their events')."""
    return f"""
        SELECT l.{S.USER_ID}, b.{S.COUNTRY}, least(b.{S.FIRST_SEEN}, l.first_ts) AS {S.FIRST_SEEN}
        FROM (SELECT {S.USER_ID}, min({S.TS}) AS first_ts FROM {events} GROUP BY {S.USER_ID}) l
        LEFT JOIN {users} b ON b.{S.USER_ID} = l.{S.USER_ID}
    """
