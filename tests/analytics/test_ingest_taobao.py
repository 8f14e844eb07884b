"""Taobao UserBehavior: headerless pv/cart/fav/buy with unix times, stored in Beijing time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from analytics.adapters import reasons as R
from errors import RecsightError
from tests.analytics.ingest_support import ingest, pid, query, reasons, rejects, seeded_store, snapshot


def test_real_prefix_accounts_for_all_84476_lines(shared_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "taobao.duckdb"
    summary = ingest(db, "taobao", shared_data / "taobao_userbehavior" / "UserBehavior_prefix.csv")

    assert summary.files[0].rows_read == 84_476 and summary.balanced
    assert reasons(summary) == {R.TRUNCATED_LAST_LINE: 1}
    assert rejects(db) == [(84_476, R.TRUNCATED_LAST_LINE)]
    assert query(db, "SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 1") == [
        ("cart", 4_497), ("favorite", 2_356), ("purchase", 1_750), ("view", 75_872)]
    assert query(db, "SELECT count(*) FROM users") == [(815,)]
    # line 1: 1,2268318,2520377,pv,1511544070 = 2017-11-24 17:21:10 UTC = 2017-11-25 01:21:10 in Beijing
    assert query(db, f"SELECT ts FROM events WHERE user_id = '{pid('1')}' AND item_id = '2268318'") == [
        (datetime(2017, 11, 25, 1, 21, 10),)]
    assert query(db, "SELECT category, title, brand, price FROM items WHERE item_id = '2268318'") == [
        ("category 2520377", None, None, None)]
    # the cut-off line keeps its text, with the customer id pseudonymised
    raw = query(db, "SELECT raw FROM rejects")[0][0]
    assert raw.split(",")[0] == pid("100370") and raw.split(",")[1:] == ["1968385", "1875258", "pv"]


def test_bad_lines_get_reasons(tmp_path: Path) -> None:
    path = tmp_path / "UserBehavior.csv"
    path.write_bytes(b"\n".join([
        b"1,100,10,pv,1511544070",     # 1
        b"1,101,10,buy,1511544071",    # 2
        b"1,102,10,like,1511544072",   # 3
        b"1,103,10,fav,yesterday",     # 4
        b",104,10,cart,1511544073",    # 5
        b"2,,10,cart,1511544073",      # 6
        b"2,105,10,cart",              # 7
        b"2,10\xe9,10,cart,1511544074",  # 8 Latin-1
        b"2,106,,cart,1511544075",     # 9 ok: no category
        b"",                           # 10
        b"2,107,10,pv,15115",          # 11 ok: a real (if early) unix time
    ]) + b"\n")
    db = tmp_path / "shop.duckdb"

    summary = ingest(db, "taobao", path)

    assert rejects(db) == [(3, R.UNKNOWN_EVENT_TYPE), (4, R.BAD_TIMESTAMP), (5, R.MISSING_CUSTOMER),
                           (6, R.EMPTY_ITEM), (7, R.WRONG_FIELD_COUNT), (8, R.BAD_ENCODING), (10, R.EMPTY_LINE)]
    assert summary.files[0].accepted == 4 and summary.balanced
    assert query(db, "SELECT item_id, event_type FROM events ORDER BY item_id") == [
        ("100", "view"), ("101", "purchase"), ("106", "cart"), ("107", "view")]
    assert query(db, "SELECT category FROM items WHERE item_id = '106'") == [(None,)]


@pytest.mark.parametrize("source", ["rees46_sample/2019-Oct-sample.csv", "amazon_beauty/Beauty.txt"])
def test_a_file_of_another_format_is_fatal_and_changes_nothing(shared_data: Path, tmp_path: Path,
                                                               source: str) -> None:
    db = seeded_store(tmp_path)
    before = snapshot(db)
    with pytest.raises(RecsightError, match="is not in the taobao format: expected 5 fields"):
        ingest(db, "taobao", shared_data / source)
    assert snapshot(db) == before
