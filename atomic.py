"""Writing a file so that readers see the old content or the new, never half of either.

Every file the product writes for someone else to read goes through here: model pointers and
metadata, the rankers and the attention network of a model version, the users file, reports,
the global-importance summary, the synthetic shop. The content is written to a temporary file
in the same folder, flushed to disk (``fsync`` of the file, always, before the rename), and
renamed over the target in one step (``os.replace`` is atomic within a file system). A crash, a
kill or a full disk leaves the old file and no temporary one. The folder itself is not synced:
the rename is atomic either way; after a power loss the old file may come back, never a torn one.

Permissions: by default the file keeps the mode 0600 the temporary file is created with, since
most of these files hold password hashes, customer reports or model internals. ``private=False``
gives it the ordinary mode a plain ``open`` would (0666 less the umask), for data meant to be
shared, such as the synthetic shop's files.

Errors are ``OSError`` as the system raised them: each caller turns them into its own one-line
message, since only it knows what the file is for.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["replace_with", "write_bytes", "write_text", "private_files", "fsync_path"]


def replace_with(path: Path | str, write: Callable[[Path], None], *, private: bool = True) -> None:
    """Let ``write`` fill a temporary path beside ``path``, then rename it over ``path``.

    ``private`` keeps the file readable by its owner only; False gives it ordinary permissions.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:  # what ``write`` wrote, on disk before the rename
            os.fsync(handle.fileno())
        if not private:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_path(path: Path | str) -> None:
    """Flush a file or a folder to disk: a folder after a rename in it, so the rename survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: Path | str, data: bytes, *, private: bool = True) -> None:
    """``data`` as the new content of ``path``, atomically (see :func:`replace_with`)."""
    replace_with(path, lambda tmp: tmp.write_bytes(data), private=private)


def write_text(path: Path | str, text: str, *, private: bool = True) -> None:
    """``text`` (UTF-8) as the new content of ``path``, atomically (see :func:`replace_with`)."""
    replace_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), private=private)


@contextmanager
def private_files() -> Iterator[None]:
    """Files and folders created inside the block are for their owner only (umask 077).

    For files this module does not write itself: DuckDB creates a database's write-ahead log
    anew for each write, with the process umask, and it holds the same rows as the database.
    The umask belongs to the whole process, so blocks in several threads share one change: the
    first to enter sets it and the last to leave puts the old one back; threads outside a block
    meanwhile create private files too, which is the safe side.
    """
    global _private_depth, _saved_umask
    with _umask_lock:
        if _private_depth == 0:
            _saved_umask = os.umask(0o077)
            os.umask(_saved_umask | 0o077)
        _private_depth += 1
    try:
        yield
    finally:
        with _umask_lock:
            _private_depth -= 1
            if _private_depth == 0:
                os.umask(_saved_umask)


_umask_lock = threading.Lock()
_private_depth = 0  # how many private_files() blocks are open
_saved_umask = 0o022  # the umask to put back when the last block ends


def _umask() -> int:
    """The process umask outside :func:`private_files` blocks (reading it means setting it; it is
    put straight back)."""
    with _umask_lock:
        if _private_depth:
            return _saved_umask
        mask = os.umask(0)
        os.umask(mask)
        return mask
