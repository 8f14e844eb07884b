"""Validating the events and catalogue rows of the live intake with the ingest's own rules.

Why not a rule set of its own: a batch that arrives as JSON (``POST /api/v1/events``) is made
into the same :class:`~analytics.adapters._sources.Source` a file is read into, over an in-memory
Arrow table, and checked in one SQL pass by the generic format's checks
(:func:`analytics.adapters.generic.event_checks` and the same :func:`check_rows`; for items, the
generic adapter's item staging), so an event the API refuses is one ingest refuses, with the
same reason text. Files given to ``cli.py ingest --append`` are opened with ``open_source`` and go
through the very same functions.

What a live feed needs on top, and why:

- ``event_id``: the client's id of the event, the key that makes re-sending a batch harmless.
  A JSON event must have one; a file row without one gets an id derived from its content (from
  the *pseudonym*, so the id reveals no customer id), so appending the same file twice adds
  nothing, and two identical rows of one file count as one event.
- value types and sizes, checked in Python before anything reaches SQL: a value must be text, a
  number or null (a list, an object or a boolean is ``wrong value type``); text over
  :data:`MAX_TEXT_LENGTH` characters or a number with more than 64 bits is ``value too long``;
  ids (event, customer, item, session) over the customer-id rule's ``MAX_ID_LENGTH`` are
  ``id too long``.
- time: an event more than :data:`MAX_FUTURE` ahead of the server's clock, or before 1970, is no
  real event.

Customer ids are pseudonymised here (``analytics.privacy.pseudonymise``, as ingest does, also in
a reject's text), so nothing after this module ever holds a raw customer id.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from analytics import schema as S
from analytics.adapters import reasons as R
from analytics.adapters._sources import MARKER, Source, check_rows, open_source, sql_str
from analytics.adapters.generic import _stage_items, event_checks  # the generic format's item rules, as is
from analytics.customers import MAX_ID_LENGTH
from analytics.live_segments import KIND_EVENT, KIND_ITEM, KIND_REJECT
from analytics.privacy import pseudonymise

__all__ = [
    "EVENT_ID", "EVENT_FIELDS", "ITEM_FIELDS", "MAX_TEXT_LENGTH", "MAX_FUTURE", "Checked", "Rejected",
    "NOT_AN_OBJECT", "WRONG_TYPE", "VALUE_TOO_LONG", "MISSING_EVENT_ID", "ID_TOO_LONG", "FUTURE_TIMESTAMP",
    "ANCIENT_TIMESTAMP", "check_event_batch", "check_event_file", "check_item_batch", "check_item_file", "scalar_text",
]

EVENT_ID = "event_id"
EVENT_FIELDS = (EVENT_ID, S.USER_ID, S.ITEM_ID, S.EVENT_TYPE, S.TS, S.SESSION_ID, S.QUANTITY, S.PRICE, S.RATING)
ITEM_FIELDS = (S.ITEM_ID, S.TITLE, S.CATEGORY, S.BRAND, S.PRICE)
MAX_TEXT_LENGTH = 1000
MAX_FUTURE = timedelta(days=1)  # clock skew between the shop's servers and this one, generously
_EARLIEST = "1970-01-01"

# Reasons only the intake has (the rest are analytics.adapters.reasons, shared with ingest).
NOT_AN_OBJECT = "not an object"
WRONG_TYPE = "wrong value type"
VALUE_TOO_LONG = "value too long"
MISSING_EVENT_ID = "missing event id"
ID_TOO_LONG = "id too long"
FUTURE_TIMESTAMP = "timestamp in the future"
ANCIENT_TIMESTAMP = "timestamp before 1970"

_EVENTS_REQUIRED = (S.USER_ID, S.ITEM_ID, S.EVENT_TYPE, S.TS)
_ITEMS_REQUIRED = (S.ITEM_ID, S.TITLE, S.CATEGORY)
_IDS = ("event_id", "user_raw", "item_id", "session_id")  # check_rows output names


@dataclass(frozen=True)
class Rejected:
    """One refused event or item: its position in the batch (0-based), the client's id, why
    (and for a catalogue row, its item id as sent, up to the id length bound)."""

    index: int
    event_id: str | None
    reason: str
    item_id: str | None = None


@dataclass(frozen=True)
class Checked:
    """A validated batch: rows in the segment layout (no seq, source, received_at yet) and the
    64-bit hash of each event id (``id_hash``), accepted and rejected rows in input order."""

    rows: pa.Table
    rows_read: int

    def rejected(self) -> list[Rejected]:
        rejects = self.rows.filter(pc.equal(self.rows.column("kind"), KIND_REJECT))
        lines, ids, reasons, items = (rejects.column(c).to_pylist() for c in ("line", "event_id", "reason", "item_id"))
        return [Rejected(line - 1, eid, why, item) for line, eid, why, item in zip(lines, ids, reasons, items)]


# --------------------------------------------------------------------------- events


def check_event_batch(con: duckdb.DuckDBPyConnection, events: Sequence[object], secret: str,
                      now: datetime) -> Checked:
    """Validate a JSON batch (a list of objects); every event needs an ``event_id``."""
    tag = _tag()
    src = _batch_source(con, events, EVENT_FIELDS, tag, user_field=S.USER_ID)
    try:
        return _check_events(con, src, tag, secret, now, require_ids=True)
    finally:
        con.unregister(f"{tag}_in")


def check_event_file(con: duckdb.DuckDBPyConnection, path: Path, secret: str, now: datetime) -> Checked:
    """Validate an events file of the generic format (CSV or Parquet); ``event_id`` is optional."""
    tag = _tag()
    src = open_source(con, path, tag, "generic", required=_EVENTS_REQUIRED, user_column=S.USER_ID)
    try:
        return _check_events(con, src, tag, secret, now, require_ids=False)
    finally:
        _drop_temp(con, tag)


def _check_events(con: duckdb.DuckDBPyConnection, src: Source, tag: str, secret: str, now: datetime,
                  require_ids: bool) -> Checked:
    outputs, aux, checks = event_checks(src)
    outputs = {EVENT_ID: src.identifier(EVENT_ID), **outputs}
    first = [(f"{EVENT_ID} IS NULL", MISSING_EVENT_ID)] if require_ids else []
    latest = (now + MAX_FUTURE).strftime("%Y-%m-%d %H:%M:%S")
    extra = [(f"length({name}) > {MAX_ID_LENGTH}", ID_TOO_LONG) for name in _IDS]
    extra += [(f"ts > TIMESTAMP '{latest}'", FUTURE_TIMESTAMP), (f"ts < TIMESTAMP '{_EARLIEST}'", ANCIENT_TIMESTAMP)]
    table = f"{tag}_checked"
    check_rows(con, src, table, outputs, first + checks + extra, aux)
    try:
        _pseudonyms(con, table, secret, tag)
        try:
            rows = con.sql(_events_sql(table, f"{tag}_ids")).to_arrow_table()
        finally:
            con.unregister(f"{tag}_ids")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return Checked(rows=_as_table(rows), rows_read=src.rows)


def _events_sql(table: str, ids: str) -> str:
    """The checked rows in the segment layout; accepted rows get a derived id where none was given."""
    ok = "c.reason IS NULL"
    derived = (
        "'d_' || left(sha256(concat_ws(chr(31), m.pid, c.item_id, c.event_type, "
        "strftime(c.ts, '%Y-%m-%d %H:%M:%S.%f'), coalesce(c.session_id, ''), "
        "coalesce(CAST(c.quantity AS VARCHAR), ''), coalesce(CAST(c.price AS VARCHAR), ''), "
        "coalesce(CAST(c.rating AS VARCHAR), ''))), 32)"
    )
    values = ", ".join(f"CASE WHEN {ok} THEN c.{c} END AS {c}" for c in
                       ("item_id", "event_type", "ts", "session_id", "quantity", "price", "rating"))
    return f"""
        SELECT *, CASE WHEN kind = '{KIND_EVENT}' THEN hash(event_id) END AS id_hash FROM (
            SELECT CASE WHEN {ok} THEN '{KIND_EVENT}' ELSE '{KIND_REJECT}' END AS kind, c.line,
                   CASE WHEN {ok} THEN coalesce(c.event_id, {derived}) ELSE left(c.event_id, {MAX_ID_LENGTH}) END
                       AS event_id,
                   CASE WHEN {ok} THEN m.pid END AS user_id, {values},
                   NULL::VARCHAR AS title, NULL::VARCHAR AS category, NULL::VARCHAR AS brand, c.reason,
                   CASE WHEN NOT {ok} THEN replace(c.reject_raw, {sql_str(MARKER)}, coalesce(m.pid, '')) END AS raw
            FROM {table} c LEFT JOIN {ids} m ON m.raw = c.user_raw
        ) ORDER BY line
    """


def _pseudonyms(con: duckdb.DuckDBPyConnection, table: str, secret: str, tag: str) -> None:
    """Register ``<tag>_ids`` (raw, pid): each distinct raw customer id of the batch hashed once."""
    rows = con.execute(f"SELECT DISTINCT user_raw FROM {table} WHERE user_raw IS NOT NULL").fetchall()
    raw_ids = [r[0] for r in rows]
    ids = pa.table({"raw": pa.array(raw_ids, pa.string()),
                    "pid": pa.array([pseudonymise(r, secret) for r in raw_ids], pa.string())})
    con.register(f"{tag}_ids", ids)


# --------------------------------------------------------------------------- items


def check_item_batch(con: duckdb.DuckDBPyConnection, items: Sequence[object]) -> Checked:
    """Validate a JSON batch of catalogue rows with the generic format's item rules."""
    tag = _tag()
    src = _batch_source(con, items, ITEM_FIELDS, tag, user_field=None)
    try:
        return _check_items(con, src, tag)
    finally:
        con.unregister(f"{tag}_in")


def check_item_file(con: duckdb.DuckDBPyConnection, path: Path) -> Checked:
    """Validate an items file of the generic format (CSV or Parquet)."""
    tag = _tag()
    src = open_source(con, path, tag, "generic", required=_ITEMS_REQUIRED)
    try:
        return _check_items(con, src, tag)
    finally:
        _drop_temp(con, tag)


def _check_items(con: duckdb.DuckDBPyConnection, src: Source, tag: str) -> Checked:
    # The id bound joins the structural check, ahead of the generic item rules.
    too_long = f"CASE WHEN length({src.identifier(S.ITEM_ID)}) > {MAX_ID_LENGTH} THEN {sql_str(ID_TOO_LONG)} END"
    src = replace(src, structural=f"coalesce({src.structural}, {too_long})")
    table = f"{tag}_checked"
    _stage_items(con, src, table)
    ok = "reason IS NULL"
    try:
        rows = con.sql(f"""
            SELECT CASE WHEN {ok} THEN '{KIND_ITEM}' ELSE '{KIND_REJECT}' END AS kind, line,
                   NULL::VARCHAR AS event_id, NULL::VARCHAR AS user_id,
                   CASE WHEN {ok} THEN item_id ELSE left(item_id, {MAX_ID_LENGTH}) END AS item_id,
                   NULL::VARCHAR AS event_type, NULL::TIMESTAMP AS ts, NULL::VARCHAR AS session_id,
                   NULL::INTEGER AS quantity, CASE WHEN {ok} THEN price END AS price, NULL::DOUBLE AS rating,
                   CASE WHEN {ok} THEN title END AS title, CASE WHEN {ok} THEN category END AS category,
                   CASE WHEN {ok} THEN brand END AS brand, reason, CASE WHEN NOT {ok} THEN reject_raw END AS raw,
                   NULL::UBIGINT AS id_hash
            FROM {table} ORDER BY line
        """).to_arrow_table()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return Checked(rows=_as_table(rows), rows_read=src.rows)


# --------------------------------------------------------------------------- JSON batches as a Source


def _batch_source(con: duckdb.DuckDBPyConnection, batch: Sequence[object], fields: tuple[str, ...], tag: str,
                  user_field: str | None) -> Source:
    """Register ``batch`` as ``<tag>_in`` (one text column per field) and describe it as a Source.

    The Python pre-check's reason becomes the Source's structural reason, so it is the first
    reason ``check_rows`` gives the row, exactly as a malformed CSV line's is. A reject's text is
    the event's fields as JSON (the customer id replaced by MARKER): built in Python for the few
    events the pre-check refuses, in SQL (for rejected rows only) for the others.
    """
    columns: dict[str, list[str | None]] = {f: [] for f in fields}
    pre: list[str | None] = []
    raw: list[str | None] = []
    for item in batch:
        problem, texts = _precheck(item, fields)
        pre.append(problem)
        raw.append(None if problem is None else _shown(item, fields, user_field))
        for name, text in zip(fields, texts):
            columns[name].append(text)
    data = {"_line": pa.array(range(1, len(pre) + 1), pa.int64()), "_pre": pa.array(pre, pa.string()),
            "_raw": pa.array(raw, pa.string())}
    data.update({f"c_{name}": pa.array(values, pa.string()) for name, values in columns.items()})
    con.register(f"{tag}_in", pa.table(data))
    marker = f"'\"' || {sql_str(MARKER)} || '\"'"
    parts = ", ".join(
        f"CASE WHEN c_{name} IS NOT NULL THEN '\"{name}\": ' || "
        + (marker if name == user_field else f"to_json(c_{name})") + " END" for name in fields)
    return Source(name="intake", relation=f"{tag}_in", rows=len(pre),
                  columns={name: (f"c_{name}", "VARCHAR") for name in fields},
                  passthrough=("_raw", *(f"c_{name}" for name in fields)), structural="_pre",
                  template=f"coalesce(_raw, '{{' || concat_ws(', ', {parts}) || '}}')")


def _precheck(item: object, fields: tuple[str, ...]) -> tuple[str | None, list[str | None]]:
    """(the first problem or None, the fields as text)."""
    if type(item) is not dict:
        return NOT_AN_OBJECT, [None] * len(fields)
    problem = None
    texts: list[str | None] = []
    for name in fields:
        value = item.get(name)
        if type(value) is str and len(value) <= MAX_TEXT_LENGTH and value.isprintable():  # the common case
            texts.append(value)
            continue
        text, why = scalar_text(value)
        problem = problem or why
        texts.append(text)
    return problem, texts


def _shown(item: object, fields: tuple[str, ...], user_field: str | None) -> str:
    """A refused object's reject text: its fields as JSON, MARKER for the customer id."""
    if type(item) is not dict:
        return json.dumps(f"({type(item).__name__}, not an object)")
    shown = {}
    for name in fields:
        if name in item:
            text, why = scalar_text(item[name])
            shown[name] = MARKER if name == user_field else (text if why is None else f"({why})")
    return json.dumps(shown, ensure_ascii=False)


def scalar_text(value: object) -> tuple[str | None, str | None]:
    """(the value as text, or None; the problem with it, or None)."""
    if value is None:
        return None, None
    if isinstance(value, bool):  # before int: True is an int to Python, never an id or a price
        return None, WRONG_TYPE
    if isinstance(value, int):
        return (str(value), None) if value.bit_length() <= 64 else (None, VALUE_TOO_LONG)
    if isinstance(value, float):
        return repr(value), None  # nan and inf are refused by the number checks, as in a file
    if isinstance(value, str):
        if len(value) > MAX_TEXT_LENGTH:
            return None, VALUE_TOO_LONG
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no text a shop could have sent
            return None, R.BAD_ENCODING
        return value, None
    return None, WRONG_TYPE


# --------------------------------------------------------------------------- helpers


def _as_table(rows: pa.Table | pa.RecordBatchReader) -> pa.Table:
    return rows.read_all() if isinstance(rows, pa.RecordBatchReader) else rows


def _tag() -> str:
    return f"_live{uuid.uuid4().hex[:10]}"


def _drop_temp(con: duckdb.DuckDBPyConnection, tag: str) -> None:
    names = con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary AND starts_with(table_name, ?)",
                        [tag + "_"]).fetchall()
    for (name,) in names:
        con.execute(f"DROP TABLE {name}")
