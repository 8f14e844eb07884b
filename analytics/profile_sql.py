"""SQL fragments shared by the user-profile and the item-stats queries (DuckDB).

The SQL is written for speed (10 million events in about 3 s on 2 idle cores, about 4.6 s of CPU,
see ``bench/ingest_profiles.py``): grouped passes with ``count_if``/``FILTER`` aggregates, no
correlated subqueries, no per-event string work, no ``count(DISTINCT)`` (it materialises every
event), and users keyed by a verified-collision-free 64-bit hash of their id in the passes grouped
by (user, something); :func:`analytics.user_profiles.user_profiles_sql` and
:func:`analytics.profile_build._user_key` explain the tricks.

The column rules these fragments implement are defined in :mod:`analytics.profiles`.
"""

from __future__ import annotations

from analytics import schema
from analytics.profiles import COUNT_COLUMNS

__all__ = ["counts_sql", "items_sql", "money_sql", "money_value"]

_MONEY_TYPE = "DECIMAL(18, 4)"


def counts_sql(column: str) -> str:
    return ",\n        ".join(
        f"count_if({column} = '{event_type}')::BIGINT AS {name}" for event_type, name in COUNT_COLUMNS.items()
    )


def _clean(column: str) -> str:
    return f"nullif(trim({column}), '')"


def money_sql(prefix: str, price: str, qty: str, event_type: str) -> str:
    """Net purchase value minus returns (the ``monetary`` / ``revenue`` rule in :mod:`analytics.profiles`).

    ``sum`` skips unknown prices and is NULL when no price is known; the event count tells
    "nothing bought" (0) apart from "bought, value unknown" (NULL). Amounts are summed as
    DECIMAL (to 1/10,000 of the currency unit) because a parallel floating-point sum depends on
    thread timing, and the last bit would then reorder tied customers' monetary scores.
    """
    amount = f"CAST({price} * {qty} AS {_MONEY_TYPE})"
    signed = (
        f"CASE {event_type} WHEN '{schema.PURCHASE}' THEN {amount} "
        f"WHEN '{schema.RETURN}' THEN -{amount} END"
    )
    money_type = f"{event_type} IN ('{schema.PURCHASE}', '{schema.RETURN}')"
    return (
        f"sum({signed}) AS {prefix}_sum,\n"
        f"        count_if({money_type}) AS {prefix}_events"
    )


def money_value(prefix: str) -> str:
    return f"CASE WHEN {prefix}_events = 0 THEN 0.0 ELSE {prefix}_sum::DOUBLE END"


def items_sql() -> str:
    """The catalogue with cleaned attributes and dense name-ordered ids (a small table).

    ``attr`` numbers each distinct (category, brand) pair; ``cat_id``/``root_id``/``brand_id``
    number the names in sort order from 1, so comparing ids compares names.
    """
    e = schema
    sep = e.CATEGORY_SEPARATOR.replace("'", "''")
    return f"""SELECT *,
        dense_rank() OVER (ORDER BY category, brand) AS attr,
        CASE WHEN category IS NOT NULL THEN dense_rank() OVER (ORDER BY category) END AS cat_id,
        CASE WHEN root IS NOT NULL THEN dense_rank() OVER (ORDER BY root) END AS root_id,
        CASE WHEN brand IS NOT NULL THEN dense_rank() OVER (ORDER BY brand) END AS brand_id
    FROM (
        SELECT {e.ITEM_ID},
            {_clean(e.CATEGORY)} AS category,
            {_clean(f"split_part({e.CATEGORY}, '{sep}', 1)")} AS root,
            {_clean(e.BRAND)} AS brand,
            {e.PRICE} AS price
        FROM {e.ITEMS}
    )"""

