"""The audit log: rows appended with who, role, UTC time, action, pseudonymous customer and
detail; filters; pseudonyms only; and nothing in its API can change or remove a row."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from analytics.privacy import pseudonymise
from errors import RecsightError
from service import audit
from tests.conftest import TEST_SECRET

CUSTOMER = pseudonymise("customer-17", TEST_SECRET)


def test_a_row_has_who_role_when_action_customer_and_detail(tmp_path):
    path = tmp_path / "audit.duckdb"
    before = datetime.now(UTC).replace(tzinfo=None)
    entry = audit.record(path, "sue", "support", audit.CUSTOMER_LOOKUP, customer=CUSTOMER, detail="typed an id")
    after = datetime.now(UTC).replace(tzinfo=None)
    (stored,) = audit.read_entries(path)
    assert stored == entry
    assert (stored.who, stored.role, stored.action, stored.customer, stored.detail) == (
        "sue", "support", audit.CUSTOMER_LOOKUP, CUSTOMER, "typed an id")
    assert before <= stored.at_utc <= after  # UTC, not the machine's local time
    audit.release(path)  # the app holds the file a second after writing; a DBA's connection can wait
    with duckdb.connect(str(path), read_only=True) as con:  # the table a DBA would query
        assert con.execute(f"SELECT count(*) FROM {audit.AUDIT_LOG}").fetchone()[0] == 1


def test_entries_come_newest_first_and_filter(tmp_path):
    path = tmp_path / "audit.duckdb"
    audit.record(path, "ann", "admin", audit.SIGN_IN)
    audit.record(path, "sue", "support", audit.SIGN_IN)
    audit.record(path, "sue", "support", audit.REPORT_EXPORT, customer=CUSTOMER, detail="pdf")
    audit.record(path, "mallory", None, audit.SIGN_IN_FAILED, detail="wrong password")
    assert [e.who for e in audit.read_entries(path)] == ["mallory", "sue", "sue", "ann"]
    assert [e.action for e in audit.read_entries(path, who="sue")] == [audit.REPORT_EXPORT, audit.SIGN_IN]
    assert [e.who for e in audit.read_entries(path, action=audit.SIGN_IN)] == ["sue", "ann"]
    today = datetime.now(UTC).date()
    assert len(audit.read_entries(path, start=today, end=today)) == 4
    assert audit.read_entries(path, end=today - timedelta(days=1)) == []
    assert audit.read_entries(path, start=today + timedelta(days=1)) == []
    assert len(audit.read_entries(path, limit=2)) == 2
    assert audit.filter_choices(path) == (["ann", "mallory", "sue"],
                                          sorted([audit.SIGN_IN, audit.REPORT_EXPORT, audit.SIGN_IN_FAILED]))


def test_raw_customer_ids_are_refused(tmp_path):
    path = tmp_path / "audit.duckdb"
    for raw in ("customer-17", "17850", CUSTOMER.upper(), CUSTOMER + "0", "c_' OR 1=1 --"):
        with pytest.raises(RecsightError, match="pseudonyms only"):
            audit.record(path, "sue", "support", audit.CUSTOMER_LOOKUP, customer=raw)
    assert audit.read_entries(path) == []


def test_unknown_actions_are_refused(tmp_path):
    with pytest.raises(RecsightError, match="unknown audit action"):
        audit.record(tmp_path / "audit.duckdb", "ann", "admin", "delete_everything")


def test_hostile_text_is_stored_as_data_cut_and_without_control_characters(tmp_path):
    path = tmp_path / "audit.duckdb"
    who = "x'); DROP TABLE audit_log; --\x00\x1b[31m" + "y" * 200
    audit.record(path, who, None, audit.SIGN_IN_FAILED, detail="line1\nline2\r\t" + "z" * 1000)
    (entry,) = audit.read_entries(path)
    assert entry.who.startswith("x'); DROP TABLE audit_log; --") and len(entry.who) == 64
    assert not re.search(r"[\x00-\x1f]", entry.who + entry.detail)
    assert entry.detail.startswith("line1 line2") and len(entry.detail) == 500
    assert len(audit.read_entries(path)) == 1  # the table is still there


def test_reading_a_log_that_does_not_exist_yet_creates_nothing(tmp_path):
    path = tmp_path / "audit.duckdb"
    assert audit.read_entries(path) == [] and audit.filter_choices(path) == ([], [])
    assert not path.exists()


def test_an_unwritable_log_is_a_clear_error(tmp_path):
    folder = tmp_path / "audit.duckdb"
    folder.mkdir()  # a folder where the file should be
    with pytest.raises(RecsightError, match="audit log .* cannot be opened"):
        audit.record(folder, "ann", "admin", audit.SIGN_IN)


def test_the_api_can_only_append_and_read(tmp_path):
    """No function of the module changes or removes rows, and its SQL never does either."""
    functions = {name for name in audit.__all__ if inspect.isfunction(getattr(audit, name))}
    assert functions == {"record", "read_entries", "filter_choices", "release"}
    source = inspect.getsource(audit)
    assert not re.search(r"\b(UPDATE|DELETE|DROP|TRUNCATE|ALTER|REPLACE\s+INTO|INSERT\s+OR)\b", source)

    path = tmp_path / "audit.duckdb"
    first = [audit.record(path, "ann", "admin", audit.SIGN_IN) for _ in range(3)]
    audit.record(path, "sue", "support", audit.SIGN_IN)
    assert audit.read_entries(path)[1:] == first[::-1]  # earlier rows unchanged, sequence grows
    assert [e.seq for e in audit.read_entries(path)] == [4, 3, 2, 1]


def test_a_writer_waits_while_another_process_holds_the_file(tmp_path):
    path = tmp_path / "audit.duckdb"
    audit.record(path, "ann", "admin", audit.SIGN_IN)
    audit.release(path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(0.6)",
         str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        audit.record(path, "sue", "support", audit.SIGN_IN)
        assert time.monotonic() - started > 0.1  # it did have to wait for the other process
    finally:
        holder.wait(timeout=10)
    assert [e.who for e in audit.read_entries(path)] == ["sue", "ann"]


def test_dates_in_filters_are_whole_utc_days(tmp_path):
    path = tmp_path / "audit.duckdb"
    entry = audit.record(path, "ann", "admin", audit.SIGN_IN)
    day = entry.at_utc.date()
    assert audit.read_entries(path, start=day, end=day) == [entry]
    assert audit.read_entries(path, start=date(2000, 1, 1), end=day - timedelta(days=1)) == []


def test_concurrent_requests_each_leave_exactly_their_own_row(tmp_path):
    """Eight request threads writing at once (rows share a commit): every row lands once, each
    caller gets back its own row with its own sequence number, and none is lost or doubled."""
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "audit.duckdb"

    def write(i: int) -> audit.AuditEntry:
        return audit.record(path, f"agent{i % 8}", "support", audit.CUSTOMER_LOOKUP, customer=CUSTOMER,
                            detail=f"lookup {i}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        returned = list(pool.map(write, range(120)))

    assert [e.detail for e in returned] == [f"lookup {i}" for i in range(120)]
    assert len({e.seq for e in returned}) == 120
    stored = audit.read_entries(path, limit=1000)
    assert sorted((e.seq, e.detail) for e in stored) == sorted((e.seq, e.detail) for e in returned)


def test_another_process_appends_while_the_app_holds_the_file_after_a_write(tmp_path):
    """The app keeps the log open for a second after writing (opening it costs more than the
    insert): a command-line process appending meanwhile waits for it, and both rows land."""
    path = tmp_path / "audit.duckdb"
    audit.record(path, "ann", "admin", audit.SIGN_IN)
    other = subprocess.run(
        [sys.executable, "-c", "import sys; from service import audit; "
         "audit.record(sys.argv[1], 'cli', 'admin', audit.REPORT_EXPORT)", str(path)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert other.returncode == 0, other.stderr
    assert [e.who for e in audit.read_entries(path)] == ["cli", "ann"]


def test_a_log_removed_while_held_is_created_anew_not_written_through_the_old_handle(tmp_path):
    path = tmp_path / "audit.duckdb"
    audit.record(path, "ann", "admin", audit.SIGN_IN)
    for leftover in tmp_path.glob("audit.duckdb*"):
        leftover.unlink()
    audit.record(path, "sue", "support", audit.SIGN_IN)
    assert path.exists()
    assert [e.who for e in audit.read_entries(path)] == ["sue"]
