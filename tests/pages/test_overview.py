"""The overview's callback bodies and the app shell, without a browser.

The shop is the twelve-event fixture of tests/analytics/test_shop_overview.py written to a
file: 4 customers, 12 events, revenue 35, conversion 3/6; segments champions (2), loyal (1),
browsers (1). k is 2 unless a test says otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pytest

from analytics import profiles, schema
from errors import RecsightError
from service.users import ADMIN
from settings import Settings
from tests.analytics.test_shop_overview import EVENTS, ITEMS, SEGMENTS
from tests.components import find as _find
from tests.components import text
from tests.service.support import ACCOUNTS, app_settings, sign_in

_text = partial(text, sep="")  # KPI figures are split over spans: read them unspaced

ALL = "all"


def _write_shop(path: Path, with_profiles: bool = True) -> Path:
    with duckdb.connect(str(path)) as con:
        schema.create_tables(con)
        con.executemany(f"INSERT INTO {schema.ITEMS} VALUES (?, ?, ?, ?, ?)", ITEMS)
        con.executemany(
            f"INSERT INTO {schema.EVENTS} ({schema.USER_ID}, {schema.ITEM_ID}, {schema.EVENT_TYPE}, {schema.TS}, "
            f"{schema.QUANTITY}, {schema.PRICE}) VALUES (?, ?, ?, ?::TIMESTAMP, ?, ?)", EVENTS)
        if with_profiles:
            con.execute(f"CREATE TABLE {profiles.USER_PROFILES} "
                        f"({schema.USER_ID} VARCHAR, {profiles.RFM_SEGMENT} VARCHAR)")
            con.executemany(f"INSERT INTO {profiles.USER_PROFILES} VALUES (?, ?)", list(SEGMENTS.items()))
    return path


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("overview_shop")
    return app_settings(folder, db_path=_write_shop(folder / "shop.duckdb"), k_anonymity=2)


@pytest.fixture(scope="module")
def served(shop: Settings) -> Iterator[Any]:
    """An app for the tiny shop; it serves one request so Dash hands it the page callbacks
    (pages can only be imported once an app exists)."""
    from app import create_app

    app = create_app(shop)
    client = app.server.test_client()
    assert client.get("/").status_code == 302  # to the sign-in form
    assert sign_in(client, ADMIN).status_code == 302
    assert client.get("/").status_code == 200
    yield app


@pytest.fixture(scope="module")
def ov(served: Any):
    import pages.overview as module

    return module




def _kpi(view: Any, name: str) -> str:
    from pages.overview import KPI_IDS

    return _text(_find_in(view.kpis, KPI_IDS[name]))


def _find_in(components: list[Any], component_id: str) -> Any:
    for component in components:
        found = _find(component, component_id)
        if found is not None:
            return found
    raise AssertionError(f"no component {component_id!r}")


def _annotation(figure: Any) -> str:
    return " ".join(a.text for a in figure.layout.annotations)


# --------------------------------------------------------------------------- callback bodies


def test_overview_kpis_and_funnel_for_the_whole_shop(ov, shop):
    view = ov.update_overview("2024-01-01", "2024-01-10", ALL, shop)
    assert [_kpi(view, name) for name in ("users", "items", "events", "revenue", "conversion")] == [
        "4", "4", "12", "€35.00", "50.00%"]
    assert _text(_find_in(view.kpis, "ov-kpi-items-caption")) == "of 5 in the catalogue"
    assert _text(_find_in(view.kpis, "ov-kpi-conversion-caption")) == "purchases per view · 75% of customers bought"
    assert list(view.funnel.data[0].x) == [6, None, None, 3]  # click and cart: u1 alone, hidden (k=2)
    assert list(view.funnel.data[0].text)[1:3] == ["fewer than 2 customers"] * 2
    assert view.notice is None


def test_overview_follows_dates_and_segment(ov, shop):
    assert _kpi(ov.update_overview("2024-01-01", "2024-01-05", ALL, shop), "events") == "9"
    champions = ov.update_overview(None, None, profiles.CHAMPIONS, shop)
    assert (_kpi(champions, "events"), _kpi(champions, "users"), _kpi(champions, "revenue")) == ("8", "2", "€20.00")


def test_overview_hides_a_selection_smaller_than_k(ov, shop):
    view = ov.update_overview(None, None, ALL, replace(shop, k_anonymity=5))
    assert _kpi(view, "events") == "—" and _kpi(view, "users") == "—"
    assert "fewer than 5 customers" in _text(view.notice).lower()
    assert not view.funnel.data  # an empty figure that says why
    assert "fewer than 5 customers" in _annotation(view.funnel).lower()


def test_overview_empty_range_and_bad_input_are_messages(ov, shop):
    empty = ov.update_overview("2023-01-01", "2023-01-31", ALL, shop)
    assert _kpi(empty, "events") == "0"
    assert _text(empty.notice) == "There are no events in this selection."
    inverted = ov.update_overview("2024-01-09", "2024-01-02", ALL, shop)
    assert "after the end date" in _text(inverted.notice)
    small_segment = ov.update_overview(None, None, profiles.LOYAL, shop)
    assert "hidden for privacy" in _text(small_segment.notice)


def test_activity_rankings_and_segments(ov, shop):
    weekly = ov.update_activity(None, None, ALL, "week", shop)
    assert [list(trace.y) for trace in weekly.data] == [[9, 3], [38.0, -3.0]]
    categories, brands = ov.update_rankings(None, None, ALL, "full", "events", shop)
    assert list(categories.data[0].y) == ["Home > Kitchen > Pans", "Beauty > Skin > Cream"]  # 1-customer ones hidden
    assert list(brands.data[0].y) == ["Acme", "Glow"]
    categories, brands = ov.update_rankings(None, None, ALL, "full", "revenue", shop)
    assert not categories.data  # each category's revenue is one buyer's: not ranked by it (k=2)
    assert list(brands.data[0].y) == ["Acme"]  # Glow's revenue is u3's alone
    figure, table = ov.update_segments(None, None, ALL, shop)
    assert list(figure.data[0].y) == ["Champions"]
    assert "2 segments hidden" in _text(table)
    highlighted, _ = ov.update_segments(None, None, profiles.CHAMPIONS, shop)
    assert list(highlighted.data[0].marker.color) == ["#3d6a8e"]


def _write_money_shop(path: Path) -> Path:
    """Two champions who only browse (revenue 0) and two loyal customers who spent 12,345.50: the
    shop whose segment table once read "0.00" beside "12,346"."""
    with duckdb.connect(str(path)) as con:
        schema.create_tables(con)
        con.execute(f"INSERT INTO {schema.ITEMS} VALUES ('i1', 'Tent', 'Outdoor > Tents', 'Acme', 6172.75)")
        con.executemany(
            f"INSERT INTO {schema.EVENTS} ({schema.USER_ID}, {schema.ITEM_ID}, {schema.EVENT_TYPE}, {schema.TS}) "
            "VALUES (?, 'i1', ?, ?::TIMESTAMP)",
            [("c1", schema.VIEW, "2024-02-01 09:00"), ("c2", schema.VIEW, "2024-02-02 09:00"),
             ("l1", schema.PURCHASE, "2024-02-01 10:00"), ("l2", schema.PURCHASE, "2024-02-03 10:00")])
        con.execute(f"CREATE TABLE {profiles.USER_PROFILES} ({schema.USER_ID} VARCHAR, {profiles.RFM_SEGMENT} VARCHAR)")
        con.executemany(f"INSERT INTO {profiles.USER_PROFILES} VALUES (?, ?)",
                        [("c1", profiles.CHAMPIONS), ("c2", profiles.CHAMPIONS), ("l1", profiles.LOYAL),
                         ("l2", profiles.LOYAL)])
    return path


def _table_rows(table: Any) -> list[list[str]]:
    body = table.children[0].children[1]
    return [[_text(cell) for cell in row.children] for row in body.children]


def test_a_segment_without_purchases_reads_as_money_and_counts_read_whole(ov, tmp_path):
    settings = Settings(db_path=_write_money_shop(tmp_path / "shop.duckdb"), k_anonymity=2)
    view = ov.segments_view(None, None, ALL, settings)
    head = [_text(cell) for cell in view.table.children[0].children[0].children.children]
    assert head == ["Segment", "Customers", "Active", "Revenue (EUR)"]
    assert _table_rows(view.table) == [["Champions", "2", "2", "€0.00"], ["Loyal", "2", "2", "€12,345.50"]]
    assert view.activity.columns[-1] == "Revenue (EUR)"
    assert _kpi(ov.update_overview(None, None, ALL, settings), "revenue") == "€12,345.50"


def test_every_amount_on_the_overview_follows_the_currency_setting(ov, shop):
    pounds = replace(shop, currency="GBP")
    assert _kpi(ov.update_overview(None, None, ALL, pounds), "revenue") == "£35.00"
    activity = ov.activity_view(None, None, ALL, "week", pounds)
    axis = activity.figure.layout.yaxis2
    assert (axis.title.text, axis.tickprefix) == ("revenue (GBP)", "£")
    assert activity.figure.data[1].hovertext[0].startswith("revenue £38.00")
    assert activity.table.columns[-1] == "Revenue (GBP)"
    _, brands = ov.rankings_view(None, None, ALL, "full", "revenue", pounds)
    assert "£" in brands.figure.data[0].hovertext[0] and "Revenue (GBP)" in brands.table.columns
    kronor = ov.segments_view(None, None, ALL, replace(shop, currency="SEK"))
    assert _table_rows(kronor.table)[0][-1] == "20.00 SEK" and kronor.activity.columns[-1] == "Revenue (SEK)"


def test_preset_dates(ov):
    bounds = {"first": "2024-01-01", "last": "2024-01-10"}
    assert ov.preset_dates("7", bounds) == ("2024-01-04", "2024-01-10")
    assert ov.preset_dates("30", bounds) == ("2024-01-01", "2024-01-10")  # not before the first day
    assert ov.preset_dates("all", bounds) == ("2024-01-01", "2024-01-10")
    with pytest.raises(RecsightError):
        ov.preset_dates("365", bounds)


# --------------------------------------------------------------------------- missing data


def test_missing_database_is_a_message_everywhere(ov, tmp_path):
    settings = Settings(db_path=tmp_path / "nope.duckdb")
    page = ov.build_layout(settings)
    assert "does not exist" in _text(_find(page, "ov-problem"))
    assert _find(page, "ov-dates") is None
    view = ov.update_overview(None, None, ALL, settings)
    assert "does not exist" in _text(view.notice)
    assert "does not exist" in _annotation(ov.update_activity(None, None, ALL, "day", settings))


def test_a_file_that_is_not_a_database_is_a_message(ov, tmp_path):
    bad = tmp_path / "shop.duckdb"
    bad.write_bytes(b"this is not a duckdb file" * 100)
    message = _text(_find(ov.build_layout(Settings(db_path=bad)), "ov-problem"))
    assert "cannot open database" in message.lower() and message.endswith("file!")


def test_without_profiles_segments_say_how_to_get_them(ov, tmp_path):
    settings = Settings(db_path=_write_shop(tmp_path / "shop.duckdb", with_profiles=False), k_anonymity=2)
    page = ov.build_layout(settings)
    dropdown = _find(page, "ov-segment")
    assert dropdown.disabled and [o["value"] for o in dropdown.options] == [ALL]
    figure, table = ov.update_segments(None, None, ALL, settings)
    assert "not available yet" in _annotation(figure) and "cli.py ingest" in _text(table)
    assert _kpi(ov.update_overview(None, None, ALL, settings), "events") == "12"


def test_empty_database_says_to_ingest(ov, tmp_path):
    path = tmp_path / "empty.duckdb"
    duckdb.connect(str(path)).close()
    assert "no events table" in _text(_find(ov.build_layout(Settings(db_path=path)), "ov-problem"))


# --------------------------------------------------------------------------- the app shell


def test_layout_uses_the_serving_apps_settings(ov, served, shop):
    from service import access
    from service.users import get_user

    with served.server.test_request_context("/"):
        access.start_session(get_user(shop.users_file, ACCOUNTS[ADMIN][0]))  # the layout checks the role
        page = ov.layout()
    dates = _find(page, "ov-dates")
    assert (dates.start_date, dates.end_date) == ("2024-01-01", "2024-01-10")
    segments = _find(page, "ov-segment")
    assert [o["value"] for o in segments.options] == [ALL, profiles.CHAMPIONS]  # loyal/browsers < k


def test_index_serves_vendored_css_and_no_cdn(served):
    client = served.server.test_client()
    sign_in(client, ADMIN)
    html = client.get("/").get_data(as_text=True)
    assert "/assets/bootstrap.min.css" in html and "/assets/recsight.css" in html
    assert "cdn" not in html.lower() and "https://" not in html
    assert client.get("/assets/bootstrap.min.css").status_code == 200


def test_sidebar_lists_pages_in_order_without_404(served, shop):
    import app as app_module
    from service.access import start_session
    from service.users import get_user

    with served.server.test_request_context("/"):
        start_session(get_user(shop.users_file, ACCOUNTS[ADMIN][0]))
        shell = app_module._shell()
    names = [page["name"] for page in app_module.nav_pages()]
    assert names[0] == "Shop overview" and "Page not found" not in names
    assert "Shop overview" in _text(_find(shell, "rs-nav"))


def test_serve_runs_waitress_with_several_threads(monkeypatch, shop):
    import waitress

    import app as app_module

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(waitress, "serve", lambda wsgi, **kw: calls.append((wsgi, kw)))
    app_module.serve(replace(shop, host="127.0.0.1", port=8123))
    (wsgi, kwargs), = calls
    client = wsgi.test_client()  # the Flask server of a real app
    sign_in(client, ADMIN)
    assert client.get("/").status_code == 200
    assert (kwargs["host"], kwargs["port"]) == ("127.0.0.1", 8123) and kwargs["threads"] > 1


def test_module_server_is_built_from_the_environment(monkeypatch, shop):
    import app as app_module

    monkeypatch.setenv("RECSIGHT_DB", str(shop.db_path))
    monkeypatch.setenv("RECSIGHT_USERS", str(shop.users_file))
    monkeypatch.setenv("RECSIGHT_AUDIT_DB", str(shop.audit_db))
    monkeypatch.setattr(app_module, "_default_app", None)
    server = app_module.server
    client = server.test_client()
    sign_in(client, ADMIN)
    assert client.get("/").status_code == 200
    from pages._parts import current_settings

    with server.test_request_context("/"):
        assert current_settings().db_path == shop.db_path
