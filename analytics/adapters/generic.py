"""The generic format: the data contract itself, as CSV or Parquet.

A path is a folder holding ``events`` and ``items`` files and optionally a ``users`` file (each
``.parquet`` or ``.csv``; what ``cli.py synth`` writes), or one such file, recognised by the start
of its name (``events_2024-05.csv`` is an events file). Column names are the contract's
(case-insensitive); extra columns are ignored. Items and users are loaded before events so that an
event's item is already in the catalogue.

Text timestamps are ISO 8601; one with an offset ("+02:00", "Z", " UTC") is converted to UTC,
one without is taken as UTC. An offset outside -12:00..+14:00 (no real time zone has one) is
refused with its own reason; the live intake validates events with these same checks.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from analytics import schema as S
from analytics.adapters import reasons as R
from analytics.adapters._files import require_file
from analytics.adapters._sources import (
    Source,
    accepted_events,
    check_rows,
    not_in_format,
    open_source,
    rejects_of,
)
from analytics.adapters.base import EVENTS_ROLE, ITEMS_ROLE, USERS_ROLE, Staged, Unit
from errors import RecsightError

__all__ = ["GenericAdapter", "event_checks"]

_ROLES = (ITEMS_ROLE, USERS_ROLE, EVENTS_ROLE)  # load order
_SUFFIXES = (".parquet", ".csv")
_REQUIRED = {
    EVENTS_ROLE: (S.USER_ID, S.ITEM_ID, S.EVENT_TYPE, S.TS),
    ITEMS_ROLE: (S.ITEM_ID, S.TITLE, S.CATEGORY),
    USERS_ROLE: (S.USER_ID,),
}


def event_checks(src: Source) -> tuple[dict[str, str], dict[str, str], list[tuple[str, str]]]:
    """Outputs, auxiliary flags and checks for a row in the contract's events layout."""
    outputs = {
        "user_raw": src.identifier(S.USER_ID, integral_text=True),
        "item_id": src.identifier(S.ITEM_ID),
        "event_type": f"lower({src.text(S.EVENT_TYPE)})",
        "ts": src.timestamp(S.TS),
        "session_id": src.identifier(S.SESSION_ID),
        "quantity": src.integer(S.QUANTITY),
        "price": src.number(S.PRICE),
        "rating": src.number(S.RATING),
    }
    aux = {
        "ts_given": src.given(S.TS),
        "ts_offset_outside": src.offset_outside_range(S.TS),
        "quantity_given": src.given(S.QUANTITY),
        "price_given": src.given(S.PRICE),
        "rating_given": src.given(S.RATING),
    }
    known = ", ".join(f"'{t}'" for t in S.EVENT_TYPES)
    checks = [
        ("user_raw IS NULL", R.MISSING_CUSTOMER),
        ("item_id IS NULL", R.EMPTY_ITEM),
        ("event_type IS NULL", R.MISSING_EVENT_TYPE),
        (f"event_type NOT IN ({known})", R.UNKNOWN_EVENT_TYPE),
        ("NOT ts_given", R.MISSING_TIMESTAMP),
        ("ts_offset_outside", R.BAD_UTC_OFFSET),  # ts is NULL too: this names why
        ("ts IS NULL", R.BAD_TIMESTAMP),
        ("quantity_given AND quantity IS NULL", R.BAD_QUANTITY),
        ("quantity < 0", R.NEGATIVE_QUANTITY),
        ("price_given AND price IS NULL", R.BAD_PRICE),
        ("price < 0", R.NEGATIVE_PRICE),
        ("rating_given AND rating IS NULL", R.BAD_RATING),
    ]
    return outputs, aux, checks


class GenericAdapter:
    """Contract-shaped events, items and users files."""

    fmt = "generic"

    def units(self, paths: list[Path]) -> list[Unit]:
        units: list[Unit] = []
        for path in paths:
            units.extend(self._folder_units(path) if path.is_dir() else [self._file_unit(path)])
        return sorted(units, key=lambda u: _ROLES.index(u.role))

    def _folder_units(self, folder: Path) -> list[Unit]:
        units = []
        for role in _ROLES:
            found = [folder / f"{role}{suffix}" for suffix in _SUFFIXES if (folder / f"{role}{suffix}").is_file()]
            if len(found) > 1:
                raise RecsightError(f"folder {folder} holds both {found[0].name} and {found[1].name}: keep one")
            if not found and role != USERS_ROLE:
                raise RecsightError(f"folder {folder} is not in the generic format: no {role}.parquet or {role}.csv")
            units.extend(Unit(require_file(p), role) for p in found)
        return units

    def _file_unit(self, path: Path) -> Unit:
        require_file(path)
        role = next((r for r in _ROLES if path.stem.lower().startswith(r)), None)
        if role is None or path.suffix.lower() not in _SUFFIXES:
            raise not_in_format(path.name, self.fmt,
                                "expected events, items or users as .parquet or .csv, or a folder of them")
        return Unit(path, role)

    def stage(self, con: duckdb.DuckDBPyConnection, unit: Unit, tag: str) -> Staged:
        user_column = None if unit.role == ITEMS_ROLE else S.USER_ID
        src = open_source(con, unit.path, tag, self.fmt, required=_REQUIRED[unit.role], user_column=user_column)
        stage = {EVENTS_ROLE: _stage_events, ITEMS_ROLE: _stage_items, USERS_ROLE: _stage_users}[unit.role]
        return stage(con, src, f"{tag}_checked")


def _stage_events(con: duckdb.DuckDBPyConnection, src: Source, table: str) -> Staged:
    outputs, aux, checks = event_checks(src)
    check_rows(con, src, table, outputs, checks, aux)
    events = accepted_events(table)
    return Staged(rows_read=src.rows, rejects=rejects_of(table), accepted=events, events=events)


def _stage_items(con: duckdb.DuckDBPyConnection, src: Source, table: str) -> Staged:
    check_rows(con, src, table, {
        "item_id": src.identifier(S.ITEM_ID),
        "title": src.text(S.TITLE),
        "category": src.text(S.CATEGORY),
        "brand": src.text(S.BRAND),
        "price": src.number(S.PRICE),
    }, [
        ("item_id IS NULL", R.EMPTY_ITEM),
        ("price_given AND price IS NULL", R.BAD_PRICE),
        ("price < 0", R.NEGATIVE_PRICE),
    ], aux={"price_given": src.given(S.PRICE)}, unique=("item_id", R.DUPLICATE_ITEM))
    items = f"SELECT item_id, title, category, brand, price FROM {table} WHERE reason IS NULL"
    return Staged(rows_read=src.rows, rejects=rejects_of(table, with_user=False), accepted=items, items=items)


def _stage_users(con: duckdb.DuckDBPyConnection, src: Source, table: str) -> Staged:
    check_rows(con, src, table, {
        "user_raw": src.identifier(S.USER_ID, integral_text=True),
        "country": src.text(S.COUNTRY),
        "first_seen": src.timestamp(S.FIRST_SEEN),
    }, [
        ("user_raw IS NULL", R.MISSING_CUSTOMER),
        ("first_seen_given AND first_seen IS NULL", R.BAD_TIMESTAMP),
    ], aux={"first_seen_given": src.given(S.FIRST_SEEN)}, unique=("user_raw", R.DUPLICATE_CUSTOMER))
    users = f"SELECT user_raw, country, first_seen FROM {table} WHERE reason IS NULL"
    return Staged(rows_read=src.rows, rejects=rejects_of(table), accepted=users, users=users)
