"""The shop overview in headless Chromium: it opens cleanly, shows the shop's real numbers, and
its date filters (quick ranges and typed dates) change them."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from analytics import schema

pytestmark = pytest.mark.browser

EVENTS_KPI = "#ov-kpi-events"
GRAPHS = ("ov-funnel", "ov-activity", "ov-categories", "ov-brands", "ov-segments")


def _events_between(shop_value, start: date, end: date) -> int:
    return int(shop_value(
        f"SELECT count(*) FROM {schema.EVENTS} WHERE {schema.TS} >= $start AND {schema.TS} < $end",
        {"start": start, "end": end + timedelta(days=1)},
    ))


def test_overview_opens_with_every_chart_and_no_console_errors(browser):
    browser.open("/", EVENTS_KPI)
    assert browser.text(".rs-page-title") == "Shop overview"
    assert browser.text("#rs-nav .active") == "Shop overview"
    for graph in GRAPHS:
        browser.wait_for(f"#{graph} .main-svg")
    browser.wait_for_text("#ov-segment-table thead", lambda text: "CUSTOMERS" in text.upper())
    assert browser.console_errors() == []


def test_overview_shows_the_real_counts(browser, shop_value):
    browser.open("/", EVENTS_KPI)
    events = int(shop_value(f"SELECT count(*) FROM {schema.EVENTS}"))
    customers = int(shop_value(f"SELECT count(DISTINCT {schema.USER_ID}) FROM {schema.EVENTS}"))
    catalogue = int(shop_value(f"SELECT count(*) FROM {schema.ITEMS}"))
    assert events > 1000
    browser.wait_for_text(EVENTS_KPI, f"{events:,}")
    browser.wait_for_text("#ov-kpi-users", f"{customers:,}")
    assert browser.text("#ov-kpi-items-caption") == f"of {catalogue:,} in the catalogue"


def test_quick_range_updates_the_kpis(browser, shop_value):
    browser.open("/", EVENTS_KPI)
    everything = browser.wait_for_text(EVENTS_KPI, lambda text: text[:1].isdigit())
    last = shop_value(f"SELECT max({schema.TS})::DATE FROM {schema.EVENTS}")
    expected = _events_between(shop_value, last - timedelta(days=6), last)
    assert f"{expected:,}" != everything

    browser.click("#ov-preset-7")
    browser.wait_for_text(EVENTS_KPI, f"{expected:,}")
    start_shown = browser.driver.find_element("css selector", "input#ov-dates").get_attribute("value")
    assert start_shown == f"{(last - timedelta(days=6)).day} {(last - timedelta(days=6)):%b %Y}"

    browser.click("#ov-preset-all")
    browser.wait_for_text(EVENTS_KPI, everything)
    assert browser.console_errors() == []


def test_typed_dates_update_the_kpis(browser, shop_value):
    from selenium.webdriver.common.keys import Keys

    browser.open("/", EVENTS_KPI)
    first = shop_value(f"SELECT min({schema.TS})::DATE FROM {schema.EVENTS}")
    start, end = first + timedelta(days=10), first + timedelta(days=16)
    for css, day in (("input#ov-dates-end-date", end), ("input#ov-dates", start)):
        field = browser.wait_for(css)
        field.click()
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(f"{day.day} {day:%b %Y}", Keys.TAB)
    browser.wait_for_text(EVENTS_KPI, f"{_events_between(shop_value, start, end):,}")
    assert browser.console_errors() == []


def test_segment_filter_updates_the_kpis(browser, shop_value):
    from analytics import profiles

    browser.open("/", EVENTS_KPI)
    champions = int(shop_value(
        f"SELECT count(*) FROM {profiles.USER_PROFILES} WHERE {profiles.RFM_SEGMENT} = $segment",
        {"segment": profiles.CHAMPIONS},
    ))
    assert champions >= 10  # listed only when at least k customers are in it
    browser.select("#ov-segment", profiles.CHAMPIONS)
    browser.wait_for_text("#ov-kpi-users", f"{champions:,}")
    assert browser.console_errors() == []


def test_unknown_address_shows_the_not_found_page(browser):
    browser.open("/no-such-page", "#nf-title")
    assert browser.text("#nf-title") == "Page not found"
    browser.click(".rs-back-link")
    browser.wait_for(EVENTS_KPI)
