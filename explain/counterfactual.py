"""Counterfactuals: which of the customer's past items hold an item in the top K, and what would lift it.

Search guided by the explanation, answers checked by the real pipeline: candidate removals are
the customer's past items ordered by how much of the score they carry (their share of the
attention feature's SHAP value, then the co-visitation links that made the item a candidate),
added one at a time until re-scoring (:meth:`Recommender.rescore`: candidates, features, the
attention network and the ranker, all rerun) shows the item outside the top K; then each
removal is tried back, so the set that is kept is one whose every member is needed. Nothing is
reported as a counterfactual unless re-scoring confirmed it (``verified``).

A removal takes out every event of the customer on that item: dropping one view of an item while
others remain would leave the same item in the co-visitation seeds and the same story.

The re-scorings run in batches (:meth:`Recommender.rescore_many`: several hypothetical histories
of the customer ranked in one pass, each as a virtual customer of its own; the lists are those of
re-scoring each alone, up to the last bit of a float sum that DuckDB may add in another order, as
between the precomputed lists and the live path): a pass costs about as much for one history as
for fifteen. The search reads exactly the re-scorings the one-at-a-time search reads and takes
the same decisions in the same order (:func:`_smallest_removal`, through :class:`_Ranks`); the
batches compute ahead what it may read next: every prefix of the removal order and the raise
hint's candidates in the first pass, then the next four "try it back" sets whatever each of them
decides (:func:`_tries_ahead`). Answers a decision makes moot are never read. On the demo shop
the search went from 9 re-scoring passes per item (median; up to 21) to 1 (up to 3).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

from analytics import schema as s
from errors import RecsightError
from explain.explainer import ALL_CANDIDATES
from explain.reasons import CustomerData, Event, covis_links, event_phrase, load_customer
from explain.types import Counterfactual, HistoryEvidence, ItemExplanation
from models.serving import HistoryChange, Recommendation, Recommender

__all__ = ["counterfactual_for", "rank_of", "require_positive"]


log = logging.getLogger(__name__)

MAX_REMOVED = 8  # past items tried for the drop (each try is one re-scoring)
RAISE_TRIES = 3  # candidate changes of each kind tried for the raise hint
AHEAD = 15  # "try it back" sets re-scored per pass: the next four tries, whatever each decides


def rank_of(result: Recommendation, item_id: str) -> int | None:
    """The item's rank in ``result``, or None when the list does not hold it (re-scoring checks this)."""
    return next((item.rank for item in result.items if item.item_id == item_id), None)


def require_positive(k: int) -> None:
    """Refuse a top ``k`` that holds nothing (checked before any explanation is computed)."""
    if k <= 0:
        raise RecsightError("k must be a positive number of items")


def counterfactual_for(recommender: Recommender, explanation: ItemExplanation, k: int = 10,
                       max_removed: int = MAX_REMOVED, *, customer: CustomerData | None = None) -> Counterfactual:
    """The smallest verified removal that drops the explained item out of the top ``k``, and a raise hint.

    ``explanation`` is the item's explanation at its rank in the customer's full candidate list
    (its ``history`` guides the search); ``customer`` the customer's data where the caller has
    loaded it already. No SHAP or Integrated Gradients run here: only re-scorings.
    """
    require_positive(k)
    user_id, item_id = explanation.user_id, explanation.item_id
    rank_before = explanation.rank
    if customer is None:
        customer = load_customer(recommender, user_id)
    history = explanation.history
    order = _removal_order(recommender, customer.events, history, item_id)[:max_removed]
    tries = _raise_tries(recommender, customer.events, history, user_id, item_id, rank_before)
    ranks = _Ranks(recommender, user_id, item_id)
    prefixes = [order[:n] for n in range(1, len(order) + 1)] if rank_before <= k else []
    # The first pass: every prefix the search may add up to, and the raise hint's candidates.
    ranks.fetch([*prefixes, *(change for _, change in tries)])
    removed, rank_after, verified = _smallest_removal(ranks, prefixes, rank_before, k)
    hint = _best_hint(tries, ranks, rank_before)
    log.debug("counterfactual of %s for %s: %d re-scorings in %d passes", item_id, user_id, ranks.asked, ranks.passes)
    evidence = _evidence(removed, history, customer.events)
    return Counterfactual(
        user_id=user_id, item_id=item_id, k=k, removed=evidence if verified else [],
        rank_before=rank_before, rank_after=rank_after if rank_before <= k else rank_before,
        verified=verified, raise_hint=hint,
        sentence=_sentence(evidence, verified, rank_before, rank_after, k, len(order)),
    )


def _smallest_removal(ranks: _Ranks, prefixes: list[list[str]], rank_before: int,
                      k: int) -> tuple[list[str], int | None, bool]:
    """(removed, rank after, verified): the first of ``prefixes`` (the removal order, one more
    past item each) whose removal takes the item out of the top ``k``, less every item that
    proves not needed when tried back one at a time (in order); ``verified`` False when no
    prefix does (then the last prefix tried and its rank)."""

    def out_of_top(rank: int | None) -> bool:
        return rank is None or rank > k

    removed: list[str] = []
    rank_after: int | None = rank_before
    verified = False
    for prefix in prefixes:  # add past items one at a time until the item drops out
        removed, rank_after = prefix, ranks.rank(prefix)
        if out_of_top(rank_after):
            verified = True
            break
    if verified:
        candidates = list(removed[:-1])
        for n, unit in enumerate(candidates):  # try each earlier removal back: keep only what is needed
            trial = [u for u in removed if u != unit]
            if not ranks.has(trial):
                ranks.fetch(_tries_ahead(removed, candidates[n:]))
            trial_rank = ranks.rank(trial)
            if out_of_top(trial_rank):
                removed, rank_after = trial, trial_rank
    return removed, rank_after, verified


def _tries_ahead(removed: list[str], units: list[str], budget: int = AHEAD) -> list[list[str]]:
    """The "try it back" removal sets of ``units`` (in order) from the set ``removed``, for every
    course the earlier tries may take (each either keeps its unit out or puts it back), breadth
    first while ``budget`` allows: the first try, then the second's two possible sets, and so on.

    Why: each try depends on the answers before it, so one at a time they cost a pass each; a
    pass over the next few levels of that tree answers the next ``log2(budget + 1)`` tries
    whatever they decide (the one-at-a-time search reads exactly one set of each level)."""
    out: list[list[str]] = []
    level = [removed]
    for unit in units:
        if len(out) + len(level) > budget:
            break
        trials = [[u for u in state if u != unit] for state in level]
        out += trials
        level = [state for pair in zip(level, trials) for state in pair]
    return out


class _Ranks:
    """The explained item's rank under changes of the customer's history, re-scored in batches.

    :meth:`fetch` re-scores the changes not already known in one pass
    (:meth:`Recommender.rescore_many`); :meth:`rank` reads an answer, re-scoring it alone when no
    batch held it. A list of item ids stands for removing those items."""

    def __init__(self, recommender: Recommender, user_id: str, item_id: str) -> None:
        self._recommender = recommender
        self._user_id = user_id
        self._item_id = item_id
        self._known: dict[HistoryChange, int | None] = {}
        self.passes = 0  # re-scoring passes run (tests and logs)
        self.asked = 0  # distinct changes re-scored

    @staticmethod
    def _change(change: HistoryChange | list[str]) -> HistoryChange:
        return change if isinstance(change, HistoryChange) else HistoryChange.of(change)

    def has(self, change: HistoryChange | list[str]) -> bool:
        return self._change(change) in self._known

    def fetch(self, changes: list[HistoryChange | list[str]]) -> None:
        todo = list(dict.fromkeys(c for c in map(self._change, changes) if c not in self._known))
        if not todo:
            return
        lists = self._recommender.rescore_many(self._user_id, todo, ALL_CANDIDATES)
        self.passes += 1
        self.asked += len(todo)
        self._known.update((change, rank_of(found, self._item_id)) for change, found in zip(todo, lists))

    def rank(self, change: HistoryChange | list[str]) -> int | None:
        self.fetch([change])
        return self._known[self._change(change)]


def _removal_order(recommender: Recommender, events: list[Event], history: list[HistoryEvidence],
                   item_id: str) -> list[str]:
    """Past items by the score they carry: positive SHAP share of the attention feature first,
    then the recent items whose co-visitation links made the item a candidate, strongest first."""
    share: dict[str, float] = {}
    for h in history:
        share[h.item_id] = share.get(h.item_id, 0.0) + h.score_share
    order = [item for item, value in sorted(share.items(), key=lambda kv: -kv[1]) if value > 0]
    links = covis_links(recommender, sorted({e.item_id for e in events}), [item_id])[item_id]
    for _, src, _ in links:
        if src not in order:
            order.append(src)
    return order


def _evidence(items: list[str], history: list[HistoryEvidence], events: list[Event]) -> list[HistoryEvidence]:
    """The removed items' events: from the attention window where they are in it, else their
    latest event (no attribution: the network did not see it)."""
    out = []
    for item in items:
        shown = [h for h in history if h.item_id == item]
        if not shown:
            last = [e for e in events if e.item_id == item][-1]
            shown = [HistoryEvidence(item, last.title, last.event_type, last.ts, 0.0, 0.0)]
        out += shown
    return out


def _describe(evidence: list[HistoryEvidence]) -> str:
    """'your 2 views of X and your purchase of Y'."""
    parts = []
    for item in dict.fromkeys(h.item_id for h in evidence):
        mine = [h for h in evidence if h.item_id == item]
        kinds = Counter(h.event_type for h in mine)
        kind = next((t for t in (s.PURCHASE, s.CART, s.FAVORITE, s.CLICK, s.VIEW) if t in kinds), mine[0].event_type)
        parts.append(event_phrase(kind, kinds[kind], mine[0].title))
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _sentence(evidence: list[HistoryEvidence], verified: bool, rank_before: int, rank_after: int | None,
              k: int, tried: int) -> str:
    if rank_before > k:
        return f"It is not in the top {k} (rank {rank_before}), so no removal is needed to drop it."
    if not verified and not tried:
        return f"None of your past events holds it in the top {k}: it is there for the shop-wide signals."
    if not verified:
        return (f"Removing up to {tried} of your past items one by one does not take it out of the top {k}: "
                "it rests on more than a few of your events (popularity, your profile).")
    where = "out of the candidate list" if rank_after is None else f"to rank {rank_after}"
    return f"Without {_describe(evidence)} it would drop out of the top {k} ({where})."


def _raise_tries(recommender: Recommender, events: list[Event], history: list[HistoryEvidence], user_id: str,
                 item_id: str, rank_before: int) -> list[tuple[str, HistoryChange]]:
    """The raise hint's candidate changes, each with its sentence ({before}/{after}: the ranks).

    Candidates: removing one of the past items whose share pulls the item down, and viewing one
    of the items shoppers most often view just before it (that the customer has not touched).
    None for an item already first.
    """
    if rank_before == 1:
        return []
    share: dict[str, float] = {}
    for h in history:
        share[h.item_id] = share.get(h.item_id, 0.0) + h.score_share
    drags = [item for item, value in sorted(share.items(), key=lambda kv: kv[1]) if value < 0][:RAISE_TRIES]
    touched = sorted({e.item_id for e in events})
    tries: list[tuple[str, HistoryChange]] = [
        (f"Without {_describe([h for h in history if h.item_id == item])} it would rise from rank {{before}} "
         "to rank {after}.", HistoryChange.of(without_items=[item])) for item in drags]
    with recommender.connection() as con:
        table = recommender.tables.index.covis_tables.get("next")
        leads = [] if table is None else con.execute(
            f"""SELECT c.src, coalesce(i.{s.TITLE}, c.src) FROM {table} c LEFT JOIN {s.ITEMS} i ON i.{s.ITEM_ID} = c.src
                WHERE c.dst = ? AND c.src NOT IN (SELECT unnest(?::VARCHAR[])) ORDER BY c.w DESC, c.src LIMIT ?""",
            [item_id, touched, RAISE_TRIES]).fetchall()
    as_of = recommender.as_of(user_id)
    for src, title in leads:
        if as_of is None:
            break
        tries.append((f"Viewing {title} (shoppers often view it just before this item) would lift it from "
                      "rank {before} to rank {after}.",
                      HistoryChange.of(extra_events=[(src, s.VIEW, as_of - timedelta(microseconds=1))])))
    return tries


def _best_hint(tries: list[tuple[str, HistoryChange]], ranks: _Ranks, rank_before: int) -> str | None:
    """The single change, among the guided candidates, that lifts the item most (re-scored); the
    first of them on a tie."""
    best: tuple[int, str] | None = None
    for words, change in tries:
        rank = ranks.rank(change)
        if rank is not None and rank < rank_before and (best is None or rank < best[0]):
            best = (rank, words)
    if best is None:
        return None
    return best[1].replace("{before}", str(rank_before)).replace("{after}", str(best[0]))
