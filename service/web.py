"""Wiring the boundary into the app's Flask server: the guard, sign-in and sign-out, /health.

:func:`install` is called once by ``app.create_app``. It

* signs session cookies with ``settings.require_session_key()`` (from the environment: never a
  constant), HTTP-only and SameSite=Lax, so another site cannot post with them; over TLS
  (``settings.tls``) also Secure and named ``__Host-recsight_session``. A cookie counts only
  while the server lists its session (:mod:`service.sessions`): sign-out and the idle timeout
  end it on the server, so a copy of the cookie is void too;
* sets the security headers and ``Cache-Control: no-store`` on every answer
  (:mod:`service.headers`);
* adds ``/login`` (a plain form: works before the Dash bundle may be loaded), ``/logout`` and
  the public ``/health``;
* runs :func:`service.access` decisions before every request. Open without sign-in: ``/health``,
  ``/login``, ``/logout`` and the two stylesheets the sign-in form uses. Everything else needs a
  signed-in user: a browser asking for a page is sent to ``/login?next=...``; the API, Dash's
  callback requests and other non-page requests get ``401`` (JSON). A signed-in user who may
  not reach the thing gets ``403`` (a short HTML page for pages, JSON otherwise); a refused page
  visit is audited, naming the page, never the address. Before all that, a request another
  site started is refused if it could act: any POST, any API call (:mod:`service.origin`); and
  a page address naming a customer by shop id is redirected to the pseudonym
  (:mod:`service.deeplinks`).

The JSON API (``service.api``, a blueprint under ``/api/``) is registered by ``app.create_app``
right after :func:`install`, so it sits behind this guard: its paths are judged by
``access.ROUTE_RULES``, and besides the browser session a request may sign in with HTTP basic
auth against the same users file (a failed try is audited). Its error bodies use the same
``{"status": ..., "message": ...}`` shape as the guard's (:mod:`service.responses`).

Every sign-in attempt (success or failure) appends exactly one audit row; if that row cannot be
written the sign-in is refused. Sign-in through the form and through basic auth is throttled per
account and per address (:mod:`service.throttle`): a locked attempt is answered 429 with
Retry-After and no row, and a flood of failures is counted in one row rather than a row each.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dash
import flask
from werkzeug.wrappers import Response

from errors import RecsightError
from service import access, audit, callbacks, customer_state, deeplinks, headers, html, origin, sessions, throttle
from service.responses import API_PREFIX, error_response
from service.users import User, get_user, list_users, verify_user
from settings import Settings

__all__ = ["install", "BLUEPRINT"]

log = logging.getLogger(__name__)

BLUEPRINT = "recsight_auth"
_PUBLIC_ENDPOINTS = frozenset({f"{BLUEPRINT}.login", f"{BLUEPRINT}.logout", f"{BLUEPRINT}.health"})
_LOGIN_ASSETS = ("bootstrap.min.css", "recsight.css")
_MAX_FORM_NAME = 200
_MAX_NEXT = 2000


def install(app: dash.Dash, settings: Settings, nav_pages: Callable[[], list[dict[str, Any]]],
            shell_module: str) -> None:
    """Guard ``app``'s server for ``settings``; ``nav_pages`` lists the menu's pages in order and
    ``shell_module`` is the module whose Dash callbacks (if any) every signed-in user may run."""
    server = app.server
    server.secret_key = settings.require_session_key()
    # Over TLS the cookie is Secure and __Host- named: sent over HTTPS only, and no sibling host or
    # path can set one that shadows it (the prefix demands Secure, Path=/ and no Domain).
    server.config.update(SESSION_COOKIE_NAME="__Host-recsight_session" if settings.tls else "recsight_session",
                         SESSION_COOKIE_SECURE=settings.tls, SESSION_COOKIE_PATH="/", SESSION_COOKIE_DOMAIN=None,
                         SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax")
    server.config[sessions.STORE_KEY] = sessions.SessionStore(settings.sessions_file)
    config = access.AccessConfig(settings=settings, callback_map=app.callback_map,
                                 strip_relative_path=app.strip_relative_path, nav_pages=nav_pages,
                                 shell_modules=frozenset({shell_module}))
    server.config[access.ACCESS_KEY] = config
    routes = app.config.routes_pathname_prefix
    urls = _Urls(
        root=app.config.requests_pathname_prefix,
        assets=app.config.requests_pathname_prefix + "assets/",
        index_endpoints=frozenset({routes, routes + "<path:path>"}),
        callback_endpoint=routes + "_dash-update-component",
        internal_prefixes=tuple(routes + name for name in ("_dash-", "_reload-hash", "_favicon.ico", "assets/")),
        # /health by path too: any method on it (TRACE, POST) gets the plain 405, not a sign-in demand
        public_paths=frozenset(routes + "assets/" + name for name in _LOGIN_ASSETS) | {"/health"},
    )
    server.register_blueprint(_blueprint(config, urls))
    server.before_request(lambda: _guard(config, urls))
    headers.install(server, tls=settings.tls, static_prefixes=tuple(
        routes + name for name in ("_dash-component-suites/", "assets/", "_favicon.ico")))


@dataclass(frozen=True)
class _Urls:
    """The app's URL layout, as the guard needs it."""

    root: str  # the app's root URL path
    assets: str  # where the vendored stylesheets are served
    index_endpoints: frozenset[str]  # Dash's page routes (the root and its catch-all)
    callback_endpoint: str  # /_dash-update-component
    internal_prefixes: tuple[str, ...]  # Dash's bundle, layout, dependencies and assets
    public_paths: frozenset[str]  # the stylesheets the sign-in form needs, and /health


# --------------------------------------------------------------------------- the guard


def _guard(config: access.AccessConfig, urls: _Urls) -> Response | None:
    request = flask.request
    refused = origin.refusal()  # first: sign-in and sign-out forms are public, but not to other sites
    if refused is not None:
        return refused
    if request.endpoint in _PUBLIC_ENDPOINTS or request.path in urls.public_paths:
        return None
    path = request.path
    is_api = path.startswith(API_PREFIX)
    try:
        # Credentials sent with an API call are always checked, even beside a session cookie:
        # a wrong password must never pass because a browser session happens to exist.
        if is_api and request.authorization is not None:
            wait = throttle.sign_in_wait(request.authorization.username or "")  # locked: not even checked
            if wait is not None:
                return throttle.too_many(wait, "too many failed sign-ins")
            user = _basic_auth_user(config.settings)
        else:
            user = access.current_user()
    except RecsightError as exc:
        log.error("cannot check the sign-in: %s", exc)
        return error_response(503, f"sign-in is unavailable: {exc}")
    if user is None:
        return _unauthenticated(urls, is_api)
    if request.endpoint == urls.callback_endpoint:  # 400 if malformed, 403 for forged customer state
        refused = callbacks.refusal(config.callback_map, checks=(customer_state.refusal_reason,))
        if refused is not None:
            return refused
    roles = _required_roles(config, urls, is_api)
    if user.role in roles:
        return deeplinks.on_page_visit(config) if request.endpoint in urls.index_endpoints else None
    # The endpoint, not the path: an API path can hold the customer id an agent typed.
    log.info("denied %s %s to %s (%s)", request.method, request.endpoint or "unknown route", user.name, user.role)
    return _forbidden(config, urls, user, roles, is_api)


def _required_roles(config: access.AccessConfig, urls: _Urls, is_api: bool) -> frozenset[str]:
    request = flask.request
    if is_api:
        return access.route_roles(request.path)
    if request.endpoint == urls.callback_endpoint:
        return access.callback_roles(request.get_json(silent=True), config)
    if request.endpoint in urls.index_endpoints:
        return access.url_roles(request.path, config.strip_relative_path)
    if request.endpoint is not None and request.path.startswith(urls.internal_prefixes):
        return access.ALL_ROLES  # Dash's own bundle, layout and assets: the shell every user sees
    return access.route_roles(request.path)


def _basic_auth_user(settings: Settings) -> User | None:
    credentials = flask.request.authorization
    if credentials is None or credentials.type != "basic":
        return None
    name, password = credentials.username or "", credentials.password or ""
    user = verify_user(settings.users_file, name, password)
    if user is None:
        if throttle.sign_in_failed(settings, name):  # else a flood: counted in one row, not a row each
            audit.record(settings.audit_db, name, None, audit.SIGN_IN_FAILED,
                         detail=f"API basic auth: {_failure_reason(settings, name)} from {_remote()}")
    else:
        throttle.signed_in(name)
        flask.g.recsight_user = user
    return user


def _unauthenticated(urls: _Urls, is_api: bool) -> Response:
    request = flask.request
    if is_api or request.method not in ("GET", "HEAD") or request.path.startswith(urls.internal_prefixes):
        response = error_response(401, "sign-in required")
        if is_api:
            response.headers["WWW-Authenticate"] = 'Basic realm="Recsight", charset="UTF-8"'
        return response
    target = request.full_path.rstrip("?") if request.query_string else request.path
    return flask.redirect(flask.url_for(f"{BLUEPRINT}.login", next=target))


def _forbidden(config: access.AccessConfig, urls: _Urls, user: User, roles: frozenset[str],
               is_api: bool) -> Response:
    request = flask.request
    is_page = request.endpoint in urls.index_endpoints and request.method in ("GET", "HEAD")
    if not is_page or is_api:
        _audit_denied_visit(config, user, _router_path(config, urls))  # a page asked for inside the app
        return error_response(403, f"the {user.role} role may not use this")
    home = _home(config, urls, user)
    if config.strip_relative_path(request.path) == "" and home != request.path:
        return flask.redirect(home)  # the app's root is the overview; other roles start elsewhere
    _audit_denied_visit(config, user, request.path)
    links = [(page["name"], page["relative_path"]) for page in access.allowed_pages(user.role, config)]
    body = html.render_forbidden(urls.assets, user.name, user.role, sorted(roles), links,
                                 flask.url_for(f"{BLUEPRINT}.logout"))
    return flask.make_response(body, 403)


# --------------------------------------------------------------------------- routes


def _blueprint(config: access.AccessConfig, urls: _Urls) -> flask.Blueprint:
    blueprint = flask.Blueprint(BLUEPRINT, __name__)
    settings = config.settings

    @blueprint.get("/health")
    def health() -> Response:
        return flask.jsonify(status="ok")

    @blueprint.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        request = flask.request
        next_path = _safe_next(request.values.get("next", ""))
        if request.method == "GET":
            user = access.current_user()
            if user is not None:
                return flask.redirect(next_path or _home(config, urls, user))
            notice = "You are signed out." if request.args.get("signed_out") else ""
            return _sign_in_page(next_path, notice=notice)
        return _sign_in(next_path)

    @blueprint.route("/logout", methods=["GET", "POST"])
    def logout() -> Any:
        user = access.current_user()
        if user is None:
            return flask.redirect(flask.url_for(f"{BLUEPRINT}.login"))
        if flask.request.method == "GET":
            return html.render_sign_out(urls.assets, flask.url_for(f"{BLUEPRINT}.logout"), user.name, user.role)
        try:
            audit.record(settings.audit_db, user.name, user.role, audit.SIGN_OUT, detail=f"from {_remote()}")
        except RecsightError as exc:  # signing out must always work
            log.error("sign-out of %s not audited: %s", user.name, exc)
        access.end_session()
        return flask.redirect(flask.url_for(f"{BLUEPRINT}.login", signed_out=1))

    def _sign_in_page(next_path: str, status: int = 200, **values: Any) -> Response:
        return _sign_in_form(settings, urls, next_path, status, **values)

    def _sign_in(next_path: str) -> Response:
        form = flask.request.form
        name = form.get("name", "")[:_MAX_FORM_NAME]
        password = form.get("password", "")
        wait = throttle.sign_in_wait(name)  # locked: answered before the form or password is checked
        if wait is not None:
            return _locked_form(settings, urls, next_path, name, wait)
        expected, sent = flask.session.get("csrf"), form.get("csrf", "")
        if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), sent.encode()):
            return _refuse(name, "the sign-in form expired", next_path, 400,
                           "The form expired. Please sign in again.")
        try:
            user = verify_user(settings.users_file, name, password)
        except RecsightError as exc:
            return _refuse(name, f"users file unreadable: {exc}", next_path, 503, str(exc))
        if user is None:
            return _refuse(name, _failure_reason(settings, name), next_path, 401, "Wrong user name or password.")
        try:
            # the server's session first (unlisted, it would be none), then its audit row
            access.start_session(user)
            audit.record(settings.audit_db, user.name, user.role, audit.SIGN_IN, detail=f"from {_remote()}")
        except RecsightError as exc:
            access.end_session()
            log.error("sign-in of %s refused: %s", user.name, exc)
            return _sign_in_page(next_path, 503, name=name, error=f"Sign-in is unavailable: {exc}")
        throttle.signed_in(name)
        log.info("%s (%s) signed in", user.name, user.role)
        return flask.redirect(next_path or _home(config, urls, user))

    def _refuse(name: str, reason: str, next_path: str, status: int, message: str) -> Response:
        if status != 503 and not throttle.sign_in_failed(settings, name):  # a flood: counted, not itemised
            return _sign_in_page(next_path, status, name=name, error=message)
        try:
            audit.record(settings.audit_db, name, None, audit.SIGN_IN_FAILED, detail=f"{reason} from {_remote()}")
        except RecsightError as exc:
            log.error("failed sign-in not audited: %s", exc)
            message = f"Sign-in is unavailable: {exc}"
            status = 503
        return _sign_in_page(next_path, status, name=name, error=message)

    return blueprint


def _sign_in_form(settings: Settings, urls: _Urls, next_path: str, status: int = 200, **values: Any) -> Response:
    """The sign-in page (with its form token) answered with ``status``."""
    token = flask.session.get("csrf")
    if not isinstance(token, str):
        token = flask.session["csrf"] = secrets.token_urlsafe(24)
    try:
        no_users = not list_users(settings.users_file)
    except RecsightError as exc:
        no_users = False
        values.setdefault("error", str(exc))
    body = html.render_sign_in(urls.assets, flask.url_for(f"{BLUEPRINT}.login"), token, next_path,
                               no_users=no_users, **values)
    return flask.make_response(body, status)


def _locked_form(settings: Settings, urls: _Urls, next_path: str, name: str, wait: int) -> Response:
    """The sign-in page for an account or address locked after failed tries: 429, Retry-After."""
    response = _sign_in_form(settings, urls, next_path, 429, name=name,
                             error=f"Too many failed sign-ins. Try again in {wait} seconds.")
    response.headers["Retry-After"] = str(wait)
    return response


def _audit_denied_visit(config: access.AccessConfig, user: User, url_path: str | None) -> None:
    """One audit row for a page ``user`` was refused at ``url_path`` (None: not a page), naming
    the page's registered path (never the address, which can hold a customer id); the refusal
    is answered even if the row cannot be written."""
    if url_path is None:
        return
    page = access.page_for_url(url_path, config.strip_relative_path)
    what = page["path"] if page else "an unknown page"
    try:
        audit.record(config.settings.audit_db, user.name, user.role, audit.ACCESS_DENIED,
                     detail=f"page {what} refused from {_remote()}")
    except RecsightError as exc:
        log.error("refused page visit of %s not audited: %s", user.name, exc)


def _router_path(config: access.AccessConfig, urls: _Urls) -> str | None:
    """The page address a refused call of Dash's pages router asked for (navigation inside the
    app); None for any other request."""
    if flask.request.endpoint != urls.callback_endpoint:
        return None
    try:
        path = callbacks.current_call(config.callback_map).value(*callbacks.ROUTER_PATH)
    except callbacks.CallbackRefused:
        return None
    return path if isinstance(path, str) else None


def _home(config: access.AccessConfig, urls: _Urls, user: User) -> str:
    """Where ``user`` lands after signing in: the first menu page their role may open (the
    app's root, which then explains, when there is none)."""
    pages = access.allowed_pages(user.role, config)
    return pages[0]["relative_path"] if pages else urls.root


def _failure_reason(settings: Settings, name: str) -> str:
    try:
        return "wrong password" if get_user(settings.users_file, name) is not None else "unknown user"
    except RecsightError:
        return "users file unreadable"


def _safe_next(value: str) -> str:
    """``value`` if it is a path on this server (never another site), else ''."""
    if (not value or len(value) > _MAX_NEXT or not value.startswith("/") or value.startswith("//")
            or "\\" in value or any(ord(ch) < 32 for ch in value)):
        return ""
    path = value.split("?", 1)[0]
    if path.endswith(("/login", "/logout")):
        return ""
    return value


def _remote() -> str:
    return flask.request.remote_addr or "unknown address"
