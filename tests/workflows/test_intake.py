"""workflows.intake: the use cases the events API and ``cli.py ingest --append`` / ``compact`` share.

What a caller relies on: the batch limits are errors of their own (the API answers 413), a busy
writer is one too (429), the result says per event what happened, and the command line appends
files through the same writer (re-sending a file adds nothing) with one-line errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

import cli
from analytics.adapters import reasons as R
from analytics.live_read import open_live
from analytics.live_segments import live_folder, writer_lock
from errors import RecsightError
from tests.analytics.ingest_support import secret
from workflows.intake import (
    MAX_EVENTS_PER_BATCH,
    BatchTooLarge,
    IntakeBusy,
    append_events,
    append_items,
    compact,
)

EVENTS_CSV = (
    "user_id,item_id,event_type,ts,price\n"
    "alice,i1,view,2024-01-01 10:00:00,3\n"
    "bob,i2,purchase,2024-01-02 10:00:00,-1\n"
    "bob,i2,cart,2024-01-02 10:00:00,\n"
    "carol,i3,view,2024-01-03T09:00:00Z,5.5\n"
)


def _event(n: int) -> dict:
    return {"event_id": f"e{n}", "user_id": f"u{n % 7}", "item_id": f"i{n % 11}", "event_type": "view",
            "ts": f"2024-02-01T10:{n // 60 % 60:02d}:{n % 60:02d}"}


def _count(db: Path) -> int:
    con, _ = open_live(db)
    try:
        return con.execute("SELECT count(*) FROM all_events").fetchall()[0][0]
    finally:
        con.close()


def test_a_batch_over_the_limit_is_refused_whole_with_its_own_error(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    with pytest.raises(BatchTooLarge, match="at most 1,000") as caught:
        append_events(db, [_event(n) for n in range(MAX_EVENTS_PER_BATCH + 1)], secret())
    assert caught.value.limit == MAX_EVENTS_PER_BATCH
    with pytest.raises(BatchTooLarge):
        append_items(db, [{"item_id": f"i{n}"} for n in range(1_001)])
    assert not live_folder(db).exists()  # nothing was written, not even a folder
    assert append_events(db, [_event(n) for n in range(MAX_EVENTS_PER_BATCH)], secret()).accepted == 1_000


def test_a_body_that_is_not_a_list_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RecsightError, match="events must be a list"):
        append_events(tmp_path / "shop.duckdb", {"event_id": "e1"}, secret())  # type: ignore[arg-type]


def test_the_result_says_per_event_what_happened_as_json(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    batch = [_event(1), _event(1), {**_event(2), "event_type": "wink"}]
    body = append_events(db, batch, secret()).as_dict()
    assert json.loads(json.dumps(body)) == {
        "accepted": 1, "duplicates": 1, "rejected": [{"index": 2, "event_id": "e2", "reason": R.UNKNOWN_EVENT_TYPE}]}
    assert append_events(db, batch, secret()).as_dict()["duplicates"] == 2


def test_a_busy_writer_is_intake_busy(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    with writer_lock(live_folder(db)), pytest.raises(IntakeBusy):
        append_events(db, [_event(1)], secret(), timeout=0.05)


def test_items_change_the_catalogue_readers_see(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    append_events(db, [_event(1)], secret())
    result = append_items(db, [{"item_id": "i1", "title": "Alpine tent", "category": "Outdoor > Tents",
                                "price": "149.90"}, {"item_id": "i9", "price": "-2"}])
    assert result.accepted == 1 and [r.reason for r in result.rejected] == [R.NEGATIVE_PRICE]
    compact(db)
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT * FROM items ORDER BY item_id").fetchall() == [
        ("i1", "Alpine tent", "Outdoor > Tents", None, 149.9)]
    con.close()


# --------------------------------------------------------------------------- the command line


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_appends_a_file_once_and_compacts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, events = tmp_path / "shop.duckdb", tmp_path / "events.csv"
    events.write_text(EVENTS_CSV)
    code, out, _ = _cli(capsys, "ingest", "--append", "--db", str(db), "--format", "generic", str(events))
    assert code == 0
    assert "4 rows read, 3 new, 0 already stored, 1 rejected" in out and R.NEGATIVE_PRICE in out
    assert "check: 3 new + 0 already stored + 1 rejected = 4 of 4 read: ok" in out

    code, out, _ = _cli(capsys, "ingest", "--append", "--db", str(db), "--format", "generic", str(events))
    assert code == 0 and "0 new, 3 already stored" in out  # ids derived from each row's content

    parquet = tmp_path / "events_again.parquet"  # the same rows as Parquet derive the same ids
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv('{events}', all_varchar = true)) TO '{parquet}' (FORMAT parquet)")
    con.close()
    code, out, _ = _cli(capsys, "ingest", "--append", "--db", str(db), "--format", "generic", str(parquet))
    assert code == 0 and "0 new, 3 already stored" in out

    code, out, _ = _cli(capsys, "compact", "--db", str(db))
    assert code == 0 and "3 new events" in out
    assert _count(db) == 3
    code, out, _ = _cli(capsys, "compact", "--db", str(db))
    assert code == 0 and "nothing to fold" in out
    rejects = duckdb.connect(str(db), read_only=True).execute("SELECT source, line, reason FROM rejects").fetchall()
    assert rejects == [("events.csv", 3, R.NEGATIVE_PRICE), ("events_again.parquet", 2, R.NEGATIVE_PRICE)]


def test_cli_takes_a_client_event_id_column_and_items_files(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "shop.duckdb"
    (tmp_path / "items.csv").write_text("item_id,title,category\ni1,Mug,Home > Kitchen\n")
    (tmp_path / "events.csv").write_text("event_id,user_id,item_id,event_type,ts\n"
                                         "a1,alice,i1,view,2024-01-01 10:00:00\n"
                                         "a2,alice,i1,view,2024-01-01 10:00:00\n")
    code, out, _ = _cli(capsys, "ingest", "--append", "--db", str(db), "--format", "generic", str(tmp_path))
    assert code == 0, out
    assert "items.csv (items): 1 rows read, 1 new" in out and "events.csv (events): 2 rows read, 2 new" in out
    con, _ = open_live(db)
    assert con.execute("SELECT event_id FROM live_events ORDER BY 1").fetchall() == [("a1",), ("a2",)]
    assert con.execute("SELECT title FROM all_items").fetchall() == [("Mug",)]
    con.close()


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "taobao"], "--append takes the generic format"),
    (["--format", "generic", "users.csv"], "load users.csv with a plain ingest"),
    (["--format", "generic", "missing.csv"], "missing.csv does not exist"),
])
def test_cli_append_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                        message: str) -> None:
    (tmp_path / "users.csv").write_text("user_id\nalice\n")
    (tmp_path / "events.csv").write_text(EVENTS_CSV)
    paths = [str(tmp_path / a) if a.endswith(".csv") else a for a in args]
    if not any(a.endswith(".csv") for a in args):
        paths.append(str(tmp_path / "events.csv"))
    code, out, err = _cli(capsys, "ingest", "--append", "--db", str(tmp_path / "shop.duckdb"), *paths)
    assert code == 2 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out
