"""The user-profile and item-stats tables: their names, their columns and what each column means.

Both tables are computed as of a timestamp, from the events strictly before ``as_of``, so a model
trained on a window never sees a later event. :func:`analytics.profile_build.build_profiles` writes
them (the engine calls it with its training cutoff, ingest as of all events inside its own
transaction) and :func:`analytics.profile_build.refresh_profiles` rebuilds the tables of a shop file
written some other way. The SQL is in :mod:`analytics.user_profiles` and :mod:`analytics.item_stats`;
the fragments both share, and how the SQL is made fast, in :mod:`analytics.profile_sql`.

Definitions (the dashboard and the engine rely on these; the constants below name the columns):

* ``n_<event type>`` — events of that type; ``n_events`` — all events.
* ``n_sessions`` — distinct ``session_id`` values; events without a session id count one session
  per calendar day (Amazon and Taobao data have no sessions).
* ``recency_days`` — days (fractional) from the last purchase to ``as_of``; NULL if none.
* ``frequency`` — distinct calendar days with a purchase (works for every source, with or
  without sessions; an invoice split over two sessions on one day is one purchase occasion).
* ``monetary`` — sum of ``price * |quantity|`` (quantity NULL counts as 1) over purchases minus
  the same over returns. The event's own price is used, else the item's catalogue price. 0 when
  there are no purchases or returns; NULL when there are some but no price is known at all
  (Taobao, Amazon); events with an unknown price are left out of the sum. Summed exactly (as
  DECIMAL to 1/10,000), so the figure and the scores built on it never depend on thread timing.
* affinity shares — each event weighs ``schema.RELEVANCE[event_type]`` (returns weigh 0); a
  category's share is the user's weight on items of that category divided by the user's weight on
  all items with a known category (likewise for top-level categories and brands), so the shares
  of all a user's categories sum to 1. ``top3_*`` keep the three largest (ties by name) as a
  list of ``{category|brand, share}`` structs, largest first; empty when nothing is known.
* price band — 25th percentile, median and 75th percentile (linear interpolation) of the prices of
  viewed items and of bought items (per event, event price else catalogue price).
* ``conversion_rate`` — purchases / views; NULL without views.
* RFM — among users with at least one purchase, ``r_score``, ``f_score`` and ``m_score`` are
  quintile scores 1..5 from the percent rank (``1 + floor(5 * percent_rank)``, capped at 5; ties
  share a score): more recent, more frequent, more monetary = higher. ``m_score`` is NULL where
  ``monetary`` is NULL. The segment uses R and F only (the classic R-F grid), so it works for
  shops without prices:

  ============  ==========================
  champions     R >= 4 and F >= 4
  loyal         R >= 3 and F >= 3 (other)
  potential     R >= 3 and F = 2
  new           R >= 3 and F = 1
  at risk       R <= 2 and F >= 3
  hibernating   R <= 2 and F <= 2
  browsers      no purchase before as_of
  ============  ==========================

Per item: counts by event type, ``conversion`` (purchases / views, NULL without views),
``revenue`` (as ``monetary``, per item), ``unique_users``, ``first_seen``/``last_seen``,
``n_events_7d``/``n_events_30d`` (events in the last 7/30 days before ``as_of``) and
``trend_7d``/``trend_30d`` = (events in the last N days + 1) / (events in the N days before + 1):
above 1 is rising. Windows include their start and exclude their end: the last 7 days are
[as_of - 7 days, as_of). Every catalogue item is listed (zero counts when it has no events before
``as_of``: the catalogue has no dates), with its ``category``, ``root_category`` (the first part
of the path), ``brand`` and ``price``; items seen only in events get NULLs there.
Blank categories and brands count as unknown.
"""

from __future__ import annotations

from analytics import schema

__all__ = [
    "USER_PROFILES", "ITEM_STATS", "USER_PROFILE_COLUMNS", "ITEM_STATS_COLUMNS", "COUNT_COLUMNS", "SEGMENTS",
    "TOP_K", "SHARE",
]

USER_PROFILES = "user_profiles"
ITEM_STATS = "item_stats"
TOP_K = 3

# Column names shared by both tables.
COUNT_COLUMNS: dict[str, str] = {event_type: f"n_{event_type}" for event_type in schema.EVENT_TYPES}
N_EVENTS = "n_events"
ROOT_CATEGORY = "root_category"
SHARE = "share"  # struct field beside "category" / "brand" in the top-3 lists

# user_profiles
N_SESSIONS = "n_sessions"
FIRST_ACTIVE = "first_active"
LAST_ACTIVE = "last_active"
LAST_PURCHASE = "last_purchase"
RECENCY_DAYS = "recency_days"
FREQUENCY = "frequency"
MONETARY = "monetary"
CONVERSION_RATE = "conversion_rate"
VIEW_PRICE_P25 = "view_price_p25"
VIEW_PRICE_MEDIAN = "view_price_median"
VIEW_PRICE_P75 = "view_price_p75"
BUY_PRICE_P25 = "buy_price_p25"
BUY_PRICE_MEDIAN = "buy_price_median"
BUY_PRICE_P75 = "buy_price_p75"
TOP_CATEGORIES = "top3_categories"
TOP_ROOT_CATEGORIES = "top3_root_categories"
TOP_BRANDS = "top3_brands"
R_SCORE = "r_score"
F_SCORE = "f_score"
M_SCORE = "m_score"
RFM_SEGMENT = "rfm_segment"

# item_stats
CONVERSION = "conversion"
REVENUE = "revenue"
UNIQUE_USERS = "unique_users"
LAST_SEEN = "last_seen"  # first_seen is schema.FIRST_SEEN
N_EVENTS_7D = "n_events_7d"
N_EVENTS_30D = "n_events_30d"
TREND_7D = "trend_7d"
TREND_30D = "trend_30d"

CHAMPIONS, LOYAL, POTENTIAL, NEW, AT_RISK, HIBERNATING, BROWSERS = SEGMENTS = (
    "champions", "loyal", "potential", "new", "at risk", "hibernating", "browsers",
)

USER_PROFILE_COLUMNS: tuple[str, ...] = (
    schema.USER_ID, *COUNT_COLUMNS.values(), N_EVENTS, N_SESSIONS, FIRST_ACTIVE, LAST_ACTIVE, LAST_PURCHASE,
    RECENCY_DAYS, FREQUENCY, MONETARY, CONVERSION_RATE,
    VIEW_PRICE_P25, VIEW_PRICE_MEDIAN, VIEW_PRICE_P75, BUY_PRICE_P25, BUY_PRICE_MEDIAN, BUY_PRICE_P75,
    TOP_CATEGORIES, TOP_ROOT_CATEGORIES, TOP_BRANDS, R_SCORE, F_SCORE, M_SCORE, RFM_SEGMENT,
)
ITEM_STATS_COLUMNS: tuple[str, ...] = (
    schema.ITEM_ID, schema.CATEGORY, ROOT_CATEGORY, schema.BRAND, schema.PRICE, *COUNT_COLUMNS.values(), N_EVENTS,
    CONVERSION, REVENUE, UNIQUE_USERS, schema.FIRST_SEEN, LAST_SEEN, N_EVENTS_7D, N_EVENTS_30D, TREND_7D, TREND_30D,
)
