"""atomic.py, the one write-then-rename helper: whole files or none, private unless asked otherwise."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from atomic import replace_with, write_bytes, write_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_write_replaces_the_whole_file_and_is_private_by_default(tmp_path: Path) -> None:
    target = tmp_path / "users.json"
    write_text(target, "old")
    write_text(target, "new")
    assert target.read_text() == "new" and _mode(target) == 0o600
    write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert [p.name for p in tmp_path.iterdir()] == ["users.json"]  # no temporary file left


def test_shared_files_get_ordinary_permissions(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "events.csv", "a,b\n", private=False)
        replace_with(tmp_path / "items.bin", lambda tmp: tmp.write_bytes(b"x"), private=False)
    finally:
        os.umask(mask)
    assert _mode(tmp_path / "events.csv") == _mode(tmp_path / "items.bin") == 0o644


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "ranker.txt"
    write_text(target, "trees")

    def half(tmp: Path) -> None:
        tmp.write_text("tr")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        replace_with(target, half)
    assert target.read_text() == "trees" and [p.name for p in tmp_path.iterdir()] == ["ranker.txt"]


def test_files_created_in_a_private_block_are_the_owners_only(tmp_path: Path) -> None:
    """What DuckDB creates itself (a write-ahead log) inside ``private_files`` is 0600; shared
    files written meanwhile keep their ordinary mode, and the umask is back afterwards."""
    import threading

    from atomic import private_files

    mask = os.umask(0o022)
    try:
        entered, release = threading.Event(), threading.Event()

        def other_block() -> None:
            with private_files():
                entered.set()
                release.wait(5)

        thread = threading.Thread(target=other_block)
        with private_files():
            thread.start()
            entered.wait(5)
            (tmp_path / "first.wal").write_text("rows")
        (tmp_path / "second.wal").write_text("rows")  # the other thread's block is still open
        write_text(tmp_path / "shared.csv", "a\n", private=False)
        release.set()
        thread.join(5)
        assert os.umask(0o022) == 0o022  # put back once the last block ended
    finally:
        os.umask(mask)
    assert _mode(tmp_path / "first.wal") == _mode(tmp_path / "second.wal") == 0o600
    assert _mode(tmp_path / "shared.csv") == 0o644
