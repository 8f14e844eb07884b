"""An ingest never half-happens, never waits for a running server, and disk problems are one line."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import analytics.db
from analytics.db import connect_read_only
from analytics.ingest import ingest_paths
from errors import RecsightError
from tests.analytics.ingest_support import snapshot
from tests.faults.support import ROOT, Shop, busy_customer, child_env, event_count, secret
from workflows.recommenders import recommender_for

# The child ingests the second export and stalls after its events are stored in the working
# copy, before the profiles are rebuilt; the parent kills it there with SIGKILL.
_STALLING_INGEST = """
import os, sys, time
from pathlib import Path
import analytics.ingest as ingest

def stall(con, *args, **kwargs):
    Path(sys.argv[3]).write_text("events stored, profiles next")
    time.sleep(600)

ingest.build_profiles = stall
ingest.ingest_paths(Path(sys.argv[1]), "generic", [Path(sys.argv[2])], secret=os.environ["RECSIGHT_SECRET"])
"""


def _leftovers(db: Path) -> list[Path]:
    return sorted(db.parent.glob(f".{db.name}.*.writing*"))


def test_an_ingest_killed_half_way_leaves_no_partial_data_and_the_next_one_cleans_up(
        shop: Shop, tmp_path: Path) -> None:
    before, inode = snapshot(shop.db), shop.db.stat().st_ino
    marker = tmp_path / "stalled"
    child = subprocess.Popen([sys.executable, "-c", _STALLING_INGEST, str(shop.db), str(shop.second), str(marker)],
                             cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, child.stdout.read().decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the ingest child never stored its events"
            time.sleep(0.05)
        assert snapshot(shop.db) == before  # mid-ingest, readers open the shop and see the old store
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    assert _leftovers(shop.db)  # the kill did land mid-write: the working copy is still there
    assert shop.db.stat().st_ino == inode and snapshot(shop.db) == before

    summary = ingest_paths(shop.db, "generic", [shop.second], secret=secret())
    assert summary.store["events"] > len(before["events"])
    assert _leftovers(shop.db) == []
    with connect_read_only(shop.db) as con:  # events and profiles arrive together
        assert con.execute("SELECT count(*) FROM user_profiles").fetchone()[0] == summary.store["users"]


def test_an_ingest_in_another_process_does_not_wait_for_the_server_nor_change_what_it_is_serving(
        shop: Shop) -> None:
    settings = shop.settings()
    served = recommender_for(settings)  # holds a read-only connection to the shop file
    user = busy_customer(shop.db)
    answer = served.recommend(user, 5).items
    events_before = event_count(shop.db)

    started = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "ingest", "--db", str(shop.db), "--format", "generic",
                           str(shop.second)], cwd=shop.folder, env=child_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 60

    assert served.recommend(user, 5).items == answer  # a request on the loaded state finishes on it
    assert event_count(shop.db) > events_before  # a new connection sees the whole new store
    try:
        now = recommender_for(settings)  # models trained on the old data: a clear line, or a working engine
    except RecsightError as exc:
        assert "\n" not in str(exc) and "train" in str(exc)
    else:
        assert now.recommend(user, 5).items


def test_ingesting_files_already_stored_leaves_the_shop_file_alone(shop: Shop) -> None:
    inode = shop.db.stat().st_ino
    summary = ingest_paths(shop.db, "generic", [shop.first], secret=secret())
    assert all(report.skipped for report in summary.files)
    assert shop.db.stat().st_ino == inode  # a server has nothing to reload


def test_a_full_disk_while_copying_the_shop_is_one_clear_line(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(shop.db)

    def full_disk(src, dst, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(analytics.db.shutil, "copyfile", full_disk)
    with pytest.raises(RecsightError) as caught:
        ingest_paths(shop.db, "generic", [shop.second], secret=secret())
    assert "\n" not in str(caught.value) and "disk is full" in str(caught.value)
    assert snapshot(shop.db) == before and _leftovers(shop.db) == []


def _file_size_limit(limit: int):
    def apply() -> None:  # in the child: writes past `limit` bytes fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_while_duckdb_writes_is_one_clear_line_and_the_shop_is_unchanged(shop: Shop) -> None:
    before = snapshot(shop.db)
    limit = shop.db.stat().st_size + 64 * 1024  # room for the copy, not for the new events
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "ingest", "--db", str(shop.db), "--format", "generic",
                           str(shop.second)], cwd=shop.folder, env=child_env(), capture_output=True, text=True,
                          timeout=120, preexec_fn=_file_size_limit(limit))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert "File too large" in done.stderr or "disk is full" in done.stderr
    assert snapshot(shop.db) == before and _leftovers(shop.db) == []


def test_a_file_where_the_data_folder_should_be_is_one_clear_line(shop: Shop, tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    with pytest.raises(RecsightError, match="it is a file, not a folder") as caught:
        ingest_paths(blocker / "shop.duckdb", "generic", [shop.first], secret=secret())
    assert "\n" not in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders: see the next test")
def test_a_read_only_data_folder_is_one_clear_line(shop: Shop) -> None:
    before = snapshot(shop.db)
    shop.db.parent.chmod(0o555)
    try:
        with pytest.raises(RecsightError, match="read-only") as caught:
            ingest_paths(shop.db, "generic", [shop.second], secret=secret())
    finally:
        shop.db.parent.chmod(0o755)
    assert "\n" not in str(caught.value)
    assert snapshot(shop.db) == before


def test_a_read_only_file_system_is_one_clear_line(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a read-only mount answers (EROFS), for the first file an ingest creates there."""
    before = snapshot(shop.db)
    real_open = os.open
    folder = str(shop.db.parent)

    def read_only_mount(path, flags, *args, **kwargs):
        if str(path).startswith(folder) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_mount)
    with pytest.raises(RecsightError, match="read-only") as caught:
        ingest_paths(shop.db, "generic", [shop.second], secret=secret())
    monkeypatch.undo()
    assert "\n" not in str(caught.value)
    assert snapshot(shop.db) == before
