""""Download CSV" in headless Chromium: on the overview, the model page and the audit log a click
saves a CSV whose rows are the rows of the table on the page; an analyst's download is audited;
support gets none of these downloads, not even by calling their callbacks.

Chromium saves into a folder of the test's own (``Browser.setDownloadBehavior`` over the DevTools
protocol, on the session's driver), so the shared conftest is unchanged.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

from analytics import schema
from service import audit
from service.users import ADMIN, ANALYST, SUPPORT
from tests.browser.test_user import _reach

pytestmark = pytest.mark.browser

_POST = """
const done = arguments[arguments.length - 1];
fetch('/_dash-update-component', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                  body: arguments[0]})
  .then(r => done(r.status)).catch(e => done(String(e)));
"""


class Downloads:
    """The folder Chromium saves into, and waiting for a file to land there."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def wait(self, prefix: str, timeout: float = 20.0) -> list[list[str]]:
        """The rows of the first finished ``<prefix>*.csv``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = sorted(self.folder.glob(f"{prefix}*.csv"))
            if found and not list(self.folder.glob("*.crdownload")):
                with open(found[0], newline="", encoding="utf-8") as handle:
                    return list(csv.reader(handle))
            time.sleep(0.1)
        held = sorted(path.name for path in self.folder.iterdir())
        raise AssertionError(f"no {prefix}*.csv was saved; the folder holds {held}")


@pytest.fixture
def downloads(browser, tmp_path: Path) -> Downloads:
    folder = tmp_path / "downloads"
    folder.mkdir()
    browser.driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                   {"behavior": "allow", "downloadPath": str(folder)})
    return Downloads(folder)


def _number(text: str) -> float | None:
    return None if text in ("–", "—", "") else float(text.replace(",", "").replace("%", "").removeprefix("€"))


def _grid_rows(browser, grid: str, columns: list[str]) -> dict[int, dict[str, str]]:
    """The rendered rows of an AG Grid by row index (its pinned and centre parts joined)."""
    rows: dict[int, dict[str, str]] = {}
    for row in browser.driver.find_elements("css selector", f"{grid} .ag-row"):
        index = int(row.get_attribute("row-index"))
        for column in columns:
            for cell in row.find_elements("css selector", f"[col-id='{column}']"):
                rows.setdefault(index, {})[column] = cell.text.strip()
    return rows


def _download_body(prefix: str, table: str, store: object) -> str:
    def component(kind: str, value: object) -> dict[str, object]:
        return {"table": value, "type": f"{prefix}-{kind}"}

    def key(kind: str, prop: str) -> str:
        return json.dumps(component(kind, ["MATCH"]), sort_keys=True, separators=(",", ":")) + "." + prop

    return json.dumps({
        "output": f"..{key('csv-file', 'data')}...{key('csv-status', 'children')}..",
        "outputs": [{"id": component("csv-file", table), "property": "data"},
                    {"id": component("csv-status", table), "property": "children"}],
        "inputs": [{"id": component("csv", table), "property": "n_clicks", "value": 1}],
        "state": [{"id": component("csv-data", table), "property": "data", "value": store}],
        "changedPropIds": [json.dumps(component("csv", table), sort_keys=True, separators=(",", ":")) + ".n_clicks"],
    })


def test_an_analyst_downloads_the_overviews_segment_table_and_funnel(browser, downloads, live_app, shop_value):
    browser.sign_in(ANALYST)
    try:
        browser.open("/", "#ov-kpi-events")
        browser.wait_for_text("#ov-segment-table thead", lambda text: "CUSTOMERS" in text.upper())
        browser.click("#ov-csv-segment-activity button")  # enabled once the table is drawn
        rows = downloads.wait("recsight-overview-segment-activity-")
        shown = [[cell.text.strip() for cell in row.find_elements("css selector", "td")]
                 for row in browser.driver.find_elements("css selector", "#ov-segment-table tbody tr")]
        assert rows[0] == ["Segment", "Customers", "Active", "Revenue (EUR)"]  # the default RECSIGHT_CURRENCY
        assert len(rows) - 1 == len(shown) > 0
        for saved, on_page in zip(rows[1:], shown):
            assert saved[0] == on_page[0]
            assert [_number(cell) for cell in saved[1:3]] == [_number(cell) for cell in on_page[1:3]]
            assert (saved[3] == "") == (on_page[3] == "–")  # a hidden revenue stays hidden
            assert saved[3] == "" or float(saved[3]) == pytest.approx(_number(on_page[3]), abs=0.5)

        browser.click("#ov-csv-funnel button")
        funnel = downloads.wait("recsight-overview-funnel-")
        views = shop_value(f"SELECT count(*) FROM {schema.EVENTS} WHERE {schema.EVENT_TYPE} = '{schema.VIEW}'")
        assert funnel[0][:3] == ["Stage", "Events", "Customers"] and funnel[1][:2] == ["Viewed", str(views)]
        exports = audit.read_entries(live_app.settings.audit_db, action=audit.REPORT_EXPORT, limit=2)
        assert [entry.detail.split(":")[0] for entry in exports] == ["CSV overview funnel",
                                                                     "CSV overview segment-activity"]
        assert browser.console_errors() == []
    finally:
        browser.sign_out()


def test_an_analyst_downloads_the_model_evaluation_as_the_grid_shows_it(browser, downloads):
    browser.sign_in(ANALYST)
    try:
        browser.open("/model", "#mo-eval-grid")
        browser.wait_for_text("#mo-eval-grid", lambda text: "(served)" in text)
        _reach(browser, "#mo-csv-evaluation button")
        browser.click("#mo-csv-evaluation button")
        rows = downloads.wait("recsight-model-evaluation-")
        assert rows[0][:2] == ["Model", "NDCG@10"] and rows[0][-1] == "vs best baseline"
        grid = _grid_rows(browser, "#mo-eval-grid", ["label", "ndcg@10", "hr@10"])
        assert len(grid) == len(rows) - 1
        hit_rate = rows[0].index("Hit rate@10")
        for index, saved in enumerate(rows[1:]):
            assert saved[0] == grid[index]["label"]
            assert f"{float(saved[1]):.4f}" == grid[index]["ndcg@10"]
            assert f"{float(saved[hit_rate]):.4f}" == grid[index]["hr@10"]
        assert browser.console_errors() == []
    finally:
        browser.sign_out()


def test_the_admin_downloads_the_audit_log_as_listed(browser, downloads, live_app):
    browser.sign_in(ADMIN)
    browser.open("/audit", "#au-grid .ag-row")
    browser.wait_for_text("#au-summary", lambda text: text.endswith("newest first."))
    columns = ["when", "who", "role", "action", "customer", "detail"]
    grid = _grid_rows(browser, "#au-grid", columns)
    browser.click("#au-csv")
    rows = downloads.wait("recsight-audit-log-")
    assert rows[0] == ["When (UTC)", "User", "Role", "Action", "Customer (pseudonym)", "Detail"]
    assert grid and len(rows) - 1 >= len(grid)
    for index, cells in grid.items():
        assert rows[index + 1] == [cells[column] for column in columns], index
    newest = audit.read_entries(live_app.settings.audit_db, limit=1)[0]
    assert newest.action == audit.REPORT_EXPORT and newest.detail.startswith("audit log CSV:")
    assert newest.detail not in {row[5] for row in rows[1:]}  # entries added after the listing are not in it
    assert browser.console_errors() == []


def test_support_gets_none_of_these_downloads(browser):
    table = {"columns": ["Stage", "Events"], "rows": [["Viewed", 1]]}
    overview, model = _download_body("ov", "funnel", table), _download_body("mo", "models", table)
    audit_log = json.dumps({
        "output": "..au-download.data...au-csv-status.children..",
        "outputs": [{"id": "au-download", "property": "data"}, {"id": "au-csv-status", "property": "children"}],
        "inputs": [{"id": "au-csv", "property": "n_clicks", "value": 1}],
        "state": [{"id": "au-listing", "property": "data", "value": None},
                  {"id": "au-shown", "property": "data", "value": None}],
        "changedPropIds": ["au-csv.n_clicks"]})
    browser.sign_in(ANALYST)  # the same requests do run for the roles of the pages
    browser.open("/no-such-page", "#nf-title")
    statuses = [browser.driver.execute_async_script(_POST, body) for body in (overview, model, audit_log)]
    assert statuses == [200, 200, 403]
    browser.sign_in(SUPPORT)
    try:
        browser.open("/no-such-page", "#nf-title")
        assert not browser.driver.find_elements("css selector", ".rs-csv-button")
        assert [browser.driver.execute_async_script(_POST, body) for body in (overview, model, audit_log)] == [
            403, 403, 403]
        browser.driver.get(browser.base_url + "/")
        assert not browser.driver.find_elements("css selector", ".rs-csv-button")
    finally:
        browser.console_errors()  # the refused requests are logged by Chromium; expected here
        browser.sign_out()
