"""Profile SQL against values computed by hand on a tiny shop, and the as_of (no-leakage) contract.

The fixture, as of 2024-03-01 00:00 (2024 is a leap year: February has 29 days):

items  i1 "Home > Kitchen > Pans" Acme 10.0 | i2 "Home > Garden" Bolt 20.0 | i3 "Toys > Puzzles" (no brand,
       no price) | i4 (no category) Acme 5.0 | i5 "Toys > Cars" Zed 3.0 (never seen) | i9 is not in the catalogue
alice  3 views, 1 cart, 2 purchases, 1 return, 1 rating before as_of; a view and a purchase after it
bob    2 views, 1 click, 1 favourite, 1 purchase (qty 3 of i4 at the catalogue price); a purchase exactly at as_of
carol  2 views of unpriced items and a return of i4 (bought elsewhere), never buys ("browsers")
dave   2 purchases of the unpriced i3 (monetary unknown)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import pytest

from analytics import profile_build
from analytics import profiles as P
from analytics import schema as S
from analytics.profile_build import build_profiles, refresh_profiles
from analytics.user_profiles import recency_days_sql, rfm_scores_sql, rfm_segment_sql
from errors import RecsightError

AS_OF = datetime(2024, 3, 1)

ITEMS = [
    ("i1", "Pan", "Home > Kitchen > Pans", "Acme", 10.0),
    ("i2", "Hose", "Home > Garden", "Bolt", 20.0),
    ("i3", "Puzzle", "Toys > Puzzles", None, None),
    ("i4", "Mystery", None, "Acme", 5.0),
    ("i5", "Car", "Toys > Cars", "Zed", 3.0),
]

# user, item, event type, ts, session, quantity, price, rating
EVENTS = [
    ("alice", "i1", S.VIEW, datetime(2024, 2, 1, 10, 0), "s1", None, None, None),
    ("alice", "i2", S.VIEW, datetime(2024, 2, 1, 10, 5), "s1", None, None, None),
    ("alice", "i1", S.CART, datetime(2024, 2, 1, 10, 10), "s1", None, None, None),
    ("alice", "i1", S.PURCHASE, datetime(2024, 2, 1, 10, 15), "s1", 2, 9.0, None),
    ("alice", "i3", S.VIEW, datetime(2024, 2, 10, 12, 0), "s2", None, None, None),
    ("alice", "i2", S.PURCHASE, datetime(2024, 2, 20, 9, 0), "s3", None, None, None),
    ("alice", "i1", S.RETURN, datetime(2024, 2, 25, 9, 0), "s4", 1, 9.0, None),
    ("alice", "i1", S.RATING_EVENT, datetime(2024, 2, 26, 9, 0), None, None, None, 5.0),
    ("alice", "i1", S.VIEW, datetime(2024, 3, 5), "s5", None, None, None),  # after as_of
    ("alice", "i2", S.PURCHASE, datetime(2024, 3, 10), "s6", 1, 20.0, None),  # after as_of
    ("bob", "i2", S.VIEW, datetime(2024, 2, 27, 8, 0), "b1", None, None, None),
    ("bob", "i2", S.CLICK, datetime(2024, 2, 27, 8, 1), "b1", None, None, None),
    ("bob", "i4", S.FAVORITE, datetime(2024, 2, 27, 8, 2), "b1", None, None, None),
    ("bob", "i4", S.VIEW, datetime(2024, 2, 28, 17, 0), None, None, None, None),
    ("bob", "i4", S.PURCHASE, datetime(2024, 2, 28, 18, 0), None, 3, None, None),
    ("bob", "i1", S.PURCHASE, datetime(2024, 3, 1), "b2", 1, 10.0, None),  # exactly at as_of: excluded
    ("carol", "i9", S.VIEW, datetime(2024, 1, 15, 11, 0), "c1", None, None, None),
    ("carol", "i3", S.VIEW, datetime(2024, 1, 15, 11, 5), "c1", None, None, None),
    ("carol", "i4", S.RETURN, datetime(2024, 1, 15, 11, 10), "c1", 1, None, None),  # a return, no purchase
    ("dave", "i3", S.PURCHASE, datetime(2024, 1, 10), "d1", 1, None, None),
    ("dave", "i3", S.PURCHASE, datetime(2024, 1, 20), "d2", 1, None, None),
]


def _shop(events=EVENTS, items=ITEMS) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    S.create_tables(con)
    if items:
        con.executemany(f"INSERT INTO {S.ITEMS} VALUES (?, ?, ?, ?, ?)", items)
    con.executemany(f"INSERT INTO {S.EVENTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
    return con


def _rows(con, table: str, key: str) -> dict[str, dict]:
    cur = con.execute(f"SELECT * FROM {table}")
    names = [d[0] for d in cur.description]
    return {row[names.index(key)]: dict(zip(names, row)) for row in cur.fetchall()}


@pytest.fixture
def built():
    con = _shop()
    build_profiles(con, AS_OF)
    return _rows(con, P.USER_PROFILES, S.USER_ID), _rows(con, P.ITEM_STATS, S.ITEM_ID)


def _counts(row: dict) -> dict[str, int]:
    return {event_type: row[P.COUNT_COLUMNS[event_type]] for event_type in S.EVENT_TYPES}


def test_tables_have_the_documented_columns():
    con = _shop()
    build_profiles(con, AS_OF)
    assert [d[0] for d in con.execute(f"SELECT * FROM {P.USER_PROFILES}").description] == list(P.USER_PROFILE_COLUMNS)
    assert [d[0] for d in con.execute(f"SELECT * FROM {P.ITEM_STATS}").description] == list(P.ITEM_STATS_COLUMNS)


def test_user_counts_sessions_and_activity(built):
    users, _ = built
    assert set(users) == {"alice", "bob", "carol", "dave"}
    a, b, c, d = users["alice"], users["bob"], users["carol"], users["dave"]
    assert _counts(a) == {S.VIEW: 3, S.CLICK: 0, S.CART: 1, S.FAVORITE: 0, S.PURCHASE: 2, S.RETURN: 1,
                          S.RATING_EVENT: 1}
    assert _counts(b) == {S.VIEW: 2, S.CLICK: 1, S.CART: 0, S.FAVORITE: 1, S.PURCHASE: 1, S.RETURN: 0,
                          S.RATING_EVENT: 0}
    assert (a[P.N_EVENTS], b[P.N_EVENTS], c[P.N_EVENTS], d[P.N_EVENTS]) == (8, 5, 3, 2)
    # alice: s1..s4 plus the session-less rating day; bob: b1 plus the session-less 28 Feb
    assert (a[P.N_SESSIONS], b[P.N_SESSIONS], c[P.N_SESSIONS], d[P.N_SESSIONS]) == (5, 2, 1, 2)
    assert a[P.FIRST_ACTIVE] == datetime(2024, 2, 1, 10, 0)
    assert a[P.LAST_ACTIVE] == datetime(2024, 2, 26, 9, 0)
    assert b[P.LAST_ACTIVE] == datetime(2024, 2, 28, 18, 0)  # the purchase at as_of is not counted
    assert c[P.CONVERSION_RATE] == 0.0
    assert a[P.CONVERSION_RATE] == pytest.approx(2 / 3)
    assert b[P.CONVERSION_RATE] == pytest.approx(1 / 2)
    assert d[P.CONVERSION_RATE] is None  # no views


def test_recency_frequency_monetary(built):
    users, _ = built
    a, b, c, d = users["alice"], users["bob"], users["carol"], users["dave"]
    assert a[P.LAST_PURCHASE] == datetime(2024, 2, 20, 9, 0)
    assert a[P.RECENCY_DAYS] == pytest.approx(9.625)  # 20 Feb 09:00 -> 1 Mar 00:00
    assert b[P.RECENCY_DAYS] == pytest.approx(1.25)  # 28 Feb 18:00 -> 1 Mar 00:00
    assert d[P.RECENCY_DAYS] == pytest.approx(41.0)
    assert c[P.RECENCY_DAYS] is None and c[P.LAST_PURCHASE] is None
    assert (a[P.FREQUENCY], b[P.FREQUENCY], c[P.FREQUENCY], d[P.FREQUENCY]) == (2, 1, 0, 2)
    # alice: 2 x 9.0 (event price) + 1 x 20.0 (catalogue price, quantity NULL = 1) - 1 x 9.0 returned
    assert a[P.MONETARY] == pytest.approx(29.0)
    assert b[P.MONETARY] == pytest.approx(15.0)  # 3 x 5.0 catalogue price
    assert c[P.MONETARY] == pytest.approx(-5.0)  # bought nothing here, returned one i4 at 5.0
    assert d[P.MONETARY] is None  # bought, but no price is known


def test_rfm_scores_and_segments(built):
    users, _ = built
    a, b, c, d = users["alice"], users["bob"], users["carol"], users["dave"]
    # purchasers by recency (older first): dave, alice, bob -> percent ranks 0, .5, 1 -> R 1, 3, 5
    assert (d[P.R_SCORE], a[P.R_SCORE], b[P.R_SCORE]) == (1, 3, 5)
    # by frequency: bob 1; alice and dave tie on 2 -> percent ranks 0, .5, .5 -> F 1, 3, 3
    assert (b[P.F_SCORE], a[P.F_SCORE], d[P.F_SCORE]) == (1, 3, 3)
    # by monetary among known values: bob 15, alice 29 -> M 1, 5; dave unknown
    assert (b[P.M_SCORE], a[P.M_SCORE], d[P.M_SCORE]) == (1, 5, None)
    assert (c[P.R_SCORE], c[P.F_SCORE], c[P.M_SCORE]) == (None, None, None)
    assert a[P.RFM_SEGMENT] == P.LOYAL
    assert b[P.RFM_SEGMENT] == P.NEW
    assert d[P.RFM_SEGMENT] == P.AT_RISK
    assert c[P.RFM_SEGMENT] == P.BROWSERS


def test_rfm_grid_reaches_every_purchaser_segment():
    # five purchasers with distinct recency and frequency ranks, so percent ranks are 0, .25, .5, .75, 1
    wanted = {"p1": (5, 5, P.CHAMPIONS), "p2": (4, 2, P.POTENTIAL), "p3": (3, 4, P.LOYAL),
              "p4": (2, 1, P.HIBERNATING), "p5": (1, 3, P.AT_RISK)}
    events = []
    for user, (r, f, _) in wanted.items():
        last = AS_OF - timedelta(days=6 - r)  # r = 5 bought most recently
        events += [(user, "i1", S.PURCHASE, last - timedelta(days=k), None, 1, 1.0, None) for k in range(f)]
    con = _shop(events)
    build_profiles(con, AS_OF)
    users = _rows(con, P.USER_PROFILES, S.USER_ID)
    assert {u: (row[P.R_SCORE], row[P.F_SCORE], row[P.RFM_SEGMENT]) for u, row in users.items()} == wanted
    assert set(P.SEGMENTS) == {P.CHAMPIONS, P.LOYAL, P.POTENTIAL, P.NEW, P.AT_RISK, P.HIBERNATING, P.BROWSERS}


def test_the_scoring_step_over_stored_measures_gives_back_the_built_scores():
    """analytics.live_profiles ranks fresh rows among the stored measures of ``user_profiles`` with the
    build's own scoring step; over the stored rows alone (recency recomputed from ``last_purchase``) it
    must give back the build's scores and segments exactly."""
    con = _shop(_random_shop(5) + EVENTS)
    cutoff = datetime(2024, 2, 20, 12, 0)
    build_profiles(con, cutoff)
    ranked = (P.R_SCORE, P.F_SCORE, P.M_SCORE, P.RFM_SEGMENT)
    stored = con.execute(f"SELECT {S.USER_ID}, {', '.join(ranked)} FROM {P.USER_PROFILES} ORDER BY 1").fetchall()
    again = con.execute(f"""
        WITH measured AS (SELECT {S.USER_ID}, {P.LAST_PURCHASE},
            {recency_days_sql(P.LAST_PURCHASE)} AS {P.RECENCY_DAYS}, {P.FREQUENCY}, {P.MONETARY}
            FROM {P.USER_PROFILES})
        SELECT {S.USER_ID}, {P.R_SCORE}, {P.F_SCORE}, {P.M_SCORE}, {rfm_segment_sql()}
        FROM ({rfm_scores_sql("measured")}) ORDER BY 1""", {"as_of": cutoff}).fetchall()
    assert again == stored
    assert P.BROWSERS in {row[-1] for row in stored} and len({row[-1] for row in stored}) > 2  # ranked rows too


def _shares(entries, field):
    return [(e[field], pytest.approx(e[P.SHARE])) for e in entries]


def test_affinity_shares_are_relevance_weighted(built):
    users, _ = built
    a, b, c, d = users["alice"], users["bob"], users["carol"], users["dave"]
    # alice's weights: i1 view 1 + cart 3 + purchase 4 + return 0 + rating 2 = 10; i2 view 1 + purchase 4 = 5;
    # i3 view 1 (no brand) -> categories over 16, brands over 15
    assert _shares(a[P.TOP_CATEGORIES], S.CATEGORY) == [
        ("Home > Kitchen > Pans", 10 / 16), ("Home > Garden", 5 / 16), ("Toys > Puzzles", 1 / 16)]
    assert _shares(a[P.TOP_ROOT_CATEGORIES], S.CATEGORY) == [("Home", 15 / 16), ("Toys", 1 / 16)]
    assert _shares(a[P.TOP_BRANDS], S.BRAND) == [("Acme", 10 / 15), ("Bolt", 5 / 15)]
    # bob: i2 view 1 + click 2 = 3 (Bolt, Home > Garden); i4 favourite 2 + view 1 + purchase 4 = 7 (Acme, no category)
    assert _shares(b[P.TOP_CATEGORIES], S.CATEGORY) == [("Home > Garden", 1.0)]
    assert _shares(b[P.TOP_BRANDS], S.BRAND) == [("Acme", 0.7), ("Bolt", 0.3)]
    # carol viewed i9 (not in the catalogue) and i3 (no brand); her return of i4 (Acme) weighs 0
    assert _shares(c[P.TOP_CATEGORIES], S.CATEGORY) == [("Toys > Puzzles", 1.0)]
    assert c[P.TOP_BRANDS] == []
    assert _shares(users["dave"][P.TOP_CATEGORIES], S.CATEGORY) == [("Toys > Puzzles", 1.0)]
    assert _shares(d[P.TOP_ROOT_CATEGORIES], S.CATEGORY) == [("Toys", 1.0)]


def test_top_three_keeps_the_heaviest_and_breaks_ties_by_name():
    items = [(f"k{i}", "t", f"Cat{name}", f"B{name}", 1.0) for i, name in enumerate("EDCBA")]
    # weights: CatE 4 (one purchase), CatD 2, CatC 2, CatB 2, CatA 1 -> ties among D, C, B go to B, C
    events = [("u", "k0", S.PURCHASE, datetime(2024, 1, 1), None, None, None, None)]
    events += [("u", f"k{i}", S.CLICK, datetime(2024, 1, 2), None, None, None, None) for i in (1, 2, 3)]
    events += [("u", "k4", S.VIEW, datetime(2024, 1, 3), None, None, None, None)]
    con = _shop(events, items)
    build_profiles(con, AS_OF)
    row = _rows(con, P.USER_PROFILES, S.USER_ID)["u"]
    assert _shares(row[P.TOP_CATEGORIES], S.CATEGORY) == [("CatE", 4 / 11), ("CatB", 2 / 11), ("CatC", 2 / 11)]
    assert [e[S.BRAND] for e in row[P.TOP_BRANDS]] == ["BE", "BB", "BC"]


def test_price_band(built):
    users, _ = built
    a, b, c, d = users["alice"], users["bob"], users["carol"], users["dave"]
    # alice viewed i1 (10) and i2 (20) at catalogue prices; i3 has no price
    assert (a[P.VIEW_PRICE_P25], a[P.VIEW_PRICE_MEDIAN], a[P.VIEW_PRICE_P75]) == pytest.approx((12.5, 15.0, 17.5))
    # alice bought at 9.0 (event price) and 20.0 (catalogue price)
    assert (a[P.BUY_PRICE_P25], a[P.BUY_PRICE_MEDIAN], a[P.BUY_PRICE_P75]) == pytest.approx((11.75, 14.5, 17.25))
    assert (b[P.VIEW_PRICE_P25], b[P.VIEW_PRICE_MEDIAN], b[P.VIEW_PRICE_P75]) == pytest.approx((8.75, 12.5, 16.25))
    assert (b[P.BUY_PRICE_P25], b[P.BUY_PRICE_MEDIAN], b[P.BUY_PRICE_P75]) == pytest.approx((5.0, 5.0, 5.0))
    assert c[P.VIEW_PRICE_MEDIAN] is None and d[P.BUY_PRICE_MEDIAN] is None


def test_item_stats(built):
    _, items = built
    assert set(items) == {"i1", "i2", "i3", "i4", "i5", "i9"}
    i1, i2, i3, i4, i5, i9 = (items[k] for k in ("i1", "i2", "i3", "i4", "i5", "i9"))
    assert _counts(i1) == {S.VIEW: 1, S.CLICK: 0, S.CART: 1, S.FAVORITE: 0, S.PURCHASE: 1, S.RETURN: 1,
                           S.RATING_EVENT: 1}
    assert [(it[P.N_EVENTS], it[P.UNIQUE_USERS]) for it in (i1, i2, i3, i4, i5, i9)] == [
        (5, 1), (4, 2), (4, 3), (4, 2), (0, 0), (1, 1)]
    assert [it[P.CONVERSION] for it in (i1, i2, i3, i4, i5, i9)] == [1.0, 0.5, 1.0, 1.0, None, 0.0]
    # i1: 2 x 9.0 - 1 x 9.0; i2: 1 x 20.0 (catalogue); i3: bought, price unknown; i4: 3 x 5.0 - 1 x 5.0
    assert [it[P.REVENUE] for it in (i1, i2, i3, i4, i5, i9)] == [9.0, 20.0, None, 10.0, 0.0, 0.0]
    assert (i1[S.FIRST_SEEN], i1[P.LAST_SEEN]) == (datetime(2024, 2, 1, 10, 0), datetime(2024, 2, 26, 9, 0))
    assert (i5[S.FIRST_SEEN], i5[P.LAST_SEEN]) == (None, None)
    assert (i1[S.CATEGORY], i1[P.ROOT_CATEGORY], i1[S.BRAND], i1[S.PRICE]) == (
        "Home > Kitchen > Pans", "Home", "Acme", 10.0)
    assert (i4[S.CATEGORY], i4[P.ROOT_CATEGORY], i4[S.BRAND], i4[S.PRICE]) == (None, None, "Acme", 5.0)
    assert (i9[S.CATEGORY], i9[S.BRAND], i9[S.PRICE]) == (None, None, None)


def test_item_trends(built):
    _, items = built
    # 7 days: [22 Feb 00:00, 1 Mar) against [15 Feb, 22 Feb); 30 days: [31 Jan, 1 Mar) against [1 Jan, 31 Jan)
    expected = {  # item: (n_7d, trend_7d, n_30d, trend_30d)
        "i1": (2, 3 / 1, 5, 6 / 1),  # return 25 Feb, rating 26 Feb
        "i2": (2, 3 / 2, 4, 5 / 1),  # bob 27 Feb x2 vs alice's purchase 20 Feb
        "i3": (0, 1 / 1, 1, 2 / 4),  # alice 10 Feb vs carol 15 Jan and dave 10 and 20 Jan
        "i4": (3, 4 / 1, 3, 4 / 2),  # carol's return on 15 Jan is in the earlier 30 days
        "i5": (0, 1.0, 0, 1.0),
        "i9": (0, 1.0, 0, 1 / 2),
    }
    got = {k: (r[P.N_EVENTS_7D], r[P.TREND_7D], r[P.N_EVENTS_30D], r[P.TREND_30D]) for k, r in items.items()}
    assert got == {k: pytest.approx(v) for k, v in expected.items()}


def test_trend_windows_include_their_start_and_exclude_their_end():
    us = timedelta(microseconds=1)
    ages = [timedelta(days=7), timedelta(days=7) + us, timedelta(days=14), timedelta(days=14) + us,
            timedelta(days=30), timedelta(days=30) + us, timedelta(days=60), timedelta(days=60) + us]
    con = _shop([("u", "i1", S.VIEW, AS_OF - age, None, None, None, None) for age in ages])
    build_profiles(con, AS_OF)
    row = _rows(con, P.ITEM_STATS, S.ITEM_ID)["i1"]
    # last 7 days: the event at exactly 7 days; the 7 before: 7d+1us and 14d
    assert (row[P.N_EVENTS_7D], row[P.TREND_7D]) == (1, pytest.approx(2 / 3))
    # last 30 days: 7d .. 30d (5 events); the 30 before: 30d+1us and 60d
    assert (row[P.N_EVENTS_30D], row[P.TREND_30D]) == (5, pytest.approx(6 / 3))


def test_as_of_ignores_later_events_and_moves_recency():
    con = _shop()
    build_profiles(con, datetime(2024, 3, 2))  # now bob's purchase at 1 Mar 00:00 counts
    users = _rows(con, P.USER_PROFILES, S.USER_ID)
    assert users["alice"][P.RECENCY_DAYS] == pytest.approx(10.625)
    assert users["bob"][P.COUNT_COLUMNS[S.PURCHASE]] == 2
    assert users["bob"][P.RECENCY_DAYS] == pytest.approx(1.0)

    build_profiles(con, datetime(2024, 2, 15))
    users = _rows(con, P.USER_PROFILES, S.USER_ID)
    assert set(users) == {"alice", "carol", "dave"}  # bob's first event is on 27 Feb
    assert users["alice"][P.N_EVENTS] == 5
    assert users["alice"][P.RECENCY_DAYS] == pytest.approx(13 + 13.75 / 24)  # since 1 Feb 10:15

    build_profiles(con)  # None = every event: "now" is the last event plus one microsecond
    users = _rows(con, P.USER_PROFILES, S.USER_ID)
    assert users["alice"][P.COUNT_COLUMNS[S.PURCHASE]] == 3
    assert users["alice"][P.RECENCY_DAYS] == pytest.approx(1e-6 / 86400, abs=1e-12)
    assert users["alice"][P.LAST_ACTIVE] == datetime(2024, 3, 10)

    aware = datetime(2024, 3, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))  # = AS_OF in UTC
    build_profiles(con, aware)
    assert _rows(con, P.USER_PROFILES, S.USER_ID)["alice"][P.RECENCY_DAYS] == pytest.approx(9.625)


def _random_shop(seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1)
    events = []
    for _ in range(400):
        events.append((
            f"u{rng.integers(0, 12)}", f"i{rng.integers(1, 6)}", str(rng.choice(S.EVENT_TYPES)),
            start + timedelta(minutes=int(rng.integers(0, 90 * 24 * 60))),
            None if rng.random() < 0.3 else f"s{rng.integers(0, 40)}",
            None if rng.random() < 0.5 else int(rng.integers(1, 4)),
            None if rng.random() < 0.5 else float(rng.integers(1, 50)),
            None,
        ))
    return events


@pytest.mark.parametrize("cutoff", [datetime(2024, 1, 20), datetime(2024, 2, 14, 12, 0), datetime(2024, 3, 25)])
def test_no_event_at_or_after_as_of_influences_anything(cutoff):
    """Profiles from the whole history equal profiles from only the events before the cutoff."""
    events = _random_shop(seed=cutoff.day)
    events.append(("u1", "i1", S.PURCHASE, cutoff, "edge", 1, 99.0, None))  # exactly at the cutoff
    full = _shop(events)
    truncated = _shop([e for e in events if e[3] < cutoff])
    for con in (full, truncated):
        build_profiles(con, cutoff)
    for table in (P.USER_PROFILES, P.ITEM_STATS):
        order = S.USER_ID if table == P.USER_PROFILES else S.ITEM_ID
        query = f"SELECT * FROM {table} ORDER BY {order}"
        assert full.execute(query).fetchall() == truncated.execute(query).fetchall()


def test_engine_call_shape_view_and_temporary_tables():
    con = _shop()
    con.execute(f"CREATE VIEW train_events AS SELECT * FROM {S.EVENTS} WHERE {S.USER_ID} <> 'carol'")
    build_profiles(con, AS_OF, events_table="train_events", user_table="tmp_users", item_table="tmp_items",
                   temporary=True)
    users = _rows(con, "tmp_users", S.USER_ID)
    assert set(users) == {"alice", "bob", "dave"}
    assert users["alice"][P.MONETARY] == pytest.approx(29.0)
    tables = "SELECT count(*) FROM duckdb_tables() WHERE"
    assert con.execute(f"{tables} temporary AND table_name = 'tmp_items'").fetchall() == [(1,)]
    assert con.execute(f"{tables} table_name = '{P.USER_PROFILES}'").fetchall() == [(0,)]

    build_profiles(con, AS_OF, events_table="train_events", user_table=None, item_table="only_items",
                   temporary=True)  # the engine may want one table only
    assert _rows(con, "only_items", S.ITEM_ID)["i1"][P.N_EVENTS] == 5
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '%profiles%'").fetchall() == [(0,)]


def test_shops_without_prices_brands_or_catalogue():
    # Taobao-like: no brand, no price anywhere; one item not even in the catalogue
    items = [("t1", None, "C1", None, None), ("t2", None, "", "  ", None)]
    events = [
        ("u", "t1", S.VIEW, datetime(2024, 1, 1), None, None, None, None),
        ("u", "t2", S.CART, datetime(2024, 1, 2), None, None, None, None),
        ("u", "t3", S.PURCHASE, datetime(2024, 1, 3), None, None, None, None),
    ]
    con = _shop(events, items)
    build_profiles(con, AS_OF)
    u = _rows(con, P.USER_PROFILES, S.USER_ID)["u"]
    assert u[P.MONETARY] is None and u[P.M_SCORE] is None
    assert u[P.RFM_SEGMENT] in P.SEGMENTS and u[P.RFM_SEGMENT] != P.BROWSERS
    assert u[P.VIEW_PRICE_MEDIAN] is None and u[P.BUY_PRICE_P75] is None
    assert _shares(u[P.TOP_CATEGORIES], S.CATEGORY) == [("C1", 1.0)]  # blank category of t2 = unknown
    assert u[P.TOP_BRANDS] == []
    items_out = _rows(con, P.ITEM_STATS, S.ITEM_ID)
    assert items_out["t2"][S.CATEGORY] is None and items_out["t2"][S.BRAND] is None
    assert items_out["t3"][P.REVENUE] is None  # bought, price unknown

    empty_catalogue = _shop(events, items=[])
    build_profiles(empty_catalogue, AS_OF)
    u = _rows(empty_catalogue, P.USER_PROFILES, S.USER_ID)["u"]
    assert (u[P.TOP_CATEGORIES], u[P.TOP_ROOT_CATEGORIES], u[P.TOP_BRANDS]) == ([], [], [])
    assert u[P.N_EVENTS] == 3


def test_as_of_before_every_event_gives_empty_user_profiles():
    con = _shop()
    build_profiles(con, datetime(2000, 1, 1))
    assert con.execute(f"SELECT count(*) FROM {P.USER_PROFILES}").fetchall() == [(0,)]
    assert con.execute(f"SELECT sum({P.N_EVENTS}) FROM {P.ITEM_STATS}").fetchall() == [(0,)]


def test_bad_arguments_are_clear_errors():
    con = _shop()
    with pytest.raises(RecsightError, match="bad table name"):
        build_profiles(con, AS_OF, user_table="users; DROP TABLE events")
    with pytest.raises(RecsightError, match="not found"):
        build_profiles(con, AS_OF, events_table="no_such_table")
    with pytest.raises(RecsightError, match="datetime"):
        build_profiles(con, "2024-03-01")  # type: ignore[arg-type]


def test_refresh_profiles_writes_the_shop_file(tmp_path: Path):
    db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(db))
    S.create_tables(con)
    con.executemany(f"INSERT INTO {S.ITEMS} VALUES (?, ?, ?, ?, ?)", ITEMS)
    con.executemany(f"INSERT INTO {S.EVENTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?)", EVENTS)
    con.close()
    refresh_profiles(db)
    con = duckdb.connect(str(db), read_only=True)
    users = _rows(con, P.USER_PROFILES, S.USER_ID)
    assert users["alice"][P.COUNT_COLUMNS[S.PURCHASE]] == 3  # as of all events
    assert con.execute(f"SELECT count(*) FROM {P.ITEM_STATS}").fetchall() == [(6,)]
    con.close()


def test_refresh_profiles_refuses_a_shop_without_events(tmp_path: Path):
    with pytest.raises(RecsightError, match="does not exist"):
        refresh_profiles(tmp_path / "missing.duckdb")
    db = tmp_path / "empty.duckdb"
    con = duckdb.connect(str(db))
    S.create_tables(con)
    con.close()
    with pytest.raises(RecsightError, match="no events"):
        refresh_profiles(db)
    bare = tmp_path / "bare.duckdb"
    duckdb.connect(str(bare)).close()
    with pytest.raises(RecsightError, match="not found"):
        refresh_profiles(bare)


@pytest.mark.parametrize("seed", [3, 11])
def test_benchmark_pandas_port_computes_the_same_tables(seed):
    """bench/ingest_profiles.py times a pandas port of this SQL; two independent implementations agree."""
    from bench.ingest_profiles import compare, pandas_profiles

    con = _shop(_random_shop(seed) + EVENTS, ITEMS + [("i7", "t", " ", "", 4.0)])
    cutoff = datetime(2024, 2, 20, 12, 0)
    build_profiles(con, cutoff)
    events, items = con.execute(f"SELECT * FROM {S.EVENTS}").df(), con.execute(f"SELECT * FROM {S.ITEMS}").df()
    users_pd, items_pd = pandas_profiles(events, items, cutoff)
    assert compare(con.execute(f"SELECT * FROM {P.USER_PROFILES}").df(), users_pd, S.USER_ID) == []
    assert compare(con.execute(f"SELECT * FROM {P.ITEM_STATS}").df(), items_pd, S.ITEM_ID) == []


def test_hashed_user_key_is_used_and_gives_the_same_tables_as_the_plain_key(monkeypatch):
    """The side passes key users by hash(user_id) when no two ids share a hash (profile_build._user_key), else
    by the id itself; both must give identical tables, so a collision can never change a figure."""
    con = _shop(_random_shop(5) + EVENTS)
    assert profile_build._user_key(con, S.EVENTS) == "hash({})"
    cutoff = datetime(2024, 2, 20, 12, 0)

    def tables() -> list[list[tuple]]:
        build_profiles(con, cutoff)
        return [con.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
                for table, key in ((P.USER_PROFILES, S.USER_ID), (P.ITEM_STATS, S.ITEM_ID))]

    hashed = tables()
    monkeypatch.setattr(profile_build, "_user_key", lambda *_: "{}")  # what a hash collision falls back to
    plain = tables()
    assert plain == hashed
    assert hashed[0] and hashed[1]


def test_sessions_count_session_ids_and_session_less_days_in_one_pass():
    # the same session id on two days is one session; session-less events count one per day
    day = datetime(2024, 2, 1, 10, 0)
    events = [
        ("u", "i1", S.VIEW, day, "s1", None, None, None),
        ("u", "i1", S.VIEW, day + timedelta(days=1), "s1", None, None, None),
        ("u", "i2", S.VIEW, day, None, None, None, None),
        ("u", "i2", S.VIEW, day + timedelta(hours=5), None, None, None, None),
        ("u", "i2", S.VIEW, day + timedelta(days=2), None, None, None, None),
        ("v", "i2", S.VIEW, day, "s1", None, None, None),  # another user's session with the same id
    ]
    con = _shop(events)
    build_profiles(con, AS_OF)
    users = _rows(con, P.USER_PROFILES, S.USER_ID)
    assert (users["u"][P.N_SESSIONS], users["v"][P.N_SESSIONS]) == (3, 1)
    items = _rows(con, P.ITEM_STATS, S.ITEM_ID)
    assert (items["i1"][P.UNIQUE_USERS], items["i2"][P.UNIQUE_USERS]) == (1, 2)
