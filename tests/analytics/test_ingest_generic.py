"""Generic format: the contract as CSV or Parquet, a folder or single files."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow.compute as pc
import pytest

from analytics.adapters import reasons as R
from analytics.event_validation import check_event_batch
from analytics.live_segments import KIND_EVENT
from errors import RecsightError
from tests.analytics.ingest_support import all_text, ingest, pid, query, reasons, rejects, secret, snapshot

EVENTS_HEADER = "user_id,item_id,event_type,ts,session_id,quantity,price,rating\n"


def write_parquet(path: Path, sql: str) -> Path:
    con = duckdb.connect()
    con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
    con.close()
    return path


def make_shop(folder: Path) -> Path:
    folder.mkdir()
    write_parquet(folder / "events.parquet", """
        SELECT * FROM (VALUES
            ('alice', 'i1', 'view', TIMESTAMP '2024-01-01 10:00:00', 's1', NULL::INTEGER, 9.5, NULL::DOUBLE),
            ('alice', 'i1', 'purchase', TIMESTAMP '2024-01-01 10:05:00', 's1', 2, 9.5, NULL),
            ('bob', 'i2', 'rating', TIMESTAMP '2024-01-02 09:00:00', NULL, NULL, NULL, 4.0),
            ('bob', 'i3', 'view', TIMESTAMP '2024-01-03 09:00:00', 's2', NULL, -1.0, NULL)
        ) t(user_id, item_id, event_type, ts, session_id, quantity, price, rating)""")
    write_parquet(folder / "items.parquet", """
        SELECT * FROM (VALUES ('i1', 'Mug', 'Home > Kitchen > Mugs', 'Acme', 9.5),
                              ('i2', 'Lamp', 'Home > Light', NULL, 30.0))
        t(item_id, title, category, brand, price)""")
    write_parquet(folder / "users.parquet", """
        SELECT * FROM (VALUES ('alice', 'FR', TIMESTAMP '2023-12-01'), ('carol', NULL, NULL))
        t(user_id, country, first_seen)""")
    return folder


def test_folder_of_parquet_fills_every_table_with_pseudonymised_customers(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    summary = ingest(db, "generic", make_shop(tmp_path / "shop"))

    assert summary.balanced
    assert [f.source for f in summary.files] == ["items.parquet", "users.parquet", "events.parquet"]
    assert reasons(summary) == {R.NEGATIVE_PRICE: 1}
    assert rejects(db) == [(4, R.NEGATIVE_PRICE)]  # Parquet: line = row number
    events = query(db, "SELECT user_id, item_id, event_type, quantity, rating FROM events ORDER BY ts")
    assert events == [(pid("alice"), "i1", "view", None, None), (pid("alice"), "i1", "purchase", 2, None),
                      (pid("bob"), "i2", "rating", None, 4.0)]
    assert query(db, "SELECT * FROM items ORDER BY item_id") == [
        ("i1", "Mug", "Home > Kitchen > Mugs", "Acme", 9.5), ("i2", "Lamp", "Home > Light", None, 30.0)]
    users = {u: (c, f) for u, c, f in query(db, "SELECT * FROM users")}
    assert users == {pid("alice"): ("FR", datetime(2023, 12, 1)),  # the users file's first_seen is earlier
                     pid("bob"): (None, datetime(2024, 1, 2, 9)),  # implied by the events
                     pid("carol"): (None, None)}
    assert summary.new_users == 3 and summary.new_items == 2
    text = all_text(db)
    assert "alice" not in text and "bob" not in text and "carol" not in text


def test_synthetic_shop_folder_loads_without_rejects(tmp_path: Path) -> None:
    synth = pytest.importorskip("analytics.synth")
    out = tmp_path / "demo"
    synth.generate_shop(out, n_users=40, n_items=80, n_days=5, seed=3)
    db = tmp_path / "shop.duckdb"

    summary = ingest(db, "generic", out)

    written = query(db, f"SELECT count(*) FROM '{out / 'events.parquet'}'")[0][0]
    assert summary.balanced and reasons(summary) == {}
    assert query(db, "SELECT count(*) FROM events")[0][0] == written > 0
    assert query(db, f"SELECT count(*) FROM '{out / 'items.parquet'}'") == query(db, "SELECT count(*) FROM items")


def test_csv_corpus_of_bad_rows_gets_one_reason_each(tmp_path: Path) -> None:
    rows = [
        b"u1,i1,view,2024-01-01 10:00:00,s1,,1.5,",           # 2 ok
        b'u1,"i,2",cart,2024-01-01T10:01:00Z,s1,1,"2.5",',    # 3 ok: quoted comma
        b",i1,view,2024-01-01 10:00:00,s1,,,",                # 4
        b"u2,,view,2024-01-01 10:00:00,s1,,,",                # 5
        b"u2,i1,view,yesterday noon,s1,,,",                   # 6
        b"u2,i1,view,,s1,,,",                                 # 7
        b"u2,i1,teleport,2024-01-01 10:00:00,s1,,,",          # 8
        b"u2,i1,purchase,2024-01-01 10:00:00,s1,1,-3,",       # 9
        b"u2,i1,purchase,2024-01-01 10:00:00,s1,1,cheap,",    # 10
        b"u2,i1,purchase,2024-01-01 10:00:00,s1,two,3,",      # 11
        b"u2,i1,view,2024-01-01 10:00:00,s1",                 # 12
        b"u2,i\xff\xfe1,view,2024-01-01 10:00:00,s1,,,",      # 13 invalid UTF-8
        b'u2,"i1,view,2024-01-01 10:00:00,s1,,,',             # 14 unpaired quote
        b"",                                                  # 15
        b"u3,i1,VIEW,2024-01-01 10:00:00+02:00,s1,,,5",       # 16 ok: case, offset
        b"u3,i1,view,2024-01-01",                             # 17 cut off
    ]
    path = tmp_path / "events.csv"
    path.write_bytes(EVENTS_HEADER.encode() + b"\n".join(rows))
    db = tmp_path / "shop.duckdb"

    summary = ingest(db, "generic", path)

    assert rejects(db) == [
        (4, R.MISSING_CUSTOMER), (5, R.EMPTY_ITEM), (6, R.BAD_TIMESTAMP), (7, R.MISSING_TIMESTAMP),
        (8, R.UNKNOWN_EVENT_TYPE), (9, R.NEGATIVE_PRICE), (10, R.BAD_PRICE), (11, R.BAD_QUANTITY),
        (12, R.WRONG_FIELD_COUNT), (13, R.BAD_ENCODING), (14, R.MALFORMED_QUOTES), (15, R.EMPTY_LINE),
        (17, R.TRUNCATED_LAST_LINE),
    ]
    (report,) = summary.files
    assert (report.rows_read, report.accepted, report.rejected_total) == (16, 3, 13)
    assert query(db, "SELECT item_id, event_type, ts, price, rating FROM events ORDER BY item_id, ts") == [
        ("i,2", "cart", datetime(2024, 1, 1, 10, 1), 2.5, None),
        ("i1", "view", datetime(2024, 1, 1, 8, 0), None, 5.0),  # +02:00 stored as UTC
        ("i1", "view", datetime(2024, 1, 1, 10, 0), 1.5, None),
    ]
    raw13 = query(db, "SELECT raw FROM rejects WHERE line = 13")[0][0]
    assert raw13.startswith(pid("u2") + ",i\ufffd\ufffd1,view")  # visible text, customer pseudonymised


OFFSETS = {  # offset -> the UTC instant of 2024-03-01 10:00 there, or None: refused
    "+99:00": None, "-13:00": None, "+14:01": None, "-12:01": None,
    "+14:00": datetime(2024, 2, 29, 20, 0), "-12:00": datetime(2024, 3, 1, 22, 0), "Z": datetime(2024, 3, 1, 10, 0),
    "+05:30": datetime(2024, 3, 1, 4, 30), "-0330": datetime(2024, 3, 1, 13, 30),
}


def test_impossible_time_zone_offsets_are_refused_by_ingest_and_intake(tmp_path: Path) -> None:
    """Real offsets run -12:00..+14:00; DuckDB reads up to +-99 h, which would store the event days off.
    File ingest and the live intake share the rule (analytics.adapters.generic.event_checks)."""
    offsets = list(OFFSETS)
    refused = [n for n, o in enumerate(offsets) if OFFSETS[o] is None]
    accepted = {f"i{n}": OFFSETS[o] for n, o in enumerate(offsets) if n not in refused}
    path = tmp_path / "events.csv"
    path.write_text(EVENTS_HEADER + "".join(f"u1,i{n},view,2024-03-01T10:00:00{o},,,,\n"
                                            for n, o in enumerate(offsets)))
    db = tmp_path / "shop.duckdb"
    ingest(db, "generic", path)
    assert rejects(db) == [(n + 2, R.BAD_UTC_OFFSET) for n in refused]  # line 1 is the header
    assert dict(query(db, "SELECT item_id, ts FROM events")) == accepted

    batch = [{"event_id": f"e{n}", "user_id": "u1", "item_id": f"i{n}", "event_type": "view",
              "ts": f"2024-03-01T10:00:00{o}"} for n, o in enumerate(offsets)]
    with duckdb.connect() as con:
        checked = check_event_batch(con, batch, secret(), datetime(2024, 6, 1))
    assert [(r.index, r.reason) for r in checked.rejected()] == [(n, R.BAD_UTC_OFFSET) for n in refused]
    rows = checked.rows.filter(pc.equal(checked.rows.column("kind"), KIND_EVENT)).to_pylist()
    assert {row["item_id"]: row["ts"] for row in rows} == accepted


def test_items_file_rejects_duplicates_and_bad_prices(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item_id,title,category,brand,price\n"
                    "i1,Mug,Home > Mugs,Acme,3\n"
                    "i1,Mug again,Home > Mugs,Acme,4\n"
                    ",Nameless,Home,,1\n"
                    "i2,Lamp,Home,,-2\n"
                    "i3,Rug,Home,,\n")
    db = tmp_path / "shop.duckdb"

    ingest(db, "generic", path)

    assert rejects(db) == [(3, R.DUPLICATE_ITEM), (4, R.EMPTY_ITEM), (5, R.NEGATIVE_PRICE)]
    assert query(db, "SELECT item_id, title, price FROM items ORDER BY 1") == [("i1", "Mug", 3.0), ("i3", "Rug", None)]


@pytest.mark.parametrize("content, message", [
    ("user_id,item_id,ts\nu1,i1,2024-01-01\n", "missing column event_type"),
    ("1,2268318,2520377,pv,1511544070\n", "missing column user_id"),  # a Taobao file
])
def test_file_without_contract_columns_is_fatal_and_names_the_column(tmp_path: Path, content: str,
                                                                       message: str) -> None:
    path = tmp_path / "events.csv"
    path.write_text(content)
    db = tmp_path / "shop.duckdb"

    with pytest.raises(RecsightError, match=f"events.csv is not in the generic format: {message}"):
        ingest(db, "generic", path)
    assert snapshot(db) is None


def test_parquet_with_wrong_column_type_or_garbage_is_fatal(tmp_path: Path) -> None:
    typed = write_parquet(tmp_path / "events.parquet",
                          "SELECT 'u' AS user_id, 'i' AS item_id, 'view' AS event_type, true AS ts")
    with pytest.raises(RecsightError, match="column ts has type BOOLEAN"):
        ingest(tmp_path / "a.duckdb", "generic", typed)
    garbage = tmp_path / "x" / "events.parquet"
    garbage.parent.mkdir()
    garbage.write_text(EVENTS_HEADER)
    with pytest.raises(RecsightError, match="cannot read events.parquet as Parquet"):
        ingest(tmp_path / "b.duckdb", "generic", garbage)


def test_folder_without_events_or_unrecognised_file_is_fatal(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "items.csv").write_text("item_id,title,category\n")
    with pytest.raises(RecsightError, match="no events.parquet or events.csv"):
        ingest(tmp_path / "a.duckdb", "generic", folder)
    other = tmp_path / "orders.csv"
    other.write_text("x\n")
    with pytest.raises(RecsightError, match="orders.csv is not in the generic format"):
        ingest(tmp_path / "a.duckdb", "generic", other)


@pytest.mark.parametrize("header_end", [b"\n", b"\r\n"])  # mixed or uniform CRLF line endings
def test_nul_bytes_and_stray_carriage_returns_do_not_shift_line_numbers(tmp_path: Path, header_end: bytes) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(EVENTS_HEADER.strip().encode() + header_end
                     + b"u1,i1,view,2024-01-01 10:00:00,s1,,,\r\n"    # 2 ok
                     + b"u1,i\x001,view,2024-01-01 10:00:00,s1,,,\r\n"  # 3 NUL byte
                     + b"u1,i1\rview,2024-01-01 10:00:00,s1,,,\r\n"   # 4 lone CR: DuckDB would split here
                     + b"u1,i9,bogus,2024-01-01 10:00:00,s1,,,\r\n")  # 5
    db = tmp_path / "shop.duckdb"

    ingest(db, "generic", path)

    assert rejects(db) == [(3, R.BAD_ENCODING), (4, R.STRAY_CR), (5, R.UNKNOWN_EVENT_TYPE)]
    assert query(db, "SELECT item_id FROM events") == [("i1",)]
