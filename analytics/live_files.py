"""Appending whole files to the live segment (``cli.py ingest --append``), through the same writer.

A file is validated in one pass (the generic format's rules, as :mod:`analytics.event_validation`
applies them to a JSON batch) and written as segments of at most :data:`FILE_SEGMENT_ROWS` rows,
each durable when written, each through :meth:`LiveStore.append_checked` (the writer lock, the
known event ids). A file without an ``event_id`` column gets ids derived from each row's content,
so appending the same file again (or after a kill half-way) adds only what is missing.

A :class:`progress.Progress` hears two phases per file: the validation (one pass, not counted),
then the writing, counted in rows a segment at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from analytics.adapters.base import EVENTS_ROLE, ITEMS_ROLE
from analytics.adapters.generic import GenericAdapter
from analytics.event_validation import Checked, check_event_file, check_item_file
from analytics.live_segments import KIND_REJECT
from analytics.live_store import AppendResult, LiveStore, utc_now
from errors import RecsightError
from progress import SILENT, Progress

__all__ = ["FileAppend", "append_files", "FILE_SEGMENT_ROWS"]

FILE_SEGMENT_ROWS = 100_000


@dataclass(frozen=True)
class FileAppend:
    """What appending one file did; rows read = accepted + duplicates + rejected."""

    source: str
    role: str
    rows_read: int
    result: AppendResult

    @property
    def balanced(self) -> bool:
        r = self.result
        return r.accepted + r.duplicates + len(r.rejected) == self.rows_read


def append_files(store: LiveStore, paths: list[Path], secret: str, progress: Progress = SILENT) -> list[FileAppend]:
    """Validate and append generic-format events and items files (items first, as ingest loads them);
    ``progress`` hears ``<file>, file i of n: validating`` and ``...: writing segments`` (rows)."""
    if not secret:
        raise RecsightError("a secret is needed to pseudonymise customer ids: set RECSIGHT_SECRET")
    units = GenericAdapter().units([Path(p) for p in paths])
    refused = [u.path.name for u in units if u.role not in (EVENTS_ROLE, ITEMS_ROLE)]
    if refused:
        raise RecsightError(f"--append takes events and items files; load {', '.join(refused)} with a plain ingest")
    reports = []
    for number, unit in enumerate(units, start=1):
        which = f"{unit.name}, file {number} of {len(units)}"
        progress.phase(f"{which}: validating")
        if unit.role == EVENTS_ROLE:
            checked = store.check(lambda con, p=unit.path: check_event_file(con, p, secret, utc_now()))
        else:
            checked = store.check(lambda con, p=unit.path: check_item_file(con, p))
        chunks = _chunks(checked)
        progress.phase(f"{which}: writing segments", total=sum(c.rows_read for c in chunks), unit="rows")
        result = AppendResult()
        for chunk in chunks:
            result = result.plus(store.append_checked(chunk, source=unit.name))
            progress.advance(chunk.rows_read)
        reports.append(FileAppend(unit.name, unit.role, checked.rows_read, result))
    return reports


def _chunks(checked: Checked) -> list[Checked]:
    """The accepted rows in segments of FILE_SEGMENT_ROWS, the rejects with the first."""
    rows = checked.rows
    is_reject = pc.equal(rows.column("kind"), KIND_REJECT)
    rejects, accepted = rows.filter(is_reject), rows.filter(pc.invert(is_reject))
    pieces = [accepted.slice(start, FILE_SEGMENT_ROWS) for start in range(0, accepted.num_rows, FILE_SEGMENT_ROWS)]
    if not pieces:
        pieces = [accepted]
    pieces[0] = pa.concat_tables([rejects, pieces[0]])
    return [Checked(rows=piece, rows_read=piece.num_rows) for piece in pieces]
