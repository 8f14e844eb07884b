"""Each explanation is computed once: compare and counterfactual only read the item explanations
they are handed, and what they read is what a fresh SHAP / Integrated Gradients run gives."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from captum.attr import IntegratedGradients

import explain.attributions
import explain.compare
import explain.counterfactual
import explain.explainer
import explain.tree_shap
from analytics import schema as s
from explain.attributions import attribute_items, history_evidence, split_attention_shap
from explain.compare import compare_items
from explain.counterfactual import counterfactual_for
from explain.explainer import ALL_CANDIDATES, explain_ranked
from explain.reasons import load_customer
from explain.tree_shap import shap_rows
from explain.types import Difference
from models.features import ATTENTION_SCORE, feature_spec
from models.serving import Recommender
from workflows.explaining import compare, counterfactual

# The SHAP and IG functions, and every module that could look them up.
_WATCHED = {
    "shap_rows": (explain.tree_shap, explain.explainer, explain.compare, explain.counterfactual),
    "attribute_items": (explain.attributions, explain.explainer, explain.compare, explain.counterfactual),
}


def _count_calls(monkeypatch: pytest.MonkeyPatch, recommender: Recommender) -> Counter[str]:
    """Replace SHAP and IG wherever they could be looked up by counting stand-ins, and count the
    engines underneath too (LightGBM's ``pred_contrib``, captum's IG), whatever the import path."""
    calls: Counter[str] = Counter()

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def stand_in(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return real(*args, **kwargs)
        return stand_in

    for name, modules in _WATCHED.items():
        real = getattr(explain.tree_shap if name == "shap_rows" else explain.attributions, name)
        for module in modules:
            monkeypatch.setattr(module, name, counting(name, real), raising=False)
    monkeypatch.setattr(IntegratedGradients, "attribute", counting("IntegratedGradients.attribute",
                                                                   IntegratedGradients.attribute))
    booster = recommender.ranker.booster
    predict = booster.predict

    def booster_predict(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("pred_contrib"):
            calls["pred_contrib"] += 1
        return predict(*args, **kwargs)

    monkeypatch.setattr(booster, "predict", booster_predict)
    return calls


def test_compare_and_counterfactual_run_no_shap_or_ig_of_their_own(recommender: Recommender, explained,
                                                                    active_users: list[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    user = active_users[3]
    result = explained(user).result
    top, last = result.items[0].item_id, result.items[-1].item_id
    customer = load_customer(recommender, user)
    a, b = explain_ranked(recommender, user, [top, last], customer=customer)
    expected_comparison = compare(recommender, user, top, last)
    expected_counterfactual = counterfactual(recommender, user, top, k=5)

    calls = _count_calls(monkeypatch, recommender)
    comparison = compare_items(a, b)
    found = counterfactual_for(recommender, a, k=5, customer=customer)
    also_found = counterfactual_for(recommender, b, k=5)  # loads the customer itself: still no SHAP/IG
    assert sum(calls.values()) == 0, calls
    assert comparison == expected_comparison
    assert found == expected_counterfactual
    assert also_found.rank_before == 10 and "not in the top 5" in also_found.sentence


def test_the_handed_explanations_hold_what_a_fresh_computation_gives(recommender: Recommender, explained,
                                                                     active_users: list[str]) -> None:
    """What compare and counterfactual used to compute themselves (SHAP of the two rows, IG of the
    one item) equals what the explanation they now receive carries."""
    user = active_users[0]
    result = explained(user).result
    item_a, item_b = result.items[1].item_id, result.items[-1].item_id
    a, b = explain_ranked(recommender, user, [item_a, item_b])
    assert (a.rank, b.rank) == (2, len(result.items)) and (a.score, b.score) == (result.items[1].score,
                                                                                result.items[-1].score)
    full = recommender.recommend(user, ALL_CANDIDATES)
    frame = full.features.set_index(s.ITEM_ID, drop=False).loc[[item_a, item_b]].reset_index(drop=True)
    rows = shap_rows(recommender.ranker, frame)
    expected = []
    for j, name in enumerate(rows.features):
        ca, cb = float(rows.values[0, j]), float(rows.values[1, j])
        if ca != cb:
            va, vb = (None if v != v else float(v) for v in (rows.inputs[0, j], rows.inputs[1, j]))
            expected.append(Difference(name, feature_spec(name).plain, va, vb, ca, cb))
    expected.sort(key=lambda d: (-abs(d.difference), d.feature))
    assert compare_items(a, b).differences == expected

    # The counterfactual use case explains its one item alone, as the old counterfactual did.
    (alone,) = explain_ranked(recommender, user, [item_a])
    one_row = shap_rows(recommender.ranker, frame.iloc[[0]])
    phi = float(one_row.values[0, one_row.features.index(ATTENTION_SCORE)])
    histories = recommender.histories([user])
    pair = attribute_items(recommender.attention, histories, user, [item_a])[0]
    titles = {e.item_id: e.title for e in load_customer(recommender, user).events}
    assert alone.history == history_evidence(histories, user, pair, split_attention_shap(phi, pair.attributions),
                                             titles)
