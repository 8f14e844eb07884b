"""Candidate generation in DuckDB SQL: co-visitation, popularity and attribute neighbours.

Ranking every catalogue item with the full feature set is too slow, so a cheap first stage picks a
few hundred items per user and the ranker orders only those (items outside the set rank last:
their misses count as misses). The set's recall is the ranker's ceiling, so the sources are broad:

- **co-visitation** (several variants, :class:`Covis`): item pairs a user touched within a few
  steps of each other, forward ("what comes next"), backward, and a wide symmetric window
  counted once per user (classic item-to-item collaborative filtering). A user's last
  ``n_recent`` steps seed it, each step weighted ``decay ** (step - 1)``;
- **attributes**: the most popular items of the brands and categories of the user's recent items;
- **popularity**: the most popular items among users' latest steps.

Positions are *steps*: events at the same timestamp (one basket, one invoice) share a step, and
a run of repeated events on one item counts once, so a burst of views does not push the rest of
the history out of the window.

The item-to-item tables depend only on the history table, so they are built once per history
(:func:`build_index`) and saved with the model for serving; the per-user part
(:func:`generate`) runs for all users in batch or for one user at request time, with the same SQL.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import duckdb

from analytics import schema as s
from errors import RecsightError
from models.covis_build import build_weights

__all__ = [
    "Covis", "CandidateConfig", "CandidateIndex", "DEFAULT_COVIS",
    "build_sequences", "sequences_sql", "build_index", "generate", "popularity_ranking", "covisit_ranking",
    "covis_weights_sql", "covis_top_sql", "WEIGHTS_SUFFIX",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Covis:
    """One co-visitation variant: which neighbours of a source item count, and how much."""

    name: str
    direction: str  # "next" (dst after src), "prev" (dst before src) or "both"
    window: int  # steps
    per_user: bool = False  # count a pair once per user (item-CF) instead of summing 1/distance
    top_n: int = 100  # neighbours kept per source item

    @property
    def offsets(self) -> range:
        if self.direction == "next":
            return range(0, self.window + 1)
        if self.direction == "prev":
            return range(-self.window, 1)
        if self.direction == "both":
            return range(-self.window, self.window + 1)
        raise RecsightError(f"unknown co-visitation direction {self.direction!r}")

    @property
    def unit(self) -> int:
        """Integer weights count in 1/unit: 1 per user, or lcm(1..window) so every 1/distance is whole."""
        return 1 if self.per_user else math.lcm(*range(1, self.window + 1))


# "next" is the classic baseline (items seen next within 3 steps, 1/distance weights).
DEFAULT_COVIS: tuple[Covis, ...] = (
    Covis("next", "next", 3),
    Covis("prev", "prev", 3),
    Covis("near", "both", 20, per_user=True, top_n=50),
)


# Weights of the sources in the merged score that orders (and caps) the candidate set; tuned on
# Amazon Beauty's training stage (recall@200), where they beat reciprocal-rank merging.
DEFAULT_MERGE = {"next": 1.0, "prev": 0.5, "near": 0.5, "popular": 0.1, "brand": 0.01, "category": 0.01}


@dataclass(frozen=True)
class CandidateConfig:
    """Sizes of each source; ``n_candidates`` caps the merged set per user."""

    covis: tuple[Covis, ...] = DEFAULT_COVIS
    n_recent: int = 5  # steps from the end of the history that seed co-visitation
    decay: float = 0.5  # weight of the step r back: decay ** (r - 1)
    n_popular: int = 50
    n_attribute: int = 20  # per brand / category of the user's recent items
    attribute_steps: int = 3  # recent steps whose brands and categories seed attribute candidates
    n_candidates: int = 200
    position_features: int = 3  # per-step co-visitation scores kept for steps 1..n
    merge_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MERGE))


WEIGHTS_SUFFIX = "_w"  # <covis table>_w: that variant's untruncated integer weights (src, dst, wi)
_WEIGHTS_ROW_GROUP = 16_384  # small row groups: a read of a few sources skips the rest by src statistics


@dataclass
class CandidateIndex:
    """The item-level tables built from one history table (names in the working connection).

    Besides the served tables, :func:`build_index` keeps each co-visitation variant's untruncated
    weights (``<table>_w``); :meth:`save` writes them sorted by source, and :meth:`load` leaves them
    on disk (``folder``): the live update (:mod:`models.live_covis`) reads the few sources a batch of
    events touches, never the whole table.
    """

    prefix: str
    config: CandidateConfig
    covis_tables: dict[str, str] = field(default_factory=dict)
    popular: str = ""
    attributes: str = ""
    folder: Path | None = None  # where :meth:`load` read the tables from

    @property
    def tables(self) -> list[str]:
        return [*self.covis_tables.values(), self.popular, self.attributes]

    def weights_file(self, variant: str) -> Path | None:
        """The saved untruncated weights of a co-visitation variant, or None (not loaded from a
        folder, or a version saved before the weights were)."""
        if self.folder is None:
            return None
        path = self.folder / f"{self.covis_tables[variant]}{WEIGHTS_SUFFIX}.parquet"
        return path if path.exists() else None

    def save(self, folder: Path, con: duckdb.DuckDBPyConnection) -> None:
        """Write each table as Parquet into ``folder`` (the caller makes the folder atomic)."""
        folder.mkdir(parents=True, exist_ok=True)
        for table in self.tables:
            con.execute(f"COPY {table} TO '{folder / (table + '.parquet')}' (FORMAT PARQUET)")
        for table in self.covis_tables.values():
            weights = table + WEIGHTS_SUFFIX
            con.execute(f"COPY (SELECT src, dst, wi FROM {weights} ORDER BY src, dst) TO "
                        f"'{folder / (weights + '.parquet')}' (FORMAT PARQUET, ROW_GROUP_SIZE {_WEIGHTS_ROW_GROUP})")

    @classmethod
    def load(cls, folder: Path, con: duckdb.DuckDBPyConnection, prefix: str,
             config: CandidateConfig) -> CandidateIndex:
        """Read tables written by :meth:`save` back into TEMP tables (the weights stay on disk).

        The co-visitation tables get an index on ``src``: a request looks up the neighbours of a
        customer's last few items, and without it every request scans every link (a third of the
        candidate step's time on the demo shop; with it, a lookup of under a millisecond).
        """
        index = _names(prefix, config)
        index.folder = folder
        for table in index.tables:
            path = folder / (table + ".parquet")
            if not path.exists():
                raise RecsightError(f"model artifact is incomplete: {path.name} is missing; retrain")
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM read_parquet('{path}')")
        for table in index.covis_tables.values():
            con.execute(f"CREATE INDEX {table}_by_src ON {table} (src)")
        return index


def _names(prefix: str, config: CandidateConfig) -> CandidateIndex:
    return CandidateIndex(
        prefix=prefix,
        config=config,
        covis_tables={c.name: f"{prefix}_covis_{c.name}" for c in config.covis},
        popular=f"{prefix}_popular",
        attributes=f"{prefix}_item_attributes",
    )


def build_sequences(con: duckdb.DuckDBPyConnection, history: str, out: str, users: str | None = None) -> str:
    """Per user, items by *step* (:func:`sequences_sql`) into the temp table ``out``."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {out} AS {sequences_sql(history, users)}")
    return out


def sequences_sql(history: str, users: str | None = None) -> str:
    """Per user, items by *step*: ``step`` 1 is the last timestamp, ``pos`` counts from the start.

    A run of consecutive events on the same item is one entry (its strongest event type is kept),
    so repeated views neither dominate co-visitation nor push older items out of the window.
    The SQL alone (no connection), so the batch jobs can run it on another engine too
    (:mod:`models.covis_steps`).
    """
    user_filter = f"WHERE {s.USER_ID} IN (SELECT {s.USER_ID} FROM {users})" if users else ""
    return f"""WITH ev AS (
            SELECT {s.USER_ID}, {s.ITEM_ID}, {s.TS},
                   lag({s.ITEM_ID}) OVER w AS prev_item
            FROM {history} {user_filter}
            WINDOW w AS (PARTITION BY {s.USER_ID} ORDER BY {s.TS}, {s.ITEM_ID})
        ), runs AS (
            SELECT {s.USER_ID}, {s.ITEM_ID}, {s.TS} FROM ev
            WHERE prev_item IS NULL OR prev_item <> {s.ITEM_ID}
        ), ranked AS (
            SELECT {s.USER_ID}, {s.ITEM_ID}, {s.TS},
                   dense_rank() OVER (PARTITION BY {s.USER_ID} ORDER BY {s.TS}) AS pos
            FROM runs
        )
        SELECT {s.USER_ID}, {s.ITEM_ID}, {s.TS}, pos,
               max(pos) OVER (PARTITION BY {s.USER_ID}) - pos + 1 AS step
        FROM ranked"""


def build_index(
    con: duckdb.DuckDBPyConnection, history: str, config: CandidateConfig, prefix: str
) -> CandidateIndex:
    """Build the co-visitation, popularity and attribute tables of ``history``."""
    index = _names(prefix, config)
    seq = build_sequences(con, history, f"{prefix}_seq_all")
    # Each variant's untruncated weights into <table>_w (in customer buckets on a large history),
    # then the served top_n into <table>.
    tables = index.covis_tables
    build_weights(con, seq, {tables[c.name] + WEIGHTS_SUFFIX: partial(covis_weights_sql, covis=c)
                             for c in config.covis})
    for covis in config.covis:
        table = tables[covis.name]
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {covis_top_sql(table + WEIGHTS_SUFFIX, covis)}")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {index.popular} AS
        SELECT {s.ITEM_ID},
               count(DISTINCT {s.USER_ID}) AS n_users,
               count(DISTINCT {s.USER_ID}) FILTER (WHERE step <= 3) AS n_recent,
               row_number() OVER (ORDER BY n_recent DESC, n_users DESC, {s.ITEM_ID}) AS pop_rank
        FROM {seq} GROUP BY {s.ITEM_ID}"""
    )
    # Attribute neighbours: items ranked by recent popularity within their brand and category.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {index.attributes} AS
        SELECT p.{s.ITEM_ID}, i.{s.CATEGORY}, i.{s.BRAND},
               CASE WHEN i.{s.BRAND} IS NOT NULL THEN row_number() OVER (
                   PARTITION BY i.{s.BRAND} ORDER BY p.pop_rank) END AS brand_rank,
               CASE WHEN i.{s.CATEGORY} IS NOT NULL THEN row_number() OVER (
                   PARTITION BY i.{s.CATEGORY} ORDER BY p.pop_rank) END AS category_rank
        FROM {index.popular} p LEFT JOIN {s.ITEMS} i USING ({s.ITEM_ID})"""
    )
    con.execute(f"DROP TABLE {seq}")
    return index


def covis_weights_sql(seq: str, covis: Covis) -> str:
    """Untruncated co-visitation weights of the users in the sequence table ``seq``: (src, dst, wi).

    ``wi`` is an integer, the weight in units of ``1 / covis.unit``: a pair ``d`` steps apart adds
    ``unit // d`` (exact, since ``unit`` is a multiple of every distance in the window), a
    per-user variant adds 1 per user having the pair. Integers because the weights are a sum over
    users: a change of some users' histories is then an exact delta
    (``covis_weights(new) - covis_weights(old)``, :mod:`models.live_covis`), and the sums do not
    depend on the order a parallel aggregate adds them in (floats would, in the last bit, and a
    last-bit difference reorders tied neighbours). This one definition serves the batch build and
    the live update.
    """
    offsets = ", ".join(str(d) for d in covis.offsets)
    # The target position is computed before the join, so the join is an equi-join on (user, pos)
    # for every engine: Spark, given ``b.pos = a.pos + o.d``, joined a and b on the user alone.
    pairs = f"""
        SELECT a.{s.USER_ID} AS user_id, a.{s.ITEM_ID} AS src, b.{s.ITEM_ID} AS dst,
               {covis.unit} // greatest(abs(a.d), 1) AS wi
        FROM (SELECT {s.USER_ID}, {s.ITEM_ID}, pos + o.d AS target, o.d
              FROM {seq} CROSS JOIN (SELECT unnest([{offsets}]) AS d) o) a
        JOIN {seq} b ON b.{s.USER_ID} = a.{s.USER_ID} AND b.pos = a.target
        WHERE a.{s.ITEM_ID} <> b.{s.ITEM_ID}"""
    if covis.per_user:
        return (f"SELECT src, dst, count(*)::BIGINT AS wi "
                f"FROM (SELECT DISTINCT user_id, src, dst FROM ({pairs})) GROUP BY ALL")
    return f"SELECT src, dst, sum(wi)::BIGINT AS wi FROM ({pairs}) GROUP BY ALL"


def covis_top_sql(weights: str, covis: Covis) -> str:
    """The served rows (src, dst, w, p) of the untruncated weights table ``weights`` (src, dst, wi):
    each source's ``top_n`` neighbours, ``w`` the weight, ``p`` the share of the source's whole
    co-visitation mass going to dst (comparable across sources). Every source in ``weights`` gets
    its rows from its own weights only, so the rows of some sources can be recomputed alone."""
    return f"""SELECT src, dst, wi::DOUBLE / {covis.unit} AS w,
               wi::DOUBLE / sum(wi) OVER (PARTITION BY src) AS p
        FROM {weights}
        QUALIFY row_number() OVER (PARTITION BY src ORDER BY wi DESC, dst) <= {covis.top_n}"""


def generate(
    con: duckdb.DuckDBPyConnection, index: CandidateIndex, history: str, users: str, out: str
) -> str:
    """Candidates with their source scores for the users in table ``users`` (column user_id).

    Output columns: user_id, item_id, cand_rank (1 = best by the merged sources), for each
    co-visitation variant ``<name>_sum`` (decayed over recent steps), ``<name>_psum`` (same with
    normalised weights), ``<name>_max``, ``<name>_nsrc`` (recent items linking to it) and
    ``<name>_s1..`` (the score from step 1, 2, ... alone), plus ``pop_rank``, ``brand_rank``
    and ``category_rank``. Items already in the user's history are never candidates.
    """
    cfg = index.config
    seq = build_sequences(con, history, f"{out}_seq", users)
    recent = f"{out}_recent"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {recent} AS
        SELECT {s.USER_ID}, {s.ITEM_ID}, min(step) AS step FROM {seq}
        WHERE step <= {cfg.n_recent} GROUP BY ALL"""
    )
    covis_scores = _covis_scores(con, index, recent, f"{out}_covis")
    attr = index.attributes
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {out}_pool AS
        WITH attr_seed AS (
            SELECT DISTINCT r.{s.USER_ID}, a.{s.BRAND}, a.{s.CATEGORY}
            FROM {recent} r JOIN {attr} a USING ({s.ITEM_ID}) WHERE r.step <= {cfg.attribute_steps}
        ), sources AS (
            SELECT {s.USER_ID}, {s.ITEM_ID}, 'v' AS src FROM {covis_scores}
            UNION ALL
            SELECT sd.{s.USER_ID}, a.{s.ITEM_ID}, 'b' FROM attr_seed sd
            JOIN {attr} a ON a.{s.BRAND} = sd.{s.BRAND} AND a.brand_rank <= {cfg.n_attribute}
            UNION ALL
            SELECT sd.{s.USER_ID}, a.{s.ITEM_ID}, 'c' FROM attr_seed sd
            JOIN {attr} a ON a.{s.CATEGORY} = sd.{s.CATEGORY} AND a.category_rank <= {cfg.n_attribute}
            UNION ALL
            SELECT u.{s.USER_ID}, p.{s.ITEM_ID}, 'p' FROM {users} u
            CROSS JOIN (SELECT {s.ITEM_ID} FROM {index.popular} WHERE pop_rank <= {cfg.n_popular}) p
        )
        SELECT {s.USER_ID}, {s.ITEM_ID},
               bool_or(src = 'b') AS brand_source, bool_or(src = 'c') AS category_source
        FROM sources c
        WHERE NOT EXISTS (SELECT 1 FROM {seq} h WHERE h.{s.USER_ID} = c.{s.USER_ID} AND h.{s.ITEM_ID} = c.{s.ITEM_ID})
        GROUP BY ALL"""
    )
    # Merge the sources into one cheap score; the normalised co-visitation weights (shares of each
    # source item's mass) are comparable across variants, popularity and attributes break ties.
    w = cfg.merge_weights
    blend = " + ".join(
        [f"{w.get(c.name, 0.0)} * coalesce(c.{c.name}_psum, 0)" for c in cfg.covis]
        + [f"coalesce({w['popular']} / (10 + p.pop_rank), 0)",  # items new since training have no rank
           f"coalesce({w['brand']} * pool.brand_source::INT / (10 + a.brand_rank), 0)",
           f"coalesce({w['category']} * pool.category_source::INT / (10 + a.category_rank), 0)"]
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {out} AS
        SELECT pool.{s.USER_ID}, pool.{s.ITEM_ID}, c.* EXCLUDE ({s.USER_ID}, {s.ITEM_ID}),
               p.pop_rank, a.brand_rank, a.category_rank, pool.brand_source, pool.category_source,
               row_number() OVER (PARTITION BY pool.{s.USER_ID}
                                  ORDER BY {blend} DESC, pool.{s.ITEM_ID}) AS cand_rank
        FROM {out}_pool pool
        LEFT JOIN {covis_scores} c USING ({s.USER_ID}, {s.ITEM_ID})
        LEFT JOIN {index.popular} p ON p.{s.ITEM_ID} = pool.{s.ITEM_ID}
        LEFT JOIN {attr} a ON a.{s.ITEM_ID} = pool.{s.ITEM_ID}
        QUALIFY cand_rank <= {cfg.n_candidates}
            OR (p.pop_rank IS NULL
                AND row_number() OVER (PARTITION BY pool.{s.USER_ID}, p.pop_rank IS NULL
                                       ORDER BY {blend} DESC, pool.{s.ITEM_ID}) <= {cfg.n_attribute})"""
    )
    # Items new since training (no popularity rank: models.cold_items) keep up to n_attribute
    # places past the cap: the cheap merge score has no live counts for them, so the cap would
    # cut them before the ranker, which scores them from their content and live counts, sees them.
    return out


def _covis_scores(con: duckdb.DuckDBPyConnection, index: CandidateIndex, recent: str, covis_scores: str) -> str:
    """Per (user, candidate): each co-visitation variant's scores from the user's recent items."""
    cfg = index.config
    # One row per (user, candidate, source) then a single pivot: cheaper than a join per variant.
    parts = []
    for i, covis in enumerate(cfg.covis):
        parts.append(
            f"""SELECT r.{s.USER_ID}, c.dst AS {s.ITEM_ID}, {i} AS v, r.step, r.{s.ITEM_ID} AS src, c.w, c.p
                FROM {recent} r JOIN {index.covis_tables[covis.name]} c ON c.src = r.{s.ITEM_ID}"""
        )
    aggregates = []
    for i, covis in enumerate(cfg.covis):
        n = covis.name
        decay = f"pow({cfg.decay}, step - 1)"
        # CASE rather than FILTER: the same values (NULL where no row matches, a count of 0), and
        # cheaper in DuckDB's hash aggregate, which serving runs once per live request.
        aggregates += [
            f"sum(CASE WHEN v = {i} THEN w * {decay} END) AS {n}_sum",
            f"sum(CASE WHEN v = {i} THEN p * {decay} END) AS {n}_psum",
            f"max(CASE WHEN v = {i} THEN w END) AS {n}_max",
            f"count(CASE WHEN v = {i} THEN 1 END) AS {n}_nsrc",
        ]
        aggregates += [
            f"sum(CASE WHEN v = {i} AND step = {step} THEN w END) AS {n}_s{step}"
            for step in range(1, cfg.position_features + 1)
        ]
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {covis_scores} AS
        SELECT {s.USER_ID}, {s.ITEM_ID}, {', '.join(aggregates)}
        FROM ({' UNION ALL '.join(parts)}) GROUP BY ALL"""
    )
    return covis_scores


def popularity_ranking(
    con: duckdb.DuckDBPyConnection, index: CandidateIndex, users: str, seen: str, n: int
) -> dict[str, list[str]]:
    """The popularity baseline: the most popular items among users' latest steps, minus seen ones."""
    popular = [r[0] for r in con.execute(f"SELECT {s.ITEM_ID} FROM {index.popular} ORDER BY pop_rank").fetchall()]
    return _fill({u: [] for u in _users(con, users)}, popular, _seen(con, seen), n)


def covisit_ranking(
    con: duckdb.DuckDBPyConnection, index: CandidateIndex, candidates: str, users: str, seen: str, n: int,
    variant: str = "next",
) -> dict[str, list[str]]:
    """The co-visitation baseline: items by one variant's decayed score from the recent steps.

    Uses every co-visited item of :func:`generate` (before the candidate cap); users with fewer
    than ``n`` co-visited items are filled with popular items, so the baseline is never empty.
    """
    if variant not in index.covis_tables:
        raise RecsightError(f"unknown co-visitation variant {variant!r}")
    rows = con.execute(
        f"""SELECT c.{s.USER_ID}, c.{s.ITEM_ID} FROM {candidates}_covis c
            WHERE c.{variant}_sum IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM {seen} h
                              WHERE h.{s.USER_ID} = c.{s.USER_ID} AND h.{s.ITEM_ID} = c.{s.ITEM_ID})
            QUALIFY row_number() OVER (PARTITION BY c.{s.USER_ID} ORDER BY c.{variant}_sum DESC, c.{s.ITEM_ID}) <= {n}
            ORDER BY c.{s.USER_ID}, c.{variant}_sum DESC, c.{s.ITEM_ID}"""
    ).fetchall()
    ranked: dict[str, list[str]] = {u: [] for u in _users(con, users)}
    for user, item in rows:
        ranked.setdefault(user, []).append(item)
    popular = [r[0] for r in con.execute(f"SELECT {s.ITEM_ID} FROM {index.popular} ORDER BY pop_rank").fetchall()]
    return _fill(ranked, popular, _seen(con, seen), n)


def _users(con: duckdb.DuckDBPyConnection, users: str) -> list[str]:
    return [r[0] for r in con.execute(f"SELECT DISTINCT {s.USER_ID} FROM {users} ORDER BY 1").fetchall()]


def _seen(con: duckdb.DuckDBPyConnection, seen: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for user, item in con.execute(f"SELECT DISTINCT {s.USER_ID}, {s.ITEM_ID} FROM {seen}").fetchall():
        out.setdefault(user, set()).add(item)
    return out


def _fill(ranked: dict[str, list[str]], popular: list[str], seen: dict[str, set[str]], n: int) -> dict[str, list[str]]:
    for user, items in ranked.items():
        if len(items) >= n:
            continue
        taken = seen.get(user, set()) | set(items)
        for item in popular:
            if len(items) >= n:
                break
            if item not in taken:
                items.append(item)
    return ranked
