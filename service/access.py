"""Who may reach what: the role matrix, in one place, and the signed-in user of a request.

Three kinds of thing are guarded, each by a table below:

* **Dash pages**, by their registered path (``PAGE_RULES``). A URL is resolved to its page with
  Dash's own resolver, so the guard and the router always agree on which page a URL shows; a
  URL that is no page shows the not-found page, which every signed-in user may see.
* **Dash callbacks** (``/_dash-update-component``, which also carries every ``dcc.Download``)
  belong to the page whose module defines them (or a module the page names as its own with
  ``register_page(..., callback_modules=(...))``) and are allowed to exactly the roles of that
  page. The pages router (the callback that renders a page for a URL) is judged by the URL it is
  asked to render. Callbacks of the app shell are open to every signed-in user; any other
  callback is admin-only until it is given an owner.
* **Other Flask routes** (the JSON API, file downloads) by path (``ROUTE_RULES``).

Anything no rule names is admin-only: a new page or route is closed until someone decides who
may use it, and the role-matrix test (tests/service/test_role_matrix.py) fails until the rules
and the test agree.

Sessions are Flask's signed cookies holding the user name, the sign-in time and a session id
the server must still list as live (:mod:`service.sessions`: sign-out and the idle timeout end it
on the server); the role is read from the users file on every request, so changing or removing a
user takes effect at once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import flask

from errors import RecsightError
from service import audit, callbacks, sessions
from service.users import ADMIN, ANALYST, INTAKE, SUPPORT, User, get_user
from settings import Settings

__all__ = [
    "Rule", "PAGE_RULES", "ROUTE_RULES", "ALL_ROLES", "DEFAULT_ROLES", "SESSION_MAX_AGE_S", "ACCESS_KEY",
    "page_roles", "route_roles", "url_roles", "callback_roles", "page_for_url", "allowed_pages",
    "start_session", "end_session", "current_user", "session_binding", "record_action", "AccessConfig",
]

log = logging.getLogger(__name__)

# Every role that uses the dashboard. The intake service account is in none of these sets: it may
# only post events and catalogue rows (its two routes below), and gets 403 on every page, callback,
# Dash asset and other route, the not-found page and the OpenAPI document included.
ALL_ROLES: frozenset[str] = frozenset({ADMIN, ANALYST, SUPPORT})
DEFAULT_ROLES: frozenset[str] = frozenset({ADMIN})  # whatever no rule names
SESSION_MAX_AGE_S = 12 * 3600  # a working day; then sign in again
ACCESS_KEY = "RECSIGHT_ACCESS"
_ROUTER_OUTPUT = "_pages_content.children"  # dash.page_container's content: the pages router's output
_ROUTER_LOCATION = "_pages_location"
_SESSION_USER, _SESSION_SINCE = "user", "since"


@dataclass(frozen=True)
class Rule:
    """``roles`` may reach paths equal to ``prefix`` (``exact``) or starting with it."""

    prefix: str
    roles: frozenset[str]
    exact: bool = False

    def matches(self, path: str) -> bool:
        return path == self.prefix if self.exact else path.startswith(self.prefix)


# The first matching rule wins.
PAGE_RULES: tuple[Rule, ...] = (
    Rule("/audit", frozenset({ADMIN})),                      # the audit log
    Rule("/user", frozenset({ADMIN, SUPPORT})),              # customer lookup, /user/<id> deep links
    Rule("/customer", frozenset({ADMIN, SUPPORT})),          # customer explanations and reports
    Rule("/search", frozenset({ADMIN, SUPPORT})),            # search, anonymously and as a customer
    Rule("/model", frozenset({ADMIN, ANALYST})),             # model insight: aggregates only
    Rule("/performance", frozenset({ADMIN, ANALYST})),       # live performance: aggregates only
    Rule("/rules", frozenset({ADMIN, ANALYST})),             # merchandising rules (analysts author them)
    Rule("/experiments", frozenset({ADMIN, ANALYST})),       # A/B experiments between versions and rule sets
    Rule("/", frozenset({ADMIN, ANALYST}), exact=True),      # shop overview: aggregates only
    Rule("/not-found-404", ALL_ROLES, exact=True),           # what an unknown URL shows
)

ROUTE_RULES: tuple[Rule, ...] = (
    Rule("/api/v1/openapi.json", ALL_ROLES, exact=True),
    Rule("/api/v1/users/", frozenset({ADMIN, SUPPORT})),     # one customer at a time
    Rule("/api/v1/search", frozenset({ADMIN, SUPPORT}), exact=True),  # as a customer, or anonymously
    # The event intake: the shop's backend only. Admins load files with `cli.py ingest --append`
    # (the same writer); no person posts events in the shop's name.
    Rule("/api/v1/events", frozenset({INTAKE}), exact=True),
    Rule("/api/v1/items", frozenset({INTAKE}), exact=True),
    Rule("/api/v1/impressions", frozenset({INTAKE}), exact=True),  # what lists customers were shown
)


@dataclass(frozen=True)
class AccessConfig:
    """What the guard needs from the app it protects (kept in the Flask config)."""

    settings: Settings
    callback_map: Mapping[str, Mapping[str, Any]]
    strip_relative_path: Callable[[str], str | None]
    nav_pages: Callable[[], list[dict[str, Any]]]
    shell_modules: frozenset[str]


# --------------------------------------------------------------------------- decisions


def page_roles(page_path: str) -> frozenset[str]:
    """The roles that may see the Dash page registered at ``page_path``."""
    return _first_match(PAGE_RULES, page_path)


def route_roles(path: str) -> frozenset[str]:
    """The roles that may use the Flask route (API, download) at ``path``."""
    return _first_match(ROUTE_RULES, path)


def page_for_url(url_path: str, strip_relative_path: Callable[[str], str | None]) -> dict[str, Any] | None:
    """The registered page Dash shows at ``url_path``, or None (Dash shows the not-found page).

    Uses Dash's own resolver (the one its pages router calls), so this answer and the page the
    router renders can never differ.
    """
    from dash._pages import _path_to_page  # private, pinned dash: agreeing with the router is the point

    stripped = strip_relative_path(url_path)
    page, _variables = _path_to_page(stripped if isinstance(stripped, str) else "")
    return page or None


def url_roles(url_path: str, strip_relative_path: Callable[[str], str | None]) -> frozenset[str]:
    """The roles that may open the page Dash shows at ``url_path``."""
    page = page_for_url(url_path, strip_relative_path)
    return page_roles(page["path"]) if page else page_roles("/not-found-404")


def callback_roles(body: Any, config: AccessConfig) -> frozenset[str]:
    """The roles that may run the Dash callback a ``/_dash-update-component`` request asks for.

    Unknown or malformed requests get the empty set: nobody. The request is first checked
    against the registered callback (:func:`service.callbacks.validate`: ids, properties and
    positions), so the router's URL path is read at the position Dash hands to the router, never
    from an entry that only claims to be it.
    """
    try:
        call = callbacks.validate(body, config.callback_map)
    except callbacks.CallbackRefused:
        return frozenset()
    output, function = call.output, call.entry["callback"]
    module = getattr(function, "__module__", "") or ""
    page = _page_of_module(module)
    if page is not None:
        return page_roles(page["path"])
    if module.startswith("dash") and _ROUTER_OUTPUT in output:
        pathname = call.value(_ROUTER_LOCATION, "pathname")
        return url_roles(pathname, config.strip_relative_path) if isinstance(pathname, str) else frozenset()
    if module in config.shell_modules:
        return ALL_ROLES
    log.warning("callback %s (module %s) belongs to no page: admin only", output, module)
    return DEFAULT_ROLES


def allowed_pages(role: str, config: AccessConfig) -> list[dict[str, Any]]:
    """The navigation pages ``role`` may open, in menu order."""
    return [page for page in config.nav_pages() if role in page_roles(page["path"])]


def _first_match(rules: tuple[Rule, ...], path: str) -> frozenset[str]:
    for rule in rules:
        if rule.matches(path):
            return rule.roles
    return DEFAULT_ROLES


def _page_of_module(module: str) -> dict[str, Any] | None:
    """The page a module's callbacks belong to: the page module itself, or the page that names
    the module in its ``callback_modules`` (a page whose callbacks live beside it)."""
    import dash

    return next((page for page in dash.page_registry.values()
                 if page["module"] == module or module in page.get("callback_modules", ())), None)


# --------------------------------------------------------------------------- sessions


def start_session(user: User) -> None:
    """Sign ``user`` in for this browser: a fresh session (no value carried over from before)."""
    flask.session.clear()
    flask.session[_SESSION_USER] = user.name
    flask.session[_SESSION_SINCE] = int(time.time())
    sessions.begin(flask.session, user.name, SESSION_MAX_AGE_S)  # RecsightError: nobody is signed in
    flask.g.recsight_user = user


def end_session() -> None:
    """Sign the browser out, and end its session on the server so a copy of the cookie is void too."""
    sessions.finish(flask.session)
    flask.session.clear()
    flask.g.pop("recsight_user", None)


def current_user() -> User | None:
    """The signed-in user of the current request (as the users file says now), or None.

    Outside a request, or without a valid, unexpired session, there is no user.
    """
    if not flask.has_request_context():
        return None
    if "recsight_user" in flask.g:
        return flask.g.recsight_user
    user = session_user()
    flask.g.recsight_user = user
    return user


def session_binding() -> str | None:
    """What names this browser's signed-in session, for state the server hands the browser and
    must recognise as its own later (:mod:`service.customer_state`): the user, the sign-in time
    and the server's session id. None without a signed-in browser session (an API call signed in
    with basic auth has none). Signing out or in again changes it, so such state is void then."""
    user = current_user()
    if user is None or flask.session.get(_SESSION_USER) != user.name:
        return None
    return json.dumps([user.name, flask.session.get(_SESSION_SINCE), flask.session.get(sessions.SESSION_ID)])


def session_user() -> User | None:
    """The user the session cookie names, if the session is young enough and they still exist."""
    name, since = flask.session.get(_SESSION_USER), flask.session.get(_SESSION_SINCE)
    if not isinstance(name, str) or not isinstance(since, int):
        return None
    if not 0 <= time.time() - since <= SESSION_MAX_AGE_S:
        return None
    config = flask.current_app.config.get(ACCESS_KEY)
    if not isinstance(config, AccessConfig):
        return None
    if not sessions.is_live(flask.session, name, config.settings.idle_timeout_s):  # signed out, idle
        return None
    return get_user(config.settings.users_file, name)


def record_action(action: str, customer: str | None = None, detail: str | None = None) -> audit.AuditEntry:
    """Append an audit row for the signed-in user of this request (for pages and the API:
    customer lookups, explanation views, report exports). Raises RecsightError when nobody is
    signed in or the row cannot be written, so the caller can refuse to go on."""
    user = current_user()
    config = flask.current_app.config.get(ACCESS_KEY) if flask.has_app_context() else None
    if user is None or not isinstance(config, AccessConfig):
        raise RecsightError("nobody is signed in")
    return audit.record(config.settings.audit_db, user.name, user.role, action, customer=customer, detail=detail)
