"""The customer page's "What if…" card in headless Chromium: a support agent looks a customer up,
takes some of their recent past items out, presses Re-score and reads the moves in words (no raw
scores), with one audit row for the what-if and no console errors."""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest

from analytics import schema
from service.users import SUPPORT

pytestmark = pytest.mark.browser

_RAW = re.compile(r"-?\d+\.\d{2,}")
TAKEN_OUT = 5  # the customer's most recent items: taking these out moves the list


def _reach(browser, css: str) -> None:
    browser.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", browser.wait_for(css))


def test_an_agent_removes_past_items_and_reads_how_the_list_would_change(browser, live_app):
    from selenium.webdriver.common.keys import Keys

    from service import audit

    raw_ids = sorted(set(pq.read_table(live_app.shop.export / "events.parquet",
                                       columns=[schema.USER_ID]).column(0).to_pylist()))
    browser.sign_in(SUPPORT)
    try:
        browser.open("/user", "#cu-search")
        field = browser.wait_for("#cu-search")
        field.clear()
        field.send_keys(raw_ids[4], Keys.ENTER)
        browser.wait_for("#cu-items .rs-item")
        _reach(browser, "#cu-whatif-remove")
        browser.click("#cu-whatif-remove")
        options = browser.driver.find_elements("css selector", ".dash-dropdown-content .dash-dropdown-option")
        assert options, "the customer's past items are offered"
        values = [o.find_element("css selector", "input").get_attribute("value") for o in options[:TAKEN_OUT]]
        for value in values:
            browser.click(f".dash-dropdown-content .dash-dropdown-option:has(input[value='{value}'])")
        browser.driver.find_element("css selector", "body").send_keys(Keys.ESCAPE)
        before = len(audit.read_entries(live_app.settings.audit_db, action=audit.EXPLANATION_VIEW))
        _reach(browser, "#cu-whatif-go")
        browser.click("#cu-whatif-go")
        browser.wait_for("#cu-whatif-result", timeout=60)
        sentences = [e.text for e in browser.driver.find_elements("css selector", "#cu-whatif-moves li")]
        assert sentences and all(s.strip() for s in sentences)
        assert all(re.match(r"(New at|Would move to|Would leave the list) ", s) for s in sentences), sentences
        assert not _RAW.search(browser.text("#cu-whatif-result"))
        entries = audit.read_entries(live_app.settings.audit_db, action=audit.EXPLANATION_VIEW)
        assert len(entries) == before + 1 and (entries[0].detail or "").startswith("what-if:")
        assert browser.console_errors() == []
    finally:
        browser.sign_out()
