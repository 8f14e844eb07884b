"""The customer lookup in headless Chromium, on the session's trained shop (tests/shop.py):
it opens cleanly, a typed shop id finds the customer, "Why?" shows the reasons and the charts,
a /user/<id> deep link looks up, two items can be compared, a report downloads, and each
lookup leaves one audit row."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analytics import schema
from analytics.privacy import pseudonymise
from service import audit
from service.users import ADMIN, SUPPORT
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.browser

ITEMS = "#cu-items .rs-item"
REASONS_READY = "#cu-items .rs-reasons li"


@pytest.fixture(scope="module")
def trained(live_app) -> Path:
    """The models folder the live app serves (the session's trained shop)."""
    return live_app.settings.models_dir


@pytest.fixture(scope="module")
def raw_ids(live_app) -> list[str]:
    synth = live_app.shop.export / "events.parquet"
    return sorted(set(pq.read_table(synth, columns=[schema.USER_ID]).column(0).to_pylist()))


@pytest.fixture
def lookup_page(browser, trained):
    browser.sign_in(ADMIN)
    browser.open("/user", "#cu-search")
    return browser


def _look_up(browser, typed: str) -> None:
    from selenium.webdriver.common.keys import Keys

    field = browser.wait_for("#cu-search")
    field.clear()
    field.send_keys(typed, Keys.ENTER)


def _reach(browser, css: str) -> None:
    """Scroll ``css`` to the middle at once: Bootstrap's smooth scrolling would keep it moving
    under the pointer while the shared click helper retries."""
    browser.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", browser.wait_for(css))


def _lookups(live_app, customer: str) -> int:
    return sum(entry.customer == customer for entry in
               audit.read_entries(live_app.settings.audit_db, action=audit.CUSTOMER_LOOKUP))


def test_lookup_page_opens_without_console_errors(lookup_page):
    assert lookup_page.text(".rs-page-title") == "Customer lookup"
    assert lookup_page.text("#rs-nav .active") == "Customer lookup"
    assert "Look a customer up" in lookup_page.text("#cu-intro")
    assert lookup_page.console_errors() == []


def test_typing_a_shop_id_finds_the_customer_with_reasons(lookup_page, live_app, raw_ids):
    browser = lookup_page
    pseudonym = pseudonymise(raw_ids[0], TEST_SECRET)
    before = _lookups(live_app, pseudonym)
    _look_up(browser, raw_ids[0])
    browser.wait_for_text("#cu-pseudonym", pseudonym)
    browser.wait_for("#cu-timeline .main-svg")
    assert len(browser.driver.find_elements("css selector", ITEMS)) == 10
    browser.wait_for(REASONS_READY, timeout=60)
    browser._wait(lambda d: d.current_url.endswith(f"/user/{pseudonym}"), 10, "the address bar kept the typed id")
    assert raw_ids[0] not in browser.driver.current_url
    assert _lookups(live_app, pseudonym) == before + 1
    assert browser.console_errors() == []


def test_why_opens_the_reasons_the_waterfall_and_the_history(lookup_page, raw_ids):
    browser = lookup_page
    _look_up(browser, raw_ids[1])
    browser.wait_for(ITEMS)
    title = browser.text("#cu-item-1 .rs-item-title")
    _reach(browser, "#cu-item-1 .rs-why-button")
    browser.click("#cu-item-1 .rs-why-button")
    browser.wait_for_text("#cu-why-title", lambda text: title in text, timeout=60)
    assert browser.wait_for("#cu-why-reasons").text.strip()
    browser.wait_for("#cu-why-waterfall .main-svg", timeout=60)
    browser.wait_for("#cu-why-history .main-svg")
    assert "what would change it" in browser.text("#cu-why-counterfactual").lower()
    browser.click("#cu-why-modal .btn-close")
    assert browser.console_errors() == []


def test_a_deep_link_looks_the_customer_up(browser, trained, live_app, raw_ids):
    pseudonym = pseudonymise(raw_ids[2], TEST_SECRET)
    before = _lookups(live_app, pseudonym)
    browser.open(f"/user/{pseudonym}", "#cu-pseudonym")
    assert browser.text("#cu-pseudonym") == pseudonym
    assert browser.wait_for("#cu-search").get_attribute("value") == pseudonym
    browser.wait_for(ITEMS)
    assert _lookups(live_app, pseudonym) == before + 1  # exactly one: the page does not look up twice
    assert browser.console_errors() == []


def test_an_unknown_id_is_a_clear_empty_state(lookup_page):
    _look_up(lookup_page, "NO-SUCH-CUSTOMER")
    assert "No customer found" in lookup_page.text("#cu-not-found")
    assert "NO-SUCH-CUSTOMER" in lookup_page.text("#cu-not-found-message")
    assert lookup_page.console_errors() == []


def test_a_wrong_case_or_an_overlong_id_is_told_not_guessed(lookup_page, raw_ids):
    shop_id = raw_ids[0]  # U000000: the shop's ids are upper case
    _look_up(lookup_page, shop_id.lower())
    message = lookup_page.text("#cu-not-found-message")
    assert "case-sensitive" in message and shop_id in message
    _look_up(lookup_page, "9" * 500)  # pasted, not cut to a valid-looking id without a word
    assert "at most 128 characters" in lookup_page.wait_for_text("#cu-problem", lambda text: bool(text))
    _look_up(lookup_page, "W" * 128)
    lookup_page.wait_for_text("#cu-not-found-message", lambda text: "W" * 40 in text)
    fits = lookup_page.driver.execute_script(
        "const m = document.querySelector('#cu-not-found-message'); return m.scrollWidth <= m.clientWidth;")
    assert fits  # the echoed id wraps instead of running off the page
    assert lookup_page.console_errors() == []


def test_compare_two_items(lookup_page, raw_ids):
    browser = lookup_page
    _look_up(browser, raw_ids[3])
    browser.wait_for(ITEMS)
    third = browser.text("#cu-item-3 .rs-item-title")
    item_id = browser.text("#cu-item-3 .rs-item-meta").rsplit(" · ", 1)[-1]
    _reach(browser, "#cu-compare-b")
    browser.select("#cu-compare-b", item_id)
    _reach(browser, "#cu-compare-go")
    browser.click("#cu-compare-go")
    browser.wait_for("#cu-compare-figure .main-svg", timeout=60)
    assert browser.text("#cu-compare-summary")
    figure_title = browser.text("#cu-compare-figure .gtitle")
    assert third[:20] in figure_title
    assert browser.console_errors() == []


def test_download_the_report(lookup_page, raw_ids, tmp_path):
    browser = lookup_page
    browser.driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                   {"behavior": "allow", "downloadPath": str(tmp_path)})
    pseudonym = pseudonymise(raw_ids[4], TEST_SECRET)
    _look_up(browser, raw_ids[4])
    browser.wait_for(ITEMS)
    _reach(browser, "#cu-export-csv")
    browser.click("#cu-export-csv")
    browser.wait_for_text("#cu-export-status", "CSV report downloaded.", timeout=60)
    deadline = time.monotonic() + 20
    while not list(tmp_path.glob(f"recsight-{pseudonym}-*.csv")) and time.monotonic() < deadline:
        time.sleep(0.1)
    (report,) = tmp_path.glob(f"recsight-{pseudonym}-*.csv")
    text = report.read_text(encoding="utf-8")
    assert text.startswith("user_id,") and pseudonym in text and raw_ids[4] not in text
    assert browser.console_errors() == []


def test_support_looks_up_but_cannot_reach_the_model_page(browser, trained, raw_ids):
    browser.sign_in(SUPPORT)
    try:
        browser.open("/user", "#cu-search")
        assert "Model insight" not in browser.text("#rs-nav")
        _look_up(browser, raw_ids[5])
        browser.wait_for(ITEMS)
        browser.driver.get(browser.base_url + "/model")
        assert browser.text("#rs-forbidden") == "Not available to your role"
        assert not browser.driver.find_elements("css selector", "#mo-version")
    finally:
        browser.console_errors()  # the refused page is logged by Chromium; expected here
        browser.sign_out()
