"""REES46 multi-category store: view/cart/purchase with category code, brand, price and session."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from analytics.adapters import reasons as R
from analytics.adapters.rees46 import REMOVE_FROM_CART
from errors import RecsightError
from tests.analytics.ingest_support import all_text, ingest, pid, query, reasons, rejects, seeded_store, snapshot

HEADER = b"event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"


def test_real_sample_accounts_for_its_1000_rows(shared_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "rees.duckdb"
    summary = ingest(db, "rees46", shared_data / "rees46_sample" / "2019-Oct-sample.csv")

    events, rejected = query(db, "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM rejects)")[0]
    assert events + rejected == 1000 and summary.balanced
    assert query(db, "SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 1") == [
        ("cart", 3), ("purchase", 10), ("view", 987)]
    # first data row: 2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,...
    assert query(db, "SELECT category, brand FROM items WHERE item_id = '44600062'") == [
        ("category 2103807459595387724", "shiseido")]
    assert query(db, "SELECT category FROM items WHERE item_id = '3900821'") == [
        ("appliances > environment > water_heater",)]
    assert query(db, f"SELECT count(*) FROM events WHERE user_id = '{pid('541312140')}'")[0][0] >= 1
    assert "541312140" not in all_text(db)


def test_bad_rows_get_reasons(tmp_path: Path) -> None:
    lines = [
        b"2019-10-01 00:00:00 UTC,view,1004767,2053013555631882655,electronics.smartphone,samsung,254.82,520,s1",  # 2
        b"2019-10-01 00:00:05 UTC,remove_from_cart,1004767,2053013555631882655,,samsung,254.82,520,s1",  # 3
        b"2019-10-01 00:00:06 UTC,wishlist,1004767,2053013555631882655,,samsung,254.82,520,s1",  # 4
        b"2019-13-45 99:00:00 UTC,view,1004767,2053013555631882655,,samsung,254.82,520,s1",  # 5
        b"2019-10-01 00:00:07 UTC,view,1004767,2053013555631882655,,samsung,-1,520,s1",  # 6
        b"2019-10-01 00:00:08 UTC,view,,2053013555631882655,,samsung,3,520,s1",  # 7
        b"2019-10-01 00:00:09 UTC,view,1004767,2053013555631882655,,samsung,3,,s1",  # 8
        b"2019-10-01 00:00:10 UTC,view,1004767,2053013555631882655,,sams\xc3ung,3,520,s1",  # 9 broken UTF-8
        b"2019-10-01 00:00:11 UTC,cart,1004767,2053013555631882655,,samsung,3,520,s1,extra",  # 10
        b"2019-10-01 00:00:12 UTC,purchase,1004767,2053013555631882655,electronics.smartphone,,250,521,s2",  # 11
        b"2019-10-01 00:00:13 UTC,view,1004767,20530135556",  # 12 cut off
    ]
    path = tmp_path / "2019-Oct.csv"
    path.write_bytes(HEADER + b"\n".join(lines))
    db = tmp_path / "shop.duckdb"

    summary = ingest(db, "rees46", path)

    assert rejects(db) == [(3, REMOVE_FROM_CART), (4, R.UNKNOWN_EVENT_TYPE), (5, R.BAD_TIMESTAMP),
                           (6, R.NEGATIVE_PRICE), (7, R.EMPTY_ITEM), (8, R.MISSING_CUSTOMER), (9, R.BAD_ENCODING),
                           (10, R.WRONG_FIELD_COUNT), (12, R.TRUNCATED_LAST_LINE)]
    assert sum(reasons(summary).values()) == 9 and summary.files[0].accepted == 2
    assert query(db, "SELECT user_id, event_type, ts, session_id, price FROM events ORDER BY ts") == [
        (pid("520"), "view", datetime(2019, 10, 1), "s1", 254.82),
        (pid("521"), "purchase", datetime(2019, 10, 1, 0, 0, 12), "s2", 250.0),
    ]
    assert query(db, "SELECT category, brand, price FROM items") == [
        ("electronics > smartphone", "samsung", 252.41)]
    # a row with too many fields cannot show where its customer id is: its text is withheld
    assert "withheld" in query(db, "SELECT raw FROM rejects WHERE line = 10")[0][0]
    assert query(db, "SELECT raw FROM rejects WHERE line = 3")[0][0].endswith(f",{pid('520')},s1")


def test_a_file_of_another_format_is_fatal_and_changes_nothing(shared_data: Path, tmp_path: Path) -> None:
    db = seeded_store(tmp_path)
    before = snapshot(db)
    with pytest.raises(RecsightError, match="not in the rees46 format: missing column event_time"):
        ingest(db, "rees46", shared_data / "taobao_userbehavior" / "UserBehavior_prefix.csv")
    assert snapshot(db) == before
