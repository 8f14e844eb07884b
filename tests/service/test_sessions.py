"""Sessions end when they should (issue 13, item 3): signing out revokes the session on the server,
so a copy of the old cookie is refused (by the API and by Dash's own routes), also after the
server restarts; a session idle for longer than the idle timeout ends; pages and Dash's answers
are never stored by the browser, so Back after sign-out cannot show the previous customer."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from service import sessions
from service.users import ADMIN, SUPPORT
from settings import Settings, load_settings
from tests.service.support import app_settings, sign_in
from tests.shop import TrainedShop

COOKIE = "recsight_session"


def _cookie(client: Any) -> str:
    found = client.get_cookie(COOKIE)
    assert found is not None, "no session cookie"
    return found.value


def _replay(app: Any, cookie: str) -> Any:
    """A new client holding a copy of ``cookie`` (what an attacker who copied it would send)."""
    thief = app.server.test_client()
    thief.set_cookie(COOKIE, cookie)
    return thief


@pytest.fixture(scope="module")
def customer(trained_shop: TrainedShop) -> str:
    return trained_shop.raw_ids[7]


def test_a_copied_cookie_is_refused_after_sign_out(api_app, customer):
    client = api_app.server.test_client()
    assert sign_in(client, SUPPORT).status_code == 302
    cookie = _cookie(client)
    profile = f"/api/v1/users/{customer}/profile"
    assert _replay(api_app, cookie).get(profile).status_code == 200  # the copy works while signed in
    assert client.post("/logout").status_code == 302
    thief = _replay(api_app, cookie)
    assert thief.get(profile).status_code == 401
    assert thief.get("/_dash-layout").status_code == 401
    assert thief.get("/user").status_code == 302  # to the sign-in form


def test_a_revoked_session_stays_revoked_after_a_restart_and_a_live_one_survives(tmp_path):
    from app import create_app

    settings = app_settings(tmp_path)
    first = create_app(settings)
    ended, kept = first.server.test_client(), first.server.test_client()
    sign_in(ended, ADMIN)
    sign_in(kept, SUPPORT)
    ended_cookie, kept_cookie = _cookie(ended), _cookie(kept)
    ended.post("/logout")

    restarted = create_app(settings)  # a new process would read the same sessions file
    assert restarted.server.test_client().get("/health").status_code == 200
    assert _replay(restarted, ended_cookie).get("/_dash-layout").status_code == 401
    assert _replay(restarted, kept_cookie).get("/_dash-layout").status_code == 200


def test_a_cookie_without_a_server_session_is_refused(client, service_app):
    """A cookie that names a user and a fresh time but no session the server issued (say,
    forged with a leaked key, or from before this version) is no session."""
    sign_in(client, ADMIN)
    with client.session_transaction() as session:
        session[sessions.SESSION_ID] = "not-a-session-the-server-issued"
    assert client.get("/_dash-layout").status_code == 401


def test_an_idle_session_ends_and_stays_ended(client, service_settings):
    sign_in(client, ADMIN)
    assert client.get("/_dash-layout").status_code == 200
    idle = service_settings.idle_timeout_s
    with client.session_transaction() as session:
        session[sessions.LAST_SEEN] = int(time.time()) - idle - 1
        stale = dict(session)
    assert client.get("/_dash-layout").status_code == 401
    assert client.get("/").status_code == 302
    with client.session_transaction() as session:  # the idle cookie, presented again with a fresh time
        session.update(stale)
        session[sessions.LAST_SEEN] = int(time.time())
    assert client.get("/_dash-layout").status_code == 401, "the server ended the idle session"


def test_activity_keeps_a_session_alive(client, service_settings):
    sign_in(client, ADMIN)
    idle = service_settings.idle_timeout_s
    with client.session_transaction() as session:
        session[sessions.LAST_SEEN] = int(time.time()) - idle + 5  # nearly idle
    assert client.get("/_dash-layout").status_code == 200
    with client.session_transaction() as session:
        assert int(time.time()) - session[sessions.LAST_SEEN] <= 1  # the request counted as activity


def test_the_idle_timeout_is_a_setting():
    assert Settings().idle_timeout_s == 30 * 60
    assert load_settings({"RECSIGHT_IDLE_MINUTES": "5"}).idle_timeout_s == 300
    with pytest.raises(Exception, match="RECSIGHT_IDLE_MINUTES"):
        load_settings({"RECSIGHT_IDLE_MINUTES": "0"})


def test_the_sessions_file_holds_no_usable_session_id_and_is_private(client, service_settings):
    sign_in(client, SUPPORT)
    session_id = client.get_cookie(COOKIE) and _session_id(client)
    path = Path(service_settings.sessions_file)
    assert path.exists()
    assert session_id not in path.read_text(encoding="utf-8")  # only a digest of it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _session_id(client: Any) -> str:
    with client.session_transaction() as session:
        return session[sessions.SESSION_ID]


# --------------------------------------------------------------------------- caching


@pytest.fixture(scope="module")
def admin(service_app) -> Any:
    client = service_app.server.test_client()
    sign_in(client, ADMIN)
    return client


@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/user"), ("GET", "/audit"), ("GET", "/no-such-page"), ("GET", "/_dash-layout"),
    ("GET", "/_dash-dependencies"), ("POST", "/_dash-update-component"), ("GET", "/login"), ("GET", "/logout"),
    ("GET", "/api/v1/openapi.json"),
])
def test_pages_and_dash_answers_are_never_stored(admin, method, path):
    response = admin.open(path, method=method, json={} if method == "POST" else None)
    assert "no-store" in response.headers.get("Cache-Control", ""), (path, response.status_code)


def test_the_dash_bundles_and_stylesheets_stay_cacheable(admin):
    response = admin.get("/assets/recsight.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")


# --------------------------------------------------------------------------- the list of live sessions


def test_a_sign_out_in_one_process_ends_the_session_in_another(tmp_path):
    """Two stores on one file stand for two server processes behind one address."""
    path = tmp_path / "sessions.json"
    one, other = sessions.SessionStore(path), sessions.SessionStore(path)
    kept, ended = one.start("ann", 3600), one.start("sue", 3600)
    assert other.is_live(kept, "ann") and other.is_live(ended, "sue")
    other.end(ended)
    assert not one.is_live(ended, "sue") and one.is_live(kept, "ann")
    assert not one.is_live(kept, "sue")  # a session is its user's only


def test_a_lost_or_damaged_list_signs_everyone_out(tmp_path):
    path = tmp_path / "sessions.json"
    store = sessions.SessionStore(path)
    session_id = store.start("ann", 3600)
    path.write_text("{not json", encoding="utf-8")
    assert not store.is_live(session_id, "ann")
    later = store.start("ann", 3600)  # the next sign-in writes a good list again
    assert store.is_live(later, "ann") and sessions.SessionStore(path).is_live(later, "ann")
    path.unlink()
    assert not store.is_live(later, "ann")


def test_ended_and_expired_sessions_leave_the_file(tmp_path):
    now = [1_000_000.0]
    store = sessions.SessionStore(tmp_path / "sessions.json", clock=lambda: now[0])
    short, ended = store.start("ann", 60), store.start("sue", 3600)
    store.end(ended)
    now[0] += 61
    assert not store.is_live(short, "ann")
    store.start("alan", 3600)
    assert len(json.loads((tmp_path / "sessions.json").read_text())["sessions"]) == 1


def test_a_sign_in_that_cannot_be_listed_is_refused(tmp_path, service_app, monkeypatch):
    def unwritable(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sessions.atomic, "write_text", unwritable)
    client = service_app.server.test_client()
    response = sign_in(client, ADMIN)
    assert response.status_code == 503 and "Sign-in is unavailable" in response.get_data(as_text=True)
    assert client.get("/_dash-layout").status_code == 401
