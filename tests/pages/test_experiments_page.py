"""The Experiments page: analysts create an experiment (audited before it is written), the API and
the customer's list then follow the customer's variant, a second running experiment is refused
in one line, stopping is audited too, and a finished experiment's analysis shows its variants
with intervals, the sample-ratio line and a verdict that does not call a winner on 20 customers.

A copy of the session's trained shop (the page writes experiments beside the shop file), with a
finished experiment whose impressions and clicks were sent by the shop's backend."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from analytics import experiments_store as xs
from analytics.experiments_store import Experiment, Variant
from analytics.live_store import LiveStore, utc_now
from models import registry
from models.assignment import assign
from service import audit
from service.users import ANALYST, SUPPORT, get_user
from settings import Settings
from tests.components import find, text
from tests.conftest import TEST_SECRET
from tests.service.support import ACCOUNTS, app_settings, signed_in_client
from tests.shop import TrainedShop
from workflows import performance
from workflows.recommenders import forget_all

PAST = "past-test"


@pytest.fixture(scope="module")
def shop(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("experiments_page")
    copy = trained_shop.copy_to(folder / "shop")
    settings = app_settings(folder, db_path=copy.db, models_dir=copy.models)
    start = utc_now() - timedelta(days=3)
    xs.save(copy.db, Experiment(PAST, "Finished test", "Ranking by the hybrid lifts click-through.", "click_through",
                                (Variant("control", 0.5), Variant("treatment", 0.5)), start=start,
                                stop=start + timedelta(days=2)), "alan", now=start - timedelta(minutes=1))
    shown, clicks = [], []
    for n in range(40):
        at = start + timedelta(hours=1, minutes=n)
        shown.append({"event_id": f"s{n}", "user_id": f"x{n}", "ts": at.isoformat(), "list": "home",
                      "items": ["i1", "i2"], "model_version": "m", "experiment": PAST,
                      "variant": ("control", "treatment")[n % 2]})
        shown.append({"event_id": f"p{n}", "user_id": f"x{n}", "ts": (start - timedelta(days=2)).isoformat(),
                      "list": "home", "items": ["i3", "i4"]})
        if n % 3:
            clicks.append({"event_id": f"c{n}", "user_id": f"x{n}", "item_id": "i1", "event_type": "click",
                           "ts": (at + timedelta(minutes=2)).isoformat()})
    assert performance.append_impressions(settings.db_path, shown, TEST_SECRET).accepted == 80
    assert not LiveStore(settings.db_path).append_events(clicks, TEST_SECRET).rejected
    yield settings
    forget_all()


@pytest.fixture(scope="module")
def ex(served: Any):
    import pages.experiments as module

    return module


def _signed_in(served: Any, shop: Settings, role: str):
    from service import access

    context = served.server.test_request_context("/")
    context.push()
    access.start_session(get_user(shop.users_file, ACCOUNTS[role][0]))
    return context


def _form(experiment_id: str, **changes: Any) -> tuple[dict[str, Any], list[tuple]]:
    values = {"ex-id": experiment_id, "ex-name": "Hybrid against ranker", "ex-metric": "click_through",
              "ex-hypothesis": "The current model lifts click-through.", "ex-start": "", "ex-stop-at": ""}
    values.update(changes)
    rows = [("control", 50, "", ""), ("treatment", 50, "", ""), ("", None, "", ""), ("", None, "", "")]
    return values, rows


def test_the_page_is_for_analysts_and_admins_and_lists_what_exists(ex, served, shop) -> None:
    assert signed_in_client(served, ANALYST).get("/experiments").status_code == 200
    assert signed_in_client(served, SUPPORT).get("/experiments").status_code == 403
    layout = ex.build_layout(shop)
    assert PAST in text(find(layout, "ex-table")) and "Stopped" in text(find(layout, "ex-table"))
    model = find(layout, "ex-v1-model")
    assert [o["value"] for o in model.options][1:] == registry.versions(shop.models_dir)


def test_a_finished_experiment_shows_variants_with_intervals_and_no_early_winner(ex, shop) -> None:
    view = ex.update_analysis(PAST, 0.05, ["on"], shop)
    assert [row[0] for row in view.variants.rows] == ["control (control)", "treatment"]
    assert [row[4] for row in view.variants.rows] == [20, 20]
    for row in view.variants.rows:
        assert row[6] <= row[5] <= row[7]  # the value inside its 95 % interval
    notes = text(find(view.body, "ex-notes"), "\n")
    assert "Sample ratio: 50.0 % / 50.0 % of customers against a planned 50 % / 50 %" in notes
    assert "Not enough data yet" in notes  # 20 customers per variant are not a test
    assert "CUPED" in notes
    figure = find(view.body, "ex-metric-figure").figure
    assert len(figure.data) == 2
    assert [row[3] for row in view.history.rows] == ["created"]


def test_creating_auditing_serving_and_stopping_an_experiment(ex, served, shop, trained_shop) -> None:
    context = _signed_in(served, shop, ANALYST)
    try:
        before = len(audit.read_entries(shop.audit_db, action=audit.EXPERIMENT_CHANGE))
        view = ex.change_experiments("create", None, *_form("live-test"), shop)
        assert view.selected == "live-test" and "created: running" in text(view.status)
        refused = ex.change_experiments("create", None, *_form("second-test"), shop)
        assert "only one experiment may run at a time" in text(refused.status)
        rows = audit.read_entries(shop.audit_db, action=audit.EXPERIMENT_CHANGE)
        assert len(rows) == before + 1 and rows[0].who == ACCOUNTS[ANALYST][0]
        assert rows[0].detail.startswith("experiment live-test created (version 1)")
    finally:
        context.pop()

    raw = trained_shop.raw_ids[7]
    running = xs.get(shop.db_path, "live-test")
    client = signed_in_client(served, SUPPORT)
    body = client.get(f"/api/v1/users/{raw}/recommendations").get_json()
    assert (body["experiment"], body["variant"]) == ("live-test", assign(running, trained_shop.pseudonym(raw)).name)
    assert body["model_version"] == registry.current(shop.models_dir)

    context = _signed_in(served, shop, ANALYST)
    try:
        stopped = ex.change_experiments("stop", "live-test", *_form(""), shop)
        assert "Experiment live-test stopped at" in text(stopped.status)
        assert len(audit.read_entries(shop.audit_db, action=audit.EXPERIMENT_CHANGE)) == before + 2
    finally:
        context.pop()
    assert xs.get(shop.db_path, "live-test").status() == xs.STOPPED
    after = client.get(f"/api/v1/users/{raw}/recommendations").get_json()
    assert after["experiment"] is None and after["variant"] is None


def test_a_form_that_does_not_read_is_one_line_and_nothing_is_written(ex, served, shop) -> None:
    context = _signed_in(served, shop, ANALYST)
    try:
        before = xs.load_all(shop.db_path)
        for changes, message in (({"ex-start": "tomorrow"}, "not a time like"),
                                 ({"ex-id": "Bad Id"}, "an experiment id is")):
            view = ex.change_experiments("create", None, *_form("form-test", **changes), shop)
            assert message in text(view.status).lower() and "\n" not in text(view.status)
        values, rows = _form("form-test")
        rows[1] = ("treatment", 40, "", "")
        assert "add up to 0.9" in text(ex.change_experiments("create", None, values, rows, shop).status)
        assert xs.load_all(shop.db_path) == before
    finally:
        context.pop()
