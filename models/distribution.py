"""Where training runs: one process (the default), or a Dask cluster and several torch processes.

``models.training.train(..., distribution=None)`` is the single process it always was. With a
:class:`Distribution` it runs the three heavy steps elsewhere, with the same code and the same
results type:

* the two rankers on the Dask cluster (:mod:`models.ranker_dask`, LightGBM's Dask interface);
* the attention network on ``processes`` local processes (:mod:`models.attention_ddp`,
  torch.distributed with gloo);
* every customer's precomputed list on the Dask workers (:mod:`models.precompute_dask`).

Everything else (the split, candidates, features, evaluation, the search index) stays in the
driving process, on the DuckDB file. The cluster is a ``LocalCluster`` started for the run
(``scheduler="local"``: this machine's cores in separate processes) or a running scheduler's
address (``tcp://host:8786``). A remote cluster's workers need this code installed and the shop
file and models folder at the same paths (a shared file system) for the precompute; the rankers'
rows travel to them over Dask.

Dask and distributed are optional (requirements-engines.txt): they are imported here, when a
distribution is asked for, and their absence is one line naming what to install.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd

from errors import RecsightError
from models.attention import AttentionConfig, AttentionModel
from models.batch import HistoryTables, Models
from models.ranker import Ranker, RankerConfig
from progress import SILENT, Progress

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["DASK_MISSING", "LOCAL", "Cluster", "Distribution", "open_cluster", "require_dask"]

log = logging.getLogger(__name__)

LOCAL = "local"  # Distribution.scheduler: a LocalCluster started for the run
DASK_MISSING = "the dask engine needs dask[distributed]: pip install -r requirements-engines.txt"
_CONNECT_TIMEOUT_S = 30


@dataclass(frozen=True)
class Distribution:
    """How to spread one training run: ``cli.py train --engine dask [--scheduler ADDR] [--workers N]``.

    ``scheduler``: :data:`LOCAL` (a LocalCluster of ``workers`` processes on this machine, closed
    after the run) or the address of a running Dask scheduler. ``workers``: the LocalCluster's
    worker processes, and the attention network's training processes (``attention_processes``
    overrides the latter). ``threads``: threads per LocalCluster worker and per attention process
    (1: the processes are the parallelism; more oversubscribes a machine's cores)."""

    scheduler: str = LOCAL
    workers: int = 2
    threads: int = 1
    attention_processes: int | None = None

    def __post_init__(self) -> None:
        if self.workers < 1 or self.threads < 1 or (self.attention_processes or 1) < 1:
            raise RecsightError("--workers and threads must be at least 1")
        if not self.scheduler.strip():
            raise RecsightError("--scheduler needs an address such as tcp://10.0.0.5:8786")

    @property
    def processes(self) -> int:
        """The attention network's training processes."""
        return self.attention_processes or self.workers

    def describe(self) -> dict[str, Any]:
        """What the version's metadata records under ``engine``."""
        return {"name": "dask", "scheduler": self.scheduler, "workers": self.workers, "threads": self.threads,
                "attention_processes": self.processes}


def require_dask() -> None:
    """Raise the one-line :data:`DASK_MISSING` error unless dask, distributed and LightGBM's Dask
    interface import."""
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
        import lightgbm.dask  # noqa: F401
    except ImportError:
        raise RecsightError(DASK_MISSING) from None


class Cluster:
    """An open distribution: the Dask client and the attention network's processes; the three
    distributed steps with the single path's signatures and results."""

    def __init__(self, client: Client, distribution: Distribution) -> None:
        self.client = client
        self.distribution = distribution

    @property
    def workers(self) -> list[str]:
        return sorted(self.client.scheduler_info()["workers"])

    def train_attention(self, con: duckdb.DuckDBPyConnection, history_table: str, config: AttentionConfig,
                        progress: Progress = SILENT) -> AttentionModel:
        """:func:`models.attention_training.train_attention` over ``processes`` torch processes of
        ``threads`` threads each; the model keeps the caller's configuration."""
        from models.attention_ddp import train_attention_ddp

        ranks = dataclasses.replace(config, threads=self.distribution.threads)
        model = train_attention_ddp(con, history_table, ranks, self.distribution.processes, progress)
        model.config = config
        return model

    def train_ranker(self, frame: pd.DataFrame, features: list[str], config: RankerConfig,
                     progress: Progress = SILENT, name: str = "ranker") -> Ranker:
        """:func:`models.ranker.train_ranker` on the Dask workers."""
        from models.ranker_dask import train_ranker_dask

        return train_ranker_dask(self.client, frame, features, config, progress, name, self.workers)

    def precompute(self, con: duckdb.DuckDBPyConnection, tables: HistoryTables, models: Models, db_path: Path,
                   folder: Path, data_fingerprint: str, out: Path, progress: Progress = SILENT) -> dict[str, Any]:
        """:func:`models.precompute.precompute_top_items` on the Dask workers, from the files of
        the version being written in ``folder``."""
        from models.precompute_dask import ServingFiles, precompute_top_items_dask

        files = ServingFiles.of(db_path, folder, data_fingerprint, tables, models)
        return precompute_top_items_dask(self.client, con, tables, files, out, progress=progress)


@contextmanager
def open_cluster(distribution: Distribution | None) -> Iterator[Cluster | None]:
    """The :class:`Cluster` of ``distribution`` for the block (None for the single process): a
    LocalCluster started and closed around it, or a client of the running scheduler."""
    if distribution is None:
        yield None
        return
    require_dask()
    from distributed import Client, LocalCluster

    if distribution.scheduler == LOCAL:
        with LocalCluster(n_workers=distribution.workers, threads_per_worker=distribution.threads, processes=True,
                          dashboard_address=":0") as local, Client(local) as client:
            log.info("dask: a local cluster of %d workers", distribution.workers)
            client.run(_stdout_to_stderr)
            yield Cluster(client, distribution)
        return
    try:
        client = Client(distribution.scheduler, timeout=_CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecsightError(f"cannot reach the dask scheduler at {distribution.scheduler} ({reason})") from None
    with client:
        if not client.scheduler_info()["workers"]:
            raise RecsightError(f"the dask scheduler at {distribution.scheduler} has no workers")
        yield Cluster(client, distribution)


def _stdout_to_stderr() -> None:
    """On a LocalCluster's worker: write what would go to stdout to stderr instead. The workers
    share the command's stdout, which carries ``cli.py train``'s JSON summary, and LightGBM's
    network code prints its sockets ("[LightGBM] [Info] Listening...") there from the task's
    thread, where no Python logger can catch it."""
    import os
    import sys

    sys.stdout.flush()
    os.dup2(2, 1)
