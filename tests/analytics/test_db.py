"""analytics.db: readers open the shop read-only, writers publish a whole new file or nothing.

What a user relies on: a server's read-only connection can never change the shop; an ingest that
fails leaves the shop file byte for byte as it was; readers that reopen the path see the new
data while the ones already open keep a complete old store; one writer at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import duckdb
import pytest

from analytics.db import connect, connect_read_only, rewriting
from errors import RecsightError


def _shop(path: Path, rows: int = 3) -> Path:
    with rewriting(path) as rewrite:
        rewrite.con.execute("CREATE TABLE events (user_id VARCHAR, n INTEGER)")
        rewrite.con.executemany("INSERT INTO events VALUES (?, ?)", [(f"c_{i}", i) for i in range(rows)])
    return path


def _count(path: Path) -> int:
    with connect_read_only(path) as con:
        return con.execute("SELECT count(*) FROM events").fetchone()[0]


def _leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.") and "lock" not in p.name)


def test_a_missing_or_broken_shop_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(RecsightError, match="does not exist: run `python cli.py ingest` first"):
        connect_read_only(tmp_path / "missing.duckdb")
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database" * 100)
    with pytest.raises(RecsightError, match="cannot open database") as caught:
        connect_read_only(garbage)
    assert "\n" not in str(caught.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecsightError, match="is a file, not a folder"):
        connect(tmp_path / "file" / "shop.duckdb")


def test_a_read_only_connection_refuses_every_write(tmp_path: Path) -> None:
    shop = _shop(tmp_path / "shop.duckdb")
    before = shop.read_bytes()
    with connect_read_only(shop) as con:
        assert con.execute("SELECT sum(n) FROM events").fetchone()[0] == 3
        for statement in ("INSERT INTO events VALUES ('c_x', 9)", "DELETE FROM events", "DROP TABLE events",
                          "CREATE TABLE other (x INTEGER)"):
            with pytest.raises(duckdb.Error, match="read-only"):
                con.execute(statement)
    assert shop.read_bytes() == before


def test_a_rewrite_publishes_a_new_file_that_new_readers_see_and_open_readers_do_not(tmp_path: Path) -> None:
    shop = _shop(tmp_path / "shop.duckdb")
    inode = shop.stat().st_ino
    reader = connect_read_only(shop)  # a server holding the old store
    try:
        with rewriting(shop) as rewrite:
            rewrite.con.execute("INSERT INTO events VALUES ('c_new', 10)")
            assert _count(shop) == 3  # mid-write, the shop file is the old one
        assert shop.stat().st_ino != inode
        assert _count(shop) == 4  # a reader that reopens the path sees the new data
        assert reader.execute("SELECT count(*) FROM events").fetchone()[0] == 3  # the old store, complete
    finally:
        reader.close()
    assert _leftovers(shop) == []


def test_a_failed_write_leaves_the_shop_file_as_it_was(tmp_path: Path) -> None:
    shop = _shop(tmp_path / "shop.duckdb")
    before, inode = shop.read_bytes(), shop.stat().st_ino
    with pytest.raises(RuntimeError, match="half-way"), rewriting(shop) as rewrite:
        rewrite.con.execute("DELETE FROM events")
        raise RuntimeError("the ingest failed half-way")
    assert shop.read_bytes() == before and shop.stat().st_ino == inode
    assert _count(shop) == 3 and _leftovers(shop) == []


def test_a_discarded_rewrite_keeps_the_file_and_its_inode(tmp_path: Path) -> None:
    shop = _shop(tmp_path / "shop.duckdb")
    inode = shop.stat().st_ino
    with rewriting(shop) as rewrite:
        rewrite.con.execute("INSERT INTO events VALUES ('c_new', 10)")
        rewrite.discard()  # nothing new after all: readers need not reload
    assert shop.stat().st_ino == inode and _count(shop) == 3 and _leftovers(shop) == []


def test_the_next_writer_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    shop = _shop(tmp_path / "new" / "shop.duckdb")  # the folder is created on the first write
    left = shop.with_name(f".{shop.name}.0123456789ab.writing")
    left.write_bytes(b"half a copy")
    shop.with_name(left.name + ".wal").write_bytes(b"")
    with rewriting(shop) as rewrite:
        rewrite.con.execute("INSERT INTO events VALUES ('c_new', 10)")
    assert _leftovers(shop) == [] and _count(shop) == 4


def test_one_writer_at_a_time(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shop = _shop(tmp_path / "shop.duckdb")
    order: list[str] = []

    def second_writer() -> None:
        with rewriting(shop) as rewrite:
            order.append("second")
            rewrite.con.execute("INSERT INTO events VALUES ('c_second', 2)")

    with caplog.at_level(logging.WARNING, logger="analytics.db"), rewriting(shop) as rewrite:
        thread = threading.Thread(target=second_writer)
        thread.start()
        deadline = time.monotonic() + 5
        while "waiting for it to finish" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "waiting for it to finish" in caplog.text and order == []
        rewrite.con.execute("INSERT INTO events VALUES ('c_first', 1)")
        order.append("first")
    thread.join(timeout=30)
    assert order == ["first", "second"]
    assert _count(shop) == 5  # both writes landed: the second started from the first's file
