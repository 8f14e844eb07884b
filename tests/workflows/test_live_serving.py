"""A customer's new events reach their list and its explanation on the next request (issue 14, item 3).

On a copy of the session's trained shop, events appended through the intake (the same use case as
``POST /api/v1/events``) are seen by an already loaded :class:`Recommender`, without a reload: the
customer who acted is ranked live with the fresh history (profile, candidates and attention
window), the explanation's history holds the new events, and every other customer is still
answered from the lists precomputed at training time. The events also reach co-visitation at
once: the next customer ranked live gets candidates through the links they made (their equality
with a rebuild is tests/models/test_live_covis.py's).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from analytics import schema as s
from explain.explainer import explain_items
from models.serving import Recommender
from tests.conftest import TEST_SECRET
from tests.shop import TrainedShop, untouched_category
from workflows.intake import append_events


def _last_event(rec: Recommender) -> datetime:
    with rec.connection() as con:
        return con.execute(f"SELECT max({s.TS}) FROM {s.EVENTS}").fetchone()[0]


def _events(raw_id: str, items: list[str], start: datetime, tag: str) -> list[dict]:
    """Views of every item, then a cart of the first, a minute apart."""
    steps = [(item, s.VIEW) for item in items] + [(items[0], s.CART)]
    return [{"event_id": f"{tag}-{n}", "user_id": raw_id, "item_id": item, "event_type": kind,
             "ts": (start + timedelta(minutes=n + 1)).isoformat()} for n, (item, kind) in enumerate(steps)]


def test_new_events_change_that_customers_list_and_explanation_only(shop: TrainedShop, recommender: Recommender,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (raw, user), (_, other) = shop.listed_customers(recommender)[:2]
    category, items = untouched_category(recommender, user)
    before, other_before = recommender.recommend(user, 10), recommender.recommend(other, 10)
    assert recommender.live is not None and not recommender.live.changed(user)

    new = _events(raw, items, _last_event(recommender), "live-test")
    assert append_events(shop.db, new, TEST_SECRET).accepted == len(new)

    after = recommender.recommend(user, 10)  # the same loaded recommender: no reload
    assert recommender.live.changed(user)
    assert [i.item_id for i in after.items] != [i.item_id for i in before.items]
    assert not set(items) & {i.item_id for i in after.items}  # touched items are never candidates again
    assert after.features["user_events"].iloc[0] == before.features["user_events"].iloc[0] + len(new)
    assert after.features["user_days_inactive"].iloc[0] < before.features["user_days_inactive"].iloc[0]
    with recommender.connection() as con:
        categories = {r[0] for r in con.execute(
            f"SELECT {s.CATEGORY} FROM {s.ITEMS} WHERE {s.ITEM_ID} IN (SELECT unnest(?::VARCHAR[]))",
            [[i.item_id for i in after.items]]).fetchall()}
    assert category in categories  # the interest just shown reached the list

    explained = explain_items(recommender, after)
    assert [e.item_id for e in explained] == [i.item_id for i in after.items]
    new_times = {datetime.fromisoformat(e["ts"]) for e in new}
    for explanation in explained:
        assert new_times <= {h.ts for h in explanation.history}  # the attention window holds the new events

    def no_live_path(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged customer must be served from the precomputed lists")

    monkeypatch.setattr(recommender, "_rank", no_live_path)
    other_after = recommender.recommend(other, 10)
    assert other_after.items == other_before.items
    assert not recommender.live.changed(other)


def test_items_and_customers_first_seen_through_the_intake_do_not_break_serving(
        shop: TrainedShop, recommender: Recommender) -> None:
    (raw, user), _ = shop.listed_customers(recommender)[:2]
    _, items = untouched_category(recommender, user)
    start = _last_event(recommender)
    batch = _events(raw, ["ITEM-FIRST-SEEN-LIVE", *items[:2]], start, "cold-item")
    batch += _events("CUSTOMER-FIRST-SEEN-LIVE", [items[0], "ITEM-FIRST-SEEN-LIVE"], start, "cold-customer")
    assert append_events(shop.db, batch, TEST_SECRET).accepted == len(batch)

    for who in (user, shop.pseudonym("CUSTOMER-FIRST-SEEN-LIVE")):
        result = recommender.recommend(who, 10)
        assert len(result.items) == 10 and not result.cold_start
        explained = explain_items(recommender, result)
        assert "ITEM-FIRST-SEEN-LIVE" in {h.item_id for h in explained[0].history}


def test_links_made_by_live_events_give_candidates_to_the_next_customer_ranked(
        shop: TrainedShop, recommender: Recommender) -> None:
    (raw, user), (raw_other, other) = shop.listed_customers(recommender)[:2]
    last_item = _last_item(recommender, other)
    start = _last_event(recommender)
    assert "ITEM-LINKED-LIVE" not in _candidates(recommender, other)
    # the first customer goes from the other's last item to an item the model never saw
    batch = [{"event_id": f"link-{n}", "user_id": raw, "item_id": item, "event_type": s.VIEW,
              "ts": (start + timedelta(minutes=n + 1)).isoformat()}
             for n, item in enumerate([last_item, "ITEM-LINKED-LIVE"])]
    batch.append({"event_id": "link-other", "user_id": raw_other, "item_id": last_item, "event_type": s.VIEW,
                  "ts": (start + timedelta(minutes=5)).isoformat()})  # the other customer is changed too
    assert append_events(shop.db, batch, TEST_SECRET).accepted == len(batch)

    recommender.settle()  # the refresh, and the links brought up to date (they follow a quarter second later)
    links = recommender.covis_links().links(["next"], [last_item], ["ITEM-LINKED-LIVE"])
    assert [(v, src) for v, src, _ in links["ITEM-LINKED-LIVE"]] == [("next", last_item)]
    assert "ITEM-LINKED-LIVE" in _candidates(recommender, other)


def _last_item(rec: Recommender, user_id: str) -> str:
    with rec.connection() as con:
        return con.execute(f"SELECT {s.ITEM_ID} FROM {s.EVENTS} WHERE {s.USER_ID} = ? "
                           f"ORDER BY {s.TS} DESC, {s.ITEM_ID} DESC LIMIT 1", [user_id]).fetchone()[0]


def _candidates(rec: Recommender, user_id: str) -> set[str]:
    """The candidate set the live path ranks for the customer now (no cap: every co-visited item)."""
    rec.recommend_live(user_id, 10)
    with rec.connection() as con:
        return {r[0] for r in con.execute(f"SELECT {s.ITEM_ID} FROM serve_cand_covis").fetchall()}


def test_the_lookup_shows_a_changed_customers_live_card_and_timeline(shop: TrainedShop, recommender: Recommender,
                                                                     tmp_path: Path) -> None:
    """The lookup page reads the card, timeline and item details where the live events are: a
    customer who just acted shows them, counted in the card and first on the timeline."""
    from workflows import lookup, recommenders

    (raw, user), _ = shop.listed_customers(recommender)[:2]
    settings = shop.settings(tmp_path / "state")
    before = lookup.look_up(user, settings, lambda *_: None)
    _, items = untouched_category(recommender, user)
    new = _events(raw, items, _last_event(recommender), "lookup")
    assert append_events(shop.db, new, TEST_SECRET).accepted == len(new)
    try:
        after = lookup.look_up(user, settings, lambda *_: None)
    finally:
        recommenders.forget_all()
    assert after.card.events == before.card.events + len(new)
    assert after.total_events == before.total_events + len(new)
    assert after.timeline[s.ITEM_ID].iloc[-1] == new[-1]["item_id"]  # oldest first: the newest event last
    assert set(after.details) == {item.item_id for item in after.items}


def test_changed_customers_asking_at_once_are_ranked_in_one_pass_as_each_would_be_alone(
        shop: TrainedShop, recommender: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests that wait for the serving lock share one live pass (models.coalesce); each customer
    still gets the list, scores and feature rows of ranking them alone, their features as of
    their own newest event (one minute apart here)."""
    customers = shop.listed_customers(recommender)[4:8]
    start = _last_event(recommender)
    for n, (raw, user) in enumerate(customers):
        _, items = untouched_category(recommender, user)
        new = _events(raw, items[:2], start + timedelta(minutes=10 * n), f"together-{n}")
        assert append_events(shop.db, new, TEST_SECRET).accepted == len(new)
    recommender.catch_up()
    users = [user for _, user in customers]
    alone = {user: recommender.recommend_live(user, 10) for user in users}

    passes = []
    rank = recommender._rank
    monkeypatch.setattr(recommender, "_rank", lambda as_of, *a: passes.append(sorted(as_of)) or rank(as_of, *a))
    with ThreadPoolExecutor(len(users)) as pool:
        with recommender.connection():  # the lock is busy: the requests queue behind it
            futures = [pool.submit(recommender.recommend_live, user, 10) for user in users]
            deadline = time.monotonic() + 5
            while len(recommender._live_requests._waiting) < len(users) and time.monotonic() < deadline:
                time.sleep(0.01)
        together = {user: f.result(timeout=60) for user, f in zip(users, futures)}
    assert passes == [sorted(users)]
    for user in users:  # as of their own newest event, not the batch's newest (up to 30 minutes later)
        assert together[user].features["user_days_inactive"].iloc[0] < 1 / 86400
    for user in users:
        assert together[user].items == alone[user].items
        pd.testing.assert_frame_equal(together[user].features, alone[user].features)
