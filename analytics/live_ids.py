"""The event ids a writer knows are stored: how re-sending a batch adds nothing, at any store size.

Two parts, because they grow differently:

- the ids in live segments (not folded yet): a plain set of strings, as large as the segment,
  which a compaction keeps small;
- the ids folded into the snapshot (``live_event_ids``): potentially every event the shop ever
  sent, so they are held as a sorted array of 64-bit hashes (8 bytes an id: 80 MB for ten
  million) and looked up by binary search, so the cost of a check does not grow with the store.
  A hash match is confirmed against the snapshot's table itself before an event is dropped, so a
  hash collision can never drop a genuine event; matches are rare (a client re-sending).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from analytics.db import connect_read_only
from analytics.live_sql import LIVE_EVENT_IDS, folded_seq, has_table

__all__ = ["KnownIds", "load_folded", "folded_lookup"]

log = logging.getLogger(__name__)

_EMPTY = np.zeros(0, dtype=np.uint64)


class KnownIds:
    """Membership of event ids: live ids exactly, folded ids by hash confirmed on a match."""

    def __init__(self, folded_hashes: np.ndarray = _EMPTY, live: Iterable[str] = ()) -> None:
        self._folded = np.sort(np.asarray(folded_hashes, dtype=np.uint64))
        self._live: set[str] = set(live)

    def __len__(self) -> int:
        return len(self._folded) + len(self._live)

    def after_fold(self, new_hashes: np.ndarray, live: Iterable[str]) -> KnownIds:
        """The record after a compaction: the newly folded hashes merged in, the live ids replaced.

        Merging a sorted run costs a copy of the array, not a reload of every folded id, so the
        first append after a scheduled compaction stays cheap on a large store.
        """
        new = np.sort(np.asarray(new_hashes, dtype=np.uint64))
        merged = np.insert(self._folded, np.searchsorted(self._folded, new), new) if len(new) else self._folded
        known = KnownIds()
        known._folded, known._live = merged, set(live)
        return known

    def add(self, ids: Iterable[str]) -> None:
        """Ids just written to a live segment."""
        self._live.update(ids)

    def known(self, ids: Sequence[str], hashes: np.ndarray,
              confirm: Callable[[list[str]], set[str]]) -> list[bool]:
        """For each id (with its DuckDB ``hash``), whether it is stored already.

        ``confirm`` gets the ids whose hash is among the folded ones and returns those that are
        really folded (one query, only when a batch repeats stored events).
        """
        result = [i in self._live for i in ids]
        if len(self._folded) and len(ids):
            positions = np.searchsorted(self._folded, hashes)
            positions[positions == len(self._folded)] = 0
            hits = [k for k in np.flatnonzero(self._folded[positions] == hashes) if not result[k]]
            if hits:
                folded = confirm([ids[k] for k in hits])
                for k in hits:
                    result[k] = ids[k] in folded
        return result


def load_folded(db_path: Path, after: int = -1) -> tuple[int, np.ndarray]:
    """(the snapshot's last folded sequence number, the hashes of its event ids folded from
    segments numbered above ``after``: all of them by default)."""
    if not Path(db_path).exists():
        return 0, _EMPTY
    con = connect_read_only(db_path)
    try:
        seq = folded_seq(con)
        if not has_table(con, LIVE_EVENT_IDS) or seq <= after:
            return seq, _EMPTY
        sql = f"SELECT hash(event_id) AS h FROM {LIVE_EVENT_IDS} WHERE seq > ?"
        hashes = con.execute(sql, [after]).fetchnumpy()["h"]
        return seq, np.asarray(hashes, dtype=np.uint64)
    finally:
        con.close()


def folded_lookup(db_path: Path) -> Callable[[list[str]], set[str]]:
    """A ``confirm`` for :meth:`KnownIds.known`: which of some ids the snapshot has folded."""

    def confirm(ids: list[str]) -> set[str]:
        con = connect_read_only(db_path)
        try:
            if not has_table(con, LIVE_EVENT_IDS):
                return set()
            rows = con.execute(f"SELECT event_id FROM {LIVE_EVENT_IDS} WHERE event_id IN (SELECT unnest(?))",
                               [ids]).fetchall()
            return {r[0] for r in rows}
        finally:
            con.close()

    return confirm
