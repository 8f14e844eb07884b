"""What a support agent reads on the customer page, in headless Chromium (issue 17, "Words"):
each item's match strength in words and 0-100, never the ranker's raw units, in the list, the
Why? dialog and the comparison; plain feature wording; an admin (the analyst's side) still sees
the raw scores."""

from __future__ import annotations

import re

import pyarrow.parquet as pq
import pytest

from analytics import schema
from models.features import FEATURES
from service import audit
from service.users import ADMIN, SUPPORT

pytestmark = pytest.mark.browser

ITEMS = "#cu-items .rs-item"
_RAW = re.compile(r"raw units|base value|-?\d+\.\d{3}")  # the raw score shows three decimals


@pytest.fixture(scope="module")
def raw_ids(live_app) -> list[str]:
    synth = live_app.shop.export / "events.parquet"
    return sorted(set(pq.read_table(synth, columns=[schema.USER_ID]).column(0).to_pylist()))


def _look_up(browser, typed: str) -> None:
    from selenium.webdriver.common.keys import Keys

    browser.open("/user", "#cu-search")
    field = browser.wait_for("#cu-search")
    field.clear()
    field.send_keys(typed, Keys.ENTER)
    browser.wait_for(ITEMS)


def _reach(browser, css: str) -> None:
    browser.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", browser.wait_for(css))


def _open_why(browser) -> None:
    """Open the first item's Why? dialog and wait for its chart."""
    _reach(browser, "#cu-item-1 .rs-why-button")
    browser.click("#cu-item-1 .rs-why-button")
    browser.wait_for("#cu-why-waterfall .main-svg", timeout=60)


def _svg_text(browser, css: str) -> str:
    return " ".join(e.get_attribute("textContent") for e in browser.driver.find_elements("css selector", f"{css} text"))


def test_an_agent_sees_match_strength_and_plain_words_never_raw_units(browser, live_app, raw_ids):
    browser.sign_in(SUPPORT)
    try:
        _look_up(browser, raw_ids[2])
        cards = browser.driver.find_elements("css selector", ITEMS)
        strengths = [int(m.group(1)) for m in (re.search(r"match · (\d+)$", browser.text(f"#cu-item-{n} "
                                                                                          ".rs-item-strength"))
                                               for n in range(1, len(cards) + 1)) if m]
        assert len(strengths) == len(cards) and all(0 <= s <= 100 for s in strengths)
        assert strengths == sorted(strengths, reverse=True)  # the same order as the ranking
        assert not browser.driver.find_elements("css selector", "#cu-items .rs-item-score")
        assert not _RAW.search(browser.text("#cu-items"))

        _open_why(browser)
        chart = _svg_text(browser, "#cu-why-waterfall")
        assert "share of everything that moved its match" in chart and not _RAW.search(chart)
        assert not _RAW.search(browser.text("#cu-why-note"))
        plain = {f.plain for f in FEATURES}
        technical = {f.label for f in FEATURES} - plain
        labels = {e.get_attribute("textContent").split(":")[0].rstrip("…") for e in
                  browser.driver.find_elements("css selector", "#cu-why-waterfall .ytick text")}
        assert labels and not any(label in technical for label in labels)
        browser.click("#cu-why-modal .btn-close")

        third = browser.text("#cu-item-3 .rs-item-meta").rsplit(" · ", 1)[-1]
        _reach(browser, "#cu-compare-b")
        browser.select("#cu-compare-b", third)
        _reach(browser, "#cu-compare-go")
        browser.click("#cu-compare-go")
        browser.wait_for("#cu-compare-figure .main-svg", timeout=60)
        assert not _RAW.search(browser.text("#cu-compare-summary"))
        assert "of what separates them" in browser.text("#cu-compare-summary")
        assert not _RAW.search(_svg_text(browser, "#cu-compare-figure"))
        assert browser.console_errors() == []
    finally:
        browser.sign_out()


def test_an_admin_still_sees_the_raw_scores(browser, live_app, raw_ids):
    browser.sign_in(ADMIN)
    try:
        _look_up(browser, raw_ids[2])
        assert re.fullmatch(r"score -?\d+\.\d{3}", browser.text("#cu-item-1 .rs-item-score"))
        _open_why(browser)
        assert "raw units" in _svg_text(browser, "#cu-why-waterfall")
        assert "raw units" in browser.text("#cu-why-note")
        browser.click("#cu-why-modal .btn-close")
    finally:
        browser.sign_out()


def test_the_shopper_preview_shows_cards_with_a_reason_and_no_scores(browser, live_app, raw_ids):
    browser.sign_in(SUPPORT)
    try:
        _look_up(browser, raw_ids[6])
        titles = [e.text for e in browser.driver.find_elements("css selector", "#cu-items .rs-item-title")]
        before = len(audit.read_entries(live_app.settings.audit_db, action=audit.EXPLANATION_VIEW))
        _reach(browser, "#cu-preview-open")
        browser.click("#cu-preview-open")
        browser.wait_for("#cu-preview-cards", timeout=60)
        cards = browser.driver.find_elements("css selector", "#cu-preview-cards .rs-preview-card")
        assert [c.find_element("css selector", ".rs-preview-title").text for c in cards] == titles
        for card in cards:
            assert card.find_element("css selector", ".rs-preview-reason").text.strip()
            assert card.find_element("css selector", ".rs-preview-match").text.endswith("MATCH")
        assert not _RAW.search(browser.text("#cu-preview-cards").replace(",", ""))  # prices have two decimals
        after = len(audit.read_entries(live_app.settings.audit_db, action=audit.EXPLANATION_VIEW))
        assert after == before + 1
        assert browser.console_errors() == []
    finally:
        browser.sign_out()
