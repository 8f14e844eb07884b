"""UCI Online Retail: one row per invoice line of a UK gift shop (Parquet or CSV).

Mapping, and the decisions behind it:

- a line of a normal invoice is a ``purchase``; a line of an invoice whose number starts with "C"
  (a cancellation) is a ``return``. ``quantity`` is stored as the number of units (positive for
  both: the event type carries the direction); ``price`` = UnitPrice; ``session_id`` = InvoiceNo;
  ``ts`` = InvoiceDate (ISO text, or the "12/1/2010 8:26" month-first form of the CSV exports).
- CustomerID is a float in the published file (17850.0): it is read as the integer "17850"
  before it is pseudonymised. A line without a customer is rejected ("missing customer id"): a
  recommender cannot attribute it to anyone.
- A line of a normal invoice with a negative quantity is a stock adjustment, not a sale:
  rejected as "negative quantity outside a cancellation" (in the published file every such line
  also lacks a customer, so it is counted under that reason, which is checked first).
- Postage, carriage, fees, discounts, samples, bank charges and manual adjustments (StockCode
  POST, DOT, C2, M, D, S, BANK CHARGES, AMAZONFEE, CRUK, B) are not products anyone would be
  recommended: rejected as "not a product (postage, fee or adjustment)".
- Items: title = the item's most frequent Description (ties: alphabetical), price = the median
  UnitPrice over its accepted lines with a price above zero, category and brand NULL (the data
  has none, and none is invented).
- Users: country = the customer's most frequent Country, first_seen = their first accepted line.
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
    most_frequent,
    open_source,
    rejects_of,
    sql_str,
)
from analytics.adapters.base import EVENTS_ROLE, Staged, Unit

__all__ = ["OnlineRetailAdapter", "NOT_A_PRODUCT", "NEGATIVE_QUANTITY_SALE", "NON_PRODUCT_CODES"]

NOT_A_PRODUCT = "not a product (postage, fee or adjustment)"
NEGATIVE_QUANTITY_SALE = "negative quantity outside a cancellation"
MISSING_INVOICE = "missing invoice number"
NON_PRODUCT_CODES = ("POST", "DOT", "C2", "M", "D", "S", "BANK CHARGES", "AMAZONFEE", "CRUK", "B")
COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")
_DATE_FORMATS = ("%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S")


class OnlineRetailAdapter:
    """Invoice lines -> purchases and returns; StockCodes -> items; customers -> users."""

    fmt = "online-retail"

    def units(self, paths: list[Path]) -> list[Unit]:
        return [Unit(require_file(p), EVENTS_ROLE) for p in paths]

    def stage(self, con: duckdb.DuckDBPyConnection, unit: Unit, tag: str) -> Staged:
        src = open_source(con, unit.path, tag, self.fmt, required=COLUMNS, user_column="CustomerID")
        table = f"{tag}_checked"
        codes = ", ".join(sql_str(c) for c in NON_PRODUCT_CODES)
        invoice = src.text("InvoiceNo")
        is_return = f"starts_with(upper({invoice}), 'C')"
        check_rows(con, src, table, {
            "user_raw": src.identifier("CustomerID", integral_text=True),
            "item_id": src.identifier("StockCode"),
            "event_type": f"CASE WHEN {is_return} THEN '{S.RETURN}' ELSE '{S.PURCHASE}' END",
            "ts": src.timestamp("InvoiceDate", _DATE_FORMATS),
            "session_id": invoice,
            "quantity": f"abs({src.integer('Quantity')})",
            "price": src.number("UnitPrice"),
            "rating": "NULL::DOUBLE",
            "title": src.text("Description"),
            "country": src.text("Country"),
        }, [
            ("user_raw IS NULL", R.MISSING_CUSTOMER),
            ("item_id IS NULL", R.EMPTY_ITEM),
            ("session_id IS NULL", MISSING_INVOICE),
            ("NOT ts_given", R.MISSING_TIMESTAMP),
            ("ts IS NULL", R.BAD_TIMESTAMP),
            ("NOT quantity_given", R.MISSING_QUANTITY),
            ("quantity IS NULL", R.BAD_QUANTITY),
            ("NOT price_given", R.MISSING_PRICE),
            ("price IS NULL", R.BAD_PRICE),
            ("price < 0", R.NEGATIVE_PRICE),
            (f"upper(item_id) IN ({codes})", NOT_A_PRODUCT),
            (f"event_type = '{S.PURCHASE}' AND signed_quantity < 0", NEGATIVE_QUANTITY_SALE),
        ], aux={
            "ts_given": src.given("InvoiceDate"),
            "quantity_given": src.given("Quantity"),
            "price_given": src.given("UnitPrice"),
            "signed_quantity": src.integer("Quantity"),
        })
        events = accepted_events(table)
        items = (
            f"SELECT p.item_id, t.title, NULL::VARCHAR AS category, NULL::VARCHAR AS brand, p.price FROM "
            f"(SELECT item_id, median(price) FILTER (WHERE price > 0) AS price FROM {table} WHERE reason IS NULL "
            f"GROUP BY item_id) p LEFT JOIN ({most_frequent('title', 'item_id', table)}) t USING (item_id)"
        )
        users = (
            f"SELECT f.user_raw, c.country, f.first_seen FROM "
            f"(SELECT user_raw, min(ts) AS first_seen FROM {table} WHERE reason IS NULL GROUP BY user_raw) f "
            f"LEFT JOIN ({most_frequent('country', 'user_raw', table)}) c USING (user_raw)"
        )
        return Staged(rows_read=src.rows, rejects=rejects_of(table), accepted=events, events=events,
                      items=items, users=users)
