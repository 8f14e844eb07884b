"""What an adapter hands to the loader.

An adapter turns its paths into ``Unit``s (one file, or one file of a set such as an amazon-seq
folder) and stages each unit as SQL queries over temp tables with fixed columns. The loader
(``analytics.ingest``) then does what is the same for every format: pseudonymise customer ids,
skip events already stored, upsert items and users, store rejects, and account for every row.
Keeping that in one place means no adapter can forget the privacy or bookkeeping rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import duckdb

__all__ = ["Unit", "Staged", "Adapter", "EVENTS_ROLE", "ITEMS_ROLE", "USERS_ROLE", "SEQUENCES_ROLE"]

EVENTS_ROLE = "events"        # one input row -> one event
SEQUENCES_ROLE = "sequences"  # one input line -> several events (amazon-seq)
ITEMS_ROLE = "items"          # one input row -> one catalogue item
USERS_ROLE = "users"          # one input row -> one customer


@dataclass(frozen=True)
class Unit:
    """One file to ingest and to remember by its content hash."""

    path: Path
    role: str

    @property
    def name(self) -> str:
        """What ``rejects.source`` and the summary call it: the file name."""
        return self.path.name


@dataclass
class Staged:
    """A staged unit: SQL queries the loader runs inside the ingest transaction.

    Column contracts (``user_raw`` is the raw customer id; it never leaves the transaction):

    - ``events``: line, user_raw, item_id, event_type, ts, session_id, quantity, price, rating
    - ``items``: item_id, title, category, brand, price (one row per item)
    - ``texts``: item_id, description (one row per item with a description; ``analytics.schema.ITEM_TEXTS``)
    - ``users``: user_raw, country, first_seen (one row per customer)
    - ``rejects``: line, reason, user_raw, raw_template (``MARKER`` where the customer id was)
    - ``accepted``: one row per accepted input row (the check against ``rows_read``)
    """

    rows_read: int
    rejects: str
    accepted: str
    events: str | None = None
    items: str | None = None
    texts: str | None = None
    users: str | None = None
    notes: list[str] = field(default_factory=list)
    row_word: str = "rows"  # what one input row is called in the summary ("lines", "entries")


class Adapter(Protocol):
    """One input format."""

    fmt: str

    def units(self, paths: list[Path]) -> list[Unit]:
        """Resolve the command-line paths into units; raise RecsightError if one is missing or wrong."""
        ...

    def stage(self, con: duckdb.DuckDBPyConnection, unit: Unit, tag: str) -> Staged:
        """Read and validate one unit into temp tables whose names start with ``tag``."""
        ...
