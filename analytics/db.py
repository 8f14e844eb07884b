"""Opening the shop's DuckDB file.

The app and the model code only read the shop, so they open it read-only; only ingest and
profile builds write, each in one transaction.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from errors import RecsightError

__all__ = ["connect", "connect_read_only"]

log = logging.getLogger(__name__)


def connect(db_path: Path | str) -> duckdb.DuckDBPyConnection:
    """Open (or create) the shop database for writing."""
    path = Path(db_path)
    if path.parent and not path.parent.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecsightError(f"cannot create folder {path.parent}: {exc.strerror}") from None
    try:
        return duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise RecsightError(f"cannot open database {path}: {_first_line(exc)}") from None


def connect_read_only(db_path: Path | str) -> duckdb.DuckDBPyConnection:
    """Open an existing shop database read-only; a missing file is a clear error."""
    path = Path(db_path)
    if not path.exists():
        raise RecsightError(f"database {path} does not exist: run `python cli.py ingest` first")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise RecsightError(f"cannot open database {path}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
