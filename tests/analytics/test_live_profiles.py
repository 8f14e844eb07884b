"""Live profile rows equal a full rebuild after the same events (issue 14, item 3), and the profile
card shows them on a connection that sees the live segment.

On a copy of the session's shop: batches appended through the intake give some customers
purchases (priced and not), a return, views in a new session, a first purchase, and a customer and
an item first seen live. Their rows from :func:`analytics.live_profiles.live_profiles` are compared
with :func:`analytics.profile_build.build_profiles` run over every event (snapshot + live), R/F/M
scores and segment included (the browser's first purchase moves them out of the browsers' segment).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from analytics import profiles as p
from analytics import schema as s
from analytics.db import connect_read_only
from analytics.live_profiles import RANKED_COLUMNS, live_profiles
from analytics.live_read import open_live
from analytics.profile_build import build_profiles
from analytics.profile_card import profile_card
from tests.conftest import TEST_SECRET
from tests.shop import TrainedShop
from workflows.intake import append_events

NEW_CUSTOMER = "CUSTOMER-NEW-LIVE"


@pytest.fixture
def shop(trained_shop: TrainedShop, tmp_path: Path) -> TrainedShop:
    return trained_shop.copy_to(tmp_path / "shop")


def _buyer_and_browser(shop: TrainedShop) -> tuple[str, str]:
    """(raw id of a customer who bought, raw id of one who never did) per the snapshot profiles."""
    pseudonyms = {shop.pseudonym(raw): raw for raw in shop.raw_ids}
    with connect_read_only(shop.db) as con:
        rows = con.execute(f"SELECT {s.USER_ID}, {p.LAST_PURCHASE} IS NOT NULL FROM {p.USER_PROFILES} "
                           f"ORDER BY {s.USER_ID}").fetchall()
    buyer = next(pseudonyms[u] for u, bought in rows if bought and u in pseudonyms)
    browser = next(pseudonyms[u] for u, bought in rows if not bought and u in pseudonyms)
    return buyer, browser


def _append(shop: TrainedShop) -> list[str]:
    """The batches; returns the changed customers' pseudonyms."""
    buyer, browser = _buyer_and_browser(shop)
    with connect_read_only(shop.db) as con:
        end = con.execute(f"SELECT max({s.TS}) FROM {s.EVENTS}").fetchone()[0]
        items = [r[0] for r in con.execute(f"SELECT {s.ITEM_ID} FROM {s.ITEMS} ORDER BY 1 LIMIT 4").fetchall()]

    def event(tag: str, raw: str, item: str, kind: str, minutes: float, **extra: Any) -> dict:
        ts = (end + timedelta(minutes=minutes)).isoformat()
        return {"event_id": tag, "user_id": raw, "item_id": item, "event_type": kind, "ts": ts, **extra}

    first = [
        event("b1", buyer, items[0], s.VIEW, 1, session_id="live-s1"),
        event("b2", buyer, items[0], s.PURCHASE, 2, session_id="live-s1", price=12.5, quantity=2),
        event("b3", buyer, items[1], s.PURCHASE, 3, session_id="live-s1"),  # no price: the catalogue's
        event("w1", browser, items[2], s.VIEW, 1), event("w2", browser, items[2], s.CART, 2),
        event("n1", NEW_CUSTOMER, "ITEM-NEW-LIVE", s.VIEW, 1),
        event("n2", NEW_CUSTOMER, items[3], s.PURCHASE, 2, price=3.0),
    ]
    second = [
        event("b4", buyer, items[0], s.RETURN, 60 * 24, price=12.5),  # the next day, no session
        event("w3", browser, items[2], s.PURCHASE, 60 * 24 + 1, price=7.25),  # a first purchase
    ]
    for batch in (first, second):
        assert append_events(shop.db, batch, TEST_SECRET).accepted == len(batch)
    return sorted(shop.pseudonym(raw) for raw in (buyer, browser, NEW_CUSTOMER))


@pytest.fixture
def live(shop: TrainedShop) -> Iterator[tuple[duckdb.DuckDBPyConnection, list[str]]]:
    changed = _append(shop)
    con, _ = open_live(shop.db, shadow=True)
    yield con, changed
    con.close()


def _rows(con: duckdb.DuckDBPyConnection, table: str, users: list[str]) -> dict[str, dict[str, Any]]:
    frame = con.execute(f"SELECT * FROM {table} WHERE {s.USER_ID} IN (SELECT unnest(?::VARCHAR[]))",
                        [users]).fetchdf()
    return {row[s.USER_ID]: row for row in frame.to_dict("records")}


def _missing(value: Any) -> bool:
    return value is None or (not hasattr(value, "__len__") and bool(pd.isna(value)))


def _same(a: Any, b: Any) -> bool:
    """Equal values; floats to 1e-12 relative; None, NaN and NaT all mean missing (pandas frames)."""
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if hasattr(a, "tolist"):
        a, b = a.tolist(), b.tolist()
    return a == b


def test_live_rows_equal_a_full_rebuild_after_the_same_events(
        live: tuple[duckdb.DuckDBPyConnection, list[str]]) -> None:
    """Every column of the changed customers' rows, R/F/M scores and segment included, equals a full
    rebuild over snapshot + live events. Both take as_of None: just after the newest event (live), so
    recency is measured from the same instant; the ranks are taken among every customer, the unchanged
    ones by their stored measures (a rebuild may shift *their* scores; the overlay shows their built
    rows until a compaction rebuilds)."""
    con, changed = live
    live_profiles(con, changed)
    build_profiles(con, None, events_table=s.EVENTS, user_table="rebuilt_profiles", item_table=None, temporary=True)
    got, want = _rows(con, "live_user_profiles", changed), _rows(con, "rebuilt_profiles", changed)
    snapshot = _rows(con, p.USER_PROFILES, changed)
    assert sorted(got) == sorted(want) == changed
    assert list(got[changed[0]]) == list(want[changed[0]]) == list(p.USER_PROFILE_COLUMNS)
    for user in changed:
        for column in p.USER_PROFILE_COLUMNS:
            assert _same(got[user][column], want[user][column]), (user, column, got[user][column], want[user][column])
        old = snapshot.get(user)
        assert old is None or got[user][p.N_EVENTS] > old[p.N_EVENTS]  # the live events count
    assert not any(_missing(got[u][p.LAST_PURCHASE]) for u in changed)  # the browser's first purchase counts
    assert all(got[u][c] is not None for u in changed for c in RANKED_COLUMNS)  # every one of them is ranked
    browser = next(u for u in changed if u in snapshot and _missing(snapshot[u][p.LAST_PURCHASE]))
    assert snapshot[browser][p.RFM_SEGMENT] == p.BROWSERS != got[browser][p.RFM_SEGMENT]  # leaves the browsers


def test_the_ranks_read_the_snapshot_rows_of_the_other_customers(
        live: tuple[duckdb.DuckDBPyConnection, list[str]]) -> None:
    """The scores are ranks among all customers: with the other customers' stored rows gone, the same
    live rows rank differently (here: among themselves only), so the snapshot rows are what they read."""
    con, changed = live
    live_profiles(con, changed, out="ranked_among_all")
    con.execute(f"CREATE TEMP TABLE {p.USER_PROFILES} AS SELECT * FROM {p.USER_PROFILES} LIMIT 0")  # hides it
    live_profiles(con, changed, out="ranked_among_changed")
    among_all, among_changed = _rows(con, "ranked_among_all", changed), _rows(con, "ranked_among_changed", changed)
    assert not any(_missing(among_changed[u][c]) for u in changed for c in RANKED_COLUMNS)
    assert any(among_all[u][c] != among_changed[u][c] for u in changed for c in RANKED_COLUMNS)
    for user in changed:  # the aggregates are the customer's own
        assert among_all[user][p.N_EVENTS] == among_changed[user][p.N_EVENTS]


def test_the_card_shows_the_live_row_on_a_connection_that_sees_it(
        shop: TrainedShop, live: tuple[duckdb.DuckDBPyConnection, list[str]]) -> None:
    con, changed = live
    live_profiles(con, changed)
    expected = _rows(con, "live_user_profiles", changed)
    for user in changed:
        card = profile_card(con, user)
        assert card.has_profile and card.events == expected[user][p.N_EVENTS]
        assert card.last_active == expected[user][p.LAST_ACTIVE]
    with connect_read_only(shop.db) as snapshot:  # no live segment attached: the built row, unchanged
        for user in changed:
            snapshot_card, live_card = profile_card(snapshot, user), profile_card(con, user)
            assert list(snapshot_card.to_dict()) == list(live_card.to_dict())  # the JSON contract
            assert snapshot_card.events < live_card.events
        newcomer = shop.pseudonym(NEW_CUSTOMER)
        assert not profile_card(snapshot, newcomer).has_profile and profile_card(con, newcomer).has_profile


def test_an_unchanged_customer_keeps_the_built_row(live: tuple[duckdb.DuckDBPyConnection, list[str]]) -> None:
    con, changed = live
    (other,) = con.execute(f"SELECT {s.USER_ID} FROM {p.USER_PROFILES} WHERE {s.USER_ID} NOT IN "
                           "(SELECT unnest(?::VARCHAR[])) ORDER BY 1 LIMIT 1", [changed]).fetchone()
    built = _rows(con, p.USER_PROFILES, [other])[other]
    card = profile_card(con, other)
    assert card.events == built[p.N_EVENTS] and card.last_active == built[p.LAST_ACTIVE]
    assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'live_user_profiles'"
                           ).fetchone()[0]  # no live row computed for them
