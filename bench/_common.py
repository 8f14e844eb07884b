"""Helpers shared by the benchmark scripts: the machine line, repeated timings, peak memory, tables.

Benchmarks print numbers for people to read; they never assert timings. Each measured step can
run in a fresh child process so its peak resident memory (which includes DuckDB's native
allocations, invisible to tracemalloc) is its own and not the benchmark driver's.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from queue import Empty
from typing import Any

from progress import SILENT, Progress, TerminalProgress

__all__ = ["Timing", "machine_line", "load_line", "time_runs", "in_child", "peak_rss_mb", "format_table",
           "human_count", "progress_bar"]


@dataclass(frozen=True)
class Timing:
    """Wall-clock and CPU seconds of repeated runs of one step.

    CPU time (all threads of the process) is reported beside wall time because on a shared
    machine wall time mostly measures the neighbours; CPU time shows the work itself.
    """

    runs: tuple[float, ...]
    cpu: tuple[float, ...] = ()

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def max(self) -> float:
        return max(self.runs)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else float("nan")

    def __str__(self) -> str:
        cpu = f", CPU {self.cpu_median:.2f} s" if self.cpu else ""
        if len(self.runs) == 1:
            return f"{self.runs[0]:.2f} s (1 run{cpu})"
        return f"{self.median:.2f} s (min {self.min:.2f}, max {self.max:.2f}, n={len(self.runs)}{cpu})"


def time_runs(fn: Callable[[], Any], repeat: int) -> Timing:
    """Run ``fn`` ``repeat`` times, keeping each run's wall-clock and process CPU seconds."""
    runs, cpu = [], []
    for _ in range(max(1, repeat)):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        fn()
        runs.append(time.perf_counter() - wall0)
        cpu.append(time.process_time() - cpu0)
    return Timing(tuple(runs), tuple(cpu))


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB.

    Linux's VmHWM belongs to the current address space, so a spawned child reports only its own
    peak; ``ru_maxrss`` (the fallback elsewhere) also counts the parent's peak before the exec.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_entry(queue, fn, args, kwargs) -> None:  # runs in the spawned child
    try:
        queue.put(("ok", fn(*args, **kwargs), peak_rss_mb()))
    except BaseException as exc:  # noqa: BLE001 - report any failure to the parent instead of hanging it
        queue.put(("error", f"{type(exc).__name__}: {exc}", peak_rss_mb()))


def in_child(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Run ``fn(*args, **kwargs)`` in a fresh spawned process; return (its result, its peak RSS MiB).

    ``fn`` must be a module-level function and its result picklable. The peak includes the
    interpreter and imports (about 100 MiB with DuckDB and pandas loaded).
    """
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_entry, args=(queue, fn, args, kwargs))
    proc.start()
    while True:  # poll, so a child that dies without reporting fails the benchmark instead of hanging it
        try:
            status, payload, peak = queue.get(timeout=1.0)
            break
        except Empty:
            if not proc.is_alive():
                raise RuntimeError(f"benchmark step {fn.__name__} died (exit code {proc.exitcode})") from None
    proc.join()
    if status != "ok":
        raise RuntimeError(f"benchmark step {fn.__name__} failed: {payload}")
    return payload, peak


def progress_bar(label: str) -> AbstractContextManager[Progress]:
    """The training's progress as a bar on stderr when it is a terminal, else nothing: run_all.py
    merges stderr into BENCHMARKS.md, which keeps the tables and not the progress lines."""
    if sys.stderr is not None and sys.stderr.isatty():
        return TerminalProgress(label, sys.stderr, bar=True)
    return nullcontext(SILENT)


def machine_line() -> str:
    """One line naming the machine, so numbers from different machines are never compared blindly."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) / 2**30
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = []
    for name in ("duckdb", "pandas", "numpy"):
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            continue
    return (
        f"{model}, {usable} usable cores ({os.cpu_count()} online), {mem_gib:.1f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, " + ", ".join(versions)
    )


def load_line() -> str:
    """The 1/5/15-minute load averages: on a shared machine, the context every timing needs."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def human_count(n: int) -> str:
    """1000000 -> '1M', 2500 -> '2.5k'."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return str(n)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with right-aligned columns (left-aligned first column)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(lines)
