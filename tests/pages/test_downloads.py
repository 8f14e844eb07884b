"""The pages' "Download CSV": each download holds exactly the rows of the table or figure the page
shows (the same frame), keeps every value hidden for k-anonymity hidden, is handed only to the
roles that may see the page (by the guard, and by the callback body itself), and is recorded in
the audit log. The audit log's download reads the very entries the grid listed, never newer ones.

On the session's trained shop with the shipped k (10), and the day of ``test_k_anonymity``: a
loyal-segment selection the page accepts whose buyers are fewer than k.
"""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import date
from typing import Any

import dash
import duckdb
import pandas as pd
import pytest
from dash.exceptions import PreventUpdate

from analytics import profiles, schema
from dashboard.csv_tables import ShownTable, csv_text, table_from_store
from errors import RecsightError
from service import audit
from service.users import ADMIN, ANALYST, SUPPORT, get_user
from settings import Settings
from tests.components import find as _find
from tests.components import text as _text
from tests.service.support import ACCOUNTS, sign_in

SEGMENT = profiles.LOYAL
DAY = date(2024, 5, 1)


@pytest.fixture(scope="module")
def au(served: Any):
    import pages.audit as module

    return module


@pytest.fixture(scope="module")
def dl(served: Any):
    import pages._downloads as module

    return module


@pytest.fixture(scope="module")
def day(shop: Settings) -> str:
    """A day with k or more loyal customers active but fewer than k buyers."""
    with duckdb.connect(str(shop.db_path), read_only=True) as con:
        row = con.execute(f"""
            SELECT CAST(e.{schema.TS} AS DATE) AS d, count(DISTINCT e.{schema.USER_ID}) AS active,
                   count(DISTINCT e.{schema.USER_ID})
                       FILTER (WHERE e.{schema.EVENT_TYPE} = '{schema.PURCHASE}') AS buyers
            FROM {schema.EVENTS} AS e
            WHERE e.{schema.USER_ID} IN (SELECT {schema.USER_ID} FROM {profiles.USER_PROFILES}
                                         WHERE {profiles.RFM_SEGMENT} = ?)
            GROUP BY ALL HAVING active >= ? AND buyers BETWEEN 1 AND ? - 1
            ORDER BY active DESC, d LIMIT 1""", [SEGMENT, shop.k_anonymity, shop.k_anonymity]).fetchone()
    assert row is not None
    return row[0].isoformat()


class Recorder:
    """Stands in for ``access.record_action``: keeps the rows a download would append."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str | None, str | None]] = []

    def __call__(self, action: str, customer: str | None = None, detail: str | None = None) -> None:
        self.rows.append((action, customer, detail))


def _csv(table: ShownTable) -> list[list[str]]:
    return list(csv.reader(io.StringIO(csv_text(table))))


def _number(text: str) -> float | None:
    return None if text in ("–", "—", "") else float(text.replace(",", "").removeprefix("€"))  # the page's EUR


# --------------------------------------------------------------------------- the overview


def test_the_funnel_download_is_the_funnel_with_its_hidden_stages_empty(ov, shop, day):
    view = ov.update_overview(day, day, SEGMENT, shop)
    trace, table = view.funnel.data[0], view.funnel_table
    assert [row[:3] for row in table.rows] == list(zip(trace.y, trace.x, trace.customdata))
    hidden = [row for row in table.rows if row[1] is None]
    assert hidden, "the selection has no funnel stage of fewer than k customers"
    lines = _csv(table)
    for row in lines[1:]:
        if row[0] in {h[0] for h in hidden}:
            assert row[1:3] == ["", ""]


def test_the_activity_download_is_the_charts_points(ov, shop, day):
    for segment, freq in ((SEGMENT, "day"), (ov.ALL_CUSTOMERS, "week")):
        shown = ov.activity_view(day if segment == SEGMENT else None, day if segment == SEGMENT else None, segment,
                                 freq, shop)
        events, revenue = shown.figure.data
        rows = shown.table.rows
        assert [row[0] for row in rows] == [pd.Timestamp(x).date().isoformat() for x in events.x]
        assert [row[1] for row in rows] == list(events.y) and [row[2] for row in rows] == list(events.customdata)
        assert [row[3] for row in rows] == list(revenue.customdata) and [row[4] for row in rows] == list(revenue.y)
    assert rows and shown.table.columns[0] == "Week starting"
    single = ov.activity_view(day, day, SEGMENT, "day", shop).table.rows
    assert single[0][3] is None and single[0][4] is None  # fewer than k bought: purchases and revenue hidden


def test_the_ranking_downloads_are_the_bars_and_never_hold_a_hidden_amount(ov, shop, day):
    hidden = 0
    for by in ("events", "revenue"):
        for shown in ov.rankings_view(day, day, ov.ALL_CUSTOMERS, "top", by, shop):
            drawn = shown.figure.data[0].customdata if shown.figure.data else []  # no row: an empty figure
            assert [list(row) for row in shown.table.rows] == [list(row) for row in drawn]
            hidden += sum(row[2] is None for row in shown.table.rows)
    assert hidden, "no category or brand of the day has its purchases hidden"


def test_the_segment_downloads_are_the_bars_and_the_table(ov, shop, day):
    view = ov.segments_view(day, day, SEGMENT, shop)
    bars = view.figure.data[0]
    assert [row[0] for row in view.sizes.rows] == list(bars.y)
    assert [row[1] for row in view.sizes.rows] == list(bars.x)
    page_rows = [[_text(cell) for cell in row.children] for row in view.table.children[0].children[1].children]
    assert len(page_rows) == len(view.activity.rows)
    for shown, row in zip(page_rows, view.activity.rows):
        assert shown[0] == row[0]
        assert [_number(cell) for cell in shown[1:3]] == list(row[1:3])
        assert (_number(shown[3]) is None) == (row[3] is None)
        assert row[3] is None or _number(shown[3]) == pytest.approx(row[3], abs=0.5)
    loyal = next(row for row in view.activity.rows if row[0].lower() == SEGMENT)
    assert loyal[3] is None  # the page shows "–": fewer than k bought


def test_a_refused_selection_offers_no_download(ov, shop):
    view = ov.update_overview("2030-01-02", "2030-01-01", ov.ALL_CUSTOMERS, shop)
    assert view.funnel_table is None
    assert ov.activity_view("2030-01-02", "2030-01-01", None, "day", shop).table is None


# --------------------------------------------------------------------------- the model page


def test_the_model_downloads_are_its_tables_and_figures(pm, shop):
    body = pm.update_version(None, shop).body
    grid = _find(body, "mo-eval-grid")
    evaluation = table_from_store(_find(body, {"type": "mo-csv-data", "table": "evaluation"}).data)
    assert [row[0] for row in evaluation.rows] == [row["label"] for row in grid.rowData]
    assert evaluation.columns[1] == "NDCG@10" and evaluation.columns[-1] == "vs best baseline"
    assert [row[1] for row in evaluation.rows] == [row["ndcg@10"] for row in grid.rowData]
    metadata = table_from_store(_find(body, {"type": "mo-csv-data", "table": "metadata"}).data)
    assert _text(_find(body, "mo-metadata"), sep="") == "".join(f"{field}{value}" for field, value in metadata.rows)

    view, shown = pm.evaluation_view(None, "hr@10", shop)
    assert [row[0] for row in shown.bars.rows] == list(view.bars.data[0].y)
    assert [row[1] for row in shown.bars.rows] == pytest.approx(list(view.bars.data[0].x))
    assert [row[1] for row in shown.segments.rows] == [int(y.rsplit("(", 1)[1].rstrip(")").replace(",", ""))
                                                       for y in view.segments.data[0].y]
    assert [list(row[2:]) for row in shown.segments.rows] == [list(z) for z in view.segments.data[0].z]


def test_the_importance_and_dependence_downloads_are_their_figures(pm, shop):
    for by in ("feature", "group"):
        shown = pm.importance_view(None, by, pm.ALL_SEGMENTS, shop)
        assert [row[0] for row in shown.table.rows] == [html.unescape(y) for y in shown.figure.data[0].y]
        assert [row[1] for row in shown.table.rows] == list(shown.figure.data[0].x)
        assert 0 < len(shown.table.rows) <= pm.IMPORTANCE_BARS
    from explain.global_view import global_importance

    top = global_importance(shop.models_dir).by_feature()["feature"].iloc[0]
    plot = pm.dependence_view(None, top, None, shop)
    points = plot.figure.data[0]
    assert [row[1] for row in plot.table.rows] == list(points.x)
    assert [row[2] for row in plot.table.rows] == list(points.y)
    assert [[row[5], row[4]] for row in plot.table.rows] == [list(p[:2]) for p in points.customdata]
    assert all(row[5] >= shop.k_anonymity for row in plot.table.rows)  # bins of k or more customers, no rows


def test_the_faithfulness_downloads_are_the_checks_and_both_figures(pm, shop):
    view, shown = pm.faithfulness_view(None, shop)
    rows = view.table.children[0].children[0].children
    assert [(_text(row.children[0]), _text(row.children[1])) for row in rows] == [tuple(r) for r in shown.checks.rows]
    assert [row[1] for row in shown.deletion.rows] == [trace.y[0] for trace in view.deletion.data]
    assert sum(row[2] for row in shown.completeness.rows) == len(view.completeness.data[0].x)
    elsewhere, nothing = pm.faithfulness_view("20000101-000000-000000", shop)
    assert nothing == (None, None, None)


# --------------------------------------------------------------------------- the download body and the roles


def _signed_in(served: Any, shop: Settings, role: str | None):
    from service import access

    context = served.server.test_request_context("/")
    context.push()
    if role is not None:
        access.start_session(get_user(shop.users_file, ACCOUNTS[role][0]))
    return context


def test_the_download_hands_the_stored_table_to_the_pages_roles_only(dl, ov, pm, au, served, shop, day):
    table = ov.update_overview(day, day, SEGMENT, shop).funnel_table
    store = table.to_store()
    for role, page, allowed in ((ANALYST, ov, True), (ADMIN, ov, True), (SUPPORT, ov, False), (None, ov, False),
                                (ANALYST, pm, True), (SUPPORT, pm, False), (ANALYST, au, False)):
        record = Recorder()
        context = _signed_in(served, shop, role)
        try:
            name = "funnel" if page is ov else "models"
            csv_page = page.CSV if page is not au else dl.DownloadPage(au.__name__, "audit", "au", frozenset({name}))
            file, status = dl.download(csv_page, name, 1, store, record=record, today=DAY)
        finally:
            context.pop()
        if allowed:
            assert status == "" and file["filename"] == f"recsight-{csv_page.slug}-{name}-20240501.csv"
            assert file["content"] == csv_text(table) and file["type"] == "text/csv"
            assert record.rows == [(audit.REPORT_EXPORT, None, f"CSV {csv_page.slug} {name}: {len(table.rows)} rows")]
        else:
            assert file is dash.no_update and "not open to your role" in status and record.rows == [], (role, page)


def test_the_download_refuses_what_is_not_a_table_of_the_page(dl, ov, served, shop):
    context = _signed_in(served, shop, ANALYST)
    try:
        with pytest.raises(PreventUpdate):
            dl.download(ov.CSV, "funnel", None, {"columns": ["A"], "rows": []})
        for name, store, message in (("secrets", {"columns": ["A"], "rows": []}, "no such table"),
                                     ("funnel", None, "nothing to download yet"),
                                     ("funnel", {"columns": ["A"], "rows": [[True]]}, "not readable")):
            file, status = dl.download(ov.CSV, name, 1, store, record=Recorder())
            assert file is dash.no_update and message in status.lower(), status
    finally:
        context.pop()


def _download_request(served: Any, prefix: str, name: str, store: Any) -> dict[str, Any]:
    output = next(key for key in served.callback_map if f'"type":"{prefix}-csv-file"' in key)

    def component(kind: str) -> dict[str, str]:
        return {"table": name, "type": f"{prefix}-{kind}"}

    return {"output": output,
            "outputs": [{"id": component("csv-file"), "property": "data"},
                        {"id": component("csv-status"), "property": "children"}],
            "inputs": [{"id": component("csv"), "property": "n_clicks", "value": 1}],
            "state": [{"id": component("csv-data"), "property": "data", "value": store}],
            "changedPropIds": [json.dumps(component("csv"), separators=(",", ":")) + ".n_clicks"]}


def test_over_http_analysts_get_the_csv_and_support_is_refused(served, ov, shop, day):
    table = ov.update_overview(day, day, SEGMENT, shop).funnel_table
    body = _download_request(served, "ov", "funnel", table.to_store())
    before = len(audit.read_entries(shop.audit_db, action=audit.REPORT_EXPORT))
    for role, status in ((ANALYST, 200), (SUPPORT, 403)):
        client = served.server.test_client()
        assert sign_in(client, role).status_code == 302
        response = client.post("/_dash-update-component", json=body)
        assert response.status_code == status, (role, response.get_data(as_text=True)[:300])
        if status == 200:
            data = response.get_json()["response"]
            file = next(value["data"] for value in data.values() if "data" in value)
            assert file["content"] == csv_text(table) and file["filename"].startswith("recsight-overview-funnel-")
    exports = audit.read_entries(shop.audit_db, action=audit.REPORT_EXPORT)
    assert len(exports) == before + 1 and exports[0].who == ACCOUNTS[ANALYST][0]
    assert exports[0].detail.startswith("CSV overview funnel")
    client = served.server.test_client()
    sign_in(client, SUPPORT)
    model = _download_request(served, "mo", "models", table.to_store())
    assert client.post("/_dash-update-component", json=model).status_code == 403


# --------------------------------------------------------------------------- the audit log


@pytest.fixture
def log_settings(tmp_path) -> Settings:
    path = tmp_path / "audit.duckdb"
    audit.record(path, "ann", "admin", audit.SIGN_IN, detail="from 127.0.0.1")
    audit.record(path, "sue", "support", audit.CUSTOMER_LOOKUP, customer="c_" + "0" * 20)
    audit.record(path, "=HYPERLINK(\"http://x\")", None, audit.SIGN_IN_FAILED, detail="+unknown user")
    return Settings(audit_db=path)


def _fields(au: Any, rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[row[name] for name, _, _ in au.COLUMNS] for row in rows]


def test_the_audit_download_is_the_listing_shown_and_is_recorded(au, log_settings):
    view = au.update_audit(au.ALL, au.ALL, None, None, log_settings)
    record = Recorder()
    file = au.export_log(view.listing, None, log_settings, record=record, today=DAY)
    assert file["filename"] == "recsight-audit-log-20240501.csv"
    lines = list(csv.reader(io.StringIO(file["content"])))
    assert lines[0] == [header for _, header, _ in au.COLUMNS]
    shown = _fields(au, view.rows)
    shown[0][1] = "'" + shown[0][1]  # a sign-in name a spreadsheet would run is defused
    shown[0][5] = "'" + shown[0][5]
    assert lines[1:] == shown
    assert record.rows == [(audit.REPORT_EXPORT, None, "audit log CSV: 3 entries (no filters)")]


def test_entries_added_since_the_listing_are_not_in_the_download(au, log_settings, monkeypatch):
    monkeypatch.setattr(audit, "MAX_ENTRIES", 2)
    view = au.update_audit(None, None, None, None, log_settings)
    assert len(view.rows) == 2
    for i in range(5):
        audit.record(log_settings.audit_db, f"new{i}", "admin", audit.SIGN_IN)
    file = au.export_log(view.listing, None, log_settings, record=Recorder())
    assert list(csv.reader(io.StringIO(file["content"])))[1:] == [
        [cell if not cell.startswith(("=", "+")) else "'" + cell for cell in row] for row in _fields(au, view.rows)]
    support = au.update_audit("sue", au.ALL, None, None, log_settings)
    audit.record(log_settings.audit_db, "sue", "support", audit.SIGN_OUT)
    only = au.export_log(support.listing, None, log_settings, record=Recorder())
    assert [line[1] for line in csv.reader(io.StringIO(only["content"]))][1:] == ["sue"]


def test_the_audit_download_follows_the_grids_own_filter_and_sort(au, log_settings):
    view = au.update_audit(None, None, None, None, log_settings)
    oldest_first = list(reversed(view.seqs))
    file = au.export_log(view.listing, oldest_first[:2], log_settings, record=Recorder())
    assert [line[1] for line in csv.reader(io.StringIO(file["content"]))][1:] == ["ann", "sue"]
    for forged in ([max(view.seqs) + 1], [view.seqs[0], view.seqs[0]], ["1"], [True], "x"):
        with pytest.raises(RecsightError, match="changed"):
            au.export_log(view.listing, forged, log_settings, record=Recorder())
    for listing in (None, {}, {**view.listing, "count": 10**9}, {**view.listing, "upto": "7"},
                    {**view.listing, "start": "not a day"}):
        with pytest.raises(RecsightError):
            au.export_log(listing, None, log_settings, record=Recorder())


def test_only_admins_get_the_audit_download(dl, au, served, shop):
    for role in (ADMIN, ANALYST, SUPPORT, None):
        context = _signed_in(served, shop, role)
        try:
            if role == ADMIN:
                dl.require_page(au.__name__)
            else:
                with pytest.raises(RecsightError, match="not open to your role"):
                    dl.require_page(au.__name__)
        finally:
            context.pop()
    output = next(key for key in served.callback_map if "au-download.data" in key)
    body = {"output": output, "outputs": [{"id": "au-download", "property": "data"},
                                          {"id": "au-csv-status", "property": "children"}],
            "inputs": [{"id": "au-csv", "property": "n_clicks", "value": 1}],
            "state": [{"id": "au-listing", "property": "data", "value": {"who": None, "action": None, "start": None,
                                                                         "end": None, "upto": 1, "count": 1}},
                      {"id": "au-shown", "property": "data", "value": None}],
            "changedPropIds": ["au-csv.n_clicks"]}
    for role, status in ((ANALYST, 403), (SUPPORT, 403), (ADMIN, 200)):
        client = served.server.test_client()
        sign_in(client, role)
        assert client.post("/_dash-update-component", json=body).status_code == status, role
