"""Which impressions earned which clicks, carts and purchases: last-touch attribution in SQL, and
the sums the Performance page and the experiments read from it.

The rule (:func:`attribute`): a click, cart or purchase of an item by a customer is attributed to
the *latest* impression of that item to that customer at or before the event, provided the event
is at most ``window`` after it (default :data:`DEFAULT_WINDOW`, 24 hours). Last touch, because
the list the customer saw last is the one that put the item in front of them; a list shown
earlier gets nothing for it, however many there were. Each impression row (one item at one
position of one shown list) then says whether it was clicked, carted and purchased (once per
event type, however many such events it earned) and the revenue of its attributed purchases:
price x quantity, the event's price or else the catalogue's, one piece when no quantity is given
(a purchase without any price adds no revenue but still counts as purchased).

Ties (two impressions of the item at the same moment, say the home page and a product page sent
together) go to the one received last, then the larger event id, so the answer never depends on
the order of rows.

The events are the shop's as a reader sees them (``all_events`` and ``all_items`` of
:func:`analytics.live_read.open_live`: the snapshot plus the live segment), the impressions the
``shown`` table of :func:`analytics.impressions.attach_shown`. Returns are not netted out: the
page reports what the lists earned when they were shown.

Everything after that is sums over the attributed rows under a :class:`PerformanceFilter` (list,
model version, days): :func:`figures` per any grouping (model version and variant, position, a
day or an hour) with the customers behind each number, so the page can hide a number about fewer
than k of them, and :func:`customer_outcomes`, one row per customer and variant, what
experiment statistics take (per-customer arrays, for the delta method and CUPED).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import duckdb
import pandas as pd

from analytics import schema as S
from analytics.event_validation import EVENT_ID
from analytics.impressions import EXPERIMENT, LIST, MODEL_VERSION, POSITION, RECEIVED_AT, SHOWN, VARIANT
from errors import RecsightError

__all__ = [
    "DEFAULT_WINDOW", "MAX_WINDOW", "ATTRIBUTED", "OUTCOMES", "CLICKED", "CARTED", "PURCHASED", "REVENUE", "PERIOD",
    "BUCKETS", "MEASURES", "PerformanceFilter", "EVERYTHING", "attribute", "figures", "customer_outcomes",
    "shown_bounds", "shown_labels",
]

DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=30)
ATTRIBUTED = "attributed"  # the temp table attribute() creates
OUTCOMES = (S.CLICK, S.CART, S.PURCHASE)
CLICKED, CARTED, PURCHASED, REVENUE = "clicked", "carted", "purchased", "revenue"
PERIOD = "period"
BUCKETS = ("day", "hour")
# What figures() sums per group, and the customers each is about (k-anonymity is the caller's).
MEASURES = ("lists", "impressions", "customers", "clicks", "carts", "purchases", REVENUE, "clickers", "carters",
            "buyers")


def attribute(con: duckdb.DuckDBPyConnection, *, window: timedelta = DEFAULT_WINDOW, shown: str = SHOWN,
              events: str = "all_events", items: str = "all_items", into: str = ATTRIBUTED) -> int:
    """Create the temp table ``into``: every row of ``shown`` with ``clicked``, ``carted``,
    ``purchased`` (booleans) and ``revenue`` (0 when none) by the last-touch rule of the module
    docstring; return how many impression rows earned at least one event."""
    if not timedelta(0) <= window <= MAX_WINDOW:
        raise RecsightError(f"the attribution window must be between 0 and {MAX_WINDOW.days} days")
    micros = int(window / timedelta(microseconds=1))
    kinds = ", ".join(f"'{kind}'" for kind in OUTCOMES)
    u, i, t = S.USER_ID, S.ITEM_ID, S.TS
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {into} AS
        WITH span AS (SELECT min({t}) AS first_ts, max({t}) + to_microseconds({micros}) AS last_ts FROM {shown}),
        e AS (
            SELECT row_number() OVER () AS event_row, {u}, {i}, {S.EVENT_TYPE}, {t}, {S.QUANTITY}, {S.PRICE}
            FROM {events}
            WHERE {S.EVENT_TYPE} IN ({kinds})
              AND {t} BETWEEN (SELECT first_ts FROM span) AND (SELECT last_ts FROM span)
              AND {u} IN (SELECT DISTINCT {u} FROM {shown})
        ),
        touch AS (
            SELECT e.event_row, e.{i}, e.{S.EVENT_TYPE}, e.{S.QUANTITY}, e.{S.PRICE}, s.{EVENT_ID}, s.{POSITION},
                   row_number() OVER (PARTITION BY e.event_row
                                      ORDER BY s.{t} DESC, s.{RECEIVED_AT} DESC, s.{EVENT_ID} DESC) AS touch
            FROM e JOIN {shown} s ON s.{u} = e.{u} AND s.{i} = e.{i}
                                 AND s.{t} <= e.{t} AND e.{t} <= s.{t} + to_microseconds({micros})
        ),
        earned AS (
            SELECT w.{EVENT_ID}, w.{POSITION},
                   bool_or(w.{S.EVENT_TYPE} = '{S.CLICK}') AS {CLICKED},
                   bool_or(w.{S.EVENT_TYPE} = '{S.CART}') AS {CARTED},
                   bool_or(w.{S.EVENT_TYPE} = '{S.PURCHASE}') AS {PURCHASED},
                   sum(coalesce(w.{S.PRICE}, c.{S.PRICE}) * coalesce(w.{S.QUANTITY}, 1))
                       FILTER (WHERE w.{S.EVENT_TYPE} = '{S.PURCHASE}') AS {REVENUE}
            FROM touch w LEFT JOIN {items} c ON c.{i} = w.{i}
            WHERE w.touch = 1
            GROUP BY w.{EVENT_ID}, w.{POSITION}
        )
        SELECT s.*, coalesce(x.{CLICKED}, false) AS {CLICKED}, coalesce(x.{CARTED}, false) AS {CARTED},
               coalesce(x.{PURCHASED}, false) AS {PURCHASED}, coalesce(x.{REVENUE}, 0.0) AS {REVENUE}
        FROM {shown} s LEFT JOIN earned x ON x.{EVENT_ID} = s.{EVENT_ID} AND x.{POSITION} = s.{POSITION}
    """)
    return int(con.execute(f"SELECT count(*) FROM {into} WHERE {CLICKED} OR {CARTED} OR {PURCHASED}")
               .fetchall()[0][0])


# --------------------------------------------------------------------------- sums


@dataclass(frozen=True)
class PerformanceFilter:
    """Which impressions a figure is about: one list (None: all), one model version (None: all;
    ``unversioned``: only impressions sent without one), and the days ``start``..``end``
    (inclusive, by the impression's time, UTC)."""

    list_name: str | None = None
    model_version: str | None = None
    unversioned: bool = False
    start: date | None = None
    end: date | None = None

    def where(self) -> tuple[str, list[object]]:
        """The SQL condition over an attributed (or shown) table, and its parameters."""
        parts, params = ["TRUE"], []
        if self.list_name is not None:
            parts.append(f"{LIST} = ?")
            params.append(self.list_name)
        if self.unversioned:
            parts.append(f"{MODEL_VERSION} IS NULL")
        elif self.model_version is not None:
            parts.append(f"{MODEL_VERSION} = ?")
            params.append(self.model_version)
        if self.start is not None:
            parts.append(f"{S.TS} >= ?")
            params.append(self.start)
        if self.end is not None:
            parts.append(f"{S.TS} < ?")
            params.append(self.end + timedelta(days=1))
        return " AND ".join(parts), params


EVERYTHING = PerformanceFilter()  # every impression


def figures(con: duckdb.DuckDBPyConnection, by: Sequence[str], flt: PerformanceFilter = EVERYTHING, *,
            bucket: str | None = None, table: str = ATTRIBUTED) -> pd.DataFrame:
    """Per group of ``by`` (columns of the attributed table: model_version, experiment, variant,
    position, list...) and, with ``bucket`` ("day" or "hour"), per :data:`PERIOD`: the
    :data:`MEASURES`. ``lists``: distinct shown lists; ``impressions``: item impressions (rows);
    ``customers``, ``clickers``, ``carters``, ``buyers``: the distinct customers shown, clicking,
    carting and buying. Sorted by the groups (NULLs first), then the period."""
    if bucket is not None and bucket not in BUCKETS:
        raise RecsightError(f"unknown time bucket {bucket!r}: use one of {', '.join(BUCKETS)}")
    where, params = flt.where()
    keys = [*by, *([f"date_trunc('{bucket}', {S.TS}) AS {PERIOD}"] if bucket else [])]
    names = [*by, *([PERIOD] if bucket else [])]
    group = ", ".join(keys)
    u = S.USER_ID
    sql = f"""
        SELECT {group + ',' if group else ''}
               count(DISTINCT {EVENT_ID}) AS lists, count(*) AS impressions, count(DISTINCT {u}) AS customers,
               count(*) FILTER (WHERE {CLICKED}) AS clicks, count(*) FILTER (WHERE {CARTED}) AS carts,
               count(*) FILTER (WHERE {PURCHASED}) AS purchases, coalesce(sum({REVENUE}), 0.0) AS {REVENUE},
               count(DISTINCT {u}) FILTER (WHERE {CLICKED}) AS clickers,
               count(DISTINCT {u}) FILTER (WHERE {CARTED}) AS carters,
               count(DISTINCT {u}) FILTER (WHERE {PURCHASED}) AS buyers
        FROM {table} WHERE {where}
        {'GROUP BY ' + ', '.join(names) if names else ''}
        {'ORDER BY ' + ', '.join(f'{n} NULLS FIRST' for n in names) if names else ''}
    """
    return _none_for_null(con.execute(sql, params).fetchdf(), by)  # no groups: one row, zeros when empty


def customer_outcomes(con: duckdb.DuckDBPyConnection, flt: PerformanceFilter = EVERYTHING, *,
                      experiment: str | None = None, table: str = ATTRIBUTED) -> pd.DataFrame:
    """One row per customer and (model version, experiment, variant) they were shown: lists,
    item impressions, clicks, carts, purchases and revenue. ``experiment``: that experiment's
    impressions only. What experiment statistics take: per-customer numerators and
    denominators of ratio metrics (click-through = clicks / impressions, per customer)."""
    where, params = flt.where()
    if experiment is not None:
        where += f" AND {EXPERIMENT} = ?"
        params.append(experiment)
    groups = f"{S.USER_ID}, {MODEL_VERSION}, {EXPERIMENT}, {VARIANT}"
    frame = con.execute(f"""
        SELECT {groups}, count(DISTINCT {EVENT_ID}) AS lists, count(*) AS impressions,
               count(*) FILTER (WHERE {CLICKED}) AS clicks, count(*) FILTER (WHERE {CARTED}) AS carts,
               count(*) FILTER (WHERE {PURCHASED}) AS purchases, coalesce(sum({REVENUE}), 0.0) AS {REVENUE}
        FROM {table} WHERE {where} GROUP BY {groups} ORDER BY {groups}
    """, params).fetchdf()
    return _none_for_null(frame, (MODEL_VERSION, EXPERIMENT, VARIANT))


def _none_for_null(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Text columns with None (not NaN) for SQL NULL: "sent without a model version" stays None."""
    for column in columns:
        if column in frame and not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def shown_bounds(con: duckdb.DuckDBPyConnection, table: str = SHOWN) -> tuple[date, date] | None:
    """The first and last day (UTC) with an impression; None when there is none."""
    first, last = con.execute(f"SELECT min({S.TS}), max({S.TS}) FROM {table}").fetchall()[0]
    return None if first is None else (first.date(), last.date())


def shown_labels(con: duckdb.DuckDBPyConnection, table: str = SHOWN) -> tuple[list[str], list[str | None]]:
    """The list names and the model versions (None: impressions sent without one) that occur, sorted."""
    lists = [r[0] for r in con.execute(f"SELECT DISTINCT {LIST} FROM {table} ORDER BY 1").fetchall()]
    versions = [r[0] for r in con.execute(f"SELECT DISTINCT {MODEL_VERSION} FROM {table} "
                                          "ORDER BY 1 NULLS LAST").fetchall()]
    return lists, versions
