"""Profiles of customers with live events, without rebuilding anyone else's (issue 14, item 3).

``user_profiles`` is built as of the snapshot (ingest, compaction, ``refresh_profiles``); a customer
with events in the live segment has moved since. Every aggregate of a profile row (counts per event
type, events, sessions, first/last activity, recency, purchase days, net spend, conversion, price
bands, favourite categories and brands) depends on that customer's events and the catalogue only,
so :func:`live_profiles` recomputes the rows of a few customers by running the one profile query
(:func:`analytics.profile_build.build_profiles`, i.e. :mod:`analytics.user_profiles`) over their
events alone: snapshot and live, as the connection sees them. The result equals those customers'
rows in a full rebuild as of the same time, at the cost of their events plus one catalogue pass.

The R/F/M scores and the segment (:data:`RANKED_COLUMNS`) rank a customer against every other, so
they are computed by the build's own scoring step (:func:`analytics.user_profiles.rfm_scores_sql`)
over the fresh measures of the customers asked for together with the stored measures of everybody
else in ``user_profiles`` (their frequency and net spend; their recency recomputed from their last
purchase as of the same ``as_of``, as a rebuild recomputes everyone's). They equal a full rebuild's
when, as the profile card and the tests use it:

- ``as_of`` is the rebuild's (None for both: just after the newest event, snapshot or live);
- ``user_profiles`` is current with the snapshot's events (ingest and compaction keep it so);
- every customer with live events is among those asked for. One left out is ranked with their
  snapshot measures, so the others' scores are then those of a rebuild in which that customer's
  live events had not happened yet (off by at most that customer's move).

A customer's first purchase therefore shows in the card's segment at once (leaving the browsers).
The live overlay shows nothing for the customers not asked for: their rows stay the last build's
until the next compaction. In that rebuild their scores may shift, as the changed customers' new
measures move past theirs and every first purchase adds one to the count of buyers each rank is a
share of; the move of every recency to the newer ``as_of`` is the same for everyone and by itself
changes no rank.

On demand, not materialised at every refresh: the profile card (:mod:`analytics.profile_card`) is
the one reader, and one customer's row costs a query over that customer's events plus a ranking
pass over ``user_profiles``; computing rows for every changed customer at each refresh would put
that cost on the request path of recommendations for cards nobody asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import duckdb

from analytics import profiles as p
from analytics import schema as s
from analytics.profile_build import build_profiles, resolve_as_of
from analytics.user_profiles import recency_days_sql, rfm_scores_sql, rfm_segment_sql

__all__ = ["LIVE_USER_PROFILES", "RANKED_COLUMNS", "live_profiles", "has_live_events"]

log = logging.getLogger(__name__)

LIVE_USER_PROFILES = "live_user_profiles"  # the TEMP table :func:`live_profiles` writes
RANKED_COLUMNS = (p.R_SCORE, p.F_SCORE, p.M_SCORE, p.RFM_SEGMENT)  # ranked against every customer
_MEASURES = (p.LAST_PURCHASE, p.RECENCY_DAYS, p.FREQUENCY, p.MONETARY)  # what the ranking reads
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
    rank these rows among the shop's ``user_profiles`` (see the module docstring for when they
    equal a rebuild's); NULL when the shop's profiles were never built.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_EVENTS} AS SELECT * FROM {events_table} "
                f"WHERE {s.USER_ID} IN (SELECT unnest(?::VARCHAR[]))", [list(user_ids)])
    cutoff = resolve_as_of(con, events_table, as_of)
    try:
        build_profiles(con, cutoff, events_table=_EVENTS, user_table=_ROWS, item_table=None, temporary=True)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_EVENTS}")
    try:
        _rank(con, user_ids, cutoff, out)
    except duckdb.CatalogException:  # profiles never built: nobody to rank against
        nulls = ", ".join(f"NULL AS {c}" for c in RANKED_COLUMNS)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT * REPLACE ({nulls}) FROM {_ROWS}")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_ROWS}")
    return out


def _rank(con: duckdb.DuckDBPyConnection, user_ids: Sequence[str], as_of: datetime | None, out: str) -> None:
    """Write ``out``: the fresh rows of :data:`_ROWS` with their ranked columns scored among every
    customer, the others by their stored measures (recency recomputed as of ``as_of``, which is
    what a rebuild does for a customer whose events did not change)."""
    fresh = ", ".join(_MEASURES)
    stored = ", ".join(recency_days_sql(p.LAST_PURCHASE) if c == p.RECENCY_DAYS else c for c in _MEASURES)
    ranked = ", ".join(f"ranked.{c} AS {c}" for c in RANKED_COLUMNS)
    scores = ", ".join((p.R_SCORE, p.F_SCORE, p.M_SCORE))
    con.execute(f"""
CREATE OR REPLACE TEMP TABLE {out} AS
WITH measured AS (
    SELECT {s.USER_ID}, {fresh} FROM {_ROWS}
    UNION ALL
    SELECT {s.USER_ID}, {stored} FROM {p.USER_PROFILES}
    WHERE {s.USER_ID} NOT IN (SELECT unnest($users::VARCHAR[]))
),
scored AS ({rfm_scores_sql("measured")}),
ranked AS (SELECT {s.USER_ID}, {scores}, {rfm_segment_sql()} AS {p.RFM_SEGMENT} FROM scored)
SELECT live.* REPLACE ({ranked}) FROM {_ROWS} AS live JOIN ranked USING ({s.USER_ID})
""", {"users": list(user_ids), "as_of": as_of})
