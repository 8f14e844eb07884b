"""Byte-level checks on input files, done once in Python before DuckDB reads them.

DuckDB's CSV reader drops a line with invalid UTF-8 (or splits a line at a stray carriage return)
without telling which rows it kept, which would shift every later line number. So each text file
is scanned here first: its physical lines are counted, and any line with bytes DuckDB cannot take
(invalid UTF-8, a NUL byte, a lone ``\\r``) is noted and, in a cleaned temporary copy, replaced by
its visible text (U+FFFD for the bad bytes); the copy also gets uniform LF line endings, since
DuckDB reads CRLF only when the first line ends in one. The copy has exactly the original's
lines, so DuckDB's row order is the line number and the noted lines become rejects with their
reason.
The common case (a clean file) costs one sequential read and no copy.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from errors import RecsightError

__all__ = ["TextScan", "scan_text", "file_sha256", "require_file", "BAD_ENCODING", "STRAY_CR"]

log = logging.getLogger(__name__)

BAD_ENCODING = "bad encoding (not UTF-8)"
STRAY_CR = "stray carriage return"
_CHUNK = 8 << 20


@dataclass
class TextScan:
    """What the byte scan found; ``path`` is the file DuckDB should read (a clean copy if needed)."""

    path: Path
    lines: int
    ends_with_newline: bool
    bad_lines: dict[int, str] = field(default_factory=dict)  # 1-based line -> reason
    _tmpdir: tempfile.TemporaryDirectory | None = None

    def close(self) -> None:
        """Remove the cleaned copy, if one was written."""
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


def require_file(path: Path) -> Path:
    """``path`` as an existing regular file, or a clear error."""
    if not path.exists():
        raise RecsightError(f"{path} does not exist")
    if not path.is_file():
        raise RecsightError(f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise RecsightError(f"cannot read {path}: permission denied")
    return path


def file_sha256(path: Path) -> str:
    """Content hash of a file: how a re-ingest of the same data is recognised, whatever its name."""
    sha = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                sha.update(chunk)
    except OSError as exc:
        raise RecsightError(f"cannot read {path}: {exc.strerror or exc}") from None
    return sha.hexdigest()


def scan_text(path: Path) -> TextScan:
    """Count lines and find lines DuckDB could not read faithfully; clean them in a copy if any."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0
    suspicious = saw_cr = False
    first_crlf: bool | None = None  # does the first line end in CRLF? DuckDB decides by it
    last = b""
    size = 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                size += len(chunk)
                newlines += chunk.count(b"\n")
                if first_crlf is None and (pos := chunk.find(b"\n")) >= 0:
                    first_crlf = (chunk[pos - 1:pos] if pos else last) == b"\r"
                saw_cr = saw_cr or b"\r" in chunk
                if not suspicious:
                    suspicious = b"\x00" in chunk or _has_lone_cr(last + chunk)
                if not suspicious:
                    try:
                        decoder.decode(chunk)
                    except UnicodeDecodeError:
                        suspicious = True
                last = chunk[-1:]
            if not suspicious:
                try:
                    decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    suspicious = True
    except OSError as exc:
        raise RecsightError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size == 0:
        raise RecsightError(f"file {path.name} is empty")
    # DuckDB reads CRLF endings only when the first line has one; otherwise each CR would split
    # a line in two. Mixed endings therefore go through the (line-ending-normalising) copy.
    suspicious = suspicious or (saw_cr and not first_crlf)
    ends = last == b"\n"
    lines = newlines + (0 if ends else 1)
    if not suspicious:
        return TextScan(path=path, lines=lines, ends_with_newline=ends)
    return _clean_copy(path, lines, ends)


def _has_lone_cr(data: bytes) -> bool:
    # A "\r" at the very end may be followed by "\n" in the next chunk; the caller prepends the
    # previous chunk's last byte, so only a trailing "\r" of the whole file can be missed (harmless:
    # DuckDB treats it as the end of the last line, which is what it is).
    if b"\r" not in data:
        return False
    return data.count(b"\r") != data.count(b"\r\n") + (1 if data.endswith(b"\r") else 0)


def _clean_copy(path: Path, lines: int, ends: bool) -> TextScan:
    """Write a copy whose bad lines are replaced by their visible text; note each such line."""
    tmpdir = tempfile.TemporaryDirectory(prefix="recsight-ingest-")
    clean = Path(tmpdir.name) / path.name
    bad: dict[int, str] = {}
    try:
        with open(path, "rb") as src, open(clean, "wb") as dst:
            for number, raw in enumerate(src, start=1):
                body, eol = (raw[:-1], b"\n") if raw.endswith(b"\n") else (raw, b"")
                if eol and body.endswith(b"\r"):
                    body = body[:-1]  # CRLF -> LF: DuckDB then reads every line ending alike
                reason = _line_problem(body)
                if reason is not None:
                    bad[number] = reason
                    text = body.decode("utf-8", "replace").replace("\x00", "\ufffd").replace("\r", "\ufffd")
                    body = text.encode("utf-8")
                dst.write(body + eol)
    except OSError as exc:
        tmpdir.cleanup()
        raise RecsightError(f"cannot read {path}: {exc.strerror or exc}") from None
    log.info("%s: %d line(s) with bytes that are not clean UTF-8 text", path.name, len(bad))
    return TextScan(path=clean, lines=lines, ends_with_newline=ends, bad_lines=bad, _tmpdir=tmpdir)


def _line_problem(body: bytes) -> str | None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return BAD_ENCODING
    if b"\x00" in body:
        return BAD_ENCODING
    if b"\r" in body:
        return STRAY_CR
    return None
