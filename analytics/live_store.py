"""The live store: appends that cost what the batch costs, durable when they return.

Design (issue 14; the README's architecture section says the same in short):

* **Snapshot.** The DuckDB shop file stays what it is: the store every reader opens, only ever
  replaced whole through :func:`analytics.db.rewriting` (private copy, checkpoint, fsync,
  ``os.replace``), as ingest and profile builds do.
* **Live segment.** Beside it, ``<db>.live/`` holds one immutable Parquet file per acknowledged
  batch, numbered 1, 2, 3... (:mod:`analytics.live_segments`). An append validates the batch with
  ingest's rules (:mod:`analytics.event_validation`, customer ids pseudonymised first), drops
  events whose ``event_id`` is already stored or repeats within the batch, and writes *one* file:
  temp name, fsync, rename to its number, fsync of the folder. When :meth:`LiveStore.append_events`
  returns, the batch survives ``kill -9``; a reader sees a batch whole or not at all. Its cost
  is the batch's: no copy of the store, no lock a reader waits on.
* **Who writes.** Appends from every process (the server, ``cli.py ingest --append``) are
  serialised by an ``fcntl`` lock on the live folder, with a timeout the HTTP layer turns into
  429. Under it the writer catches up with segments other processes wrote, so its record of
  known event ids (:mod:`analytics.live_ids`) is exact, and takes the next number.
* **Compaction** (:mod:`analytics.live_compact`; ``cli.py compact``, or on a schedule) folds
  segments 1..N into a new snapshot through ``rewriting`` (events, their ids in
  ``live_event_ids``, items, users, rejects with their source, ``live_state.last_seq = N``,
  profiles rebuilt as ingest does), publishes it, raises ``FOLDED`` to N, then deletes files
  <= N. Appends do not wait for it. Killed before the rename: the old snapshot and every segment
  stand. After it: readers and writers skip files <= the snapshot's ``last_seq``, and the next
  compaction deletes them.
* **Readers** (:mod:`analytics.live_read`) open the snapshot read-only and load the segments
  numbered above its ``last_seq`` into temp tables, read once from an explicit file list, behind
  views ``all_events`` / ``all_items`` / ``all_users`` (or shadowing ``events`` ...): one
  consistent state, refreshed by reading only the files written since. ``FOLDED`` tells a reader
  whose snapshot fell behind a compaction to reopen.

What is durable when: an acknowledged append, in its segment file; a compaction, once its
snapshot is renamed into place (its ``live_state`` says which files it holds).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics.event_validation import Checked, Rejected, check_event_batch, check_item_batch
from analytics.live_ids import KnownIds, folded_lookup, load_folded
from analytics.live_segments import (
    KIND_EVENT,
    SEGMENT_SCHEMA,
    LiveBusy,
    PerShop,
    list_segments,
    live_folder,
    read_folded_marker,
    remove_temp_files,
    segment_path,
    write_segment,
    writer_lock,
)
from errors import RecsightError

__all__ = ["LiveStore", "AppendResult", "LiveBusy", "store_for", "SOURCE_INTAKE", "utc_now"]

log = logging.getLogger(__name__)

SOURCE_INTAKE = "intake"  # rejects.source of events that came through the API
_RELOAD_TRIES = 5

_SnapshotKey = tuple[int, int, int, int] | None


def utc_now() -> datetime:
    """Naive UTC, as every timestamp in the store."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class AppendResult:
    """What one append did: events (or catalogue rows) newly stored, events already stored
    (dropped, not stored again), refusals with their reasons."""

    accepted: int = 0
    duplicates: int = 0
    rejected: tuple[Rejected, ...] = ()
    segments: tuple[int, ...] = ()  # sequence numbers of the files written

    def as_dict(self) -> dict[str, object]:
        """The JSON body the intake answers with."""
        rejected = [{"index": r.index, "event_id": r.event_id, "reason": r.reason}
                    | ({"item_id": r.item_id} if r.item_id is not None else {}) for r in self.rejected]
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": rejected}

    def plus(self, other: AppendResult) -> AppendResult:
        return AppendResult(self.accepted + other.accepted, self.duplicates + other.duplicates,
                            self.rejected + other.rejected, self.segments + other.segments)


@dataclass
class _State:
    """What the writer knows about the store on disk (valid while the snapshot file is the same)."""

    key: _SnapshotKey
    folded: int                 # the snapshot's last folded sequence number
    next_seq: int
    known: KnownIds = field(default_factory=KnownIds)


class LiveStore:
    """The writer of one shop's live segment; one per process and shop (:func:`store_for`).

    Thread-safe: validation runs in parallel on cursors of a private in-memory DuckDB; writing is
    one thread at a time in the process and one process at a time on the folder.
    """

    def __init__(self, db_path: Path | str) -> None:
        self.db_path = Path(db_path)
        self.folder = live_folder(self.db_path)
        self._lock = threading.Lock()
        self._validator = duckdb.connect(":memory:")
        self._validator.execute("SET TimeZone = 'UTC'")
        self._validator.execute("SET enable_progress_bar = false")
        self._state: _State | None = None

    # ----------------------------------------------------------------- appends

    def append_events(self, events: Sequence[object], secret: str, *, source: str = SOURCE_INTAKE,
                      timeout: float | None = None) -> AppendResult:
        """Validate and append a batch of JSON events; durable when it returns."""
        if not secret:
            raise RecsightError("a secret is needed to pseudonymise customer ids: set RECSIGHT_SECRET")
        checked = self.check(lambda con: check_event_batch(con, events, secret, utc_now()))
        return self.append_checked(checked, source=source, timeout=timeout)

    def append_items(self, items: Sequence[object], *, source: str = SOURCE_INTAKE,
                     timeout: float | None = None) -> AppendResult:
        """Validate and append catalogue rows (new items, changed titles, prices...)."""
        checked = self.check(lambda con: check_item_batch(con, items))
        return self.append_checked(checked, source=source, timeout=timeout)

    def check(self, validate: Callable[[duckdb.DuckDBPyConnection], Checked]) -> Checked:
        """Run a validation on a cursor of its own (so threads validate side by side)."""
        cursor = self._validator.cursor()
        try:
            cursor.execute("SET TimeZone = 'UTC'")
            return validate(cursor)
        finally:
            cursor.close()

    def append_checked(self, checked: Checked, *, source: str, timeout: float | None = None) -> AppendResult:
        """Write the new events, items and rejects of a validated batch as one segment."""
        rejected = tuple(checked.rejected())
        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            raise LiveBusy(f"another thread is appending to {self.folder}: try again shortly")
        try:
            with writer_lock(self.folder, timeout):
                state = self._current()
                fresh, duplicates = _drop_known(checked.rows, state.known, folded_lookup(self.db_path))
                if fresh.num_rows == 0:
                    return AppendResult(0, duplicates, rejected)
                seq = state.next_seq
                write_segment(self.folder, seq, _segment(fresh, seq, source))
                state.next_seq = seq + 1
                new_ids = _event_ids_of(fresh)
                state.known.add(new_ids)
        finally:
            self._lock.release()
        accepted = fresh.num_rows - len(rejected)  # new events, or catalogue rows
        log.debug("segment %d: %d accepted, %d duplicates, %d rejected", seq, accepted, duplicates, len(rejected))
        return AppendResult(accepted, duplicates, rejected, (seq,))

    # ----------------------------------------------------------------- the writer's view of the disk

    def _current(self) -> _State:
        """The state, reloaded when the snapshot changed, else caught up with other writers."""
        key = _snapshot_key(self.db_path)
        state = self._state
        if state is not None and state.key == key:
            try:
                self._catch_up(state)
                return state
            except FileNotFoundError:  # a compaction folded and deleted it: the snapshot changed too
                pass
        self._state = None
        self._state = self._load(state)
        return self._state

    def _catch_up(self, state: _State) -> None:
        """Read the ids of segments other processes wrote since (under the writer lock)."""
        while (path := segment_path(self.folder, state.next_seq)).exists():
            state.known.add(_read_event_ids([path]))
            state.next_seq += 1

    def _load(self, previous: _State | None) -> _State:
        """The folded ids of the snapshot and the ids of newer segments, from disk.

        After a compaction of the same store (its snapshot folded at least what ``previous``
        knew), only the ids folded since are read and merged in.
        """
        remove_temp_files(self.folder)  # we hold the writer lock: no temp file is being written
        for _ in range(_RELOAD_TRIES):
            key = _snapshot_key(self.db_path)
            since = previous.folded if previous is not None else -1
            folded, hashes = load_folded(self.db_path, after=since)
            if folded < since:  # an older shop file than the one we knew (a restored copy): read it all
                previous, since = None, -1
                folded, hashes = load_folded(self.db_path)
            every = list_segments(self.folder)
            live = [path for seq, path in every if seq > folded]
            try:
                ids = _read_event_ids(live)
            except FileNotFoundError:  # a compaction deleted a file between the listing and the read
                continue
            if _snapshot_key(self.db_path) != key:
                continue  # the snapshot was replaced while we read: read again
            last = max([folded, read_folded_marker(self.folder)] + [seq for seq, _ in every[-1:]])
            log.info("live writer for %s: snapshot folded through %d, %d live segment(s), next %d",
                     self.db_path.name, folded, len(live), last + 1)
            known = previous.known.after_fold(hashes, ids) if previous is not None else KnownIds(hashes, ids)
            return _State(key=key, folded=folded, next_seq=last + 1, known=known)
        raise RecsightError(f"the shop file {self.db_path} kept changing while the intake read it: try again")


store_for: PerShop[LiveStore] = PerShop(LiveStore)  # the process's writer for a shop file


# --------------------------------------------------------------------------- helpers


def _snapshot_key(db_path: Path) -> _SnapshotKey:
    """What identifies the shop file on disk; a compaction or an ingest changes it."""
    try:
        st = db_path.stat()
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size


def _read_event_ids(paths: Sequence[Path]) -> list[str]:
    ids: list[str] = []
    for path in paths:
        table = pq.read_table(path, columns=["kind", "event_id"])
        ids.extend(table.filter(pc.equal(table.column("kind"), KIND_EVENT)).column("event_id").to_pylist())
    return ids


def _event_ids_of(rows: pa.Table) -> list[str]:
    return rows.filter(pc.equal(rows.column("kind"), KIND_EVENT)).column("event_id").to_pylist()


def _drop_known(rows: pa.Table, known: KnownIds, confirm: Callable[[list[str]], set[str]]) -> tuple[pa.Table, int]:
    """The rows without events already stored or repeated earlier in the batch; how many went."""
    kinds = rows.column("kind").to_pylist()
    positions = [k for k, kind in enumerate(kinds) if kind == KIND_EVENT]
    if not positions:
        return rows, 0
    events = rows.take(pa.array(positions, pa.int64()))
    ids = events.column("event_id").to_pylist()
    hashes = np.asarray(events.column("id_hash").to_numpy(), dtype=np.uint64)
    stored = known.known(ids, hashes, confirm)
    keep = [True] * len(kinds)
    seen: set[str] = set()
    for k, event_id, already in zip(positions, ids, stored):
        if already or event_id in seen:
            keep[k] = False
        seen.add(event_id)
    dropped = keep.count(False)
    return (rows.filter(pa.array(keep)) if dropped else rows), dropped


def _segment(rows: pa.Table, seq: int, source: str) -> pa.Table:
    """Checked rows as a segment file's table: its number, the source and the arrival time added."""
    n = rows.num_rows
    extra = {"seq": pa.array(np.full(n, seq, dtype=np.int64)), "source": pa.array([source] * n, pa.string()),
             "received_at": pa.array([utc_now()] * n, pa.timestamp("us"))}
    columns = [extra[f.name] if f.name in extra else rows.column(f.name) for f in SEGMENT_SCHEMA]
    return pa.Table.from_arrays(columns, schema=SEGMENT_SCHEMA)
