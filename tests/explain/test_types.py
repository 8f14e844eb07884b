"""explain.types: the JSON that ``recommend --explain --json``, the API and the reports publish.

The ``to_dict`` methods are the schema a client reads: these tests pin their keys and values,
and that they survive ``json.dumps`` (no datetimes, no numpy numbers left in them).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import pytest

from explain.types import Comparison, Contribution, Counterfactual, Difference, HistoryEvidence, ItemExplanation

TS = datetime(2024, 3, 1, 14, 30)
BRAND = Contribution("brand_share", "Affinity to the item's brand", "affinity", 0.5, 0.25)
MISSING = Contribution("price_ratio", "Price against the customer's usual", "price", None, -0.125)
VIEW = HistoryEvidence("i07", "Lipstick", "view", TS, attribution=0.4, attention=0.7, score_share=0.1)


def _item(**changes) -> ItemExplanation:
    item = ItemExplanation(
        user_id="c_0123456789abcdef", item_id="i09", title="Mascara", rank=1, score=1.125, base_value=1.0,
        contributions=[BRAND, MISSING], history=[VIEW], convergence_delta=0.002, attention_share=0.3,
        reasons=["You often buy this brand."], counterfactual="Without your view of Lipstick it would drop.",
        feature_values={"brand_share": 0.5, "price_ratio": None, "user_events": 12.0},
    )
    return dataclasses.replace(item, **changes)


def test_a_contribution_publishes_feature_label_value_and_contribution() -> None:
    assert BRAND.to_dict() == {"feature": "brand_share", "label": "Affinity to the item's brand", "value": 0.5,
                               "contribution": 0.25}
    assert MISSING.to_dict()["value"] is None  # a missing feature value stays missing, never 0
    assert "group" not in BRAND.to_dict()


def test_a_history_event_publishes_its_time_in_iso_format() -> None:
    assert VIEW.to_dict() == {"item_id": "i07", "event_type": "view", "ts": "2024-03-01T14:30:00",
                              "attribution": 0.4, "attention": 0.7}


def test_an_item_explanation_is_the_explanation_object_of_the_json() -> None:
    item = _item()
    data = item.to_dict()
    assert data == {
        "base_value": 1.0,
        "contributions": [BRAND.to_dict(), MISSING.to_dict()],
        "history": [VIEW.to_dict()],
        "convergence_delta": 0.002,
        "reasons": ["You often buy this brand."],
    }
    # the published contributions add up to the score shown in the list
    assert data["base_value"] + sum(c["contribution"] for c in data["contributions"]) == item.score
    assert json.loads(json.dumps(data)) == data
    data["reasons"].append("changed")  # the dict is a copy: the cached explanation stays as it was
    assert item.reasons == ["You often buy this brand."]


def test_explanations_are_frozen_and_the_feature_values_stay_out_of_the_json() -> None:
    item = _item()
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.score = 2.0  # type: ignore[misc]
    assert "feature_values" not in item.to_dict() and "feature_values" not in repr(item)
    assert _item(reasons=[], counterfactual=None).to_dict()["reasons"] == []
    assert ItemExplanation("u", "i", "t", 1, 0.0, 0.0, [], [], 0.0, 0.0).feature_values == {}


def test_a_comparison_publishes_each_difference_a_minus_b() -> None:
    diffs = [Difference("brand_share", "Affinity to the item's brand", 0.5, 0.1, 0.25, 0.05),
             Difference("price_ratio", "Price against the customer's usual", None, 1.2, -0.125, 0.0)]
    comparison = Comparison("c_0123456789abcdef", "i09", "i11", "Mascara", "Blush", 1.125, 1.0, diffs,
                            ["Mascara is closer to your brands."])
    data = comparison.to_dict()
    assert [row["difference"] for row in data["differences"]] == [pytest.approx(0.2), -0.125]
    assert data["differences"][1] == {"feature": "price_ratio", "label": "Price against the customer's usual",
                                      "value_a": None, "value_b": 1.2, "contribution_a": -0.125,
                                      "contribution_b": 0.0, "difference": -0.125, "equal_values": False}
    assert {k: data[k] for k in ("item_a", "item_b", "score_a", "score_b", "summary")} == {
        "item_a": "i09", "item_b": "i11", "score_a": 1.125, "score_b": 1.0,
        "summary": ["Mascara is closer to your brands."]}
    assert json.loads(json.dumps(data)) == data


def test_a_counterfactual_publishes_the_removed_events_like_the_history() -> None:
    found = Counterfactual("c_0123456789abcdef", "i09", k=10, removed=[VIEW], rank_before=3, rank_after=None,
                           verified=True, raise_hint=None, sentence="Without your view of Lipstick it would drop.")
    data = found.to_dict()
    assert data["removed"] == [VIEW.to_dict()]
    assert (data["rank_before"], data["rank_after"], data["verified"], data["k"]) == (3, None, True, 10)
    assert json.loads(json.dumps(data)) == data
