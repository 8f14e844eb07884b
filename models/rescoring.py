"""Hypothetical histories of one customer, ranked together in one pass (the counterfactual search's re-scorings).

A counterfactual is only shown once the real pipeline has confirmed it
(:meth:`models.serving.Recommender.rescore`), and the search behind it asks for up to about fifteen
such re-scorings of one customer. Each pass costs some 0.1 s on the demo shop, and most of that is
the fixed cost of twenty-odd DuckDB statements, not the rows. So the variants of the customer's
history are written into one work table, each under a *virtual customer* id of its own, and ranked
in one pass (:meth:`Recommender._rank` already ranks several customers at once, each on their own
rows: per-customer windows, per-customer network batches, per-customer ranking). Every table the
serving SQL reads per customer is derived from that history table, so a virtual customer's list is
the list of the real customer with that history; the ids are mapped back before anyone sees them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb

from analytics import schema as s

__all__ = ["HistoryChange", "variant_ids", "write_variants", "variant_cutoffs"]

_SEPARATOR = "\x1f"  # between the customer's id and the variant's number (never in a typed id)


@dataclass(frozen=True)
class HistoryChange:
    """One hypothetical history: the customer's own without every event on ``without_items``,
    plus ``extra_events`` ((item_id, event_type, ts) triples).

    The removed items are kept sorted and distinct, so two changes that mean the same history are
    equal (callers cache re-scorings by change)."""

    without_items: tuple[str, ...] = ()
    extra_events: tuple[tuple[str, str, datetime], ...] = ()

    @classmethod
    def of(cls, without_items: Collection[str] = (),
           extra_events: Sequence[tuple[str, str, datetime]] = ()) -> HistoryChange:
        """The change in its normal form (removals sorted and distinct, events as tuples)."""
        return cls(tuple(sorted(set(without_items))), tuple(tuple(e) for e in extra_events))


def variant_ids(user_id: str, n: int) -> list[str]:
    """The virtual customers' ids of ``n`` variants of ``user_id``'s history (distinct, one work table)."""
    return [f"{user_id}{_SEPARATOR}{i}" for i in range(n)]


def write_variants(con: duckdb.DuckDBPyConnection, history: str, user_id: str, changes: Sequence[HistoryChange],
                   before: datetime | None, out: str) -> list[str]:
    """Write one virtual customer per change into temp table ``out`` (the columns of ``history``)
    and return their ids, in the order of ``changes``.

    ``before`` also drops every event of the customer's own at or after it (the extra events are
    kept, as :meth:`Recommender.rescore` always did)."""
    ids = variant_ids(user_id, len(changes))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {out} AS
        WITH own AS (
            SELECT * FROM {history}
            WHERE {s.USER_ID} = ? AND (?::TIMESTAMP IS NULL OR {s.TS} < ?::TIMESTAMP)
        ), v AS (SELECT unnest(?::VARCHAR[]) AS vid, unnest(?::VARCHAR[][]) AS without)
        SELECT own.* REPLACE (v.vid AS {s.USER_ID})
        FROM own CROSS JOIN v WHERE NOT list_contains(v.without, own.{s.ITEM_ID})""",
        [user_id, before, before, ids, [list(c.without_items) for c in changes]])
    extra = [(vid, *event) for vid, change in zip(ids, changes) for event in change.extra_events]
    if extra:
        con.execute(
            f"""INSERT INTO {out} ({s.USER_ID}, {s.ITEM_ID}, {s.EVENT_TYPE}, {s.TS})
            SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::TIMESTAMP[])""",
            [list(col) for col in zip(*extra)])
    return ids


def variant_cutoffs(con: duckdb.DuckDBPyConnection, table: str, ids: Sequence[str],
                    serving_as_of: datetime) -> dict[str, datetime]:
    """Each variant's feature time when the history is cut at a ``before``: the serving time, or
    just after the newest event kept when that is later (what the live feed would have used)."""
    newest = dict(con.execute(
        f"SELECT {s.USER_ID}, max({s.TS}) + INTERVAL 1 MICROSECOND FROM {table} GROUP BY ALL").fetchall())
    return {vid: serving_as_of if newest.get(vid) is None else max(serving_as_of, newest[vid]) for vid in ids}
