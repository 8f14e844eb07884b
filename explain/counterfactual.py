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
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from analytics import schema as s
from errors import RecsightError
from explain.explainer import ALL_CANDIDATES
from explain.reasons import CustomerData, Event, covis_links, event_phrase, load_customer
from explain.types import Counterfactual, HistoryEvidence, ItemExplanation
from models.serving import Recommendation, Recommender

__all__ = ["counterfactual_for", "rank_of", "require_positive"]


MAX_REMOVED = 8  # past items tried for the drop (each try is one re-scoring)
RAISE_TRIES = 3  # candidate changes of each kind tried for the raise hint


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

    def rank_without(items: list[str]) -> int | None:
        return rank_of(recommender.rescore(user_id, ALL_CANDIDATES, without_items=items), item_id)

    removed: list[str] = []
    rank_after: int | None = rank_before
    verified = False
    if rank_before <= k:
        for unit in order:
            removed.append(unit)
            rank_after = rank_without(removed)
            if rank_after is None or rank_after > k:
                verified = True
                break
        if verified:
            for unit in list(removed[:-1]):  # try each earlier removal back: keep only what is needed
                trial = [u for u in removed if u != unit]
                trial_rank = rank_without(trial)
                if trial_rank is None or trial_rank > k:
                    removed, rank_after = trial, trial_rank
    evidence = _evidence(removed, history, customer.events)
    hint = _raise_hint(recommender, customer.events, history, user_id, item_id, rank_before)
    return Counterfactual(
        user_id=user_id, item_id=item_id, k=k, removed=evidence if verified else [],
        rank_before=rank_before, rank_after=rank_after if rank_before <= k else rank_before,
        verified=verified, raise_hint=hint,
        sentence=_sentence(evidence, verified, rank_before, rank_after, k, len(order)),
    )


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


def _raise_hint(recommender: Recommender, events: list[Event], history: list[HistoryEvidence], user_id: str,
                item_id: str, rank_before: int) -> str | None:
    """The single change, among a few guided candidates, that lifts the item most (re-scored).

    Candidates: removing one of the past items whose share pulls the item down, and viewing one
    of the items shoppers most often view just before it (that the customer has not touched).
    """
    if rank_before == 1:
        return None
    share: dict[str, float] = {}
    for h in history:
        share[h.item_id] = share.get(h.item_id, 0.0) + h.score_share
    drags = [item for item, value in sorted(share.items(), key=lambda kv: kv[1]) if value < 0][:RAISE_TRIES]
    touched = sorted({e.item_id for e in events})
    tries: list[tuple[str, dict]] = [
        (f"Without {_describe([h for h in history if h.item_id == item])} it would rise from rank {{before}} "
         "to rank {after}.", {"without_items": [item]}) for item in drags]
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
                      {"extra_events": [(src, s.VIEW, as_of - timedelta(microseconds=1))]}))
    best: tuple[int, str] | None = None
    for words, change in tries:
        rank = rank_of(recommender.rescore(user_id, ALL_CANDIDATES, **change), item_id)
        if rank is not None and rank < rank_before and (best is None or rank < best[0]):
            best = (rank, words)
    if best is None:
        return None
    return best[1].replace("{before}", str(rank_before)).replace("{after}", str(best[0]))
