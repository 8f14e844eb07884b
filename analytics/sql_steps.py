"""Batch jobs as a list of named SQL steps, run the same way on any engine.

A step is one DuckDB ``SELECT`` whose result later steps read under the step's name; ``output``
steps are also written as Parquet. The list is the one source of truth of a batch job: DuckDB runs
it as written (:func:`run_duckdb`), Spark runs it transpiled (:mod:`analytics.spark_engine`), so
the two engines compute the same tables from the same SQL and their timings compare like with like.

Each output table is a folder ``<out>/<name>/`` of ``*.parquet`` files (one file from DuckDB, one
per partition from Spark), read back alike by ``read_parquet('<out>/<name>/*.parquet')`` and
``spark.read.parquet('<out>/<name>')``. A folder is written beside its final place and renamed
into it (:func:`publish_folder`), so a reader never sees a half-written table.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

import atomic
from errors import RecsightError

__all__ = ["Step", "TableRun", "run_duckdb", "bound_params", "publish_folder"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Step:
    """One named table of a batch job: ``sql`` is a DuckDB SELECT over earlier steps' names and
    the registered ``events`` / ``items``, with named parameters such as ``$as_of``."""

    name: str
    sql: str
    output: bool = False  # written to the output folder; else an intermediate table only

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise RecsightError(f"bad step name {self.name!r}: use letters, digits and underscores")


@dataclass(frozen=True)
class TableRun:
    """What one step produced: its rows, its wall time and, for an output, its folder."""

    name: str
    rows: int
    seconds: float
    path: Path | None = None


def bound_params(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters ``sql`` names (``$name``): DuckDB refuses values the statement does not use."""
    return {key: value for key, value in params.items() if re.search(rf"\${key}\b", sql)}


def run_duckdb(con: duckdb.DuckDBPyConnection, steps: list[Step], params: Mapping[str, Any],
               out_dir: Path) -> list[TableRun]:
    """Run ``steps`` in order as TEMP tables of ``con``, writing the output steps to ``out_dir``."""
    runs = []
    for step in steps:
        started = time.perf_counter()
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {step.name} AS {step.sql}", bound_params(step.sql, params))
            path = None
            if step.output:
                path = publish_folder(out_dir, step.name, lambda tmp, name=step.name: con.execute(
                    f"COPY {name} TO '{tmp / 'part-0.parquet'}' (FORMAT PARQUET)"))
            rows = con.execute(f"SELECT count(*) FROM {step.name}").fetchall()[0][0]
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0]
            raise RecsightError(f"batch step {step.name} failed on duckdb: {first}") from None
        runs.append(TableRun(step.name, rows, time.perf_counter() - started, path))
        log.info("duckdb: %s, %d rows in %.2f s", step.name, rows, runs[-1].seconds)
    for step in steps:
        con.execute(f"DROP TABLE IF EXISTS {step.name}")
    return runs


def publish_folder(out_dir: Path, name: str, write: Callable[[Path], object]) -> Path:
    """Let ``write`` fill a fresh folder beside ``out_dir / name``, then rename it into place.

    The rename is atomic when the table is new. A table already there (a rerun) is first moved
    aside and removed after the new one is in place: readers see the old table or the new one,
    never a mix, and for an instant between the two renames neither.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    tmp = out_dir / f".{name}.{uuid.uuid4().hex[:12]}.writing"
    old = out_dir / f".{name}.{uuid.uuid4().hex[:12]}.old"
    try:
        tmp.mkdir()
        write(tmp)
        for path in tmp.rglob("*"):
            if path.is_file():
                atomic.fsync_path(path)
        if target.exists():
            os.rename(target, old)
        os.rename(tmp, target)
    except OSError as exc:
        raise RecsightError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target


