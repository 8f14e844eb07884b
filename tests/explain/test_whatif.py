"""The what-if diff (explain/whatif.py) on hand-built lists: which items enter, leave and move, the
driver each sentence names, and no raw ranker score in any sentence (agents read them out)."""

from __future__ import annotations

import re

import pandas as pd

from analytics import schema as s
from explain.changes import GROUP_WORDS
from explain.whatif import ENTERED, LEFT, MOVED, compare_lists
from models.recommendation import Recommendation, RecommendedItem

USER = "c_0123456789abcdef0123"


def _ranking(entries: list[tuple[str, float, int]]) -> Recommendation:
    """A whole ranking from (item id, raw score, match strength), best first."""
    items = [RecommendedItem(rank, item, f"Title {item}", score, strength)
             for rank, (item, score, strength) in enumerate(entries, start=1)]
    features = pd.DataFrame({s.USER_ID: [USER] * len(items), s.ITEM_ID: [i.item_id for i in items]})
    return Recommendation(USER, False, items, features)


BEFORE = _ranking([("a", 1.2345, 90), ("b", 0.9876, 80), ("c", 0.5432, 60), ("d", -0.1234, 30),
                   ("e", -0.7654, 10)])
AFTER = _ranking([("b", 1.0123, 85), ("e", 0.8765, 78), ("a", 0.4321, 55), ("d", -0.1111, 31),
                  ("f", -0.9999, 5)])


def test_the_diff_names_entered_left_and_moved_items_with_their_ranks() -> None:
    changes = {"e": {"affinity": 1.5, "popularity": 0.1}, "a": {"co-visitation": -0.7, "price": 0.05},
               "b": {"popularity": 0.02}, "c": {"co-visitation": -0.9}}
    found = compare_lists(BEFORE, AFTER, 3, changes)
    kinds = {m.item_id: m.kind for m in found.moves}
    assert kinds == {"e": ENTERED, "c": LEFT, "b": MOVED, "a": MOVED}
    assert [m.kind for m in found.moves] == [ENTERED, LEFT, MOVED, MOVED]  # entered, left, moved; by rank
    e = next(m for m in found.moves if m.item_id == "e")
    assert (e.rank_before, e.rank_after, e.match_before, e.match_after) == (5, 2, "weaker match", "strong match")
    assert e.driver == GROUP_WORDS["affinity"] and GROUP_WORDS["affinity"] in e.sentence
    assert e.sentence.startswith("New at #2 (now #5)") and "its match would rise" in e.sentence
    a = next(m for m in found.moves if m.item_id == "a")
    assert a.sentence.startswith("Would move to #3 (now #1)") and "its match would fall" in a.sentence
    assert a.driver == GROUP_WORDS["co-visitation"]  # the group that went the item's way, not the largest at all
    c = next(m for m in found.moves if m.item_id == "c")
    assert c.rank_after is None and "no longer be among the candidates" in c.sentence
    assert [i.item_id for i in found.result.items] == ["b", "e", "a"]


def test_no_sentence_shows_a_raw_score_or_a_strength_number() -> None:
    found = compare_lists(BEFORE, AFTER, 4, {"e": {"affinity": 1.6}, "a": {"attention": -0.8}})
    assert found.moves
    numbers = {f"{i.score}" for r in (BEFORE, AFTER) for i in r.items} | {f"{i.score:.3f}" for r in (BEFORE, AFTER)
                                                                         for i in r.items}
    for move in found.moves:
        assert not any(n in move.sentence for n in numbers), move.sentence
        assert not re.search(r"\d+\.\d+|\d+ ?%", move.sentence), move.sentence
        assert re.sub(r"#\d+", "", move.sentence) == re.sub(r"\d", "", re.sub(r"#\d+", "", move.sentence))


def test_the_same_list_has_no_moves_and_rules_explain_added_and_removed_items() -> None:
    assert not compare_lists(BEFORE, BEFORE, 3).any
    after = _ranking([("x", 2.0, 95), ("b", 0.98, 80), ("c", 0.54, 60), ("d", -0.12, 30)])
    found = compare_lists(BEFORE, after, 3, {}, removed=["x"], added=("a", s.CART), added_title="Title a")
    x = next(m for m in found.moves if m.item_id == "x")
    assert x.kind == ENTERED and "events on it taken out" in x.sentence
    a = next(m for m in found.moves if m.item_id == "a")
    assert a.kind == LEFT and "put “Title a” in the basket" in a.sentence and "not recommended again" in a.sentence
