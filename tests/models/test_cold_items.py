"""Items first seen through the intake are scored from their content and live counts until the
next training (cold items), and the explanation says so (issue 14, item 3).

On a copy of the session's trained shop, an item is added to the catalogue through the intake
(``POST /api/v1/items``) with the category and brand of a customer's last item, and other
customers view it (``POST /api/v1/events``). An already loaded :class:`Recommender`, after it
catches up: the item has an item-feature row with the live counts, it is in the customer's
candidate pool through the attribute source and ranked, and its
explanation starts by saying it is new. Items of the model are left as trained. The rows follow
later catalogue rows and events, and a recommender loaded afterwards builds the same ones.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics import schema as s
from explain.explainer import explain_with_reasons
from models.serving import Recommendation, Recommender
from tests.conftest import TEST_SECRET
from tests.shop import TrainedShop
from workflows.intake import append_events, append_items

COLD = "ITEM-COLD-NEW"


def _last_item(rec: Recommender, user_id: str) -> tuple[str, str, str]:
    """The customer's newest item with both a category and a brand: (item_id, category, brand)."""
    with rec.connection() as con:
        return con.execute(
            f"""SELECT e.{s.ITEM_ID}, i.{s.CATEGORY}, i.{s.BRAND} FROM {s.EVENTS} e JOIN {s.ITEMS} i USING ({s.ITEM_ID})
                WHERE e.{s.USER_ID} = ? AND i.{s.CATEGORY} IS NOT NULL AND i.{s.BRAND} IS NOT NULL
                ORDER BY e.{s.TS} DESC, e.{s.ITEM_ID} DESC LIMIT 1""", [user_id]).fetchone()


def _rows(rec: Recommender, table: str, item_id: str) -> list[tuple]:
    with rec.connection() as con:
        return con.execute(f"SELECT * FROM {table} WHERE {s.ITEM_ID} = ?", [item_id]).fetchall()


def _item_row(rec: Recommender, item_id: str) -> dict:
    with rec.connection() as con:
        frame = con.execute(f"SELECT * FROM {rec.tables.items} WHERE {s.ITEM_ID} = ?", [item_id]).df()
    assert len(frame) == 1, f"{item_id} should have exactly one item-feature row"
    return frame.iloc[0].to_dict()


def _only(result: Recommendation, item_id: str) -> Recommendation:
    """The recommendation cut to one item (explaining the whole long list would be slow)."""
    index = next(n for n, item in enumerate(result.items) if item.item_id == item_id)
    return Recommendation(result.user_id, result.cold_start, [result.items[index]],
                          result.features.iloc[[index]].reset_index(drop=True))


def test_an_item_first_seen_live_is_scored_from_content_and_live_counts(
        shop: TrainedShop, recommender: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    assert recommender.top is not None
    raws = sorted(r for r in shop.raw_ids if shop.pseudonym(r) in recommender.top.spans)
    raw, viewers = raws[0], raws[1:4]
    user = shop.pseudonym(raw)
    known, category, brand = _last_item(recommender, user)
    attributes = recommender.tables.index.attributes
    known_item, known_attributes = _item_row(recommender, known), _rows(recommender, attributes, known)
    assert recommender.cold_items == frozenset()
    assert not _rows(recommender, recommender.tables.items, COLD)

    with recommender.connection() as con:
        start = con.execute(f"SELECT max({s.TS}) FROM {s.EVENTS}").fetchone()[0]
    item = {"item_id": COLD, "title": "A new arrival", "category": category, "brand": brand, "price": 20.0}
    assert append_items(shop.db, [item]).accepted == 1
    steps = [(v, COLD) for v in viewers] + [(viewers[0], COLD), (viewers[0], known)]  # a repeat, a model item
    views = [{"event_id": f"cold-{n}", "user_id": viewer, "item_id": item_id, "event_type": s.VIEW,
              "ts": (start + timedelta(minutes=n + 1)).isoformat()} for n, (viewer, item_id) in enumerate(steps)]
    assert append_events(shop.db, views, TEST_SECRET).accepted == len(views)

    recommender.catch_up()
    assert recommender.cold_items == frozenset({COLD})
    row = _item_row(recommender, COLD)
    assert row["item_users"] == len(viewers)  # distinct live viewers (one viewed twice)
    assert (row[s.CATEGORY], row[s.BRAND]) == (category, brand)
    assert row["item_events_7d"] == len(viewers) + 1 and row["item_recent_users"] == 0
    assert row["item_age_days"] > 0
    assert _rows(recommender, attributes, COLD) == [(COLD, category, brand, 1, 1)]  # the first slot of each
    # the model's item is left as trained, though it has a live view too
    assert _item_row(recommender, known) == known_item
    assert _rows(recommender, attributes, known) == known_attributes

    recommender.recommend_live(user, 10)
    with recommender.connection() as con:  # the candidate pool before the cap (serving prefix "serve")
        sources = con.execute("SELECT brand_source, category_source FROM serve_cand_pool "
                              f"WHERE {s.USER_ID} = ? AND {s.ITEM_ID} = ?", [user, COLD]).fetchall()
    assert sources == [(True, True)]  # an attribute candidate through its brand and its category

    # in the first attribute slot it passes the candidate cap: the ranker scores it from its content
    result = recommender.recommend_live(user, recommender.tables.index.config.n_candidates)
    assert COLD in [i.item_id for i in result.items]
    features = result.features.set_index(s.ITEM_ID).loc[COLD]
    assert features["item_users"] == len(viewers)

    [(explanation, reasons)] = explain_with_reasons(recommender, _only(result, COLD))
    assert explanation.reasons[0].startswith("New in the catalogue")
    assert f"{len(viewers)} customers" in explanation.reasons[0]
    assert reasons[0].claims["cold_item"] and reasons[0].claims["item_users"] == len(viewers)
    others = [i.item_id for i in result.items if i.item_id != COLD][:1]
    for _, other_reasons in explain_with_reasons(recommender, _only(result, others[0])):
        assert not any(r.claims.get("cold_item") for r in other_reasons)


def test_cold_rows_follow_live_counts_and_a_reload(shop: TrainedShop, recommender: Recommender) -> None:
    raws = sorted(shop.raw_ids)[:3]
    with recommender.connection() as con:
        start = con.execute(f"SELECT max({s.TS}) FROM {s.EVENTS}").fetchone()[0]

    def view(n: int, raw: str) -> dict:
        return {"event_id": f"only-{n}", "user_id": raw, "item_id": COLD, "event_type": s.VIEW,
                "ts": (start + timedelta(minutes=n + 1)).isoformat()}

    assert append_events(shop.db, [view(0, raws[0])], TEST_SECRET).accepted == 1  # named by an event only
    recommender.catch_up()
    assert recommender.cold_items == frozenset({COLD}) and _item_row(recommender, COLD)["item_users"] == 1
    assert len(_rows(recommender, recommender.tables.items, COLD)) == 1
    assert _rows(recommender, recommender.tables.index.attributes, COLD) == [(COLD, None, None, None, None)]

    assert append_items(shop.db, [{"item_id": COLD, "category": "Cold > Later", "brand": "Latebrand"}]).accepted == 1
    recommender.catch_up()  # a catalogue row that came after its first event: the rows follow it
    assert _rows(recommender, recommender.tables.index.attributes, COLD) == [
        (COLD, "Cold > Later", "Latebrand", 1, 1)]
    assert _item_row(recommender, COLD)[s.BRAND] == "Latebrand"

    assert append_events(shop.db, [view(1, raws[1]), view(2, raws[2])], TEST_SECRET).accepted == 2
    recommender.catch_up()
    assert _item_row(recommender, COLD)["item_users"] == 3  # the earlier row replaced
    reloaded = Recommender.load(shop.db, shop.models)  # live events there at load: the same rows
    try:
        assert reloaded.cold_items == frozenset({COLD})
        assert _rows(reloaded, reloaded.tables.items, COLD) == _rows(recommender, recommender.tables.items, COLD)
    finally:
        reloaded.close()
