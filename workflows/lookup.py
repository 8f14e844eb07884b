"""The customer lookup's work, apart from Dash: find the customer, gather what the page shows,
and keep each customer's explanation for the clicks that follow.

The page (``pages/user.py`` and ``pages/_user_callbacks.py``) only turns these results into
components; tests and the latency bench call these functions directly.

* Reads go through :func:`shop_cursor`: a cursor on one read-only connection per shop file, kept
  while the file is unchanged. Opening the file costs tens of milliseconds, a cursor about one;
  the lookup has a 300 ms budget. A replaced file (a new ingest) gets a new connection on the
  next request, while requests running on the old one finish on the old, complete file.
* Ranking is most of a lookup's wait, so it runs on a small thread pool beside the profile reads
  and the audit row (:func:`look_up`).
* A customer's explanation is computed once per customer and model version and kept for this
  process (:func:`explanation_for`): the reasons under the cards, the "Why?" dialog and the
  exports all read the same one.

Auditing stays with the caller (the service layer sits above this one): :func:`look_up` is handed
a recorder and calls it exactly once, before anything of the customer is returned.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from analytics import schema as s
from analytics.customers import reference_pseudonym, suggest_customers
from analytics.db import connect_read_only
from analytics.profile_card import ProfileCard, profile_card
from dashboard.customer_view import timeline
from errors import RecsightError
from explain import compare, counterfactual
from explain.types import Comparison, Counterfactual, CustomerExplanation, ItemExplanation
from models.serving import RecommendedItem
from settings import Settings
from workflows import explaining, merchandising
from workflows.recommenders import recommender_for, resolve_customer
from workflows.reports import report_bytes
from workflows.variants import served_for

__all__ = ["item_details", "customer_connection",
    "K", "Recorder", "Found", "NotFound", "look_up", "explanation_for", "report_for", "counterfactual_for",
    "compare_listed",
    "shop_cursor",
]

log = logging.getLogger(__name__)

K = 10  # items in the list the agent sees (the API's default too)
_CACHE_SIZE = 64
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lookup")  # rankings beside the page's reads

Recorder = Callable[[str | None, str], None]  # (customer pseudonym or None, detail): appends one audit row


@dataclass(frozen=True)
class Found:
    """Everything a lookup shows of one customer, read under one model version."""

    user_id: str
    version: str  # the model version that ranked the list
    cold_start: bool
    items: list[RecommendedItem]
    card: ProfileCard
    timeline: pd.DataFrame  # the latest events, oldest first (``dashboard.customer_view.timeline``)
    total_events: int
    details: dict[str, tuple[Any, Any, Any]]  # item id -> (category, brand, price)
    currency: str  # the ISO 4217 code prices and spend are in (``settings.currency``)
    serving: str | None = None  # the customer's experiment variant in words (workflows.variants); None: none


@dataclass(frozen=True)
class NotFound:
    """Nobody matched what was typed: the one-line reason, and pseudonyms it may have meant."""

    message: str
    suggestions: list[str]


def look_up(text: str, settings: Settings, record: Recorder) -> Found | NotFound:
    """Find the customer ``text`` names (a cleaned shop id or pseudonym), record the lookup, and
    read their list, profile card, timeline and item details.

    ``record`` is called exactly once: with None and "no customer matched (searched <pseudonym of
    the text>)", or with the pseudonym before anything of the customer is returned (if it
    raises, nothing is).
    """
    recommender = recommender_for(settings)
    try:
        user_id = resolve_customer(recommender, text, settings.secret)
    except RecsightError as exc:
        with shop_cursor(settings.db_path) as con:
            suggestions = suggest_customers(con, text)
        # what was searched, as a pseudonym: the row shows whom the agent looked for, no shop id
        record(None, f"no customer matched (searched {reference_pseudonym(text, settings.secret) or 'a shop id'})")
        return NotFound(str(exc), suggestions)
    served = served_for(settings, user_id)  # the customer's experiment variant ranks their list
    recommender = served.recommender
    # Ranking is most of the wait: it runs beside the profile reads and the audit row, whose
    # append must still succeed before anything of the customer is returned.
    recommender.catch_up()  # so customer_connection knows whether the customer has live events
    ranking = _POOL.submit(merchandising.merchandised, recommender, user_id, K)  # after the shop's rules
    try:
        with customer_connection(settings, user_id) as con:
            card = profile_card(con, user_id)
            frame, total = timeline(con, user_id)
        record(user_id, f"looked up by {'pseudonym' if user_id == text else 'shop id'}")
    except BaseException:
        ranking.cancel()  # a running ranking finishes on its own; nothing of it is shown
        raise
    result = ranking.result()
    with customer_connection(settings, user_id) as con:
        details = item_details(con, [item.item_id for item in result.items])
    return Found(user_id, recommender.artifact.path.name, result.cold_start, list(result.items), card, frame, total,
                 details, settings.currency, served.describe())


def customer_connection(settings: Settings, user_id: str) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """Where the customer's card, timeline and item details are read: the shop file's own cursor,
    beside a ranking that holds the serving connection, unless the customer has live events, which
    only the serving connection sees (with it the card is their live profile row)."""
    recommender = recommender_for(settings)
    if recommender.live is not None and recommender.live.changed(user_id):
        return recommender.connection()
    return shop_cursor(settings.db_path)


def item_details(con: duckdb.DuckDBPyConnection, item_ids: list[str]) -> dict[str, tuple[Any, Any, Any]]:
    """Category, brand and price of the listed items, for the cards."""
    if not item_ids:
        return {}
    rows = con.execute(
        f"SELECT {s.ITEM_ID}, {s.CATEGORY}, {s.BRAND}, {s.PRICE} FROM {s.ITEMS} "
        f"WHERE {s.ITEM_ID} IN (SELECT unnest(?::VARCHAR[]))", [item_ids]).fetchall()
    return {row[0]: row[1:] for row in rows}


# --------------------------------------------------------------------------- explanations, cached


_cache: OrderedDict[tuple[str, ...], CustomerExplanation] = OrderedDict()
_cache_lock = threading.Lock()


def explanation_for(settings: Settings, user_id: str, version: str | None = None) -> CustomerExplanation:
    """The customer's :class:`~explain.types.CustomerExplanation` under the model in use, computed
    once per customer, model version and customer history (their newest live event) and kept for
    the dialog, the comparison and the exports.

    A lookup made under an older model version than the one in use now is refused with a
    message: the cards on screen would not match the explanation.
    """
    recommender = served_for(settings, user_id).recommender
    current = recommender.artifact.path.name
    if version is not None and version != current:
        raise RecsightError("the model was updated since this lookup: look the customer up again")
    recommender.catch_up()  # a customer's live events move their as_of: the key then misses
    key = (str(settings.db_path), str(settings.models_dir), current, user_id, recommender.as_of(user_id),
           merchandising.rules_stamp(recommender, user_id))  # a rule saved, starting or ending: a new list
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    explanation = explaining.explain_customer(recommender, user_id, K)
    with _cache_lock:
        _cache[key] = explanation
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return explanation


def report_for(settings: Settings, user_id: str, fmt: str, version: str | None = None) -> bytes:
    """The customer's complete report in ``fmt`` (the page's export): the explanation the page
    shows, completed with what would change each item and the data's reference date (a few
    seconds: the counterfactual sentences are verified by re-scoring)."""
    explanation = explanation_for(settings, user_id, version)
    return report_bytes(served_for(settings, user_id).recommender, user_id, fmt, K, explanation=explanation,
                        currency=settings.currency)


def counterfactual_for(settings: Settings, item: ItemExplanation) -> Counterfactual:
    """What would take the listed ``item`` out of the customer's top :data:`K` (verified by
    re-scoring), searched from the item's explanation as the page already holds it."""
    return counterfactual.counterfactual_for(served_for(settings, item.user_id).recommender, item, k=K)


def compare_listed(settings: Settings, user_id: str, item_a: str, item_b: str,
                   version: str | None = None) -> Comparison:
    """Why ``item_a`` sits above (or below) ``item_b`` in the customer's list, from the list's
    explanation (:func:`explanation_for`): no SHAP of its own."""
    by_item = {item.item_id: item for item in explanation_for(settings, user_id, version).items}
    missing = [item for item in (item_a, item_b) if item not in by_item]
    if missing:
        raise RecsightError("this item is no longer in the customer's list: look the customer up again")
    merchandising.require_ranked(by_item[item_a], by_item[item_b])  # an item a rule added has no scores
    return compare.compare_items(by_item[item_a], by_item[item_b])


# --------------------------------------------------------------------------- reading the shop


_roots: dict[Path, tuple[tuple[int, int, int], duckdb.DuckDBPyConnection, str]] = {}
_roots_lock = threading.Lock()


@contextmanager
def shop_cursor(db_path: Path | str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only cursor on the shop, from one connection kept per unchanged shop file."""
    path = Path(db_path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise RecsightError(f"database {path} does not exist: run `python cli.py ingest` first") from None
    stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
    key = path.resolve()
    with _roots_lock:
        cached = _roots.get(key)
        if cached is None or cached[0] != stamp:
            root = connect_read_only(path)
            database = root.execute("SELECT current_database()").fetchone()[0]
            # The replaced connection is left to the garbage collector: a request may still read it.
            cached = _roots[key] = (stamp, root, database)
        cursor = cached[1].cursor()
    try:
        cursor.execute(f'USE "{cached[2]}"')
        yield cursor
    except duckdb.Error as exc:
        log.warning("reading customer data from %s failed: %s", path, exc)
        raise RecsightError(f"the shop database {path} could not be read") from None
    finally:
        cursor.close()
