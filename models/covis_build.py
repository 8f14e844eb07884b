"""The co-visitation weights of a large history, computed in buckets of customers (issue 19).

:func:`models.candidates.covis_weights_sql` pairs every two items a customer touched within the
window, and the per-customer variant then keeps one row per (customer, src, dst): at 10M events
that is about 257M pair rows with VARCHAR ids, and the build ran out of memory (past 16 GiB; with
DuckDB's memory_limit at 8GB it failed). The weights are integer sums over customers, so they can be
computed for disjoint groups of customers and added: a customer's pairs all fall in one bucket
(``hash(user_id) % K``), so the per-customer DISTINCT is exact within a bucket, and integer sums
add up exactly (the result equals the one-pass build row for row). The passes run on INTEGER codes
of items and customers, decoded once at the end. Each bucket runs the same SQL (the one definition
of the weights) over its slice of the sequence table; a small shop is one bucket and runs that SQL
over the sequence table itself, as before.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping

import duckdb

from analytics import schema as s

__all__ = ["BUCKET_ROWS", "bucket_count", "build_weights"]

log = logging.getLogger(__name__)

# Sequence rows per bucket: a bucket's per-customer pairs (about 34 per row with the default
# window) are held at once. Measured (build_index, peak RSS): the 1M-event shop (750k rows) took
# 4.3 GiB in one pass, 1.5 GiB in 2 buckets, 1.2 GiB in 3, no slower; the 10M shop (7.6M rows,
# 16 buckets) 126 s and 6.0 GiB under memory_limit 8GB, where one pass failed. Small shops: 1 bucket.
BUCKET_ROWS = 500_000


def bucket_count(con: duckdb.DuckDBPyConnection, seq: str) -> int:
    """How many customer buckets the sequence table ``seq`` is split into (1 for a small shop)."""
    rows = con.execute(f"SELECT count(*) FROM {seq}").fetchone()[0]
    return max(1, math.ceil(rows / BUCKET_ROWS))


def build_weights(
    con: duckdb.DuckDBPyConnection, seq: str, weights_sql: Mapping[str, Callable[[str], str]]
) -> None:
    """Into each TEMP table named in ``weights_sql``, the weights (src, dst, wi) that its function's
    SQL computes over a sequence table, summed over customer buckets of ``seq``.

    Each function gets a table name and returns SQL that reads its ``user_id``, ``item_id`` and
    ``pos`` and adds up integer ``wi`` per (src, dst) over customers (as
    :func:`models.candidates.covis_weights_sql` does): then the sum over buckets is the one-pass result.
    """
    k = bucket_count(con, seq)
    if k == 1:
        for table, sql in weights_sql.items():
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {sql(seq)}")
        return
    log.info("co-visitation weights in %d customer buckets", k)
    codes, coded, part = f"{seq}_item_codes", f"{seq}_coded", f"{seq}_bucket"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {codes} AS
        SELECT {s.ITEM_ID}, row_number() OVER (ORDER BY {s.ITEM_ID})::INTEGER AS code
        FROM (SELECT DISTINCT {s.ITEM_ID} FROM {seq})"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {coded} AS
        SELECT (hash(q.{s.USER_ID}) % {k})::INTEGER AS bucket,
               dense_rank() OVER (ORDER BY q.{s.USER_ID})::INTEGER AS {s.USER_ID},
               c.code AS {s.ITEM_ID}, q.pos::INTEGER AS pos
        FROM {seq} q JOIN {codes} c USING ({s.ITEM_ID})"""
    )
    sums = {table: f"{table}_buckets" for table in weights_sql}
    for acc in sums.values():
        con.execute(f"CREATE OR REPLACE TEMP TABLE {acc} (src INTEGER, dst INTEGER, wi BIGINT)")
    for b in range(k):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {part} AS "
                    f"SELECT {s.USER_ID}, {s.ITEM_ID}, pos FROM {coded} WHERE bucket = {b}")
        for table, sql in weights_sql.items():
            con.execute(f"INSERT INTO {sums[table]} SELECT src, dst, wi FROM ({sql(part)})")
    con.execute(f"DROP TABLE {part}")
    con.execute(f"DROP TABLE {coded}")
    for table, acc in sums.items():
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {table} AS
            SELECT f.{s.ITEM_ID} AS src, t.{s.ITEM_ID} AS dst, a.wi
            FROM (SELECT src, dst, sum(wi)::BIGINT AS wi FROM {acc} GROUP BY ALL) a
            JOIN {codes} f ON f.code = a.src JOIN {codes} t ON t.code = a.dst"""
        )
        con.execute(f"DROP TABLE {acc}")
    con.execute(f"DROP TABLE {codes}")
