"""No text overflows its box, at 1440 and at 800 px, on every page a person reads (issue 17,
"Figures and layout"): checked from element bounds (tests/browser/bounds.py), with the charts
drawn, the customer's list shown and the Why? dialog open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.users import ADMIN, SUPPORT
from tests.browser.bounds import overflows
from tests.browser.conftest import WINDOW
from tests.browser.test_agent_view import ITEMS, _look_up, _open_why, raw_ids  # noqa: F401  (a fixture)
from tests.browser.test_model import GRAPHS
from tests.browser.test_overview import GRAPHS as OVERVIEW_GRAPHS

pytestmark = pytest.mark.browser

WIDTHS = (1440, 800)


@pytest.fixture(params=WIDTHS, ids=lambda width: f"{width}px")
def sized(request, browser) -> Iterator:
    """The signed-in browser with a window ``request.param`` pixels wide (put back afterwards)."""
    browser.driver.set_window_size(request.param, WINDOW[1])
    try:
        yield browser
    finally:
        browser.driver.set_window_size(*WINDOW)


def _charts_drawn(browser, graphs: tuple[str, ...]) -> None:
    for graph in graphs:
        browser.wait_for(f"#{graph} .main-svg", timeout=60)
    browser.wait_until_idle(timeout=60)


def _report(problems: list[str]) -> str:
    return "text that does not fit:\n  " + "\n  ".join(problems)


def test_the_overview_fits(sized):
    sized.sign_in(ADMIN)
    sized.open("/", "#ov-activity")
    _charts_drawn(sized, OVERVIEW_GRAPHS)
    problems = overflows(sized.driver, "#_pages_content")
    assert not problems, _report(problems)


def test_the_model_page_fits(sized):
    sized.sign_in(ADMIN)
    sized.open("/model", "#mo-kpi-served")
    _charts_drawn(sized, GRAPHS)
    sized.wait_for_text("#mo-faithfulness", lambda text: "Customers · items checked" in text, timeout=60)
    problems = overflows(sized.driver, "#_pages_content")
    assert not problems, _report(problems)


def test_the_audit_page_fits(sized):
    sized.sign_in(ADMIN)
    sized.open("/audit", "#au-grid .ag-row")
    sized.wait_until_idle()
    problems = overflows(sized.driver, "#_pages_content")
    assert not problems, _report(problems)


@pytest.mark.parametrize("role", [SUPPORT, ADMIN])
def test_the_customer_page_and_why_fit(sized, raw_ids, role):  # noqa: F811  (raw_ids is the fixture)
    sized.sign_in(role)
    _look_up(sized, raw_ids[2])
    sized.wait_for("#cu-items .rs-reasons li", timeout=60)
    sized.wait_until_idle(timeout=60)
    problems = overflows(sized.driver, "#_pages_content")
    _open_why(sized)
    sized.wait_until_idle(timeout=60)
    problems += [f"Why? dialog: {p}" for p in overflows(sized.driver, "#cu-why-modal .modal-dialog")]
    sized.click("#cu-why-modal .btn-close")
    assert not problems, _report(problems)
