"""The synthetic demo shop: a catalogue, customers with hidden tastes, and their behaviour.

Why it exists: the demo (`make run`) and the benchmarks need a shop whose behaviour is
realistic enough to train on, and the explanation tests need to know the *real* causes behind
the behaviour. So the generator plants preferences in every customer and writes them, apart
from the behaviour, to ``truth/preferences.parquet``; an explanation that says "you like
Nordline knives" can then be checked against what was actually planted.

What is planted (all of it driven by one ``numpy`` generator, so a seed fixes every byte):

* A catalogue with a three-level category tree ("Home > Kitchen > Knives", 67 leaves), four
  brands per level-2 category (a brand sells in the few related leaves under it), log-normal
  prices per leaf shifted by a per-brand premium, readable titles ("Nordline Pro Chef Knife
  20cm") and Zipf-like popularity within each leaf.
* Customers with 2-3 favourite leaf categories (the first is the main one), 1-3 favourite
  brands that sell in those categories, a price band relative to each category's median price,
  an activity level, an active span (some join late, some churn), and drift: about 30 % swap one
  favourite category for another at a day between 40 % and 60 % of the period.
* Sessions: about 60 % browse a current favourite category, 15 % a favourite brand and 25 %
  explore a popularity-weighted random category; 40 % of sessions continue the previous one's
  interest. Within a session, items are drawn by popularity and re-weighted towards the
  customer's favourite brands and price band. Each view may lead to click -> cart -> purchase
  (purchases are about 1-3 % of views), likelier for favourite brands and in-band prices;
  clicks may lead to a favourite; purchases may be returned 2-10 days later or rated 1-14 days
  later (ratings are higher for favourite brands and in-band prices, low after a return).
  Returns and ratings carry no session id: they happen outside a browsing session.

Events are sorted by (user_id, ts); within a session the funnel of one item is ordered
view < click < favourite/cart < purchase, and a return always follows its purchase. Events
after the end of the period (a late return, say) are not written.

Scale: about 78 events per user with the default mix, whatever the item count. Measured on the
shared 2-core dev machine (wall time of the call, peak RSS of the process): the default
``--users 5000`` gives ~385k events in 0.5-1.8 s (0.3 GB); ``--users 13000`` gives ~1.0M events
in ~3 s (0.5 GB); ``--users 130000`` gives ~10.2M events in 16-25 s (2.7 GB). Use
``--items 20000`` or so for the big runs so that the catalogue grows with the crowd. Above
200,000 customers the behaviour is simulated and appended to events.parquet 100,000 customers
at a time (``BLOCK_USERS``), each block from its own generator spawned from the seed, so memory
stays at one block's whatever the size (the same seed still gives the same bytes; a shop above
the threshold is drawn from other streams than one pass would use, with the same behaviour).

Where each part lives: ``synth_catalogue`` (categories, brands, prices, titles, popularity),
``synth_customers`` (customers and their planted preferences), ``synth_behaviour`` (sessions,
views and the funnel), ``synth_files`` (the Parquet files, ``truth/`` and ``PERIOD_START``),
``synth_draws`` (the vectorised weighted draws they share). This module checks the arguments,
runs them in order on one generator and sums up what was written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analytics import schema as S
from analytics.synth_behaviour import make_events, max_sessions
from analytics.synth_catalogue import N_LEAVES, Catalogue, make_catalogue
from analytics.synth_customers import Customers, make_customers
from analytics.synth_files import write_shop, write_shop_in_blocks
from errors import RecsightError

__all__ = ["SynthSummary", "generate_shop"]

log = logging.getLogger(__name__)

# A shop of more than 2 x BLOCK_USERS customers is simulated and written BLOCK_USERS customers at a
# time (about 8M events, ~2 GB, per block) instead of in one pass (~0.27 GB per million events).
BLOCK_USERS = 100_000


@dataclass(frozen=True)
class SynthSummary:
    """What `generate_shop` wrote; `str()` is the one line the command line prints."""

    out_dir: Path
    n_users: int
    n_items: int
    n_events: int
    events_by_type: tuple[tuple[str, int], ...]

    def __str__(self) -> str:
        by_type = ", ".join(f"{name} {count:,}" for name, count in self.events_by_type)
        return (f"synthetic shop: {self.n_users:,} users, {self.n_items:,} items, "
                f"{self.n_events:,} events ({by_type}) -> {self.out_dir}")


def generate_shop(out_dir: Path, n_users: int = 5000, n_items: int = 2000, n_days: int = 90,
                  seed: int = 42) -> SynthSummary:
    """Generate the shop and write events/items/users Parquet plus truth/ into `out_dir`.

    Deterministic: the same arguments give byte-identical files. Raises `RecsightError` for
    bad sizes or an unwritable folder.
    """
    _check_args(n_users, n_items, n_days, seed)
    out_dir = Path(out_dir)
    started = time.perf_counter()
    rng = np.random.default_rng(seed)  # one generator in this order: reordering changes every byte
    cat = make_catalogue(rng, n_items)
    users = make_customers(rng, cat, n_users, n_days)
    if n_users <= 2 * BLOCK_USERS:
        events = make_events(rng, cat, users, n_days)
        log.info("generated %d events in %.2f s", len(events["user"]), time.perf_counter() - started)
        write_shop(out_dir, cat, users, events)
        counts = np.bincount(events["type"], minlength=len(S.EVENT_TYPES))
    else:
        counts = write_shop_in_blocks(out_dir, cat, users, _blocks(rng, cat, users, n_days),
                                      session_bound=max_sessions(n_users, n_days))
    summary = SynthSummary(out_dir=out_dir, n_users=n_users, n_items=n_items,
                           n_events=int(counts.sum()),
                           events_by_type=tuple((name, int(c)) for name, c in zip(S.EVENT_TYPES, counts)))
    log.info("%s (%.2f s)", summary, time.perf_counter() - started)
    return summary


def _blocks(rng: np.random.Generator, cat: Catalogue, users: Customers, n_days: int) -> Iterator[dict[str, np.ndarray]]:
    """The events of ``BLOCK_USERS`` customers at a time, in user order, with global user and
    session codes; each block draws from its own generator spawned from ``rng`` (deterministic)."""
    n_users = len(users.rate)
    begins = range(0, n_users, BLOCK_USERS)
    next_session = 0
    for begin, stream in zip(begins, rng.spawn(len(begins))):
        started = time.perf_counter()
        events = make_events(stream, cat, users.rows(begin, begin + BLOCK_USERS), n_days)
        events["user"] += begin
        in_session = events["session"] >= 0
        last = int(events["session"].max()) if in_session.any() else -1
        events["session"][in_session] += next_session
        next_session += last + 1
        log.info("customers %d-%d: %d events in %.2f s", begin, min(begin + BLOCK_USERS, n_users) - 1,
                 len(events["user"]), time.perf_counter() - started)
        yield events


def _check_args(n_users: int, n_items: int, n_days: int, seed: int) -> None:
    for name, value, low in (("users", n_users, 1), ("items", n_items, N_LEAVES),
                             ("days", n_days, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise RecsightError(f"--{name} must be a whole number, got {value!r}")
        if value < low:
            why = " (one per leaf category at least)" if name == "items" else ""
            raise RecsightError(f"--{name} must be at least {low}{why}, got {value}")

