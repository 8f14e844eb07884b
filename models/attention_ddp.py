"""The attention network trained by several processes: torch.distributed, gloo on CPU.

:func:`train_attention_ddp` reads the sequences once (:func:`models.attention_training.attention_examples`),
spawns ``processes`` workers with ``torch.multiprocessing`` and runs the single-process loop
(:func:`models.attention_training.fit_attention`) in each, as one rank of a gloo process group on
the loopback interface. Each batch of the single path is split between the ranks (each computes
the loss of its part of it) and DistributedDataParallel averages the gradients, scaled so that
every optimizer step is the whole batch's mean-loss step: the same steps, the same batches and
negatives (every rank draws them from the same generator), so the result is the single-process
model up to dropout masks and the order of floating-point sums. The ranks score their shares of
the validation behaviours and add them up (all-reduce), so all of them take the same early-stopping
decision; rank 0 saves the best network as an :class:`models.attention.AttentionModel` file,
which the caller loads: the same type, the same file format as the single path.

Why processes on this machine rather than the Dask workers: the network is small and its epochs
are dominated by per-batch compute, which the ranks share; a multi-machine run would start the
same ranks with ``torchrun`` and ``MASTER_ADDR``, which is left out here.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import torch
from torch import nn

from errors import RecsightError
from models.attention import AttentionConfig, AttentionModel
from models.attention_training import AttentionExamples, Shard, attention_examples, fit_attention, train_attention
from progress import SILENT, Progress

__all__ = ["train_attention_ddp"]

log = logging.getLogger(__name__)

_LOOPBACK = "127.0.0.1"
_POLL_S = 0.2  # how often the parent relays rank 0's progress while it waits
_GROUP_TIMEOUT = timedelta(minutes=30)  # a collective waiting longer than this means a rank died


def train_attention_ddp(con: duckdb.DuckDBPyConnection, history_table: str, config: AttentionConfig,
                        processes: int, progress: Progress = SILENT) -> AttentionModel:
    """Train the attention network on ``processes`` ranks (the single-process path for 1 or fewer).

    ``config.threads`` is each rank's torch thread count. ``progress`` hears rank 0's epochs,
    counted in its batches (every rank runs the same number). Returns what
    :func:`models.attention_training.train_attention` returns, with ``processes`` added to its
    training summary."""
    if processes <= 1:
        return train_attention(con, history_table, config, progress)
    started = time.perf_counter()
    data = attention_examples(con, history_table, config, progress)
    progress.phase(f"attention network: starting {processes} training processes")
    context = torch.multiprocessing.get_context("spawn")
    messages = context.SimpleQueue()
    with tempfile.TemporaryDirectory(prefix="recsight-ddp-") as folder:
        out = Path(folder) / "attention.pt"
        ranks = torch.multiprocessing.start_processes(
            _rank_main, args=(processes, _free_port(), data, config, out, messages, time.perf_counter() - started),
            nprocs=processes, join=False, daemon=True, start_method="spawn")
        try:
            while not ranks.join(timeout=_POLL_S):
                _relay(messages, progress)
        except torch.multiprocessing.ProcessRaisedException as exc:
            log.error("distributed attention training failed:\n%s", exc)
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise RecsightError(f"distributed attention training failed: {last}") from None
        except torch.multiprocessing.ProcessExitedException as exc:
            raise RecsightError(f"distributed attention training failed: a rank exited ({exc})") from None
        _relay(messages, progress)
        model = AttentionModel.load(out)
    model.training["seconds"] = time.perf_counter() - started
    model.training["processes"] = processes
    return model


def _free_port() -> int:
    """A TCP port free on the loopback interface now (the process group's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_LOOPBACK, 0))
        return int(probe.getsockname()[1])


class _GlooShard(Shard):
    """Rank ``rank`` of the process group: DistributedDataParallel and all-reduced totals."""

    def wrap(self, objective: nn.Module) -> nn.Module:
        # The buffers (each item's category and brand) never change: synced once at the start, not per step.
        return nn.parallel.DistributedDataParallel(objective, forward_sync_buffers=False)

    def total(self, values: list[float]) -> list[float]:
        summed = torch.tensor(values, dtype=torch.float64)
        torch.distributed.all_reduce(summed)
        return summed.tolist()


class _QueuedProgress:
    """Rank 0's progress, sent to the parent process (which owns the real reporter)."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def phase(self, name: str, total: int | None = None, unit: str = "") -> None:
        self._queue.put(("phase", name, total, unit))

    def advance(self, n: int = 1) -> None:
        self._queue.put(("advance", n))


def _relay(queue: Any, progress: Progress) -> None:
    while not queue.empty():
        kind, *args = queue.get()
        getattr(progress, kind)(*args)


def _rank_main(rank: int, world: int, port: int, data: AttentionExamples, config: AttentionConfig, out: Path,
               queue: Any, spent: float) -> None:
    """One rank (a spawned process): join the group, train, and on rank 0 save the model."""
    os.environ["MASTER_ADDR"] = _LOOPBACK
    os.environ["MASTER_PORT"] = str(port)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world, timeout=_GROUP_TIMEOUT)
    try:
        progress = _QueuedProgress(queue) if rank == 0 else SILENT
        model = fit_attention(data, config, progress, shard=_GlooShard(rank, world), spent=spent)
        if rank == 0:
            model.save(out)
    finally:
        torch.distributed.destroy_process_group()

