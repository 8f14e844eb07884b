"""The JSON API under ``/api/v1``: one customer's recommendations, explanations, profile and report.

For support tools and other systems that want an explanation lookup without the dashboard. It is
a Flask blueprint on the dashboard's own server (``app.create_app`` registers it right after
``service.web.install``), so the guard in front of it is the same: sign-in (HTTP basic or the
session cookie) and the role matrix (``access.ROUTE_RULES``: support and admin). The contract is :mod:`service.openapi`.

Every request goes the same way, and each step has its own status code:

1. validate every input against the documented limits (``400``; the bad value is never echoed,
   since it may be a raw customer id), then count the lookup against the signed-in login's
   limit (``429`` with ``Retry-After`` over it: :mod:`service.throttle`);
2. take the process's loaded recommender (``503`` when the model or shop is missing or broken);
3. resolve the customer: a shop id is hashed with the shop's secret, a pseudonym is taken as is
   (``404`` when nobody matches; that failed lookup is audited without a customer, naming what
   was searched by its pseudonym);
4. do the work, append exactly one audit row for the signed-in user, and only then answer: when
   the row cannot be written nothing is served (``503``).

Errors are ``{"status": ..., "message": ...}`` JSON, also for unknown ``/api`` paths and wrong
methods; an unexpected exception is logged with its traceback and answered ``500`` in JSON, never
with an HTML page. Responses carry pseudonyms only and are marked ``no-store``.

Reports (:func:`workflows.reports.report_bytes`) state what would change each item, verified by
re-scoring (several seconds per customer), and draw their charts as HTML bars: the same numbers as
the SVG charts of ``cli.py report``, without a browser start.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import flask
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from analytics.customers import ID_PATTERN, MAX_ID_LENGTH, reference_pseudonym
from errors import RecsightError
from service import access, audit, openapi, throttle
from service.impressions_api import IMPRESSIONS_BLUEPRINT
from service.intake_api import INTAKE_BLUEPRINT
from service.openapi import (
    API_BASE,
    DEFAULT_FORMAT,
    DEFAULT_K,
    MAX_K,
    MAX_PARAM_LENGTH,
    MAX_QUERY_LENGTH,
    MAX_SINCE_LENGTH,
    MIN_K,
    REPORT_FORMATS,
    REPORT_MEDIA_TYPES,
)
from service.refusals import Refusal, json_endpoint
from service.responses import API_PREFIX, error_response, json_response
from settings import Settings
from workflows import changes, explaining, reports, search, variants
from workflows.recommenders import recommender_for, resolve_customer

__all__ = ["API_BLUEPRINT", "blueprint"]

log = logging.getLogger(__name__)

API_BLUEPRINT = "recsight_api"
_API_BLUEPRINTS = frozenset({API_BLUEPRINT, INTAKE_BLUEPRINT, IMPRESSIONS_BLUEPRINT})  # the intake's too
_ID = re.compile(ID_PATTERN)
_K = re.compile(r"[0-9]{1,3}")
_FLAGS = {"true": True, "false": False}
_NOT_FOUND = "unknown customer: no customer has this id or pseudonym"
_MAX_LENGTHS = {"since": MAX_SINCE_LENGTH, "q": MAX_QUERY_LENGTH, "user": MAX_ID_LENGTH}
# ECMA-262's white space, the class the document's QUERY_PATTERN is read with (Python's \s differs)
_NOT_BLANK = re.compile("[^\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]")


def blueprint(settings: Settings) -> flask.Blueprint:
    """The API's routes for the shop and models of ``settings``."""
    api = flask.Blueprint(API_BLUEPRINT, __name__)

    @api.get(f"{API_BASE}/openapi.json")
    @json_endpoint
    def openapi_document() -> Response:
        return json_response(openapi.document())

    _search_route(api, settings)

    @api.get(f"{API_BASE}/users/<string:typed>/recommendations")
    @json_endpoint
    def recommendations(typed: str) -> Response:
        args = _args({"k", "explain", "since"})
        k, explain, since = _k(args), _flag(args, "explain"), _since(args)
        _, user_id = _lookup(settings, typed, "recommendations")
        with _serving():
            served = variants.served_for(settings, user_id)  # the customer's experiment variant, if any
            if since is None:
                payload = explaining.recommendation_payload(served.recommender, user_id, k, explain)
            else:  # the changes are explanations too (two lists explained and compared)
                payload = changes.recommendations_since(served.recommender, user_id, since, k, explain)
            payload.update(served.to_dict())
        moves = payload.get("changes")
        _record(audit.EXPLANATION_VIEW if explain or moves is not None else audit.CUSTOMER_LOOKUP, user_id,
                f"API recommendations k={k}{' explained' if explain else ''}; {len(payload['items'])} items"
                + ("" if moves is None else f"; since {moves['since']}: {len(moves['entered'])} entered, "
                                            f"{len(moves['left'])} left, {len(moves['moved'])} moved"))
        return json_response(payload)

    @api.get(f"{API_BASE}/users/<string:typed>/profile")
    @json_endpoint
    def profile(typed: str) -> Response:
        _args(set())
        _, user_id = _lookup(settings, typed, "profile")
        with _serving():  # the customer's variant's model and rules, as their list
            card = explaining.customer_card(variants.served_for(settings, user_id).recommender, user_id).to_dict()
        _record(audit.CUSTOMER_LOOKUP, user_id, "API profile")
        return json_response(card)

    @api.get(f"{API_BASE}/users/<string:typed>/report")
    @json_endpoint
    def report(typed: str) -> Response:
        args = _args({"k", "format"})
        k, fmt = _k(args), _choice(args, "format", REPORT_FORMATS, DEFAULT_FORMAT)
        _, user_id = _lookup(settings, typed, "report")
        with _serving():
            # the customer's variant's list, with what would change each item, in the shop's currency
            data = reports.report_bytes(variants.served_for(settings, user_id).recommender, user_id, fmt, k,
                                        currency=settings.currency)
        _record(audit.REPORT_EXPORT, user_id, f"API {fmt} report k={k}")
        response = Response(data, mimetype=REPORT_MEDIA_TYPES[fmt])
        response.headers["Content-Disposition"] = f'attachment; filename="{user_id}.{fmt}"'
        return response

    @api.before_app_request
    def unknown_route() -> Response | None:
        """An /api path no API route serves is a JSON 404, also where the dashboard's catch-all
        page route would match it. Runs after the guard (see ``service.web.install``)."""
        request = flask.request
        if _is_api() and request.routing_exception is None and request.blueprint not in _API_BLUEPRINTS:
            return error_response(404, "no such API route: see /api/v1/openapi.json")
        return None

    @api.after_app_request
    def no_store(response: Response) -> Response:
        if _is_api():
            response.headers["Cache-Control"] = "no-store"
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @api.app_errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        """JSON instead of Flask's HTML pages for API paths (405, 404, ...); others unchanged."""
        if not _is_api() or exc.code is None:
            return exc
        response = error_response(exc.code, exc.name.lower())
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    return api


# --------------------------------------------------------------------------- request steps


def _search_route(api: flask.Blueprint, settings: Settings) -> None:
    """``GET /api/v1/search``: anonymous, or as a customer (then resolved, throttled and audited
    like a recommendations lookup); an anonymous search is audited as a search."""

    @api.get(f"{API_BASE}/search")
    @json_endpoint
    def search_catalogue() -> Response:
        args = _args({"q", "user", "k", "explain"})
        query, k, explain = _query(args), _k(args), _flag(args, "explain")
        typed = args.get("user")
        if typed is None:
            recommender, user_id = _recommender(settings), None
        else:
            recommender, user_id = _lookup(settings, typed, "search")
        with _serving():
            payload = search.search_payload(recommender, query, user_id, k, explain)
        detail = (f"API search ({len(query)} characters) k={k}{' explained' if explain else ''}; "
                  f"{len(payload['items'])} items")
        if user_id is None:
            _record(audit.SEARCH, None, detail)
        else:
            _record(audit.EXPLANATION_VIEW if explain else audit.CUSTOMER_LOOKUP, user_id, detail)
        return json_response(payload)


def _is_api() -> bool:
    path = flask.request.path
    return path == "/api" or path.startswith(API_PREFIX)


def _args(allowed: set[str]) -> dict[str, str]:
    """The query parameters, each at most once, none unknown and none too long (``since`` is a
    time: :data:`MAX_SINCE_LENGTH`; every other value :data:`MAX_PARAM_LENGTH`)."""
    args = flask.request.args
    for name in args:
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise Refusal(400, f"unknown parameter {name[:MAX_PARAM_LENGTH]!r}: this route takes {known}")
        values = args.getlist(name)
        if len(values) > 1:
            raise Refusal(400, f"parameter {name} given more than once")
        if len(values[0]) > _MAX_LENGTHS.get(name, MAX_PARAM_LENGTH):
            raise Refusal(400, f"parameter {name} is too long")
    return {name: args[name] for name in args}


def _k(args: dict[str, str]) -> int:
    text = args.get("k")
    if text is None:
        return DEFAULT_K
    if not _K.fullmatch(text) or not MIN_K <= int(text) <= MAX_K:
        raise Refusal(400, f"k must be a whole number from {MIN_K} to {MAX_K}")
    return int(text)


def _since(args: dict[str, str]) -> datetime | None:
    """``since`` as naive UTC: 400 for text that is no ISO 8601 time with its offset, 409 for a
    real time outside the window the server answers for (in the future, or too far back: the
    document's schema can state a format, not "within the last days", so such a time is a
    conflict with the server's clock rather than bad input)."""
    text = args.get("since")
    if text is None:
        return None
    try:
        return changes.parse_since(text)
    except changes.SinceOutOfWindow as exc:
        raise Refusal(409, str(exc)) from None
    except changes.SinceRefused as exc:
        raise Refusal(400, str(exc)) from None


def _flag(args: dict[str, str], name: str) -> bool:
    text = args.get(name, "false")
    if text not in _FLAGS:
        raise Refusal(400, f"{name} must be true or false")
    return _FLAGS[text]


def _choice(args: dict[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    text = args.get(name, default)
    if text not in choices:
        raise Refusal(400, f"{name} must be one of {', '.join(choices)}")
    return text


def _query(args: dict[str, str]) -> str:
    """The search text: present, and more than white space (the document's pattern)."""
    text = args.get("q")
    if text is None or not _NOT_BLANK.search(text):
        raise Refusal(400, "q, the search text, is missing or blank: give a word or two to search for")
    return text


def _recommender(settings: Settings) -> Any:
    """The process's loaded recommender (503 when the model or shop is missing or broken)."""
    try:
        return recommender_for(settings)
    except RecsightError as exc:
        raise Refusal(503, f"recommendations are unavailable: {exc}") from None
    except Exception:
        log.exception("cannot load the recommender")
        raise Refusal(503, "recommendations are unavailable: the model cannot be loaded; "
                            "the server log has the details") from None


def _lookup(settings: Settings, typed: str, what: str) -> tuple[Any, str]:
    """The loaded recommender and the pseudonym of the customer ``typed`` names."""
    if not _ID.fullmatch(typed):
        raise Refusal(400, f"a customer id is 1 to {MAX_ID_LENGTH} letters, digits or . _ : @ + - "
                            "(look other ids up by their pseudonym)")
    wait = throttle.lookup_wait(settings, "API")  # per login: ids cannot be mapped to pseudonyms in bulk
    if wait is not None:
        raise Refusal(429, "too many customer lookups", retry_after=wait)
    recommender = _recommender(settings)
    try:
        user_id = resolve_customer(recommender, typed, settings.secret)
    except RecsightError:
        searched = reference_pseudonym(typed, settings.secret) or "a shop id"  # never the id itself
        _record(audit.CUSTOMER_LOOKUP, None, f"API {what}: no customer matched (searched {searched})")
        raise Refusal(404, _NOT_FOUND) from None
    return recommender, user_id


@contextmanager
def _serving() -> Iterator[None]:
    """Around the work of a request: a RecsightError (a broken model or shop) becomes a 503."""
    try:
        yield
    except RecsightError as exc:
        raise Refusal(503, f"cannot serve this customer now: {exc}") from None


def _record(action: str, customer: str | None, detail: str) -> None:
    """One audit row for the signed-in user; without it, nothing is served."""
    try:
        access.record_action(action, customer=customer, detail=detail)
    except RecsightError as exc:
        log.error("API %s not served: %s", action, exc)
        raise Refusal(503, f"not served, because the audit log cannot be written: {exc}") from None
