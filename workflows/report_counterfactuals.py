"""What would change each item of a customer's report: the counterfactual sentences, computed for a whole list.

A report states, per recommended item, what would take it out of the customer's list and what would
lift it (:func:`explain.counterfactual.counterfactual_for`; every answer is checked by re-scoring the
customer through the whole pipeline). Those re-scorings are the whole cost: up to about fifteen per
item, run in one to three batched passes (:meth:`models.serving.Recommender.rescore_many`), each
0.1-0.25 s on the demo shop.

Many of them repeat across the items of one list: the customer's strongest past items hold several
items at once, so the searches of different items try the same removals, and one re-scoring ranks
the customer's whole candidate list, so it answers every item. :class:`SharedRescoring` keeps the
re-scorings of one report and hands each item's search the lists already computed (a batch re-scores
only the changes it has not kept). Before the batches this saved 40-55 % of the re-scorings on the
demo shop (5,000 customers); with them, the CSV export of ten items takes about 1 s instead of
4-5 s (bench/lookup_latency.py, 2 shared cores, load about 2). The sentences are the same as one
item at a time (tested).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from explain.counterfactual import counterfactual_for
from explain.reasons import CustomerData, load_customer
from explain.types import Counterfactual, ItemExplanation
from models.serving import HistoryChange, Recommendation, Recommender

__all__ = ["SharedRescoring", "with_counterfactuals", "counterfactual_text"]

log = logging.getLogger(__name__)


class SharedRescoring:
    """The recommender, with the re-scorings of one report kept and shared between its items.

    Only :meth:`rescore` differs; everything else is the recommender's own. Keep one for one
    customer's report and drop it after: a later request may see new events.
    """

    def __init__(self, recommender: Recommender) -> None:
        self._recommender = recommender
        self._lists: dict[tuple, Recommendation] = {}
        self.asked = 0  # re-scorings asked for, the ones answered from the kept lists included

    def rescore(self, user_id: str, k: int = 10, *, without_items: Collection[str] = (),
                extra_events: Sequence[tuple[str, str, datetime]] = (),
                before: datetime | None = None) -> Recommendation:
        """:meth:`models.serving.Recommender.rescore`, once per distinct change of the history."""
        self.asked += 1
        key = (user_id, k, HistoryChange.of(without_items, extra_events), before)
        if key not in self._lists:
            self._lists[key] = self._recommender.rescore(user_id, k, without_items=without_items,
                                                         extra_events=extra_events, before=before)
        return self._lists[key]

    def rescore_many(self, user_id: str, changes: Sequence[HistoryChange], k: int = 10, *,
                     before: datetime | None = None) -> list[Recommendation]:
        """:meth:`models.serving.Recommender.rescore_many`, the changes not kept yet in one pass."""
        self.asked += len(changes)
        keys = [(user_id, k, change, before) for change in changes]
        todo = list(dict.fromkeys(key for key in keys if key not in self._lists))
        if todo:
            lists = self._recommender.rescore_many(user_id, [key[2] for key in todo], k, before=before)
            self._lists.update(zip(todo, lists))
        return [self._lists[key] for key in keys]

    @property
    def computed(self) -> int:
        """Re-scorings that really ran through the pipeline."""
        return len(self._lists)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_recommender":  # copies and pickles: no recursion
            raise AttributeError(name)
        return getattr(self._recommender, name)


def counterfactual_text(found: Counterfactual) -> str:
    """The sentences a reader gets: what would take the item out of the list, then what would lift it."""
    return " ".join(part for part in (found.sentence, found.raise_hint) if part)


def with_counterfactuals(recommender: Recommender, items: Sequence[ItemExplanation], k: int,
                         customer: CustomerData | None = None, limit: int | None = None) -> list[ItemExplanation]:
    """``items`` with their ``counterfactual`` filled by :func:`counterfactual_text`.

    ``items`` are one customer's explained list (explanations at their ranks in the whole candidate
    list, as :func:`explain.explainer.explain_items` gives them); ``customer`` their data where the
    caller has read it already. Items that already carry a counterfactual keep it. ``limit``: only
    the first ``limit`` items get sentences (each costs seconds of re-scoring; a report asked for
    over the API with ``k=100`` would otherwise take minutes).
    """
    started = time.perf_counter()
    if customer is None and any(item.counterfactual is None for item in items):
        customer = load_customer(recommender, items[0].user_id)  # once for the list, not once per item
    shared = SharedRescoring(recommender)
    out = []
    for n, item in enumerate(items):
        if item.counterfactual is None and (limit is None or n < limit):
            found = counterfactual_for(cast(Recommender, shared), item, k, customer=customer)
            item = dataclasses.replace(item, counterfactual=counterfactual_text(found))
        out.append(item)
    log.info("counterfactuals of %d item(s) in %.1f s: %d re-scorings, %d shared", len(out),
             time.perf_counter() - started, shared.computed, shared.asked - shared.computed)
    return out
