"""The one profile card: who a customer is to the shop, as of the last profile build or, for a
customer with live events on a connection that sees them, as of their newest event.

The lookup page, the JSON API's ``/profile``, and the reports all show this card. Before, the page
and the explanations each read ``user_profiles`` with their own type and their own rules; one
reader keeps the three from ever disagreeing about the same customer.

:class:`ProfileCard` holds the typed values (the page lays them out); :meth:`ProfileCard.to_dict`
is the JSON shape the API answers and the reports print, whose keys are a published contract
(``service.openapi``'s ``Profile``) and so stay as they are.

On a connection with the live segment attached (the serving connection), a customer with live
events gets the row :func:`analytics.live_profiles.live_profiles` recomputes from their events,
not the stale snapshot row: the same columns, so the card and its JSON do not change shape.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from analytics import profiles as p
from analytics import schema as s
from analytics.live_profiles import has_live_events, live_profiles

__all__ = ["ProfileCard", "profile_card"]

log = logging.getLogger(__name__)

_CARD_COLUMNS = (
    p.RFM_SEGMENT, p.N_EVENTS, p.N_SESSIONS, p.FIRST_ACTIVE, p.LAST_ACTIVE, p.RECENCY_DAYS, p.FREQUENCY,
    p.MONETARY, p.CONVERSION_RATE, p.R_SCORE, p.F_SCORE, p.M_SCORE, p.TOP_CATEGORIES, p.TOP_BRANDS,
    p.VIEW_PRICE_P25, p.VIEW_PRICE_MEDIAN, p.VIEW_PRICE_P75, p.BUY_PRICE_P25, p.BUY_PRICE_MEDIAN, p.BUY_PRICE_P75,
    *p.COUNT_COLUMNS.values(),
)


@dataclass(frozen=True)
class ProfileCard:
    """The profile card of one customer (a pseudonym).

    ``has_profile`` is False for a customer without a row in ``user_profiles`` (a cold start,
    or a shop whose profiles were never built); the counts are then zero and the rest empty.
    ``time_based`` says whether the shop's timestamps are real times: for order-only data
    (leave-one-out shops) recency, purchase days and the last activity mean nothing, so
    :meth:`to_dict` leaves them out (the page shows the card of a temporal shop only).
    """

    user_id: str
    has_profile: bool
    segment: str | None = None
    events: int = 0
    sessions: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # event type -> events, non-zero only
    first_active: datetime | None = None
    last_active: datetime | None = None
    recency_days: float | None = None  # days since the last purchase
    frequency: int = 0  # days with a purchase
    monetary: float | None = None  # net spend; None when prices are unknown
    conversion_rate: float | None = None
    rfm: tuple[int | None, int | None, int | None] = (None, None, None)
    top_categories: list[tuple[str, float]] = field(default_factory=list)  # (name, share), largest first
    top_brands: list[tuple[str, float]] = field(default_factory=list)
    view_prices: tuple[float, float, float] | None = None  # 25th percentile, median, 75th
    buy_prices: tuple[float, float, float] | None = None
    time_based: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The card as the API's ``/profile`` answers it and the reports print it (key order too).

        The price band is the bought prices when there are any, else the viewed ones.
        """
        real_time = self.time_based
        if not self.has_profile:
            return {"user_id": self.user_id, "segment": None, "n_events": 0, "n_purchases": 0,
                    "recency_days": None, "frequency": None, "monetary": None, "favourite_categories": [],
                    "favourite_brands": [], "price_band": None, "time_based": real_time, "last_active": None}
        return {
            "user_id": self.user_id,
            "segment": self.segment,
            "n_events": self.events,
            "n_purchases": self.counts.get(s.PURCHASE, 0),
            "recency_days": self.recency_days if real_time else None,
            "frequency": self.frequency if real_time else None,
            "monetary": self.monetary,
            "favourite_categories": [{s.CATEGORY: name, p.SHARE: share} for name, share in self.top_categories],
            "favourite_brands": [{s.BRAND: name, p.SHARE: share} for name, share in self.top_brands],
            "price_band": self._price_band(),
            "time_based": real_time,
            "last_active": self.last_active if real_time else None,
        }

    def _price_band(self) -> dict[str, Any] | None:
        for basis, band in (("bought", self.buy_prices), ("viewed", self.view_prices)):
            if band is not None:
                low, mid, high = band
                return {"basis": basis, "p25": low, "median": mid, "p75": high}
        return None


def profile_card(con: duckdb.DuckDBPyConnection, user_id: str, time_based: bool = True) -> ProfileCard:
    """The card of ``user_id`` (a pseudonym) from ``user_profiles``, or from the customer's live
    row when ``con`` sees live events of theirs; an empty card without either.

    ``time_based`` is False for order-only shops (see :class:`ProfileCard`); the caller knows it
    from the model's protocol, this module does not read models.
    """
    table = live_profiles(con, [user_id]) if has_live_events(con, user_id) else p.USER_PROFILES
    try:
        row = con.execute(f"SELECT {', '.join(_CARD_COLUMNS)} FROM {table} WHERE {s.USER_ID} = ?",
                          [user_id]).fetchone()
    except duckdb.CatalogException:  # a shop whose profiles were never built
        log.info("no %s table: the profile card of %s is empty", p.USER_PROFILES, user_id)
        row = None
    if row is None:
        return ProfileCard(user_id, has_profile=False, time_based=time_based)
    v = dict(zip(_CARD_COLUMNS, row))
    counts = {event: int(v[column]) for event, column in p.COUNT_COLUMNS.items() if v[column]}
    return ProfileCard(
        user_id=user_id,
        has_profile=True,
        segment=v[p.RFM_SEGMENT],
        events=int(v[p.N_EVENTS] or 0),
        sessions=int(v[p.N_SESSIONS] or 0),
        counts=counts,
        first_active=v[p.FIRST_ACTIVE],
        last_active=v[p.LAST_ACTIVE],
        recency_days=_float(v[p.RECENCY_DAYS]),
        frequency=int(v[p.FREQUENCY] or 0),
        monetary=_float(v[p.MONETARY]),
        conversion_rate=_float(v[p.CONVERSION_RATE]),
        rfm=(v[p.R_SCORE], v[p.F_SCORE], v[p.M_SCORE]),
        top_categories=_shares(v[p.TOP_CATEGORIES], s.CATEGORY),
        top_brands=_shares(v[p.TOP_BRANDS], s.BRAND),
        view_prices=_band(v[p.VIEW_PRICE_P25], v[p.VIEW_PRICE_MEDIAN], v[p.VIEW_PRICE_P75]),
        buy_prices=_band(v[p.BUY_PRICE_P25], v[p.BUY_PRICE_MEDIAN], v[p.BUY_PRICE_P75]),
        time_based=time_based,
    )


def _float(value: Any) -> float | None:
    """A number, or None for NULL and NaN (strict JSON has no NaN)."""
    return None if value is None or value != value else float(value)


def _shares(entries: Any, key: str) -> list[tuple[str, float]]:
    return [(str(entry[key]), float(entry[p.SHARE])) for entry in entries or [] if entry and entry.get(key)]


def _band(low: Any, mid: Any, high: Any) -> tuple[float, float, float] | None:
    values = (_float(low), _float(mid), _float(high))
    if any(x is None for x in values):
        return None
    return values  # type: ignore[return-value]  # checked above: three floats
