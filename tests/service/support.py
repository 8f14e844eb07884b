"""Shared by the tests that need signed-in users: a users file with one user per role, settings
for an app under test, and signing in through the real /login form with a Flask test client.

Hashing a password costs ~0.1 s, so the users file is built once per process and copied.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from service.users import ADMIN, ANALYST, INTAKE, SUPPORT, add_user
from settings import Settings
from tests.conftest import TEST_SECRET

# role -> (user name, password)
ACCOUNTS: dict[str, tuple[str, str]] = {
    ADMIN: ("ann", "admin-password-1"),
    ANALYST: ("alan", "analyst-password-1"),
    SUPPORT: ("sue", "support-password-1"),
    INTAKE: ("backend", "intake-password-1"),  # the shop's backend: posts events, reads nothing
}
_template: list[bytes] = []


def write_users(path: Path) -> Path:
    """A users file at ``path`` holding the ``ACCOUNTS`` (one per role)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not _template:
        for role, (name, password) in ACCOUNTS.items():
            add_user(path, name, role, password)
        _template.append(path.read_bytes())
    else:
        path.write_bytes(_template[0])
    return path


def app_settings(folder: Path, **changes: Any) -> Settings:
    """Settings for an app whose users, audit log (and, by default, missing shop) are in ``folder``."""
    values: dict[str, Any] = dict(db_path=folder / "shop.duckdb", models_dir=folder / "models",
                                  users_file=write_users(folder / "users.json"), audit_db=folder / "audit.duckdb",
                                  secret=TEST_SECRET)
    values.update(changes)
    return Settings(**values)


def csrf_token(client: Any) -> str:
    """The hidden form token of the sign-in page (it also starts the client's session)."""
    page = client.get("/login").get_data(as_text=True)
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the sign-in page has no form token"
    return found.group(1)


def signed_in_client(app: Any, role: str) -> Any:
    """A test client of the Dash ``app`` signed in as ``role`` through the real sign-in form."""
    client = app.server.test_client()
    assert sign_in(client, role).status_code == 302
    return client


def sign_in(client: Any, role: str | None = None, *, name: str | None = None, password: str | None = None,
            next_path: str | None = None) -> Any:
    """Post the sign-in form as the account for ``role`` (or ``name``/``password``); the response."""
    if role is not None:
        name, password = ACCOUNTS[role]
    form = {"name": name or "", "password": password or "", "csrf": csrf_token(client)}
    if next_path is not None:
        form["next"] = next_path
    return client.post("/login", data=form)
