"""What a real browser keeps (issue 13, items 3 and 6), in headless Chromium: after sign-out, Back
shows no customer; a deep link by shop id leaves only the pseudonym in the address bar and the
history; Back and Forward return to earlier lookups without looking anyone up again. The app
runs under its Content-Security-Policy throughout (no console errors)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from analytics import schema
from analytics.privacy import pseudonymise
from service import audit
from service.users import ADMIN
from tests.conftest import TEST_SECRET

pytestmark = pytest.mark.browser

FOUND = "#cu-pseudonym"


@pytest.fixture(scope="module")
def raw_ids(live_app) -> list[str]:
    synth = live_app.shop.export / "events.parquet"
    return sorted(set(pq.read_table(synth, columns=[schema.USER_ID]).column(0).to_pylist()))


def _path(browser) -> str:
    return browser.driver.current_url.removeprefix(browser.base_url)


def _look_up(browser, typed: str) -> str:
    """Type ``typed`` into the search, wait for the customer; their pseudonym."""
    from selenium.webdriver.common.keys import Keys

    pseudonym = pseudonymise(typed, TEST_SECRET) if not typed.startswith("c_") else typed
    field = browser.wait_for("#cu-search")
    field.clear()
    field.send_keys(typed, Keys.ENTER)
    browser.wait_for_text(FOUND, pseudonym, timeout=60)
    browser._wait(lambda d: _path(browser) == f"/user/{pseudonym}", 10, "the address bar was not updated")
    return pseudonym


def _lookups(live_app, customer: str) -> int:
    return sum(entry.customer == customer for entry in
               audit.read_entries(live_app.settings.audit_db, action=audit.CUSTOMER_LOOKUP))


def test_back_after_sign_out_shows_no_customer(browser, raw_ids):
    browser.open("/user", "#cu-search")
    pseudonym = _look_up(browser, raw_ids[20])
    browser.wait_until_idle()
    browser.click("#rs-sign-out")
    browser.wait_for("#rs-login-notice")
    browser.driver.recsight_role = None
    browser.driver.back()
    browser.wait_for("#rs-login-name")  # the sign-in form, not the page from the cache
    assert _path(browser).startswith("/login")
    assert pseudonym not in browser.text("body")  # (it may be the form's next address, hidden)
    assert not browser.driver.find_elements("css selector", FOUND)
    browser.console_errors()  # the refused requests of the signed-out page are logged; expected
    browser.sign_in(ADMIN)


def test_a_deep_link_by_shop_id_leaves_only_the_pseudonym(browser, live_app, raw_ids):
    raw = raw_ids[21]
    pseudonym = pseudonymise(raw, TEST_SECRET)
    browser.open("/user", "#cu-search")
    before = _lookups(live_app, pseudonym)
    browser.driver.get(f"{browser.base_url}/user/{raw}")
    browser.wait_for_text(FOUND, pseudonym, timeout=60)
    assert _path(browser) == f"/user/{pseudonym}"
    assert browser.wait_for("#cu-search").get_attribute("value") == pseudonym  # the id is not shown either
    assert raw not in browser.driver.page_source
    assert _lookups(live_app, pseudonym) == before + 1
    browser.driver.back()  # the entry before the link, never one holding the shop id
    browser._wait(lambda d: _path(browser) == "/user", 10, f"Back went to {_path(browser)}")
    assert browser.console_errors() == []


def test_back_and_forward_do_not_look_up_again(browser, live_app, raw_ids):
    browser.open("/user", "#cu-search")
    first = _look_up(browser, raw_ids[22])
    second = _look_up(browser, raw_ids[23])
    browser.wait_until_idle()
    counts = (_lookups(live_app, first), _lookups(live_app, second))

    browser.driver.back()
    browser._wait(lambda d: _path(browser) == f"/user/{first}", 10, f"Back went to {_path(browser)}")
    browser.wait_for("#cu-intro")  # the page again, the search filled in, nothing looked up
    browser.wait_until_idle()
    assert browser.wait_for("#cu-search").get_attribute("value") == first
    browser.driver.forward()
    browser._wait(lambda d: _path(browser) == f"/user/{second}", 10, f"Forward went to {_path(browser)}")
    browser.wait_until_idle()
    assert (_lookups(live_app, first), _lookups(live_app, second)) == counts
    assert not browser.driver.find_elements("css selector", FOUND)

    browser.click("#cu-go")  # the agent's own click looks up again
    browser.wait_for_text(FOUND, second, timeout=60)
    assert _lookups(live_app, second) == counts[1] + 1
    assert browser.console_errors() == []
