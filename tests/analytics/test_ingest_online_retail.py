"""UCI Online Retail: invoice lines -> purchases/returns, with every row accounted for."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest

from analytics.adapters import reasons as R
from analytics.adapters.online_retail import NEGATIVE_QUANTITY_SALE, NOT_A_PRODUCT
from errors import RecsightError
from tests.analytics.ingest_support import ingest, pid, query, reasons, rejects, seeded_store, snapshot

HEADER = b"InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"


def test_real_file_accounts_for_all_541909_rows(shared_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "retail.duckdb"
    summary = ingest(db, "online-retail", shared_data / "online_retail" / "online_retail.parquet")

    events, rejected = query(db, "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM rejects)")[0]
    assert events + rejected == 541_909
    assert summary.balanced and summary.files[0].rows_read == 541_909
    assert query(db, "SELECT count(*) FROM rejects WHERE reason IS NULL OR reason = ''") == [(0,)]
    assert set(reasons(summary)) <= {R.MISSING_CUSTOMER, NOT_A_PRODUCT, NEGATIVE_QUANTITY_SALE, R.NEGATIVE_PRICE}
    assert reasons(summary)[R.MISSING_CUSTOMER] == 135_080  # the published count of lines without CustomerID
    # CustomerID 17850.0 (a float in the file) is the customer "17850", stored only as its pseudonym
    assert query(db, f"SELECT country FROM users WHERE user_id = '{pid('17850')}'") == [("United Kingdom",)]
    assert query(db, "SELECT count(*) FROM users WHERE user_id NOT LIKE 'c\\_%' ESCAPE '\\'") == [(0,)]
    # each reject's text is the row as CSV, its CustomerID field (the 7th) empty or a pseudonym
    texts = [raw for (raw,) in query(db, "SELECT raw FROM rejects")]
    customers = {row[6] for row in csv.reader(texts)}
    assert all(len(row) == 8 for row in csv.reader(texts))
    assert {c for c in customers if not c.startswith("c_")} == {""}
    assert query(db, "SELECT DISTINCT event_type FROM events ORDER BY 1") == [("purchase",), ("return",)]
    assert query(db, "SELECT count(*) FROM items WHERE title IS NULL OR category IS NOT NULL") == [(0,)]


def test_invoice_lines_map_to_purchases_returns_and_reasoned_rejects(tmp_path: Path) -> None:
    lines = [
        b"536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",  # 2 purchase
        b"536365,85123A,WHITE HEART HOLDER,2,12/1/2010 8:30,2.65,17850,United Kingdom",          # 3 month-first
        b"C536379,85123A,WHITE HANGING HEART,-3,2010-12-02 09:41:00,2.55,17850,France",          # 4 return
        b"536366,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,,United Kingdom",                  # 5
        b"536367,22633,HAND WARMER,6,2010-12-01 08:28:00,-1.85,13047,United Kingdom",            # 6
        b"536368,22633,HAND WARMER,-6,2010-12-01 08:28:00,1.85,13047,United Kingdom",            # 7
        b"536369,POST,POSTAGE,1,2010-12-01 08:28:00,18.0,13047,United Kingdom",                  # 8
        b"536370,22633,HAND WARMER,6,not a date,1.85,13047,United Kingdom",                      # 9
        b"536371,22633,HAND WARMER \xa35,6,2010-12-01 08:28:00,1.85,13047,United Kingdom",        # 10 Latin-1 pound
        b"536372,22633,HAND WARMER,six,2010-12-01 08:28:00,1.85,13047,United Kingdom",           # 11
        b"536373,,HAND WARMER,6,2010-12-01 08:28:00,1.85,13047,United Kingdom",                  # 12
        b"536374,22633,HAND WARMER,6,2010-12-01 08:28:00,1.85,13047,United Kingdom",             # 13 purchase
        b"536375,22633,HAND WARMER,6,2010-12",                                                   # 14 cut off
    ]
    path = tmp_path / "retail.csv"
    path.write_bytes(HEADER + b"\n".join(lines))
    db = tmp_path / "shop.duckdb"

    summary = ingest(db, "online-retail", path)

    assert rejects(db) == [(5, R.MISSING_CUSTOMER), (6, R.NEGATIVE_PRICE), (7, NEGATIVE_QUANTITY_SALE),
                           (8, NOT_A_PRODUCT), (9, R.BAD_TIMESTAMP), (10, R.BAD_ENCODING), (11, R.BAD_QUANTITY),
                           (12, R.EMPTY_ITEM), (14, R.TRUNCATED_LAST_LINE)]
    assert summary.balanced and summary.files[0].accepted == 4
    stored = query(db, "SELECT user_id, item_id, event_type, ts, session_id, quantity, price FROM events ORDER BY ts")
    assert stored == [
        (pid("17850"), "85123A", "purchase", datetime(2010, 12, 1, 8, 26), "536365", 6, 2.55),
        (pid("13047"), "22633", "purchase", datetime(2010, 12, 1, 8, 28), "536374", 6, 1.85),
        (pid("17850"), "85123A", "purchase", datetime(2010, 12, 1, 8, 30), "536365", 2, 2.65),
        (pid("17850"), "85123A", "return", datetime(2010, 12, 2, 9, 41), "C536379", 3, 2.55),
    ]
    # title = most frequent description, price = median unit price, no invented category
    assert query(db, "SELECT * FROM items WHERE item_id = '85123A'") == [
        ("85123A", "WHITE HANGING HEART", None, None, 2.55)]
    assert query(db, f"SELECT country, first_seen FROM users WHERE user_id = '{pid('17850')}'") == [
        ("United Kingdom", datetime(2010, 12, 1, 8, 26))]


def test_a_file_of_another_format_is_fatal_and_changes_nothing(shared_data: Path, tmp_path: Path) -> None:
    db = seeded_store(tmp_path)
    before = snapshot(db)
    with pytest.raises(RecsightError, match="not in the online-retail format: missing column InvoiceNo"):
        ingest(db, "online-retail", shared_data / "rees46_sample" / "2019-Oct-sample.csv")
    assert snapshot(db) == before
