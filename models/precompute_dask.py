"""Every customer's list ranked on a Dask cluster: :mod:`models.precompute`, partitioned by customer.

The driver lists the customers, cuts them into contiguous shares and submits one task per share;
each task opens the shop file read-only itself (a DuckDB connection cannot travel), loads the
serving tables and models from the version being written, exactly as
:meth:`models.serving.Recommender.load` does, and ranks its customers with
:func:`models.precompute.rank_customers`, the single path's own code. The driver gathers the
rows in customer order and writes the one Parquet file (:func:`models.precompute.write_top_items`),
so the file is the single path's, row for row.

What the workers need: the shop file and the models folder at the same paths (one machine, or a
shared file system), and this code installed. A task refuses to rank from a shop file whose
events or items are not the ones the version was trained on (an ingest replaced the file during
training): the lists would describe other data than the metadata says.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from analytics import schema as s
from analytics.db import connect_read_only
from analytics.fingerprint import fingerprint
from errors import RecsightError
from models.batch import HistoryTables, Models
from models.candidates import CandidateConfig, CandidateIndex
from models.precompute import K_PRECOMPUTED, customers, rank_customers, write_top_items
from progress import SILENT, Progress

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["ServingFiles", "precompute_top_items_dask", "shares"]

log = logging.getLogger(__name__)

_CHUNK = 4000  # customers per feature frame inside a task, as in the single path
_MIN_SHARE = 500  # customers per task at least: each task loads the serving tables and models once


@dataclass(frozen=True)
class ServingFiles:
    """Where a worker finds what serving one customer needs, and what it must match: the shop
    file, the version folder (being written) and the names and settings its tables were saved with."""

    db_path: str
    folder: str
    fingerprint: str
    as_of: datetime
    index_prefix: str
    candidates: CandidateConfig
    items: str
    features: dict[str, list[str]]
    served: str

    @classmethod
    def of(cls, db_path: Path, folder: Path, data_fingerprint: str, tables: HistoryTables,
           models: Models) -> ServingFiles:
        """The files of the version in ``folder`` whose serving tables are ``tables``."""
        if tables.as_of is None:
            raise RecsightError("the serving tables have no as-of time; cannot rank customers on workers")
        return cls(str(Path(db_path).resolve()), str(Path(folder).resolve()), data_fingerprint, tables.as_of,
                   tables.index.prefix, tables.index.config, tables.items,
                   {"ranker": models.ranker.features, "hybrid": models.hybrid.features}, models.served)


def precompute_top_items_dask(client: Client, con: duckdb.DuckDBPyConnection, tables: HistoryTables,
                              files: ServingFiles, out: Path, k: int = K_PRECOMPUTED,
                              progress: Progress = SILENT) -> dict[str, Any]:
    """:func:`models.precompute.precompute_top_items` with the ranking done by ``client``'s workers.

    ``con`` and ``tables`` are the driver's (to list the customers and title the items);
    ``files`` what the workers open. ``progress`` counts the customers, a share at a time."""
    from distributed import as_completed

    started = time.perf_counter()
    users = customers(con, tables)
    workers = len(client.scheduler_info()["workers"])
    progress.phase(f"precompute: ranking every customer on {workers} dask workers", total=len(users),
                   unit="customers")
    parts = shares(users, 2 * workers)
    futures = [client.submit(_rank_share, files, part, k, pure=False) for part in parts]
    sizes = {future.key: len(part) for future, part in zip(futures, parts)}
    for future in as_completed(futures):
        future.result()  # a task's error is raised here, the first one to end
        progress.advance(sizes[future.key])
    frames = [frame for frame in client.gather(futures) if not frame.empty]
    top = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return write_top_items(con, top, out, k, len(users), started, progress)


def shares(users: list[str], count: int) -> list[list[str]]:
    """``users`` cut into at most ``count`` contiguous shares of about equal size, none smaller
    than a few hundred customers unless there are fewer (a task's loading is paid per share)."""
    count = max(1, min(count, math.ceil(len(users) / _MIN_SHARE)))
    size = math.ceil(len(users) / count) if users else 0
    return [users[i:i + size] for i in range(0, len(users), size)] if users else []


def _rank_share(files: ServingFiles, users: list[str], k: int) -> pd.DataFrame:
    """On a worker: the top ``k`` rows of each of ``users``, ranked from the version's files."""
    con = connect_read_only(files.db_path)
    try:
        if fingerprint(con) != files.fingerprint:
            raise RecsightError(f"the shop file {files.db_path} changed while training (another ingest?); "
                                "train again")
        tables, models = _serving(con, files)
        return rank_customers(con, tables, models, users, k, _CHUNK)
    finally:
        con.close()


def _serving(con: duckdb.DuckDBPyConnection, files: ServingFiles) -> tuple[HistoryTables, Models]:
    """The serving tables and models of the version, bound to ``con`` (as the server loads them)."""
    folder = Path(files.folder)
    index = CandidateIndex.load(folder / "serving", con, files.index_prefix, files.candidates)
    items = folder / "serving" / f"{files.items}.parquet"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {files.items} AS SELECT * FROM read_parquet('{items}')")
    models = Models.load(folder, files.features, files.served)
    return HistoryTables(s.EVENTS, files.as_of, index, files.items), models
