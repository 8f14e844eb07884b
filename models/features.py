"""User x item features for the ranker, and the one registry of their names and human labels.

Every feature is computed from a stage's history table only (the profiles are built as of the
stage's cutoff), so a feature row never holds anything from the window it is asked to predict.
The registry (:data:`FEATURES`) is what explanations and the dashboard read: each feature's
``label`` is the wording an agent reads out ("Affinity to the item's brand").

Three parts, so serving one user reuses the batch SQL:

- :func:`build_item_table` — item-level statistics of a history (profiles' item stats plus the
  candidate index's popularity); built once per history and saved with the model;
- :func:`build_user_tables` — per-user profile, brand/category shares and recency, for a set of users;
- :func:`assemble` — joins candidates, items and users into the feature frame.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from analytics import profiles as prof
from analytics import schema as s
from analytics.profile_build import build_profiles
from models.candidates import DEFAULT_COVIS, CandidateIndex

__all__ = [
    "FeatureSpec", "FEATURES", "ATTENTION_SCORE", "UNITS", "feature_names", "feature_spec", "label_of",
    "plain_label_of", "value_words", "is_ranker_feature",
    "build_item_table", "build_user_tables", "rfm_segments", "assemble", "AS_OF",
]

log = logging.getLogger(__name__)

ATTENTION_SCORE = "attention_score"
AS_OF = "as_of"  # the per-user cutoff column of a users table (build_user_tables(own_as_of=True))
_CUTOFF = "feature_cutoff"  # each event row's cutoff in the user-event work table


# How a feature's value reads to a person (:func:`value_words`); "weight" and "score" values are
# model-internal magnitudes with no unit a shopper knows, so their value is not shown at all.
UNITS = ("weight", "score", "share", "count", "rank", "steps", "days", "ratio", "trend", "rate", "flag")


@dataclass(frozen=True)
class FeatureSpec:
    """One ranker feature: its column name, its labels, a group, and what it measures.

    ``label`` is the analyst's name for it (the Model page, global importance); ``plain`` is the
    same thing in words a support agent can read aloud to the customer ("you", no jargon), which
    every explanation of one customer's item shows; ``unit`` says how its value reads.
    """

    name: str
    label: str
    group: str
    description: str
    temporal_only: bool = False  # needs real timestamps (meaningless for order-only data)
    plain: str = ""
    unit: str = "weight"


_VARIANT_WORDS = {
    "next": ("bought or viewed right after", "after"),
    "prev": ("bought or viewed right before", "before"),
    "near": ("bought or viewed by the same customers as", "near"),
}
# Plain words per co-visitation variant: (sum, psum, max, nsrc, the items of one earlier visit)
_VARIANT_PLAIN = {
    "next": ("Shoppers often pick it right after the items you looked at recently",
             "Share of shoppers who go on to it from your recent items",
             "How strongly one of your recent items leads to it",
             "How many of your recent items lead to it",
             "Shoppers pick it right after the items of your {visit}"),
    "prev": ("Shoppers often pick it right before the items you looked at recently",
             "Share of shoppers who come from it to your recent items",
             "How strongly it leads to one of your recent items",
             "How many of your recent items it leads to",
             "Shoppers pick it right before the items of your {visit}"),
    "near": ("Shoppers who looked at your recent items also looked at it",
             "Share of those shoppers who also looked at it",
             "How closely it goes with one of your recent items",
             "How many of your recent items go with it",
             "It goes with the items of your {visit}"),
}
_VISITS = {1: "last visit", 2: "second-to-last visit", 3: "third-to-last visit"}


def _covis_specs() -> list[FeatureSpec]:
    specs = []
    for covis in DEFAULT_COVIS:
        words, short = _VARIANT_WORDS[covis.name]
        total, share, strongest, sources, visit = _VARIANT_PLAIN[covis.name]
        group = "co-visitation"
        specs += [
            FeatureSpec(f"{covis.name}_sum", f"Often {words} your recent items", group,
                        f"co-visitation ({short}, {covis.window} steps) from the recent items, "
                        "recent steps weigh more", plain=total),
            FeatureSpec(f"{covis.name}_psum", f"Share of shoppers' next steps ({short}) from your recent items", group,
                        "as above with each source item's weights normalised to sum to 1", plain=share),
            FeatureSpec(f"{covis.name}_max", f"Strongest link ({short}) to one of your recent items", group,
                        "largest co-visitation weight from any recent item", plain=strongest),
            FeatureSpec(f"{covis.name}_nsrc", f"How many of your recent items link to it ({short})", group,
                        "number of recent items with a co-visitation link to the candidate", plain=sources,
                        unit="count"),
        ]
        specs += [
            FeatureSpec(f"{covis.name}_s{step}", f"Link ({short}) to your {_ordinal(step)} most recent step", group,
                        f"co-visitation weight from the items of the step {step} back only",
                        plain=visit.format(visit=_VISITS[step]))
            for step in (1, 2, 3)
        ]
    return specs


def _ordinal(n: int) -> str:
    return {1: "", 2: "2nd", 3: "3rd"}.get(n, f"{n}th").strip() or "very"


FEATURES: tuple[FeatureSpec, ...] = (
    *_covis_specs(),
    FeatureSpec("cand_rank", "Rank among the shortlisted items", "co-visitation",
                "position in the merged candidate list (1 = strongest evidence)",
                plain="How high it came among the items first picked out for you", unit="rank"),
    FeatureSpec("pop_rank", "Popularity rank among shoppers' latest picks", "popularity",
                "rank of the item by how many customers picked it in their latest steps",
                plain="How popular it is with shoppers lately", unit="rank"),
    FeatureSpec("item_users", "Number of customers who picked the item", "popularity",
                "distinct customers with any event on the item",
                plain="How many shoppers have looked at it", unit="count"),
    FeatureSpec("item_recent_users", "Customers who picked it in their latest steps", "popularity",
                "distinct customers with the item in their last 3 steps",
                plain="How many shoppers looked at it on their latest visits", unit="count"),
    FeatureSpec("item_purchases", "Times the item was bought", "popularity", "purchase events on the item",
                plain="How often it has been bought", unit="count"),
    FeatureSpec("item_conversion", "Item's view-to-purchase rate", "item", "purchases / views of the item",
                temporal_only=True, plain="How often a look at it ends in a purchase", unit="rate"),
    FeatureSpec("item_trend_7d", "Item's popularity trend this week", "popularity",
                "(events in the last 7 days + 1) / (events in the 7 days before + 1)", temporal_only=True,
                plain="Whether interest in it is rising this week", unit="trend"),
    FeatureSpec("item_events_7d", "Item's activity in the last 7 days", "popularity",
                "events on the item in the last 7 days", temporal_only=True,
                plain="How much shoppers looked at it this week", unit="count"),
    FeatureSpec("item_age_days", "Days since the item first appeared", "item",
                "days from the item's first event to the cutoff", temporal_only=True,
                plain="How long it has been in the shop", unit="days"),
    FeatureSpec("brand_share", "Affinity to the item's brand", "affinity",
                "share of the customer's (relevance-weighted) activity on the item's brand",
                plain="How much of your shopping is this brand", unit="share"),
    FeatureSpec("category_share", "Affinity to the item's category", "affinity",
                "share of the customer's activity in the item's category",
                plain="How much of your shopping is this category", unit="share"),
    FeatureSpec("root_share", "Affinity to the item's department", "affinity",
                "share of the customer's activity in the item's top-level category",
                plain="How much of your shopping is this department", unit="share"),
    FeatureSpec("brand_steps", "Steps since the customer last chose this brand", "recency",
                "how many steps back the customer's last event on the item's brand is (empty: never)",
                plain="How many visits ago you last chose this brand", unit="steps"),
    FeatureSpec("category_steps", "Steps since the customer last chose this category", "recency",
                "how many steps back the customer's last event in the item's category is (empty: never)",
                plain="How many visits ago you last chose this category", unit="steps"),
    FeatureSpec("brand_days", "Days since the customer last chose this brand", "recency",
                "days from the customer's last event on the item's brand to the cutoff", temporal_only=True,
                plain="How long ago you last chose this brand", unit="days"),
    FeatureSpec("category_days", "Days since the customer last chose this category", "recency",
                "days from the customer's last event in the item's category to the cutoff", temporal_only=True,
                plain="How long ago you last chose this category", unit="days"),
    FeatureSpec("same_brand_last", "Same brand as the customer's last item", "affinity",
                "1 if the item's brand is the brand of an item of the customer's last step",
                plain="Same brand as your last item", unit="flag"),
    FeatureSpec("same_category_last", "Same category as the customer's last item", "affinity",
                "1 if the item's category is the category of an item of the customer's last step",
                plain="Same category as your last item", unit="flag"),
    FeatureSpec("price_ratio", "Price against the customer's usual price", "price",
                "item price / median price the customer paid or viewed (empty without prices)",
                plain="Its price against what you usually pay", unit="ratio"),
    FeatureSpec("user_events", "Customer's number of events", "customer", "events in the customer's history",
                plain="How much you have shopped with us", unit="count"),
    FeatureSpec("user_steps", "Customer's number of visits", "customer",
                "distinct steps (timestamps) in the customer's history",
                plain="How many visits you have made", unit="count"),
    FeatureSpec("user_days_inactive", "Days since the customer's last activity", "customer",
                "days from the customer's last event to the cutoff", temporal_only=True,
                plain="How long since your last visit", unit="days"),
    FeatureSpec(ATTENTION_SCORE, "Deep-interest score from the customer's recent behaviour", "attention",
                "logit of the target-attention (DIN) network over the last behaviours",
                plain="What your recent browsing says you like", unit="score"),
)

_BY_NAME = {spec.name: spec for spec in FEATURES}


def feature_spec(name: str) -> FeatureSpec:
    """The registry entry of a feature column."""
    return _BY_NAME[name]


def label_of(name: str) -> str:
    """The analyst's label of a feature column (the Model page shows this, never the column name)."""
    return _BY_NAME[name].label


def is_ranker_feature(name: str) -> bool:
    """Whether ``name`` is a column of this registry (search features have a registry of their own)."""
    return name in _BY_NAME


def plain_label_of(name: str) -> str:
    """The words an agent reads aloud for a feature column (every explanation of one item)."""
    return _BY_NAME[name].plain


def value_words(name: str, value: float | None) -> str | None:
    """A feature's value as a person reads it ("42 %", "3 visits ago", "yes", "1.3 times"), or
    None where it has no meaning outside the model (a co-visitation weight, the network's score)
    or the customer has no data for it."""
    if value is None or value != value:  # NaN: no data for this customer and item
        return None
    unit, v = _BY_NAME[name].unit, float(value)
    if unit == "share" or unit == "rate":
        return f"{v:.0%}"
    if unit == "count":
        return f"{v:,.0f}"
    if unit == "rank":
        return f"#{v:,.0f}"
    if unit == "steps":
        return "this visit" if v <= 0 else f"{v:,.0f} visit{'s' if round(v) != 1 else ''} ago"
    if unit == "days":
        return "today" if v < 1 else f"{v:,.0f} day{'s' if round(v) != 1 else ''}"
    if unit == "ratio":
        return f"{v:.1f} times"
    if unit == "trend":
        return "rising" if v > 1.05 else ("falling" if v < 0.95 else "steady")
    if unit == "flag":
        return "yes" if v >= 0.5 else "no"
    return None


def feature_names(temporal: bool, with_attention: bool) -> list[str]:
    """The ranker's columns for a protocol, in registry order."""
    return [
        f.name for f in FEATURES
        if (temporal or not f.temporal_only) and (with_attention or f.name != ATTENTION_SCORE)
    ]


def build_item_table(
    con: duckdb.DuckDBPyConnection, history: str, index: CandidateIndex, as_of: datetime | None, out: str
) -> str:
    """Item-level features of ``history`` as of ``as_of`` (profiles' item stats + popularity)."""
    build_profiles(con, _as_of(con, history, as_of), events_table=history,
                   user_table=None, item_table=f"{out}_stats", temporary=True)
    cutoff = _as_of(con, history, as_of)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {out} AS
        SELECT st.{s.ITEM_ID}, st.{s.CATEGORY}, st.{prof.ROOT_CATEGORY} AS root, st.{s.BRAND}, st.{s.PRICE},
               st.{prof.UNIQUE_USERS} AS item_users,
               coalesce(p.n_recent, 0) AS item_recent_users,
               st.{prof.COUNT_COLUMNS[s.PURCHASE]} AS item_purchases,
               st.{prof.CONVERSION} AS item_conversion,
               st.{prof.TREND_7D} AS item_trend_7d,
               st.{prof.N_EVENTS_7D} AS item_events_7d,
               (epoch_us(?::TIMESTAMP) - epoch_us(st.{s.FIRST_SEEN})) / 86400e6 AS item_age_days
        FROM {out}_stats st LEFT JOIN {index.popular} p USING ({s.ITEM_ID})""",
        [cutoff],
    )
    con.execute(f"DROP TABLE {out}_stats")
    return out


def _as_of(con: duckdb.DuckDBPyConnection, history: str, as_of: datetime | None) -> datetime:
    if as_of is not None:
        return as_of
    last = con.execute(f"SELECT max({s.TS}) FROM {history}").fetchone()[0]
    return (last or datetime(1970, 1, 1)) + timedelta(microseconds=1)


def rfm_segments(con: duckdb.DuckDBPyConnection, history: str, users: str, as_of: datetime | None) -> dict[str, str]:
    """Each user's RFM segment among the users of table ``users`` (the profile build's rule, its
    scores ranked within this set), for the per-segment tables of the evaluation and the global
    view. Kept apart from :func:`build_user_tables` because ranking needs no segment and a
    request for one customer should not pay for the full profile build."""
    cutoff = _as_of(con, history, as_of)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE seg_events AS
        SELECT h.* FROM {history} h WHERE h.{s.USER_ID} IN (SELECT {s.USER_ID} FROM {users})"""
    )
    build_profiles(con, cutoff, events_table="seg_events", user_table="seg_profile", item_table=None, temporary=True)
    rows = con.execute(f"SELECT {s.USER_ID}, {prof.RFM_SEGMENT} FROM seg_profile").fetchall()
    con.execute("DROP TABLE seg_profile")
    con.execute("DROP TABLE seg_events")
    return dict(rows)


def build_user_tables(
    con: duckdb.DuckDBPyConnection, history: str, seq: str, users: str, as_of: datetime | None, out: str,
    *, own_as_of: bool = False,
) -> None:
    """Per-user features: ``{out}_profile`` and ``{out}_affinity`` (per brand/category/root).

    ``seq`` is the step table of :func:`models.candidates.build_sequences` for these users.
    ``own_as_of``: the ``users`` table (one row per user) has an ``as_of`` column, each user's
    cutoff (None there: just after that user's newest event), used instead of ``as_of``. Why:
    live serving ranks several customers in one pass (:mod:`models.serving`), and each customer's
    features are computed as of their own newest event, as ranking them alone does.
    """
    user_events = f"{out}_events"
    if own_as_of:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {user_events} AS
            SELECT h.*, coalesce(u.{AS_OF}, max(h.{s.TS}) OVER (PARTITION BY h.{s.USER_ID})
                                  + INTERVAL 1 MICROSECOND) AS {_CUTOFF}
            FROM {history} h JOIN {users} u USING ({s.USER_ID})"""
        )
    else:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {user_events} AS
            SELECT h.*, ?::TIMESTAMP AS {_CUTOFF} FROM {history} h
            WHERE h.{s.USER_ID} IN (SELECT {s.USER_ID} FROM {users})""",
            [_as_of(con, history, as_of)],
        )
    # The four profile figures the ranker reads, by the rules of analytics.user_profiles (events
    # before the cutoff; an event's own price, else the catalogue's; continuous medians), in one
    # grouped pass: the full profile build also numbers the whole catalogue and ranks every
    # customer's RFM scores, which a request for one customer does not need (it was half its time).
    purchase, view = f"{s.EVENT_TYPE} = '{s.PURCHASE}'", f"{s.EVENT_TYPE} = '{s.VIEW}'"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {out}_profile AS
        WITH ev AS (
            SELECT e.{s.USER_ID}, e.{s.EVENT_TYPE}, e.{s.TS}, e.{_CUTOFF}, coalesce(e.{s.PRICE}, i.{s.PRICE}) AS price
            FROM {user_events} e LEFT JOIN {s.ITEMS} i USING ({s.ITEM_ID}) WHERE e.{s.TS} < e.{_CUTOFF}
        ), p AS (
            SELECT {s.USER_ID}, count(*) AS user_events, max({s.TS}) AS last_active, max({_CUTOFF}) AS cutoff,
                   quantile_cont(price, 0.5) FILTER (WHERE {purchase}) AS buy_median,
                   quantile_cont(price, 0.5) FILTER (WHERE {view}) AS view_median
            FROM ev GROUP BY ALL
        )
        SELECT p.{s.USER_ID}, p.user_events, st.user_steps,
               (epoch_us(p.cutoff) - epoch_us(p.last_active)) / 86400e6 AS user_days_inactive,
               coalesce(p.buy_median, p.view_median) AS user_price
        FROM p
        LEFT JOIN (SELECT {s.USER_ID}, max(pos) AS user_steps FROM {seq} GROUP BY ALL) st USING ({s.USER_ID})"""
    )
    grade = " ".join(f"WHEN '{e}' THEN {g}" for e, g in s.RELEVANCE.items())
    sep = s.CATEGORY_SEPARATOR.replace("'", "''")
    # Shares weigh events by relevance (a purchase says more than a view); recency in steps and days.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {out}_affinity AS
        WITH ev AS (
            SELECT e.{s.USER_ID}, e.{s.TS}, e.{_CUTOFF}, CASE e.{s.EVENT_TYPE} {grade} ELSE 0 END AS w,
                   i.{s.BRAND} AS brand, i.{s.CATEGORY} AS category, split_part(i.{s.CATEGORY}, '{sep}', 1) AS root
            FROM {user_events} e LEFT JOIN {s.ITEMS} i USING ({s.ITEM_ID})
        ), keyed AS (
            SELECT {s.USER_ID}, {s.TS}, {_CUTOFF}, w, 'b' AS kind, brand AS key FROM ev WHERE brand IS NOT NULL
            UNION ALL SELECT {s.USER_ID}, {s.TS}, {_CUTOFF}, w, 'c', category FROM ev WHERE category IS NOT NULL
            UNION ALL SELECT {s.USER_ID}, {s.TS}, {_CUTOFF}, w, 'r', root FROM ev WHERE root IS NOT NULL AND root <> ''
        ), steps AS (
            SELECT sq.{s.USER_ID}, 'b' AS kind, i.{s.BRAND} AS key, min(sq.step) AS steps
            FROM {seq} sq JOIN {s.ITEMS} i USING ({s.ITEM_ID}) WHERE i.{s.BRAND} IS NOT NULL GROUP BY ALL
            UNION ALL
            SELECT sq.{s.USER_ID}, 'c', i.{s.CATEGORY}, min(sq.step)
            FROM {seq} sq JOIN {s.ITEMS} i USING ({s.ITEM_ID}) WHERE i.{s.CATEGORY} IS NOT NULL GROUP BY ALL
        ), agg AS (
            SELECT {s.USER_ID}, kind, key, sum(w) AS w,
                   (epoch_us(max({_CUTOFF})) - epoch_us(max({s.TS}))) / 86400e6 AS days
            FROM keyed GROUP BY ALL
        )
        SELECT a.{s.USER_ID}, a.kind, a.key,
               a.w / nullif(sum(a.w) OVER (PARTITION BY a.{s.USER_ID}, a.kind), 0) AS share,
               a.days, st.steps
        FROM agg a LEFT JOIN steps st USING ({s.USER_ID}, kind, key)"""
    )
    con.execute(f"DROP TABLE {user_events}")


def assemble(
    con: duckdb.DuckDBPyConnection, candidates: str, items: str, users: str, seq: str,
    labels: str | None = None,
) -> pd.DataFrame:
    """The feature frame: user_id, item_id, every registry column we can compute, and ``label``.

    ``users`` is the prefix given to :func:`build_user_tables`. The attention score is added by
    the caller (it needs the network); rows are sorted by user then candidate rank.
    """
    covis_cols = ", ".join(
        f"c.{f.name}" for f in FEATURES if f.group == "co-visitation" and f.name != "cand_rank"
    )
    label_join = (
        f"LEFT JOIN {labels} l ON l.{s.USER_ID} = c.{s.USER_ID} AND l.{s.ITEM_ID} = c.{s.ITEM_ID}" if labels else ""
    )
    label_col = "coalesce(l.relevance, 0)" if labels else "0"
    aff = f"{users}_affinity"
    frame = con.execute(
        f"""WITH last_step AS (
            SELECT DISTINCT sq.{s.USER_ID}, i.{s.BRAND}, i.{s.CATEGORY}
            FROM {seq} sq JOIN {s.ITEMS} i USING ({s.ITEM_ID}) WHERE sq.step = 1
        )
        SELECT c.{s.USER_ID}, c.{s.ITEM_ID}, {covis_cols}, c.cand_rank, c.pop_rank,
               it.item_users, it.item_recent_users, it.item_purchases, it.item_conversion,
               it.item_trend_7d, it.item_events_7d, it.item_age_days,
               coalesce(ab.share, 0) AS brand_share, coalesce(ac.share, 0) AS category_share,
               coalesce(ar.share, 0) AS root_share,
               ab.steps AS brand_steps, ac.steps AS category_steps, ab.days AS brand_days, ac.days AS category_days,
               (EXISTS (SELECT 1 FROM last_step ls WHERE ls.{s.USER_ID} = c.{s.USER_ID}
                        AND ls.{s.BRAND} = it.{s.BRAND}))::INT AS same_brand_last,
               (EXISTS (SELECT 1 FROM last_step ls WHERE ls.{s.USER_ID} = c.{s.USER_ID}
                        AND ls.{s.CATEGORY} = it.{s.CATEGORY}))::INT AS same_category_last,
               it.{s.PRICE} / nullif(up.user_price, 0) AS price_ratio,
               up.user_events, up.user_steps, up.user_days_inactive,
               {label_col} AS label
        FROM {candidates} c
        LEFT JOIN {items} it ON it.{s.ITEM_ID} = c.{s.ITEM_ID}
        LEFT JOIN {users}_profile up ON up.{s.USER_ID} = c.{s.USER_ID}
        LEFT JOIN {aff} ab ON ab.{s.USER_ID} = c.{s.USER_ID} AND ab.kind = 'b' AND ab.key = it.{s.BRAND}
        LEFT JOIN {aff} ac ON ac.{s.USER_ID} = c.{s.USER_ID} AND ac.kind = 'c' AND ac.key = it.{s.CATEGORY}
        LEFT JOIN {aff} ar ON ar.{s.USER_ID} = c.{s.USER_ID} AND ar.kind = 'r' AND ar.key = it.root
        {label_join}
        ORDER BY c.{s.USER_ID}, c.cand_rank"""
    ).df()
    numeric = frame.columns.difference([s.USER_ID, s.ITEM_ID])
    frame[numeric] = frame[numeric].astype(np.float64)
    return frame
