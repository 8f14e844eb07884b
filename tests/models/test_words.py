"""Words an agent reads aloud (issue 17): every ranker feature has plain wording and a unit, a
value reads in that unit (or not at all where it means nothing outside the model), a score reads
as a bounded match strength in the ranking's order, and "often" or "popular" is said only where
the shop's own items put the numbers high."""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pytest

from explain.reasons import CustomerData, Event, ItemFacts, build_reasons
from explain.types import Contribution
from models.features import FEATURES, UNITS, plain_label_of, value_words
from models.item_norms import ItemNorms, item_norms
from models.recommendation import GOOD, STRONG, MatchScale, match_words

_JARGON = ("step", "shortlist", "co-visitation", "link", "logit", "affinity", "deep-interest", "rank among", "cutoff")


def test_every_feature_has_plain_words_without_jargon_and_a_known_unit() -> None:
    for spec in FEATURES:
        assert spec.plain and spec.plain != spec.label, spec.name
        assert not any(word in spec.plain.lower() for word in _JARGON), spec.plain
        assert spec.unit in UNITS, spec.name
        assert plain_label_of(spec.name) == spec.plain
    assert len({spec.plain for spec in FEATURES}) == len(FEATURES)  # no two features read the same


@pytest.mark.parametrize(("name", "value", "words"), [
    ("brand_share", 0.42, "42%"), ("item_conversion", 0.013, "1%"), ("item_users", 1250.0, "1,250"),
    ("cand_rank", 3.0, "#3"), ("category_steps", 1.0, "1 visit ago"), ("category_steps", 4.0, "4 visits ago"),
    ("brand_days", 0.4, "today"), ("user_days_inactive", 12.2, "12 days"), ("price_ratio", 1.26, "1.3 times"),
    ("item_trend_7d", 1.8, "rising"), ("item_trend_7d", 0.5, "falling"), ("same_brand_last", 1.0, "yes"),
    ("next_sum", 32.17, None), ("attention_score", -1.2, None), ("brand_share", None, None),
    ("brand_share", float("nan"), None),
])
def test_values_read_in_their_unit_or_not_at_all(name: str, value: float | None, words: str | None) -> None:
    assert value_words(name, value) == words


def test_match_strength_is_bounded_in_the_rankings_order_and_worded_by_its_place() -> None:
    served = np.random.default_rng(3).normal(-1.0, 0.8, 5000)
    scale = MatchScale.of(served)
    assert scale is not None
    scores = sorted(served[:200], reverse=True)
    strengths = [scale.strength(s) for s in scores]
    assert strengths == sorted(strengths, reverse=True) and min(strengths) >= 0 and max(strengths) <= 100
    assert scale.strength(served.max() + 1) == 100 and scale.strength(served.min() - 1) == 0
    assert abs(scale.strength(float(np.median(served))) - 50) <= 1
    assert (match_words(STRONG), match_words(GOOD), match_words(GOOD - 1)) == (
        "strong match", "good match", "weaker match")
    assert MatchScale.of(served[:10]) is None  # no distribution to place a score in


def _norms(conversions: list[float]) -> ItemNorms:
    con = duckdb.connect()
    con.execute("CREATE TABLE items AS SELECT unnest(?::DOUBLE[]) AS item_conversion, "
                "unnest(?::BIGINT[]) AS item_users", [conversions, [10 * (i + 1) for i in range(len(conversions))]])
    return item_norms(con, "items")


def _conversion_reason(norms: ItemNorms, conversion: float) -> str | None:
    customer = CustomerData("c_00000000000000000000", [Event("I1", "view", datetime(2024, 3, 1), 5.0, "Thing",
                                                             "A > B", "Brand")], datetime(2024, 3, 2), True)
    item = ItemFacts("I2", "Other thing", "C > D", "Other", 5.0)
    pushing = [Contribution("item_conversion", "How often a look at it ends in a purchase", "item", conversion, 0.4)]
    reasons = build_reasons(customer, item, {"item_conversion": conversion}, pushing, [], 0.0, [], False, norms)
    return next((r.text for r in reasons if r.topic == "conversion"), None)


def test_often_is_said_only_where_the_shops_items_put_the_rate_high() -> None:
    low_shop = _norms([0.001, 0.002, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.009, 0.01])
    high_shop = _norms([0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4])
    assert "often buy it" in _conversion_reason(low_shop, 0.012)  # 1 % is a lot where most items sell less
    assert _conversion_reason(high_shop, 0.012) is None  # ... and nothing to boast of where most sell more
    assert "about usual" in _conversion_reason(high_shop, 0.15)
    assert _conversion_reason(ItemNorms({}), 0.5) is None  # no shop to compare with: no claim
    assert low_shop.level("item_users", 100) == "high" and low_shop.level("item_users", 10) == "low"
