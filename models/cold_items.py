"""Cold items: items first seen through the intake, scored from their content and live counts.

A trained model knows the items of its snapshot (catalogue and events): each has a row in the
serving item-feature table (:func:`models.features.build_item_table`) and one in the candidate
index's attribute table. An item added since (``POST /api/v1/items``, or named by a live event)
has neither: its item features would be blank for the ranker and it could become a candidate only
through live co-visitation links. Until the next training such an item is *cold*, and
:func:`refresh_cold_items` (run by :class:`models.serving.Recommender` under its lock, at load
and after every refresh that read new segments) gives it:

- a row in the serving item table computed by the training SQL itself
  (:func:`models.features.build_item_table` over the cold items' events), as of just after the
  newest live event, so its counts (customers, purchases, 7-day activity, age) are live ones.
  Its popularity-rank columns stay empty: the popularity table stays as trained;
- a row in the attribute table with its category and brand at rank 1 in both: it joins the
  attribute candidates of every customer whose recent items share its brand or category, beside
  the most popular trained item of that brand or category in the cheap merge order (at the last
  slot it would fall below the popular items and be cut by the candidate cap before the ranker
  ever saw it), and the ranker's score, from its content and live counts, decides where it lands.

A refresh recomputes the rows of the cold items the new segments name (new ones, ones with new
events, ones whose catalogue category or brand changed), as of just after the newest live event;
they replace the earlier rows. The rows of the other cold items keep their earlier as-of time, as
the model's items keep the serving time's. Why not every cold item every time: the item-feature
SQL reads the whole catalogue (it numbers it), a cost per call that grows with the catalogue
(about 0.2 s at 300,000 items on two cores), under the serving lock; so it runs only when a cold
item's counts moved. Items of the model are never touched: an item is cold when the model's item
table lacked it, which the recommender remembers as the set this returns.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from datetime import datetime, timedelta

import duckdb

from analytics import schema as s
from analytics.live_read import LIVE_ITEM_REFS
from models.batch import HistoryTables
from models.features import build_item_table

__all__ = ["refresh_cold_items", "COLD_EVENTS"]

log = logging.getLogger(__name__)

COLD_EVENTS = "cold_item_events"  # temp view: the live events of the cold items
_IDS = "cold_item_ids"
_ROWS = "cold_item_rows"
_TICK = timedelta(microseconds=1)


def refresh_cold_items(con: duckdb.DuckDBPyConnection, tables: HistoryTables,
                       known_cold: Set[str] = frozenset(), after_seq: int | None = None,
                       as_of: datetime | None = None) -> frozenset[str]:
    """(Re)compute the item-table and attribute rows of the cold items the segments above
    ``after_seq`` name (None: at load, every cold item); return the cold set.

    ``known_cold``: the items made cold by earlier calls (their rows are in ``tables.items`` now,
    so the table no longer tells them apart from the model's). ``as_of``: when the counts are
    taken; None: just after the newest live event, or the model's serving time when that is later.
    The connection must have the live segment attached in shadow mode
    (:func:`analytics.live_read.attach_live`): ``items`` is the merged catalogue, ``live_items``
    and ``live_events`` the live rows. The caller holds the serving lock.
    """
    named = s.ITEMS if after_seq is None else \
        f"(SELECT DISTINCT {s.ITEM_ID} FROM {LIVE_ITEM_REFS} WHERE seq > {int(after_seq)})"
    new = _new_cold_ids(con, tables.items, named) - set(known_cold)
    cold = frozenset(new | set(known_cold))
    due = new | (set(known_cold) if after_seq is None else _moved(con, tables, known_cold, after_seq))
    if not due:
        return cold
    cutoff = as_of if as_of is not None else _live_as_of(con, tables.as_of)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_IDS} AS SELECT unnest(?::VARCHAR[]) AS {s.ITEM_ID}",
                [sorted(due)])
    try:
        _item_rows(con, tables, cutoff)
        _attribute_rows(con, tables)
    finally:
        con.execute(f"DROP VIEW IF EXISTS {COLD_EVENTS}")
        con.execute(f"DROP TABLE IF EXISTS {_IDS}")
    log.info("%d of %d cold item(s) scored from their content and live counts as of %s", len(due), len(cold), cutoff)
    return cold


def _new_cold_ids(con: duckdb.DuckDBPyConnection, items: str, catalogue: str) -> set[str]:
    """The items of ``catalogue`` without a row in the item table ``items``. At load the whole
    catalogue (a compaction may have folded catalogue rows the model never saw); after that the
    items the new segments name (an item new since the load is named by a live event or
    catalogue row there; a few rows)."""
    rows = con.execute(
        f"""SELECT c.{s.ITEM_ID} FROM {catalogue} c
            WHERE NOT EXISTS (SELECT 1 FROM {items} m WHERE m.{s.ITEM_ID} = c.{s.ITEM_ID})""").fetchall()
    return {r[0] for r in rows}


def _moved(con: duckdb.DuckDBPyConnection, tables: HistoryTables, known_cold: Set[str], after_seq: int) -> set[str]:
    """The known cold items with events in the segments above ``after_seq``, or whose category or
    brand in the live catalogue rows differs from their attribute row (a catalogue row that came
    later)."""
    if not known_cold:
        return set()
    rows = con.execute(
        f"""WITH cold AS (SELECT unnest(?::VARCHAR[]) AS {s.ITEM_ID})
        SELECT {s.ITEM_ID} FROM live_events WHERE seq > ? AND {s.ITEM_ID} IN (SELECT {s.ITEM_ID} FROM cold)
        UNION
        SELECT i.{s.ITEM_ID} FROM live_items i JOIN cold USING ({s.ITEM_ID})
        LEFT JOIN {tables.index.attributes} a USING ({s.ITEM_ID})
        WHERE a.{s.ITEM_ID} IS NULL OR i.{s.CATEGORY} IS DISTINCT FROM a.{s.CATEGORY}
           OR i.{s.BRAND} IS DISTINCT FROM a.{s.BRAND}""", [sorted(known_cold), after_seq]).fetchall()
    return {r[0] for r in rows}


def _live_as_of(con: duckdb.DuckDBPyConnection, model_as_of: datetime | None) -> datetime | None:
    """Just after the newest live event, or the model's serving time when that is later (the rule
    of :meth:`models.live_serving.LiveFeed.as_of`, over every live event)."""
    (newest,) = con.execute(f"SELECT max({s.TS}) FROM live_events").fetchone()
    if newest is None:
        return model_as_of
    return newest + _TICK if model_as_of is None else max(model_as_of, newest + _TICK)


def _item_rows(con: duckdb.DuckDBPyConnection, tables: HistoryTables, as_of: datetime | None) -> None:
    """The cold items' rows of the item table by the training SQL, replacing their earlier rows.

    The events are the live ones only: the model's item table holds every item of its snapshot's
    catalogue and events, so every event of an item it lacks is live (and the live rows are a few
    thousand, where the snapshot's events may be millions). ``build_item_table`` also gives rows to
    the rest of the catalogue (zero counts); only the cold items' are kept.
    """
    columns = ", ".join(s.EVENTS_COLUMNS)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {COLD_EVENTS} AS SELECT {columns} FROM live_events "
                f"WHERE {s.ITEM_ID} IN (SELECT {s.ITEM_ID} FROM {_IDS})")
    build_item_table(con, COLD_EVENTS, tables.index, as_of, _ROWS)
    try:
        con.execute(f"DELETE FROM {tables.items} WHERE {s.ITEM_ID} IN (SELECT {s.ITEM_ID} FROM {_IDS})")
        con.execute(f"INSERT INTO {tables.items} BY NAME SELECT * FROM {_ROWS} "
                    f"WHERE {s.ITEM_ID} IN (SELECT {s.ITEM_ID} FROM {_IDS})")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_ROWS}")


def _attribute_rows(con: duckdb.DuckDBPyConnection, tables: HistoryTables) -> None:
    """The cold items' attribute rows: the catalogue's category and brand (as the training build
    reads them), each ranked first in its brand and category (see the module docstring)."""
    attributes, first = tables.index.attributes, 1
    con.execute(f"DELETE FROM {attributes} WHERE {s.ITEM_ID} IN (SELECT {s.ITEM_ID} FROM {_IDS})")
    con.execute(
        f"""INSERT INTO {attributes} BY NAME
        SELECT i.{s.ITEM_ID}, i.{s.CATEGORY}, i.{s.BRAND},
               CASE WHEN i.{s.BRAND} IS NOT NULL THEN {first} END AS brand_rank,
               CASE WHEN i.{s.CATEGORY} IS NOT NULL THEN {first} END AS category_rank
        FROM {s.ITEMS} i WHERE i.{s.ITEM_ID} IN (SELECT {s.ITEM_ID} FROM {_IDS})""")
