"""A shop's events as a dataset: Parquet files partitioned by date, the layout of a data lake.

``<folder>/date=YYYY-MM-DD/part-N.parquet`` (hive partitioning, as Spark, Hive and DuckDB write and
read it) holds the events of the data contract (:data:`analytics.schema.EVENTS_COLUMNS`), the date
of ``ts`` in the folder name. The catalogue travels beside them as ``<folder>/_items/part-0.parquet``:
names starting with ``_`` are not data to Spark and Hive readers of the folder (the events are
read from its ``date=*`` folders only, in any case), and Spark skips a *file* named ``_...`` even
when asked for it by name, hence a folder.

:func:`export_events` writes a shop file's events so; :func:`register_duckdb` reads such a folder
as the canonical ``events`` relation of a DuckDB connection (and ``items`` from its catalogue);
:mod:`analytics.spark_engine` reads it into Spark. Both readers check the files' columns against
the contract first (:func:`check_columns`), so a missing or mistyped column is one clear line and
not a failure deep inside a batch job.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb

import atomic
from analytics import schema as s
from analytics.db import connect_read_only
from errors import RecsightError

__all__ = [
    "ITEMS_DIR", "EVENTS_GLOB", "ExportSummary", "export_events", "dataset_files", "check_columns",
    "contract_select_sql", "register_duckdb", "catalogue_path",
]

log = logging.getLogger(__name__)

ITEMS_DIR = "_items"  # the catalogue beside the partitions; the "_" keeps it out of the events
EVENTS_GLOB = "date=*/*.parquet"
PARTITION = "date"

# The file types each contract type accepts (DuckDB's names; Spark's are mapped onto them), cast
# to the contract type on reading. Time zones are refused: the contract's times are naive UTC.
_ACCEPTED: dict[str, frozenset[str]] = {
    "VARCHAR": frozenset({"VARCHAR"}),
    "TIMESTAMP": frozenset({"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}),
    "INTEGER": frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT"}),
    "DOUBLE": frozenset({"DOUBLE", "FLOAT", "DECIMAL"}),
}


@dataclass(frozen=True)
class ExportSummary:
    folder: Path
    events: int
    partitions: int
    items: int

    def render(self) -> str:
        return (f"exported {self.events:,} events in {self.partitions:,} daily partitions and "
                f"{self.items:,} items to {self.folder}")


def export_events(db_path: Path, folder: Path) -> ExportSummary:
    """Write the shop file's events as a date-partitioned dataset into ``folder``, and its items.

    Each partition file appears atomically (written in a staging folder inside ``folder``, then
    renamed into place). The folder ends up holding exactly the store's events: partitions of
    dates the store no longer has are removed. Only ``events`` is read: fold live appends in
    first (``cli.py compact``). ``folder`` must be empty or an earlier export. The files are
    their owner's only, like the shop file: they hold every customer's history.
    """
    folder = Path(folder)
    _check_export_target(folder)
    con = connect_read_only(db_path)
    staging = folder / f".staging-{uuid.uuid4().hex[:12]}"
    try:
        with atomic.private_files():
            counts = _export(con, staging, folder)
    except duckdb.Error as exc:
        raise RecsightError(f"cannot export the events of {db_path}: {str(exc).strip().splitlines()[0]}") from None
    except OSError as exc:
        raise RecsightError(f"cannot write the events dataset {folder}: {exc.strerror or exc}") from None
    finally:
        con.close()
        shutil.rmtree(staging, ignore_errors=True)
    summary = ExportSummary(folder, *counts)
    log.info("%s", summary.render())
    return summary


def _export(con: duckdb.DuckDBPyConnection, staging: Path, folder: Path) -> tuple[int, int, int]:
    """(events, partitions, items) written: one partitioned COPY into ``staging``, then each
    partition published, the catalogue written, and partitions of other dates removed."""
    columns = ", ".join(s.EVENTS_COLUMNS)
    con.execute(f"COPY (SELECT {columns}, CAST({s.TS} AS DATE) AS {PARTITION} FROM {s.EVENTS}) "
                f"TO {_quote(staging)} (FORMAT PARQUET, PARTITION_BY ({PARTITION}))")
    events = con.execute(f"SELECT count(*) FROM {s.EVENTS}").fetchall()[0][0]
    items = con.execute(f"SELECT count(*) FROM {s.ITEMS}").fetchall()[0][0]
    (folder / ITEMS_DIR).mkdir(exist_ok=True)
    atomic.replace_with(folder / ITEMS_DIR / "part-0.parquet", lambda tmp: con.execute(
        f"COPY (SELECT {', '.join(s.ITEMS_COLUMNS)} FROM {s.ITEMS}) TO {_quote(tmp)} (FORMAT PARQUET)"))
    dates = {p.name for p in staging.glob(f"{PARTITION}=*") if p.is_dir()}
    for name in sorted(dates):
        _publish_partition(staging / name, folder / name)
    for old in folder.glob(f"{PARTITION}=*"):
        if old.name not in dates:
            shutil.rmtree(old)
    return events, len(dates), items


def _quote(path: Path | str) -> str:
    """A path as a SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def _check_export_target(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise RecsightError(f"cannot export into {folder}: it is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    foreign = [p.name for p in folder.iterdir()
               if not (p.name.startswith(f"{PARTITION}=") or p.name.startswith(".") or p.name == ITEMS_DIR)]
    if foreign:
        raise RecsightError(f"cannot export into {folder}: it holds other files ({foreign[0]}); use an empty folder")


def _publish_partition(staged: Path, target: Path) -> None:
    """Move one partition's staged files to ``target/part-N.parquet``, each by one atomic rename."""
    target.mkdir(exist_ok=True)
    names = set()
    for i, path in enumerate(sorted(staged.glob("*.parquet"))):
        name = f"part-{i}.parquet"
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(path, target / name)
        names.add(name)
    for stale in target.glob("*.parquet"):  # parts of an earlier, larger export of this date
        if stale.name not in names:
            stale.unlink()


def dataset_files(folder: Path) -> list[Path]:
    """The partition files of an events dataset; a missing or empty folder is a clear error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RecsightError(f"events dataset {folder} not found: export one with `python cli.py export-events`")
    files = sorted(folder.glob(EVENTS_GLOB))
    if not files:
        raise RecsightError(f"events dataset {folder} holds no {EVENTS_GLOB} files")
    return files


def check_columns(found: dict[str, str], contract: dict[str, str], what: str) -> None:
    """Raise one line naming the first contract column that ``found`` (name -> type, in DuckDB's
    type names) lacks or holds in a type the contract does not accept. Extra columns are fine."""
    for name, declared in contract.items():
        wanted = declared.split()[0]
        if name not in found:
            raise RecsightError(f"{what} has no column {name} ({wanted}) of the data contract")
        if found[name].upper().split("(")[0] not in _ACCEPTED.get(wanted, frozenset({wanted})):
            raise RecsightError(f"{what}: column {name} is {found[name]}, the data contract says {wanted}")


def contract_select_sql(contract: dict[str, str], source: str) -> str:
    """SQL (DuckDB; Spark transpiles it): the contract's columns of ``source`` cast to their types."""
    columns = ", ".join(f"CAST({name} AS {declared.split()[0]}) AS {name}" for name, declared in contract.items())
    return f"SELECT {columns} FROM {source}"


def catalogue_path(folder: Path, items: Path | None = None) -> Path:
    """The catalogue of an events dataset: ``items`` (a Parquet file or a folder of them) if
    given, else the export's ``_items`` folder."""
    path = Path(items) if items is not None else Path(folder) / ITEMS_DIR
    if not (path.is_file() or any(path.glob("*.parquet"))):
        raise RecsightError(f"catalogue {path} not found: pass the items as Parquet (--items FILE or FOLDER)")
    return path


def register_duckdb(con: duckdb.DuckDBPyConnection, folder: Path, items: Path | None = None) -> None:
    """Views ``events`` and ``items`` of ``con`` over an events dataset and its catalogue,
    checked against the data contract and cast to it."""
    dataset_files(folder)
    catalogue = catalogue_path(folder, items)
    sources = (
        (s.EVENTS, s.EVENTS_COLUMNS, f"events dataset {folder}",
         f"read_parquet({_quote(Path(folder) / EVENTS_GLOB)}, hive_partitioning = true)"),
        (s.ITEMS, s.ITEMS_COLUMNS, f"catalogue {catalogue}",
         f"read_parquet({_quote(catalogue if catalogue.is_file() else catalogue / '*.parquet')})"),
    )
    for table, contract, what, source in sources:
        try:
            found = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
            check_columns(found, contract, what)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS {contract_select_sql(contract, source)}")
        except duckdb.Error as exc:
            raise RecsightError(f"cannot read the {what}: {str(exc).strip().splitlines()[0]}") from None
