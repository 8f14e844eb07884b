"""Profiles of customers with live events, without rebuilding anyone else's (issue 14, item 3).

``user_profiles`` is built as of the snapshot (ingest, compaction, ``refresh_profiles``); a customer
with events in the live segment has moved since. Every aggregate of a profile row (counts per event
type, events, sessions, first/last activity, recency, purchase days, net spend, conversion, price
bands, favourite categories and brands) depends on that customer's events and the catalogue only,
so :func:`live_profiles` recomputes the rows of a few customers by running the one profile query
(:func:`analytics.profile_build.build_profiles`, i.e. :mod:`analytics.user_profiles`) over their
events alone: snapshot and live, as the connection sees them. The result equals those customers'
rows in a full rebuild as of the same time, at the cost of their events plus one catalogue pass.

The R/F/M scores and the segment are not aggregates: they rank a customer against every other
customer, and a full rebuild would move everyone's. A live row keeps the values of the last
profile build (None for a customer first seen live) until the next build ranks everyone again;
a customer's first purchase therefore shows in the card's figures at once and in the segment at
the next build.

On demand, not materialised at every refresh: the profile card (:mod:`analytics.profile_card`) is
the one reader, and one customer's row costs a query over that customer's events; computing rows
for every changed customer at each refresh would put that cost on the request path of
recommendations for cards nobody asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb

from analytics import profiles as p
from analytics import schema as s
from analytics.profile_build import build_profiles

__all__ = ["LIVE_USER_PROFILES", "RANKED_COLUMNS", "live_profiles", "has_live_events"]

log = logging.getLogger(__name__)

LIVE_USER_PROFILES = "live_user_profiles"  # the TEMP table :func:`live_profiles` writes
RANKED_COLUMNS = (p.R_SCORE, p.F_SCORE, p.M_SCORE, p.RFM_SEGMENT)  # kept from the last profile build
_EVENTS = "live_profile_events"
_ROWS = "live_profile_rows"


def has_live_events(con: duckdb.DuckDBPyConnection, user_id: str) -> bool:
    """Whether ``con`` has the live segment attached (:func:`analytics.live_read.attach_live`) and
    the customer has events in it; False on a plain snapshot connection."""
    try:
        return con.execute(f"SELECT 1 FROM live_events WHERE {s.USER_ID} = ? LIMIT 1", [user_id]).fetchone() is not None
    except duckdb.CatalogException:
        return False


def live_profiles(con: duckdb.DuckDBPyConnection, user_ids: Sequence[str], *, events_table: str = "all_events",
                  as_of: datetime | None = None, out: str = LIVE_USER_PROFILES) -> str:
    """``user_profiles`` rows of ``user_ids`` recomputed from their events in ``events_table``
    (default: snapshot and live, ``analytics.live_read``'s view), into the TEMP table ``out``
    (same columns). Customers without events there get no row.

    ``as_of`` None is what a full rebuild takes: just after the newest event of ``events_table``
    (so recency is measured from the same instant). The ranked columns (:data:`RANKED_COLUMNS`)
    come from the shop's ``user_profiles`` (see the module docstring).
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_EVENTS} AS SELECT * FROM {events_table} "
                f"WHERE {s.USER_ID} IN (SELECT unnest(?::VARCHAR[]))", [list(user_ids)])
    if as_of is None:
        newest = con.execute(f"SELECT max({s.TS}) FROM {events_table}").fetchone()[0]
        as_of = None if newest is None else newest + timedelta(microseconds=1)
    try:
        build_profiles(con, as_of, events_table=_EVENTS, user_table=_ROWS, item_table=None, temporary=True)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_EVENTS}")
    ranked = ", ".join(f"snap.{c} AS {c}" for c in RANKED_COLUMNS)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT live.* REPLACE ({ranked}) FROM {_ROWS} live "
                    f"LEFT JOIN {p.USER_PROFILES} snap USING ({s.USER_ID})")
    except duckdb.CatalogException:  # profiles never built: nothing ranked yet
        nulls = ", ".join(f"NULL AS {c}" for c in RANKED_COLUMNS)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT * REPLACE ({nulls}) FROM {_ROWS}")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_ROWS}")
    return out
