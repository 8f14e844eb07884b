"""The counterfactual search re-scores in batches and still gives the one-at-a-time answer (issue 17).

``Recommender.rescore_many`` ranks several hypothetical histories of one customer in one pass; the
search (:mod:`explain.counterfactual`) reads exactly the re-scorings the one-at-a-time search reads
and decides the same way. These tests pin that down: the batched lists are the lists of re-scoring
each change alone, and the verified answer (removed set, ranks, sentences, raise hint) is the one
the one-at-a-time search gives, on the trained test shop and on many made-up rank oracles.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

import explain.counterfactual as cf
from analytics import schema as s
from explain.counterfactual import counterfactual_for, rank_of
from explain.explainer import ALL_CANDIDATES
from explain.reasons import CustomerData, load_customer
from explain.types import Counterfactual, ItemExplanation
from models.serving import HistoryChange, Recommendation, RecommendedItem, Recommender
from workflows.report_counterfactuals import SharedRescoring

K = 5


def _own_items(recommender: Recommender, user: str) -> list[str]:
    with recommender.connection() as con:
        return [r[0] for r in con.execute(
            f"SELECT {s.ITEM_ID} FROM {s.EVENTS} WHERE {s.USER_ID} = ? GROUP BY 1 ORDER BY max({s.TS}) DESC, 1",
            [user]).fetchall()]


def test_rescore_many_gives_each_change_the_list_of_rescoring_it_alone(recommender: Recommender,
                                                                        active_users: list[str]) -> None:
    user = active_users[1]
    items = _own_items(recommender, user)
    view = (items[-1] + "-not-seen", s.VIEW, recommender.as_of(user) or datetime(2024, 1, 1))
    changes = [HistoryChange.of(), HistoryChange.of(items[:1]), HistoryChange.of(items[1:3]),
               HistoryChange.of(extra_events=[view]), HistoryChange.of(items)]  # the last: no history left
    together = recommender.rescore_many(user, changes, ALL_CANDIDATES)
    assert len(together) == len(changes)
    for change, batched in zip(changes, together):
        alone = recommender.rescore(user, ALL_CANDIDATES, without_items=change.without_items,
                                    extra_events=change.extra_events)
        assert batched.user_id == alone.user_id == user and batched.cold_start == alone.cold_start
        assert [(i.rank, i.item_id, i.title) for i in batched.items] == [
            (i.rank, i.item_id, i.title) for i in alone.items]
        np.testing.assert_allclose([i.score for i in batched.items], [i.score for i in alone.items], rtol=0, atol=1e-9)
        # the customer's own id in the rows, never the virtual one; DuckDB may add a sum's terms in
        # another order over several (virtual) customers than over one: the last bit, nothing more
        assert set(batched.features[s.USER_ID]) <= {user}
        pd.testing.assert_frame_equal(batched.features, alone.features, check_exact=False, rtol=1e-12, atol=1e-12)
    assert together[-1].cold_start and not together[0].cold_start
    assert [i.item_id for i in together[0].items[:10]] == [i.item_id for i in recommender.recommend(user, 10).items]


def _one_at_a_time(recommender: Recommender, explanation: ItemExplanation, k: int,
                   customer: CustomerData) -> tuple[Counterfactual, int]:
    """The counterfactual search as it was before the batches: every re-scoring alone
    (``Recommender.rescore``), in the order the search needs it. Returns it and the re-scorings run."""
    user, item, rank_before = explanation.user_id, explanation.item_id, explanation.rank
    history = explanation.history
    runs = []

    def rank(**change: Any) -> int | None:
        runs.append(change)
        return rank_of(recommender.rescore(user, ALL_CANDIDATES, **change), item)

    order = cf._removal_order(recommender, customer.events, history, item)[:cf.MAX_REMOVED]
    removed, rank_after, verified = ([], rank_before, False) if rank_before > k else _reference(
        lambda items: rank(without_items=sorted(items)), order, rank_before, k)
    best: tuple[int, str] | None = None
    for words, change in cf._raise_tries(recommender, customer.events, history, user, item, rank_before):
        found = rank(without_items=list(change.without_items), extra_events=list(change.extra_events))
        if found is not None and found < rank_before and (best is None or found < best[0]):
            best = (found, words)
    hint = None if best is None else best[1].replace("{before}", str(rank_before)).replace("{after}", str(best[0]))
    evidence = cf._evidence(removed, history, customer.events)
    return Counterfactual(
        user_id=user, item_id=item, k=k, removed=evidence if verified else [], rank_before=rank_before,
        rank_after=rank_after if rank_before <= k else rank_before, verified=verified, raise_hint=hint,
        sentence=cf._sentence(evidence, verified, rank_before, rank_after, k, len(order))), len(runs)


class _Counting(SharedRescoring):
    """The recommender, counting the batched passes (and sharing nothing: one per search)."""

    def __init__(self, recommender: Recommender) -> None:
        super().__init__(recommender)
        self.passes = 0

    def rescore_many(self, user_id: str, changes: Any, k: int = 10, **kw: Any) -> list[Recommendation]:
        self.passes += 1
        return self._recommender.rescore_many(user_id, changes, k, **kw)


def test_the_batched_search_gives_the_one_at_a_time_answer_in_fewer_passes(
        recommender: Recommender, explained: Callable, active_users: list[str]) -> None:
    verified = hinted = ran = passes = 0
    for user in active_users[:3]:
        customer = load_customer(recommender, user)
        for explanation, _ in [explained(user).items[n] for n in (0, 2, 9)]:  # two in the top 5, one below
            counting = _Counting(recommender)
            fast = counterfactual_for(cast(Recommender, counting), explanation, K, customer=customer)
            slow, runs = _one_at_a_time(recommender, explanation, K, customer)
            assert fast == slow, (user, explanation.item_id)
            assert counting.passes <= 3
            verified += fast.verified
            hinted += fast.raise_hint is not None
            ran, passes = ran + runs, passes + counting.passes
    assert verified and hinted  # the comparison covered both answers
    assert passes * 3 <= ran


def _oracle_recommender(rank_of_set: Callable[[frozenset[str]], int | None]) -> Any:
    """A stand-in recommender whose only method is ``rescore_many``: item "x" at the oracle's rank."""

    class Oracle:
        def __init__(self) -> None:
            self.passes: list[int] = []  # the changes of each pass

        def rescore_many(self, user_id: str, changes: list[HistoryChange], k: int) -> list[Recommendation]:
            self.passes.append(len(changes))
            out = []
            for change in changes:
                rank = rank_of_set(frozenset(change.without_items))
                items = [] if rank is None else [RecommendedItem(rank, "x", "X", 0.0)]
                out.append(Recommendation(user_id, False, items, pd.DataFrame()))
            return out

    return Oracle()


def _reference(rank_of_set: Callable[[frozenset[str]], int | None], order: list[str], rank_before: int,
               k: int) -> tuple[list[str], int | None, bool]:
    """The one-at-a-time search over the oracle (the code before the batches, without the hint)."""
    removed: list[str] = []
    rank_after: int | None = rank_before
    verified = False
    for unit in order:
        removed.append(unit)
        rank_after = rank_of_set(frozenset(removed))
        if rank_after is None or rank_after > k:
            verified = True
            break
    if verified:
        for unit in list(removed[:-1]):
            trial = [u for u in removed if u != unit]
            trial_rank = rank_of_set(frozenset(trial))
            if trial_rank is None or trial_rank > k:
                removed, rank_after = trial, trial_rank
    return removed, rank_after, verified


@pytest.mark.parametrize("seed", range(200))
def test_the_search_decides_as_one_at_a_time_for_any_ranks(seed: int) -> None:
    """Random rank oracles, monotone or not: the same removed set and ranks, in at most three passes."""
    rnd = random.Random(seed)
    order = [f"i{n}" for n in range(rnd.randint(0, cf.MAX_REMOVED))]
    holders = frozenset(rnd.sample(order, rnd.randint(0, len(order))))  # removing these tends to drop it
    noise = rnd.random()

    def rank_of_set(removed: frozenset[str]) -> int | None:
        r = random.Random(f"{seed}-{sorted(removed)}")
        if r.random() < noise:
            return r.choice([None, 1, 3, K, K + 1, 12])
        return 8 if holders <= removed and holders else 2

    oracle = _oracle_recommender(rank_of_set)
    ranks = cf._Ranks(oracle, "c", "x")
    prefixes = [order[:n] for n in range(1, len(order) + 1)]
    ranks.fetch(prefixes)
    assert cf._smallest_removal(ranks, prefixes, 2, K) == _reference(rank_of_set, order, 2, K)
    assert len(oracle.passes) <= 3 and max(oracle.passes, default=0) <= max(cf.AHEAD, cf.MAX_REMOVED)


def test_shared_rescoring_batches_only_the_changes_it_has_not_kept() -> None:
    passes: list[list[HistoryChange]] = []

    class Fake:
        def rescore_many(self, user_id: str, changes: list[HistoryChange], k: int = 10,
                         before: datetime | None = None) -> list[str]:
            passes.append(list(changes))
            return [f"list {c.without_items}" for c in changes]

        def rescore(self, user_id: str, k: int = 10, **change: Any) -> str:
            return self.rescore_many(user_id, [HistoryChange.of(**change)], k)[0]

    shared = SharedRescoring(Fake())  # type: ignore[arg-type]
    a, b = HistoryChange.of(["a"]), HistoryChange.of(["b", "a"])
    assert shared.rescore_many("c_1", [a, b], 99) == ["list ('a',)", "list ('a', 'b')"]
    assert shared.rescore("c_1", 99, without_items=["a", "b"]) == "list ('a', 'b')"  # kept: no pass
    assert shared.rescore_many("c_1", [b, HistoryChange.of(["c"]), a], 99) == [
        "list ('a', 'b')", "list ('c',)", "list ('a',)"]
    assert passes == [[a, b], [HistoryChange.of(["c"])]]
    assert shared.computed == 3 and shared.asked == 6
