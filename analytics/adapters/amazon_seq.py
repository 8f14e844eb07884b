"""Amazon review sequences in the S3-Rec text format, with item attributes and titles.

A path is the folder holding ``<Name>.txt`` (one line per user: ``user item item ...`` in time
order), ``<Name>_item2attributes.json`` (item id -> attribute ids) and optionally ``items.tsv``
(s3rec_item_id, asin, title_fragment, s3rec_attribute_ids), or the ``<Name>.txt`` file itself.

Order only, no times: a user's k-th item (k = 0, 1, ...) becomes a ``purchase`` (a review implies
a purchase) at ``SEQUENCE_START`` + k days. Timestamps therefore keep each user's order and
nothing else: they are not comparable across users, so use the leave-one-out protocol.

Attributes: only ids are published, no names. The S3-Rec preprocessing lists an item's brand
first (when that brand was frequent enough to keep), then its category path below the top level.
So an id that is only ever first in an item's list is read as a brand, every other id as a
category level. The published Beauty file bears this out: 435 ids are only ever first, and for
323 of them most of their items' titles start with the same word, the maker's ("opi ...",
"loreal paris ..."); the id after them, or first where no brand was kept, is one of six roots
(two more ids occur once each).
Items store category = "attr 1 > attr 162 > attr 171" (the first path, when an item lists
several: 26 items do) and brand = "attr 173". Titles come from ``items.tsv``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from analytics import schema as S
from analytics.adapters import reasons as R
from analytics.adapters._files import require_file
from analytics.adapters._sources import (
    EVENT_COLUMNS,
    MARKER,
    Source,
    check_rows,
    csv_source,
    load_lines,
    not_in_format,
    rejects_of,
    sql_str,
)
from analytics.adapters.base import SEQUENCES_ROLE, Staged, Unit
from errors import RecsightError

__all__ = ["AmazonSeqAdapter", "SEQUENCE_START", "NO_ITEMS", "BAD_ATTRIBUTES", "infer_attributes"]

SEQUENCE_START = datetime(2014, 1, 1)
NO_ITEMS = "no items in sequence"
BAD_ATTRIBUTES = "attributes are not a list of ids"
ATTRIBUTES_ROLE = "attributes"
TITLES_ROLE = "titles"
_ATTRIBUTES_SUFFIX = "_item2attributes.json"
_TITLES_FILE = "items.tsv"
_TITLE_COLUMNS = ("s3rec_item_id", "title_fragment")


class AmazonSeqAdapter:
    """S3-Rec sequences -> purchase events; attribute and title files -> items."""

    fmt = "amazon-seq"

    def units(self, paths: list[Path]) -> list[Unit]:
        units: list[Unit] = []
        for path in paths:
            sequences, attributes = self._resolve(path)
            units += [Unit(require_file(sequences), SEQUENCES_ROLE), Unit(require_file(attributes), ATTRIBUTES_ROLE)]
            titles = sequences.parent / _TITLES_FILE
            if titles.is_file():
                units.append(Unit(require_file(titles), TITLES_ROLE))
        return units

    def _resolve(self, path: Path) -> tuple[Path, Path]:
        if not path.exists():
            raise RecsightError(f"{path} does not exist")
        if path.is_file():
            if path.suffix.lower() != ".txt":
                raise not_in_format(path.name, self.fmt, "give the folder or its <Name>.txt sequence file")
            attributes = path.with_name(path.stem + _ATTRIBUTES_SUFFIX)
            if not attributes.is_file():
                raise RecsightError(f"{path.name} has no attribute file {attributes.name} beside it")
            return path, attributes
        found = sorted(path.glob("*" + _ATTRIBUTES_SUFFIX))
        if len(found) != 1:
            what = "no" if not found else "more than one"
            raise RecsightError(f"folder {path} is not in the {self.fmt} format: {what} *{_ATTRIBUTES_SUFFIX} file"
                                + ("" if not found else "; give the <Name>.txt file instead"))
        sequences = path / (found[0].name[: -len(_ATTRIBUTES_SUFFIX)] + ".txt")
        if not sequences.is_file():
            raise RecsightError(f"folder {path} is not in the {self.fmt} format: no sequence file {sequences.name}")
        return sequences, found[0]

    def stage(self, con: duckdb.DuckDBPyConnection, unit: Unit, tag: str) -> Staged:
        if unit.role == SEQUENCES_ROLE:
            return self._stage_sequences(con, unit, tag)
        if unit.role == ATTRIBUTES_ROLE:
            return self._stage_attributes(con, unit, tag)
        return self._stage_titles(con, unit, tag)

    def _stage_sequences(self, con: duckdb.DuckDBPyConnection, unit: Unit, tag: str) -> Staged:
        lines = load_lines(con, unit.path, tag)
        first = (lines.first or "").split()
        if 1 in lines.bad_lines or len(first) < 2 or any("," in t or ";" in t for t in first):
            raise not_in_format(unit.name, self.fmt, "line 1 is not 'user item item ...' separated by spaces")
        src = Source(
            name=unit.name, rows=lines.count, columns={}, passthrough=("raw", "f"),
            relation=f"(SELECT _line, raw, _bad, regexp_split_to_array(trim(raw), '\\s+') AS f FROM {lines.relation})",
            structural=(f"CASE WHEN _bad IS NOT NULL THEN _bad "
                        f"WHEN raw IS NULL OR trim(raw) = '' THEN {sql_str(R.EMPTY_LINE)} END"),
            template=f"CASE WHEN raw IS NULL THEN '' ELSE array_to_string([{sql_str(MARKER)}] || f[2:], ' ') END",
        )
        table = f"{tag}_checked"
        check_rows(con, src, table, {"user_raw": "f[1]", "items": "f[2:]"},
                   [("len(items) = 0", NO_ITEMS)], unique=("user_raw", R.DUPLICATE_CUSTOMER))
        start = f"TIMESTAMP '{SEQUENCE_START:%Y-%m-%d %H:%M:%S}'"
        events = (
            f"SELECT {EVENT_COLUMNS} FROM (SELECT line, user_raw, item_id, '{S.PURCHASE}' AS event_type, "
            f"{start} + to_days(CAST(k AS INTEGER)) AS ts, NULL::VARCHAR AS session_id, NULL::INTEGER AS quantity, "
            f"NULL::DOUBLE AS price, NULL::DOUBLE AS rating FROM (SELECT line, user_raw, unnest(items) AS item_id, "
            f"unnest(range(len(items))) AS k FROM {table} WHERE reason IS NULL))"
        )
        return Staged(rows_read=lines.count, rejects=rejects_of(table),
                      accepted=f"SELECT line FROM {table} WHERE reason IS NULL", events=events,
                      notes=[f"event times are {SEQUENCE_START:%Y-%m-%d} + the item's position in days "
                             "(order only; not comparable across users)"], row_word="lines")

    def _stage_attributes(self, con: duckdb.DuckDBPyConnection, unit: Unit, tag: str) -> Staged:
        # A 0.3 MB JSON object of item -> list: parsed in Python (a DuckDB read would make each of
        # the 12,000 keys a struct field), and the brand/category roles need the whole file anyway.
        try:
            document = json.loads(unit.path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise not_in_format(unit.name, self.fmt, "it is not a JSON object of item id -> attribute ids") from None
        except OSError as exc:
            raise RecsightError(f"cannot read {unit.name}: {exc.strerror or exc}") from None
        if not isinstance(document, dict):
            raise not_in_format(unit.name, self.fmt, "it is not a JSON object of item id -> attribute ids")
        good: dict[str, list[str]] = {}
        lines: dict[str, int] = {}
        rejects: list[tuple[int, str, str]] = []
        for number, (key, value) in enumerate(document.items(), start=1):
            item = str(key).strip()
            if not item:
                rejects.append((number, R.EMPTY_ITEM, json.dumps({key: value})))
            elif not isinstance(value, list) or not all(_is_id(v) for v in value):
                rejects.append((number, BAD_ATTRIBUTES, json.dumps({key: value})))
            else:
                good[item] = [str(v).strip() for v in value]
                lines[item] = number
        roles = infer_attributes(good)
        items = pa.table({
            "line": pa.array([lines[i] for i in good], pa.int64()),
            "item_id": pa.array(list(good), pa.string()),
            "category": pa.array([roles[i][0] for i in good], pa.string()),
            "brand": pa.array([roles[i][1] for i in good], pa.string()),
        })
        bad = pa.table({
            "line": pa.array([r[0] for r in rejects], pa.int64()),
            "reason": pa.array([r[1] for r in rejects], pa.string()),
            "raw": pa.array([r[2] for r in rejects], pa.string()),
        })
        _materialise(con, f"{tag}_items", items)
        _materialise(con, f"{tag}_rejects", bad)
        brands = {b for _, b in roles.values() if b}
        query = (f"SELECT item_id, NULL::VARCHAR AS title, category, brand, NULL::DOUBLE AS price "
                 f"FROM {tag}_items")
        return Staged(rows_read=len(document), accepted=query, items=query,
                      rejects=f"SELECT line, reason, NULL::VARCHAR AS user_raw, raw AS raw_template FROM {tag}_rejects",
                      notes=[f"{len(brands)} attribute ids read as brands, the others as category levels "
                             "(line = the entry's position in the JSON object)"], row_word="entries")

    def _stage_titles(self, con: duckdb.DuckDBPyConnection, unit: Unit, tag: str) -> Staged:
        src = csv_source(con, unit.path, tag, self.fmt, required=_TITLE_COLUMNS, delimiter="\t")
        table = f"{tag}_checked"
        check_rows(con, src, table, {
            "item_id": src.identifier("s3rec_item_id"),
            "title": src.text("title_fragment"),
        }, [("item_id IS NULL", R.EMPTY_ITEM)], unique=("item_id", R.DUPLICATE_ITEM))
        query = (f"SELECT item_id, title, NULL::VARCHAR AS category, NULL::VARCHAR AS brand, NULL::DOUBLE AS price "
                 f"FROM {table} WHERE reason IS NULL")
        return Staged(rows_read=src.rows, rejects=rejects_of(table, with_user=False), accepted=query, items=query)


def infer_attributes(attributes: dict[str, list[str]]) -> dict[str, tuple[str | None, str | None]]:
    """item -> (category path, brand) from S3-Rec attribute lists (see the module docstring)."""
    later = {a for ids in attributes.values() for a in ids[1:]}
    split: dict[str, tuple[list[str], str | None]] = {}
    for item, ids in attributes.items():
        brand = ids[0] if ids and ids[0] not in later else None
        split[item] = (ids[1:] if brand else ids, brand)
    roots = {cats[0] for cats, _ in split.values() if cats}
    result: dict[str, tuple[str | None, str | None]] = {}
    for item, (cats, brand) in split.items():
        path = cats[:1]
        for a in cats[1:]:
            if a in roots:  # a second path starts here; keep the first
                break
            path.append(a)
        category = S.CATEGORY_SEPARATOR.join(f"attr {a}" for a in path) or None
        result[item] = (category, f"attr {brand}" if brand else None)
    return result


def _is_id(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.strip() != "")


def _materialise(con: duckdb.DuckDBPyConnection, table: str, data: pa.Table) -> None:
    con.register(f"{table}_in", data)
    try:
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM {table}_in")
    finally:
        con.unregister(f"{table}_in")
