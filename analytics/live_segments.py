"""The live segment on disk: a folder of immutable, numbered batch files beside the shop file.

``<db>.live/`` holds one Parquet file per acknowledged batch, named by its sequence number
(``000000000042.parquet``). Every file has the one :data:`SEGMENT_SCHEMA`: a row is an event,
a catalogue item or a reject (``kind``), so a batch with its rejects is *one* file and one rename.

Why files and not a second database: an append then costs what the batch costs (one small file,
no copy of the store, no DuckDB write lock that a server's readers would fight over), and a file
that is renamed into place is seen whole or not at all. :func:`write_segment` writes a temporary
name, ``fsync``\\ s it, renames it to its number and ``fsync``\\ s the folder, so once it returns
the batch survives a ``kill -9`` or a power cut.

Numbers are dense: a writer takes the next number under :func:`writer_lock`, and a number is
never reused while its file exists. Files at or below the snapshot's last folded number are
garbage (folded into the shop file by a compaction that was killed before deleting them).

``FOLDED`` holds the last number a *published* compaction folded; it is written after the new
shop file is in place and before any folded file is deleted, and only ever grows. A reader that
opened an older shop file learns from it that files it needs may be gone (see
:mod:`analytics.live_read`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

import atomic
from errors import RecsightError

__all__ = [
    "SEGMENT_SCHEMA", "KIND_EVENT", "KIND_ITEM", "KIND_REJECT", "LiveBusy",
    "live_folder", "segment_path", "list_segments", "write_segment", "remove_segment", "remove_temp_files",
    "ensure_folder", "sql_file_list",
    "read_folded_marker", "write_folded_marker", "writer_lock", "compaction_lock", "PerShop",
]

log = logging.getLogger(__name__)

KIND_EVENT = "event"
KIND_ITEM = "item"
KIND_REJECT = "reject"

SEGMENT_SCHEMA = pa.schema([
    ("seq", pa.int64()),
    ("kind", pa.string()),
    ("source", pa.string()),        # 'intake' for the API, the file name for `cli.py ingest --append`
    ("line", pa.int64()),           # 1-based position in the batch or line of the file
    ("event_id", pa.string()),
    ("user_id", pa.string()),       # always the pseudonym
    ("item_id", pa.string()),
    ("event_type", pa.string()),
    ("ts", pa.timestamp("us")),
    ("session_id", pa.string()),
    ("quantity", pa.int32()),
    ("price", pa.float64()),
    ("rating", pa.float64()),
    ("title", pa.string()),
    ("category", pa.string()),
    ("brand", pa.string()),
    ("reason", pa.string()),
    ("raw", pa.string()),           # a reject's text, the pseudonym in place of the customer id
    ("received_at", pa.timestamp("us")),
])

_NAME = re.compile(r"^(\d{12})\.parquet$")
_MARKER = "FOLDED"
_TMP_PREFIX = ".tmp-"


T = TypeVar("T")


class PerShop(Generic[T]):
    """One ``make(db_path)`` per shop file and process, made on first use and shared by threads:
    the writers of a folder of segments (events, impressions) keep their record of known ids in it."""

    def __init__(self, make: Callable[[Path], T]) -> None:
        self._make = make
        self._made: dict[Path, T] = {}
        self._lock = threading.Lock()

    def __call__(self, db_path: Path | str) -> T:
        key = Path(db_path).resolve()
        with self._lock:
            made = self._made.get(key)
            if made is None:
                made = self._made[key] = self._make(key)
            return made


class LiveBusy(RecsightError):
    """The live segment's writer lock was not free in time (the HTTP layer answers 429)."""


def live_folder(db_path: Path | str) -> Path:
    """``shop.duckdb`` -> ``shop.duckdb.live``."""
    path = Path(db_path)
    return path.with_name(path.name + ".live")


def segment_path(folder: Path, seq: int) -> Path:
    return folder / f"{seq:012d}.parquet"


def list_segments(folder: Path, after: int = 0) -> list[tuple[int, Path]]:
    """The segment files numbered above ``after``, in order (none when the folder is absent)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = _NAME.match(name)
        if match and int(match.group(1)) > after:
            found.append((int(match.group(1)), folder / name))
    return sorted(found)


def sql_file_list(paths: list[Path]) -> str:
    """A DuckDB list literal of file names, for ``read_parquet([...])``."""
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def write_segment(folder: Path, seq: int, table: pa.Table) -> Path:
    """Write ``table`` as segment ``seq``, durably: temp file, fsync, rename, fsync of the folder.

    Called under :func:`writer_lock`. A kill at any point leaves either no file numbered ``seq``
    (a temp file the next writer removes) or the complete file.
    """
    target = segment_path(folder, seq)
    tmp = folder / f"{_TMP_PREFIX}{uuid.uuid4().hex}.parquet"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, target)
        atomic.fsync_path(folder)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RecsightError(_os_message(exc, f"cannot write to {folder}")) from None
    return target


def remove_segment(path: Path) -> None:
    """Delete a folded segment file (already gone is fine: another compaction got there first)."""
    path.unlink(missing_ok=True)


def remove_temp_files(folder: Path) -> None:
    """Temp files of writers that were killed mid-write (call under :func:`writer_lock`)."""
    for leftover in folder.glob(f"{_TMP_PREFIX}*"):
        log.info("removing %s, left by an interrupted append", leftover.name)
        leftover.unlink(missing_ok=True)


def read_folded_marker(folder: Path) -> int:
    """The last sequence number a published compaction folded; 0 when none did."""
    try:
        return int((folder / _MARKER).read_text(encoding="ascii").strip() or 0)
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as exc:
        raise RecsightError(f"cannot read {folder / _MARKER}: {exc}") from None


def write_folded_marker(folder: Path, seq: int) -> None:
    """Raise the marker to ``seq`` (never lower it), durably; call under :func:`compaction_lock`."""
    if seq <= read_folded_marker(folder):
        return
    try:
        atomic.write_text(folder / _MARKER, f"{seq}\n")
        atomic.fsync_path(folder)
    except OSError as exc:
        raise RecsightError(_os_message(exc, f"cannot write to {folder}")) from None


def ensure_folder(folder: Path) -> None:
    """Create the live folder (owner only: it holds customers' pseudonymous histories)."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic.fsync_path(folder.parent)
    except OSError as exc:
        raise RecsightError(_os_message(exc, f"cannot create {folder}")) from None


@contextmanager
def writer_lock(folder: Path, timeout: float | None = None) -> Iterator[None]:
    """The one cross-process writer of ``folder``'s segments (a server and `cli.py ingest --append`).

    ``timeout`` None waits as long as it takes; otherwise :class:`LiveBusy` after that many seconds.
    """
    with _flock(folder / ".writer.lock", timeout, "another process is appending to"):
        yield


@contextmanager
def compaction_lock(folder: Path) -> Iterator[None]:
    """One compaction at a time; appends do not take it, so they never wait for a compaction."""
    with _flock(folder / ".compact.lock", None, "another compaction is running on"):
        yield


@contextmanager
def _flock(lock_path: Path, timeout: float | None, busy: str) -> Iterator[None]:
    ensure_folder(lock_path.parent)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise RecsightError(_os_message(exc, f"cannot lock {lock_path.parent}")) from None
    try:
        _acquire(fd, timeout, f"{busy} {lock_path.parent}")
        yield
    finally:
        os.close(fd)  # releases the lock


def _acquire(fd: int, timeout: float | None, busy: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    if timeout is None:
        log.info("%s: waiting", busy)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LiveBusy(f"{busy}: try again shortly") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.02)


def _os_message(exc: OSError, what: str) -> str:
    return f"{what}: {exc.strerror or exc}"
