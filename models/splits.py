"""Evaluation protocols: which events a model may see, and which events it must predict.

A split is two *stages*, each a history table (events a model may read, the contract's columns)
and a labels table (user_id, item_id, relevance):

- ``train``: the ranker learns to predict ``labels`` from features computed on ``history``;
- ``test``: the held-out evaluation, one step later in time.

Everything downstream (co-visitation, profiles, features, the attention model) reads only a
stage's history table, so the test window cannot leak into anything a model is trained or scored
on. Both protocols of DESIGN.md:

- **leave-one-out** (order-only data, e.g. Amazon review sequences): per user the last event is
  the test target and the second-to-last the ranker's training target; the histories are all but
  the last one / all but the last two events.
- **temporal** (shops with real timestamps): ``T_test = end - window``, ``T_valid = T_test - window``;
  the ranker trains on events before ``T_valid`` with labels in ``[T_valid, T_test)`` graded by
  :data:`analytics.schema.RELEVANCE`; the test history is every event before ``T_test`` and the
  targets are purchases in ``[T_test, end]`` (or, where too few users purchase in the window, every
  graded behaviour, recorded in :attr:`Split.target`).

Items a user already interacted with in a stage's history are never labels: every model excludes
them from its list, so such a label could only ever be a miss for every model alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb

from analytics import schema as s
from errors import RecsightError

__all__ = [
    "LEAVE_ONE_OUT", "TEMPORAL", "PROTOCOLS", "Stage", "Split",
    "detect_protocol", "default_window", "make_split",
]

log = logging.getLogger(__name__)

LEAVE_ONE_OUT = "leave-one-out"
TEMPORAL = "temporal"
PROTOCOLS = (LEAVE_ONE_OUT, TEMPORAL)

# Fewer test users than this with a purchase in the window makes purchase-only metrics noise.
MIN_PURCHASE_USERS = 100
LABEL_COLUMNS = f"{s.USER_ID} VARCHAR, {s.ITEM_ID} VARCHAR, relevance INTEGER"


@dataclass(frozen=True)
class Stage:
    """One (history, labels) pair of table names in the working connection."""

    name: str
    history: str
    labels: str
    as_of: datetime | None  # first instant NOT in the history (temporal), None for leave-one-out


@dataclass(frozen=True)
class Split:
    """The two stages of a protocol plus what the test target is."""

    protocol: str
    train: Stage
    test: Stage
    target: str  # "next item", "purchase" or "any behaviour"
    window: timedelta | None = None


def detect_protocol(con: duckdb.DuckDBPyConnection, events_table: str = s.EVENTS) -> str:
    """Leave-one-out for order-only data, temporal for real timestamps.

    Order-only adapters (Amazon sequences) give every user's history the same synthetic start,
    so most users share the first timestamp; real shops never do.
    """
    n_users, same_start = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE first_ts = (SELECT min({s.TS}) FROM {events_table}))
            FROM (SELECT min({s.TS}) AS first_ts FROM {events_table} GROUP BY {s.USER_ID})"""
    ).fetchone()
    if not n_users:
        raise RecsightError("the database has no events: ingest data before training")
    return LEAVE_ONE_OUT if same_start / n_users > 0.5 else TEMPORAL


def default_window(span: timedelta) -> timedelta:
    """Test window for a temporal split: a month for a year of data, a week for a quarter, else a day."""
    if span >= timedelta(days=300):
        return timedelta(days=30)
    if span >= timedelta(days=60):
        return timedelta(days=7)
    return timedelta(days=1)


def make_split(
    con: duckdb.DuckDBPyConnection,
    protocol: str,
    events_table: str = s.EVENTS,
    *,
    window: timedelta | None = None,
    prefix: str = "split",
) -> Split:
    """Create the stage tables (TEMP, in ``con``) of ``protocol`` over ``events_table``."""
    if protocol == LEAVE_ONE_OUT:
        return _leave_one_out(con, events_table, prefix)
    if protocol == TEMPORAL:
        return _temporal(con, events_table, window, prefix)
    raise RecsightError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")


def _relevance_case(column: str = s.EVENT_TYPE) -> str:
    whens = " ".join(f"WHEN '{event}' THEN {grade}" for event, grade in s.RELEVANCE.items())
    return f"CASE {column} {whens} ELSE 0 END"


def _leave_one_out(con: duckdb.DuckDBPyConnection, events_table: str, prefix: str) -> Split:
    ordered = f"{prefix}_ordered"
    # Position from the end; ties in ts are broken by item and type so the split is deterministic.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {ordered} AS
            SELECT *, row_number() OVER (PARTITION BY {s.USER_ID}
                                         ORDER BY {s.TS} DESC, {s.ITEM_ID} DESC, {s.EVENT_TYPE} DESC) AS from_end
            FROM {events_table}"""
    )
    columns = ", ".join(s.EVENTS_COLUMNS)
    stages = []
    for name, hold_out in (("train", 2), ("test", 1)):
        history, labels = f"{prefix}_{name}_history", f"{prefix}_{name}_labels"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {history} AS "
                    f"SELECT {columns} FROM {ordered} WHERE from_end > {hold_out}")
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {labels} AS
                SELECT o.{s.USER_ID}, o.{s.ITEM_ID}, greatest({_relevance_case('o.' + s.EVENT_TYPE)}, 1) AS relevance
                FROM {ordered} o
                WHERE o.from_end = {hold_out}
                  AND EXISTS (SELECT 1 FROM {history} h WHERE h.{s.USER_ID} = o.{s.USER_ID})
                  AND NOT EXISTS (SELECT 1 FROM {history} h
                                  WHERE h.{s.USER_ID} = o.{s.USER_ID} AND h.{s.ITEM_ID} = o.{s.ITEM_ID})"""
        )
        stages.append(Stage(name, history, labels, None))
    con.execute(f"DROP TABLE {ordered}")
    _require_labels(con, stages[1], "leave-one-out needs users with at least two events")
    return Split(LEAVE_ONE_OUT, stages[0], stages[1], target="next item")


def _temporal(con: duckdb.DuckDBPyConnection, events_table: str, window: timedelta | None, prefix: str) -> Split:
    # The 1st percentile, not the minimum: a few stray early rows must not stretch the span.
    start, end = con.execute(f"SELECT quantile_disc({s.TS}, 0.01), max({s.TS}) FROM {events_table}").fetchone()
    if start is None:
        raise RecsightError("the database has no events: ingest data before training")
    window = window or default_window(end - start)
    t_test = end - window
    t_valid = t_test - window
    if t_valid <= start:
        raise RecsightError(
            f"the data spans {end - start}, too short for a temporal split with a {window} window"
        )
    columns = ", ".join(s.EVENTS_COLUMNS)
    purchase_users = con.execute(
        f"""SELECT count(DISTINCT {s.USER_ID}) FROM {events_table}
            WHERE {s.TS} >= ? AND {s.EVENT_TYPE} = '{s.PURCHASE}'""",
        [t_test],
    ).fetchone()[0]
    purchase_only = purchase_users >= MIN_PURCHASE_USERS
    if not purchase_only:
        log.warning("only %d users purchase in the test window: the test target is every graded behaviour",
                    purchase_users)
    stages = []
    for name, lo, hi, only_purchases in (("train", t_valid, t_test, False), ("test", t_test, None, purchase_only)):
        history, labels = f"{prefix}_{name}_history", f"{prefix}_{name}_labels"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {history} AS SELECT {columns} FROM {events_table} WHERE {s.TS} < ?",
                    [lo])
        upper = f"AND e.{s.TS} < ?" if hi is not None else ""
        params = [lo] + ([hi] if hi is not None else [])
        type_filter = f"AND e.{s.EVENT_TYPE} = '{s.PURCHASE}'" if only_purchases else ""
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {labels} AS
                SELECT e.{s.USER_ID}, e.{s.ITEM_ID}, max({_relevance_case('e.' + s.EVENT_TYPE)}) AS relevance
                FROM {events_table} e
                WHERE e.{s.TS} >= ? {upper} {type_filter}
                  AND EXISTS (SELECT 1 FROM {history} h WHERE h.{s.USER_ID} = e.{s.USER_ID})
                  AND NOT EXISTS (SELECT 1 FROM {history} h
                                  WHERE h.{s.USER_ID} = e.{s.USER_ID} AND h.{s.ITEM_ID} = e.{s.ITEM_ID})
                GROUP BY ALL
                HAVING max({_relevance_case('e.' + s.EVENT_TYPE)}) > 0""",
            params,
        )
        stages.append(Stage(name, history, labels, lo))
    _require_labels(con, stages[1], f"no known user acts on a new item in the test window after {t_test}")
    _require_labels(con, stages[0], f"no known user acts on a new item in the validation window after {t_valid}")
    target = "purchase" if purchase_only else "any behaviour"
    return Split(TEMPORAL, stages[0], stages[1], target=target, window=window)


def _require_labels(con: duckdb.DuckDBPyConnection, stage: Stage, why: str) -> None:
    if not con.execute(f"SELECT count(*) FROM {stage.labels}").fetchone()[0]:
        raise RecsightError(f"nothing to evaluate in the {stage.name} stage: {why}")
