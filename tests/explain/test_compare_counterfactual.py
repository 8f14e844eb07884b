"""Why A above B adds up to the score gap; counterfactuals hold when re-scored through the pipeline.

Through the use cases (``workflows.explaining.compare`` / ``counterfactual``), which explain the
items once and hand the explanations to ``explain.compare`` / ``explain.counterfactual``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics import schema as s
from errors import RecsightError
from explain.counterfactual import rank_of
from models.serving import Recommender
from workflows.explaining import compare, counterfactual


def test_rescore_without_changes_is_the_recommendation(recommender: Recommender, active_users: list[str]) -> None:
    user = active_users[2]
    assert recommender.rescore(user, k=10).items == recommender.recommend(user, k=10).items


def test_rescore_without_an_item_forgets_it(recommender: Recommender, explained, active_users: list[str]) -> None:
    user = active_users[2]
    with recommender.connection() as con:
        last = con.execute(f"SELECT {s.ITEM_ID} FROM {s.EVENTS} WHERE {s.USER_ID} = ? ORDER BY {s.TS} DESC LIMIT 1",
                           [user]).fetchone()[0]
    before = recommender.recommend(user, k=200)
    after = recommender.rescore(user, k=200, without_items=[last])
    assert last not in {i.item_id for i in before.items}  # seen items are never candidates ...
    assert last in {i.item_id for i in after.items} or after.items != before.items  # ... until forgotten
    assert (after.features["user_events"] < before.features["user_events"].iloc[0]).all()


def test_differences_sum_to_the_score_gap_largest_first(recommender: Recommender, explained,
                                                         active_users: list[str]) -> None:
    result = explained(active_users[0]).result
    a, b = result.items[0], result.items[-1]
    comparison = compare(recommender, active_users[0], a.item_id, b.item_id)
    assert (comparison.score_a, comparison.score_b) == (a.score, b.score)
    total = sum(d.difference for d in comparison.differences)
    assert total == pytest.approx(a.score - b.score, abs=1e-9)
    sizes = [abs(d.difference) for d in comparison.differences]
    assert sizes == sorted(sizes, reverse=True)
    if a.score > b.score:
        assert comparison.summary[0].startswith(f"{a.title} ranks above {b.title}")
        assert comparison.differences[0].label.lower() in " ".join(comparison.summary).lower()
    data = comparison.to_dict()
    assert data["differences"][0]["difference"] == comparison.differences[0].difference


def test_compare_refuses_items_the_ranker_does_not_score(recommender: Recommender, explained,
                                                         active_users: list[str]) -> None:
    item = explained(active_users[0]).result.items[0].item_id
    with pytest.raises(RecsightError, match="not among this customer's candidates"):
        compare(recommender, active_users[0], item, "no-such-item")
    with pytest.raises(RecsightError, match="two different items"):
        compare(recommender, active_users[0], item, item)


def test_counterfactual_is_verified_by_rescoring(recommender: Recommender, explained, active_users: list[str]) -> None:
    user = active_users[3]
    item = explained(user).result.items[0].item_id
    found = counterfactual(recommender, user, item, k=5)
    assert found.rank_before == 1
    removed = sorted({h.item_id for h in found.removed})
    if found.verified:
        # independently: without those items, the item is out of the top 5 ...
        after = recommender.rescore(user, k=5, without_items=removed)
        assert item not in {i.item_id for i in after.items}
        assert found.rank_after is None or found.rank_after > 5
        # ... and every removed item is needed
        for kept in removed if len(removed) > 1 else []:
            back = recommender.rescore(user, k=5, without_items=[r for r in removed if r != kept])
            assert item in {i.item_id for i in back.items}
        assert found.sentence.startswith("Without ") and "top 5" in found.sentence
    else:
        assert found.removed == [] and "does not take it out" in found.sentence
    assert found.to_dict()["removed"] == [h.to_dict() for h in found.removed]


def test_raise_hint_is_a_rescored_improvement(recommender: Recommender, explained, active_users: list[str]) -> None:
    user = active_users[3]
    result = explained(user).result
    item = result.items[-1].item_id
    found = counterfactual(recommender, user, item, k=5)
    assert found.rank_before == 10 and not found.removed
    assert "not in the top 5" in found.sentence
    hint = found.raise_hint
    assert hint is not None and "from rank 10 to rank" in hint
    new_rank = int(hint.rsplit("rank ", 1)[1].rstrip("."))
    assert new_rank < 10
    if hint.startswith("Viewing "):  # check the named change really gives that rank
        with recommender.connection() as con:
            title_of = dict(con.execute(f"SELECT {s.TITLE}, {s.ITEM_ID} FROM {s.ITEMS}").fetchall())
        title = hint[len("Viewing "):hint.index(" (shoppers")]
        extra = [(title_of[title], s.VIEW, recommender.tables.as_of - timedelta(microseconds=1))]
        assert rank_of(recommender.rescore(user, 1000, extra_events=extra), item) == new_rank
