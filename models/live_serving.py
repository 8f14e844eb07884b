"""Serving over the live segment: a customer's new events reach their list on the next request.

The serving connection is the snapshot with the live segment attached in shadow mode
(:func:`analytics.live_read.attach_live`), so every query the serving path already runs on
``events`` / ``items`` / ``users`` (candidates, features, the attention window, the explanations'
evidence) reads the snapshot *and* the acknowledged batches, unchanged.

:class:`LiveFeed` keeps that view current and says who changed:

- :meth:`LiveFeed.has_news` is a directory listing, no SQL and no lock, so a request for an
  unchanged customer stays on the precomputed fast path without waiting on the connection;
- :meth:`LiveFeed.refresh` (under the serving lock) loads only the segment files written since
  the last refresh, and records, per customer, the newest event time among their live events;
- a customer with live events is *changed*: the list stored at training time no longer describes
  their history, so they are ranked live, and their ``as_of`` (the time the profile features and
  recencies are computed at) moves to just after their newest event, so the profile counts it.

The live events also move the co-visitation tables the candidates come from
(:mod:`models.live_covis`, applied by the recommender's refresh), so an item first seen through
the intake becomes a candidate where customers link it to other items; :mod:`models.cold_items`
gives it item features from its live counts and an attribute row, so it is also a candidate for
customers of its brand or category, and its explanation says it is new. It counts for the
customer's brand/category affinities and enters the attention window as the network's "unknown
item". Popularity stays as trained.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from analytics import schema as s
from analytics.live_read import LiveStale, LiveView, attach_live, refresh_live
from analytics.live_segments import list_segments, live_folder, read_folded_marker
from errors import RecsightError

__all__ = ["LiveFeed"]

log = logging.getLogger(__name__)

_TICK = timedelta(microseconds=1)


class LiveFeed:
    """The live segment as the serving connection sees it, and the customers it changed.

    Mutated only under the serving lock (:meth:`refresh`); :meth:`has_news`, :meth:`changed` and
    :meth:`as_of` read it without the lock (single dict/attribute reads, atomic in CPython): a
    reader sees the state before or after a refresh, never half of one.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, view: LiveView, base_as_of: datetime) -> None:
        self.view = view
        self.base_as_of = base_as_of
        self.folder = live_folder(view.db_path)
        self._newest: dict[str, datetime] = {}
        self._stale = False
        self._record(con, after_seq=view.base_seq)

    @classmethod
    def attach(cls, con: duckdb.DuckDBPyConnection, db_path: Path, base_as_of: datetime,
               model_seq: int | None = None) -> LiveFeed:
        """Attach the live segment to ``con`` (shadowing ``events``, ``items``, ``users``).

        ``model_seq``: the folded number of the model's snapshot when the shop was compacted since
        (``registry.Artifact.base_seq``): the events folded after it stay live for this model, so
        a compaction changes nothing the customers see.
        """
        try:
            view = attach_live(con, db_path, shadow=True, model_seq=model_seq)
        except LiveStale as exc:
            raise RecsightError(f"the shop was compacted while the model loaded ({exc}); try again") from None
        return cls(con, view, base_as_of)

    @property
    def last_seq(self) -> int:
        """The last segment file read (the snapshot's folded number when none)."""
        return self.view.last_seq

    def has_news(self) -> bool:
        """Whether a segment was written (or folded) since the last refresh: no SQL, no lock."""
        if self._stale:
            return False
        last = self.view.last_seq
        return bool(list_segments(self.folder, after=last)) or read_folded_marker(self.folder) > last

    def refresh(self, con: duckdb.DuckDBPyConnection) -> int:
        """Load the segments written since the last call (caller holds the serving lock); return
        how many new events.

        After a compaction this connection did not follow (its files may be gone), it keeps what it
        has and stops refreshing: the compaction replaced the shop file, so the process's
        recommender cache loads a fresh recommender on the next request anyway.
        """
        if self._stale:
            return 0
        before = self.view.last_seq
        try:
            added = refresh_live(con, self.view)
        except LiveStale as exc:
            log.warning("live segment no longer followed (%s): reload the recommender", exc)
            self._stale = True
            return 0
        if added:
            self._record(con, after_seq=before)
        return added

    def changed(self, user_id: str) -> bool:
        """Whether the customer has live events (their stored list predates them)."""
        return user_id in self._newest

    def as_of(self, user_id: str) -> datetime:
        """The time the customer's features are computed at: the model's serving time, or just
        after their newest live event when that is later (so the profile counts it)."""
        newest = self._newest.get(user_id)
        if newest is None or newest + _TICK <= self.base_as_of:
            return self.base_as_of
        return newest + _TICK

    def _record(self, con: duckdb.DuckDBPyConnection, after_seq: int) -> None:
        rows = con.execute(f"SELECT {s.USER_ID}, max({s.TS}) FROM live_events WHERE seq > ? GROUP BY ALL",
                           [after_seq]).fetchall()
        newest = dict(self._newest)
        for user_id, ts in rows:
            newest[user_id] = ts if user_id not in newest else max(newest[user_id], ts)
        self._newest = newest  # one assignment: lock-free readers see the old dict or the new one
