"""Whole-ingest behaviour: one transaction, no duplicates, no raw customer ids, an honest summary."""

from __future__ import annotations

from pathlib import Path

import pytest

import cli
from analytics.adapters import reasons as R
from errors import RecsightError
from tests.analytics.ingest_support import all_text, ingest, pid, query, snapshot

HEADER = "user_id,item_id,event_type,ts\n"


def events_file(path: Path, *rows: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


def test_a_fatal_error_after_loading_a_file_leaves_the_database_exactly_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    ingest(db, "generic", events_file(tmp_path / "a" / "events.csv", "u1,i1,view,2024-01-01 10:00:00"))
    before = snapshot(db)
    good = events_file(tmp_path / "b" / "events.csv", "u2,i2,cart,2024-01-02 10:00:00", "u2,i2,bad,x")
    wrong = tmp_path / "c" / "events.csv"
    wrong.parent.mkdir()
    wrong.write_text("user,item\nu3,i3\n")

    with pytest.raises(RecsightError, match="missing column user_id"):
        ingest(db, "generic", good, wrong)  # good is staged and stored before wrong is read

    assert snapshot(db) == before


def test_a_failed_ingest_into_a_new_path_leaves_no_database(tmp_path: Path) -> None:
    db = tmp_path / "new.duckdb"
    taobao_with_header = tmp_path / "UserBehavior.csv"
    taobao_with_header.write_text("user_id,item_id,category_id,behavior_type,timestamp\n1,2,3,pv,1511544070\n")

    with pytest.raises(RecsightError, match="not in the taobao format"):
        ingest(db, "taobao", taobao_with_header)

    assert not db.exists() and not (tmp_path / "new.duckdb.wal").exists()


@pytest.mark.parametrize("fmt, path, message", [
    ("generic", "nowhere/events.csv", "does not exist"),
    ("online-retail", "nowhere.parquet", "does not exist"),
    ("taobao", ".", "is not a file"),
    ("csv", "x.csv",
     "unknown format 'csv': choose one of generic, online-retail, rees46, amazon-seq, amazon-json, taobao"),
])
def test_missing_files_and_unknown_formats_are_one_line_errors(tmp_path: Path, fmt: str, path: str,
                                                               message: str) -> None:
    db = tmp_path / "shop.duckdb"
    with pytest.raises(RecsightError, match=message) as caught:
        ingest(db, fmt, tmp_path / path)
    assert "\n" not in str(caught.value)
    assert not db.exists()


def test_ingesting_the_same_files_twice_adds_nothing(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    path = events_file(tmp_path / "events.csv", "u1,i1,view,2024-01-01 10:00:00", "u1,i1,oops,2024-01-01")
    ingest(db, "generic", path)
    before = snapshot(db)

    again = ingest(db, "generic", path)

    assert snapshot(db) == before
    (report,) = again.files
    assert report.skipped is not None and "same content as events.csv" in report.skipped
    assert "skipped" in again.render()


def test_an_overlapping_export_adds_only_the_events_not_yet_stored(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    rows = ["u1,i1,view,2024-01-01 10:00:00", "u1,i2,view,2024-01-01 10:01:00", "u2,i1,cart,2024-01-01 10:02:00"]
    ingest(db, "generic", events_file(tmp_path / "day1" / "events.csv", *rows))

    summary = ingest(db, "generic", events_file(tmp_path / "day1-2" / "events.csv",
                                                 *reversed(rows), "u2,i1,purchase,2024-01-02 09:00:00"))

    (report,) = summary.files
    assert (report.accepted, report.new_events, report.already_stored) == (4, 1, 3)
    assert query(db, "SELECT count(*), count(DISTINCT (user_id, item_id, event_type, ts)) FROM events") == [(4, 4)]
    assert "3 already in the store" in summary.render()


def test_raw_customer_ids_reach_no_table_not_even_rejects(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(
        HEADER.encode()
        + b"ALICE-77,i1,view,2024-01-01 10:00:00\n"         # ok
        + b"BOB-88,i1,view,not a time\n"                    # bad timestamp
        + b"CAROL-99,i\xff1,view,2024-01-01 10:00:00\n"      # bad encoding
        + b"DAVE-11,i1,view,2024-01-01,extra\n"             # too many fields: text withheld
        + b"ERIN-22,i1"                                     # cut off
    )
    db = tmp_path / "shop.duckdb"

    ingest(db, "generic", path)

    text = all_text(db)
    for raw in ("ALICE-77", "BOB-88", "CAROL-99", "DAVE-11", "ERIN-22"):
        assert raw not in text
    assert query(db, "SELECT line, raw FROM rejects WHERE line IN (3, 6) ORDER BY line") == [
        (3, f"{pid('BOB-88')},i1,view,not a time"), (6, f"{pid('ERIN-22')},i1")]


def test_summary_accounts_for_every_row_per_reason(tmp_path: Path) -> None:
    path = events_file(tmp_path / "events.csv", "u1,i1,view,2024-01-01 10:00:00", ",i1,view,2024-01-01",
                       "u1,,view,2024-01-01", "u2,i2,view,2024-01-01")
    summary = ingest(tmp_path / "shop.duckdb", "generic", path)

    text = summary.render()
    assert "events.csv (events): 4 rows read, 2 accepted, 2 rejected" in text
    assert f"1  {R.MISSING_CUSTOMER}" in text and f"1  {R.EMPTY_ITEM}" in text
    assert "check: 2 accepted + 2 rejected = 4 of 4 read: ok" in text
    assert "new users: 2, new items: 2" in text


def test_command_line_prints_one_line_and_exits_2_on_a_wrong_file(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "orders.csv"
    wrong.write_text("order,amount\n1,2\n")

    code = cli.main(["ingest", "--db", str(tmp_path / "shop.duckdb"), "--format", "online-retail", str(wrong)])

    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "error: file orders.csv is not in the online-retail format: missing column InvoiceNo"


def test_a_file_ingested_before_is_still_checked_when_claimed_as_another_format(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    path = events_file(tmp_path / "events.csv", "u1,i1,view,2024-01-01 10:00:00")
    ingest(db, "generic", path)

    with pytest.raises(RecsightError, match="not in the taobao format"):
        ingest(db, "taobao", path)
