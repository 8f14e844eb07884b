"""Run a batch job's named SQL steps (:mod:`analytics.sql_steps`) on Apache Spark.

:func:`spark_session` connects to any master (``local[2]`` in tests, ``spark://host:7077``,
``yarn``, ``k8s://...`` in production); :func:`register_dataset` reads an events dataset
(:mod:`analytics.event_dataset`) and its catalogue as the views ``events`` and ``items``, checked
against the data contract; :func:`run_spark` runs each step's DuckDB SQL transpiled
(:func:`analytics.spark_sql.to_spark_sql`): intermediate tables are cached temp views, outputs are
written as Parquet folders. Times are naive UTC, as in the contract: the session time zone is UTC
and timestamps are ``TIMESTAMP_NTZ``.

pyspark is imported lazily (inside functions): the default path never needs it, and without it
every entry point says what to install, in one line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analytics import schema as s
from analytics.db import machine_memory
from analytics.event_dataset import (
    EVENTS_GLOB,
    ITEMS_DIR,
    catalogue_path,
    check_columns,
    contract_select_sql,
    dataset_files,
)
from analytics.spark_sql import ENGINES_HINT, to_spark_sql
from analytics.sql_steps import Step, TableRun, publish_folder
from errors import RecsightError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["require_spark", "spark_session", "register_dataset", "max_ts", "run_spark"]

log = logging.getLogger(__name__)

# Spark's simple type names in DuckDB's, for the contract check.
_TYPE_NAMES = {
    "string": "VARCHAR", "timestamp_ntz": "TIMESTAMP", "timestamp": "TIMESTAMP WITH TIME ZONE",
    "int": "INTEGER", "bigint": "BIGINT", "smallint": "SMALLINT", "tinyint": "TINYINT",
    "double": "DOUBLE", "float": "FLOAT",
}


def require_spark() -> None:
    """Raise the one-line install hint unless pyspark and sqlglot can be imported."""
    for module in ("pyspark", "sqlglot"):
        try:
            __import__(module)
        except ImportError:
            raise RecsightError(f"the spark engine needs {module}: {ENGINES_HINT}") from None


def spark_session(master: str | None = None, conf: Mapping[str, str] | None = None) -> SparkSession:
    """A Spark session on ``master`` (default ``local[*]``), times in UTC.

    Local mode gets settings for one machine (:func:`_local_defaults`); ``conf`` adds or
    overrides settings (the tests set ``spark.sql.shuffle.partitions``).
    """
    require_spark()
    from pyspark.sql import SparkSession

    master = master or "local[*]"
    builder = (SparkSession.builder.master(master).appName("recsight-batch")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.ui.showConsoleProgress", "false"))
    settings = {**(_local_defaults(master) if master.startswith("local") else {}), **(conf or {})}
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - the JVM's start-up errors have no common type
        raise RecsightError(f"cannot start Spark on {master}: {_first_line(exc)}") from None
    spark.sparkContext.setLogLevel("ERROR")
    _quiet_query_loggers()
    return spark


def _local_defaults(master: str) -> dict[str, str]:
    """Settings for local mode, where Spark's defaults fit a cluster, not one machine: no web UI,
    the driver on 127.0.0.1 (no network needed), a quarter of the memory (at most 16 GB) instead
    of 1 GB (which spilled and collected garbage: co-visitation of 400,000 events took 5x longer),
    and two shuffle partitions per core instead of 200. A cluster keeps its own settings
    (``spark-defaults.conf``)."""
    cores = master[len("local["):-1] if master.startswith("local[") else "1"
    n_cores = (os.cpu_count() or 1) if cores in ("*", "") else int(cores.split(",")[0])
    memory_gb = machine_memory() // 4 // 2**30
    return {
        "spark.ui.enabled": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.memory": f"{min(16, max(1, memory_gb))}g",
        "spark.sql.shuffle.partitions": str(2 * n_cores),
    }


def _quiet_query_loggers() -> None:
    """pyspark logs every failed query's JVM trace at ERROR; the failure reaches the user as one
    :class:`RecsightError` line instead."""
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)


def register_dataset(spark: SparkSession, folder: Path | str, items: Path | None = None) -> None:
    """Temp views ``events`` (the dataset's ``date=*`` partitions) and ``items`` (its catalogue),
    checked against the data contract and cast to it.

    A local folder is checked first (missing, empty: one line each); a URL (``hdfs://``,
    ``s3a://``) is handed to Spark as is.
    """
    if "://" not in str(folder):
        dataset_files(Path(folder))
        catalogue = str(catalogue_path(Path(folder), items))
    else:
        catalogue = str(items) if items is not None else f"{folder}/{ITEMS_DIR}"
    events_path = f"{folder}/{EVENTS_GLOB.split('/')[0]}"
    sources = ((s.EVENTS, s.EVENTS_COLUMNS, f"events dataset {folder}", events_path, str(folder)),
               (s.ITEMS, s.ITEMS_COLUMNS, f"catalogue {catalogue}", catalogue, None))
    for table, contract, what, path, base in sources:
        try:
            reader = spark.read.option("basePath", base) if base else spark.read
            frame = reader.parquet(path)
            found = {f.name: _TYPE_NAMES.get(f.dataType.simpleString(), f.dataType.simpleString().upper())
                     for f in frame.schema.fields}
            check_columns(found, contract, what)
            frame.createOrReplaceTempView(f"{table}_source")
            spark.sql(to_spark_sql(contract_select_sql(contract, f"{table}_source"))).createOrReplaceTempView(table)
        except RecsightError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyspark's errors share no base class worth naming
            raise RecsightError(f"cannot read the {what}: {_first_line(exc)}") from None


def max_ts(spark: SparkSession, events: str = s.EVENTS) -> datetime | None:
    """The newest event's time (naive UTC), or None without events."""
    return spark.sql(f"SELECT max({s.TS}) AS m FROM {events}").first()["m"]


def run_spark(spark: SparkSession, steps: list[Step], params: Mapping[str, Any], out_dir: Path) -> list[TableRun]:
    """Run ``steps`` in order: each one's DuckDB SQL transpiled, intermediate tables cached (and
    counted, so each step's time is its own), outputs written as Parquet folders into ``out_dir``."""
    args = {key: _spark_value(value) for key, value in params.items()}
    runs, cached = [], []
    try:
        for step in steps:
            started = time.perf_counter()
            sql = to_spark_sql(step.sql)
            frame = spark.sql(sql, args={k: v for k, v in args.items() if f":{k}" in sql})
            path = None
            if step.output:
                path = publish_folder(out_dir, step.name,
                                      lambda tmp, f=frame: f.write.mode("overwrite").parquet(str(tmp)))
                frame = spark.read.parquet(str(path))  # later steps read the written table
                rows = frame.count()
            else:
                frame = frame.cache()
                cached.append(frame)
                rows = frame.count()
            frame.createOrReplaceTempView(step.name)
            runs.append(TableRun(step.name, rows, time.perf_counter() - started, path))
            log.info("spark: %s, %d rows in %.2f s", step.name, rows, runs[-1].seconds)
    except RecsightError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyspark's errors share no base class worth naming
        raise RecsightError(f"batch step {step.name} failed on spark: {_first_line(exc)}") from None
    finally:
        for frame in cached:
            frame.unpersist()
        for step in steps:
            spark.catalog.dropTempView(step.name)
    return runs


def _spark_value(value: Any) -> Any:
    """A parameter as Spark binds it: times as ISO text (cast to TIMESTAMP_NTZ where used), so
    neither the driver's nor the session's time zone can shift them."""
    return value.isoformat(sep=" ") if isinstance(value, datetime) else value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
