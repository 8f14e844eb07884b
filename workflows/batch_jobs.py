"""The batch jobs of a shop on the engine it runs: user profiles, item stats and co-visitation.

:func:`run_batch` computes, as of one instant, the two profile tables
(:func:`analytics.profile_build.profile_steps`) and the served co-visitation tables of the
candidate index (:func:`models.covis_steps.covis_steps`), and writes each as a Parquet folder under
``out_dir``. One list of named SQL steps serves both engines: DuckDB runs it as written
(:func:`analytics.sql_steps.run_duckdb`), Spark transpiled (:func:`analytics.spark_engine.run_spark`),
so the two compute the same tables from one source and their timings compare like with like.

The events come from a shop file or from an events dataset (a ``date=YYYY-MM-DD`` partitioned
Parquet folder, :mod:`analytics.event_dataset`). Spark reads datasets only: given a shop file, its
events are exported to a dataset beside the output first (and removed after).
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from analytics import schema as s
from analytics.db import connect_read_only
from analytics.event_dataset import export_events, register_duckdb
from analytics.profile_build import profile_steps, user_key
from analytics.sql_steps import Step, TableRun, run_duckdb
from errors import RecsightError
from models.candidates import CandidateConfig
from models.covis_steps import covis_steps

__all__ = ["ENGINES", "BatchSummary", "batch_steps", "run_batch", "parse_as_of"]

log = logging.getLogger(__name__)

ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run wrote, and how long each step took (``setup_seconds``: opening the
    source, starting the engine, exporting a shop file for Spark)."""

    engine: str
    source: Path
    out_dir: Path
    as_of: datetime
    seconds: float
    setup_seconds: float
    tables: list[TableRun] = field(default_factory=list)

    @property
    def outputs(self) -> list[TableRun]:
        return [t for t in self.tables if t.path is not None]

    def render(self) -> str:
        lines = [f"batch on {self.engine} as of {self.as_of:%Y-%m-%d %H:%M:%S.%f}: {len(self.outputs)} tables "
                 f"in {self.out_dir} ({self.seconds:.1f} s, of which {self.setup_seconds:.1f} s setting up)"]
        width = max((len(t.name) for t in self.tables), default=0)
        for t in self.tables:
            kind = "written" if t.path is not None else "step"
            lines.append(f"  {t.name:<{width}}  {t.rows:>12,} rows  {t.seconds:8.2f} s  {kind}")
        return "\n".join(lines)


def batch_steps(key: str = "{}", config: CandidateConfig | None = None) -> list[Step]:
    """The steps of a batch run over the registered ``events`` and ``items``."""
    return [*profile_steps(s.EVENTS, key), *covis_steps(s.EVENTS, config)]


def run_batch(events: Path, out_dir: Path, engine: str = "duckdb", master: str | None = None,
              as_of: datetime | str | None = None, *, items: Path | None = None,
              config: CandidateConfig | None = None, spark_conf: dict[str, str] | None = None) -> BatchSummary:
    """Profiles, item stats and co-visitation of ``events`` (a shop file or an events dataset
    folder) as of ``as_of`` (default: just after the newest event), on ``engine``, into ``out_dir``.

    ``master``: the Spark master URL (default ``local[*]``); ``items``: the catalogue of a dataset
    (default: its ``_items.parquet``); ``spark_conf``: extra Spark settings.
    """
    if engine not in ENGINES:
        raise RecsightError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if master is not None and engine != "spark":
        raise RecsightError("--master is for --engine spark")
    events, out_dir = Path(events), Path(out_dir)
    if not events.exists():
        raise RecsightError(f"{events} not found: pass a shop file (--db) or an events dataset folder (--events)")
    if items is not None and events.is_file():
        raise RecsightError("--items is for an events dataset (--events): a shop file holds its catalogue")
    wanted = parse_as_of(as_of)
    started = time.perf_counter()
    if engine == "spark":
        return _run_spark(events, out_dir, master, wanted, items, config, spark_conf, started)
    con = connect_read_only(events) if events.is_file() else duckdb.connect()
    try:
        if events.is_dir():
            con.execute("SET enable_progress_bar = false")
            register_duckdb(con, events, items)
        last = con.execute(f"SELECT max({s.TS}) FROM {s.EVENTS}").fetchall()[0][0]
        cutoff = _cutoff(events, last, wanted)
        steps = batch_steps(user_key(con, s.EVENTS), config)
        setup = time.perf_counter() - started
        runs = run_duckdb(con, steps, {"as_of": cutoff}, out_dir)
    except duckdb.Error as exc:
        raise RecsightError(f"cannot read the events of {events}: {str(exc).strip().splitlines()[0]}") from None
    finally:
        con.close()
    return BatchSummary("duckdb", events, out_dir, cutoff, time.perf_counter() - started, setup, runs)


def _run_spark(events: Path, out_dir: Path, master: str | None, wanted: datetime | None, items: Path | None,
               config: CandidateConfig | None, spark_conf: dict[str, str] | None, started: float) -> BatchSummary:
    from analytics.spark_engine import max_ts, register_dataset, require_spark, run_spark, spark_session

    require_spark()  # before any export: the missing package is the first thing to hear about
    exported = None
    try:
        if events.is_file():
            exported = out_dir / f".events-{uuid.uuid4().hex[:12]}"
            export_events(events, exported)
        spark = spark_session(master, spark_conf)
        register_dataset(spark, exported or events, items)
        cutoff = _cutoff(events, max_ts(spark), wanted)
        setup = time.perf_counter() - started
        runs = run_spark(spark, batch_steps("{}", config), {"as_of": cutoff}, out_dir)
    finally:
        if exported is not None:
            shutil.rmtree(exported, ignore_errors=True)
    name = f"spark ({spark.sparkContext.master})"
    return BatchSummary(name, events, out_dir, cutoff, time.perf_counter() - started, setup, runs)


def parse_as_of(as_of: datetime | str | None) -> datetime | None:
    """``as_of`` as a naive UTC time: ISO text or a datetime; an aware one is converted to UTC."""
    if isinstance(as_of, str):
        try:
            as_of = datetime.fromisoformat(as_of)
        except ValueError:
            raise RecsightError(f"--as-of takes an ISO time such as 2024-03-01T00:00, not {as_of!r}") from None
    if as_of is not None and as_of.tzinfo is not None:
        as_of = as_of.astimezone(UTC).replace(tzinfo=None)
    return as_of


def _cutoff(events: Path, last: datetime | None, wanted: datetime | None) -> datetime:
    """``wanted``, or just after the newest event (as :func:`analytics.profile_build.resolve_as_of`)."""
    if last is None:
        raise RecsightError(f"{events} has no events")
    return wanted if wanted is not None else last + timedelta(microseconds=1)
