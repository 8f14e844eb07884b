"""What data a model was trained on, and whether the shop file still descends from it.

A model version records :func:`fingerprint` of the snapshot it was trained on; serving refuses a
model whose fingerprint is not the shop file's, rather than serve it wrong. A compaction, though,
replaces the shop file with one that holds the same data *plus* the folded live events: the model
is still exactly as valid as it was an instant before, when those events were live. So every
compaction records a link of the shop file's *lineage* (``live_lineage``, written in the fold's
own transaction): the fingerprint and folded sequence number before the fold, and after it.

:func:`lineage_seq` walks the links back from the current shop file. A model is recognised only
when an unbroken chain of compactions leads from its snapshot to the current one (each link's
"before" is the previous link's "after", the newest link's "after" is the current fingerprint):
a plain ingest or a restored copy in between breaks the chain, and the model is refused as
before. The sequence number returned is the one the model's snapshot had; events folded after it
are live for that model (:func:`analytics.live_read.attach_live`, ``model_seq``).

Why the analytics layer: the compaction (analytics) writes the fingerprints, and the registry
(models) reads them; both must hash the same way.
"""

from __future__ import annotations

import hashlib

import duckdb

from analytics import schema as S
from analytics.live_sql import LIVE_LINEAGE, has_table

__all__ = ["fingerprint", "lineage_seq"]


def fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """A short hash of the events and items tables' contents (order-independent)."""
    events = con.execute(
        f"""SELECT count(*), min({S.TS})::VARCHAR, max({S.TS})::VARCHAR,
                   sum(hash({S.USER_ID}, {S.ITEM_ID}, {S.EVENT_TYPE}, {S.TS}, {S.QUANTITY},
                            {S.PRICE})::HUGEINT)::VARCHAR
            FROM {S.EVENTS}"""
    ).fetchone()
    items = con.execute(
        f"SELECT count(*), sum(hash({S.ITEM_ID}, {S.CATEGORY}, {S.BRAND}, {S.PRICE})::HUGEINT)::VARCHAR FROM {S.ITEMS}"
    ).fetchone()
    return hashlib.sha256(repr((events, items)).encode()).hexdigest()[:24]


def lineage_seq(con: duckdb.DuckDBPyConnection, model_fingerprint: str, model_seq: int | None,
                current: str | None = None) -> int | None:
    """The folded sequence number of the model's snapshot, when the shop file on ``con`` descends
    from it by compactions only; None otherwise (the model was trained on other data).

    ``model_seq`` is the number the model recorded at training (None for versions written before
    that field: the link's own number is taken). ``current`` is the shop file's fingerprint when
    the caller already has it.
    """
    if not has_table(con, LIVE_LINEAGE):
        return None
    expected = fingerprint(con) if current is None else current
    links = con.execute(f"SELECT last_seq, fingerprint, folded_seq, folded_fingerprint FROM {LIVE_LINEAGE} "
                        "ORDER BY folded_seq DESC, last_seq DESC").fetchall()
    for last_seq, before, _, after in links:
        if after != expected:
            return None  # something other than a compaction changed the shop file here
        if before == model_fingerprint and (model_seq is None or model_seq == last_seq):
            return int(last_seq)
        expected = before
    return None
