"""Helpers shared by the ingest tests: run an ingest, read a store back, snapshot it."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from analytics.ingest import IngestSummary, ingest_paths
from analytics.privacy import pseudonymise


def secret() -> str:
    """The test secret that tests/conftest.py puts into the environment."""
    return os.environ["RECSIGHT_SECRET"]


def pid(raw_id: str) -> str:
    """The pseudonym a raw customer id must be stored as."""
    return pseudonymise(raw_id, secret())


def ingest(db: Path, fmt: str, *paths: Path) -> IngestSummary:
    return ingest_paths(db, fmt, list(paths), secret=secret())


def query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def rejects(db: Path) -> list[tuple[int, str]]:
    """(line, reason) of every reject, in line order."""
    return [(line, reason) for line, reason in query(db, "SELECT line, reason FROM rejects ORDER BY source, line")]


def reasons(summary: IngestSummary) -> dict[str, int]:
    """Reject counts per reason over all files of one ingest."""
    counts: dict[str, int] = {}
    for report in summary.files:
        for reason, n in report.rejected:
            counts[reason] = counts.get(reason, 0) + n
    return counts


def snapshot(db: Path) -> dict[str, list[tuple]] | None:
    """Every table's rows, sorted; None when the database file does not exist."""
    if not db.exists():
        return None
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = con.execute("SELECT table_name FROM duckdb_tables() WHERE NOT internal ORDER BY 1").fetchall()
        tables = [t for (t,) in names]
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        con.close()


def all_text(db: Path) -> str:
    """Every text value in the store, joined: for 'this raw id appears nowhere' checks."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        columns = con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal AND data_type = 'VARCHAR'"
        ).fetchall()
        parts = []
        for table, column in columns:
            parts += [str(v) for (v,) in con.execute(f'SELECT "{column}" FROM {table}').fetchall() if v is not None]
        return "\n".join(parts)
    finally:
        con.close()


def seeded_store(folder: Path) -> Path:
    """A store that already holds one generic event, so 'unchanged' means more than 'absent'."""
    events = folder / "seed" / "events.csv"
    events.parent.mkdir(parents=True)
    events.write_text("user_id,item_id,event_type,ts\nseed-user,seed-item,view,2024-01-01 00:00:00\n")
    db = folder / "shop.duckdb"
    ingest(db, "generic", events)
    return db
