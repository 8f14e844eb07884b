"""The customer lookup's data: the profile card (``analytics.profile_card``), the timeline and its
figure (``dashboard.customer_view``), and the shop cursor they read through (``workflows.lookup``).
Finding a customer is tests/analytics/test_customers.py.

The shop is the twelve-event fixture of tests/analytics/test_shop_overview.py with its customers
pseudonymised, written to a file and profiled by the real ``refresh_profiles``. Worked out by
hand for u1 (relevance weights view 1, click 2, cart 3, purchase 4):

    events 5: view 2, click 1, cart 1, purchase 1 (qty 2 of i1 at the catalogue price 10 -> 20)
    categories: Pans 10/11, Cream 1/11; brands Acme 10/11, Glow 1/11
    viewed prices 10 and 5 -> p25 6.25, median 7.5, p75 8.75; bought 10 -> 10, 10, 10
    RFM among buyers u1 (01-01), u2 (01-02), u3 (01-09): u1 is the least recent (R 1) and all
    bought on one day (F 1) -> hibernating
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from analytics import schema
from analytics.privacy import pseudonymise
from analytics.profile_build import refresh_profiles
from analytics.profile_card import ProfileCard, profile_card
from dashboard import customer_view as cv
from errors import RecsightError
from tests.analytics.test_shop_overview import EVENTS, ITEMS
from tests.conftest import TEST_SECRET
from workflows.lookup import shop_cursor

U = {raw: pseudonymise(raw, TEST_SECRET) for raw in ("u1", "u2", "u3", "u4", "u5")}
COLD = U["u5"]  # in the users table, without events


def _write_shop(path: Path, events=EVENTS, profiles: bool = True) -> Path:
    with duckdb.connect(str(path)) as con:
        schema.create_tables(con)
        con.executemany(f"INSERT INTO {schema.ITEMS} VALUES (?, ?, ?, ?, ?)", ITEMS)
        con.executemany(
            f"INSERT INTO {schema.EVENTS} ({schema.USER_ID}, {schema.ITEM_ID}, {schema.EVENT_TYPE}, {schema.TS}, "
            f"{schema.QUANTITY}, {schema.PRICE}) VALUES (?, ?, ?, ?::TIMESTAMP, ?, ?)",
            [(U[u], *rest) for u, *rest in events])
        con.executemany(f"INSERT INTO {schema.USERS} ({schema.USER_ID}) VALUES (?)", [(p,) for p in U.values()])
    if profiles:
        refresh_profiles(path)
    return path


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_shop(tmp_path_factory.mktemp("customer_view") / "shop.duckdb")


@pytest.fixture
def con(shop: Path):
    with shop_cursor(shop) as cursor:
        yield cursor


# --------------------------------------------------------------------------- profile card


def test_profile_card_of_a_buyer(con):
    card = profile_card(con, U["u1"])
    assert card.has_profile and card.user_id == U["u1"]
    assert (card.events, card.segment, card.frequency) == (5, "hibernating", 1)
    assert card.counts == {schema.VIEW: 2, schema.CLICK: 1, schema.CART: 1, schema.PURCHASE: 1}
    assert card.monetary == pytest.approx(20.0)
    assert card.top_categories == [("Home > Kitchen > Pans", pytest.approx(10 / 11)),
                                   ("Beauty > Skin > Cream", pytest.approx(1 / 11))]
    assert card.top_brands == [("Acme", pytest.approx(10 / 11)), ("Glow", pytest.approx(1 / 11))]
    assert card.view_prices == pytest.approx((6.25, 7.5, 8.75))
    assert card.buy_prices == pytest.approx((10.0, 10.0, 10.0))
    last_event = datetime(2024, 1, 10, 23, 59)
    assert card.recency_days == pytest.approx((last_event - datetime(2024, 1, 1, 9, 3)).total_seconds() / 86400,
                                              abs=1e-6)
    assert card.rfm[:2] == (1, 1)
    assert card.first_active == datetime(2024, 1, 1, 9, 0) and card.last_active == datetime(2024, 1, 5, 12, 0)



def test_the_cards_json_is_what_the_api_and_the_reports_show(con):
    data = profile_card(con, U["u1"]).to_dict()
    assert list(data) == ["user_id", "segment", "n_events", "n_purchases", "recency_days", "frequency", "monetary",
                          "favourite_categories", "favourite_brands", "price_band", "time_based", "last_active"]
    assert (data["user_id"], data["segment"], data["n_events"], data["n_purchases"]) == (U["u1"], "hibernating", 5, 1)
    assert data["favourite_brands"][0] == {"brand": "Acme", "share": pytest.approx(10 / 11)}
    assert data["favourite_categories"][1] == {"category": "Beauty > Skin > Cream", "share": pytest.approx(1 / 11)}
    assert data["price_band"] == {"basis": "bought", "p25": 10.0, "median": 10.0, "p75": 10.0}
    assert data["last_active"] == datetime(2024, 1, 5, 12, 0) and data["frequency"] == 1 and data["time_based"]
    assert profile_card(con, U["u4"]).to_dict()["price_band"] == {"basis": "viewed", "p25": 10.0, "median": 10.0,
                                                                  "p75": 10.0}
    order_only = profile_card(con, U["u1"], time_based=False).to_dict()
    assert (order_only["recency_days"], order_only["frequency"], order_only["last_active"]) == (None, None, None)
    assert order_only["monetary"] == pytest.approx(20.0) and not order_only["time_based"]
    assert json.loads(json.dumps(profile_card(con, COLD).to_dict())) == {
        "user_id": COLD, "segment": None, "n_events": 0, "n_purchases": 0, "recency_days": None, "frequency": None,
        "monetary": None, "favourite_categories": [], "favourite_brands": [], "price_band": None, "time_based": True,
        "last_active": None}


def test_profile_card_of_a_browser_has_no_purchase_figures(con):
    card = profile_card(con, U["u4"])
    assert (card.segment, card.events, card.recency_days, card.buy_prices) == ("browsers", 1, None, None)
    assert card.counts == {schema.VIEW: 1}


def test_customer_without_a_profile_gets_an_empty_card(con, tmp_path):
    assert profile_card(con, COLD) == ProfileCard(COLD, has_profile=False)
    bare = _write_shop(tmp_path / "bare.duckdb", profiles=False)
    with shop_cursor(bare) as cursor:
        assert not profile_card(cursor, U["u1"]).has_profile


# --------------------------------------------------------------------------- timeline


def test_timeline_lists_the_latest_events_oldest_first(con):
    frame, total = cv.timeline(con, U["u1"])
    assert total == 5
    assert list(frame[schema.EVENT_TYPE]) == [schema.VIEW, schema.CLICK, schema.CART, schema.PURCHASE, schema.VIEW]
    assert list(frame[schema.TITLE]) == ["Pan"] * 4 + ["Cream"]
    assert list(frame[schema.PRICE]) == [10.0] * 4 + [5.0]  # the catalogue price where the event has none
    latest, total = cv.timeline(con, U["u1"], limit=2)
    assert total == 5 and list(latest[schema.TS]) == [datetime(2024, 1, 1, 9, 3), datetime(2024, 1, 5, 12, 0)]
    assert cv.timeline(con, COLD)[1] == 0


def test_timeline_figure_draws_one_lane_per_event_type(con):
    frame, total = cv.timeline(con, U["u1"])
    figure = cv.timeline_figure(frame, total)
    assert [trace.name for trace in figure.data] == ["Viewed", "Clicked", "Added to cart", "Bought"]
    assert len(figure.data[0].x) == 2 and figure.data[0].customdata[1][0] == "Cream"
    assert list(figure.layout.yaxis.categoryarray) == ["Viewed", "Clicked", "Added to cart", "Bought"]
    assert not figure.layout.annotations  # everything is drawn
    latest, total = cv.timeline(con, U["u1"], limit=2)
    assert "latest 2 of 5 events" in cv.timeline_figure(latest, total).layout.annotations[0].text
    empty = cv.timeline_figure(cv.timeline(con, COLD)[0], 0)
    assert not empty.data and "No behaviour" in empty.layout.annotations[0].text


def test_hostile_titles_are_shown_as_text_in_the_hover(con):
    frame, total = cv.timeline(con, U["u1"])
    frame[schema.TITLE] = "<a href='x'>free</a>"
    figure = cv.timeline_figure(frame, total)
    assert "&lt;a href" in figure.data[0].customdata[0][0]


# --------------------------------------------------------------------------- reading the shop


def test_shop_cursor_sees_a_replaced_file_and_reports_a_missing_one(tmp_path):
    path = _write_shop(tmp_path / "shop.duckdb")
    with shop_cursor(path) as cursor:
        assert cv.timeline(cursor, U["u1"])[1] == 5
    fresh = _write_shop(tmp_path / "next.duckdb", events=EVENTS[:2])
    os.replace(fresh, path)  # what an ingest does
    with shop_cursor(path) as cursor:
        assert cv.timeline(cursor, U["u1"])[1] == 2
    with pytest.raises(RecsightError, match="does not exist"), shop_cursor(tmp_path / "missing.duckdb"):
        pass


def test_a_failing_query_is_one_clear_line(shop):
    with pytest.raises(RecsightError, match="could not be read"), shop_cursor(shop) as cursor:
        cursor.execute("SELECT no_such_column FROM events")
