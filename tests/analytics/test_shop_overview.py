"""Shop-overview queries against values worked out by hand on a twelve-event shop.

The fixture (times in UTC, 2024-01-01 is a Monday):

    items  i1 Home > Kitchen > Pans    Acme  10.0
           i2 Home > Garden > Tools    Acme  20.0
           i3 Beauty > Skin > Cream    Glow   5.0
           i4 Beauty > Hair > Shampoo  NULL   NULL
           i5 Toys > Cars > Model      Zoom   7.0   (never seen in events)
    u1  01-01 view/click/cart i1, purchase i1 qty 2 (catalogue price 10 -> 20); 01-05 12:00 view i3
    u2  01-02 view i2, purchase i2 (event price 18, qty NULL -> 18); 01-08 return i2 (-18)
    u3  01-03 view i3, view i4; 01-09 purchase i3 qty 3 (5 each -> 15)
    u4  01-10 view i1
    segments (user_profiles written by hand): u1, u2 champions; u3 loyal; u4 browsers
"""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pandas as pd
import pytest

from analytics import profiles, schema
from analytics.profile_build import build_profiles
from dashboard import shop_overview as so
from errors import RecsightError

ITEMS = [
    ("i1", "Pan", "Home > Kitchen > Pans", "Acme", 10.0),
    ("i2", "Rake", "Home > Garden > Tools", "Acme", 20.0),
    ("i3", "Cream", "Beauty > Skin > Cream", "Glow", 5.0),
    ("i4", "Shampoo", "Beauty > Hair > Shampoo", None, None),
    ("i5", "Car", "Toys > Cars > Model", "Zoom", 7.0),
]
EVENTS = [  # user, item, type, ts, quantity, price
    ("u1", "i1", schema.VIEW, "2024-01-01 09:00", None, None),
    ("u1", "i1", schema.CLICK, "2024-01-01 09:01", None, None),
    ("u1", "i1", schema.CART, "2024-01-01 09:02", None, None),
    ("u1", "i1", schema.PURCHASE, "2024-01-01 09:03", 2, None),
    ("u1", "i3", schema.VIEW, "2024-01-05 12:00", None, None),
    ("u2", "i2", schema.VIEW, "2024-01-02 10:00", None, None),
    ("u2", "i2", schema.PURCHASE, "2024-01-02 10:05", None, 18.0),
    ("u2", "i2", schema.RETURN, "2024-01-08 08:00", 1, 18.0),
    ("u3", "i3", schema.VIEW, "2024-01-03 11:00", None, None),
    ("u3", "i4", schema.VIEW, "2024-01-03 11:05", None, None),
    ("u3", "i3", schema.PURCHASE, "2024-01-09 15:00", 3, None),
    ("u4", "i1", schema.VIEW, "2024-01-10 23:59", None, None),
]
SEGMENTS = {"u1": profiles.CHAMPIONS, "u2": profiles.CHAMPIONS, "u3": profiles.LOYAL, "u4": profiles.BROWSERS}


def _shop(with_profiles: bool = True) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    schema.create_tables(con)
    con.executemany(f"INSERT INTO {schema.ITEMS} VALUES (?, ?, ?, ?, ?)", ITEMS)
    con.executemany(
        f"INSERT INTO {schema.EVENTS} ({schema.USER_ID}, {schema.ITEM_ID}, {schema.EVENT_TYPE}, {schema.TS}, "
        f"{schema.QUANTITY}, {schema.PRICE}) VALUES (?, ?, ?, ?::TIMESTAMP, ?, ?)", EVENTS)
    if with_profiles:
        con.execute(f"CREATE TABLE {profiles.USER_PROFILES} ({schema.USER_ID} VARCHAR, {profiles.RFM_SEGMENT} VARCHAR)")
        con.executemany(f"INSERT INTO {profiles.USER_PROFILES} VALUES (?, ?)", list(SEGMENTS.items()))
    return con


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = _shop()
    yield connection
    connection.close()


FIRST_FIVE_DAYS = so.OverviewFilter(date(2024, 1, 1), date(2024, 1, 5))
CHAMPIONS = so.OverviewFilter(segment=profiles.CHAMPIONS)


def test_kpis_whole_shop(con):
    assert so.kpis(con, k=1) == {
        "users": 4, "buyers": 3, "items": 4, "catalogue_items": 5, "events": 12, "views": 6,
        "purchases": 3, "revenue": pytest.approx(35.0), "conversion": pytest.approx(0.5),
        "buyer_share": pytest.approx(0.75), "hidden": (),
    }


def test_kpis_date_range_includes_the_whole_end_day(con):
    got = so.kpis(con, FIRST_FIVE_DAYS, k=1)
    assert (got["events"], got["users"], got["views"], got["purchases"]) == (9, 3, 5, 2)
    assert got["revenue"] == pytest.approx(38.0)
    assert got["conversion"] == pytest.approx(0.4)
    assert so.kpis(con, so.OverviewFilter(date(2024, 1, 10), date(2024, 1, 10)), k=1)["events"] == 1


def test_kpis_segment_filter(con):
    got = so.kpis(con, CHAMPIONS, k=1)
    assert (got["events"], got["users"], got["buyers"]) == (8, 2, 2)
    assert got["revenue"] == pytest.approx(20.0)  # 20 + 18 - 18


def test_kpis_empty_range_has_no_rates(con):
    got = so.kpis(con, so.OverviewFilter(date(2023, 1, 1), date(2023, 1, 31)), k=1)
    assert got["events"] == 0 and got["revenue"] == 0.0
    assert got["conversion"] is None and got["buyer_share"] is None


def test_funnel_lists_every_stage(con):
    frame = so.funnel(con, k=1)
    assert frame.to_dict("list") == {
        "stage": [schema.VIEW, schema.CLICK, schema.CART, schema.PURCHASE],
        "events": [6, 1, 1, 3],
        "users": [4, 1, 1, 3],
    }
    late = so.funnel(con, so.OverviewFilter(date(2024, 1, 9), None), k=1)
    assert late["events"].tolist() == [1, 0, 0, 1]


def test_activity_daily_fills_quiet_days(con):
    frame = so.activity_over_time(con, freq="day", k=1)
    assert len(frame) == 10
    assert frame["period"].iloc[0] == pd.Timestamp("2024-01-01")
    assert frame["events"].tolist() == [4, 2, 2, 0, 1, 0, 0, 1, 1, 1]
    assert frame["revenue"].tolist() == pytest.approx([20, 18, 0, 0, 0, 0, 0, -18, 15, 0])
    assert frame["users"].tolist()[:3] == [1, 1, 1]


def test_activity_weekly_starts_on_monday(con):
    frame = so.activity_over_time(con, freq="week", k=1)
    assert frame["period"].tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08")]
    assert frame["events"].tolist() == [9, 3]
    assert frame["revenue"].tolist() == pytest.approx([38.0, -3.0])
    assert frame["purchases"].tolist() == [2, 1]


def test_activity_rejects_unknown_period(con):
    with pytest.raises(RecsightError, match="unknown period"):
        so.activity_over_time(con, freq="hour", k=1)


def test_top_level_categories(con):
    frame = so.top_categories(con, level="top", k=1)
    assert frame.to_dict("list") == {
        "category": ["Home", "Beauty"], "events": [8, 4], "purchases": [2, 1],
        "revenue": [20.0, 15.0], "users": [3, 2],
    }


def test_full_path_categories_and_min_users(con):
    frame = so.top_categories(con, level="full", k=1)
    assert frame["category"].tolist() == [
        "Home > Kitchen > Pans", "Beauty > Skin > Cream", "Home > Garden > Tools", "Beauty > Hair > Shampoo"]
    assert frame["events"].tolist() == [5, 3, 3, 1]
    kept = so.top_categories(con, level="full", k=2)
    assert kept["category"].tolist() == ["Home > Kitchen > Pans", "Beauty > Skin > Cream"]


def test_rankings_by_revenue_and_limit(con):
    assert so.top_categories(con, level="full", by="revenue", limit=1, k=1)["category"].tolist() == [
        "Home > Kitchen > Pans"]
    brands = so.top_brands(con, k=1)
    assert brands["brand"].tolist() == ["Acme", "Glow"]  # NULL brand (i4) left out
    assert brands["events"].tolist() == [8, 3]
    assert brands["users"].tolist() == [3, 2]
    assert so.top_brands(con, CHAMPIONS, k=1)["brand"].tolist() == ["Acme", "Glow"]
    with pytest.raises(RecsightError, match="limit"):
        so.top_brands(con, limit=0, k=1)
    with pytest.raises(RecsightError, match="ranking"):
        so.top_brands(con, by="users; DROP TABLE events", k=1)


def test_segment_breakdown_hides_small_groups(con):
    result = so.segment_breakdown(con, k=2)
    assert result.suppressed == 2  # loyal (1) and browsers (1)
    row = result.table.iloc[0]
    assert (row["segment"], row["customers"], row["active"], row["events"]) == (profiles.CHAMPIONS, 2, 2, 8)
    assert row["share"] == pytest.approx(1.0)  # of the customers shown: hidden sizes cannot be derived
    assert row["revenue"] == pytest.approx(20.0)


def test_segment_breakdown_masks_activity_of_too_few_active(con):
    # 2024-01-08..10: only u2 of the champions is active (the return), one person: masked.
    table = so.segment_breakdown(con, so.OverviewFilter(date(2024, 1, 8), date(2024, 1, 10)), k=2).table
    assert table["customers"].tolist() == [2]
    assert pd.isna(table["active"].iloc[0]) and pd.isna(table["revenue"].iloc[0])
    everyone = so.segment_breakdown(con, k=1).table
    assert everyone["segment"].tolist() == [profiles.CHAMPIONS, profiles.LOYAL, profiles.BROWSERS]
    assert everyone["customers"].sum() == 4


def test_segment_choices_respect_k(con):
    assert so.segment_choices(con, k=1) == [profiles.CHAMPIONS, profiles.LOYAL, profiles.BROWSERS]
    assert so.segment_choices(con, k=2) == [profiles.CHAMPIONS]


def test_resolve_filter_parses_and_checks(con):
    assert so.resolve_filter(con, "2024-01-01", "2024-01-05T00:00:00", None, k=2) == FIRST_FIVE_DAYS
    assert so.resolve_filter(con, None, "", "", k=2) == so.OverviewFilter()
    assert so.resolve_filter(con, None, None, profiles.CHAMPIONS, k=2) == CHAMPIONS
    with pytest.raises(RecsightError, match="after the end date"):
        so.resolve_filter(con, "2024-01-05", "2024-01-01", None, k=2)
    with pytest.raises(RecsightError, match="bad start date"):
        so.resolve_filter(con, "01/05/2024", None, None, k=2)
    with pytest.raises(RecsightError, match="fewer than 2 customers"):
        so.resolve_filter(con, None, None, profiles.LOYAL, k=2)
    with pytest.raises(RecsightError, match="unknown customer segment"):
        so.resolve_filter(con, None, None, "x' OR 1=1 --", k=2)


def test_resolve_filter_refuses_a_selection_of_fewer_than_k_customers(con):
    with pytest.raises(RecsightError, match="fewer than 2 customers are active"):
        so.resolve_filter(con, "2024-01-10", "2024-01-10", None, k=2)  # u4 alone
    assert so.resolve_filter(con, "2023-01-01", "2023-01-02", None, k=2).start == date(2023, 1, 1)  # empty is fine
    with pytest.raises(RecsightError, match="fewer than 5 customers are active"):
        so.resolve_filter(con, None, None, None, k=5)


def test_require_shop_names_the_missing_table():
    empty = duckdb.connect()
    with pytest.raises(RecsightError, match="no events table"):
        so.require_shop(empty)
    schema.create_tables(empty)
    so.require_shop(empty)


def test_without_profiles_segments_are_a_clear_error():
    con = _shop(with_profiles=False)
    assert not so.profiles_available(con)
    assert so.segment_choices(con, k=1) == []
    with pytest.raises(RecsightError, match="segments are not available"):
        so.segment_breakdown(con, k=1)
    with pytest.raises(RecsightError, match="segments are not available"):
        so.resolve_filter(con, None, None, profiles.CHAMPIONS, k=1)
    assert so.kpis(con, k=1)["events"] == 12  # everything else still works


def test_date_bounds(con):
    assert so.date_bounds(con) == (date(2024, 1, 1), date(2024, 1, 10))
    empty = duckdb.connect()
    schema.create_tables(empty)
    assert so.date_bounds(empty) is None
    assert so.activity_over_time(empty, k=1).empty


def test_breakdown_with_built_profiles_accounts_for_everyone():
    """With the real profile build, the visible and suppressed segments cover all customers."""
    con = _shop(with_profiles=False)
    build_profiles(con, as_of=datetime(2024, 1, 11))
    result = so.segment_breakdown(con, k=1)
    assert result.suppressed == 0
    assert result.table["customers"].sum() == 4
    assert set(result.table["segment"]) <= set(profiles.SEGMENTS)


# --------------------------------------------------------------------------- k per figure


def test_kpis_hide_what_fewer_than_k_customers_did():
    """01-01..01-05 has 3 active customers (u1, u2, u3) of whom 2 bought: with k=3 the selection
    shows, but its purchases, revenue and the rates built on them describe two people."""
    got = so.kpis(_shop(), FIRST_FIVE_DAYS, k=3)
    assert (got["users"], got["events"], got["views"], got["items"]) == (3, 9, 5, 4)
    assert got["hidden"] == ("buyer_share", "buyers", "conversion", "purchases", "revenue")
    assert all(got[name] is None for name in got["hidden"])
    assert "payers" not in got and "viewers" not in got  # the small counts themselves are not handed out


def test_funnel_hides_each_stage_of_fewer_than_k():
    frame = so.funnel(_shop(), k=2)  # click and cart: u1 alone
    assert frame["stage"].tolist() == list(so.FUNNEL_STAGES)
    assert frame["events"].tolist()[::3] == [6, 3] and frame["users"].tolist()[::3] == [4, 3]
    assert frame[["events", "users"]].iloc[1:3].isna().all().all()


def test_activity_hides_each_period_and_its_money_separately():
    con = _shop()
    daily = so.activity_over_time(con, freq="day", k=2)  # one customer a day: every active day hidden
    assert daily["events"].fillna(-1).tolist() == [-1, -1, -1, 0, -1, 0, 0, -1, -1, -1]
    weekly = so.activity_over_time(con, freq="week", k=2)
    assert weekly["events"].tolist() == [9, 3] and weekly["users"].tolist() == [3, 3]
    # week 2: u3 alone bought (purchases hidden); u2 returned and u3 bought (revenue of two: shown)
    assert weekly["purchases"].fillna(-1).tolist() == [2, -1]
    assert weekly["revenue"].tolist() == pytest.approx([38.0, -3.0])
    assert list(weekly.columns) == ["period", "events", "purchases", "revenue", "users"]


def test_rankings_hide_money_of_fewer_than_k_buyers_and_do_not_rank_by_it():
    con = _shop()
    by_events = so.top_categories(con, level="full", k=2)  # Pans and Cream: 2 customers, 1 buyer each
    assert by_events["category"].tolist() == ["Home > Kitchen > Pans", "Beauty > Skin > Cream"]
    assert by_events[["purchases", "revenue"]].isna().all().all()
    assert so.top_categories(con, level="full", by="revenue", k=2).empty
    brands = so.top_brands(con, by="revenue", k=2)  # Acme: u1 and u2 paid; Glow: u3 alone
    assert brands["brand"].tolist() == ["Acme"] and brands["revenue"].tolist() == pytest.approx([20.0])


def test_segment_breakdown_hides_revenue_of_fewer_than_k_payers():
    # 01-05..01-08: champions u1 (a view) and u2 (the return) active, only u2's money moved
    table = so.segment_breakdown(_shop(), so.OverviewFilter(date(2024, 1, 5), date(2024, 1, 8)), k=2).table
    row = table.iloc[0]
    assert (row["segment"], row["active"], row["events"]) == (profiles.CHAMPIONS, 2, 2)
    assert pd.isna(row["revenue"]) and "payers" not in table.columns
