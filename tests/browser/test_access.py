"""Sign-in and roles in headless Chromium: support cannot reach the analysts' pages (not by the
menu, not by typing the address, not by following a link, not by calling their callbacks); a
wrong password is a message; the admin reads the audit log; the sign-out button signs out."""

from __future__ import annotations

import pytest

from service.users import ADMIN, SUPPORT
from tests.service.support import ACCOUNTS

pytestmark = pytest.mark.browser

OVERVIEW_KPI = "#ov-kpi-events"
_CALL_OVERVIEW = """
const done = arguments[arguments.length - 1];
fetch('/_dash-update-component', {method: 'POST', headers: {'Content-Type': 'application/json'},
  body: JSON.stringify({output: '..ov-activity.figure...{"table":"activity","type":"ov-csv-data"}.data..',
    outputs: [{id: 'ov-activity', property: 'figure'},
              {id: {table: 'activity', type: 'ov-csv-data'}, property: 'data'}],
    inputs: [{id: 'ov-dates', property: 'start_date', value: null}, {id: 'ov-dates', property: 'end_date', value: null},
             {id: 'ov-segment', property: 'value', value: 'all'}, {id: 'ov-freq', property: 'value', value: 'day'}],
    state: [], changedPropIds: []})})
  .then(r => done(r.status)).catch(e => done(String(e)));
"""


def _path(browser) -> str:
    return browser.driver.current_url.removeprefix(browser.base_url).split("?")[0]


def test_support_cannot_reach_the_analyst_pages(browser):
    browser.sign_in(SUPPORT)
    try:
        # typing the overview's address: the overview never renders
        browser.driver.get(browser.base_url + "/")
        if _path(browser) == "/":
            assert browser.text("#rs-forbidden") == "Not available to your role"
        else:  # sent on to a customer page instead
            assert _path(browser).startswith(("/user", "/customer"))
        assert not browser.driver.find_elements("css selector", OVERVIEW_KPI)
        browser.driver.get(browser.base_url + "/audit")
        assert browser.text("#rs-forbidden") == "Not available to your role"
        assert "support" in browser.text("main")

        # a page support may see: the menu offers no analyst or admin page
        browser.open("/no-such-page", "#nf-title")
        assert browser.text("#rs-user-name") == ACCOUNTS[SUPPORT][0]
        assert browser.text("#rs-user-role") == SUPPORT
        menu = browser.driver.find_element("css selector", "#rs-nav").text
        assert "Shop overview" not in menu and "Audit log" not in menu

        # the overview's callbacks answer 403 even when called directly
        assert browser.driver.execute_async_script(_CALL_OVERVIEW) == 403

        # following an in-app link to the overview renders nothing of it
        browser.click(".rs-back-link")
        browser.wait_until_idle()
        assert not browser.driver.find_elements("css selector", OVERVIEW_KPI)
    finally:
        browser.console_errors()  # the refused requests are logged by Chromium; expected here
        browser.sign_out()


def test_the_same_call_works_for_an_analyst_page_user(browser):
    browser.open("/", OVERVIEW_KPI)  # signed in as the admin
    assert browser.driver.execute_async_script(_CALL_OVERVIEW) == 200
    assert browser.console_errors() == []


def test_a_wrong_password_is_a_message_on_the_form(browser):
    browser.sign_out()
    browser.driver.get(browser.base_url + "/audit")
    assert _path(browser) == "/login"
    browser.wait_for("#rs-login-name").send_keys(ACCOUNTS[ADMIN][0])
    browser.driver.find_element("css selector", "#rs-login-password").send_keys("not-the-password")
    browser.click("#rs-login-submit")
    assert browser.text("#rs-login-error") == "Wrong user name or password."
    # the name stays, the password is typed again, and the page asked for follows
    assert browser.wait_for("#rs-login-name").get_attribute("value") == ACCOUNTS[ADMIN][0]
    browser.driver.find_element("css selector", "#rs-login-password").send_keys(ACCOUNTS[ADMIN][1])
    browser.click("#rs-login-submit")
    browser.wait_for(".rs-page-title")
    assert _path(browser) == "/audit" and browser.text(".rs-page-title") == "Audit log"
    browser.driver.recsight_role = ADMIN


def test_the_admin_reads_and_filters_the_audit_log(browser):
    browser.sign_in(SUPPORT)  # leaves a sign-in row for the support user
    browser.sign_in(ADMIN)
    browser.open("/audit", "#au-grid .ag-row")
    assert browser.text("#rs-nav .active") == "Audit log"
    browser.select("#au-user", ACCOUNTS[SUPPORT][0])
    browser.wait_for_text("#au-summary", lambda text: text.endswith("newest first."))
    browser.wait_until_idle()
    users = {cell.text for cell in browser.driver.find_elements("css selector", "#au-grid .ag-row [col-id='who']")}
    actions = {cell.text for cell in browser.driver.find_elements("css selector", "#au-grid .ag-row [col-id='action']")}
    assert users == {ACCOUNTS[SUPPORT][0]} and "Signed in" in actions
    assert browser.console_errors() == []


def test_the_sign_out_button_signs_out(browser):
    browser.open("/", OVERVIEW_KPI)
    browser.click("#rs-sign-out")
    browser.wait_for("#rs-login-notice")
    assert browser.text("#rs-login-notice") == "You are signed out."
    browser.driver.recsight_role = None
    browser.driver.get(browser.base_url + "/")
    assert _path(browser) == "/login"
    assert browser.console_errors() == []
