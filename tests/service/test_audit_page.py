"""The admin's audit page without a browser: its callback body filters the log, its layout offers
the users and actions that occur, and problems are messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.privacy import pseudonymise
from service import audit
from settings import Settings
from tests.components import find as _find
from tests.conftest import TEST_SECRET

CUSTOMER = pseudonymise("42", TEST_SECRET)


@pytest.fixture
def page(service_app: Any):
    import pages.audit as module  # importable once an app exists

    return module


@pytest.fixture
def log_settings(tmp_path) -> Settings:
    path = tmp_path / "audit.duckdb"
    audit.record(path, "ann", "admin", audit.SIGN_IN, detail="from 127.0.0.1")
    audit.record(path, "sue", "support", audit.CUSTOMER_LOOKUP, customer=CUSTOMER)
    audit.record(path, "eve", None, audit.SIGN_IN_FAILED, detail="unknown user from 10.0.0.9")
    return Settings(audit_db=path)



def test_all_entries_newest_first_with_readable_actions(page, log_settings):
    view = page.update_audit(page.ALL, page.ALL, None, None, log_settings)
    assert [(r["who"], r["role"], r["action"], r["customer"]) for r in view.rows] == [
        ("eve", "", "Sign-in failed", ""),
        ("sue", "support", "Customer lookup", CUSTOMER),
        ("ann", "admin", "Signed in", ""),
    ]
    assert set(view.rows[0]) == {field for field, _, _ in page.COLUMNS}
    assert view.summary == "3 entries, newest first."
    when = datetime.strptime(view.rows[0]["when"], "%Y-%m-%d %H:%M:%S")
    assert abs(when - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=5)


def test_filters_by_user_action_and_dates(page, log_settings):
    assert [r["who"] for r in page.update_audit("sue", page.ALL, None, None, log_settings).rows] == ["sue"]
    failed = page.update_audit(page.ALL, audit.SIGN_IN_FAILED, None, None, log_settings)
    assert [r["who"] for r in failed.rows] == ["eve"] and failed.summary == "1 entry, newest first."
    today = datetime.now(UTC).date()
    yesterday = (today - timedelta(days=1)).isoformat()
    assert len(page.update_audit(None, None, today.isoformat(), f"{today}T00:00:00", log_settings).rows) == 3
    empty = page.update_audit(page.ALL, page.ALL, "2001-01-01", yesterday, log_settings)
    assert empty.rows == [] and empty.summary == "No entries for this selection."


def test_bad_dates_are_messages(page, log_settings):
    assert page.update_audit(None, None, "2024-02-10", "2024-02-01", log_settings).summary == (
        "The start date is after the end date.")
    assert "is not a date" in page.update_audit(None, None, "'; DROP TABLE", None, log_settings).summary


def test_a_long_log_shows_the_newest_and_says_so(page, log_settings, monkeypatch):
    monkeypatch.setattr(audit, "MAX_ENTRIES", 2)
    view = page.update_audit(None, None, None, None, log_settings)
    assert [r["who"] for r in view.rows] == ["eve", "sue"] and "newest 2 entries" in view.summary


def test_layout_offers_the_users_in_the_log_and_every_action(page, log_settings):
    layout = page.build_layout(log_settings)
    users = [option["value"] for option in _find(layout, "au-user").options]
    assert users == [page.ALL, "ann", "eve", "sue"]
    actions = [option["value"] for option in _find(layout, "au-action").options]
    assert actions == [page.ALL, *audit.ACTIONS]
    assert _find(layout, "au-grid") is not None and _find(layout, "au-problem") is None


def test_an_unreadable_log_is_a_message(page, tmp_path):
    broken = tmp_path / "audit.duckdb"
    broken.write_bytes(b"not a database" * 100)
    settings = Settings(audit_db=broken)
    assert "cannot be opened" in str(_find(page.build_layout(settings), "au-problem").children)
    view = page.update_audit(None, None, None, None, settings)
    assert view.rows == [] and "cannot be opened" in view.summary
