"""Behaviour sequences read from a DuckDB history table, turned into padded index arrays.

The attention model never sees strings: this module owns the mapping from the events contract
(user, item, event type, time, plus each item's category and brand from ``items``) to integer
indexes, and the windowing of "the last N behaviours before position p". Keeping it apart from
the network means the ranker, the explanations and the tests can read exactly the history the
model read, position by position.

Index conventions (shared by every vocabulary): 0 = padding, 1 = unknown (an id the model was not
trained on). Categories and brands also have 2 = missing (NULL in ``items``), so "this item has no
brand" is something the model can learn, distinct from "a brand I have never seen".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from analytics import schema
from errors import RecsightError

__all__ = [
    "PAD", "UNKNOWN", "MISSING", "Vocabulary", "Sequences", "Histories",
    "build_vocabulary", "load_sequences", "gather_windows", "build_histories",
]

log = logging.getLogger(__name__)

PAD = 0
UNKNOWN = 1
MISSING = 2
_FIRST_ITEM = 2          # items: 0 pad, 1 unknown
_FIRST_ATTRIBUTE = 3     # categories / brands: 0 pad, 1 unknown, 2 missing
_EVENT_INDEX = {name: i + 2 for i, name in enumerate(schema.EVENT_TYPES)}  # 0 pad, 1 unknown
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _lookup(values: Sequence[str], first: int) -> dict[str, int]:
    return {value: first + i for i, value in enumerate(values)}


@dataclass(frozen=True)
class Vocabulary:
    """Item, category and brand ids known at training time, and each item's category/brand index."""

    items: tuple[str, ...]
    categories: tuple[str, ...]
    brands: tuple[str, ...]
    item_category: np.ndarray   # index by item index -> category index (0/1 for pad/unknown rows)
    item_brand: np.ndarray
    _item_index: dict[str, int] = field(init=False, repr=False, compare=False)
    _category_index: dict[str, int] = field(init=False, repr=False, compare=False)
    _brand_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_item_index", _lookup(self.items, _FIRST_ITEM))
        object.__setattr__(self, "_category_index", _lookup(self.categories, _FIRST_ATTRIBUTE))
        object.__setattr__(self, "_brand_index", _lookup(self.brands, _FIRST_ATTRIBUTE))

    @property
    def n_items(self) -> int:
        """Rows of the item embedding (known items plus padding and unknown)."""
        return len(self.items) + _FIRST_ITEM

    @property
    def n_categories(self) -> int:
        return len(self.categories) + _FIRST_ATTRIBUTE

    @property
    def n_brands(self) -> int:
        return len(self.brands) + _FIRST_ATTRIBUTE

    @staticmethod
    def n_events() -> int:
        return len(schema.EVENT_TYPES) + 2

    def item_index(self, item_ids: Sequence[str]) -> np.ndarray:
        """Item indexes; ids not seen in training map to UNKNOWN."""
        get = self._item_index.get
        return np.fromiter((get(i, UNKNOWN) for i in item_ids), dtype=np.int64, count=len(item_ids))

    def item_id(self, index: int) -> str:
        return self.items[index - _FIRST_ITEM]

    def known_item_indexes(self) -> np.ndarray:
        """Every trainable item index: the catalogue that full ranking runs over."""
        return np.arange(_FIRST_ITEM, self.n_items, dtype=np.int64)

    def category_index(self, values: Sequence[object]) -> np.ndarray:
        return _attribute_index(values, self._category_index)

    def brand_index(self, values: Sequence[object]) -> np.ndarray:
        return _attribute_index(values, self._brand_index)

    @staticmethod
    def event_index(event_types: Sequence[str]) -> np.ndarray:
        get = _EVENT_INDEX.get
        return np.fromiter((get(e, UNKNOWN) for e in event_types), dtype=np.int64, count=len(event_types))

    def to_state(self) -> dict:
        """Plain lists, so a saved model needs no pickle of numpy objects."""
        return {
            "items": list(self.items), "categories": list(self.categories), "brands": list(self.brands),
            "item_category": self.item_category.tolist(), "item_brand": self.item_brand.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict) -> Vocabulary:
        return cls(
            items=tuple(state["items"]), categories=tuple(state["categories"]), brands=tuple(state["brands"]),
            item_category=np.asarray(state["item_category"], dtype=np.int64),
            item_brand=np.asarray(state["item_brand"], dtype=np.int64),
        )


def _attribute_index(values: Sequence[object], lookup: dict[str, int]) -> np.ndarray:
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        out[i] = MISSING if _is_missing(value) else lookup.get(value, UNKNOWN)
    return out


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


# --------------------------------------------------------------------------- reading DuckDB


def _checked_table(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The table name, once it is a plain identifier holding the events contract columns."""
    if not isinstance(table, str) or not _IDENTIFIER.match(table):
        raise RecsightError(f"history table name {table!r} is not a plain table or view name")
    try:
        columns = {d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description}
    except duckdb.Error:
        raise RecsightError(f"history table {table} does not exist in the database") from None
    missing = [c for c in (schema.USER_ID, schema.ITEM_ID, schema.EVENT_TYPE, schema.TS) if c not in columns]
    if missing:
        raise RecsightError(f"history table {table} lacks column {missing[0]!r} of the events contract")
    return table


def _has_items_table(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        con.execute(f"SELECT {schema.ITEM_ID}, {schema.CATEGORY}, {schema.BRAND} FROM {schema.ITEMS} LIMIT 0")
    except duckdb.Error:
        return False
    return True


def _events_frame(con: duckdb.DuckDBPyConnection, table: str, user_ids: Sequence[str] | None) -> pd.DataFrame:
    """The history's events in time order per user, with each item's category and brand.

    Ties in time are broken by behaviour strength (a view before the purchase it led to) and then
    item id, so the order, and hence the model, never depends on DuckDB's scan order. The query
    runs first and the table is only examined when it fails (to say why, or to read a history
    without a catalogue): serving reads one customer's window per request, where two schema
    probes would cost as much as the read.
    """
    if not isinstance(table, str) or not _IDENTIFIER.match(table):
        raise RecsightError(f"history table name {table!r} is not a plain table or view name")
    try:
        return _read_events(con, table, user_ids, with_items=True)
    except duckdb.Error as exc:
        table = _checked_table(con, table)  # raises the clear error when the table is the problem
        if _has_items_table(con):
            raise RecsightError(f"cannot read history table {table}: {str(exc).splitlines()[0]}") from None
    try:
        return _read_events(con, table, user_ids, with_items=False)
    except duckdb.Error as exc:
        raise RecsightError(f"cannot read history table {table}: {str(exc).splitlines()[0]}") from None


def _read_events(con: duckdb.DuckDBPyConnection, table: str, user_ids: Sequence[str] | None,
                 with_items: bool) -> pd.DataFrame:
    e = "e"
    if with_items:
        attrs = f"i.{schema.CATEGORY} AS category, i.{schema.BRAND} AS brand"
        join = f"LEFT JOIN {schema.ITEMS} i ON i.{schema.ITEM_ID} = {e}.{schema.ITEM_ID}"
    else:
        attrs = "NULL::VARCHAR AS category, NULL::VARCHAR AS brand"
        join = ""
    strength = " ".join(f"WHEN '{name}' THEN {grade}" for name, grade in schema.RELEVANCE.items())
    where, params = "", []
    if user_ids is not None:
        where = f"WHERE {e}.{schema.USER_ID} IN (SELECT unnest(?::VARCHAR[]))"
        params = [list(user_ids)]
    sql = (
        f"SELECT {e}.{schema.USER_ID} AS user_id, {e}.{schema.ITEM_ID} AS item_id, "
        f"{e}.{schema.EVENT_TYPE} AS event_type, {e}.{schema.TS} AS ts, {attrs} "
        f"FROM {table} {e} {join} {where} "
        f"ORDER BY {e}.{schema.USER_ID}, {e}.{schema.TS}, "
        f"CASE {e}.{schema.EVENT_TYPE} {strength} ELSE 0 END, {e}.{schema.ITEM_ID}"
    )
    return con.execute(sql, params).df()


def build_vocabulary(con: duckdb.DuckDBPyConnection, history_table: str) -> Vocabulary:
    """Items of the history plus every item of the catalogue (``items``), sorted for determinism.

    Catalogue items that never occur in the history are kept: they can still be a next purchase
    (leave-one-out test items, new products), so full ranking must be able to score them.
    """
    table = _checked_table(con, history_table)
    if con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0:
        raise RecsightError(f"history table {table} holds no events to train on")
    if _has_items_table(con):
        sql = (
            f"WITH ids AS (SELECT DISTINCT {schema.ITEM_ID} FROM {table} "
            f"UNION SELECT {schema.ITEM_ID} FROM {schema.ITEMS}) "
            f"SELECT ids.{schema.ITEM_ID} AS item_id, i.{schema.CATEGORY} AS category, i.{schema.BRAND} AS brand "
            f"FROM ids LEFT JOIN {schema.ITEMS} i USING ({schema.ITEM_ID}) ORDER BY ids.{schema.ITEM_ID}"
        )
    else:
        sql = (
            f"SELECT DISTINCT {schema.ITEM_ID} AS item_id, NULL::VARCHAR AS category, NULL::VARCHAR AS brand "
            f"FROM {table} ORDER BY 1"
        )
    frame = con.execute(sql).df()
    categories = tuple(sorted(frame["category"].dropna().unique().tolist()))
    brands = tuple(sorted(frame["brand"].dropna().unique().tolist()))
    cat_lookup = _lookup(categories, _FIRST_ATTRIBUTE)
    brand_lookup = _lookup(brands, _FIRST_ATTRIBUTE)
    pad = np.array([PAD, UNKNOWN], dtype=np.int64)
    return Vocabulary(
        items=tuple(frame["item_id"].tolist()),
        categories=categories,
        brands=brands,
        item_category=np.concatenate([pad, _attribute_index(frame["category"].tolist(), cat_lookup)]),
        item_brand=np.concatenate([pad, _attribute_index(frame["brand"].tolist(), brand_lookup)]),
    )


@dataclass(frozen=True)
class Sequences:
    """Every user's behaviours end to end (CSR layout): user u owns rows ptr[u]:ptr[u+1]."""

    user_ids: tuple[str, ...]
    ptr: np.ndarray
    items: np.ndarray
    categories: np.ndarray
    brands: np.ndarray
    events: np.ndarray
    item_ids: np.ndarray        # raw ids (object), for explanations
    event_types: np.ndarray     # raw event type names (object)
    ts: np.ndarray              # datetime64

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.ptr)


def load_sequences(
    con: duckdb.DuckDBPyConnection, history_table: str, vocab: Vocabulary, user_ids: Sequence[str] | None = None
) -> Sequences:
    """Read the history table into index arrays, one time-ordered run per user."""
    frame = _events_frame(con, history_table, user_ids)
    users, starts = np.unique(frame["user_id"].to_numpy(dtype=object), return_index=True) if len(frame) else (
        np.array([], dtype=object), np.array([], dtype=np.int64))
    ptr = np.append(starts, len(frame)).astype(np.int64)
    item_ids = frame["item_id"].to_numpy(dtype=object)
    return Sequences(
        user_ids=tuple(users.tolist()),
        ptr=ptr,
        items=vocab.item_index(item_ids),
        categories=vocab.category_index(frame["category"].tolist()),
        brands=vocab.brand_index(frame["brand"].tolist()),
        events=vocab.event_index(frame["event_type"].tolist()),
        item_ids=item_ids,
        event_types=frame["event_type"].to_numpy(dtype=object),
        ts=frame["ts"].to_numpy(dtype="datetime64[us]"),
    )


def gather_windows(
    seqs: Sequences, user_rows: np.ndarray, ends: np.ndarray, length: int
) -> dict[str, np.ndarray]:
    """The behaviours of ``seqs`` rows [max(start, end - length), end) per example, right-aligned.

    Right alignment puts the most recent behaviour in the last column for every example, so a
    "recency" position is the same column everywhere and padding sits on the left.
    Returns int64 arrays (n, length) for items, categories, brands, events and the flat row index
    of each cell (-1 on padding) so callers can fetch raw ids and timestamps.
    """
    starts = seqs.ptr[user_rows]
    rows = ends[:, None] + np.arange(-length, 0)[None, :]
    valid = rows >= starts[:, None]
    rows = np.where(valid, rows, -1)
    safe = np.where(valid, rows, 0)
    out = {"rows": rows}
    for name in ("items", "categories", "brands", "events"):
        source = getattr(seqs, name)
        out[name] = np.where(valid, source[safe], PAD) if len(source) else np.zeros_like(rows)
    return out


@dataclass(frozen=True)
class Histories:
    """The last ``max_history`` behaviours of each user, padded on the left, ready to score.

    Column j of every array is the same history position for explanations and attention weights:
    the last column is the most recent behaviour. ``seen`` holds every item index of the user's
    whole history (not only the window) for excluding already-bought items when ranking.
    """

    user_ids: tuple[str, ...]
    items: np.ndarray
    categories: np.ndarray
    brands: np.ndarray
    events: np.ndarray
    item_ids: np.ndarray        # (users, max_history) object, None on padding
    event_types: np.ndarray     # (users, max_history) object, None on padding
    ts: np.ndarray              # (users, max_history) datetime64, NaT on padding
    lengths: np.ndarray         # full history length per user (before truncation)
    seen_ptr: np.ndarray
    seen_items: np.ndarray
    _row: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_row", {u: i for i, u in enumerate(self.user_ids)})

    def rows(self, user_ids: Sequence[str]) -> np.ndarray:
        """Row of each user, or -1 for a user with no history here (scored as a cold start)."""
        get = self._row.get
        return np.fromiter((get(u, -1) for u in user_ids), dtype=np.int64, count=len(user_ids))

    def seen(self, row: int) -> np.ndarray:
        return self.seen_items[self.seen_ptr[row]:self.seen_ptr[row + 1]]

    def events_of(self, user_id: str) -> list[dict]:
        """The user's window as (column, item_id, event_type, ts) records, oldest first."""
        row = self._row.get(user_id, -1)
        if row < 0:
            return []
        return [
            {"column": j, "item_id": self.item_ids[row, j], "event_type": self.event_types[row, j],
             "ts": self.ts[row, j]}
            for j in range(self.items.shape[1]) if self.items[row, j] != PAD
        ]


def build_histories(
    con: duckdb.DuckDBPyConnection,
    history_table: str,
    vocab: Vocabulary,
    max_history: int,
    user_ids: Sequence[str] | None = None,
) -> Histories:
    """Each user's last ``max_history`` behaviours in ``history_table`` (all users, or the given ones)."""
    seqs = load_sequences(con, history_table, vocab, user_ids)
    n_users = len(seqs.user_ids)
    user_rows = np.arange(n_users, dtype=np.int64)
    windows = gather_windows(seqs, user_rows, seqs.ptr[1:], max_history)
    cell = windows["rows"]
    pad = cell < 0
    safe = np.where(pad, 0, cell)

    def raw(values: np.ndarray, fill: object) -> np.ndarray:
        if not len(values):
            return np.full(cell.shape, fill, dtype=values.dtype)
        out = values[safe]
        out[pad] = fill
        return out

    seen_ptr, seen_items = _unique_per_user(seqs)
    return Histories(
        user_ids=seqs.user_ids,
        items=windows["items"], categories=windows["categories"],
        brands=windows["brands"], events=windows["events"],
        item_ids=raw(seqs.item_ids, None), event_types=raw(seqs.event_types, None),
        ts=raw(seqs.ts, np.datetime64("NaT")),
        lengths=seqs.lengths, seen_ptr=seen_ptr, seen_items=seen_items,
    )


def _unique_per_user(seqs: Sequences) -> tuple[np.ndarray, np.ndarray]:
    parts = [np.unique(seqs.items[a:b]) for a, b in zip(seqs.ptr[:-1], seqs.ptr[1:])]
    sizes = np.array([len(p) for p in parts], dtype=np.int64)
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    items = np.concatenate(parts) if parts else np.array([], dtype=np.int64)
    return ptr, items
