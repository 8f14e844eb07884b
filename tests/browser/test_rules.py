"""The Rules page in headless Chromium: an analyst pins an item, previews the change, saves it, and
the customer's list shows the item where the rule put it, with the rule named beside the model's
reasons. The rules written beside the session's shop are removed afterwards, so the other browser
tests see the model's lists."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from analytics.rules_store import rules_folder
from service import audit
from service.users import ADMIN, ANALYST
from tests.service.support import ACCOUNTS
from workflows.recommenders import recommender_for

pytestmark = pytest.mark.browser

RULE = "Browser pin"


@pytest.fixture
def no_rules(live_app) -> Iterator[None]:
    folder = rules_folder(live_app.settings.db_path)
    shutil.rmtree(folder, ignore_errors=True)
    yield
    shutil.rmtree(folder, ignore_errors=True)


def _type(browser, css: str, text: str) -> None:
    field = browser.wait_for(css)
    field.clear()
    field.send_keys(text)


def test_an_analyst_pins_an_item_previews_saves_and_the_customers_list_shows_it(browser, live_app, no_rules):
    recommender = recommender_for(live_app.settings)
    customer = sorted(recommender.top.spans)[0]
    item = recommender.recommend(customer, 20).items[11]  # #12 for the model: not in the top ten
    browser.sign_in(ANALYST)
    browser.open("/rules", "#rl-form")
    assert browser.text(".rs-page-title") == "Rules"
    _type(browser, "#rl-target", item.item_id)  # kind "pin" and target "item" are the defaults
    _type(browser, "#rl-amount", "1")
    _type(browser, "#rl-name", RULE)
    browser.wait_until_idle()
    time.sleep(0.5)  # the target box sends its value after typing stops (debounced)

    browser.click("#rl-preview")
    summary = browser.wait_for_text("#rl-preview-summary", lambda text: "lists change" in text, timeout=60)
    assert summary.split()[0].replace(",", "").isdigit()  # "N of M customers' lists change ..."
    assert item.title in browser.text("#rl-preview-result")  # the sample lists show it pinned
    assert not rules_folder(live_app.settings.db_path).exists()  # a preview saves nothing

    browser.click("#rl-save")
    browser.wait_for_text("#rl-saved", f"Saved rule '{RULE}' as rule set v1.", timeout=60)
    browser.wait_for_text("#rl-grid", lambda text: RULE in text and "pin item" in text, timeout=60)
    assert "v1 (current)" in browser.text("#rl-history")
    newest = audit.read_entries(live_app.settings.audit_db, action=audit.RULES_CHANGE)[0]
    assert newest.who == ACCOUNTS[ANALYST][0] and RULE in (newest.detail or "")

    browser.sign_in(ADMIN)  # the customer page (support and admins): the list as the customer gets it
    browser.open(f"/user/{customer}", "#cu-items")
    first = browser.wait_for_text("#cu-item-1 .rs-item-title", item.title, timeout=60)
    assert first == item.title
    note = browser.text("#cu-item-rule-1")
    assert f"Moved from #12 to #1 by rule '{RULE}', {ACCOUNTS[ANALYST][0]}" in note
    browser.wait_for("#cu-items .rs-reasons li", timeout=60)  # the model's reasons, apart from the rule line
    assert browser.console_errors() == []
