"""Throttling at the service boundary: sign-in attempts, customer lookups and suggestions.

Why: without it, a password can be guessed at the speed of the password hash (30 wrong
passwords answered in 0.17 s each, and the right one still worked after), every failed try
was an audit row anyone could write, and one support login could map every shop id to its
pseudonym through the API in minutes, undoing the pseudonyms in every export.

What is enforced (the thresholds are the constants below; README "## Security" states them):

* **Sign-in**, through the form and through the API's HTTP basic auth alike, per account (the
  typed name) and per client address, with backoff: a few failures are free, the failure that
  reaches the limit locks the account (address) for a minute, and every failure after a lock
  doubles the lock up to a cap. A locked attempt is answered ``429`` with ``Retry-After``
  before the password is even checked (no server thread sleeps; the right password waits too).
  Failures are forgotten an hour after the last one, and a sign-in clears its account's.
* **The audit log cannot be flooded** by failed sign-ins: attempts refused while locked write
  no row; the start of each lock writes one ``throttled`` row (with how many attempts the
  previous lock refused); and past a process-wide number of itemised failures a minute, further
  failures are counted in one row instead of a row each.
* **Customer lookups** (the lookup page and every ``/api/v1/users/...`` call together) and
  **suggestions** ("did you mean") per login, in sliding windows; over the limit the page says
  so and the API answers ``429`` with ``Retry-After``.
* **Admins are alerted** on every burst (a lock, a login hitting a lookup or suggestion limit,
  the failure flood): one ``throttled`` audit row, which the audit page shows as a notice for a
  day, and one warning in the server log.

The state lives in memory, in this process (:func:`current`): a deployment that runs several
processes behind one address needs a shared store (or sticky routing) for these limits to hold
across them. The clock is injectable (``Throttle(clock=...)``, or ``current().clock``) so tests
move time instead of sleeping. Entries are bounded (:data:`MAX_TRACKED` per table, least
recently seen dropped first), so a spray of names or addresses cannot exhaust memory.

The client address is the request's ``remote_addr``: behind a reverse proxy that is the proxy's,
unless the deployment sets up Werkzeug's ``ProxyFix`` for its proxy.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import flask
from werkzeug.wrappers import Response

from errors import RecsightError
from service import access, audit
from service.responses import error_response
from settings import Settings

__all__ = [
    "Backoff", "Quota", "Limits", "Throttle", "LIMITS", "MAX_TRACKED",
    "SIGN_IN_PER_ACCOUNT", "SIGN_IN_PER_ADDRESS", "ITEMISED_SIGN_IN_FAILURES", "LOOKUPS_PER_LOGIN",
    "SUGGESTIONS_PER_LOGIN", "current", "sign_in_wait", "sign_in_failed", "signed_in", "lookup_wait",
    "suggestions_allowed", "too_many",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """The ``free``-th failure in a row locks for ``first_lock_s`` (the ones before it cost
    nothing), each failure after a lock doubles the lock, up to ``max_lock_s``; failures are
    forgotten ``forget_s`` after the last one."""

    free: int
    first_lock_s: float
    max_lock_s: float
    forget_s: float

    def lock_s(self, failures: int) -> float:
        """How long the ``failures``-th failure in a row locks (0: not at all)."""
        if failures < self.free:
            return 0.0
        return min(self.max_lock_s, self.first_lock_s * 2.0 ** min(failures - self.free, 32))


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` uses in any ``window_s`` seconds."""

    limit: int
    window_s: float

    def describe(self) -> str:
        return f"{self.limit} in {_duration(self.window_s)}"


# --------------------------------------------------------------------------- the thresholds

SIGN_IN_PER_ACCOUNT = Backoff(free=5, first_lock_s=60, max_lock_s=15 * 60, forget_s=60 * 60)
SIGN_IN_PER_ADDRESS = Backoff(free=20, first_lock_s=60, max_lock_s=15 * 60, forget_s=60 * 60)
ITEMISED_SIGN_IN_FAILURES = Quota(30, 60)  # failed sign-in rows a minute, whole process; more are counted
LOOKUPS_PER_LOGIN = (Quota(30, 60), Quota(1000, 24 * 3600))  # page and API together
SUGGESTIONS_PER_LOGIN = (Quota(10, 60 * 60),)  # lookups that got "did you mean" pseudonyms
MAX_TRACKED = 50_000  # accounts, addresses or logins remembered per table


@dataclass(frozen=True)
class Limits:
    """Every threshold of a :class:`Throttle`, so a test or a deployment can swap them at once."""

    account: Backoff = SIGN_IN_PER_ACCOUNT
    address: Backoff = SIGN_IN_PER_ADDRESS
    itemised_failures: Quota = ITEMISED_SIGN_IN_FAILURES
    lookups: tuple[Quota, ...] = LOOKUPS_PER_LOGIN
    suggestions: tuple[Quota, ...] = SUGGESTIONS_PER_LOGIN


LIMITS = Limits()


# --------------------------------------------------------------------------- state


@dataclass
class _Strikes:
    """Sign-in failures of one account or address."""

    failures: int = 0
    last: float = -math.inf
    locked_until: float = -math.inf
    refused: int = 0  # attempts refused while locked, not yet reported


@dataclass
class _Uses:
    """When one login used a limited thing (ascending), and until when it is refused."""

    stamps: list[float] = field(default_factory=list)
    limited_until: float = -math.inf
    refused: int = 0


class _Table(OrderedDict):
    """Entries by key, least recently used first, at most :data:`MAX_TRACKED` of them."""

    def touch(self, key: str, make: Callable[[], Any]) -> Any:
        entry = self.get(key)
        if entry is None:
            entry = self[key] = make()
            while len(self) > MAX_TRACKED:
                self.popitem(last=False)
        else:
            self.move_to_end(key)
        return entry


@dataclass(frozen=True)
class Failure:
    """What a failed sign-in means: whether it gets its own audit row, and the alerts it raised."""

    itemise: bool
    alerts: list[str]


class Throttle:
    """The counters of one process, under one lock; ``clock`` is seconds (monotonic)."""

    def __init__(self, limits: Limits = LIMITS, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything (a fresh process)."""
        with self._lock:
            self._accounts, self._addresses = _Table(), _Table()
            self._uses: dict[str, _Table] = {"lookups": _Table(), "suggestions": _Table()}
            self._window_start, self._window_count, self._unitemised = -math.inf, 0, 0

    # ----------------------------------------------------------------- sign-in

    def sign_in_wait(self, account: str, address: str) -> int | None:
        """Seconds before a sign-in for ``account`` from ``address`` may be tried, or None (go
        ahead). A refused attempt is counted for the next alert, not audited."""
        with self._lock:
            now = self.clock()
            waits = []
            for table, key in ((self._accounts, _account(account)), (self._addresses, address)):
                strikes = table.get(key)
                if strikes is not None and strikes.locked_until > now:
                    strikes.refused += 1
                    waits.append(strikes.locked_until - now)
            return _seconds(max(waits)) if waits else None

    def sign_in_failed(self, account: str, address: str) -> Failure:
        """Count a failed sign-in; a lock starting now is an alert (one row per burst)."""
        with self._lock:
            now = self.clock()
            alerts = []
            for table, key, backoff, what in ((self._accounts, _account(account), self.limits.account, "account"),
                                              (self._addresses, address, self.limits.address, "address")):
                strikes = table.touch(key, _Strikes)
                if now - strikes.last > backoff.forget_s:
                    strikes.failures, strikes.refused = 0, 0
                strikes.failures += 1
                strikes.last = now
                lock = backoff.lock_s(strikes.failures)
                if lock:
                    strikes.locked_until = now + lock
                    refused = f"; {strikes.refused} attempts were refused during the previous lock" \
                        if strikes.refused else ""
                    strikes.refused = 0
                    alerts.append(f"sign-in locked for {_duration(lock)} for this {what} after "
                                  f"{strikes.failures} failed attempts (latest from {address}){refused}")
            itemise, flood = self._itemise(now)
            # Over the itemised budget, the locks a flood starts are counted with it, not written
            # one by one: spraying names must not turn into a row per name either.
            return Failure(itemise, (alerts if itemise else []) + flood)

    def signed_in(self, account: str) -> None:
        """A sign-in worked: the account's failures are forgotten (its address's are not, so a
        valid login cannot reset the count of guesses at other accounts from the same place)."""
        with self._lock:
            self._accounts.pop(_account(account), None)

    def _itemise(self, now: float) -> tuple[bool, list[str]]:
        quota = self.limits.itemised_failures
        alerts = []
        if now - self._window_start >= quota.window_s:
            if self._unitemised:
                alerts.append(f"{self._unitemised} further failed sign-ins of the last burst (and the locks "
                              f"they started) were counted, not itemised (the log itemises {quota.describe()})")
            self._window_start, self._window_count, self._unitemised = now, 0, 0
        self._window_count += 1
        if self._window_count <= quota.limit:
            return True, alerts
        self._unitemised += 1
        if self._unitemised == 1:
            alerts.append(f"more than {quota.describe()} failed sign-ins: the rest are counted, not itemised")
        return False, alerts

    # ----------------------------------------------------------------- lookups and suggestions

    def use(self, kind: str, login: str) -> tuple[int | None, str | None]:
        """Take one ``kind`` ("lookups" or "suggestions") for ``login``: (None, None) when
        allowed, else (seconds to wait, an alert when this refusal starts a burst)."""
        quotas: tuple[Quota, ...] = getattr(self.limits, kind)
        with self._lock:
            now = self.clock()
            uses = self._uses[kind].touch(login, _Uses)
            longest = max(q.window_s for q in quotas)
            del uses.stamps[:bisect.bisect_right(uses.stamps, now - longest)]
            wait, full = 0.0, None
            for quota in quotas:
                recent = len(uses.stamps) - bisect.bisect_right(uses.stamps, now - quota.window_s)
                if recent >= quota.limit:
                    until = uses.stamps[len(uses.stamps) - quota.limit] + quota.window_s
                    if until - now > wait:
                        wait, full = until - now, quota
            if full is None:
                uses.stamps.append(now)
                return None, None
            alert = None
            if now >= uses.limited_until:  # a new burst: say so once
                alert = f"{kind} paused for {_duration(wait)}: more than {full.describe()}"
                if uses.refused:
                    alert += f"; {uses.refused} were refused in the burst before"
                uses.refused = 0
            uses.refused += 1
            uses.limited_until = now + wait
            return _seconds(wait), alert


_THROTTLE = Throttle()


def current() -> Throttle:
    """This process's throttle (tests reset it, swap its ``limits`` or set its ``clock``)."""
    return _THROTTLE


# --------------------------------------------------------------------------- in a request


def sign_in_wait(name: str) -> int | None:
    """Seconds this request's sign-in for ``name`` must wait (answer 429), or None."""
    return _THROTTLE.sign_in_wait(name, _address())


def sign_in_failed(settings: Settings, name: str) -> bool:
    """Count this request's failed sign-in for ``name``, alert admins when a burst starts, and
    say whether the failure gets an audit row of its own."""
    failure = _THROTTLE.sign_in_failed(name, _address())
    for alert in failure.alerts:
        _alert(settings, name, None, alert)
    return failure.itemise


def signed_in(name: str) -> None:
    """This request signed ``name`` in."""
    _THROTTLE.signed_in(name)


def lookup_wait(settings: Settings, where: str) -> int | None:
    """Count one customer lookup of the signed-in user (``where``: "API", "lookup page"):
    seconds to wait when over the limit (refuse it), else None. Outside a request, or with
    nobody signed in, there is no login to count (the guard refuses such requests first)."""
    return _use(settings, "lookups", where)


def suggestions_allowed(settings: Settings) -> bool:
    """Whether the signed-in user may be shown "did you mean" pseudonyms now (and count them)."""
    return _use(settings, "suggestions", "lookup page") is None


def _use(settings: Settings, kind: str, where: str) -> int | None:
    user = access.current_user()
    if user is None:
        return None
    wait, alert = _THROTTLE.use(kind, user.name)
    if alert:
        _alert(settings, user.name, user.role, f"{alert} ({where})")
    return wait


def too_many(wait: int, what: str) -> Response:
    """The JSON answer to a throttled request: 429, how long to wait, and ``Retry-After``."""
    response = error_response(429, f"{what}: try again in {wait} seconds")
    response.headers["Retry-After"] = str(wait)
    return response


def _alert(settings: Settings, who: str, role: str | None, detail: str) -> None:
    """One log line and one ``throttled`` audit row; the throttle holds even if the row fails."""
    log.warning("throttled: %s: %s", who[:64], detail)
    try:
        audit.record(settings.audit_db, who, role, audit.THROTTLED, detail=detail)
    except RecsightError as exc:
        log.error("throttling alert not audited: %s", exc)


def _address() -> str:
    return (flask.request.remote_addr if flask.has_request_context() else None) or "unknown address"


def _account(name: str) -> str:
    return name.strip().casefold()[:200]


def _seconds(wait: float) -> int:
    """A Retry-After value: whole seconds, at least one."""
    return max(1, math.ceil(wait))


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = int(seconds // 3600)
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{math.ceil(seconds)} s"
