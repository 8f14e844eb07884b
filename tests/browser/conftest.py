"""Browser tests: a small real shop, the real app under waitress, Debian's headless Chromium.

Fixtures (session-wide, so Chromium and the server start once):

* ``live_app`` — a :class:`LiveApp`: the app from ``app.create_app`` serving the session's
  trained shop (``trained_shop``, tests/shop.py: built the way ``make run`` builds the demo, read
  only), by waitress on a free loopback port in a background thread; ``live_app.url``,
  ``live_app.settings``, ``live_app.shop``. Its users file (in a temporary folder) has one user
  per role: ``tests.service.support.ACCOUNTS``.
* ``browser`` — a :class:`Browser` for one test, signed in as the admin through the real sign-in
  form: ``sign_in(role)``, ``sign_out()``, ``open(path)``, ``wait_for(css)``,
  ``wait_for_text(css, text)``, ``text(css)``, ``click(css)``, ``select(dropdown_css, value)``,
  ``wait_until_idle()``,
  ``console_errors()``, ``screenshot(path)``; the raw selenium driver is ``browser.driver``.
* ``shop_value`` — ``shop_value(sql, params)`` reads one value from the served database, for
  comparing the page with the data.

Only /usr/bin/chromium and /usr/bin/chromedriver are used, never a downloaded browser; without
chromedriver the tests skip with a reason (CI installs it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from service.users import ADMIN
from settings import Settings
from tests.service.support import ACCOUNTS
from tests.shop import TrainedShop

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1440, 1000)
TIMEOUT_S = 20.0

_CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
    "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


@dataclass(frozen=True)
class LiveApp:
    """The app under test: its base URL (no trailing slash) and the settings it serves."""

    url: str
    settings: Settings
    shop: TrainedShop


@pytest.fixture(scope="session")
def live_app(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    from waitress.server import create_server

    from app import THREADS, create_app

    settings = trained_shop.settings(tmp_path_factory.mktemp("app_state"))
    app = create_app(settings)
    # Serve one request in process first: Dash hands the page callbacks to the first app that
    # serves, and the app must own them even if Chromium turns out to be missing.
    assert app.server.test_client().get("/health").status_code == 200
    server = create_server(app.server, host="127.0.0.1", port=0, threads=THREADS, ident="recsight-test")
    thread = threading.Thread(target=server.run, name="waitress-test", daemon=True)
    thread.start()
    try:
        yield LiveApp(url=f"http://127.0.0.1:{server.effective_port}", settings=settings, shop=trained_shop)
    finally:
        server.close()
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory):
    if not CHROMEDRIVER.exists():
        pytest.skip(f"{CHROMEDRIVER} not found: install Debian's chromium-driver to run the browser tests")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in _CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(TIMEOUT_S)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(live_app: LiveApp, chromium) -> Browser:  # this order: Chromium quits before the server stops
    helper = Browser(chromium, live_app.url)
    helper.sign_in(ADMIN)
    helper.console_errors()  # drain what earlier tests left in the log
    return helper


class Browser:
    """Small waits and reads over a selenium driver, shared by every page's browser tests."""

    def __init__(self, driver, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def sign_in(self, role: str) -> None:
        """Sign in as the account for ``role`` through the sign-in form, unless this browser
        already is (Chromium lives for the session, and so does its cookie)."""
        from selenium.webdriver.common.by import By

        if getattr(self.driver, "recsight_role", None) == role:
            return
        self.sign_out()
        name, password = ACCOUNTS[role]
        self.driver.get(self.base_url + "/login")
        self.wait_for("#rs-login-name").send_keys(name)
        self.driver.find_element(By.CSS_SELECTOR, "#rs-login-password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "#rs-login-submit").click()
        self._wait(lambda d: "/login" not in d.current_url, TIMEOUT_S, f"signing in as {name} failed")
        self.driver.recsight_role = role
        self.console_errors()  # a role with no page of its own yet lands on a 403 page: not the test's concern

    def sign_out(self) -> None:
        """Forget the session (the sign-out button is tested on its own)."""
        self.driver.delete_all_cookies()
        self.driver.recsight_role = None

    def open(self, path: str = "/", ready_css: str | None = None) -> None:
        """Load ``path`` and wait until Dash has rendered (and ``ready_css`` is there, if given)."""
        self.driver.get(self.base_url + path)
        self.wait_for("#_pages_content")
        if ready_css:
            self.wait_for(ready_css)
        self.wait_until_idle()

    def wait_for(self, css: str, timeout: float = TIMEOUT_S):
        """The first visible element matching ``css``, waiting for it to appear."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self._wait(ec.visibility_of_element_located((By.CSS_SELECTOR, css)), timeout,
                          f"no visible element {css!r}")

    def wait_for_text(self, css: str, expected: str | Callable[[str], bool], timeout: float = TIMEOUT_S) -> str:
        """Wait until the text of ``css`` equals ``expected`` (or satisfies it, if callable)."""
        check = expected if callable(expected) else (lambda text: text == expected)

        def ready(_driver) -> str | bool:
            text = self._text_or_none(css)
            return text if text is not None and check(text) else False

        try:
            return self._wait(ready, timeout, "")
        except AssertionError:
            raise AssertionError(f"{css!r} never showed {expected!r}; it shows {self._text_or_none(css)!r}") from None

    def text(self, css: str) -> str:
        return self.wait_for(css).text.strip()

    def click(self, css: str, timeout: float = TIMEOUT_S) -> None:
        """Click ``css`` once it is clickable, scrolled to the middle of the window (retrying
        while a loading overlay or a closing popover is still in the way)."""
        from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
        from selenium.webdriver.common.by import By

        def clicked(driver) -> bool:
            found = driver.find_elements(By.CSS_SELECTOR, css)
            if not found or not found[0].is_displayed() or not found[0].is_enabled():
                return False
            try:
                driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", found[0])
                found[0].click()
            except (ElementClickInterceptedException, StaleElementReferenceException):
                return False
            return True

        self._wait(clicked, timeout, f"{css!r} is not clickable")

    def select(self, dropdown_css: str, value: str) -> None:
        """Pick the option with ``value`` in a Dash 4 ``dcc.Dropdown`` (it opens in a popover)."""
        self.click(dropdown_css)
        self.click(f".dash-dropdown-content .dash-dropdown-option:has(input[value='{value}'])")

    def wait_until_idle(self, timeout: float = TIMEOUT_S) -> None:
        """Wait until no Dash callback is pending (no element is marked as loading)."""
        from selenium.webdriver.common.by import By

        self._wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']"),
                   timeout, "the page kept loading")

    def console_errors(self) -> list[str]:
        """SEVERE browser-console messages since the last call (reading drains the log)."""
        return [entry["message"] for entry in self.driver.get_log("browser") if entry.get("level") == "SEVERE"]

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """Save a PNG of the page; ``full_page`` grows the window to the page's height first."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if full_page:  # resizing can reflow the page, so grow until the height settles
            for _ in range(3):
                height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
                if height <= self.driver.execute_script("return window.innerHeight"):
                    break
                chrome = self.driver.get_window_size()["height"] - self._viewport_height()
                self.driver.set_window_size(WINDOW[0], height + chrome)
                self.wait_until_idle()
        try:
            self.driver.save_screenshot(str(path))
        finally:
            if full_page:
                self.driver.set_window_size(*WINDOW)
        return path

    def _viewport_height(self) -> int:
        return int(self.driver.execute_script("return window.innerHeight"))

    def _text_or_none(self, css: str) -> str | None:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By

        try:
            found = self.driver.find_elements(By.CSS_SELECTOR, css)
            return found[0].text.strip() if found else None
        except StaleElementReferenceException:
            return None

    def _wait(self, condition, timeout: float, message: str):
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(condition)
        except TimeoutException:
            raise AssertionError(message or "timed out") from None


@pytest.fixture
def shop_value(live_app: LiveApp) -> Callable[..., object]:
    """``shop_value(sql, params)``: one value straight from the served shop database (read-only),
    to compare with what the page shows."""

    def query(sql: str, params: dict | None = None) -> object:
        with duckdb.connect(str(live_app.settings.db_path), read_only=True) as con:
            return con.execute(sql, params or {}).fetchone()[0]

    return query
