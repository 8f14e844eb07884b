"""REES46 "eCommerce behaviour data from a multi-category store" (CSV as published, or Parquet).

Mapping:

- ``event_type`` view / cart / purchase keep their names. ``remove_from_cart`` (in the cosmetics
  shop's files) has no contract event: rejected as "unsupported event type remove_from_cart".
- ``event_time`` ("2019-10-01 00:00:00 UTC") is stored in UTC; ``user_session`` is the session,
  ``price`` the event's price; ``user_id`` is pseudonymised.
- Items: category = ``category_code`` with its dots as path separators
  ("electronics.smartphone" -> "electronics > smartphone"), or "category <category_id>" when the
  code is missing (the id is real, its name is not published); brand as given (NULL if empty);
  price = the median event price; no title (the data has none).
  Where a product's rows disagree, the most frequent value wins (ties: alphabetical).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from analytics import schema as S
from analytics.adapters import reasons as R
from analytics.adapters._files import require_file
from analytics.adapters._sources import accepted_events, check_rows, most_frequent, open_source, rejects_of
from analytics.adapters.base import EVENTS_ROLE, Staged, Unit

__all__ = ["Rees46Adapter", "REMOVE_FROM_CART"]

REMOVE_FROM_CART = "unsupported event type remove_from_cart"
COLUMNS = ("event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
           "user_id", "user_session")
_EVENT_TYPES = {"view": S.VIEW, "cart": S.CART, "purchase": S.PURCHASE}


class Rees46Adapter:
    """view / cart / purchase events with category code, brand, price and session."""

    fmt = "rees46"

    def units(self, paths: list[Path]) -> list[Unit]:
        return [Unit(require_file(p), EVENTS_ROLE) for p in paths]

    def stage(self, con: duckdb.DuckDBPyConnection, unit: Unit, tag: str) -> Staged:
        src = open_source(con, unit.path, tag, self.fmt, required=COLUMNS, user_column="user_id")
        table = f"{tag}_checked"
        kind = f"lower({src.text('event_type')})"
        mapped = "CASE " + " ".join(f"WHEN {kind} = '{k}' THEN '{v}'" for k, v in _EVENT_TYPES.items()) + " END"
        code, category_id = src.text("category_code"), src.identifier("category_id")
        check_rows(con, src, table, {
            "user_raw": src.identifier("user_id", integral_text=True),
            "item_id": src.identifier("product_id"),
            "event_type": mapped,
            "ts": src.timestamp("event_time"),
            "session_id": src.text("user_session"),
            "quantity": "NULL::INTEGER",
            "price": src.number("price"),
            "rating": "NULL::DOUBLE",
            "category": (f"CASE WHEN {code} IS NOT NULL THEN replace({code}, '.', '{S.CATEGORY_SEPARATOR}') "
                         f"WHEN {category_id} IS NOT NULL THEN 'category ' || {category_id} END"),
            "brand": src.text("brand"),
        }, [
            ("user_raw IS NULL", R.MISSING_CUSTOMER),
            ("item_id IS NULL", R.EMPTY_ITEM),
            ("kind IS NULL", R.MISSING_EVENT_TYPE),
            ("kind = 'remove_from_cart'", REMOVE_FROM_CART),
            ("event_type IS NULL", R.UNKNOWN_EVENT_TYPE),
            ("NOT ts_given", R.MISSING_TIMESTAMP),
            ("ts IS NULL", R.BAD_TIMESTAMP),
            ("price_given AND price IS NULL", R.BAD_PRICE),
            ("price < 0", R.NEGATIVE_PRICE),
        ], aux={"kind": kind, "ts_given": src.given("event_time"), "price_given": src.given("price")})
        events = accepted_events(table)
        items = (
            f"SELECT p.item_id, NULL::VARCHAR AS title, c.category, b.brand, p.price FROM "
            f"(SELECT item_id, median(price) AS price FROM {table} WHERE reason IS NULL GROUP BY item_id) p "
            f"LEFT JOIN ({most_frequent('category', 'item_id', table)}) c USING (item_id) "
            f"LEFT JOIN ({most_frequent('brand', 'item_id', table)}) b USING (item_id)"
        )
        return Staged(rows_read=src.rows, rejects=rejects_of(table), accepted=events, events=events, items=items)
