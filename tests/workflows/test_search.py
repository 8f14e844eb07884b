"""Search as the product serves it (workflows/search.py, explain/search.py) on the session's trained
shop: the model version carries its index and ranker, answers have the recommendations' shape,
every result is explained faithfully, a customer's search reads their own history, "why A above
B" works on results, and an item sent through the live intake is findable at once."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta

import pytest

from analytics import schema as s
from errors import RecsightError
from models.serving import Recommender
from tests.conftest import TEST_SECRET
from tests.shop import TrainedShop
from workflows.intake import append_events, append_items
from workflows.search import compare_search, explain_search, search_payload, searcher_for


def _field_text(recommender: Recommender, item_id: str, field: str) -> str:
    index = searcher_for(recommender).index
    value = index.items[field].iloc[index.row(item_id)]
    return "" if value is None else str(value)


def _common_word(recommender: Recommender) -> str:
    """A word many catalogue titles share (the synthetic shop names products by kind)."""
    words = Counter(w.lower() for title in searcher_for(recommender).index.items[s.TITLE].dropna()
                    for w in str(title).split() if w.isalpha() and len(w) > 3)
    return words.most_common(30)[-1][0]


def _brand_fan(recommender: Recommender, shop: TrainedShop) -> tuple[str, str]:
    """(pseudonym, brand): a listed customer and the brand most of their events are on."""
    with recommender.connection() as con:
        row = con.execute(f"""SELECT e.{s.USER_ID}, i.{s.BRAND}, count(*) AS n FROM {s.EVENTS} e
            JOIN {s.ITEMS} i USING ({s.ITEM_ID}) WHERE i.{s.BRAND} IS NOT NULL
            GROUP BY ALL ORDER BY n DESC, 1 LIMIT 1""").fetchone()
    return row[0], row[1]


def test_results_have_the_recommendations_shape_and_faithful_explanations(recommender: Recommender) -> None:
    word = _common_word(recommender)
    payload = search_payload(recommender, word, None, 10, explain=True)
    assert payload["personalised"] is False and payload["user_id"] is None
    items = payload["items"]
    assert [item["rank"] for item in items] == list(range(1, len(items) + 1)) and len(items) == 10
    assert all(set(item) == {"rank", "item_id", "title", "score", "explanation"} for item in items)
    assert [item["score"] for item in items] == sorted((item["score"] for item in items), reverse=True)
    for item in items:
        explanation = item["explanation"]
        total = explanation["base_value"] + sum(c["contribution"] for c in explanation["contributions"])
        assert total == pytest.approx(item["score"], abs=1e-6)
        assert explanation["reasons"] and explanation["reasons"][0].startswith(f"Ranked #{item['rank']} because")
        for matched in explanation["matched"]:  # the words named occur in the field named
            text = _field_text(recommender, item["item_id"], matched["field"])
            assert all(word_ in text for word_ in matched["words"]), (matched, text)
    assert any(word in " ".join(explanation["reasons"]).lower() for item in items
               for explanation in [item["explanation"]])  # the query's word is cited


def test_a_customers_search_reads_their_own_history(recommender: Recommender, shop: TrainedShop) -> None:
    user, brand = _brand_fan(recommender, shop)
    word = _common_word(recommender)
    personal = search_payload(recommender, word, user, 10, explain=True)
    assert personal["personalised"] is True and personal["user_id"] == user
    customer_side = [c for item in personal["items"] for c in item["explanation"]["contributions"]
                     if c["side"] == "customer"]
    assert customer_side and any(abs(c["contribution"]) > 0 for c in customer_side)
    with recommender.connection() as con:
        their_brands = {r[0] for r in con.execute(
            f"SELECT DISTINCT i.{s.BRAND} FROM {s.EVENTS} e JOIN {s.ITEMS} i USING ({s.ITEM_ID}) "
            f"WHERE e.{s.USER_ID} = ? AND i.{s.BRAND} IS NOT NULL", [user]).fetchall()}
    for item in personal["items"]:  # a brand a reason says they chose is one of theirs
        for reason in item["explanation"]["reasons"]:
            named = re.search(r"the customer has chosen (.+?) (?:once|twice|\d+ times) before", reason)
            if named:
                assert named.group(1) in their_brands, (reason, their_brands)
    for item in personal["items"]:
        total = item["explanation"]["base_value"] + sum(c["contribution"]
                                                        for c in item["explanation"]["contributions"])
        assert total == pytest.approx(item["score"], abs=1e-6)


def test_why_a_above_b_for_two_results(recommender: Recommender) -> None:
    word = _common_word(recommender)
    items = search_payload(recommender, word, None, 10)["items"]
    first, fifth = items[0]["item_id"], items[4]["item_id"]
    comparison = compare_search(recommender, word, None, fifth, first)
    assert comparison.a.item_id == first and comparison.a.rank < comparison.b.rank  # told best first
    assert comparison.summary.startswith(f"“{comparison.a.title}” is #1")
    gap = comparison.a.score - comparison.b.score
    assert sum(comparison.sides.values()) == pytest.approx(gap, abs=1e-6)
    with pytest.raises(RecsightError):
        compare_search(recommender, word, None, first, first)
    (below,) = explain_search(recommender, word, None, [items[-1]["item_id"]])
    assert below.rank == len(items)


def test_a_query_with_nothing_to_search_finds_nothing(recommender: Recommender) -> None:
    assert search_payload(recommender, "\x1f\x1e", None, 10)["items"] == []
    assert search_payload(recommender, "🙂🙂", None, 5)["items"]  # by meaning: still results


def test_an_item_from_the_live_intake_is_findable_at_once(shop: TrainedShop, recommender: Recommender) -> None:
    assert append_items(shop.db, [{"item_id": "LIVE-KAYAK-1", "title": "Zephyrine Inflatable Kayak Two Seater",
                                   "category": "Sports > Water > Kayaks", "brand": "Zephyrine"}]).accepted == 1
    with recommender.connection() as con:
        last = con.execute(f"SELECT max({s.TS}) FROM {s.EVENTS}").fetchone()[0]
    raw = shop.raw_ids[5]
    assert append_events(shop.db, [{"event_id": "kayak-view-1", "user_id": raw, "item_id": "LIVE-KAYAK-1",
                                     "event_type": s.VIEW, "ts": (last + timedelta(minutes=1)).isoformat()}],
                         TEST_SECRET).accepted == 1
    recommender.catch_up()
    items = search_payload(recommender, "zephyrine kayak", None, 5, explain=True)["items"]
    assert items[0]["item_id"] == "LIVE-KAYAK-1"
    assert "Zephyrine" in " ".join(items[0]["explanation"]["reasons"])
