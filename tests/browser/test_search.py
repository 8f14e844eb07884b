"""Search in headless Chromium on the session's trained shop (issue 15): a support agent searches
as the customer on the customer page, or follows its link to the Search page, and opens Why? on a
personalised result; an admin compares the anonymous and the personalised results of one query side by side;
the page never shows a traceback for odd input."""

from __future__ import annotations

from collections import Counter

import pytest

from analytics import schema
from service import audit
from service.users import ADMIN, SUPPORT

pytestmark = pytest.mark.browser


@pytest.fixture
def word(shop_value) -> str:
    """A word several catalogue titles share (the synthetic shop names products by kind)."""
    titles = shop_value(f"SELECT list({schema.TITLE}) FROM {schema.ITEMS}")
    counts = Counter(w.lower() for title in titles if title for w in title.split() if w.isalpha() and len(w) > 3)
    return counts.most_common(20)[-1][0]


@pytest.fixture(scope="module")
def customer(live_app) -> str:
    return live_app.shop.pseudonym(live_app.shop.raw_ids[3])


def _search(browser, query: str) -> None:
    from selenium.webdriver.common.keys import Keys

    field = browser.wait_for("#se-query")
    field.clear()
    field.send_keys(query, Keys.ENTER)


def test_an_agent_searches_as_the_customer_and_asks_why(browser, live_app, customer, word):
    browser.sign_in(SUPPORT)
    browser.open(f"/user/{customer}", "#cu-items")
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})",
                                  browser.wait_for("#cu-search-as"))
    browser.click("#cu-search-as")
    assert browser.wait_for("#se-customer").get_attribute("value") == customer  # the customer came along
    _search(browser, word)
    browser.wait_for("#se-personalised .rs-search-result", timeout=60)
    assert customer in browser.text("#se-personalised h2")
    first = browser.text("#se-personalised-1 .rs-item-title")
    browser.click("#se-personalised-1 .rs-why-button")
    reasons = browser.wait_for_text("#se-why-reasons", lambda text: text.startswith("Ranked #1 because"))
    assert reasons and first[:15] in browser.text("#se-why-title")
    browser.wait_for("#se-why-contributions .main-svg")
    entries = audit.read_entries(live_app.settings.audit_db, action=audit.EXPLANATION_VIEW)
    assert any(e.customer == customer and "search page" in (e.detail or "") for e in entries)
    assert [m for m in browser.console_errors() if "favicon" not in m] == []


def test_an_agent_searches_on_the_customer_page_and_asks_why(browser, live_app, customer, word):
    from selenium.webdriver.common.keys import Keys

    browser.sign_in(SUPPORT)
    browser.open(f"/user/{customer}", "#cu-items")
    field = browser.wait_for("#cu-search-q")
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", field)
    field.send_keys(word, Keys.ENTER)
    browser.wait_for("#se-as-customer .rs-search-result", timeout=60)
    results = browser.driver.find_elements("css selector", "#se-as-customer .rs-search-result")
    assert len(results) == 10 and word in browser.text("#se-as-customer h2").lower()
    browser.click("#se-as-customer-1 .rs-why-button")
    assert browser.wait_for_text("#se-why-reasons", lambda text: text.startswith("Ranked #1 because"))
    entries = audit.read_entries(live_app.settings.audit_db, action=audit.EXPLANATION_VIEW)
    assert any(e.customer == customer and "search as this customer" in (e.detail or "") for e in entries)
    assert [m for m in browser.console_errors() if "favicon" not in m] == []


def test_an_admin_compares_anonymous_and_personalised_results(browser, customer, word):
    browser.sign_in(ADMIN)
    browser.open(f"/search?user={customer}", "#se-query")
    _search(browser, word)
    browser.wait_for("#se-personalised .rs-search-result", timeout=60)
    anonymous = browser.driver.find_elements("css selector", "#se-anonymous .rs-search-result")
    personal = browser.driver.find_elements("css selector", "#se-personalised .rs-search-result")
    assert len(anonymous) == len(personal) == 10
    moves = [e.text for e in browser.driver.find_elements("css selector", "#se-personalised .rs-search-move")]
    assert len(moves) == 10 and all(m == "same place" or m == "new here" or m.startswith(("up ", "down "))
                                    for m in moves)
    marked = browser.driver.find_elements("css selector", "#se-anonymous .rs-item-title mark")
    assert marked and all(word in m.text.lower() for m in marked)  # the query's word, marked in titles
    assert [m for m in browser.console_errors() if "favicon" not in m] == []


def test_odd_queries_give_a_message_or_results_never_a_traceback(browser):
    browser.sign_in(SUPPORT)
    browser.open("/search", "#se-query")
    _search(browser, "   ")
    assert "type a word" in browser.wait_for_text("#se-problem", lambda text: bool(text)).lower()
    for query in ("<script>alert(1)</script>", "'; DROP TABLE items; --", "电容器 kayak 🙂"):
        _search(browser, query)
        browser.wait_for("#se-anonymous", timeout=60)
        assert "Traceback" not in browser.driver.page_source
    assert [m for m in browser.console_errors() if "favicon" not in m] == []
