"""Why A above B never gives a feature with the same value for both items as a reason (issue 17):
its part of the gap is interaction, summed into one line of its own; the parts still add up to
the score gap. Built from explanations by hand, so each case is exact."""

from __future__ import annotations

import pytest

from explain.compare import compare_items
from explain.types import Contribution, ItemExplanation


def _item(item_id: str, rank: int, values: dict[str, tuple[float, float]], base: float = -1.0) -> ItemExplanation:
    contributions = [Contribution(name, name.replace("_", " ").capitalize(), "group", value, part)
                     for name, (value, part) in values.items()]
    score = base + sum(part for _, part in values.values())
    return ItemExplanation(user_id="c_00000000000000000000", item_id=item_id, title=f"Item {item_id}", rank=rank,
                           score=score, base_value=base, contributions=contributions, history=[],
                           convergence_delta=0.0, attention_share=0.0,
                           feature_values={name: value for name, (value, _) in values.items()})


def test_equal_values_are_interaction_not_reasons():
    a = _item("A", 1, {"customer_events": (779.0, 0.100), "brand_share": (0.5, 0.40), "price_ratio": (1.2, -0.05)})
    b = _item("B", 4, {"customer_events": (779.0, 0.034), "brand_share": (0.1, -0.20), "price_ratio": (0.9, 0.02)})
    comparison = compare_items(a, b)
    assert sum(d.difference for d in comparison.differences) == pytest.approx(a.score - b.score, abs=1e-12)
    text = " ".join(comparison.summary)
    assert "779 against 779" not in text
    assert "Brand share: 50% against 10%, in favour of Item A (82% of what separates them)." in comparison.summary
    assert "Pulling the other way: price ratio (1.2 times against 0.9 times) favours Item B (10% of what separates " \
           "them)." in comparison.summary
    assert comparison.summary[-1].startswith("Features equal for both items (customer events) favour Item A only "
                                             "together with the ones that differ (9% of what separates them)")
    assert comparison.summary[0] == "Item A ranks above Item B (rank 1 against 4)."  # no raw score units
    assert [d.equal_values for d in comparison.differences if d.feature == "customer_events"] == [True]
    assert comparison.to_dict()["differences"][0]["equal_values"] is False  # the largest: brand share


def test_no_interaction_line_when_equal_features_add_nothing():
    a = _item("A", 1, {"customer_events": (779.0, 0.1), "brand_share": (0.5, 0.4)})
    b = _item("B", 2, {"customer_events": (779.0, 0.1), "brand_share": (0.1, -0.2)})
    assert not any("equal for both" in line for line in compare_items(a, b).summary)
