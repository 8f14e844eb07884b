"""The live intake's use cases: what ``POST /api/v1/events`` / ``/items`` and ``cli.py ingest --append``
and ``cli.py compact`` call, so the API and the command line share one writer and one set of rules.

The store's design is in :mod:`analytics.live_store`. Here are the limits a caller must respect and
the errors it maps: :class:`BatchTooLarge` (HTTP 413) for a batch over :data:`MAX_EVENTS_PER_BATCH`
events or :data:`MAX_ITEMS_PER_BATCH` items, :class:`IntakeBusy` (HTTP 429, retry after
:data:`RETRY_AFTER_S`) when the writer lock is not free within :data:`APPEND_TIMEOUT_S`, any other
:class:`~errors.RecsightError` a one-line problem (400 for a body that is not a list). Per-event
problems are not errors: they come back in the result, one reason per refused event.

When :func:`append_events` returns, the accepted events are on disk (fsynced): a ``kill -9`` of
the process one millisecond later loses none of them, so a server may answer 200 then.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from analytics.live_compact import CompactResult
from analytics.live_compact import compact as compact_store
from analytics.live_files import FileAppend
from analytics.live_files import append_files as append_store_files
from analytics.live_segments import LiveBusy
from analytics.live_store import AppendResult, store_for
from errors import RecsightError
from progress import SILENT, Progress

__all__ = [
    "MAX_EVENTS_PER_BATCH", "MAX_ITEMS_PER_BATCH", "APPEND_TIMEOUT_S", "RETRY_AFTER_S", "IntakeResult",
    "BatchTooLarge", "IntakeBusy", "FilesAppended", "append_events", "append_items", "append_files", "compact",
]

log = logging.getLogger(__name__)

MAX_EVENTS_PER_BATCH = 1_000
MAX_ITEMS_PER_BATCH = 1_000
APPEND_TIMEOUT_S = 5.0   # how long a request waits for the writer lock before it is told to come back
RETRY_AFTER_S = 1        # what a 429 suggests

IntakeResult = AppendResult  # accepted, duplicates, rejected (index, event_id, reason); as_dict() for JSON
IntakeBusy = LiveBusy


class BatchTooLarge(RecsightError):
    """More events or items in one batch than the intake takes (the HTTP layer answers 413)."""

    def __init__(self, what: str, count: int, limit: int) -> None:
        super().__init__(f"{count:,} {what} in one batch; send at most {limit:,} per request")
        self.count = count
        self.limit = limit


def append_events(db_path: Path | str, events: Sequence[object], secret: str, *,
                  timeout: float | None = APPEND_TIMEOUT_S) -> IntakeResult:
    """Validate and store a batch of events (dicts in the data contract, each with an ``event_id``).

    Events already stored (same ``event_id``) or repeated in the batch count as duplicates and
    are not stored again; invalid ones are refused with a reason and kept in ``rejects``.
    """
    _require_list(events, "events")
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise BatchTooLarge("events", len(events), MAX_EVENTS_PER_BATCH)
    result = store_for(db_path).append_events(events, secret, timeout=timeout)
    log.info("intake: %d accepted, %d duplicates, %d rejected", result.accepted, result.duplicates,
             len(result.rejected))
    return result


def append_items(db_path: Path | str, items: Sequence[object], *,
                 timeout: float | None = APPEND_TIMEOUT_S) -> IntakeResult:
    """Validate and store catalogue rows (``item_id`` and any of title, category, brand, price);
    a non-empty value replaces the stored one, an absent one keeps it."""
    _require_list(items, "items")
    if len(items) > MAX_ITEMS_PER_BATCH:
        raise BatchTooLarge("items", len(items), MAX_ITEMS_PER_BATCH)
    return store_for(db_path).append_items(items, timeout=timeout)


@dataclass(frozen=True)
class FilesAppended:
    """What ``cli.py ingest --append`` did; ``render()`` is what it prints."""

    db_path: Path
    files: tuple[FileAppend, ...]
    seconds: float

    def render(self) -> str:
        lines = [f"ingest --append --format generic into {self.db_path} ({self.seconds:.1f} s)"]
        segments: list[int] = []
        for f in self.files:
            r = f.result
            segments += r.segments
            lines.append(f"  {f.source} ({f.role}): {f.rows_read:,} rows read, {r.accepted:,} new, "
                         f"{r.duplicates:,} already stored, {len(r.rejected):,} rejected")
            counts = Counter(rejected.reason for rejected in r.rejected)
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            lines.extend(f"      {n:>10,}  {reason}" for reason, n in ranked)
            total = r.accepted + r.duplicates + len(r.rejected)
            lines.append(f"    check: {r.accepted:,} new + {r.duplicates:,} already stored + {len(r.rejected):,} "
                         f"rejected = {total:,} of {f.rows_read:,} read: {'ok' if f.balanced else 'MISMATCH'}")
        if segments:
            lines.append(f"  live segments {min(segments)}..{max(segments)} written; "
                         f"`cli.py compact --db {self.db_path}` folds them into the shop file")
        else:
            lines.append("  nothing new: no segment written")
        return "\n".join(lines)


def append_files(db_path: Path | str, paths: Sequence[Path], secret: str, fmt: str = "generic",
                 progress: Progress = SILENT) -> FilesAppended:
    """``cli.py ingest --append``: generic-format events and items files, through the same writer
    (``progress``, the command line's reporter, hears each file's validation and writing)."""
    if fmt != "generic":
        raise RecsightError(f"--append takes the generic format (the data contract), not {fmt}: "
                            "convert the files or load them with a plain ingest")
    if not paths:
        raise RecsightError("no input paths given")
    started = time.perf_counter()
    files = append_store_files(store_for(db_path), [Path(p) for p in paths], secret, progress)
    return FilesAppended(Path(db_path), tuple(files), time.perf_counter() - started)


def compact(db_path: Path | str, progress: Progress = SILENT) -> CompactResult:
    """Fold the live segment into the shop file (``cli.py compact``; a server may call it on a
    schedule: appends go on meanwhile). Safe to kill at any point. ``progress`` hears its phases
    (the command line's reporter; the server's timer leaves it silent)."""
    return compact_store(db_path, progress)


def _require_list(batch: object, what: str) -> None:
    if not isinstance(batch, list | tuple):
        raise RecsightError(f"{what} must be a list of objects, got {type(batch).__name__}")
