"""The Performance page: what to send before any impression, then the figures per position and per
model version and variant with numbers about fewer than k customers hidden, and downloads that
hold exactly the tables shown, for the page's roles only.

A shop of its own (no model needed): variant A of v1 shown to 12 customers, each of whom clicked
the first item and ten of whom bought it (10 EUR); variant B of v2 shown to 3 customers, fewer
than the shipped k (10), so its row shows no number."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta
from typing import Any

import dash
import pytest

from analytics.live_store import LiveStore
from dashboard.csv_tables import csv_text, table_from_store
from errors import RecsightError
from service.users import ANALYST, SUPPORT, get_user
from settings import Settings
from tests.components import find, text
from tests.conftest import TEST_SECRET
from tests.service.support import ACCOUNTS, app_settings
from workflows import performance

T0 = datetime(2024, 3, 1, 12, 0, 0)
DAY = date(2024, 5, 1)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = app_settings(tmp_path_factory.mktemp("performance_page"))
    assert settings.k_anonymity == 10
    shown = [{"event_id": f"s{n}", "user_id": f"c{n}", "ts": T0.isoformat(), "list": "home",
              "items": ["i1", "i2", "i3"], "model_version": "v1" if n < 12 else "v2", "experiment": "hp",
              "variant": "A" if n < 12 else "B"} for n in range(15)]
    assert performance.append_impressions(settings.db_path, shown, TEST_SECRET).accepted == 15
    events = [{"event_id": f"c{n}", "user_id": f"c{n}", "item_id": "i1", "event_type": "click",
               "ts": (T0 + timedelta(minutes=5)).isoformat()} for n in range(12)]
    events += [{"event_id": f"p{n}", "user_id": f"c{n}", "item_id": "i1", "event_type": "purchase", "price": 10.0,
                "ts": (T0 + timedelta(minutes=9)).isoformat()} for n in range(10)]
    assert not LiveStore(settings.db_path).append_events(events, TEST_SECRET).rejected
    return settings


@pytest.fixture(scope="module")
def pf(served: Any):
    import pages.performance as module

    return module


def _rows(component: Any) -> list[list[str]]:
    body = component.children.children[1]
    return [[text(cell) for cell in row.children] for row in body.children]


# --------------------------------------------------------------------------- the layout


def test_before_any_impression_the_page_says_what_to_send(pf, tmp_path):
    empty = app_settings(tmp_path)
    layout = pf.build_layout(empty)
    assert find(layout, "pf-list") is None and find(layout, "pf-empty") is not None
    curl = text(find(layout, "pf-curl"))
    assert "POST" in curl and "/api/v1/impressions" in curl and "Content-Type: application/json" in curl
    body = json.loads(curl.split("-d '", 1)[1].rstrip("'"))
    assert set(body[0]) == {"event_id", "user_id", "ts", "list", "items", "model_version", "experiment", "variant"}


def test_with_impressions_the_layout_offers_the_filters_and_a_download_per_table(pf, shop):
    layout = pf.build_layout(shop)
    assert find(layout, "pf-empty") is None
    assert [o["label"] for o in find(layout, "pf-list").options] == ["All lists", "home"]
    assert [o["label"] for o in find(layout, "pf-version").options] == ["All model versions", "v1", "v2"]
    dates = find(layout, "pf-dates")
    assert (dates.start_date, dates.end_date) == ("2024-03-01", "2024-03-01")
    for name in ("over-time", "positions", "versions"):
        assert find(layout, f"pf-csv-{name}") is not None


# --------------------------------------------------------------------------- the figures


def test_the_figures_per_position_and_variant_hide_what_fewer_than_k_did(pf, shop):
    view = pf.update_performance("all", "all", "2024-03-01", "2024-03-01", shop)
    kpis = [text(card) for card in view.kpis]
    assert "15" in kpis[0] and "45 item impressions" in kpis[0]
    assert "26.67%" in kpis[1] and "22.22%" in kpis[2] and "€2,222.22" in kpis[3] and "€100.00" in kpis[3]
    positions = _rows(view.positions)
    assert positions[0][:6] == ["1", "15", "15", "15", "12", "80.00%"]
    assert positions[0][-2:] == ["€100.00", "€6,666.67"]
    assert positions[1][4:6] == ["0", "0.00%"]  # nobody clicked the second place: zero is shown
    versions = {row[0]: row for row in _rows(view.versions)}
    assert versions["v1"][1:3] == ["hp", "A"] and versions["v1"][7] == "33.33%"
    assert set(versions["v2"][3:]) == {"–"}  # three customers: no number at all
    assert [trace.name for trace in view.figure.data] == ["v1 · hp: A", "v2 · hp: B"]
    assert list(view.figure.data[0].y) == pytest.approx([12 / 36])
    assert view.figure.data[1].y[0] is None or view.figure.data[1].y[0] != view.figure.data[1].y[0]  # hidden


def test_filters_narrow_the_page_and_bad_values_are_refused(pf, shop):
    v2 = pf.update_performance("all", json.dumps("v2"), None, None, shop)
    assert "hidden: fewer than 10 customers" in text(v2.kpis[1])
    later = pf.update_performance(json.dumps("home"), "all", "2024-03-02", "2024-03-02", shop)
    assert "No impressions in this selection" in text(later.notice)
    for bad in ("[1]", "{", 7):
        with pytest.raises(RecsightError, match="not readable"):
            pf.update_performance("all", bad, None, None, shop)


# --------------------------------------------------------------------------- downloads


def _signed_in(served: Any, shop: Settings, role: str):
    from service import access

    context = served.server.test_request_context("/")
    context.push()
    access.start_session(get_user(shop.users_file, ACCOUNTS[role][0]))
    return context


class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def __call__(self, action: str, customer: str | None = None, detail: str | None = None) -> None:
        self.rows.append((action, customer, detail))


def test_the_downloads_hold_the_tables_shown_and_only_the_pages_roles_get_them(pf, served, shop):
    from pages import _downloads as dl

    view, tables = pf.performance_view("all", "all", None, None, shop)
    positions = list(csv.reader(io.StringIO(csv_text(tables.positions))))
    assert positions[0] == ["Position", "Lists shown", "Item impressions", "Customers", "Clicks", "Click-through",
                            "Carts", "Purchases", "Conversion", "Revenue (EUR)", "Revenue per 1,000 impressions (EUR)"]
    assert [float(cell) for cell in positions[1]] == pytest.approx([1, 15, 15, 15, 12, 0.8, 0, 10, 10 / 15, 100,
                                                                    100 / 15 * 1000])
    assert len(positions) - 1 == len(_rows(view.positions))
    versions = list(csv.reader(io.StringIO(csv_text(tables.versions))))
    assert versions[2][:3] == ["v2", "hp", "B"] and set(versions[2][3:]) == {""}  # hidden: empty cells
    over_time = tables.over_time
    assert over_time.columns[0] == "Hour (UTC)" and [row[0] for row in over_time.rows] == ["2024-03-01 12:00:00"] * 2

    store = tables.positions.to_store()
    assert table_from_store(store) == tables.positions
    for role, allowed in ((ANALYST, True), (SUPPORT, False)):
        record = Recorder()
        context = _signed_in(served, shop, role)
        try:
            file, status = dl.download(pf.CSV, "positions", 1, store, record=record, today=DAY)
        finally:
            context.pop()
        if allowed:
            assert status == "" and file["filename"] == "recsight-performance-positions-20240501.csv"
            assert file["content"] == csv_text(tables.positions) and len(record.rows) == 1
        else:
            assert file is dash.no_update and "not open to your role" in status and record.rows == []


def test_the_page_is_registered_between_the_model_page_and_the_audit_log(pf):
    order = {page["path"]: page["order"] for page in dash.page_registry.values() if "order" in page}
    assert order["/model"] < order["/performance"] < order["/audit"]
    assert dash.page_registry[pf.__name__]["name"] == "Performance"
