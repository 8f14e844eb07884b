"""Shop-wide aggregates for the analyst overview, as pure queries over a DuckDB connection.

Every function takes an open connection (the app passes a short-lived read-only one) and an
:class:`OverviewFilter`, and returns a DataFrame or a dict; nothing here knows about Dash. Values
always travel as query parameters; only identifiers from :mod:`analytics.schema` and
:mod:`analytics.profiles` are written into the SQL text.

Definitions match :mod:`analytics.profiles` so the overview and a customer's profile never
disagree:

* revenue — purchases minus returns, each ``price * |quantity|`` (quantity NULL counts as 1), the
  event's own price else the item's catalogue price; events with no known price add nothing;
* conversion — purchases / views (None without views); buyer share — customers with a purchase
  / active customers;
* the date range is inclusive of both days; the segment is the ``rfm_segment`` of the
  ``user_profiles`` table (as of its build), so a segment filter needs that table.

Privacy: this page shows aggregates only. :func:`resolve_filter` refuses a segment of fewer than
k customers, :func:`segment_breakdown` hides such segments, and the top lists take ``min_users``
so a category or brand bought by a handful of people is not singled out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

import duckdb
import pandas as pd

from analytics import profiles, schema
from errors import RecsightError

__all__ = [
    "OverviewFilter", "SegmentBreakdown", "FUNNEL_STAGES", "FREQUENCIES", "CATEGORY_LEVELS",
    "has_table", "require_shop", "profiles_available", "date_bounds", "segment_choices", "resolve_filter",
    "kpis", "funnel", "activity_over_time", "top_categories", "top_brands", "segment_breakdown",
]

log = logging.getLogger(__name__)

FUNNEL_STAGES: tuple[str, ...] = (schema.VIEW, schema.CLICK, schema.CART, schema.PURCHASE)
FREQUENCIES: tuple[str, ...] = ("day", "week")
CATEGORY_LEVELS: tuple[str, ...] = ("top", "full")
_RANK_BY: tuple[str, ...] = ("events", "revenue", "purchases")
_MAX_LIMIT = 100


@dataclass(frozen=True)
class OverviewFilter:
    """Which events the overview aggregates: an inclusive date range and an RFM segment."""

    start: date | None = None
    end: date | None = None
    segment: str | None = None


class SegmentBreakdown(NamedTuple):
    """Segment sizes with the groups under k removed; ``suppressed`` says how many were."""

    table: pd.DataFrame
    suppressed: int


# --------------------------------------------------------------------------- what is there


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the database holds a table or view of that name (main schema)."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = $name", {"name": name}
    ).fetchone()
    return bool(row and row[0])


def require_shop(con: duckdb.DuckDBPyConnection) -> None:
    """Raise a one-line RecsightError unless the events and items tables are there."""
    for table in (schema.EVENTS, schema.ITEMS):
        if not has_table(con, table):
            raise RecsightError(f"the database has no {table} table: run `python cli.py ingest` first")


def profiles_available(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``user_profiles`` exists (it is built by ``cli.py ingest`` after loading)."""
    return has_table(con, profiles.USER_PROFILES)


def date_bounds(con: duckdb.DuckDBPyConnection) -> tuple[date, date] | None:
    """First and last day with an event, or None for an empty shop."""
    first, last = con.execute(f"SELECT min({schema.TS}), max({schema.TS}) FROM {schema.EVENTS}").fetchone()
    if first is None:
        return None
    return first.date(), last.date()


def segment_choices(con: duckdb.DuckDBPyConnection, k: int) -> list[str]:
    """Segments with at least k customers, in the order of ``profiles.SEGMENTS``.

    Only these are offered as a filter: a smaller segment would show one person's behaviour.
    """
    if not profiles_available(con):
        return []
    sizes = dict(con.execute(
        f"SELECT {profiles.RFM_SEGMENT}, count(*) FROM {profiles.USER_PROFILES} GROUP BY ALL"
    ).fetchall())
    return [name for name in _segment_order(sizes) if sizes[name] >= k]


def resolve_filter(
    con: duckdb.DuckDBPyConnection,
    start: str | date | None,
    end: str | date | None,
    segment: str | None,
    k: int,
) -> OverviewFilter:
    """Turn what the page sends (ISO date strings, a segment name) into a checked filter.

    Raises RecsightError with one line for a bad date, an inverted range, an unknown segment, a
    segment too small to show, or a selection that covers between 1 and k-1 customers (every
    aggregate of it would describe too few people; an empty selection is fine and shows zeros).
    """
    start_day, end_day = _parse_day(start, "start"), _parse_day(end, "end")
    if start_day and end_day and start_day > end_day:
        raise RecsightError(f"the start date {start_day} is after the end date {end_day}")
    if segment:
        if not profiles_available(con):
            raise RecsightError("customer segments are not available yet: run `python cli.py ingest` to build profiles")
        size = con.execute(
            f"SELECT count(*) FROM {profiles.USER_PROFILES} WHERE {profiles.RFM_SEGMENT} = $segment",
            {"segment": segment},
        ).fetchone()[0]
        if size == 0:
            raise RecsightError(f"unknown customer segment {segment[:40]!r}")
        if size < k:
            raise RecsightError(f"segment {segment!r} has fewer than {k} customers and is hidden for privacy")
    flt = OverviewFilter(start_day, end_day, segment or None)
    where, params = _where(flt)
    active = con.execute(
        f"SELECT count(DISTINCT e.{schema.USER_ID}) FROM {schema.EVENTS} AS e {('WHERE ' + where) if where else ''}",
        params,
    ).fetchone()[0]
    if 0 < active < k:
        raise RecsightError(
            f"fewer than {k} customers are active in this selection, so it is hidden for privacy: "
            "widen the dates or choose another segment"
        )
    return flt


# --------------------------------------------------------------------------- aggregates


def kpis(con: duckdb.DuckDBPyConnection, flt: OverviewFilter = OverviewFilter()) -> dict[str, Any]:
    """Headline numbers for the filtered events.

    Keys: users, buyers, items (items with an event), catalogue_items (the whole catalogue),
    events, views, purchases, revenue, conversion (purchases / views or None) and buyer_share
    (buyers / users or None).
    """
    where, params = _where(flt)
    params.update(_money_params(), view=schema.VIEW)
    row = con.execute(f"""
        WITH f AS ({_filtered_events(where)})
        SELECT count(DISTINCT {schema.USER_ID}),
               count(DISTINCT {schema.USER_ID}) FILTER (WHERE {schema.EVENT_TYPE} = $purchase),
               count(DISTINCT {schema.ITEM_ID}),
               count(*),
               count(*) FILTER (WHERE {schema.EVENT_TYPE} = $view),
               count(*) FILTER (WHERE {schema.EVENT_TYPE} = $purchase),
               coalesce(sum(value), 0)
        FROM f""", params).fetchone()
    users, buyers, items, events, views, purchases, revenue = row
    catalogue = con.execute(f"SELECT count(*) FROM {schema.ITEMS}").fetchone()[0]
    return {
        "users": users, "buyers": buyers, "items": items, "catalogue_items": catalogue,
        "events": events, "views": views, "purchases": purchases, "revenue": float(revenue),
        "conversion": purchases / views if views else None,
        "buyer_share": buyers / users if users else None,
    }


def funnel(con: duckdb.DuckDBPyConnection, flt: OverviewFilter = OverviewFilter()) -> pd.DataFrame:
    """Events and distinct customers at each funnel stage (view, click, cart, purchase).

    Every stage is listed, with zeros where a shop records no such events (Online Retail has
    purchases only), so the chart always shows the same four steps.
    """
    where, params = _where(flt)
    params["stages"] = list(FUNNEL_STAGES)
    counts = con.execute(f"""
        SELECT {schema.EVENT_TYPE} AS stage, count(*) AS events, count(DISTINCT {schema.USER_ID}) AS users
        FROM {schema.EVENTS} AS e
        WHERE {schema.EVENT_TYPE} IN (SELECT unnest($stages)) {('AND ' + where) if where else ''}
        GROUP BY ALL""", params).df().set_index("stage")
    frame = counts.reindex(list(FUNNEL_STAGES)).fillna(0).astype("int64").rename_axis("stage").reset_index()
    return frame


def activity_over_time(
    con: duckdb.DuckDBPyConnection, flt: OverviewFilter = OverviewFilter(), freq: str = "day",
) -> pd.DataFrame:
    """Events, purchases, revenue and active customers per day or week (weeks start on Monday).

    Periods without events inside the filtered span are listed with zeros, so a quiet day shows
    as a dip rather than being bridged by the line.
    """
    if freq not in FREQUENCIES:
        raise RecsightError(f"unknown period {freq!r}: use one of {', '.join(FREQUENCIES)}")
    where, params = _where(flt)
    params.update(_money_params(), freq=freq)
    frame = con.execute(f"""
        WITH f AS ({_filtered_events(where)})
        SELECT date_trunc($freq, {schema.TS}) AS period,
               count(*) AS events,
               count(*) FILTER (WHERE {schema.EVENT_TYPE} = $purchase) AS purchases,
               coalesce(sum(value), 0) AS revenue,
               count(DISTINCT {schema.USER_ID}) AS users
        FROM f GROUP BY ALL ORDER BY period""", params).df()
    if frame.empty:
        return frame
    frame["period"] = pd.to_datetime(frame["period"])
    full = pd.date_range(frame["period"].min(), frame["period"].max(), freq="D" if freq == "day" else "W-MON")
    frame = frame.set_index("period").reindex(full, fill_value=0).rename_axis("period").reset_index()
    return frame.astype({"events": "int64", "purchases": "int64", "users": "int64", "revenue": "float64"})


def top_categories(
    con: duckdb.DuckDBPyConnection,
    flt: OverviewFilter = OverviewFilter(),
    *,
    level: str = "top",
    by: str = "events",
    limit: int = 10,
    min_users: int = 1,
) -> pd.DataFrame:
    """The leading categories: ``level`` "top" groups by the first part of the path, "full" by
    the whole path "A > B > C". Columns: category, events, purchases, revenue, users.

    Events on items without a category are left out; groups with fewer than ``min_users``
    distinct customers are left out too.
    """
    if level not in CATEGORY_LEVELS:
        raise RecsightError(f"unknown category level {level!r}: use one of {', '.join(CATEGORY_LEVELS)}")
    key = f"nullif(trim({schema.CATEGORY}), '')"
    if level == "top":
        key = f"nullif(trim(split_part({schema.CATEGORY}, $separator, 1)), '')"
    return _ranking(con, flt, key, "category", by, limit, min_users,
                    extra={"separator": schema.CATEGORY_SEPARATOR} if level == "top" else None)


def top_brands(
    con: duckdb.DuckDBPyConnection,
    flt: OverviewFilter = OverviewFilter(),
    *,
    by: str = "events",
    limit: int = 10,
    min_users: int = 1,
) -> pd.DataFrame:
    """The leading brands; columns brand, events, purchases, revenue, users (see top_categories)."""
    return _ranking(con, flt, f"nullif(trim({schema.BRAND}), '')", "brand", by, limit, min_users)


def segment_breakdown(
    con: duckdb.DuckDBPyConnection, flt: OverviewFilter = OverviewFilter(), *, k: int,
) -> SegmentBreakdown:
    """RFM segment sizes with each segment's activity in the filtered date range.

    Columns: segment, customers (size as of the profile build), share (of all profiled
    customers), active (customers with an event in the range), events and revenue in the range.
    Segments with fewer than k customers are dropped and counted in ``suppressed``; where fewer
    than k of a segment's customers were active in the range, active, events and revenue are
    None, because they would describe too few people. The segment filter is ignored here: the
    chart shows every segment and the page highlights the selected one.
    """
    if not profiles_available(con):
        raise RecsightError("customer segments are not available yet: run `python cli.py ingest` to build profiles")
    where, params = _where(OverviewFilter(flt.start, flt.end, None))
    params.update(_money_params())
    frame = con.execute(f"""
        WITH f AS ({_filtered_events(where)}),
        act AS (
            SELECT {schema.USER_ID}, count(*) AS events, coalesce(sum(value), 0) AS revenue
            FROM f GROUP BY ALL
        )
        SELECT p.{profiles.RFM_SEGMENT} AS segment,
               count(*) AS customers,
               count(act.{schema.USER_ID}) AS active,
               coalesce(sum(act.events), 0) AS events,
               coalesce(sum(act.revenue), 0) AS revenue
        FROM {profiles.USER_PROFILES} AS p
        LEFT JOIN act ON act.{schema.USER_ID} = p.{schema.USER_ID}
        GROUP BY ALL""", params).df()
    # The share is of the customers shown: a share of all customers would let total minus the
    # shown sizes reveal the exact size of a suppressed segment.
    shown = frame[frame["customers"] >= k].copy()
    total = int(shown["customers"].sum())
    shown["share"] = shown["customers"] / total if total else 0.0
    quiet = shown["active"] < k
    shown["events"] = shown["events"].astype("float64")
    shown.loc[quiet, ["active", "events", "revenue"]] = None
    order = {name: i for i, name in enumerate(_segment_order(dict(zip(shown["segment"], shown["customers"]))))}
    shown = shown.sort_values("segment", key=lambda s: s.map(order)).reset_index(drop=True)
    columns = ["segment", "customers", "share", "active", "events", "revenue"]
    return SegmentBreakdown(shown[columns], suppressed=int(len(frame) - len(shown)))


# --------------------------------------------------------------------------- helpers


def _parse_day(value: str | date | None, which: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise RecsightError(f"bad {which} date {str(value)[:40]!r}: use YYYY-MM-DD") from None


def _where(flt: OverviewFilter) -> tuple[str, dict[str, Any]]:
    """The WHERE conditions on events aliased ``e``, and their parameters."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if flt.start is not None:
        clauses.append(f"e.{schema.TS} >= $start")
        params["start"] = datetime.combine(flt.start, datetime.min.time())
    if flt.end is not None:
        clauses.append(f"e.{schema.TS} < $end")
        params["end"] = datetime.combine(flt.end + timedelta(days=1), datetime.min.time())
    if flt.segment is not None:
        clauses.append(
            f"e.{schema.USER_ID} IN (SELECT {schema.USER_ID} FROM {profiles.USER_PROFILES} "
            f"WHERE {profiles.RFM_SEGMENT} = $segment)"
        )
        params["segment"] = flt.segment
    return " AND ".join(clauses), params


def _filtered_events(where: str) -> str:
    """The filtered events joined to their item, with a signed money ``value``.

    ``value`` is +price*|qty| for a purchase, -price*|qty| for a return and NULL otherwise (the
    profiles' revenue rule); bind :func:`_money_params` with it.
    """
    return f"""
        SELECT e.{schema.USER_ID}, e.{schema.ITEM_ID}, e.{schema.EVENT_TYPE}, e.{schema.TS},
               i.{schema.CATEGORY}, i.{schema.BRAND},
               CASE WHEN e.{schema.EVENT_TYPE} = $purchase THEN 1
                    WHEN e.{schema.EVENT_TYPE} = $ret THEN -1 END
               * coalesce(e.{schema.PRICE}, i.{schema.PRICE}) * abs(coalesce(e.{schema.QUANTITY}, 1)) AS value
        FROM {schema.EVENTS} AS e LEFT JOIN {schema.ITEMS} AS i ON i.{schema.ITEM_ID} = e.{schema.ITEM_ID}
        {('WHERE ' + where) if where else ''}"""


def _money_params() -> dict[str, str]:
    return {"purchase": schema.PURCHASE, "ret": schema.RETURN}


def _ranking(
    con: duckdb.DuckDBPyConnection,
    flt: OverviewFilter,
    key_sql: str,
    name: str,
    by: str,
    limit: int,
    min_users: int,
    extra: dict[str, Any] | None = None,
) -> pd.DataFrame:
    if by not in _RANK_BY:
        raise RecsightError(f"unknown ranking {by!r}: use one of {', '.join(_RANK_BY)}")
    if not 1 <= int(limit) <= _MAX_LIMIT:
        raise RecsightError(f"limit must be between 1 and {_MAX_LIMIT}, got {limit}")
    where, params = _where(flt)
    params.update(extra or {})
    params.update(_money_params(), limit=int(limit), min_users=int(min_users))
    frame = con.execute(f"""
        WITH f AS ({_filtered_events(where)})
        SELECT {key_sql} AS {name},
               count(*) AS events,
               count(*) FILTER (WHERE {schema.EVENT_TYPE} = $purchase) AS purchases,
               coalesce(sum(value), 0) AS revenue,
               count(DISTINCT {schema.USER_ID}) AS users
        FROM f
        GROUP BY 1
        HAVING {name} IS NOT NULL AND users >= $min_users
        ORDER BY {by} DESC, {name}
        LIMIT $limit""", params).df()
    return frame.astype({"events": "int64", "purchases": "int64", "users": "int64", "revenue": "float64"})


def _segment_order(sizes: dict[str, int]) -> list[str]:
    """Known segments in their canonical order, then any others by name."""
    known = [name for name in profiles.SEGMENTS if name in sizes]
    return known + sorted(name for name in sizes if name not in profiles.SEGMENTS)
