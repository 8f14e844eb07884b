"""Merchandising rules on one ranked list (models/rules.py): each kind, scope, window, order and conflicts.

A hand-made list of 20 items (i01 best) with feature rows, over a small catalogue: the effects of a
rule can be stated exactly, position by position.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics.rule_set import BOOST, BRAND, BURY, CATEGORY, EXCLUDE, ITEM, PIN, Rule, RuleSet, Scope
from models.recommendation import Recommendation, RecommendedItem
from models.rules import Customer, ItemInfo, RuledItem, applicable, apply_rules, describe, matches, place

NOW = datetime(2025, 12, 10, 12, 0)
CHANGED = datetime(2025, 12, 1, 9, 30)
ITEMS = [f"i{n:02d}" for n in range(1, 21)]
CATALOGUE = {
    item: ItemInfo(f"Title {item}", "Outdoor > Tents > Dome" if n % 4 == 0 else "Home > Kitchen",
                   "Acme" if n % 5 == 0 else "Other")
    for n, item in enumerate(ITEMS, start=1)
} | {"new1": ItemInfo("A new tent", "Outdoor > Tents", "Acme")}
CUSTOMER = Customer("c_1", "DE", "champions")


def ranked(user: str = "c_1") -> Recommendation:
    scores = np.linspace(2.0, -2.0, len(ITEMS))
    items = [RecommendedItem(n, item, f"Title {item}", float(score), 90 - n) for n, (item, score)
             in enumerate(zip(ITEMS, scores), start=1)]
    features = pd.DataFrame({"user_id": user, "item_id": ITEMS, "f_int": range(len(ITEMS)),
                             "f_float": scores, "score": scores})
    return Recommendation(user, False, items, features)


EVERYONE = Scope()


def rule(kind: str, target: str, target_type: str = ITEM, *, rule_id: str = "r1", name: str | None = None,
         position: int | None = None, shift: int | None = None, scope: Scope = EVERYONE,
         start: datetime | None = None, end: datetime | None = None) -> Rule:
    return Rule(rule_id, name or f"{kind} {target}", kind, target_type, target, "ana", CHANGED, position, shift,
                scope, start, end)


def shown(result: Recommendation) -> list[str]:
    return [item.item_id for item in result.items]


def apply(rules: list[Rule], k: int = 10, customer: Customer = CUSTOMER, now: datetime = NOW):
    return apply_rules(ranked(), rules, customer, now, k, CATALOGUE)


# --------------------------------------------------------------------------- each kind


def test_exclude_removes_the_item_and_pulls_the_next_one_into_the_top_k() -> None:
    out = apply([rule(EXCLUDE, "i03")])
    assert shown(out.recommendation) == [i for i in ITEMS if i != "i03"][:10]
    assert [item.rank for item in out.recommendation.items] == list(range(1, 11))
    assert out.removed["i03"][0].from_rank == 3 and out.removed["i03"][0].to_rank is None
    # the items that closed up were not moved by a rule: they are the model's items, renumbered
    assert all(type(item) is RecommendedItem for item in out.recommendation.items)


def test_exclude_by_brand_and_by_category_subtree() -> None:
    brand = apply([rule(EXCLUDE, " acme ", BRAND)], k=20)
    assert not {"i05", "i10", "i15", "i20"} & set(shown(brand.recommendation))
    category = apply([rule(EXCLUDE, "Outdoor > Tents", CATEGORY)], k=20)  # holds "Outdoor > Tents > Dome"
    assert not {"i04", "i08", "i12", "i16", "i20"} & set(shown(category.recommendation))
    assert len(shown(category.recommendation)) == 15
    assert not matches(rule(EXCLUDE, "Outdoor > Tent", CATEGORY), "i04", CATALOGUE["i04"])  # whole steps only


def test_pin_puts_an_item_at_its_position_and_says_from_where() -> None:
    out = apply([rule(PIN, "i07", position=2, name="Winter tents")])
    assert shown(out.recommendation)[:4] == ["i01", "i07", "i02", "i03"]
    item = out.recommendation.items[1]
    assert isinstance(item, RuledItem) and not item.added
    assert (item.rules[0].from_rank, item.rules[0].to_rank) == (7, 2)
    assert describe(item.rules, NOW) == "moved from #7 to #2 by rule 'Winter tents', ana, 1 Dec"
    assert item.score == ranked().items[6].score  # the model's score is kept


def test_pin_reaches_below_the_top_k_and_adds_an_item_the_model_did_not_list() -> None:
    deep = apply([rule(PIN, "i18", position=1)])
    assert shown(deep.recommendation)[0] == "i18" and deep.recommendation.items[0].rules[0].from_rank == 18
    added = apply([rule(PIN, "new1", position=3, name="New tent")])
    item = added.recommendation.items[2]
    assert item.item_id == "new1" and item.added and item.title == "A new tent"
    assert math.isnan(item.score) and item.strength is None
    assert describe(item.rules, NOW).startswith("added at #3 by rule 'New tent'")
    frame = added.recommendation.features
    assert list(frame["item_id"]) == shown(added.recommendation) and frame.loc[2, "f_int"] is None
    assert frame.drop(index=2)["f_int"].infer_objects().dtype.kind == "i"  # the model rows keep their values


def test_a_pin_of_an_item_the_catalogue_does_not_have_is_not_applied() -> None:
    out = apply([rule(PIN, "ghost", position=1)])
    assert shown(out.recommendation) == ITEMS[:10]
    assert "no item 'ghost'" in out.conflicts[0]


def test_boost_and_bury_move_by_positions() -> None:
    boost = apply([rule(BOOST, "i08", shift=3)])
    assert shown(boost.recommendation)[:6] == ["i01", "i02", "i03", "i04", "i08", "i05"]
    assert boost.recommendation.items[4].rules[0].from_rank == 8
    bury = apply([rule(BURY, "i02", shift=3)])
    assert shown(bury.recommendation)[:6] == ["i01", "i03", "i04", "i05", "i02", "i06"]
    out_of_top = apply([rule(BURY, "i09", shift=5)])
    assert "i09" not in shown(out_of_top.recommendation) and "i11" in shown(out_of_top.recommendation)
    past_end = place(ITEMS, [rule(BURY, "i01", shift=99)], CATALOGUE)
    assert past_end.order[-1] == "i01"


def test_boost_by_category_lifts_every_item_of_it_keeping_their_order() -> None:
    out = place(ITEMS, [rule(BOOST, "Outdoor > Tents", CATEGORY, shift=2)], CATALOGUE)
    assert out.order[:10] == ["i01", "i04", "i02", "i03", "i05", "i08", "i06", "i07", "i09", "i12"]  # each up 2


def test_shifts_on_one_item_add_up() -> None:
    rules = [rule(BOOST, "i10", shift=4, rule_id="r1", name="up"), rule(BURY, "Acme", BRAND, shift=1, rule_id="r2",
                                                                             name="down")]
    out = place(ITEMS, rules, CATALOGUE)
    assert out.order.index("i10") + 1 == 7  # 10 - 4 + 1
    assert [e.rule for e in out.effects["i10"]] == ["up", "down"]


# --------------------------------------------------------------------------- scope and window


def test_scope_by_country_and_segment() -> None:
    de_only = rule(EXCLUDE, "i01", scope=Scope(countries=("DE",)))
    assert "i01" not in shown(apply([de_only]).recommendation)
    assert "i01" in shown(apply([de_only], customer=Customer("c_2", "FR", "champions")).recommendation)
    both = rule(EXCLUDE, "i01", scope=Scope(countries=("DE", "FR"), segments=("loyal",)))
    assert applicable([both], CUSTOMER, NOW) == ()  # DE but a champion
    assert applicable([both], Customer("c_3", "FR", "loyal"), NOW) == (both,)
    assert applicable([both], Customer(None), NOW) == ()  # an anonymous searcher is in no segment
    assert applicable([rule(EXCLUDE, "i01")], Customer(None), NOW) != ()


@pytest.mark.parametrize(("now", "holds"), [
    (NOW - timedelta(days=2), False),  # before the window
    (NOW, True),  # at its start (inclusive)
    (NOW + timedelta(days=1), True),  # inside
    (NOW + timedelta(days=3), False),  # at its end (exclusive) and after
])
def test_time_window(now: datetime, holds: bool) -> None:
    windowed = rule(EXCLUDE, "i01", start=NOW, end=NOW + timedelta(days=3))
    assert ("i01" not in shown(apply([windowed], now=now).recommendation)) is holds


def test_no_rule_in_force_gives_the_models_list_untouched() -> None:
    ended = rule(PIN, "i09", position=1, end=NOW - timedelta(seconds=1))
    out = apply([ended])
    assert shown(out.recommendation) == ITEMS[:10]
    assert all(type(item) is RecommendedItem for item in out.recommendation.items)


# --------------------------------------------------------------------------- order and conflicts


def test_exclude_beats_pin_and_pin_beats_boost() -> None:
    rules = [rule(PIN, "i05", position=1, rule_id="r1", name="pin"), rule(EXCLUDE, "Acme", BRAND, rule_id="r2",
                                                                           name="recall")]
    out = apply(rules)
    assert "i05" not in shown(out.recommendation)
    assert "its item is excluded" in out.conflicts[0]
    boosted_and_pinned = [rule(BOOST, "i03", shift=2, rule_id="r1", name="b"),
                          rule(PIN, "i03", position=6, rule_id="r2", name="p")]
    order = place(ITEMS, boosted_and_pinned, CATALOGUE).order
    assert order.index("i03") == 5  # the pin decides its place


def test_two_pins_on_one_position_the_first_listed_wins() -> None:
    rules = [rule(PIN, "i09", position=2, rule_id="r1", name="first"),
             rule(PIN, "i12", position=2, rule_id="r2", name="second"),
             rule(PIN, "i09", position=5, rule_id="r3", name="again")]
    out = apply(rules)
    assert shown(out.recommendation)[1] == "i09"
    assert "i12" not in shown(out.recommendation)[:2]
    assert out.conflicts == ("pin 'second' not applied: #2 is taken by 'first'",
                             "pin 'again' not applied: the item is already pinned by 'first'")


def test_pins_keep_the_others_in_order_and_lists_stay_whole() -> None:
    rules = [rule(PIN, "i20", position=1, rule_id="r1"), rule(PIN, "i19", position=3, rule_id="r2", name="b")]
    order = place(ITEMS, rules, CATALOGUE).order
    assert order[:5] == ["i20", "i01", "i19", "i02", "i03"]
    assert sorted(order) == sorted(ITEMS)


def test_rule_set_order_and_dates_in_words() -> None:
    rs = RuleSet((rule(BOOST, "i04", shift=1, rule_id="r1", name="a"),), 3)
    assert applicable(rs, CUSTOMER, NOW)[0].name == "a"
    out = apply(list(rs.rules))
    effects = out.recommendation.items[2].rules
    assert describe(effects, datetime(2026, 1, 2)) == "moved from #4 to #3 by rule 'a', ana, 1 Dec 2025"
