"""The simulated shopper (analytics/shopper_model.py): position bias, the planted tastes, the exact
expectation that a simulated experiment is checked against, and the planted lift."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from analytics.shopper_model import (
    ItemFacts,
    Tastes,
    examine_probability,
    expected_clicks,
    item_facts,
    load_tastes,
    shop_visit,
)
from errors import RecsightError

TASTES = Tastes(frozenset({"Outdoor > Camping > Tents"}), frozenset({"Alpine"}), 0.8, 1.2)
LIKED = ItemFacts("Outdoor > Camping > Tents", "Alpine", 1.0)  # category, brand and price band
OTHER = ItemFacts("Home > Kitchen > Knives", "Chef", 3.0)  # none of them


def _mean_clicks(shown: list[str], facts: dict[str, ItemFacts], visits: int, **kw: float) -> float:
    rng = np.random.default_rng(5)
    return float(np.mean([len(shop_visit(rng, TASTES, shown, facts, **kw).clicked) for _ in range(visits)]))


def test_position_bias_halves_the_second_place_and_eta_zero_removes_it() -> None:
    assert examine_probability(4).tolist() == pytest.approx([1.0, 0.5, 1 / 3, 0.25])
    assert examine_probability(3, eta=0.0).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(RecsightError):
        examine_probability(3, eta=-1.0)


def test_a_liked_item_at_the_top_earns_more_clicks_than_at_the_bottom() -> None:
    facts = {f"o{i}": OTHER for i in range(9)} | {"liked": LIKED}
    top = ["liked"] + [f"o{i}" for i in range(9)]
    bottom = [f"o{i}" for i in range(9)] + ["liked"]
    # it gains (0.32 - 0.14) clicks at place 1, where it is always seen, over place 10, seen one time in ten
    gain = expected_clicks(TASTES, top, facts) - expected_clicks(TASTES, bottom, facts)
    assert gain == pytest.approx((0.32 - 0.14) * (1 - 1 / 10))
    # liked at the top: examined always, clicked at 0.14 + 0.08 + 0.06 + 0.04
    assert expected_clicks(TASTES, ["liked"], facts) == pytest.approx(0.32)


def test_simulated_clicks_match_the_exact_expectation_and_the_planted_lift() -> None:
    facts = {f"i{i}": (LIKED if i % 3 == 0 else OTHER) for i in range(10)}
    shown = list(facts)
    expected = expected_clicks(TASTES, shown, facts)
    assert _mean_clicks(shown, facts, 40_000) == pytest.approx(expected, rel=0.02)
    lifted = expected_clicks(TASTES, shown, facts, click_lift=0.10)
    assert lifted == pytest.approx(expected * 1.10)
    assert _mean_clicks(shown, facts, 40_000, click_lift=0.10) == pytest.approx(lifted, rel=0.02)


def test_a_purchase_follows_a_cart_which_follows_a_click() -> None:
    facts = {f"i{i}": LIKED for i in range(10)}
    rng = np.random.default_rng(2)
    for _ in range(2_000):
        visit = shop_visit(rng, TASTES, list(facts), facts)
        assert set(visit.bought) <= set(visit.carted) <= set(visit.clicked) <= set(visit.examined)
        assert len(visit.quantities) == len(visit.bought) and all(q >= 1 for q in visit.quantities)
    assert shop_visit(rng, TASTES, [], facts).clicked == ()


def test_item_facts_price_is_relative_to_the_category_median() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE items (item_id VARCHAR, category VARCHAR, brand VARCHAR, price DOUBLE)")
    con.execute("INSERT INTO items VALUES ('a', 'X', 'b', 10), ('b', 'X', 'b', 20), ('c', 'X', 'b', 30), "
                "('d', 'Y', NULL, NULL)")
    facts = item_facts(con)
    assert facts["a"].price_rel == pytest.approx(0.5) and facts["b"].price_rel == pytest.approx(1.0)
    assert facts["d"] == ItemFacts("Y", None, None)


def test_tastes_come_from_the_synthetic_shops_truth(trained_shop) -> None:
    tastes = load_tastes(trained_shop.export / "truth")
    assert set(tastes) == set(trained_shop.raw_ids)
    some = next(iter(tastes.values()))
    assert some.categories and some.brands and some.price_rel_low < some.price_rel_high


def test_a_shop_without_truth_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RecsightError, match="planted preferences"):
        load_tastes(tmp_path)
