"""The store of "shown" lists (impressions) beside the shop: what each customer was shown, where.

Why a store of its own: attribution needs to know which list a customer saw, in which order and
from which model version and experiment variant; none of that is an event of the data contract,
and the events' store is folded into the shop file by compaction, whose tables and fingerprint
the models depend on. So impressions go to ``<db>.shown/``, a folder of immutable, numbered
Parquet files, one per acknowledged batch, written by the live store's own folder helpers
(:mod:`analytics.live_segments`: temp name, fsync, rename, fsync of the folder, under the
folder's cross-process writer lock). Nothing folds or deletes them: a file is read whole or not
at all, and a reader takes the file list once (:func:`attach_shown`).

A file holds one row per (impression, position), :data:`SHOWN_SCHEMA`: the client's
``event_id`` (the idempotency key), the customer's pseudonym (the raw id is hashed with the
shop's secret exactly as the event intake does: same trimming, same integral-float rule, same
key), ``ts`` (read as ingest reads times: ISO 8601, an offset converted to UTC), the list's
name, the 1-based position, the item, ``model_version``, ``experiment`` and ``variant``, and
when the batch arrived.

Validation mirrors the event intake (:mod:`analytics.event_validation`): an impression that is
not an object, has a value of the wrong type or size, no ``event_id``, no customer, an
unreadable, future or pre-1970 time, no list name, an items list that is missing, empty, longer
than :data:`MAX_ITEMS_PER_LIST`, holds an empty or repeated item id, or an experiment without a
variant (or the reverse), or a label (list name, model version, experiment, variant) over
:data:`MAX_LABEL_LENGTH` characters or with control characters (they are shown on a page), is
refused with one reason, and the rest of the batch is kept. Refusals are answered to the client,
not stored (this store has no ``rejects`` table). An item id the catalogue does not know is
accepted, as the event intake accepts events on it (the catalogue row may arrive later).

An impression whose ``event_id`` is already stored, or repeats earlier in the batch, counts as a
duplicate and is not stored again; the writer keeps the known ids in memory per process and, under
the writer lock, first reads the files other processes wrote since (as :class:`LiveStore` does).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics import schema as S
from analytics.adapters import reasons as R
from analytics.adapters._sources import Source
from analytics.customers import MAX_ID_LENGTH
from analytics.event_validation import (
    ANCIENT_TIMESTAMP,
    EVENT_ID,
    FUTURE_TIMESTAMP,
    ID_TOO_LONG,
    MAX_FUTURE,
    MISSING_EVENT_ID,
    NOT_AN_OBJECT,
    Rejected,
    scalar_text,  # the event intake's value rules
)
from analytics.live_segments import (
    LiveBusy,
    PerShop,
    list_segments,
    remove_temp_files,
    segment_path,
    sql_file_list,
    write_segment,
    writer_lock,
)
from analytics.live_store import AppendResult, utc_now
from analytics.privacy import pseudonymise
from errors import RecsightError

__all__ = [
    "SHOWN", "SHOWN_SCHEMA", "LIST", "POSITION", "ITEMS", "MODEL_VERSION", "EXPERIMENT", "VARIANT", "RECEIVED_AT",
    "IMPRESSION_FIELDS", "MAX_ITEMS_PER_LIST", "MAX_LABEL_LENGTH",
    "MISSING_LIST", "MISSING_ITEMS", "ITEMS_NOT_A_LIST", "EMPTY_ITEMS", "TOO_MANY_ITEMS", "REPEATED_ITEM",
    "UNPAIRED_VARIANT", "LABEL_TOO_LONG", "LABEL_NOT_PRINTABLE",
    "shown_folder", "ImpressionStore", "impression_store_for", "attach_shown", "LiveBusy",
]

log = logging.getLogger(__name__)

SHOWN = "shown"  # the temp table a reader gets (attach_shown)
LIST, POSITION, ITEMS = "list", "position", "items"
MODEL_VERSION, EXPERIMENT, VARIANT, RECEIVED_AT = "model_version", "experiment", "variant", "received_at"
IMPRESSION_FIELDS = (EVENT_ID, S.USER_ID, S.TS, LIST, MODEL_VERSION, EXPERIMENT, VARIANT)  # besides ITEMS
MAX_ITEMS_PER_LIST = 100
MAX_LABEL_LENGTH = 64  # a list name, model version, experiment or variant: a label, not a text

SHOWN_SCHEMA = pa.schema([
    (EVENT_ID, pa.string()),
    (S.USER_ID, pa.string()),      # always the pseudonym
    (S.TS, pa.timestamp("us")),    # naive UTC, as every time in the store
    (LIST, pa.string()),
    (POSITION, pa.int32()),        # 1-based: index in the list shown + 1
    (S.ITEM_ID, pa.string()),
    (MODEL_VERSION, pa.string()),
    (EXPERIMENT, pa.string()),
    (VARIANT, pa.string()),
    (RECEIVED_AT, pa.timestamp("us")),
])

# Reasons only impressions have (the rest are the event intake's and ingest's).
MISSING_LIST = "missing list name"
MISSING_ITEMS = "missing items list"
ITEMS_NOT_A_LIST = "items is not a list"
EMPTY_ITEMS = "empty items list"
TOO_MANY_ITEMS = f"more than {MAX_ITEMS_PER_LIST} items in the list"
REPEATED_ITEM = "item repeated in the list"
UNPAIRED_VARIANT = "experiment and variant must be given together"
LABEL_TOO_LONG = f"label longer than {MAX_LABEL_LENGTH} characters"
LABEL_NOT_PRINTABLE = "label with control characters"

_EARLIEST = datetime(1970, 1, 1)
_LABELS = (LIST, MODEL_VERSION, EXPERIMENT, VARIANT)


def shown_folder(db_path: Path | str) -> Path:
    """``shop.duckdb`` -> ``shop.duckdb.shown``."""
    path = Path(db_path)
    return path.with_name(path.name + ".shown")


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class _Parsed:
    """One impression after the Python pre-check: its fields as text and its item ids."""

    problem: str | None
    texts: dict[str, str | None]
    items: list[str | None] | None


def _precheck(impression: object) -> _Parsed:
    """Types and sizes, before anything reaches SQL (the event intake's value rules)."""
    if type(impression) is not dict:
        return _Parsed(NOT_AN_OBJECT, dict.fromkeys(IMPRESSION_FIELDS), None)
    problem, texts = None, {}
    for name in IMPRESSION_FIELDS:
        text, why = scalar_text(impression.get(name))
        problem = problem or why
        texts[name] = text
    raw = impression.get(ITEMS)
    items: list[str | None] | None = None
    if raw is None:
        problem = problem or MISSING_ITEMS
    elif not isinstance(raw, list):
        problem = problem or ITEMS_NOT_A_LIST
    elif len(raw) > MAX_ITEMS_PER_LIST:
        problem = problem or TOO_MANY_ITEMS
    else:
        items = []
        for value in raw:
            text, why = scalar_text(value)
            problem = problem or why
            items.append(text)
    return _Parsed(problem, texts, items)


def _parse_in_sql(con: duckdb.DuckDBPyConnection, parsed: list[_Parsed]) -> list[tuple]:
    """The ids, time and labels as ingest reads them (through the generic format's expressions):
    per impression (event_id, user_raw, ts, ts_given, offset_outside, list, model_version,
    experiment, variant, items)."""
    tag = f"_shown{uuid.uuid4().hex[:10]}"
    data = {f"c_{name}": pa.array([p.texts[name] for p in parsed], pa.string()) for name in IMPRESSION_FIELDS}
    data["c_items"] = pa.array([p.items for p in parsed], pa.list_(pa.string()))
    data["_line"] = pa.array(range(1, len(parsed) + 1), pa.int64())
    con.register(tag, pa.table(data))
    src = _source(tag, {name: f"c_{name}" for name in IMPRESSION_FIELDS})
    item = _source(tag, {S.ITEM_ID: "x"}).identifier(S.ITEM_ID)  # each element x of the items list
    try:
        return con.execute(f"""
            SELECT {src.identifier(EVENT_ID)}, {src.identifier(S.USER_ID, integral_text=True)}, {src.timestamp(S.TS)},
                   {src.given(S.TS)}, {src.offset_outside_range(S.TS)},
                   {", ".join(src.text(name) for name in _LABELS)},
                   list_transform(c_items, lambda x: {item})
            FROM {tag} ORDER BY _line
        """).fetchall()
    finally:
        con.unregister(tag)


def _source(relation: str, columns: dict[str, str]) -> Source:
    """Text columns (name -> SQL expression) described as a Source, for its value expressions only."""
    return Source(name="impressions", relation=relation, rows=0,
                  columns={name: (expr, "VARCHAR") for name, expr in columns.items()},
                  passthrough=(), structural="NULL::VARCHAR", template="''")


def _reason(row: tuple, now: datetime) -> str | None:
    """The first problem of a parsed impression (its pre-check problem is checked before)."""
    event_id, user_raw, ts, ts_given, offset_outside, *labels, items = row
    if event_id is None:
        return MISSING_EVENT_ID
    if len(event_id) > MAX_ID_LENGTH or (user_raw is not None and len(user_raw) > MAX_ID_LENGTH):
        return ID_TOO_LONG
    if user_raw is None:
        return R.MISSING_CUSTOMER
    if not ts_given:
        return R.MISSING_TIMESTAMP
    if offset_outside:
        return R.BAD_UTC_OFFSET
    if ts is None:
        return R.BAD_TIMESTAMP
    if ts > now + MAX_FUTURE:
        return FUTURE_TIMESTAMP
    if ts < _EARLIEST:
        return ANCIENT_TIMESTAMP
    list_name, _version, experiment, variant = labels
    if list_name is None:
        return MISSING_LIST
    if any(label is not None and len(label) > MAX_LABEL_LENGTH for label in labels):
        return LABEL_TOO_LONG
    if any(label is not None and not label.isprintable() for label in labels):
        return LABEL_NOT_PRINTABLE
    if (experiment is None) != (variant is None):
        return UNPAIRED_VARIANT
    if not items:
        return EMPTY_ITEMS
    if any(item is None for item in items):
        return R.EMPTY_ITEM
    if any(len(item) > MAX_ID_LENGTH for item in items):
        return ID_TOO_LONG
    if len(set(items)) != len(items):
        return REPEATED_ITEM
    return None


@dataclass(frozen=True)
class _Checked:
    """A validated batch: the accepted impressions (event id, pseudonym, ts, labels, items) in
    input order and the refusals."""

    accepted: list[tuple]
    rejected: tuple[Rejected, ...]


def _check(con: duckdb.DuckDBPyConnection, batch: Sequence[object], secret: str, now: datetime) -> _Checked:
    """Each impression accepted or refused with its first problem; customer ids pseudonymised."""
    parsed = [_precheck(impression) for impression in batch]
    rows = _parse_in_sql(con, parsed) if parsed else []
    accepted, rejected, raw_ids = [], [], {}
    for index, (pre, row) in enumerate(zip(parsed, rows)):
        why = pre.problem or _reason(row, now)
        if why is not None:  # the event id as read (trimmed), cut to the id bound, as the event intake answers
            rejected.append(Rejected(index, None if row[0] is None else row[0][:MAX_ID_LENGTH], why))
            continue
        accepted.append(row)
        raw_ids.setdefault(row[1], None)
    pseudonyms = {raw: pseudonymise(raw, secret) for raw in raw_ids}
    ready = [(row[0], pseudonyms[row[1]], row[2], *row[5:]) for row in accepted]
    return _Checked(ready, tuple(rejected))


# --------------------------------------------------------------------------- the writer


@dataclass
class _State:
    next_seq: int
    known: set[str] = field(default_factory=set)


class ImpressionStore:
    """The writer of one shop's impressions; one per process and shop (:func:`impression_store_for`).

    Thread-safe: validation runs on cursors of a private in-memory DuckDB; writing is one thread
    at a time in the process and one process at a time on the folder.
    """

    def __init__(self, db_path: Path | str) -> None:
        self.db_path = Path(db_path)
        self.folder = shown_folder(self.db_path)
        self._lock = threading.Lock()
        self._validator = duckdb.connect(":memory:")
        self._validator.execute("SET TimeZone = 'UTC'")
        self._validator.execute("SET enable_progress_bar = false")
        self._state: _State | None = None

    def append(self, impressions: Sequence[object], secret: str, *, timeout: float | None = None) -> AppendResult:
        """Validate and store a batch of impressions (JSON objects); durable when it returns."""
        if not secret:
            raise RecsightError("a secret is needed to pseudonymise customer ids: set RECSIGHT_SECRET")
        cursor = self._validator.cursor()
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            checked = _check(cursor, impressions, secret, utc_now())
        finally:
            cursor.close()
        if not checked.accepted:
            return AppendResult(0, 0, checked.rejected)
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            raise LiveBusy(f"another thread is appending to {self.folder}: try again shortly")
        try:
            with writer_lock(self.folder, timeout):
                state = self._current()
                fresh, duplicates = [], 0
                for row in checked.accepted:
                    if row[0] in state.known:
                        duplicates += 1
                        continue
                    state.known.add(row[0])  # also drops a repeat later in this batch
                    fresh.append(row)
                if not fresh:
                    return AppendResult(0, duplicates, checked.rejected)
                seq = state.next_seq
                try:
                    write_segment(self.folder, seq, _rows(fresh))
                except BaseException:
                    state.known.difference_update(row[0] for row in fresh)
                    raise
                state.next_seq = seq + 1
        finally:
            self._lock.release()
        log.debug("shown %d: %d impressions, %d duplicates, %d rejected", seq, len(fresh), duplicates,
                  len(checked.rejected))
        return AppendResult(len(fresh), duplicates, checked.rejected, (seq,))

    def _current(self) -> _State:
        """The known ids, read from every file on first use, else caught up with other writers'
        files (under the writer lock). A folder that lost files (removed by hand) is read again."""
        state = self._state
        if state is not None and (state.next_seq == 1 or segment_path(self.folder, state.next_seq - 1).exists()):
            while (path := segment_path(self.folder, state.next_seq)).exists():
                state.known.update(_event_ids([path]))
                state.next_seq += 1
            return state
        remove_temp_files(self.folder)  # we hold the writer lock: no temp file is being written
        files = list_segments(self.folder)
        last = files[-1][0] if files else 0
        self._state = _State(next_seq=last + 1, known=set(_event_ids([path for _, path in files])))
        log.info("impressions of %s: %d file(s), %d known impressions", self.db_path.name, len(files),
                 len(self._state.known))
        return self._state


def _rows(accepted: list[tuple]) -> pa.Table:
    """One row per (impression, position), in :data:`SHOWN_SCHEMA`: each impression's values
    repeated over its items, the position counted from 1 within each list."""
    ids, users, times, lists, versions, experiments, variants, items = zip(*accepted)
    shown = pa.array(items, pa.list_(pa.string()))
    parent = pc.list_parent_indices(shown)
    offsets = shown.offsets.to_numpy()
    positions = np.arange(len(parent), dtype=np.int32) - offsets[parent.to_numpy()].astype(np.int32) + 1
    per_impression = {EVENT_ID: ids, S.USER_ID: users, LIST: lists, MODEL_VERSION: versions,
                      EXPERIMENT: experiments, VARIANT: variants}
    columns = {name: pa.array(values, pa.string()).take(parent) for name, values in per_impression.items()}
    columns[S.TS] = pa.array(times, pa.timestamp("us")).take(parent)
    columns[POSITION] = pa.array(positions, pa.int32())
    columns[S.ITEM_ID] = pc.list_flatten(shown)
    columns[RECEIVED_AT] = pa.array(np.full(len(parent), np.datetime64(utc_now(), "us")), pa.timestamp("us"))
    return pa.Table.from_arrays([columns[f.name] for f in SHOWN_SCHEMA], schema=SHOWN_SCHEMA)


def _event_ids(paths: Sequence[Path]) -> set[str]:
    ids: set[str] = set()
    for path in paths:
        ids.update(pc.unique(pq.read_table(path, columns=[EVENT_ID]).column(EVENT_ID)).to_pylist())
    return ids


impression_store_for: PerShop[ImpressionStore] = PerShop(ImpressionStore)  # the process's impression writer


# --------------------------------------------------------------------------- readers


def attach_shown(con: duckdb.DuckDBPyConnection, db_path: Path | str, table: str = SHOWN) -> int:
    """Load every stored impression row into the temp table ``table`` (:data:`SHOWN_SCHEMA`),
    from a file list taken once; return how many rows. No file: an empty table."""
    files = [path for _, path in list_segments(shown_folder(db_path))]
    columns = ", ".join(f.name for f in SHOWN_SCHEMA)
    if files:
        files_sql = sql_file_list(files)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {columns} FROM read_parquet({files_sql})")
    else:
        con.register(f"{table}_empty", SHOWN_SCHEMA.empty_table())
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {columns} FROM {table}_empty")
        finally:
            con.unregister(f"{table}_empty")
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
