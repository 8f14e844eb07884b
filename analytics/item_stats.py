"""The ``item_stats`` query: one row per item, as of ``$as_of`` (columns and their meaning in
:mod:`analytics.profiles`)."""

from __future__ import annotations

from analytics import schema
from analytics.profile_sql import counts_sql, items_sql, money_sql
from analytics.profiles import (
    CONVERSION,
    COUNT_COLUMNS,
    LAST_SEEN,
    N_EVENTS,
    N_EVENTS_7D,
    N_EVENTS_30D,
    REVENUE,
    ROOT_CATEGORY,
    TREND_7D,
    TREND_30D,
    UNIQUE_USERS,
)

__all__ = ["item_stats_sql"]


def item_stats_sql(events_table: str, key: str = "{}") -> str:
    """One grouped pass over the events and a side pass for the distinct users (over (item, user
    key), see :func:`analytics.profile_build._user_key`; ``count(DISTINCT)`` in the main pass would
    materialise every event first); the catalogue price is applied after grouping (no 10M-row join)."""
    e = schema
    qty = f"abs(coalesce({e.QUANTITY}, 1))"
    no_price_qty = (
        f"sum(CASE WHEN {e.PRICE} IS NULL THEN "
        f"CASE {e.EVENT_TYPE} WHEN '{e.PURCHASE}' THEN {qty} WHEN '{e.RETURN}' THEN -{qty} END END)"
    )
    counts = ", ".join(f"coalesce(a.{name}, 0) AS {name}" for name in COUNT_COLUMNS.values())
    view, purchase = COUNT_COLUMNS[e.VIEW], COUNT_COLUMNS[e.PURCHASE]

    def window(start: int, end: int) -> str:
        """Events in [as_of - start days, as_of - end days)."""
        upper = "" if end == 0 else f" AND {e.TS} < $as_of::TIMESTAMP - INTERVAL {end} DAY"
        return f"count_if({e.TS} >= $as_of::TIMESTAMP - INTERVAL {start} DAY{upper})::BIGINT"

    return f"""
WITH it AS ({items_sql()}),
a AS (
    SELECT {e.ITEM_ID},
        {counts_sql(e.EVENT_TYPE)},
        count(*) AS {N_EVENTS},
        min({e.TS}) AS {e.FIRST_SEEN},
        max({e.TS}) AS {LAST_SEEN},
        {window(7, 0)} AS n7, {window(14, 7)} AS p7,
        {window(30, 0)} AS n30, {window(60, 30)} AS p30,
        {money_sql("own", e.PRICE, qty, e.EVENT_TYPE)},
        {no_price_qty} AS unpriced_qty
    FROM {events_table}
    WHERE {e.TS} < $as_of
    GROUP BY {e.ITEM_ID}
),
users AS (
    SELECT {e.ITEM_ID}, count(*) AS n FROM (
        SELECT DISTINCT {e.ITEM_ID}, {key.format(e.USER_ID)} AS uk
        FROM {events_table} WHERE {e.TS} < $as_of AND {e.USER_ID} IS NOT NULL
    ) GROUP BY {e.ITEM_ID}
)
SELECT coalesce(a.{e.ITEM_ID}, it.{e.ITEM_ID}) AS {e.ITEM_ID},
    it.category AS {e.CATEGORY}, it.root AS {ROOT_CATEGORY}, it.brand AS {e.BRAND}, it.price AS {e.PRICE},
    {counts}, coalesce(a.{N_EVENTS}, 0) AS {N_EVENTS},
    CASE WHEN a.{view} > 0 THEN a.{purchase} / a.{view} END AS {CONVERSION},
    CASE WHEN coalesce(a.own_events, 0) = 0 THEN 0.0
         WHEN a.own_sum IS NULL AND it.price IS NULL THEN NULL
         ELSE coalesce(a.own_sum::DOUBLE, 0) + coalesce(it.price * a.unpriced_qty, 0) END AS {REVENUE},
    coalesce(u.n, 0) AS {UNIQUE_USERS},
    a.{e.FIRST_SEEN}, a.{LAST_SEEN},
    coalesce(a.n7, 0) AS {N_EVENTS_7D}, coalesce(a.n30, 0) AS {N_EVENTS_30D},
    (coalesce(a.n7, 0) + 1) / (coalesce(a.p7, 0) + 1) AS {TREND_7D},
    (coalesce(a.n30, 0) + 1) / (coalesce(a.p30, 0) + 1) AS {TREND_30D}
FROM a FULL OUTER JOIN it ON it.{e.ITEM_ID} = a.{e.ITEM_ID} LEFT JOIN users AS u ON u.{e.ITEM_ID} = a.{e.ITEM_ID}
"""
