"""The store of shown lists: one row per position, customers pseudonymised as the event intake does,
each bad impression refused with its reason while the rest are kept, idempotent by event id across
processes, and durable when the append returns."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from analytics.adapters import reasons as R
from analytics.event_validation import (
    ANCIENT_TIMESTAMP,
    FUTURE_TIMESTAMP,
    ID_TOO_LONG,
    MISSING_EVENT_ID,
    NOT_AN_OBJECT,
    WRONG_TYPE,
)
from analytics.impressions import (
    EMPTY_ITEMS,
    ITEMS_NOT_A_LIST,
    LABEL_NOT_PRINTABLE,
    LABEL_TOO_LONG,
    MAX_ITEMS_PER_LIST,
    MISSING_ITEMS,
    MISSING_LIST,
    REPEATED_ITEM,
    TOO_MANY_ITEMS,
    UNPAIRED_VARIANT,
    ImpressionStore,
    LiveBusy,
    attach_shown,
    shown_folder,
)
from analytics.live_read import open_live
from analytics.live_segments import list_segments, writer_lock
from analytics.live_store import LiveStore
from tests.analytics.ingest_support import pid, secret
from tests.analytics.test_live_store import spawn, wait_for_line

T0 = datetime(2024, 3, 1, 12, 0, 0)


def impression(n: int, user: str = "alice", items: list | None = None, **changes: object) -> dict:
    return {"event_id": f"s{n}", "user_id": user, "ts": (T0 + timedelta(seconds=n)).isoformat(), "list": "home",
            "items": ["i1", "i2", "i3"] if items is None else items, "model_version": "v1",
            "experiment": None, "variant": None, **changes}


def rows(db: Path) -> list[tuple]:
    """(event_id, user_id, ts, list, position, item_id, model_version, experiment, variant), sorted."""
    con = duckdb.connect(":memory:")
    try:
        attach_shown(con, db)
        return con.execute("SELECT event_id, user_id, ts, list, position, item_id, model_version, experiment, "
                           "variant FROM shown ORDER BY event_id, position").fetchall()
    finally:
        con.close()


def test_an_impression_is_one_row_per_position_with_the_customer_pseudonymised(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    result = ImpressionStore(db).append([
        impression(1, items=["i7", " i8 ", 9]),
        impression(2, user=17850.0, ts="2024-03-01T14:00:02+02:00", list="search", model_version=None,
                   experiment="ranker-test", variant="B", items=["i1"]),
    ], secret())
    assert (result.accepted, result.duplicates, result.rejected) == (2, 0, ())
    assert rows(db) == [
        ("s1", pid("alice"), T0 + timedelta(seconds=1), "home", 1, "i7", "v1", None, None),
        ("s1", pid("alice"), T0 + timedelta(seconds=1), "home", 2, "i8", "v1", None, None),
        ("s1", pid("alice"), T0 + timedelta(seconds=1), "home", 3, "9", "v1", None, None),
        ("s2", pid("17850"), T0 + timedelta(seconds=2), "search", 1, "i1", None, "ranker-test", "B"),
    ]
    # the same customer, as the event intake names them: the two stores join on user_id
    LiveStore(db).append_events([{"event_id": "e1", "user_id": "17850.0", "item_id": "i1", "event_type": "click",
                                  "ts": T0.isoformat()}], secret())
    con, _ = open_live(db)
    assert con.execute("SELECT user_id FROM all_events").fetchall() == [(pid("17850"),)]
    con.close()
    assert "alice" not in all_text_of(shown_folder(db))


def all_text_of(folder: Path) -> str:
    con = duckdb.connect(":memory:")
    try:
        return " ".join(str(v) for row in con.execute(
            f"SELECT * FROM read_parquet('{folder}/*.parquet')").fetchall() for v in row)
    finally:
        con.close()


def test_bad_impressions_come_back_with_a_reason_each_and_the_rest_are_stored(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    batch = [
        impression(0),
        impression(1, items=[]),
        {k: v for k, v in impression(2).items() if k != "items"},
        impression(3, items="i1"),
        impression(4, items=[f"i{n}" for n in range(MAX_ITEMS_PER_LIST + 1)]),
        impression(5, items=["i1", " ", "i2"]),
        impression(6, items=["i1", "i2", "i1"]),
        impression(7, ts="yesterday-ish"),
        impression(8, ts=(datetime.now() + timedelta(days=30)).isoformat()),
        impression(9, ts="1931-05-01T00:00:00"),
        impression(10, experiment="ranker-test"),
        impression(11, variant="B"),
        impression(12, list=" "),
        impression(13, model_version="v" * 65),
        impression(14, list="home\x00"),
        {k: v for k, v in impression(15).items() if k != "event_id"},
        impression(16, user=None),
        impression(17, user="u" * 129),
        impression(18, items=["i1", ["nested"]]),
        "not an impression",
        impression(20, items=[f"i{n}" for n in range(MAX_ITEMS_PER_LIST)]),  # exactly the limit: fine
    ]
    result = ImpressionStore(db).append(batch, secret())
    assert result.accepted == 2 and result.duplicates == 0
    assert [(r.index, r.event_id, r.reason) for r in result.rejected] == [
        (1, "s1", EMPTY_ITEMS), (2, "s2", MISSING_ITEMS), (3, "s3", ITEMS_NOT_A_LIST), (4, "s4", TOO_MANY_ITEMS),
        (5, "s5", R.EMPTY_ITEM), (6, "s6", REPEATED_ITEM), (7, "s7", R.BAD_TIMESTAMP), (8, "s8", FUTURE_TIMESTAMP),
        (9, "s9", ANCIENT_TIMESTAMP), (10, "s10", UNPAIRED_VARIANT), (11, "s11", UNPAIRED_VARIANT),
        (12, "s12", MISSING_LIST), (13, "s13", LABEL_TOO_LONG), (14, "s14", LABEL_NOT_PRINTABLE),
        (15, None, MISSING_EVENT_ID), (16, "s16", R.MISSING_CUSTOMER), (17, "s17", ID_TOO_LONG),
        (18, "s18", WRONG_TYPE), (19, None, NOT_AN_OBJECT)]
    stored = rows(db)
    assert {r[0] for r in stored} == {"s0", "s20"} and len(stored) == 3 + MAX_ITEMS_PER_LIST


def test_a_batch_of_only_bad_impressions_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    result = ImpressionStore(db).append([impression(1, items=[]), 42], secret())
    assert result.accepted == 0 and len(result.rejected) == 2 and result.segments == ()
    assert list_segments(shown_folder(db)) == []


def test_the_same_impressions_twice_add_nothing_and_repeats_in_a_batch_count_once(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    store = ImpressionStore(db)
    first = store.append([impression(1), impression(2), impression(1, list="other")], secret())
    assert (first.accepted, first.duplicates) == (2, 1)
    again = store.append([impression(1), impression(2)], secret())
    assert (again.accepted, again.duplicates, again.segments) == (0, 2, ())
    # another writer (as another process would be) reads the ids from the files first
    other = ImpressionStore(db)
    assert (other.append([impression(2), impression(3)], secret()).accepted) == 1
    # and the first catches up with what the other wrote before its next append
    assert store.append([impression(3), impression(4)], secret()).accepted == 1
    assert sorted({r[0] for r in rows(db)}) == ["s1", "s2", "s3", "s4"]
    assert [r[3] for r in rows(db) if r[0] == "s1"] == ["home"] * 3  # the first of the repeats


_WRITER = """
import sys
from pathlib import Path
from analytics.impressions import ImpressionStore
store = ImpressionStore(Path(sys.argv[1]))
accepted = 0
for b in range(int(sys.argv[2])):
    batch = [{"event_id": f"s{b}-{j}", "user_id": f"u{j}", "ts": "2024-03-01T12:00:00", "list": "home",
              "items": ["i1", "i2"]} for j in range(10)]
    accepted += store.append(batch, "SECRET").accepted
print("accepted", accepted, flush=True)
"""


def test_two_processes_sending_the_same_impressions_store_each_once(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    children = [spawn(_WRITER.replace("SECRET", secret()), str(db), "15") for _ in range(2)]
    totals = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0, out[-2000:]
        totals.append(int(out.split("accepted")[1].split()[0]))
    assert sum(totals) == 150
    stored = rows(db)
    assert len(stored) == 300 and len({(r[0], r[4]) for r in stored}) == 300


def test_a_busy_writer_lock_is_a_clear_error_after_the_timeout(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    with writer_lock(shown_folder(db)), pytest.raises(LiveBusy, match="try again"):
        ImpressionStore(db).append([impression(1)], secret(), timeout=0.05)


_APPEND_THEN_WAIT = """
import sys, time
from pathlib import Path
from analytics.impressions import ImpressionStore
batch = [{"event_id": f"k{j}", "user_id": "bob", "ts": "2024-03-01T12:00:00", "list": "home",
          "items": ["i1", "i2", "i3"]} for j in range(50)]
ImpressionStore(Path(sys.argv[1])).append(batch, "SECRET")
print("ok", flush=True)
time.sleep(60)
"""


def test_an_acknowledged_batch_survives_kill_9_of_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    child = spawn(_APPEND_THEN_WAIT.replace("SECRET", secret()), str(db))
    wait_for_line(child, "ok")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert len(rows(db)) == 150
    (shown_folder(db) / ".tmp-left-by-a-killed-writer.parquet").write_bytes(b"half a file")
    result = ImpressionStore(db).append([impression(1), {**impression(2), "event_id": "k7"}], secret())
    assert (result.accepted, result.duplicates, result.segments) == (1, 1, (2,))  # numbering goes on
    assert not list(shown_folder(db).glob(".tmp-*"))  # the killed writer's temp file is gone
    assert len(rows(db)) == 153
