""""What if" on the customer page: the customer's list re-scored with some of their past items taken
out, or one event added, and each move against the list they have now, in words.

Why through :meth:`Recommender.rescore`: the agent tells the customer "without your views of X you
would see Y", so the list must be the one the real pipeline (candidates, features, attention
network, ranker) gives for that history, not an estimate. The words are :mod:`explain.whatif`'s.

The input comes from a browser, so it is checked here, whatever the page offered: items to take
out must be the customer's own past items (at most :data:`MAX_REMOVED`), an added item must be in
the catalogue, and its event one a shop sends (:data:`ADDABLE`). An added event gets the time just
after the customer's newest event (:meth:`Recommender.as_of`), and the features are computed as of
just after it, as the live feed would once the shop sent it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from analytics import schema as s
from analytics.customers import MAX_ID_LENGTH
from errors import RecsightError
from explain.explainer import ALL_CANDIDATES
from explain.whatif import WhatIf, compare_lists, group_changes
from models.serving import Recommender
from settings import Settings
from workflows import merchandising
from workflows.lookup import K
from workflows.variants import served_for

__all__ = ["MAX_REMOVED", "ADDABLE", "WhatIf", "what_if", "what_if_on", "rescore_args"]

log = logging.getLogger(__name__)

MAX_REMOVED = 10  # past items taken out in one what-if
ADDABLE: tuple[str, ...] = (s.VIEW, s.CLICK, s.CART, s.FAVORITE, s.PURCHASE)  # events a shop sends without more data
_TICK = timedelta(microseconds=1)


def what_if(settings: Settings, user_id: str, version: str | None, without_items: Sequence[str],
            add: tuple[str, str] | None) -> WhatIf:
    """The customer's top :data:`K` with ``without_items`` taken out and ``add`` (item id, event
    type) added, and its moves against the list now.

    A lookup made under an older model version than the one in use is refused, as
    :func:`workflows.lookup.explanation_for` refuses it: the list on screen would not be the one
    compared with.
    """
    recommender = served_for(settings, user_id).recommender  # the customer's experiment variant, if any
    if version is not None and version != recommender.artifact.path.name:
        raise RecsightError("the model was updated since this lookup: look the customer up again")
    return what_if_on(recommender, user_id, without_items, add)


def what_if_on(recommender: Recommender, user_id: str, without_items: Sequence[str],
               add: tuple[str, str] | None, k: int = K) -> WhatIf:
    """:func:`what_if` on a loaded recommender (tests call this directly)."""
    started = time.perf_counter()
    recommender.catch_up()
    removed, added = _checked(recommender, user_id, without_items, add)
    added_title = _title(recommender, added[0]) if added is not None else None
    now = recommender.recommend(user_id, ALL_CANDIDATES)
    changed = recommender.rescore(user_id, ALL_CANDIDATES, without_items=removed,
                                  **rescore_args(recommender, user_id, added))
    now, changed = (merchandising.without_excluded(recommender, ranked) for ranked in (now, changed))  # never shown
    union = {i.item_id for i in now.items[:k]} | {i.item_id for i in changed.items[:k]}
    result = compare_lists(now, changed, k, group_changes(recommender.ranker, now, changed, union), removed=removed,
                           added=added, added_title=added_title)
    log.info("what-if: %d removed, %s added, %d moves in %.2f s", len(removed), "one" if added else "none",
             len(result.moves), time.perf_counter() - started)
    return result


def rescore_args(recommender: Recommender, user_id: str, add: tuple[str, str] | None) -> dict[str, Any]:
    """The ``extra_events`` and ``before`` :func:`what_if_on` passes to ``rescore`` for ``add``
    (tests compare its list with ``rescore`` called directly)."""
    if add is None:
        return {}
    ts = _added_time(recommender, user_id)
    # features as of just after the added event (``before`` drops nothing: the event is the newest)
    return {"extra_events": [(add[0], add[1], ts)], "before": ts + _TICK}


def _checked(recommender: Recommender, user_id: str, without_items: Sequence[str],
             add: tuple[str, str] | None) -> tuple[list[str], tuple[str, str] | None]:
    """The removals (distinct, in order) and the added event, or one RecsightError saying what is wrong."""
    if without_items is None:
        without_items = []
    if isinstance(without_items, str) or not all(isinstance(i, str) and i for i in without_items):
        raise RecsightError("the items to take out must be item ids")
    removed = list(dict.fromkeys(without_items))
    if len(removed) > MAX_REMOVED:
        raise RecsightError(f"take out at most {MAX_REMOVED} past items at a time")
    if any(len(i) > MAX_ID_LENGTH for i in removed):
        raise RecsightError("an item id to take out is too long")
    if add is not None:
        item_id, event_type = add
        if not isinstance(item_id, str) or not item_id.strip():
            raise RecsightError("type the id of the item to add an event on")
        if len(item_id) > MAX_ID_LENGTH:
            raise RecsightError("the item id to add is too long")
        if event_type not in ADDABLE:
            raise RecsightError(f"the event to add must be one of {', '.join(ADDABLE)}")
        add = (item_id.strip(), event_type)
    if not removed and add is None:
        raise RecsightError("pick past items to take out, or an event to add")
    with recommender.connection() as con:
        if removed:
            own = {row[0] for row in con.execute(
                f"SELECT DISTINCT {s.ITEM_ID} FROM {recommender.tables.history} WHERE {s.USER_ID} = ? "
                f"AND {s.ITEM_ID} IN (SELECT unnest(?::VARCHAR[]))", [user_id, removed]).fetchall()}
            foreign = [i for i in removed if i not in own]
            if foreign:
                raise RecsightError(f"{len(foreign)} of the items to take out are not among this customer's past "
                                    "items: pick them from the list")
        if add is not None and con.execute(f"SELECT 1 FROM {s.ITEMS} WHERE {s.ITEM_ID} = ? LIMIT 1",
                                           [add[0]]).fetchone() is None:
            raise RecsightError(f"no item {add[0]!r} in the shop's catalogue")
    return removed, add


def _added_time(recommender: Recommender, user_id: str) -> datetime:
    """Just after the customer's newest event: their feature time (:meth:`Recommender.as_of`),
    else their newest event plus a microsecond."""
    as_of = recommender.as_of(user_id)
    if as_of is not None:
        return as_of
    with recommender.connection() as con:
        (newest,) = con.execute(f"SELECT max({s.TS}) FROM {recommender.tables.history} WHERE {s.USER_ID} = ?",
                                [user_id]).fetchone()
    if newest is None:
        raise RecsightError("this customer has no events to add one after")
    return newest + _TICK


def _title(recommender: Recommender, item_id: str) -> str:
    with recommender.connection() as con:
        row = con.execute(f"SELECT coalesce({s.TITLE}, {s.ITEM_ID}) FROM {s.ITEMS} WHERE {s.ITEM_ID} = ? LIMIT 1",
                          [item_id]).fetchone()
    return row[0] if row else item_id
