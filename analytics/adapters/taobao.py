"""Taobao UserBehavior (Alibaba Tianchi): headerless CSV ``user_id,item_id,category_id,behavior_type,timestamp``.

Mapping:

- behavior_type pv / cart / fav / buy -> view / cart / favorite / purchase.
- ``timestamp`` is unix seconds; it is stored as Beijing local time (UTC+8, no daylight saving),
  the clock the shop and its users lived by, so "evening" means the Chinese evening.
- Items: category = "category <category_id>" (the ids are real, their names are not published);
  no title, brand or price. Where an item's rows disagree, the most frequent category wins.

Because the file has no header, its first line must have the five fields (else the file is not in
this format and nothing is loaded); a later line with the wrong number of fields is a reject, and
a cut-off last line is rejected as "truncated last line".
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from analytics import schema as S
from analytics.adapters import reasons as R
from analytics.adapters._files import require_file
from analytics.adapters._sources import (
    accepted_events,
    check_rows,
    csv_source,
    most_frequent,
    not_in_format,
    one,
    rejects_of,
)
from analytics.adapters.base import EVENTS_ROLE, Staged, Unit

__all__ = ["TaobaoAdapter", "COLUMNS", "BEIJING_OFFSET_HOURS"]

COLUMNS = ("user_id", "item_id", "category_id", "behavior_type", "timestamp")
BEIJING_OFFSET_HOURS = 8
_BEHAVIOURS = {"pv": S.VIEW, "cart": S.CART, "fav": S.FAVORITE, "buy": S.PURCHASE}
_LATEST_EPOCH = 4102444800  # 2100-01-01: anything later is not a real event time


class TaobaoAdapter:
    """pv / cart / fav / buy behaviour with unix timestamps."""

    fmt = "taobao"

    def units(self, paths: list[Path]) -> list[Unit]:
        return [Unit(require_file(p), EVENTS_ROLE) for p in paths]

    def stage(self, con: duckdb.DuckDBPyConnection, unit: Unit, tag: str) -> Staged:
        src = csv_source(con, unit.path, tag, self.fmt, required=COLUMNS, header=COLUMNS, user_column="user_id")
        table = f"{tag}_checked"
        self._check_first_line(con, src.relation, unit.path.name)
        behaviour = f"lower({src.text('behavior_type')})"
        mapped = "CASE " + " ".join(f"WHEN {behaviour} = '{k}' THEN '{v}'" for k, v in _BEHAVIOURS.items()) + " END"
        epoch = f"TRY_CAST({src.text('timestamp')} AS BIGINT)"
        category_id = src.identifier("category_id")
        check_rows(con, src, table, {
            "user_raw": src.identifier("user_id", integral_text=True),
            "item_id": src.identifier("item_id"),
            "event_type": mapped,
            "ts": (f"CASE WHEN {epoch} BETWEEN 0 AND {_LATEST_EPOCH} THEN make_timestamp({epoch} * 1000000) "
                   f"+ INTERVAL {BEIJING_OFFSET_HOURS} HOUR END"),
            "session_id": "NULL::VARCHAR",
            "quantity": "NULL::INTEGER",
            "price": "NULL::DOUBLE",
            "rating": "NULL::DOUBLE",
            "category": f"CASE WHEN {category_id} IS NOT NULL THEN 'category ' || {category_id} END",
        }, [
            ("user_raw IS NULL", R.MISSING_CUSTOMER),
            ("item_id IS NULL", R.EMPTY_ITEM),
            ("behaviour IS NULL", R.MISSING_EVENT_TYPE),
            ("event_type IS NULL", R.UNKNOWN_EVENT_TYPE),
            ("NOT ts_given", R.MISSING_TIMESTAMP),
            ("ts IS NULL", R.BAD_TIMESTAMP),
        ], aux={"behaviour": behaviour, "ts_given": src.given("timestamp")})
        events = accepted_events(table)
        items = (
            f"SELECT p.item_id, NULL::VARCHAR AS title, c.category, NULL::VARCHAR AS brand, NULL::DOUBLE AS price "
            f"FROM (SELECT DISTINCT item_id FROM {table} WHERE reason IS NULL) p "
            f"LEFT JOIN ({most_frequent('category', 'item_id', table)}) c USING (item_id)"
        )
        return Staged(rows_read=src.rows, rejects=rejects_of(table), accepted=events, events=events, items=items)

    def _check_first_line(self, con: duckdb.DuckDBPyConnection, relation: str, name: str) -> None:
        """A file whose first line is not five fields ending in a unix time is another format."""
        row = one(con, f"SELECT len(f), f[5], _bad FROM {relation} WHERE _line = 1")
        if row is None:
            raise not_in_format(name, self.fmt, "it has no lines")
        fields, last, bad = row
        if bad is not None or fields != len(COLUMNS) or last is None or not last.strip().isdigit():
            detail = "its first line is not readable text" if bad is not None else (
                f"expected {len(COLUMNS)} fields {','.join(COLUMNS)} without a header; line 1 has {fields} field(s)"
                + ("" if fields != len(COLUMNS) else " and no unix timestamp"))
            raise not_in_format(name, self.fmt, detail)
