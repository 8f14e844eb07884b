"""The users file: who may sign in, with which role, and a salted hash of their password.

One JSON file (``settings.users_file``, ``RECSIGHT_USERS``; default ``data/users.json``) so a small
team needs no database server. Only werkzeug's salted scrypt hash is stored, never the password.
Writes go to a temporary file in the same folder and are renamed over the old one, so a reader
(the running app) never sees half a file; the file is created readable by its owner only.

The app re-reads the file when it changes on disk (a cheap ``stat`` per lookup), so a user added
with ``python cli.py users add`` can sign in without a restart, and a removed one is signed out
on their next request.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from atomic import write_text
from errors import RecsightError

__all__ = [
    "ROLES", "ADMIN", "ANALYST", "SUPPORT", "INTAKE", "User", "add_user", "verify_user", "get_user", "list_users",
    "MIN_PASSWORD_LENGTH", "MAX_PASSWORD_LENGTH", "MAX_NAME_LENGTH",
]

log = logging.getLogger(__name__)

ADMIN, ANALYST, SUPPORT = "admin", "analyst", "support"
# A service account, not a person: the shop's backend posting events and catalogue changes to
# /api/v1/events and /api/v1/items (HTTP basic auth). It may read nothing, not even a page.
INTAKE = "intake"
ROLES: tuple[str, ...] = (ADMIN, ANALYST, SUPPORT, INTAKE)
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # hashing cost grows with length; nobody types more
MAX_NAME_LENGTH = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")
_FORMAT, _VERSION = "recsight-users", 1


@dataclass(frozen=True)
class User:
    """A person who may sign in; ``created`` is an ISO-8601 UTC timestamp."""

    name: str
    role: str
    created: str = ""


@dataclass(frozen=True)
class _Record:
    user: User
    password_hash: str


def add_user(path: Path | str, name: str, role: str, password: str) -> User:
    """Add ``name`` with ``role`` to the users file (created if missing) and return the user.

    A name already there (in any letter case) is an error rather than a silent password change.
    """
    name = _check_name(name)
    if role not in ROLES:
        raise RecsightError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    _check_password(password)
    path = Path(path)
    records = _load(path)
    if any(existing.lower() == name.lower() for existing in records):
        raise RecsightError(f"user {name!r} already exists in {path}")
    created = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    user = User(name=name, role=role, created=created)
    records[name] = _Record(user, generate_password_hash(password))
    _write(path, records)
    log.info("added user %s (%s) to %s", name, role, path)
    return user


def verify_user(path: Path | str, name: str, password: str) -> User | None:
    """The user if ``password`` is theirs, else None (unknown name, wrong or absurd password).

    An unknown name costs the same hashing time as a known one, so response times do not tell
    an attacker which names exist.
    """
    record = _load(Path(path)).get(name) if isinstance(name, str) else None
    if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_LENGTH:
        return None
    if record is None:
        check_password_hash(_dummy_hash(), password)
        return None
    return record.user if check_password_hash(record.password_hash, password) else None


def get_user(path: Path | str, name: str) -> User | None:
    """The user called ``name`` as the file says now (their current role), or None."""
    record = _load(Path(path)).get(name)
    return None if record is None else record.user


def list_users(path: Path | str) -> list[User]:
    """Every user, by name; an empty list when the file does not exist yet."""
    return sorted((record.user for record in _load(Path(path)).values()), key=lambda user: user.name)


# --------------------------------------------------------------------------- checks


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise RecsightError("a user name is required")
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise RecsightError(
            f"bad user name {name[:MAX_NAME_LENGTH]!r}: use up to {MAX_NAME_LENGTH} letters, digits, "
            "'.', '_', '@' or '-', starting with a letter or digit"
        )
    return name


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise RecsightError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise RecsightError(f"the password must have at most {MAX_PASSWORD_LENGTH} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in password):
        raise RecsightError("the password must not contain control characters")


_dummy: list[str] = []


def _dummy_hash() -> str:
    if not _dummy:
        _dummy.append(generate_password_hash(os.urandom(16).hex()))
    return _dummy[0]


# --------------------------------------------------------------------------- the file

_cache: dict[Path, tuple[tuple[int, int, int], dict[str, _Record]]] = {}
_cache_lock = threading.Lock()


def _load(path: Path) -> dict[str, _Record]:
    """The file's users by name, re-read only when the file changed on disk."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RecsightError(f"cannot read users file {path}: {exc.strerror}") from None
    stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    key = path.resolve()
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == stamp:
            return dict(cached[1])
    records = _parse(path)
    with _cache_lock:
        _cache[key] = (stamp, records)
    return dict(records)


def _parse(path: Path) -> dict[str, _Record]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecsightError(f"cannot read users file {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecsightError(f"users file {path} is not valid JSON ({exc}); restore it or start a new one") from None
    if (not isinstance(document, dict) or document.get("format") != _FORMAT
            or not isinstance(document.get("users"), list)):
        raise RecsightError(f"{path} is not a Recsight users file")
    records: dict[str, _Record] = {}
    for entry in document["users"]:
        try:
            user = User(name=_check_name(entry["name"]), role=entry["role"], created=str(entry.get("created", "")))
            password_hash = entry["password_hash"]
        except (KeyError, TypeError, RecsightError):
            raise RecsightError(f"users file {path} has a malformed entry; fix or remove it") from None
        if user.role not in ROLES or not isinstance(password_hash, str) or "$" not in password_hash:
            raise RecsightError(f"users file {path}: user {user.name!r} has an unknown role or no password hash")
        records[user.name] = _Record(user, password_hash)
    return records


def _write(path: Path, records: dict[str, _Record]) -> None:
    """Replace the file atomically: a temporary file beside it, flushed, then renamed over it."""
    document: dict[str, Any] = {
        "format": _FORMAT,
        "version": _VERSION,
        "users": [
            {"name": r.user.name, "role": r.user.role, "created": r.user.created, "password_hash": r.password_hash}
            for r in sorted(records.values(), key=lambda r: r.user.name)
        ],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps(document, indent=2) + "\n")  # mode 0600: it holds password hashes
    except OSError as exc:
        raise RecsightError(f"cannot write users file {path}: {exc.strerror}") from None
