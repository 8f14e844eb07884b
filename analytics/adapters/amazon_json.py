"""Amazon review sequences as a JSON pair: ``<Name>.inter.json`` and ``<Name>.item.json``.

The layout of the Amazon 2018 sets as prepared for generative recommendation (e.g. the
"Industrial & Scientific" set in ``../shared/data/amazon_scientific``):

- ``<Name>.inter.json``: a JSON object, customer id -> list of item indices in time order;
- ``<Name>.item.json``: a JSON object, item index -> {"title", "description", "brand",
  "categories"}, where ``categories`` is the path joined by commas ("A,B,C").

A path is the folder holding the pair or the ``<Name>.inter.json`` file itself.

Order only, no times, as with amazon-seq: a customer's k-th item becomes a ``purchase`` at
``SEQUENCE_START`` + k days (comparable within a customer, not across customers: use the
leave-one-out protocol). Line numbers are an entry's position in its JSON object.

Category paths: the file joins levels with "," but level names may hold ", " themselves
("Tapes, Adhesives & Sealants"), so a comma followed by a space stays inside the level. Paths are
stored with ``schema.CATEGORY_SEPARATOR``; an empty path is NULL. Descriptions go to the optional
``item_texts`` table (see ``analytics.schema.ITEM_TEXTS_COLUMNS`` for why not ``items``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from analytics import schema as S
from analytics.adapters import reasons as R
from analytics.adapters._files import require_file
from analytics.adapters._sources import EVENT_COLUMNS, MARKER, not_in_format
from analytics.adapters.amazon_seq import NO_ITEMS, SEQUENCE_START
from analytics.adapters.base import ITEMS_ROLE, SEQUENCES_ROLE, Staged, Unit
from errors import RecsightError

__all__ = ["AmazonJsonAdapter", "BAD_SEQUENCE", "BAD_ITEM_ENTRY", "category_path"]

BAD_SEQUENCE = "sequence is not a list of item ids"
BAD_ITEM_ENTRY = "item entry is not an object"
_INTER_SUFFIX = ".inter.json"
_ITEM_SUFFIX = ".item.json"
_LEVEL_SPLIT = re.compile(r",(?! )")  # "A,B, C" -> "A", "B, C"
_TEXT_FIELDS = ("title", "description", "brand", "categories")


class _Object(list):
    """A JSON object as its (key, value) pairs in file order, so duplicate keys are seen."""


@dataclass
class _Parsed:
    """Accepted rows (column -> values) and rejects (line, reason, user_raw, raw template)."""

    rows: dict[str, list] = field(default_factory=dict)
    rejects: list[tuple[int, str, str | None, str]] = field(default_factory=list)


class AmazonJsonAdapter:
    """``*.inter.json`` sequences -> purchase events; ``*.item.json`` -> items and descriptions."""

    fmt = "amazon-json"

    def units(self, paths: list[Path]) -> list[Unit]:
        units: list[Unit] = []
        for path in paths:
            inter, items = self._resolve(path)
            units += [Unit(require_file(inter), SEQUENCES_ROLE), Unit(require_file(items), ITEMS_ROLE)]
        return units

    def _resolve(self, path: Path) -> tuple[Path, Path]:
        if not path.exists():
            raise RecsightError(f"{path} does not exist")
        if path.is_file():
            if not path.name.endswith(_INTER_SUFFIX):
                raise not_in_format(path.name, self.fmt, f"give the folder or its <Name>{_INTER_SUFFIX} file")
            inter = path
        else:
            found = sorted(path.glob("*" + _INTER_SUFFIX))
            if len(found) != 1:
                what = "no" if not found else "more than one"
                raise RecsightError(f"folder {path} is not in the {self.fmt} format: {what} *{_INTER_SUFFIX} file"
                                    + ("" if not found else f"; give one <Name>{_INTER_SUFFIX} file instead"))
            inter = found[0]
        items = inter.with_name(inter.name[: -len(_INTER_SUFFIX)] + _ITEM_SUFFIX)
        if not items.is_file():
            raise RecsightError(f"{inter.name} has no item file {items.name} beside it")
        return inter, items

    def stage(self, con: duckdb.DuckDBPyConnection, unit: Unit, tag: str) -> Staged:
        entries = _read_object(unit, self.fmt)
        if unit.role == SEQUENCES_ROLE:
            return _stage_sequences(con, entries, tag)
        return _stage_items(con, entries, tag)


def _read_object(unit: Unit, fmt: str) -> _Object:
    """The file's top-level JSON object as ordered pairs; a file that is not one is a fatal error
    (a single JSON document has no rows to account for until it parses)."""
    try:
        document = json.loads(unit.path.read_bytes().decode("utf-8"), object_pairs_hook=_Object)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise not_in_format(unit.name, fmt, "it is not a UTF-8 JSON object") from None
    except OSError as exc:
        raise RecsightError(f"cannot read {unit.name}: {exc.strerror or exc}") from None
    if not isinstance(document, _Object):
        raise not_in_format(unit.name, fmt, "it is not a JSON object of id -> entry")
    return document


def _stage_sequences(con: duckdb.DuckDBPyConnection, entries: _Object, tag: str) -> Staged:
    parsed = _Parsed(rows={"line": [], "user_raw": [], "item_id": [], "k": []})
    seen: set[str] = set()
    for line, (key, value) in enumerate(entries, start=1):
        user = str(key).strip()
        reason = (R.MISSING_CUSTOMER if not user else R.DUPLICATE_CUSTOMER if user in seen
                  else BAD_SEQUENCE if not isinstance(value, list) or not all(_is_id(v) for v in value)
                  else NO_ITEMS if not value else None)
        if reason is not None:
            template = "{" + json.dumps(MARKER if user else key, ensure_ascii=False) + ": " + _dump(value) + "}"
            parsed.rejects.append((line, reason, user or None, template))
            continue
        seen.add(user)
        for k, item in enumerate(value):
            parsed.rows["line"].append(line)
            parsed.rows["user_raw"].append(user)
            parsed.rows["item_id"].append(str(item).strip())
            parsed.rows["k"].append(k)
    _materialise(con, f"{tag}_events", parsed.rows, {"line": pa.int64(), "k": pa.int32()})
    _materialise_rejects(con, tag, parsed)
    start = f"TIMESTAMP '{SEQUENCE_START:%Y-%m-%d %H:%M:%S}'"
    events = (f"SELECT {EVENT_COLUMNS} FROM (SELECT line, user_raw, item_id, '{S.PURCHASE}' AS event_type, "
              f"{start} + to_days(k) AS ts, NULL::VARCHAR AS session_id, NULL::INTEGER AS quantity, "
              f"NULL::DOUBLE AS price, NULL::DOUBLE AS rating FROM {tag}_events)")
    return Staged(rows_read=len(entries), rejects=_rejects_query(tag), events=events,
                  accepted=f"SELECT DISTINCT line FROM {tag}_events",
                  notes=[f"event times are {SEQUENCE_START:%Y-%m-%d} + the item's position in days "
                         "(order only; not comparable across users); line = the entry's position"],
                  row_word="entries")


def _stage_items(con: duckdb.DuckDBPyConnection, entries: _Object, tag: str) -> Staged:
    parsed = _Parsed(rows={"line": [], "item_id": [], "title": [], "category": [], "brand": [], "description": []})
    seen: set[str] = set()
    for line, (key, value) in enumerate(entries, start=1):
        item = str(key).strip()
        reason = (R.EMPTY_ITEM if not item else R.DUPLICATE_ITEM if item in seen
                  else BAD_ITEM_ENTRY if not isinstance(value, _Object) else None)
        if reason is not None:
            parsed.rejects.append((line, reason, None, "{" + json.dumps(key, ensure_ascii=False) + ": "
                                   + _dump(value) + "}"))
            continue
        seen.add(item)
        fields = {name: _text(v) for name, v in value if name in _TEXT_FIELDS}
        parsed.rows["line"].append(line)
        parsed.rows["item_id"].append(item)
        parsed.rows["title"].append(fields.get("title"))
        parsed.rows["category"].append(category_path(fields.get("categories")))
        parsed.rows["brand"].append(fields.get("brand"))
        parsed.rows["description"].append(fields.get("description"))
    _materialise(con, f"{tag}_items", parsed.rows, {"line": pa.int64()})
    _materialise_rejects(con, tag, parsed)
    items = f"SELECT item_id, title, category, brand, NULL::DOUBLE AS price FROM {tag}_items"
    described = sum(d is not None for d in parsed.rows["description"])
    return Staged(rows_read=len(entries), rejects=_rejects_query(tag), accepted=f"SELECT line FROM {tag}_items",
                  items=items, texts=f"SELECT item_id, description FROM {tag}_items",
                  notes=[f"{described:,} items with a description (stored in {S.ITEM_TEXTS}); "
                         "line = the entry's position"], row_word="entries")


def category_path(categories: str | None) -> str | None:
    """"A,B, C,D" -> "A > B, C > D" (a comma before a space belongs to the level name); empty
    levels dropped; None when nothing is left."""
    if not categories:
        return None
    levels = [level.strip(" ,") for level in _LEVEL_SPLIT.split(categories)]
    return S.CATEGORY_SEPARATOR.join(level for level in levels if level) or None


def _text(value: object) -> str | None:
    """A field's text, trimmed; None when empty or not text (a number is kept as its text)."""
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return None
    text = str(value).strip()
    return text or None


def _is_id(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and value.strip() != "")


def _dump(value: object) -> str:
    """An entry's value as JSON text for ``rejects.raw`` (objects in their file order)."""
    if isinstance(value, _Object):
        return "{" + ", ".join(json.dumps(k, ensure_ascii=False) + ": " + _dump(v) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _rejects_query(tag: str) -> str:
    return f"SELECT line, reason, user_raw, raw AS raw_template FROM {tag}_rejects"


def _materialise_rejects(con: duckdb.DuckDBPyConnection, tag: str, parsed: _Parsed) -> None:
    rows = {"line": [r[0] for r in parsed.rejects], "reason": [r[1] for r in parsed.rejects],
            "user_raw": [r[2] for r in parsed.rejects], "raw": [r[3] for r in parsed.rejects]}
    _materialise(con, f"{tag}_rejects", rows, {"line": pa.int64()})


def _materialise(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, list],
                 types: dict[str, pa.DataType]) -> None:
    """A temp table from Python columns (text unless ``types`` says otherwise)."""
    data = pa.table({name: pa.array(values, types.get(name, pa.string())) for name, values in columns.items()})
    con.register(f"{table}_in", data)
    try:
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM {table}_in")
    finally:
        con.unregister(f"{table}_in")
