"""The ``user_profiles`` query: one row per user, as of ``$as_of`` (columns and their meaning in
:mod:`analytics.profiles`).

The R/F/M scores and the segment are a step of their own (:func:`rfm_scores_sql`,
:func:`rfm_segment_sql`, over any table of measures): they rank a customer against every other,
and :mod:`analytics.live_profiles` ranks a few customers' fresh measures against the stored ones
of everybody else with the very same SQL, so its scores equal a full build's.
"""

from __future__ import annotations

from analytics import schema
from analytics.profile_sql import counts_sql, items_sql, money_sql, money_value
from analytics.profiles import (
    AT_RISK,
    BROWSERS,
    BUY_PRICE_MEDIAN,
    BUY_PRICE_P25,
    BUY_PRICE_P75,
    CHAMPIONS,
    CONVERSION_RATE,
    COUNT_COLUMNS,
    F_SCORE,
    FIRST_ACTIVE,
    FREQUENCY,
    HIBERNATING,
    LAST_ACTIVE,
    LAST_PURCHASE,
    LOYAL,
    M_SCORE,
    MONETARY,
    N_EVENTS,
    N_SESSIONS,
    NEW,
    POTENTIAL,
    R_SCORE,
    RECENCY_DAYS,
    RFM_SEGMENT,
    SHARE,
    TOP_BRANDS,
    TOP_CATEGORIES,
    TOP_K,
    TOP_ROOT_CATEGORIES,
    VIEW_PRICE_MEDIAN,
    VIEW_PRICE_P25,
    VIEW_PRICE_P75,
)

__all__ = ["user_profiles_sql", "recency_days_sql", "rfm_scores_sql", "rfm_segment_sql"]


def _weight_sql(column: str) -> str:
    """schema.RELEVANCE as a CASE expression; event types without a grade (returns) weigh 0."""
    cases = " ".join(f"WHEN '{event_type}' THEN {grade}" for event_type, grade in schema.RELEVANCE.items())
    return f"CASE {column} {cases} ELSE 0 END"


def _score(order: str, partition: str) -> str:
    return f"least(5, 1 + floor(5 * percent_rank() OVER (PARTITION BY {partition} ORDER BY {order})))::INTEGER"


def recency_days_sql(last_purchase: str) -> str:
    """SQL: fractional days from ``last_purchase`` to ``$as_of`` (NULL without a purchase); the one
    definition, so recency recomputed from a stored ``last_purchase`` equals a build's.

    ``date_diff('microsecond', ...)`` rather than a difference of ``epoch_us``: the same exact
    microsecond count, and a function Spark knows too (the batch jobs run this SQL transpiled,
    :mod:`analytics.spark_sql`)."""
    return f"date_diff('microsecond', {last_purchase}, $as_of::TIMESTAMP) / 86400e6"


def rfm_scores_sql(measured: str) -> str:
    """SQL: every row of ``measured`` (a table, view or CTE with the measure columns
    ``last_purchase``, ``recency_days``, ``frequency`` and ``monetary``) plus ``r_score``,
    ``f_score`` and ``m_score``: quintiles of the percent rank among the rows of ``measured`` that
    bought (and, for M, have a known ``monetary``). Ranks are relative, so ``measured`` must hold
    every customer a score should be ranked against."""
    return f"""SELECT *,
        CASE WHEN {LAST_PURCHASE} IS NOT NULL
            THEN {_score(f"{RECENCY_DAYS} DESC", f"{LAST_PURCHASE} IS NULL")} END AS {R_SCORE},
        CASE WHEN {LAST_PURCHASE} IS NOT NULL
            THEN {_score(FREQUENCY, f"{LAST_PURCHASE} IS NULL")} END AS {F_SCORE},
        CASE WHEN {LAST_PURCHASE} IS NOT NULL AND {MONETARY} IS NOT NULL
            THEN {_score(MONETARY, f"{LAST_PURCHASE} IS NULL, {MONETARY} IS NULL")} END AS {M_SCORE}
    FROM {measured}"""


def rfm_segment_sql() -> str:
    """SQL: the segment (the R-F grid of :mod:`analytics.profiles`) of a row with ``last_purchase``,
    ``r_score`` and ``f_score``."""
    return f"""CASE
            WHEN {LAST_PURCHASE} IS NULL THEN '{BROWSERS}'
            WHEN {R_SCORE} >= 4 AND {F_SCORE} >= 4 THEN '{CHAMPIONS}'
            WHEN {R_SCORE} >= 3 AND {F_SCORE} >= 3 THEN '{LOYAL}'
            WHEN {R_SCORE} >= 3 AND {F_SCORE} = 2 THEN '{POTENTIAL}'
            WHEN {R_SCORE} >= 3 THEN '{NEW}'
            WHEN {F_SCORE} >= 3 THEN '{AT_RISK}'
            ELSE '{HIBERNATING}' END"""


def user_profiles_sql(events_table: str, key: str = "{}") -> str:
    """Per-user figures: one grouped pass for counts, money and price bands, two small side passes
    for the distinct counts, and an affinity pass over (user, category-and-brand) weights.

    Speed notes (10M events, 2 cores; every pass is parallel): the event price falls back to the
    catalogue price only for events without one, so priced shops skip that join. The main pass
    groups by the user id itself (DuckDB groups a single dictionary-compressed string column
    fast); the side passes group by (user, something) and key users by ``key`` (see
    :func:`analytics.profile_build._user_key`), joined back to the main pass at the end. Distinct
    counts are side queries instead of ``count(DISTINCT)`` (which would materialise every event):
    sessions and session-less days in one pass over (user, session id, day if no session id),
    purchase days over purchases only. Affinity weights are summed per (user, category+brand pair), then per
    category, top-level category and brand. For the top three, (weight, name rank) is packed
    into one BIGINT ``weight * M + (M - id)`` (M exceeds every id), so ``max(packed, 3)``
    returns the three heaviest, ties to the alphabetically first name, in one cheap aggregate;
    names are looked up by id afterwards.
    """
    e = schema
    purchase = f"event_type = '{e.PURCHASE}'"
    before = f"{e.TS} < $as_of"
    count_names = ", ".join(COUNT_COLUMNS.values())

    def cols(p: str) -> str:
        return (f"{p}{e.USER_ID} AS user_id, {p}{e.EVENT_TYPE} AS event_type, {p}{e.TS} AS ts, "
                f"abs(coalesce({p}{e.QUANTITY}, 1)) AS qty")

    def shares(kind: str, field: str, name: str) -> str:
        struct_type = f"STRUCT({field} VARCHAR, {SHARE} DOUBLE)[]"
        entry = f"{{'{field}': names.{kind}[names.m - p % names.m], '{SHARE}': (p // names.m) / t.total_{kind}}}"
        return f"coalesce(list_transform(t.top_{kind}, lambda p: {entry}), []::{struct_type}) AS {name}"

    kinds = (("c", "cat_id", "category"), ("r", "root_id", "root"), ("b", "brand_id", "brand"))
    weights = "\n    UNION ALL\n    ".join(
        f"SELECT ua.uk, '{kind}' AS kind, a.{key_id} AS id, sum(ua.w)::BIGINT AS w "
        f"FROM ua JOIN attrs AS a USING (attr) "
        f"WHERE a.{key_id} IS NOT NULL GROUP BY ALL" for kind, key_id, _ in kinds)
    tops = ",\n        ".join(
        f"max(w * m + (m - id), {TOP_K}) FILTER (WHERE kind = '{kind}') AS top_{kind}, "
        f"sum(w) FILTER (WHERE kind = '{kind}') AS total_{kind}" for kind, _, _ in kinds)
    name_lists = ",\n        ".join(
        f"(SELECT list({name} ORDER BY {key_id}) "
        f"FROM (SELECT DISTINCT {key_id}, {name} FROM it WHERE {key_id} IS NOT NULL)) "
        f"AS {kind}" for kind, key_id, name in kinds)
    user_key = key.format(e.USER_ID)

    return f"""
WITH it AS ({items_sql()}),
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
        {counts_sql("event_type")},
        count(*) AS {N_EVENTS},
        min(ts) AS {FIRST_ACTIVE},
        max(ts) AS {LAST_ACTIVE},
        max(ts) FILTER (WHERE {purchase}) AS {LAST_PURCHASE},
        {money_sql("money", "price", "qty", "event_type")},
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
        {recency_days_sql(LAST_PURCHASE)} AS {RECENCY_DAYS},
        {money_value("money")} AS {MONETARY}
    FROM (SELECT *, {user_key} AS uk FROM base) AS b
    LEFT JOIN sessions AS s USING (uk)
    LEFT JOIN purchase_days AS pd USING (uk)
),
scored AS ({rfm_scores_sql("measured")})
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
    {rfm_segment_sql()} AS {RFM_SEGMENT}
FROM scored AS s LEFT JOIN tops AS t ON t.uk = s.uk CROSS JOIN names
"""
