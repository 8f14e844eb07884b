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

Privacy: this page shows aggregates only, and k-anonymity holds per figure, not just per
selection (:mod:`dashboard.k_anonymity`). :func:`resolve_filter` refuses a segment or a selection
of fewer than k customers; then every aggregate takes ``k`` and hides each number computed from
1 to k-1 customers: a KPI, a funnel stage, a day or week of activity, a category, brand or
segment row (purchases and revenue count their buyers, not the row's active customers). Rows
of fewer than k customers are left out; hidden values are missing (None / NaN).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

import duckdb
import pandas as pd

from analytics import profiles, schema
from dashboard.k_anonymity import hide, hide_kpis
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


def kpis(con: duckdb.DuckDBPyConnection, flt: OverviewFilter = OverviewFilter(), *, k: int) -> dict[str, Any]:
    """Headline numbers for the filtered events.

    Keys: users, buyers, items (items with an event), catalogue_items (the whole catalogue),
    events, views, purchases, revenue, conversion (purchases / views or None) and buyer_share
    (buyers / users or None); each None when it describes 1 to k-1 customers, and ``hidden``
    naming those (``k_anonymity.hide_kpis``).
    """
    where, params = _where(flt)
    params.update(_money_params(), view=schema.VIEW)
    row = con.execute(f"""
        WITH f AS ({_filtered_events(where)})
        SELECT count(DISTINCT {schema.USER_ID}),
               count(DISTINCT {schema.USER_ID}) FILTER (WHERE {schema.EVENT_TYPE} = $purchase),
               count(DISTINCT {schema.USER_ID}) FILTER (WHERE {schema.EVENT_TYPE} IN ($purchase, $ret)),
               count(DISTINCT {schema.USER_ID}) FILTER (WHERE {schema.EVENT_TYPE} = $view),
               count(DISTINCT {schema.ITEM_ID}),
               count(*),
               count(*) FILTER (WHERE {schema.EVENT_TYPE} = $view),
               count(*) FILTER (WHERE {schema.EVENT_TYPE} = $purchase),
               coalesce(sum(value), 0)
        FROM f""", params).fetchone()
    users, buyers, payers, viewers, items, events, views, purchases, revenue = row
    catalogue = con.execute(f"SELECT count(*) FROM {schema.ITEMS}").fetchone()[0]
    return hide_kpis({
        "users": users, "buyers": buyers, "payers": payers, "viewers": viewers, "items": items,
        "catalogue_items": catalogue, "events": events, "views": views, "purchases": purchases,
        "revenue": float(revenue), "conversion": purchases / views if views else None,
        "buyer_share": buyers / users if users else None,
    }, k)


def funnel(con: duckdb.DuckDBPyConnection, flt: OverviewFilter = OverviewFilter(), *, k: int) -> pd.DataFrame:
    """Events and distinct customers at each funnel stage (view, click, cart, purchase).

    Every stage is listed, with zeros where a shop records no such events (Online Retail has
    purchases only), so the chart always shows the same four steps; a stage of 1 to k-1
    customers has both numbers missing.
    """
    where, params = _where(flt)
    params["stages"] = list(FUNNEL_STAGES)
    counts = con.execute(f"""
        SELECT {schema.EVENT_TYPE} AS stage, count(*) AS events, count(DISTINCT {schema.USER_ID}) AS users
        FROM {schema.EVENTS} AS e
        WHERE {schema.EVENT_TYPE} IN (SELECT unnest($stages)) {('AND ' + where) if where else ''}
        GROUP BY ALL""", params).df().set_index("stage")
    frame = counts.reindex(list(FUNNEL_STAGES)).fillna(0).astype("int64").rename_axis("stage").reset_index()
    return hide(frame, {"users": ("events", "users")}, k)


def activity_over_time(
    con: duckdb.DuckDBPyConnection, flt: OverviewFilter = OverviewFilter(), freq: str = "day", *, k: int,
) -> pd.DataFrame:
    """Events, purchases, revenue and active customers per day or week (weeks start on Monday).

    Periods without events inside the filtered span are listed with zeros, so a quiet day shows
    as a dip rather than being bridged by the line. A period of 1 to k-1 active customers has
    every number missing; one with 1 to k-1 buyers (or customers who bought or returned) has
    its purchases (or revenue) missing.
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
               count(DISTINCT {schema.USER_ID}) AS users,
               {_BUYERS_SQL}
        FROM f GROUP BY ALL ORDER BY period""", params).df()
    if frame.empty:
        return frame.drop(columns=["buyers", "payers"])
    frame["period"] = pd.to_datetime(frame["period"])
    full = pd.date_range(frame["period"].min(), frame["period"].max(), freq="D" if freq == "day" else "W-MON")
    frame = frame.set_index("period").reindex(full, fill_value=0).rename_axis("period").reset_index()
    frame = frame.astype({"events": "int64", "purchases": "int64", "users": "int64", "revenue": "float64"})
    return _hide_money(frame, k, {"users": ("events", "purchases", "revenue", "users")})


def top_categories(
    con: duckdb.DuckDBPyConnection,
    flt: OverviewFilter = OverviewFilter(),
    *,
    level: str = "top",
    by: str = "events",
    limit: int = 10,
    k: int,
) -> pd.DataFrame:
    """The leading categories: ``level`` "top" groups by the first part of the path, "full" by
    the whole path "A > B > C". Columns: category, events, purchases, revenue, users.

    Events on items without a category are left out; groups with fewer than ``k`` distinct
    customers are left out too, and a group's purchases (revenue) are missing when 1 to k-1 of
    its customers bought (or returned). Ranked by revenue or purchases, groups whose ranked
    value is hidden are left out, since their place in the ranking would give it away.
    """
    if level not in CATEGORY_LEVELS:
        raise RecsightError(f"unknown category level {level!r}: use one of {', '.join(CATEGORY_LEVELS)}")
    key = f"nullif(trim({schema.CATEGORY}), '')"
    if level == "top":
        key = f"nullif(trim(split_part({schema.CATEGORY}, $separator, 1)), '')"
    return _ranking(con, flt, key, "category", by, limit, k,
                    extra={"separator": schema.CATEGORY_SEPARATOR} if level == "top" else None)


def top_brands(
    con: duckdb.DuckDBPyConnection,
    flt: OverviewFilter = OverviewFilter(),
    *,
    by: str = "events",
    limit: int = 10,
    k: int,
) -> pd.DataFrame:
    """The leading brands; columns brand, events, purchases, revenue, users (see top_categories)."""
    return _ranking(con, flt, f"nullif(trim({schema.BRAND}), '')", "brand", by, limit, k)


def segment_breakdown(
    con: duckdb.DuckDBPyConnection, flt: OverviewFilter = OverviewFilter(), *, k: int,
) -> SegmentBreakdown:
    """RFM segment sizes with each segment's activity in the filtered date range.

    Columns: segment, customers (size as of the profile build), share (of all profiled
    customers), active (customers with an event in the range), events and revenue in the range.
    Segments with fewer than k customers are dropped and counted in ``suppressed``; where fewer
    than k of a segment's customers were active in the range, active, events and revenue are
    None, because they would describe too few people, and so is revenue where 1 to k-1 of them
    bought or returned something. The segment filter is ignored here: the
    chart shows every segment and the page highlights the selected one.
    """
    if not profiles_available(con):
        raise RecsightError("customer segments are not available yet: run `python cli.py ingest` to build profiles")
    where, params = _where(OverviewFilter(flt.start, flt.end, None))
    params.update(_money_params())
    frame = con.execute(f"""
        WITH f AS ({_filtered_events(where)}),
        act AS (
            SELECT {schema.USER_ID}, count(*) AS events, coalesce(sum(value), 0) AS revenue,
                   bool_or({schema.EVENT_TYPE} IN ($purchase, $ret)) AS paid
            FROM f GROUP BY ALL
        )
        SELECT p.{profiles.RFM_SEGMENT} AS segment,
               count(*) AS customers,
               count(act.{schema.USER_ID}) AS active,
               count(act.{schema.USER_ID}) FILTER (WHERE act.paid) AS payers,
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
    shown = hide(shown, {"payers": ("revenue",)}, k)
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


# Who purchases and revenue are about, per group of filtered events (bind _money_params).
_BUYERS_SQL = (f"count(DISTINCT {schema.USER_ID}) FILTER (WHERE {schema.EVENT_TYPE} = $purchase) AS buyers, "
               f"count(DISTINCT {schema.USER_ID}) FILTER (WHERE {schema.EVENT_TYPE} IN ($purchase, $ret)) AS payers")


def _hide_money(frame: pd.DataFrame, k: int, extra: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """Purchases of 1 to k-1 buyers and revenue of 1 to k-1 buyers or returners hidden (and
    whatever ``extra`` hides); the two counts themselves are not returned."""
    rules = {**(extra or {}), "buyers": ("purchases",), "payers": ("revenue",)}
    return hide(frame, rules, k).drop(columns=["buyers", "payers"])


def _ranking(
    con: duckdb.DuckDBPyConnection,
    flt: OverviewFilter,
    key_sql: str,
    name: str,
    by: str,
    limit: int,
    k: int,
    extra: dict[str, Any] | None = None,
) -> pd.DataFrame:
    if by not in _RANK_BY:
        raise RecsightError(f"unknown ranking {by!r}: use one of {', '.join(_RANK_BY)}")
    if not 1 <= int(limit) <= _MAX_LIMIT:
        raise RecsightError(f"limit must be between 1 and {_MAX_LIMIT}, got {limit}")
    where, params = _where(flt)
    params.update(extra or {})
    params.update(_money_params(), limit=int(limit), k=int(k))
    # Ranked by money, a hidden value must not be ranked either: its place would give it away.
    ranked_count = {"revenue": "payers", "purchases": "buyers"}.get(by)
    shown = f" AND ({ranked_count} = 0 OR {ranked_count} >= $k)" if ranked_count else ""
    frame = con.execute(f"""
        WITH f AS ({_filtered_events(where)})
        SELECT {key_sql} AS {name},
               count(*) AS events,
               count(*) FILTER (WHERE {schema.EVENT_TYPE} = $purchase) AS purchases,
               coalesce(sum(value), 0) AS revenue,
               count(DISTINCT {schema.USER_ID}) AS users,
               {_BUYERS_SQL}
        FROM f
        GROUP BY 1
        HAVING {name} IS NOT NULL AND users >= $k{shown}
        ORDER BY {by} DESC, {name}
        LIMIT $limit""", params).df()
    frame = frame.astype({"events": "int64", "purchases": "int64", "users": "int64", "revenue": "float64"})
    return _hide_money(frame, k)


def _segment_order(sizes: dict[str, int]) -> list[str]:
    """Known segments in their canonical order, then any others by name."""
    known = [name for name in profiles.SEGMENTS if name in sizes]
    return known + sorted(name for name in sizes if name not in profiles.SEGMENTS)
