"""Opening the shop's DuckDB file.

The app and the model code only read the shop, so they open it read-only; only ingest and
profile builds write, and they never write the shop file in place: :func:`rewriting` hands them a
private copy in the same folder and publishes it with one ``os.replace``.

Why a copy: DuckDB lets one process hold a file read-write *or* any number of processes hold it
read-only, so a server's read-only connection would block every ingest (and an ingest would
block the server). Writing a copy means readers keep the inode they opened (old data, complete)
until they reopen the path (new data, complete); nobody ever sees a half-written store, and a
writer killed at any point leaves the shop file exactly as it was.

The shop file is its owner's only (mode 0600), and so are the copy and its write-ahead log while
they are written: the file holds every customer's history, pseudonymous or not.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb

import atomic
from errors import RecsightError

__all__ = ["connect", "connect_read_only", "machine_memory", "rewriting", "Rewrite"]

log = logging.getLogger(__name__)

_WORK_SUFFIX = ".writing"


def connect(db_path: Path | str) -> duckdb.DuckDBPyConnection:
    """Open (or create) a DuckDB file for writing; the shop file itself is written through :func:`rewriting`."""
    path = Path(db_path)
    _make_folder(path.parent)
    try:
        return duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise RecsightError(f"cannot open database {path}: {_first_line(exc)}") from None


def machine_memory() -> int:
    """Bytes of physical memory: what the engines' limits (DuckDB's while training, Spark's driver
    in local mode) are shares of."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def connect_read_only(db_path: Path | str) -> duckdb.DuckDBPyConnection:
    """Open an existing shop database read-only; a missing file is a clear error.

    The file is ATTACHed to a fresh in-memory DuckDB rather than opened with
    ``duckdb.connect(path)``: DuckDB keeps one database instance per path in a process and hands
    it to every later ``connect`` while any connection to it is open, so after an ingest replaced
    the file a server holding a loaded recommender would keep reading the old file forever.
    """
    path = Path(db_path)
    if not path.exists():
        raise RecsightError(f"database {path} does not exist: run `python cli.py ingest` first")
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")  # no progress bars in a server's or a CLI's output
        con.execute("ATTACH ? AS shop (READ_ONLY)", [str(path)])
        con.execute("USE shop")
    except duckdb.Error as exc:
        con.close()
        raise RecsightError(f"cannot open database {path}: {_first_line(exc)}") from None
    return con


class Rewrite:
    """A writable private copy of the shop file (or a new empty file), inside :func:`rewriting`."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.keep = True

    def discard(self) -> None:
        """Nothing changed: leave the shop file (and its inode, so readers need not reload) as it is."""
        self.keep = False


@contextmanager
def rewriting(db_path: Path | str) -> Iterator[Rewrite]:
    """Write the shop file through a private copy; publish it atomically when the block succeeds.

    One writer at a time (an exclusive lock on ``.<name>.lock`` beside the file; a second writer
    waits). The copy is written in the same folder, checkpointed, fsynced and moved over the
    shop file with ``os.replace``; an exception (or a kill) leaves the shop file untouched, and
    the leftover copy is removed by the next writer. Full disks and read-only folders are one-line
    :class:`RecsightError`\\ s.
    """
    path = Path(db_path)
    _make_folder(path.parent)
    with _exclusive(path), atomic.private_files():  # the copy and its write-ahead log: owner only
        _remove_leftovers(path)
        work = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{_WORK_SUFFIX}")
        existed = path.exists()
        try:
            if existed:
                _copy(path, work)
            con = connect(work)
            rewrite = Rewrite(con)
            try:
                yield rewrite
                if rewrite.keep:
                    _checkpoint(con, path)
            finally:
                with suppress(duckdb.Error):  # after a failed write DuckDB may refuse even to close
                    con.close()
            if rewrite.keep:
                _publish(work, path, existed)
        finally:
            for leftover in (work, _wal(work)):
                leftover.unlink(missing_ok=True)


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise RecsightError(_os_message(exc, f"cannot write to the data folder {path.parent}")) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another ingest or profile build is writing %s: waiting for it to finish", path)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_leftovers(path: Path) -> None:
    """Copies left by writers that were killed (we hold the lock, so none is being written)."""
    for leftover in path.parent.glob(f".{path.name}.*{_WORK_SUFFIX}*"):
        log.info("removing %s, left by an interrupted ingest", leftover.name)
        leftover.unlink(missing_ok=True)


def _copy(path: Path, work: Path) -> None:
    try:
        shutil.copyfile(path, work)
        if _wal(path).exists():  # changes a crashed direct writer never checkpointed
            shutil.copyfile(_wal(path), _wal(work))
    except OSError as exc:
        raise RecsightError(_os_message(exc, f"cannot copy {path.name} to update it")) from None


def _checkpoint(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Move everything into the copy's main file (a WAL beside it would not travel with the move)."""
    try:
        con.execute("CHECKPOINT")
    except duckdb.Error as exc:
        text = _first_line(exc)
        if any(sign in text for sign in ("No space left", "File too large", "quota")):
            text = "the disk is full; free some space (an update needs room for a copy of the shop file)"
        raise RecsightError(f"cannot write the new {path.name}, the shop file is unchanged: {text}") from None


def _publish(work: Path, path: Path, existed: bool) -> None:
    if _wal(work).exists():  # a CHECKPOINT that did not happen would lose data on the move
        raise RecsightError(f"could not checkpoint the new {path.name}; the shop file is unchanged")
    try:
        os.chmod(work, 0o600)  # whatever mode an older shop file had: customers' histories are private
        atomic.fsync_path(work)
        if existed:
            _wal(path).unlink(missing_ok=True)  # its changes are in the copy; it must not replay onto it
        os.replace(work, path)
        atomic.fsync_path(path.parent)
    except OSError as exc:
        raise RecsightError(_os_message(exc, f"cannot replace {path}")) from None
    log.info("published %s", path)


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _make_folder(folder: Path) -> None:
    if folder and not folder.is_dir():
        if folder.exists():
            raise RecsightError(f"cannot use {folder} as the data folder: it is a file, not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecsightError(_os_message(exc, f"cannot create folder {folder}")) from None


def _os_message(exc: OSError, what: str) -> str:
    """One line for a failed file operation, naming the two causes a user can fix."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"{what}: the disk is full; free some space (an update needs room for a copy of the shop file)"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{what}: the folder is read-only or not writable for this user"
    return f"{what}: {exc.strerror or exc}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
