"""User profiles and item statistics in DuckDB SQL, computed as of a timestamp.

Every figure is built from the events strictly before ``as_of``, so a model trained on a window
never sees a later event: the engine calls :func:`build_profiles` with its training cutoff, ingest
calls it as of all events inside its own transaction, and :func:`refresh_profiles` rebuilds the
tables of a shop file written some other way.

The SQL is written for speed (10 million events in about 3 s on 2 idle cores, about 4.6 s of CPU,
see ``bench/ingest_profiles.py``): grouped passes with ``count_if``/``FILTER`` aggregates, no
correlated subqueries, no per-event string work, no ``count(DISTINCT)`` (it materialises every
event), and users keyed by a verified-collision-free 64-bit hash of their id in the passes grouped
by (user, something); :func:`_user_sql` and :func:`_user_key` explain the tricks.

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

import logging
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from analytics import schema
from analytics.db import rewriting
from errors import RecsightError

__all__ = [
    "USER_PROFILES", "ITEM_STATS", "USER_PROFILE_COLUMNS", "ITEM_STATS_COLUMNS", "COUNT_COLUMNS", "SEGMENTS",
    "TOP_K", "SHARE",
    "build_profiles", "refresh_profiles",
]

log = logging.getLogger(__name__)

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

_MONEY_TYPE = "DECIMAL(18, 4)"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def build_profiles(
    con: duckdb.DuckDBPyConnection,
    as_of: datetime | None = None,
    *,
    events_table: str = schema.EVENTS,
    user_table: str | None = USER_PROFILES,
    item_table: str | None = ITEM_STATS,
    temporary: bool = False,
) -> None:
    """(Re)create the user-profile and item-stats tables from the events before ``as_of``.

    ``as_of`` None means "now": the last event's time plus one microsecond, so every event counts.
    A timezone-aware ``as_of`` is converted to UTC (event times are stored naive, in UTC).
    ``events_table`` may be a view (the engine passes its training window); ``temporary`` makes
    session-local tables so a training run never touches the shop's own profiles. A table name
    of None skips that table (the user half costs about two thirds of the time).
    """
    for name in (events_table, user_table, item_table):
        if name is not None and not _IDENTIFIER.match(name):
            raise RecsightError(f"bad table name {name!r}: use letters, digits and underscores")
    _require_table(con, events_table)
    _require_table(con, schema.ITEMS)
    cutoff = _resolve_as_of(con, events_table, as_of)
    kind = "TEMP TABLE" if temporary else "TABLE"
    started = time.perf_counter()
    key = _user_key(con, events_table)
    for table, sql in ((user_table, _user_sql), (item_table, _item_sql)):
        if table is not None:
            con.execute(f"CREATE OR REPLACE {kind} {table} AS {sql(events_table, key)}", {"as_of": cutoff})
    log.info("built %s as of %s in %.2f s", " and ".join(t for t in (user_table, item_table) if t),
             cutoff, time.perf_counter() - started)


def refresh_profiles(db_path: Path) -> None:
    """Rebuild the shop's profile tables as of all its events, in one transaction.

    Written through a private copy of the shop file (``analytics.db.rewriting``), so a running
    server neither blocks the rebuild nor sees it half done. ``ingest_paths`` already rebuilds
    the profiles in its own transaction; this is for a store written some other way.
    """
    path = Path(db_path)
    if not path.exists():
        raise RecsightError(f"database {path} does not exist: run `python cli.py ingest` first")
    try:
        with rewriting(path) as rewrite:
            con = rewrite.con
            _require_table(con, schema.EVENTS)
            if not con.execute(f"SELECT 1 FROM {schema.EVENTS} LIMIT 1").fetchall():
                raise RecsightError(f"database {path} has no events: ingest some behaviour data first")
            con.execute("BEGIN TRANSACTION")
            build_profiles(con)
            con.execute("COMMIT")
    except duckdb.Error as exc:
        raise RecsightError(f"cannot build profiles in {path}: {str(exc).strip().splitlines()[0]}") from None


# --------------------------------------------------------------------------- helpers


def _require_table(con: duckdb.DuckDBPyConnection, name: str) -> None:
    try:
        con.execute(f"SELECT * FROM {name} LIMIT 0").fetchall()
    except duckdb.CatalogException:
        raise RecsightError(f"table {name} not found: run `python cli.py ingest` first") from None


def _resolve_as_of(con: duckdb.DuckDBPyConnection, events_table: str, as_of: datetime | None) -> datetime | None:
    if as_of is None:
        last = con.execute(f"SELECT max({schema.TS}) FROM {events_table}").fetchall()[0][0]
        return None if last is None else last + timedelta(microseconds=1)
    if not isinstance(as_of, datetime):
        raise RecsightError(f"as_of must be a datetime, got {type(as_of).__name__}")
    if as_of.tzinfo is not None:
        as_of = as_of.astimezone(timezone.utc).replace(tzinfo=None)
    return as_of


def _user_key(con: duckdb.DuckDBPyConnection, events_table: str) -> str:
    """How the grouped side passes key users: ``hash({})`` where that is exact, else ``{}``.

    User ids are long strings (pseudonyms), and the passes grouped by (user, something) -
    distinct sessions, category weights, distinct users per item - spend much of their time
    hashing and comparing them. A 64-bit hash is a far cheaper key, and it is *exact* whenever
    no two of the shop's user ids share a hash, which this checks on the distinct user ids
    (cheap: grouping by the one string column is fast). Should two ever collide, the plain
    string key is used instead, so the results never depend on the hash.
    """
    e = schema
    unique = con.execute(
        f"SELECT count(*) = count(DISTINCT hash(u)) FROM (SELECT DISTINCT {e.USER_ID} AS u FROM {events_table})"
    ).fetchall()[0][0]
    return "hash({})" if unique else "{}"


def _weight_sql(column: str) -> str:
    """schema.RELEVANCE as a CASE expression; event types without a grade (returns) weigh 0."""
    cases = " ".join(f"WHEN '{event_type}' THEN {grade}" for event_type, grade in schema.RELEVANCE.items())
    return f"CASE {column} {cases} ELSE 0 END"


def _counts_sql(column: str) -> str:
    return ",\n        ".join(
        f"count_if({column} = '{event_type}')::BIGINT AS {name}" for event_type, name in COUNT_COLUMNS.items()
    )


def _clean(column: str) -> str:
    return f"nullif(trim({column}), '')"


def _money_sql(prefix: str, price: str, qty: str, event_type: str) -> str:
    """Net purchase value minus returns (the ``monetary`` / ``revenue`` rule in the module doc).

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


def _money_value(prefix: str) -> str:
    return f"CASE WHEN {prefix}_events = 0 THEN 0.0 ELSE {prefix}_sum::DOUBLE END"


def _score(order: str, partition: str) -> str:
    return f"least(5, 1 + floor(5 * percent_rank() OVER (PARTITION BY {partition} ORDER BY {order})))::INTEGER"


def _items_sql() -> str:
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


def _user_sql(events_table: str, key: str = "{}") -> str:
    """Per-user figures: one grouped pass for counts, money and price bands, two small side passes
    for the distinct counts, and an affinity pass over (user, category-and-brand) weights.

    Speed notes (10M events, 2 cores; every pass is parallel): the event price falls back to the
    catalogue price only for events without one, so priced shops skip that join. The main pass
    groups by the user id itself (DuckDB groups a single dictionary-compressed string column
    fast); the side passes group by (user, something) and key users by ``key`` (see
    :func:`_user_key`), joined back to the main pass at the end. Distinct counts are side
    queries instead of ``count(DISTINCT)`` (which would materialise every event): sessions and
    session-less days in one pass over (user, session id, day if no session id), purchase days
    over purchases only. Affinity weights are summed per (user, category+brand pair), then per
    category, top-level category and brand. For the top three, (weight, name rank) is packed
    into one BIGINT ``weight * M + (M - id)`` (M exceeds every id), so ``max(packed, 3)``
    returns the three heaviest, ties to the alphabetically first name, in one cheap aggregate;
    names are looked up by id afterwards.
    """
    e = schema
    purchase = f"event_type = '{e.PURCHASE}'"
    before = f"{e.TS} < $as_of"
    count_names = ", ".join(COUNT_COLUMNS.values())
    segment = f"""CASE
            WHEN {LAST_PURCHASE} IS NULL THEN '{BROWSERS}'
            WHEN {R_SCORE} >= 4 AND {F_SCORE} >= 4 THEN '{CHAMPIONS}'
            WHEN {R_SCORE} >= 3 AND {F_SCORE} >= 3 THEN '{LOYAL}'
            WHEN {R_SCORE} >= 3 AND {F_SCORE} = 2 THEN '{POTENTIAL}'
            WHEN {R_SCORE} >= 3 THEN '{NEW}'
            WHEN {F_SCORE} >= 3 THEN '{AT_RISK}'
            ELSE '{HIBERNATING}' END"""

    def cols(p: str) -> str:
        return (f"{p}{e.USER_ID} AS user_id, {p}{e.EVENT_TYPE} AS event_type, {p}{e.TS} AS ts, "
                f"abs(coalesce({p}{e.QUANTITY}, 1)) AS qty")

    def shares(kind: str, field: str, name: str) -> str:
        struct_type = f"STRUCT({field} VARCHAR, {SHARE} DOUBLE)[]"
        entry = f"{{'{field}': names.{kind}[names.m - p % names.m], '{SHARE}': (p // names.m) / t.total_{kind}}}"
        return f"coalesce(list_transform(t.top_{kind}, lambda p: {entry}), []::{struct_type}) AS {name}"

    kinds = (("c", "cat_id", "category"), ("r", "root_id", "root"), ("b", "brand_id", "brand"))
    weights = "\n    UNION ALL\n    ".join(
        f"SELECT ua.uk, '{kind}' AS kind, a.{key_id} AS id, sum(ua.w)::BIGINT AS w FROM ua JOIN attrs AS a USING (attr) "
        f"WHERE a.{key_id} IS NOT NULL GROUP BY ALL" for kind, key_id, _ in kinds)
    tops = ",\n        ".join(
        f"max(w * m + (m - id), {TOP_K}) FILTER (WHERE kind = '{kind}') AS top_{kind}, "
        f"sum(w) FILTER (WHERE kind = '{kind}') AS total_{kind}" for kind, _, _ in kinds)
    name_lists = ",\n        ".join(
        f"(SELECT list({name} ORDER BY {key_id}) FROM (SELECT DISTINCT {key_id}, {name} FROM it WHERE {key_id} IS NOT NULL)) "
        f"AS {kind}" for kind, key_id, name in kinds)
    user_key = key.format(e.USER_ID)

    return f"""
WITH it AS ({_items_sql()}),
attrs AS (SELECT DISTINCT attr, cat_id, root_id, brand_id FROM it),
names AS (
    SELECT {name_lists},
        (SELECT coalesce(greatest(max(cat_id), max(root_id), max(brand_id)), 0) + 1 FROM it)::BIGINT AS m
),
ev AS (
    SELECT {cols("")}, {e.PRICE} AS price FROM {events_table} WHERE {before} AND {e.PRICE} IS NOT NULL
    UNION ALL
    SELECT {cols("ev.")}, it.price
    FROM {events_table} AS ev LEFT JOIN it ON it.{e.ITEM_ID} = ev.{e.ITEM_ID}
    WHERE ev.{before} AND ev.{e.PRICE} IS NULL
),
base AS (
    SELECT user_id,
        {_counts_sql("event_type")},
        count(*) AS {N_EVENTS},
        min(ts) AS {FIRST_ACTIVE},
        max(ts) AS {LAST_ACTIVE},
        max(ts) FILTER (WHERE {purchase}) AS {LAST_PURCHASE},
        {_money_sql("money", "price", "qty", "event_type")},
        quantile_cont(price, [0.25, 0.5, 0.75]) FILTER (WHERE event_type = '{e.VIEW}') AS view_q,
        quantile_cont(price, [0.25, 0.5, 0.75]) FILTER (WHERE {purchase}) AS buy_q
    FROM ev GROUP BY user_id
),
sessions AS (
    SELECT uk, count(*) AS n FROM (
        SELECT DISTINCT {user_key} AS uk, {e.SESSION_ID},
            CASE WHEN {e.SESSION_ID} IS NULL THEN {e.TS}::DATE END AS day
        FROM {events_table} WHERE {before}
    ) GROUP BY uk
),
purchase_days AS (
    SELECT uk, count(*) AS n FROM (
        SELECT DISTINCT {user_key} AS uk, {e.TS}::DATE AS day
        FROM {events_table} WHERE {before} AND {e.EVENT_TYPE} = '{e.PURCHASE}'
    ) GROUP BY uk
),
ua AS (
    SELECT {key.format(f"ev.{e.USER_ID}")} AS uk, it.attr, sum({_weight_sql(f"ev.{e.EVENT_TYPE}")})::BIGINT AS w
    FROM {events_table} AS ev JOIN it ON it.{e.ITEM_ID} = ev.{e.ITEM_ID}
    WHERE ev.{before} GROUP BY ALL
    HAVING sum({_weight_sql(f"ev.{e.EVENT_TYPE}")}) > 0
),
weights AS (
    {weights}
),
tops AS (
    SELECT uk,
        {tops}
    FROM weights CROSS JOIN (SELECT m FROM names) GROUP BY uk
),
measured AS (
    SELECT b.*,
        coalesce(s.n, 0) AS {N_SESSIONS},
        coalesce(pd.n, 0) AS {FREQUENCY},
        (epoch_us($as_of::TIMESTAMP) - epoch_us({LAST_PURCHASE})) / 86400e6 AS {RECENCY_DAYS},
        {_money_value("money")} AS {MONETARY}
    FROM (SELECT *, {user_key} AS uk FROM base) AS b
    LEFT JOIN sessions AS s USING (uk)
    LEFT JOIN purchase_days AS pd USING (uk)
),
scored AS (
    SELECT *,
        CASE WHEN {LAST_PURCHASE} IS NOT NULL
            THEN {_score(f"{RECENCY_DAYS} DESC", f"{LAST_PURCHASE} IS NULL")} END AS {R_SCORE},
        CASE WHEN {LAST_PURCHASE} IS NOT NULL
            THEN {_score(FREQUENCY, f"{LAST_PURCHASE} IS NULL")} END AS {F_SCORE},
        CASE WHEN {LAST_PURCHASE} IS NOT NULL AND {MONETARY} IS NOT NULL
            THEN {_score(MONETARY, f"{LAST_PURCHASE} IS NULL, {MONETARY} IS NULL")} END AS {M_SCORE}
    FROM measured
)
SELECT s.user_id AS {e.USER_ID},
    {count_names}, {N_EVENTS}, {N_SESSIONS},
    {FIRST_ACTIVE}, {LAST_ACTIVE}, {LAST_PURCHASE},
    {RECENCY_DAYS}, {FREQUENCY}, {MONETARY},
    CASE WHEN {COUNT_COLUMNS[e.VIEW]} > 0 THEN {COUNT_COLUMNS[e.PURCHASE]} / {COUNT_COLUMNS[e.VIEW]} END
        AS {CONVERSION_RATE},
    view_q[1] AS {VIEW_PRICE_P25}, view_q[2] AS {VIEW_PRICE_MEDIAN}, view_q[3] AS {VIEW_PRICE_P75},
    buy_q[1] AS {BUY_PRICE_P25}, buy_q[2] AS {BUY_PRICE_MEDIAN}, buy_q[3] AS {BUY_PRICE_P75},
    {shares("c", e.CATEGORY, TOP_CATEGORIES)},
    {shares("r", e.CATEGORY, TOP_ROOT_CATEGORIES)},
    {shares("b", e.BRAND, TOP_BRANDS)},
    {R_SCORE}, {F_SCORE}, {M_SCORE},
    {segment} AS {RFM_SEGMENT}
FROM scored AS s LEFT JOIN tops AS t ON t.uk = s.uk CROSS JOIN names
"""


def _item_sql(events_table: str, key: str = "{}") -> str:
    """One grouped pass over the events and a side pass for the distinct users (over (item, user
    key), see :func:`_user_key`; ``count(DISTINCT)`` in the main pass would materialise every
    event first); the catalogue price is applied after grouping (no 10M-row join)."""
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
WITH it AS ({_items_sql()}),
a AS (
    SELECT {e.ITEM_ID},
        {_counts_sql(e.EVENT_TYPE)},
        count(*) AS {N_EVENTS},
        min({e.TS}) AS {e.FIRST_SEEN},
        max({e.TS}) AS {LAST_SEEN},
        {window(7, 0)} AS n7, {window(14, 7)} AS p7,
        {window(30, 0)} AS n30, {window(60, 30)} AS p30,
        {_money_sql("own", e.PRICE, qty, e.EVENT_TYPE)},
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
