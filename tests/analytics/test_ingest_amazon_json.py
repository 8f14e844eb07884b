"""Amazon JSON pairs (``*.inter.json`` + ``*.item.json``): order-only purchases, items with
category paths, descriptions in ``item_texts``, every entry accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from analytics import schema as S
from analytics.adapters import reasons as R
from analytics.adapters.amazon_json import BAD_ITEM_ENTRY, BAD_SEQUENCE, category_path
from analytics.adapters.amazon_seq import NO_ITEMS, SEQUENCE_START
from errors import RecsightError
from models.search_catalogue import read_catalogue
from tests.analytics.ingest_support import all_text, ingest, pid, query, seeded_store, snapshot


def test_real_scientific_folder_gives_the_published_counts(shared_data: Path, tmp_path: Path) -> None:
    db = tmp_path / "scientific.duckdb"
    summary = ingest(db, "amazon-json", shared_data / "amazon_scientific")

    assert summary.balanced
    counts = query(db, "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM items), "
                       "(SELECT count(*) FROM events), (SELECT count(*) FROM rejects), "
                       "(SELECT count(*) FROM item_texts)")
    assert counts == [(8_317, 4_344, 58_492, 0, 4_221)]
    # Scientific.inter.json: "1": [9, 10, 11, 12, 6], one day apart from SEQUENCE_START
    history = query(db, f"SELECT item_id, ts FROM events WHERE user_id = '{pid('1')}' ORDER BY ts")
    assert [item for item, _ in history] == ["9", "10", "11", "12", "6"]
    assert history[0][1] == SEQUENCE_START and (history[4][1] - history[0][1]).days == 4
    assert query(db, "SELECT title, category, brand FROM items WHERE item_id = '0'") == [(
        "SUPCO SPP6 Relay/Capacitor Hard Start Kit with 500% Increase Starting Torque.",
        "Industrial & Scientific > Industrial Electrical > Passive Components > Capacitors",
        "Sealed Unit Parts Co., Inc.")]
    # a level name with ", " inside stays one level
    assert query(db, "SELECT category FROM items WHERE item_id = '5'") == [
        ("Industrial & Scientific > Tapes, Adhesives & Sealants > Cyanoacrylate Adhesives",)]
    description = query(db, "SELECT description FROM item_texts WHERE item_id = '0'")[0][0]
    assert description.startswith("Relay/CAPACITOR hard start kit")


def test_category_path_keeps_commas_inside_level_names() -> None:
    assert category_path("A,B, C & D,E") == "A > B, C & D > E"
    assert category_path(",A,,B,") == "A > B"
    assert category_path("") is None and category_path(None) is None and category_path(" , ") is None


def make_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "Tiny.inter.json").write_text(
        '{"u1": [10, 11, "12"], "u2": [], " ": [10], "u3": "10 11", "u4": [10, true], "u1": [13],'
        ' "u5": [11]}', encoding="utf-8")
    (folder / "Tiny.item.json").write_text(json.dumps({
        "10": {"title": "Red relay", "description": "A relay.", "brand": "Acme", "categories": "Top,Relays"},
        "11": {"title": "  ", "description": "", "brand": None, "categories": ""},
        "12": "not an object",
        "": {"title": "nameless"},
        "13": {"title": 42, "categories": "Top,Tapes, Adhesives & Sealants,Duct Tape", "extra": [1]},
    }), encoding="utf-8")
    return folder


def test_bad_entries_get_reasons_and_every_entry_is_accounted(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    summary = ingest(db, "amazon-json", make_folder(tmp_path / "tiny"))

    assert summary.balanced
    by_file = {f.source: (f.rows_read, f.accepted, dict(f.rejected)) for f in summary.files}
    assert by_file == {
        "Tiny.inter.json": (7, 2, {NO_ITEMS: 1, R.MISSING_CUSTOMER: 1, BAD_SEQUENCE: 2, R.DUPLICATE_CUSTOMER: 1}),
        "Tiny.item.json": (5, 3, {BAD_ITEM_ENTRY: 1, R.EMPTY_ITEM: 1}),
    }
    assert query(db, "SELECT source, line, reason FROM rejects ORDER BY source, line") == [
        ("Tiny.inter.json", 2, NO_ITEMS), ("Tiny.inter.json", 3, R.MISSING_CUSTOMER),
        ("Tiny.inter.json", 4, BAD_SEQUENCE), ("Tiny.inter.json", 5, BAD_SEQUENCE),
        ("Tiny.inter.json", 6, R.DUPLICATE_CUSTOMER),
        ("Tiny.item.json", 3, BAD_ITEM_ENTRY), ("Tiny.item.json", 4, R.EMPTY_ITEM)]
    # the raw text of a reject names the customer by pseudonym only
    assert query(db, "SELECT raw FROM rejects WHERE source = 'Tiny.inter.json' AND line = 6") == [
        (f'{{"{pid("u1")}": [13]}}',)]
    assert '"u1"' not in all_text(db) and '"u4"' not in all_text(db)
    assert query(db, "SELECT item_id, title, category, brand FROM items ORDER BY item_id") == [
        ("10", "Red relay", "Top > Relays", "Acme"), ("11", None, None, None), ("12", None, None, None),
        ("13", "42", "Top > Tapes, Adhesives & Sealants > Duct Tape", None)]  # 12: from events only
    assert query(db, "SELECT item_id, description FROM item_texts") == [("10", "A relay.")]
    assert query(db, "SELECT count(*), count(DISTINCT user_id) FROM events") == [(4, 2)]


def test_wrong_folder_or_file_is_fatal_and_changes_nothing(shared_data: Path, tmp_path: Path) -> None:
    db = seeded_store(tmp_path)
    before = snapshot(db)
    with pytest.raises(RecsightError, match=r"no \*\.inter\.json file"):
        ingest(db, "amazon-json", shared_data / "amazon_beauty")
    with pytest.raises(RecsightError, match="give the folder or its <Name>.inter.json file"):
        ingest(db, "amazon-json", shared_data / "amazon_scientific" / "Scientific.item.json")
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "Shop.inter.json").write_text("{}")
    with pytest.raises(RecsightError, match="has no item file Shop.item.json"):
        ingest(db, "amazon-json", lone)
    broken = make_folder(tmp_path / "broken")  # its sequences load, then the item file fails
    (broken / "Tiny.item.json").write_text("[1, 2]")
    with pytest.raises(RecsightError, match="Tiny.item.json is not in the amazon-json format"):
        ingest(db, "amazon-json", broken)
    (broken / "Tiny.item.json").write_bytes(b'{"1": {"title": "\xff"}}')
    with pytest.raises(RecsightError, match="not a UTF-8 JSON object"):
        ingest(db, "amazon-json", broken)
    assert snapshot(db) == before


def test_reingest_is_skipped_and_a_store_without_item_texts_still_reads(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "tiny")
    db = tmp_path / "shop.duckdb"
    ingest(db, "amazon-json", folder)
    again = ingest(db, "amazon-json", folder)
    assert all(f.skipped for f in again.files)

    old = seeded_store(tmp_path / "old")  # a generic store: no item_texts table at all
    con = duckdb.connect(str(old), read_only=True)
    try:
        assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?",
                               [S.ITEM_TEXTS]).fetchone()[0]
        catalogue = read_catalogue(con)
    finally:
        con.close()
    assert len(catalogue) == 1 and catalogue[S.DESCRIPTION].isna().all()
