"""Writing a file so that readers see the old content or the new, never half of either.

Every file the product writes for someone else to read (model pointers and metadata, the users
file, reports, the global-importance summary) goes through here: the content is written to a
temporary file in the same folder, flushed to disk, and renamed over the target in one step
(``os.replace`` is atomic within a file system). A crash, a kill or a full disk leaves the old
file and no temporary one. The temporary file is created with mode 0600 and keeps it: these files
hold password hashes, customer reports or model internals.

Errors are ``OSError`` as the system raised them: each caller turns them into its own one-line
message, since only it knows what the file is for.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["replace_with", "write_bytes", "write_text"]


def replace_with(path: Path | str, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a temporary path beside ``path``, then rename it over ``path``."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:  # what ``write`` wrote, on disk before the rename
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path | str, data: bytes) -> None:
    replace_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: Path | str, text: str) -> None:
    replace_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
