"""Amazon S3-Rec sequences: order-only purchases, items with titles and inferred brand/category."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analytics.adapters import reasons as R
from analytics.adapters.amazon_seq import BAD_ATTRIBUTES, NO_ITEMS, SEQUENCE_START, infer_attributes
from errors import RecsightError
from tests.analytics.ingest_support import ingest, pid, query, seeded_store, snapshot


def test_real_beauty_folder_gives_the_published_counts(shared_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "beauty.duckdb"
    summary = ingest(db, "amazon-seq", shared_data / "amazon_beauty")

    assert summary.balanced
    counts = query(db, "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM items), "
                       "(SELECT count(*) FROM events), (SELECT count(*) FROM rejects)")
    assert counts == [(22_363, 12_101, 198_502, 0)]
    # line 2 of Beauty.txt is "2 6 7 8 9 10 4 11": that order, one day apart
    history = query(db, f"SELECT item_id, ts FROM events WHERE user_id = '{pid('2')}' ORDER BY ts")
    assert [item for item, _ in history] == ["6", "7", "8", "9", "10", "4", "11"]
    assert (history[1][1] - history[0][1]).days == 1 and history[0][1] == SEQUENCE_START
    titled, categorised, branded = query(db, "SELECT count(title), count(category), count(brand) FROM items")[0]
    assert titled >= 12_100 and categorised == 12_101 and branded > 7_000
    # items.tsv: 1  B004756YJA  nail lacquer simmer and shimmer  173 1 162 171
    assert query(db, "SELECT title, category, brand FROM items WHERE item_id = '1'") == [
        ("nail lacquer simmer and shimmer", "attr 1 > attr 162 > attr 171", "attr 173")]


def test_attribute_roles_brand_first_then_one_category_path() -> None:
    roles = infer_attributes({
        "a": ["90", "1", "2"],         # 90 is only ever first: a brand
        "b": ["1", "2", "3"],          # no brand
        "c": ["91", "4", "5", "1", "6"],  # brand, then two paths (4 > 5, 1 > 6): keep the first
        "d": [],
    })
    assert roles == {"a": ("attr 1 > attr 2", "attr 90"), "b": ("attr 1 > attr 2 > attr 3", None),
                     "c": ("attr 4 > attr 5", "attr 91"), "d": (None, None)}


def make_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "Tiny.txt").write_bytes(b"\n".join([
        b"u1 10 11 12",     # 1
        b"u2 11",           # 2
        b"u3",              # 3 no items
        b"",                # 4
        b"u4 1\xff 12",     # 5 invalid UTF-8
        b"u1 13",           # 6 a second line for u1
    ]) + b"\n")
    (folder / "Tiny_item2attributes.json").write_text(json.dumps(
        {"10": [50, 1, 2], "11": [1, 3], "12": "oops", "13": [51, 1]}))
    (folder / "items.tsv").write_text("s3rec_item_id\tasin\ttitle_fragment\ts3rec_attribute_ids\n"
                                      "10\tB01\tred lipstick\t50 1 2\n"
                                      "11\tB02\n"
                                      "\tB03\tnameless\t1\n")
    return folder


def test_bad_lines_and_entries_get_reasons(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    summary = ingest(db, "amazon-seq", make_folder(tmp_path / "tiny"))

    assert summary.balanced
    by_file = {f.source: (f.rows_read, f.accepted, dict(f.rejected)) for f in summary.files}
    assert by_file == {
        "Tiny.txt": (6, 2, {NO_ITEMS: 1, R.EMPTY_LINE: 1, R.BAD_ENCODING: 1, R.DUPLICATE_CUSTOMER: 1}),
        "Tiny_item2attributes.json": (4, 3, {BAD_ATTRIBUTES: 1}),
        "items.tsv": (3, 1, {R.WRONG_FIELD_COUNT: 1, R.EMPTY_ITEM: 1}),
    }
    assert query(db, "SELECT source, line, reason FROM rejects ORDER BY source, line") == [
        ("Tiny.txt", 3, NO_ITEMS), ("Tiny.txt", 4, R.EMPTY_LINE), ("Tiny.txt", 5, R.BAD_ENCODING),
        ("Tiny.txt", 6, R.DUPLICATE_CUSTOMER), ("Tiny_item2attributes.json", 3, BAD_ATTRIBUTES),
        ("items.tsv", 3, R.WRONG_FIELD_COUNT), ("items.tsv", 4, R.EMPTY_ITEM)]
    assert query(db, "SELECT raw FROM rejects WHERE source = 'Tiny.txt' AND line = 6") == [(f"{pid('u1')} 13",)]
    assert query(db, "SELECT item_id, title, category, brand FROM items ORDER BY item_id") == [
        ("10", "red lipstick", "attr 1 > attr 2", "attr 50"), ("11", None, "attr 1 > attr 3", None),
        ("12", None, None, None), ("13", None, "attr 1", "attr 51")]  # 12: from events; 13: catalogue only
    assert query(db, "SELECT count(*), count(DISTINCT user_id) FROM events") == [(4, 2)]


def test_wrong_folder_or_file_is_fatal_and_changes_nothing(shared_data: Path, tmp_path: Path) -> None:
    db = seeded_store(tmp_path)
    before = snapshot(db)
    with pytest.raises(RecsightError, match=r"no \*_item2attributes.json file"):
        ingest(db, "amazon-seq", shared_data / "rees46_sample")
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "Shop.txt").write_text("1,2268318,2520377,pv,1511544070\n")
    (folder / "Shop_item2attributes.json").write_text("{}")
    with pytest.raises(RecsightError, match="Shop.txt is not in the amazon-seq format"):
        ingest(db, "amazon-seq", folder)
    broken = make_folder(tmp_path / "broken")  # its sequences load, then the attribute file fails
    (broken / "Tiny_item2attributes.json").write_text("{not json")
    with pytest.raises(RecsightError, match="Tiny_item2attributes.json is not in the amazon-seq format"):
        ingest(db, "amazon-seq", broken)
    assert snapshot(db) == before
