"""The Experiments page in headless Chromium: an analyst creates an A/B test between two variants,
sees it running, and a customer's page then says which variant serves them. The experiment files
written beside the session's shop (and the models folder's pins) are removed afterwards, so the
other browser tests see no experiment."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from analytics import experiments_store
from models import registry
from models.assignment import assign
from service import audit
from service.users import ADMIN, ANALYST
from tests.service.support import ACCOUNTS
from workflows.recommenders import recommender_for

pytestmark = pytest.mark.browser

EXPERIMENT = "browser-ab"


@pytest.fixture
def no_experiments(live_app) -> Iterator[None]:
    folder = experiments_store.experiments_folder(live_app.settings.db_path)
    pins = live_app.settings.models_dir / registry.PINNED_FILE
    shutil.rmtree(folder, ignore_errors=True)
    yield
    shutil.rmtree(folder, ignore_errors=True)
    pins.unlink(missing_ok=True)


def _type(browser, css: str, text: str) -> None:
    field = browser.wait_for(css)
    field.clear()
    field.send_keys(text)


def test_an_analyst_creates_an_experiment_and_the_customer_page_names_the_variant(browser, live_app,
                                                                                   no_experiments):
    browser.sign_in(ANALYST)
    browser.open("/experiments", "#ex-form")
    assert browser.text(".rs-page-title") == "Experiments"
    _type(browser, "#ex-id", EXPERIMENT)
    _type(browser, "#ex-name", "Browser A/B")
    _type(browser, "#ex-hypothesis", "The treatment lifts click-through.")
    browser.wait_until_idle()  # control and treatment, 50 % each, current model and rules: the defaults
    browser.click("#ex-create")
    browser.wait_for_text("#ex-change-status", lambda text: f"Experiment {EXPERIMENT} created" in text, timeout=60)
    browser.wait_for_text("#ex-list", lambda text: EXPERIMENT in text, timeout=60)
    browser.wait_for_text("#ex-body", lambda text: "Browser A/B" in text, timeout=90)  # its analysis, drawn
    assert browser.console_errors() == []
    saved = experiments_store.get(live_app.settings.db_path, EXPERIMENT)
    assert [v.name for v in saved.variants] == ["control", "treatment"] and saved.author == ACCOUNTS[ANALYST][0]
    newest = audit.read_entries(live_app.settings.audit_db, action=audit.EXPERIMENT_CHANGE)[0]
    assert newest.who == ACCOUNTS[ANALYST][0] and EXPERIMENT in (newest.detail or "")

    customer = sorted(recommender_for(live_app.settings).top.spans)[0]
    variant = assign(saved, customer).name
    browser.sign_in(ADMIN)
    browser.open(f"/user/{customer}", "#cu-items")
    line = browser.wait_for_text("#cu-variant", lambda text: EXPERIMENT in text, timeout=60)
    assert f"variant {variant}" in line
    assert browser.console_errors() == []
