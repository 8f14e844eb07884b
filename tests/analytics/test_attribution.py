"""Last-touch attribution: a click, cart or purchase of a shown item by the customer it was shown
to, within the window after the impression, goes to the latest such impression and to no other;
revenue is price x quantity of the attributed purchases."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from analytics.attribution import (
    ATTRIBUTED,
    PerformanceFilter,
    attribute,
    customer_outcomes,
    figures,
)
from analytics.impressions import ImpressionStore, attach_shown
from analytics.live_read import open_live
from analytics.live_store import LiveStore
from errors import RecsightError
from tests.analytics.ingest_support import pid, secret

T0 = datetime(2024, 3, 1, 12, 0, 0)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def shown(event_id: str, minutes: float, items: list[str], user: str = "alice", **labels: str | None) -> dict:
    return {"event_id": event_id, "user_id": user, "ts": at(minutes), "list": labels.pop("list", "home"),
            "items": items, "model_version": labels.pop("model_version", "v1"), **labels}


def did(event_id: str, kind: str, minutes: float, item: str = "i1", user: str = "alice", **more: object) -> dict:
    return {"event_id": event_id, "user_id": user, "item_id": item, "event_type": kind, "ts": at(minutes), **more}


def store(folder: Path, impressions: list[dict], events: list[dict], items: list[dict] = ()) -> Path:
    db = folder / "shop.duckdb"
    live = LiveStore(db)
    if items:
        assert not live.append_items(list(items)).rejected
    if events:
        assert not live.append_events(events, secret()).rejected
    assert not ImpressionStore(db).append(impressions, secret()).rejected
    return db


def outcomes(db: Path, window: timedelta = timedelta(hours=24)) -> dict[tuple[str, int], tuple]:
    """(impression, position) -> (clicked, carted, purchased, revenue)."""
    con, _ = open_live(db)
    try:
        attach_shown(con, db)
        attribute(con, window=window)
        rows = con.execute(f"SELECT event_id, position, clicked, carted, purchased, revenue FROM {ATTRIBUTED}")
        return {(r[0], r[1]): tuple(r[2:]) for r in rows.fetchall()}
    finally:
        con.close()


NOTHING = (False, False, False, 0.0)


def test_a_click_inside_the_window_is_attributed_and_one_outside_is_not(tmp_path: Path) -> None:
    db = store(tmp_path, [shown("s1", 0, ["i1", "i2", "i3"])],
               [did("e1", "click", 30, "i2"),             # inside: 30 minutes after
                did("e2", "click", 25 * 60, "i3"),        # outside: 25 hours after
                did("e3", "click", -5, "i1"),             # before the impression
                did("e4", "click", 10, "i1", user="bob")])  # another customer
    assert outcomes(db) == {("s1", 1): NOTHING, ("s1", 2): (True, False, False, 0.0), ("s1", 3): NOTHING}


def test_the_window_is_a_parameter(tmp_path: Path) -> None:
    db = store(tmp_path, [shown("s1", 0, ["i1"])], [did("e1", "cart", 120)])
    assert outcomes(db, timedelta(hours=1))[("s1", 1)] == NOTHING
    assert outcomes(db, timedelta(hours=3))[("s1", 1)] == (False, True, False, 0.0)
    with pytest.raises(RecsightError, match="window"):
        outcomes(db, timedelta(days=-1))


def test_last_touch_between_two_impressions_of_the_item(tmp_path: Path) -> None:
    db = store(tmp_path, [shown("early", 0, ["i1", "i2"]), shown("late", 60, ["i9", "i1"], list="product")],
               [did("e1", "click", 30),    # after the early list only
                did("e2", "cart", 90),     # after both: the later one
                did("e3", "click", 100)])  # after both: the later one (the early one keeps its own click)
    result = outcomes(db)
    assert result[("early", 1)] == (True, False, False, 0.0)
    assert result[("late", 2)] == (True, True, False, 0.0)
    assert result[("early", 2)] == result[("late", 1)] == NOTHING


def test_an_older_impression_gets_nothing_that_a_newer_one_of_the_item_precedes(tmp_path: Path) -> None:
    """Both impressions are inside the window of the purchase: the newer one takes it all."""
    db = store(tmp_path, [shown("old", 0, ["i1"]), shown("new", 23 * 60, ["i1"])], [did("e1", "purchase", 23 * 60 + 5,
                                                                                          price=5.0)])
    result = outcomes(db)
    assert result[("old", 1)] == NOTHING and result[("new", 1)] == (False, False, True, 5.0)


def test_revenue_is_price_times_quantity_with_the_catalogue_price_as_fallback(tmp_path: Path) -> None:
    items = [{"item_id": "i1", "title": "Tent", "category": "Outdoor", "price": 7.5},
             {"item_id": "i2", "title": "Stove", "category": "Outdoor", "price": 30.0}]
    db = store(tmp_path, [shown("s1", 0, ["i1", "i2", "i3"])],
               [did("e1", "purchase", 10, "i1"),                            # catalogue price, one piece
                did("e2", "purchase", 20, "i1", quantity=2),                # again: 2 x 7.5
                did("e3", "purchase", 10, "i2", price=25.0, quantity=3),    # the event's price wins
                did("e4", "purchase", 10, "i3")],                           # no price anywhere
               items)
    result = outcomes(db)
    assert result[("s1", 1)] == (False, False, True, 7.5 + 15.0)
    assert result[("s1", 2)] == (False, False, True, 75.0)
    assert result[("s1", 3)] == (False, False, True, 0.0)


def test_figures_count_each_impression_row_once_per_event_type(tmp_path: Path) -> None:
    db = store(tmp_path, [shown("a1", 0, ["i1", "i2"]), shown("b1", 0, ["i1", "i2"], user="bob", model_version="v2",
                                                                experiment="x", variant="B")],
               [did("e1", "click", 1), did("e2", "click", 2), did("e3", "click", 3),  # three clicks, one row
                did("e4", "purchase", 4, price=10.0, quantity=1),
                did("e5", "click", 5, "i2", user="bob")])
    con, _ = open_live(db)
    try:
        attach_shown(con, db)
        attribute(con)
        total = figures(con, ()).iloc[0]
        assert (total["lists"], total["impressions"], total["customers"], total["clicks"], total["purchases"],
                total["revenue"], total["clickers"], total["buyers"]) == (2, 4, 2, 2, 1, 10.0, 2, 1)
        by_position = figures(con, ("position",)).set_index("position")
        assert by_position["clicks"].to_dict() == {1: 1, 2: 1}
        only_v2 = figures(con, ("model_version",), PerformanceFilter(model_version="v2"))
        assert only_v2[["model_version", "impressions", "clicks"]].values.tolist() == [["v2", 2, 1]]
        per_customer = customer_outcomes(con, experiment="x")
        assert per_customer[["user_id", "variant", "impressions", "clicks"]].values.tolist() == [
            [pid("bob"), "B", 2, 1]]
        assert figures(con, (), PerformanceFilter(start=(T0 + timedelta(days=1)).date())).iloc[0]["impressions"] == 0
    finally:
        con.close()
