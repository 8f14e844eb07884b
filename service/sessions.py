"""Server-side sign-in sessions: a sign-out (or an idle timeout) ends a session for good.

The session cookie is Flask's signed cookie. Signed is not enough on its own: a copy of the
cookie taken before sign-out would stay valid until it expires, since the server keeps nothing
to compare it with. So every sign-in also gets a random session id, kept in the cookie, and the
server keeps the list of live sessions (:class:`SessionStore`); a request counts as signed in
only while its session id is on that list. Sign-out and the idle timeout take the id off.

Why a list of live sessions and not a list of revoked ones: it fails closed. If the file is lost
or damaged, everyone signs in again; a lost revocation list would bring ended sessions back.

The list is a small JSON file (``Settings.sessions_file``, beside the audit log), so a sign-out
survives a restart and several server processes share it:

* it holds a SHA-256 digest of each session id, never the id itself, plus the user name and when
  the session must end at the latest (to drop old entries): whoever reads the file cannot act as
  anyone with what they read;
* writes take an exclusive lock beside the file, read it afresh, change it and replace it
  atomically (``atomic.write_text``, mode 0600); readers reload it when its size or time stamp
  changes (one ``stat`` per request), so a sign-out in one process is seen by the others.

The idle timeout is counted from the last request, kept in the (signed) cookie as
:data:`LAST_SEEN` and renewed at most once every :data:`RENEW_EVERY_S` seconds, so not every
Dash callback sets a new cookie. A cookie that has been idle too long ends its session on the
server as well, so presenting it again later cannot revive it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import flask

import atomic
from errors import RecsightError

__all__ = ["SessionStore", "SESSION_ID", "LAST_SEEN", "RENEW_EVERY_S", "STORE_KEY", "begin", "is_live", "finish"]

log = logging.getLogger(__name__)

SESSION_ID, LAST_SEEN = "sid", "seen"  # the cookie's keys, beside the user name and the sign-in time
RENEW_EVERY_S = 60  # how stale the cookie's last-seen time may get before a request renews it
STORE_KEY = "RECSIGHT_SESSIONS"  # where an app keeps its SessionStore in its Flask config
_VERSION = 1


@dataclass(frozen=True)
class _Entry:
    user: str
    until: int  # epoch seconds: the session ends by then in any case


class SessionStore:
    """The live sessions of one app, kept in ``path``; safe to share between threads."""

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._stamp: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) of what _entries holds

    def start(self, user: str, lifetime_s: int) -> str:
        """A new session for ``user`` that ends within ``lifetime_s``; its id, for the cookie.
        Raises RecsightError when the list cannot be written (then nobody is signed in)."""
        session_id = secrets.token_urlsafe(32)
        entry = _Entry(user, int(self._clock()) + int(lifetime_s))
        self._change(lambda entries: entries.__setitem__(_digest(session_id), entry))
        return session_id

    def is_live(self, session_id: object, user: str) -> bool:
        """Whether ``session_id`` is a session this server started for ``user`` and has not ended."""
        if not isinstance(session_id, str) or not session_id:
            return False
        with self._lock:
            self._reload_if_changed()
            entry = self._entries.get(_digest(session_id))
        return entry is not None and entry.user == user and self._clock() <= entry.until

    def end(self, session_id: object) -> None:
        """End the session (sign-out, idle timeout); nothing happens for an unknown id. Raises
        RecsightError when the list cannot be written, so the caller can say so."""
        if isinstance(session_id, str) and session_id:
            self._change(lambda entries: entries.pop(_digest(session_id), None))

    # ----------------------------------------------------------------------- the file

    def _change(self, change: Callable[[dict[str, _Entry]], object]) -> None:
        """Apply ``change`` to the list as it is on disk now and write it back, under the file lock."""
        with self._lock, self._exclusive():
            self._stamp = None
            self._reload_if_changed()
            entries = dict(self._entries)
            change(entries)
            now = self._clock()
            entries = {key: entry for key, entry in entries.items() if entry.until >= now}
            data = {"version": _VERSION,
                    "sessions": {key: {"user": e.user, "until": e.until} for key, e in entries.items()}}
            try:
                atomic.write_text(self.path, json.dumps(data, indent=0, sort_keys=True))
            except OSError as exc:
                raise RecsightError(f"cannot write the sessions file {self.path}: {exc.strerror or exc}") from None
            self._entries = entries
            self._stamp = _stamp(self.path)

    def _reload_if_changed(self) -> None:
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return
        self._entries = _read(self.path) if stamp is not None else {}
        self._stamp = stamp

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise RecsightError(f"cannot write the sessions file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock


# --------------------------------------------------------------------------- the request's session


def begin(cookie: MutableMapping[str, object], user: str, lifetime_s: int) -> None:
    """Start a server session for ``user`` and put its id in ``cookie`` (``flask.session``).
    Raises RecsightError when it cannot be recorded: then the sign-in must be refused."""
    store = _store()
    if store is None:
        raise RecsightError("sign-in sessions are not set up on this server")
    cookie[SESSION_ID] = store.start(user, lifetime_s)
    cookie[LAST_SEEN] = int(time.time())


def is_live(cookie: MutableMapping[str, object], user: str, idle_timeout_s: int) -> bool:
    """Whether ``cookie`` holds a live session of ``user`` that has not been idle too long.

    Counts this request as activity (renewing the cookie's last-seen time when it is over a
    minute old). An idle session is ended on the server too, so the cookie cannot come back.
    """
    store, now = _store(), int(time.time())
    session_id, seen = cookie.get(SESSION_ID), cookie.get(LAST_SEEN)
    if store is None or not isinstance(seen, int) or not store.is_live(session_id, user):
        return False
    if not -RENEW_EVERY_S <= now - seen <= idle_timeout_s:
        log.info("the session of %s ended after %d idle minutes", user, idle_timeout_s // 60)
        _end_quietly(store, session_id)
        return False
    if now - seen >= min(RENEW_EVERY_S, max(1, idle_timeout_s // 4)):
        cookie[LAST_SEEN] = now
    return True


def finish(cookie: MutableMapping[str, object]) -> None:
    """End the session ``cookie`` names on the server (sign-out). A list that cannot be written
    is logged: the cookie is cleared by the caller all the same."""
    store = _store()
    if store is not None:
        _end_quietly(store, cookie.get(SESSION_ID))


def _end_quietly(store: SessionStore, session_id: object) -> None:
    try:
        store.end(session_id)
    except RecsightError as exc:
        log.error("a session could not be ended on the server: %s", exc)


def _store() -> SessionStore | None:
    """The session list of the app serving this request (``service.web.install`` puts it there)."""
    store = flask.current_app.config.get(STORE_KEY) if flask.has_app_context() else None
    return store if isinstance(store, SessionStore) else None


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.error("cannot read the sessions file %s: %s; nobody counts as signed in", path, exc.strerror)
        return (0, -1, 0)  # unreadable: never equal to a real stamp, and _read finds nothing
    return found.st_ino, found.st_size, found.st_mtime_ns


def _read(path: Path) -> dict[str, _Entry]:
    """The list in ``path``; a missing, unreadable or damaged file is an empty list (fail closed)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["sessions"] if data.get("version") == _VERSION else {}
        return {str(key): _Entry(str(row["user"]), int(row["until"])) for key, row in rows.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.error("the sessions file %s cannot be read (%s): everyone must sign in again", path, exc)
        return {}
