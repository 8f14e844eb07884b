"""What changed since, explained (issue 14, item 4): the moves of a customer's list after new events,
and the event behind each, read off the difference of two explanations.

On a copy of the session's trained shop, events are appended through the intake (as
``POST /api/v1/events`` does) for one customer; :func:`workflows.changes.list_since` must report
the items that entered with the new events behind them, nothing for a customer without new
events, and reasons that come from the explanations: the score change adds up to the SHAP and IG
differences, and the cited event follows the attributions (when IG is made to favour another new
event, the cited event follows it).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pandas as pd
import pytest

from analytics import schema as s
from explain import changes as explain_changes
from explain.changes import ENTERED, EventChange, NewEvent
from explain.explainer import explain_items
from models.serving import Recommender
from tests.conftest import TEST_SECRET
from tests.shop import TrainedShop, untouched_category
from workflows import changes
from workflows.intake import append_events

K = 10


def _append(shop: TrainedShop, rec: Recommender, raw: str, items: list[str], tag: str) -> datetime:
    """Views of ``items`` and a cart of the first, a minute apart after the shop's last event;
    returns the ``since`` just before them."""
    with rec.connection() as con:
        last = con.execute(f"SELECT max({s.TS}) FROM {s.EVENTS}").fetchone()[0]
    steps = [(item, s.VIEW) for item in items] + [(items[0], s.CART)]
    batch = [{"event_id": f"{tag}-{n}", "user_id": raw, "item_id": item, "event_type": kind,
              "ts": (last + timedelta(minutes=n + 1)).isoformat()} for n, (item, kind) in enumerate(steps)]
    assert append_events(shop.db, batch, TEST_SECRET).accepted == len(batch)
    return last + timedelta(seconds=30)


def _key(event: EventChange | NewEvent) -> tuple[str, str, datetime]:
    return event.item_id, event.event_type, event.ts


def test_new_events_bring_items_in_and_each_is_explained_by_the_explanation_difference(
        shop: TrainedShop, recommender: Recommender) -> None:
    (raw, user), _ = shop.listed_customers(recommender)[:2]
    before = [i.item_id for i in recommender.recommend(user, K).items]
    since = _append(shop, recommender, raw, untouched_category(recommender, user)[1], "changes")
    clock = since + timedelta(minutes=10)

    found = changes.list_since(recommender, user, since, K, clock=clock)
    result, moved = found.result, found.changes
    assert [i.item_id for i in result.items] == [i.item_id for i in recommender.recommend(user, K).items]
    assert len(moved.new_events) == 5 and all(e.ts >= since for e in moved.new_events)
    assert moved.entered and moved.left  # the list changed
    assert {m.item_id for m in moved.left} == set(before) - {i.item_id for i in result.items}
    assert {m.item_id for m in moved.entered} == {i.item_id for i in result.items} - set(before)
    new_keys = {_key(e) for e in moved.new_events}

    official = {e.item_id: e for e in explain_items(recommender, result)}  # the explainer every page uses
    for move in moved.entered:
        assert move.rank_now == official[move.item_id].rank and move.sentence.startswith(f"New at #{move.rank_now}")
        assert move.score_now == pytest.approx(official[move.item_id].score)
        if move.score_before is not None:  # additivity: SHAP (per group) + IG shares (per event) = score change
            total = sum(d.change for d in move.drivers) + sum(e.share_change for e in move.events)
            assert total == pytest.approx(move.score_change, abs=1e-6)
        if move.cause is None:
            continue
        assert _key(move.cause) in new_keys and move.cause.title in move.sentence
        # the cited event is the new event with the largest IG attribution in the official
        # explanation now (a new event had none before)
        attributions = {(h.item_id, h.event_type, h.ts): h.attribution for h in official[move.item_id].history
                        if (h.item_id, h.event_type, h.ts) in new_keys}
        assert _key(move.cause) == max(attributions, key=attributions.get)
    assert any(m.cause is not None for m in moved.entered), [m.sentence for m in moved.entered]
    for move in moved.left:
        assert move.sentence.startswith(f"Left the list (was #{move.rank_before}")
        if move.rank_now is None and move.item_id in {e.item_id for e in moved.new_events}:
            assert "already interacted" in move.sentence  # the candidate rule, said as such
    assert moved.to_dict()["entered"][0]["cause"] is None or moved.to_dict()["entered"][0]["cause"]["ts"].endswith("Z")


def test_the_cited_event_follows_the_integrated_gradients_attributions(
        shop: TrainedShop, recommender: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make IG favour the *oldest* new event by far: every rising item must then cite it. A reason
    chosen any other way (the latest event, the event on the item's category) would not follow."""
    (raw, user), _ = shop.listed_customers(recommender)[:2]
    since = _append(shop, recommender, raw, untouched_category(recommender, user)[1], "follow")
    favoured = since + timedelta(seconds=30)  # the first appended event (a view)
    real = explain_changes.attribute_items

    def favouring(model, histories, user_id, item_ids, *args, **kwargs):
        pairs = real(model, histories, user_id, item_ids, *args, **kwargs)
        row = int(histories.rows([user_id])[0])
        out = []
        for pair in pairs:
            times = [pd.Timestamp(histories.ts[row, c]).to_pydatetime() for c in pair.columns]
            hit = [j for j, ts in enumerate(times) if ts == favoured]
            if hit and len(pair.attributions):
                attributions = pair.attributions.copy()
                attributions[hit[0]] = 10 * (abs(attributions).max() + 1.0)
                pair = dataclasses.replace(pair, attributions=attributions)
            out.append(pair)
        return out

    monkeypatch.setattr(explain_changes, "attribute_items", favouring)
    moved = changes.list_since(recommender, user, since, K).changes
    rising = [m for m in moved.entered + moved.moved if m.rank_now is not None and
              (m.rank_before is None or m.rank_now < m.rank_before) and (m.score_change or 1.0) > 0]
    assert rising, [m.sentence for m in moved.entered + moved.moved]
    for move in rising:
        assert isinstance(move.cause, EventChange) and move.cause.ts == favoured, move.sentence
    assert "you viewed" in rising[0].sentence


def test_a_customer_without_new_events_has_no_changes_and_costs_no_second_ranking(
        shop: TrainedShop, recommender: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    (raw, user), (_, other) = shop.listed_customers(recommender)[:2]
    since = _append(shop, recommender, raw, untouched_category(recommender, user)[1], "other")

    def no_rescore(*args: object, **kwargs: object) -> None:
        raise AssertionError("a customer without new events must not be ranked twice")

    monkeypatch.setattr(recommender, "rescore", no_rescore)
    found = changes.list_since(recommender, other, since, K)
    assert not found.changes.any and found.changes.new_events == []
    assert found.result.items == recommender.recommend(other, K).items
    assert found.changes.to_dict()["entered"] == [] and found.changes.to_dict()["left"] == []


def test_the_list_before_since_is_the_list_that_was_served(shop: TrainedShop, recommender: Recommender) -> None:
    """rescore(before=since) reproduces the list served before the events arrived, scores included."""
    (raw, user), _ = shop.listed_customers(recommender)[:2]
    served = recommender.recommend(user, K)
    since = _append(shop, recommender, raw, untouched_category(recommender, user)[1], "before")
    again = recommender.rescore(user, K, before=since)
    assert [i.item_id for i in again.items] == [i.item_id for i in served.items]
    assert [i.score for i in again.items] == pytest.approx([i.score for i in served.items], abs=1e-9)


@pytest.mark.parametrize("text", ["yesterday", "2025-01-01", "2025-01-01T00:00:00", "2025-13-01T00:00:00Z",
                                  "2025-01-01T00:00:00+25:00", "9999-01-01T00:00:00Z", "2000-01-01T00:00:00Z",
                                  "2025-01-01T00:00:00.1234567Z"])
def test_since_is_refused_unless_a_recent_past_time_with_its_offset(text: str) -> None:
    with pytest.raises(changes.SinceRefused):
        changes.parse_since(text, clock=datetime(2025, 1, 3))


def test_since_is_read_as_utc() -> None:
    clock = datetime(2025, 1, 3, 12)
    assert changes.parse_since("2025-01-03T10:00:00Z", clock) == datetime(2025, 1, 3, 10)
    assert changes.parse_since("2025-01-03T12:30:00+02:00", clock) == datetime(2025, 1, 3, 10, 30)
    assert ENTERED == "entered"
