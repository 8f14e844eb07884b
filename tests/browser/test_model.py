"""The model page in headless Chromium: it opens cleanly with the evaluation, the importance and
the dependence plot; its metric and feature choices redraw the figures; and an analyst's page
holds no customer id."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analytics.privacy import PSEUDONYM_LENGTH
from models import registry
from service.users import ADMIN, ANALYST
from tests.browser.test_user import _reach

pytestmark = pytest.mark.browser

GRAPHS = ("mo-bars", "mo-segments", "mo-importance", "mo-dependence", "mo-deletion", "mo-completeness")


@pytest.fixture(scope="module")
def trained(live_app) -> Path:
    """The models folder the live app serves (the session's trained shop)."""
    return live_app.settings.models_dir


@pytest.fixture
def model_page(browser, trained):
    browser.sign_in(ADMIN)
    browser.open("/model", "#mo-eval-grid")
    return browser


def test_model_page_opens_with_every_part_and_no_console_errors(model_page, trained):
    browser = model_page
    assert browser.text(".rs-page-title") == "Model insight"
    assert browser.text("#rs-nav .active") == "Model insight"
    for graph in GRAPHS:
        browser.wait_for(f"#{graph} .main-svg", timeout=60)
    browser.wait_for_text("#mo-eval-grid", lambda text: "(served)" in text and "Popularity (baseline)" in text)
    browser.wait_for_text("#mo-faithfulness", lambda text: "Customers · items checked" in text, timeout=60)
    meta = registry.load_current(trained).metadata
    assert meta["fingerprint"] in browser.text("#mo-metadata")
    served = meta["served"]["model"]  # chosen at training on the validation customers
    assert f"{meta['metrics']['models'][served]['ndcg@10']:.4f}" == browser.text("#mo-kpi-served")
    assert meta["served"]["why"] in browser.text("#mo-served-why")
    assert browser.console_errors() == []


def test_metric_and_feature_choices_redraw_the_figures(model_page):
    browser = model_page
    browser.wait_for("#mo-dependence .main-svg", timeout=60)
    _reach(browser, "#mo-metric")
    browser.select("#mo-metric", "hr@10")
    browser.wait_for_text("#mo-segment-note", lambda text: text.startswith("Hit rate@10"))
    before = browser.text("#mo-dependence .gtitle")
    _reach(browser, "#mo-feature")
    browser.select("#mo-feature", "item_users")
    browser.wait_for_text("#mo-dependence .gtitle", lambda text: text != before and "customers who picked" in text)
    groups = "label[for='_dbcprivate_radioitems_mo-importance-by_input_group']"
    _reach(browser, groups)
    browser.click(groups)  # feature groups
    browser.wait_for_text("#mo-importance", lambda text: "Co-visitation" in text)
    assert browser.console_errors() == []


def test_an_analyst_sees_the_page_without_any_customer_id(browser, trained):
    browser.sign_in(ANALYST)
    try:
        browser.open("/model", "#mo-eval-grid")
        browser.wait_for("#mo-importance .main-svg", timeout=60)
        browser.wait_for("#mo-dependence .main-svg", timeout=60)
        assert not re.search(rf"c_[0-9a-f]{{{PSEUDONYM_LENGTH}}}", browser.driver.page_source)
        assert browser.console_errors() == []
    finally:
        browser.sign_out()
