"""The live store: appends validated as ingest validates, idempotent by event id, durable when they
return, seen whole by readers, and folded by a compaction that a kill at any point cannot harm."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics import schema as S
from analytics.adapters import reasons as R
from analytics.event_validation import (
    ANCIENT_TIMESTAMP,
    FUTURE_TIMESTAMP,
    ID_TOO_LONG,
    MISSING_EVENT_ID,
    NOT_AN_OBJECT,
    VALUE_TOO_LONG,
    WRONG_TYPE,
)
from analytics.ingest import ingest_paths
from analytics.live_compact import compact
from analytics.live_read import LiveStale, open_live, refresh_live
from analytics.live_segments import LiveBusy, list_segments, live_folder, read_folded_marker, writer_lock
from analytics.live_sql import folded_seq
from analytics.live_store import LiveStore, utc_now
from analytics.synth import generate_shop
from tests.analytics.ingest_support import all_text, pid, secret

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 3, 1, 12, 0, 0)


def event(n: int, user: str = "alice", item: str = "i1", kind: str = "view", prefix: str = "e") -> dict:
    """A valid event with a unique time (so each one can be told apart in ``events``)."""
    return {"event_id": f"{prefix}{n}", "user_id": user, "item_id": item, "event_type": kind,
            "ts": (T0 + timedelta(seconds=n)).isoformat()}


def visible(db: Path) -> list[tuple]:
    """Every event a reader sees (snapshot + live), as (user, item, type, ts), sorted."""
    con, _ = open_live(db)
    try:
        return sorted(con.execute("SELECT user_id, item_id, event_type, ts FROM all_events").fetchall())
    finally:
        con.close()


def times(db: Path) -> list[datetime]:
    return sorted(row[3] for row in visible(db))


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_line(child: subprocess.Popen, expected: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if line.strip() == expected:
            return
        if not line and child.poll() is not None:
            break
    child.kill()
    raise AssertionError(f"child never printed {expected!r}: {child.stdout.read()[-2000:]}")


# --------------------------------------------------------------------------- validation


def test_bad_events_come_back_with_a_reason_each_and_good_ones_are_stored(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    batch = [
        event(1),
        {**event(2), "event_type": "teleport"},
        {**event(3), "ts": "yesterday-ish"},
        {**event(4), "price": -3},
        {k: v for k, v in event(5).items() if k != "event_id"},
        {**event(6), "item_id": ["not", "an", "id"]},
        "not an object",
        {**event(8), "ts": (datetime.now() + timedelta(days=30)).isoformat()},
        {**event(9), "ts": "1931-05-01T00:00:00"},
        {**event(10), "user_id": "u" * 129},
        {**event(11), "title": "x" * 5000, "session_id": "s" * 5000},
        {**event(12), "quantity": True},
        {**event(13), "user_id": None},
        {**event(14), "price": float("nan")},
        {**event(15), "user_id": 17850.0, "event_type": "PURCHASE", "ts": "2024-03-01T14:00:15+02:00"},
    ]
    result = LiveStore(db).append_events(batch, secret())

    assert result.accepted == 2 and result.duplicates == 0
    assert [(r.index, r.event_id, r.reason) for r in result.rejected] == [
        (1, "e2", R.UNKNOWN_EVENT_TYPE), (2, "e3", R.BAD_TIMESTAMP), (3, "e4", R.NEGATIVE_PRICE),
        (4, None, MISSING_EVENT_ID), (5, "e6", WRONG_TYPE), (6, None, NOT_AN_OBJECT), (7, "e8", FUTURE_TIMESTAMP),
        (8, "e9", ANCIENT_TIMESTAMP), (9, "e10", ID_TOO_LONG), (10, "e11", VALUE_TOO_LONG), (11, "e12", WRONG_TYPE),
        (12, "e13", R.MISSING_CUSTOMER), (13, "e14", R.BAD_PRICE)]
    # the float id is the customer "17850", as in a CSV; the offset is converted to UTC
    assert visible(db) == sorted([(pid("alice"), "i1", "view", T0 + timedelta(seconds=1)),
                                  (pid("17850"), "i1", "purchase", T0 + timedelta(seconds=15))])

    compact(db)
    con = duckdb.connect(str(db), read_only=True)
    stored = con.execute("SELECT source, line, reason FROM rejects ORDER BY line").fetchall()
    con.close()
    assert stored == [("intake", r.index + 1, r.reason) for r in result.rejected]
    assert "alice" not in all_text(db).replace(pid("alice"), "")  # no raw customer id, rejects included


def test_a_batch_is_all_or_nothing_per_event(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    result = LiveStore(db).append_events([event(1), {**event(2), "rating": "five"}], secret())
    assert result.accepted == 1 and [r.reason for r in result.rejected] == [R.BAD_RATING]
    assert times(db) == [T0 + timedelta(seconds=1)]


_HOSTILE = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80), st.floats(),
    st.text(max_size=30), st.text(min_size=1100, max_size=1200), st.sampled_from(["\ud800", "infinity", "-infinity",
    "2024-02-30", "0001-01-01", "99999-01-01", "2024-01-01T10:00:00+99:00", " ", "\x00", "1e999"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
_FIELDS = ("event_id", "user_id", "item_id", "event_type", "ts", "session_id", "quantity", "price", "rating")
_GOOD = {"event_id": st.uuids().map(str), "user_id": st.sampled_from(["ann", "bo", "17850"]),
         "item_id": st.sampled_from(["i1", "i2"]), "event_type": st.sampled_from(sorted(S.EVENT_TYPES)),
         "ts": st.sampled_from(["2024-03-01T12:00:00", "2024-03-01 13:00:00Z"]), "session_id": st.just("s1"),
         "quantity": st.integers(0, 5), "price": st.floats(0, 100), "rating": st.floats(1, 5)}
_EVENT = st.one_of(
    st.fixed_dictionaries({f: st.one_of(_GOOD[f], _HOSTILE) if f in ("ts", "price", "quantity") else _GOOD[f]
                           for f in _FIELDS}),
    st.dictionaries(st.sampled_from(_FIELDS), _HOSTILE, max_size=9),
    _HOSTILE,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(_EVENT, max_size=8))
def test_hostile_batches_never_raise_and_are_applied_per_event(tmp_path: Path, batch: list) -> None:
    db = tmp_path / f"{uuid.uuid4().hex}.duckdb"  # the fixture's folder is shared by the examples
    result = LiveStore(db).append_events(batch + batch[:2], secret())  # some events twice in one batch
    assert result.accepted + result.duplicates + len(result.rejected) == len(batch) + len(batch[:2])
    assert _live_count(db) == result.accepted  # exactly the accepted events, each whole
    assert len({r.index for r in result.rejected}) == len(result.rejected)


def _live_count(db: Path) -> int:
    if not live_folder(db).exists():
        return 0
    con, _ = open_live(db)
    try:
        rows = con.execute("SELECT count(*), count(user_id), count(item_id), count(event_type), count(ts) "
                           "FROM live_events").fetchall()[0]
    finally:
        con.close()
    assert len(set(rows)) == 1  # no event stored without one of its required fields
    return rows[0]


# --------------------------------------------------------------------------- idempotency


def test_the_same_batch_twice_adds_nothing_and_ids_repeated_in_a_batch_count_once(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    store = LiveStore(db)
    batch = [event(1), event(2), event(2), {**event(3), "event_id": "e1"}]
    first = store.append_events(batch, secret())
    assert (first.accepted, first.duplicates) == (2, 2)
    again = store.append_events(batch, secret())
    assert (again.accepted, again.duplicates, again.segments) == (0, 4, ())
    assert times(db) == [T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]

    compact(db)  # once folded, the ids are known from the snapshot: to this writer and to a new one
    for writer in (store, LiveStore(db)):
        late = writer.append_events(batch + [event(4)], secret())
        assert (late.accepted, late.duplicates) in ((1, 4), (0, 5))
    assert len(times(db)) == 3

    compact(db)  # a second fold: the writer merges the new ids into what it knew
    assert store.append_events([event(n) for n in range(1, 6)], secret()).as_dict()["duplicates"] == 3
    assert len(times(db)) == 5  # e3 and e5 were never stored


_WRITER = """
import sys
from pathlib import Path
from analytics.live_store import LiveStore, utc_now
db, prefix, batches = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
store = LiveStore(db)
accepted = 0
for b in range(batches):
    events = [{"event_id": f"{prefix}{b}-{j}", "user_id": f"u{j}", "item_id": f"i{b}", "event_type": "view",
               "ts": f"2024-03-01T12:{b % 60:02d}:{j:02d}"} for j in range(int(sys.argv[4]))]
    accepted += store.append_events(events, "SECRET").accepted
print("accepted", accepted, flush=True)
print("ok", flush=True)
"""


def test_two_processes_sending_the_same_events_store_each_once(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    script = _WRITER.replace("SECRET", secret())
    children = [spawn(script, str(db), "b", "20", "10") for _ in range(2)]
    totals = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0, out[-2000:]
        totals.append(int(out.split("accepted")[1].split()[0]))
    assert sum(totals) == 200  # every event accepted by exactly one of the two writers
    con, view = open_live(db)
    ids = con.execute("SELECT count(*), count(DISTINCT event_id) FROM live_events").fetchall()[0]
    con.close()
    assert ids == (200, 200)
    assert [seq for seq, _ in list_segments(live_folder(db))] == list(range(1, view.last_seq + 1))


def test_a_busy_writer_lock_is_a_clear_error_after_the_timeout(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    with writer_lock(live_folder(db)), pytest.raises(LiveBusy, match="try again"):
        LiveStore(db).append_events([event(1)], secret(), timeout=0.05)


# --------------------------------------------------------------------------- durability and readers


_APPEND_THEN_WAIT = """
import sys, time
from pathlib import Path
from analytics.live_store import LiveStore, utc_now
events = [{"event_id": f"k{j}", "user_id": "bob", "item_id": "i1", "event_type": "cart",
           "ts": f"2024-03-01T12:00:{j:02d}"} for j in range(50)]
LiveStore(Path(sys.argv[1])).append_events(events, "SECRET")
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
    assert len(visible(db)) == 50
    assert LiveStore(db).append_events([event(1)], secret()).segments == (2,)  # numbering goes on


def test_readers_see_every_batch_whole_while_another_process_appends_and_compactions_run(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    LiveStore(db).append_events([event(0, item="seed")], secret())
    compact(db)
    child = spawn(_WRITER.replace("SECRET", secret()), str(db), "w", "20", "25")  # batch b: 25 events of item i<b>
    seen: set[int] = set()
    con, view = open_live(db)
    try:
        rounds = 0
        while child.poll() is None:
            rounds += 1
            if rounds % 4 == 0:
                compact(db)  # folds and deletes files while the held connection and the writer go on
            try:
                refresh_live(con, view)
            except LiveStale:
                con.close()
                con, view = open_live(db)
            fresh, _ = open_live(db)
            for reader in (con, fresh):
                per_batch = reader.execute("SELECT item_id, count(*) FROM all_events GROUP BY item_id").fetchall()
                seen.update(n for item, n in per_batch if item != "seed")
            fresh.close()
        assert child.returncode == 0, child.stdout.read()[-2000:]
    finally:
        con.close()
    assert seen <= {25}
    assert len(visible(db)) == 1 + 20 * 25


def test_live_helpers_show_new_events_items_and_customers(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    store = LiveStore(db)
    store.append_items([{"item_id": "i1", "title": "Tent", "category": "Outdoor > Tents", "price": 120}])
    store.append_events([event(1, user="ann")], secret())
    compact(db)
    con, view = open_live(db, shadow=True)
    try:
        mark = utc_now()
        store.append_items([{"item_id": "i1", "title": "Alpine tent"}, {"item_id": "i2", "title": "Stove"}])
        store.append_events([event(2, user="ann", item="i2"), event(3, user="cy", item="i3")], secret())
        assert refresh_live(con, view) == 2
        changed = con.execute("SELECT DISTINCT user_id FROM live_events WHERE seq > ? ORDER BY 1",
                              [view.folded_seq]).fetchall()
        assert [r[0] for r in changed] == sorted([pid("ann"), pid("cy")])
        ann = con.execute("SELECT item_id, event_id FROM live_events WHERE user_id = ? AND received_at > ?",
                          [pid("ann"), mark]).fetchall()
        assert ann == [("i2", "e2")]
        assert con.execute("SELECT count(*) FROM live_events WHERE received_at > ?", [utc_now()]).fetchall() == [(0,)]
        items = dict(con.execute("SELECT item_id, title FROM items").fetchall())  # shadowing the snapshot's
        assert items == {"i1": "Alpine tent", "i2": "Stove", "i3": None}
        assert con.execute("SELECT price FROM items WHERE item_id = 'i1'").fetchall() == [(120.0,)]
        assert con.execute("SELECT count(*) FROM events").fetchall() == [(3,)]
        assert con.execute("SELECT count(*) FROM users").fetchall() == [(2,)]
    finally:
        con.close()


def test_a_reader_behind_a_compaction_is_told_to_reopen(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    store = LiveStore(db)
    store.append_events([event(1)], secret())
    compact(db)
    con, view = open_live(db)
    store.append_events([event(2)], secret())
    compact(db)  # folds and deletes segment 2, which this connection never read
    with pytest.raises(LiveStale, match="reopen"):
        refresh_live(con, view)
    con.close()
    assert len(visible(db)) == 2


# --------------------------------------------------------------------------- compaction


def test_compaction_gives_the_same_store_as_a_plain_ingest_of_the_same_events(tmp_path: Path) -> None:
    shop = tmp_path / "synth"
    generate_shop(shop, n_users=40, n_items=70, n_days=20, seed=3)
    con = duckdb.connect()
    rows = con.execute(f"SELECT * FROM '{shop / 'events.parquet'}'").fetchall()
    columns = [d[0] for d in con.description]
    con.close()
    events = [{**dict(zip(columns, (v.isoformat() if isinstance(v, datetime) else v for v in row))),
               "event_id": f"ev{n}"} for n, row in enumerate(rows)]

    plain, live = tmp_path / "plain.duckdb", tmp_path / "live.duckdb"
    ingest_paths(plain, "generic", [shop], secret=secret())
    ingest_paths(live, "generic", [shop / "items.parquet", shop / "users.parquet"], secret=secret())
    store = LiveStore(live)
    for start in range(0, len(events), 150):
        assert store.append_events(events[start:start + 150], secret()).accepted == len(events[start:start + 150])
    assert compact(live).events == len(events)

    for table in (S.EVENTS, S.ITEMS, S.USERS, "user_profiles", "item_stats"):
        assert _rows(live, table) == _rows(plain, table), table


def _rows(db: Path, table: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        con.close()


_KILLED_COMPACTION = """
import os, signal, sys
from pathlib import Path
import analytics.live_compact as lc

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

point = sys.argv[2]
if point == "before-publish":  # the fold is done in the private copy; the rename has not happened
    real = lc.build_profiles
    lc.build_profiles = lambda con, *a, **k: (real(con, *a, **k), die())
elif point == "after-publish":  # the new snapshot is in place; FOLDED and the files are not updated
    lc.write_folded_marker = die
elif point == "after-marker":  # FOLDED raised, no file deleted
    lc._remove_folded = die
elif point == "mid-delete":  # one folded file deleted, the others not
    real_remove = lc.remove_segment
    lc.remove_segment = lambda path: (real_remove(path), die())
print("go", flush=True)
lc.compact(Path(sys.argv[1]))
print("finished", flush=True)
"""


def _store_with_live_batches(db: Path) -> LiveStore:
    store = LiveStore(db)
    store.append_events([event(n) for n in range(5)], secret())
    compact(db)
    for start in (5, 10, 15):
        store.append_events([event(n, user="bo") for n in range(start, start + 5)], secret())
    return store


def _check_everything_once_and_compaction_recovers(db: Path, store: LiveStore) -> None:
    expected = [T0 + timedelta(seconds=n) for n in range(20)]
    assert times(db) == expected
    again = store.append_events([event(n) for n in range(18, 22)], secret())  # 2 stored, 2 new
    assert (again.accepted, again.duplicates) == (2, 2)
    assert LiveStore(db).append_events([event(7), event(22)], secret()).accepted == 1  # a fresh writer agrees
    compact(db)
    assert times(db) == expected + [T0 + timedelta(seconds=n) for n in (20, 21, 22)]
    assert list_segments(live_folder(db)) == []
    assert list(db.parent.glob("*.writing*")) == []


@pytest.mark.parametrize("point", ["before-publish", "after-publish", "after-marker", "mid-delete"])
def test_a_compaction_killed_at_any_step_changes_nothing_visible(tmp_path: Path, point: str) -> None:
    db = tmp_path / "shop.duckdb"
    store = _store_with_live_batches(db)
    child = spawn(_KILLED_COMPACTION, str(db), point)
    out, _ = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, out[-2000:]
    folder = live_folder(db)
    left = [seq for seq, _ in list_segments(folder)]
    # where the kill landed: (the snapshot's last folded number, FOLDED, the segment files left)
    assert (_folded(db), read_folded_marker(folder), left) == {
        "before-publish": (1, 1, [2, 3, 4]), "after-publish": (4, 1, [2, 3, 4]),
        "after-marker": (4, 4, [2, 3, 4]), "mid-delete": (4, 4, [3, 4])}[point]
    assert bool(list(db.parent.glob("*.writing*"))) == (point == "before-publish")  # the unpublished copy
    _check_everything_once_and_compaction_recovers(db, store)


def _folded(db: Path) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return folded_seq(con)
    finally:
        con.close()


def test_compactions_killed_at_random_moments_change_nothing_visible(tmp_path: Path) -> None:
    rng = random.Random(14)
    for attempt in range(3):
        db = tmp_path / f"shop{attempt}.duckdb"
        store = _store_with_live_batches(db)
        child = spawn(_KILLED_COMPACTION, str(db), "none")
        wait_for_line(child, "go")
        time.sleep(rng.uniform(0.0, 0.5))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        _check_everything_once_and_compaction_recovers(db, store)
