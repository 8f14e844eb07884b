"""The events dataset: a shop file's events as date-partitioned Parquet and back, and the one-line
errors for a dataset that does not hold the data contract."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from analytics import schema as S
from analytics.event_dataset import ITEMS_DIR, export_events, register_duckdb
from errors import RecsightError

ITEMS = [
    ("i1", "Pan", "Home > Kitchen", "Acme", 10.0),
    ("i2", "Hose", "Home > Garden", None, None),
]
# user, item, event type, ts, session, quantity, price, rating: every nullable column NULL somewhere,
# two events on one day, a day without events in between, an item outside the catalogue.
EVENTS = [
    ("u1", "i1", S.VIEW, datetime(2024, 2, 1, 10, 0, 0, 123456), "s1", None, None, None),
    ("u1", "i1", S.PURCHASE, datetime(2024, 2, 1, 23, 59, 59, 999999), "s1", 2, 9.5, None),
    ("u2", "i2", S.RATING_EVENT, datetime(2024, 2, 3, 0, 0), None, None, None, 4.5),
    ("u2", "i9", S.RETURN, datetime(2024, 2, 4, 8, 30), "s9", -1, 3.25, None),
]


def _store(path: Path, events=EVENTS) -> Path:
    with duckdb.connect(str(path)) as con:
        S.create_tables(con)
        con.executemany(f"INSERT INTO {S.ITEMS} VALUES (?, ?, ?, ?, ?)", ITEMS)
        con.executemany(f"INSERT INTO {S.EVENTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
    return path


def _read(folder: Path, items: Path | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    register_duckdb(con, folder, items)
    return con


def test_export_then_read_gives_back_the_same_events_and_items(tmp_path: Path):
    summary = export_events(_store(tmp_path / "shop.duckdb"), tmp_path / "lake")

    assert (summary.events, summary.partitions, summary.items) == (4, 3, 2)
    assert sorted(p.name for p in (tmp_path / "lake").glob("date=*")) == [
        "date=2024-02-01", "date=2024-02-03", "date=2024-02-04"]
    assert [p.name for p in (tmp_path / "lake" / "date=2024-02-01").iterdir()] == ["part-0.parquet"]
    con = _read(tmp_path / "lake")
    assert con.execute(f"SELECT * FROM {S.EVENTS} ORDER BY {S.TS}").fetchall() == EVENTS
    assert [d[0] for d in con.execute(f"DESCRIBE {S.EVENTS}").fetchall()] == list(S.EVENTS_COLUMNS)
    assert con.execute(f"SELECT * FROM {S.ITEMS} ORDER BY 1").fetchall() == ITEMS


def test_a_new_export_replaces_the_old_one_date_by_date(tmp_path: Path):
    lake = tmp_path / "lake"
    export_events(_store(tmp_path / "a.duckdb"), lake)
    export_events(_store(tmp_path / "b.duckdb", EVENTS[:2]), lake)  # the later dates are gone from the store

    assert [p.name for p in lake.glob("date=*")] == ["date=2024-02-01"]
    assert _read(lake).execute(f"SELECT count(*) FROM {S.EVENTS}").fetchall() == [(2,)]


def test_export_refuses_a_folder_holding_something_else(tmp_path: Path):
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "notes.txt").write_text("mine")
    with pytest.raises(RecsightError, match="holds other files"):
        export_events(_store(tmp_path / "shop.duckdb"), tmp_path / "lake")
    assert (tmp_path / "lake" / "notes.txt").read_text() == "mine"


def _write_partition(lake: Path, select: str) -> None:
    (lake / "date=2024-02-01").mkdir(parents=True)
    duckdb.execute(f"COPY ({select}) TO '{lake / 'date=2024-02-01' / 'part-0.parquet'}' (FORMAT PARQUET)")


GOOD = ("SELECT 'u1' AS user_id, 'i1' AS item_id, 'view' AS event_type, TIMESTAMP '2024-02-01 10:00' AS ts, "
        "NULL::VARCHAR AS session_id, NULL::INTEGER AS quantity, 1.5::DOUBLE AS price, NULL::DOUBLE AS rating")


@pytest.mark.parametrize(("select", "message"), [
    (GOOD.replace(", 1.5::DOUBLE AS price", ""), "has no column price (DOUBLE)"),
    (GOOD.replace("1.5::DOUBLE AS price", "'1.5' AS price"), "column price is VARCHAR, the data contract says DOUBLE"),
    (GOOD.replace("TIMESTAMP '2024-02-01 10:00' AS ts", "TIMESTAMPTZ '2024-02-01 10:00+00' AS ts"),
     "column ts is TIMESTAMP WITH TIME ZONE, the data contract says TIMESTAMP"),
])
def test_a_dataset_off_the_contract_is_one_line_naming_the_column(tmp_path: Path, select: str, message: str):
    lake = tmp_path / "lake"
    _write_partition(lake, select)
    (lake / ITEMS_DIR).mkdir()
    duckdb.execute(f"COPY (SELECT * FROM (VALUES ('i1', 't', 'c', 'b', 1.0)) "
                   f"AS t(item_id, title, category, brand, price)) TO '{lake / ITEMS_DIR / 'part-0.parquet'}'")
    with pytest.raises(RecsightError) as caught:
        _read(lake)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_wider_ints_and_decimal_prices_are_cast_to_the_contract_types(tmp_path: Path):
    lake = tmp_path / "lake"
    _write_partition(lake, GOOD.replace("NULL::INTEGER AS quantity", "3::BIGINT AS quantity"))
    con = _read(lake, items=_write_items(tmp_path / "items.parquet"))
    assert con.execute(f"SELECT {S.QUANTITY}, typeof({S.QUANTITY}) FROM {S.EVENTS}").fetchall() == [(3, "INTEGER")]
    assert con.execute(f"SELECT typeof({S.PRICE}) FROM {S.ITEMS}").fetchall() == [("DOUBLE",)]  # was DECIMAL


def _write_items(path: Path) -> Path:
    duckdb.execute(f"COPY (SELECT 'i1' AS item_id, 't' AS title, 'c' AS category, 'b' AS brand, 1.0 AS price) "
                   f"TO '{path}' (FORMAT PARQUET)")
    return path


@pytest.mark.parametrize("make", ["missing", "empty", "no catalogue"])
def test_a_missing_or_empty_dataset_is_one_line(tmp_path: Path, make: str):
    lake = tmp_path / "lake"
    if make == "empty":
        lake.mkdir()
    if make == "no catalogue":
        _write_partition(lake, GOOD)
    expected = {"missing": "not found", "empty": "holds no date=*/*.parquet files",
                "no catalogue": "catalogue"}[make]
    with pytest.raises(RecsightError, match=re.escape(expected)) as caught:
        _read(lake)
    assert "\n" not in str(caught.value)
