"""The customer page updates by itself while open (issue 14, item 4), in headless Chromium.

A support agent has a customer open; the shop's backend sends events for that customer (through
the intake's use case, as ``POST /api/v1/events`` stores them). Without a reload, within a few
ticks, the new event is on the timeline and the "What changed since you last looked" panel names
it and says which items entered the list and why.

The app serves its own copy of the session's trained shop (events are appended to it), on its
own port; the session's Chromium is reused.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from analytics import schema as s
from service.users import SUPPORT
from tests.browser.conftest import Browser, LiveApp
from tests.conftest import TEST_SECRET
from tests.shop import TrainedShop
from workflows.intake import append_events

REFRESH_WITHIN_S = 15.0

_TIMELINE_TITLES = """return Array.from(document.querySelectorAll('#cu-timeline .js-plotly-plot'))
    .flatMap(g => (g.data || []).flatMap(t => (t.customdata || []).map(c => c[0])));"""


@pytest.fixture(scope="module")
def own_app(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    from waitress.server import create_server

    from app import THREADS, create_app

    folder = tmp_path_factory.mktemp("live_page")
    shop = trained_shop.copy_to(folder / "shop")
    settings = shop.settings(folder)
    app = create_app(settings)
    assert app.server.test_client().get("/health").status_code == 200  # serve before the next app is built
    server = create_server(app.server, host="127.0.0.1", port=0, threads=THREADS, ident="recsight-live-test")
    thread = threading.Thread(target=server.run, name="waitress-live-test", daemon=True)
    thread.start()
    try:
        yield LiveApp(url=f"http://127.0.0.1:{server.effective_port}", settings=settings, shop=shop)
    finally:
        server.close()
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        thread.join(timeout=5)


@pytest.fixture
def agent(own_app: LiveApp, chromium) -> Iterator[Browser]:
    helper = Browser(chromium, own_app.url)
    helper.sign_out()
    helper.sign_in(SUPPORT)
    helper.console_errors()
    yield helper
    chromium.get("about:blank")  # stop the page's tick before this module's server goes
    helper.sign_out()


def _titles(browser: Browser) -> list[str]:
    return browser.driver.execute_script(_TIMELINE_TITLES) or []


def test_new_events_reach_the_open_page_without_a_reload(agent: Browser, own_app: LiveApp) -> None:
    shop = own_app.shop
    raw, other = shop.raw_ids[7], shop.raw_ids[8]
    # three items the customer is not shown, from another customer's list, viewed just now
    agent.open(f"/user/{shop.pseudonym(other)}", ready_css="#cu-items")
    theirs = [e.text for e in agent.driver.find_elements("css selector", "#cu-items .rs-item-title")]
    agent.open(f"/user/{shop.pseudonym(raw)}", ready_css="#cu-items")
    shown = {e.text for e in agent.driver.find_elements("css selector", "#cu-items .rs-item-title")}
    agent.driver.execute_script("window.recsightNoReload = 'still here';")
    assert not agent.driver.find_elements("css selector", "#cu-changes .rs-card")
    agent.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})",
                                agent.wait_for("#cu-compare-go"))
    agent.click("#cu-compare-go")  # the agent has #1 and #2 compared when the events come
    agent.wait_for("#cu-compare-summary", timeout=60)
    compared = agent.text("#cu-compare-summary")
    with _connection(own_app) as con:
        picked = con.execute(
            f"SELECT {s.ITEM_ID}, {s.TITLE} FROM {s.ITEMS} WHERE {s.TITLE} IN (SELECT unnest(?::VARCHAR[])) "
            f"ORDER BY {s.ITEM_ID}", [[title for title in theirs if title not in shown]]).fetchall()[:3]
    assert picked
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    batch = [{"event_id": f"live-page-{n}", "user_id": raw, "item_id": item, "event_type": s.VIEW,
              "ts": (now - timedelta(seconds=40 - 10 * n)).isoformat()} for n, (item, _) in enumerate(picked)]
    assert append_events(shop.db, batch, TEST_SECRET).accepted == len(batch)

    latest = picked[-1][1]
    panel = agent.wait_for_text("#cu-changes", lambda text: latest in text, timeout=REFRESH_WITHIN_S)
    assert "What changed since you last looked" in panel and "seconds ago" in panel
    assert latest in _titles(agent)  # the timeline holds the new event
    moves = agent.text("#cu-changes-moves")
    assert "New at #" in moves and "Left the list" in moves, moves
    assert agent.driver.execute_script("return window.recsightNoReload;") == "still here"  # no reload
    # The open comparison survived the refresh, marked as made before it (or, when an item it
    # compared left the list, replaced by a note saying so): it never just vanishes.
    stale = agent.text("#cu-compare-stale")
    if "Compared before the list refreshed" in stale:
        assert agent.text("#cu-compare-summary") == compared
    else:
        assert "left the list" in stale
    agent.wait_for_text(".rs-item-reasons", lambda text: "Finding the reasons" not in text)
    assert not [m for m in agent.console_errors() if "favicon" not in m]


class _connection:
    """The served shop file, read-only (its catalogue: the items the test sends events for)."""

    def __init__(self, app: LiveApp) -> None:
        import duckdb

        self.con = duckdb.connect(str(app.settings.db_path), read_only=True)

    def __enter__(self):
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()
