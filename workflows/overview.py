"""The shop overview's reads: one short-lived read-only connection per question, a checked filter.

The Overview page asks two kinds of question: what it can offer (the shop's date span, the
segments large enough to show) when it is drawn, and one aggregate per chart when a filter
changes. Each opens its own read-only connection (an ingest may replace the file at any time),
and a database error becomes one line for the page instead of a traceback. The queries and the
privacy rules are :mod:`dashboard.shop_overview`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

import duckdb

from analytics.db import connect_read_only
from dashboard import shop_overview as so
from errors import RecsightError
from settings import Settings

__all__ = ["ShopChoices", "shop_choices", "run_overview_query"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ShopChoices:
    """What the overview's filters can offer: the shop's first and last event day (None for a shop
    without events), the segments with at least k customers, and whether profiles exist."""

    bounds: tuple[date, date] | None
    segments: list[str]
    has_profiles: bool


def shop_choices(settings: Settings) -> ShopChoices:
    """The filters' choices for ``settings``' shop; a RecsightError saying why there are none."""
    try:
        with connect_read_only(settings.db_path) as con:
            so.require_shop(con)
            return ShopChoices(so.date_bounds(con), so.segment_choices(con, settings.k_anonymity),
                               so.profiles_available(con))
    except duckdb.Error as exc:
        log.warning("overview: cannot read %s: %s", settings.db_path, exc)
        raise RecsightError(f"the shop database {settings.db_path} could not be read") from None


def run_overview_query(settings: Settings, start: str | None, end: str | None, segment: str | None,
                       query: Callable[[duckdb.DuckDBPyConnection, so.OverviewFilter], T]) -> T:
    """Open the shop read-only, check the filter (dates, a segment of at least k customers), and
    run ``query`` under it; a RecsightError with one line when the filter or the shop is wrong."""
    try:
        with connect_read_only(settings.db_path) as con:
            so.require_shop(con)
            flt = so.resolve_filter(con, start, end, segment, settings.k_anonymity)
            return query(con, flt)
    except duckdb.Error as exc:
        log.warning("overview query on %s failed: %s", settings.db_path, exc)
        raise RecsightError(f"the shop database {settings.db_path} could not be read") from None
