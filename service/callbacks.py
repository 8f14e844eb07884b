"""Dash callback requests, checked against the callback they name before anything runs.

Why this exists: Dash's dispatcher trusts the request body. It looks the callback up by the
``output`` string and hands the function the ``inputs`` and ``state`` values *by position*,
whatever ids and properties those entries claim. Anything that judges a request by what an
entry claims to be (the guard reading the URL path the pages router will render, the customer
store the lookup's callbacks read) would otherwise be judging a different value from the one the
function gets: a support login posting the router with ``x.pathname = "/audit"`` first and
``_pages_location.pathname = "/user"`` second was let through for /user and shown /audit. And a
body Dash cannot take apart (50,000-deep JSON, no ``outputs``, a string where a list belongs)
ended in a 500 page.

So every ``/_dash-update-component`` request is checked here first, against the callback the
app registered (``Dash.callback_map``, which Dash fills from ``dash._callback.GLOBAL_CALLBACK_MAP``
before the guard runs). It must be:

* JSON, at most :data:`MAX_BODY_BYTES` long and :data:`MAX_DEPTH` levels deep (checked on the
  raw bytes before parsing, so a deep body never reaches the recursive parser);
* an object whose ``output`` names a registered server-side callback (else :class:`UnknownCallback`:
  nobody may run it);
* ``outputs``, ``inputs`` and ``state`` as the registration says, position by position: the same
  number of entries; each entry with the registered component id and property (pattern-matching
  ids: the same keys, the registered value where it is not a wildcard, a plain value where it
  is; ``ALL``/``ALLSMALLER`` a list of such entries, ``MATCH`` one; a registered ``Output``'s
  ``@`` suffix of ``allow_duplicate`` ignored as Dash ignores it); ``changedPropIds`` a list of
  ``id.property`` strings whose pattern ids parse;
* each value of the type its property has in Dash's components (:data:`PROP_TYPES`: click
  counts are whole numbers, dates and URL parts text, a control's ``value`` a plain value or a
  list of them), and the path Dash's pages router reads an absolute path.

Anything else is :class:`MalformedCallback` (the guard answers 400). What passes is a
:class:`CallbackCall`: the registered dependencies paired with the values sent at their
positions, so a value is read by what the callback will receive (:meth:`CallbackCall.value`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import flask
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from errors import RecsightError
from service.responses import error_response

__all__ = [
    "MAX_BODY_BYTES", "MAX_DEPTH", "PROP_TYPES", "ROUTER_PATH", "CallbackRefused", "MalformedCallback",
    "UnknownCallback", "Dependency", "CallbackCall", "Check", "parse_body", "validate", "current_call", "refusal",
]

MAX_BODY_BYTES = 1024 * 1024  # the app's callbacks send filter values and one small store: far less
MAX_DEPTH = 32  # nesting levels of a whole body; a real one needs under ten
_PLAIN = (str, int, float, bool, type(None))
_COUNT, _TEXT = "a whole number", "text"
PROP_TYPES: dict[str, str] = {  # property -> what Dash's components hold there (others: any JSON)
    "n_clicks": _COUNT, "n_submit": _COUNT, "n_blur": _COUNT, "n_intervals": _COUNT,
    "start_date": _TEXT, "end_date": _TEXT, "date": _TEXT,
    "pathname": _TEXT, "search": _TEXT, "hash": _TEXT, "href": _TEXT,
    "value": "a plain value or a list of them",
}
ROUTER_PATH = ("_pages_location", "pathname")  # what Dash's pages router resolves to a page
_WILDCARDS = frozenset({"ALL", "MATCH", "ALLSMALLER"})
_MULTI = frozenset({"ALL", "ALLSMALLER"})  # a wildcard that stands for a list of components
_SCALAR = (str, int, float, bool)  # what a pattern-matching id's value may be
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_CACHE = "recsight_callback_call"


class CallbackRefused(RecsightError):
    """A callback request the server will not run; ``status`` is the HTTP answer."""

    status = 400


class MalformedCallback(CallbackRefused):
    """Not a request the named callback takes (or not a callback request at all): 400."""


class UnknownCallback(CallbackRefused):
    """Names no server-side callback of the app: nobody may run it (403)."""

    status = 403


@dataclass(frozen=True)
class Dependency:
    """One registered input, state or output: its id as registered (a pattern's wildcards as
    ``["ALL"]``, ``["MATCH"]``, ``["ALLSMALLER"]``, as Dash serialises them) and property."""

    id: str | dict[str, Any]
    prop: str
    optional: bool = False

    @property
    def multi(self) -> bool:
        """Whether this position holds a list of components (an ``ALL``/``ALLSMALLER`` pattern)."""
        return isinstance(self.id, dict) and any(_wildcard(value) in _MULTI for value in self.id.values())


@dataclass(frozen=True)
class CallbackCall:
    """A checked request: its callback's entry in the map and, per registered input and state,
    the entry sent at that position (a list of entries where the dependency is ``multi``)."""

    output: str
    entry: Mapping[str, Any]
    inputs: tuple[tuple[Dependency, Any], ...]
    state: tuple[tuple[Dependency, Any], ...]

    def sent(self) -> Iterator[tuple[Dependency, Any]]:
        """Every registered input, then state, with the entry (or entries) sent for it."""
        yield from self.inputs
        yield from self.state

    def value(self, component_id: str | dict[str, Any], prop: str) -> Any:
        """The value the callback receives for the registered ``component_id.prop`` (by its
        position, so what the guard reads is what the function gets); None if not registered."""
        for dependency, item in self.sent():
            if dependency.id == component_id and dependency.prop == prop:
                return [one.get("value") for one in item] if dependency.multi else item.get("value")
        return None


Check = Callable[[CallbackCall], str | None]  # a further check of a valid call: why it may not run, or None


def refusal(callback_map: Mapping[str, Mapping[str, Any]], checks: Iterable[Check] = ()) -> Response | None:
    """For the guard: the answer to the current callback request if it may not run (400 when it
    is malformed; 403 when one of ``checks`` objects), or None to go on to the role check. A
    request naming no callback goes on too: the role check refuses it (403) like any callback
    it cannot place."""
    try:
        call = current_call(callback_map)
    except UnknownCallback:
        return None
    except CallbackRefused as exc:
        return error_response(exc.status, f"malformed callback request: {exc}")
    for check in checks:
        problem = check(call)
        if problem:
            return error_response(403, problem)
    return None


# --------------------------------------------------------------------------- parsing


def parse_body(raw: bytes) -> Any:
    """The JSON in ``raw``; MalformedCallback when it is not JSON or nests deeper than
    :data:`MAX_DEPTH` (measured before parsing: Python's parser recurses once per level)."""
    if _depth(raw) > MAX_DEPTH:
        raise MalformedCallback(f"the body nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise MalformedCallback("the body is not JSON") from None


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (a browser never sends them); Python's parser takes them."""
    raise ValueError(f"{name} is not JSON")


def current_call(callback_map: Mapping[str, Mapping[str, Any]]) -> CallbackCall:
    """The current Flask request checked against ``callback_map`` (once per request). Raises
    :class:`CallbackRefused` (with its ``status``) for a request that may not run."""
    cached = flask.g.get(_CACHE)
    if isinstance(cached, (CallbackCall, CallbackRefused)):
        if isinstance(cached, CallbackRefused):
            raise cached
        return cached
    try:
        call = validate(_request_body(), callback_map)
    except CallbackRefused as exc:
        setattr(flask.g, _CACHE, exc)
        raise
    setattr(flask.g, _CACHE, call)
    return call


def _request_body() -> Any:
    request = flask.request
    if not request.is_json:
        raise MalformedCallback("a callback request is JSON (Content-Type: application/json)")
    request.max_content_length = MAX_BODY_BYTES
    try:
        raw = request.get_data(cache=True)  # cached: Dash's dispatcher reads the same bytes
    except RequestEntityTooLarge:
        raise MalformedCallback(f"the body is over {MAX_BODY_BYTES:,} bytes") from None
    return parse_body(raw)


def _depth(raw: bytes) -> int:
    """How deep the brackets of a JSON text nest (brackets inside strings do not count)."""
    depth = deepest = 0
    for byte in _STRING.sub(b"", raw).translate(None, _NOT_BRACKET):
        depth += _STEP[byte]
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                break
    return deepest


# --------------------------------------------------------------------------- checking


def validate(body: Any, callback_map: Mapping[str, Mapping[str, Any]]) -> CallbackCall:
    """``body`` checked against the callback it names in ``callback_map`` (see the module's
    docstring for the rules). Raises MalformedCallback or UnknownCallback."""
    if not isinstance(body, dict):
        raise MalformedCallback("the body is not a JSON object")
    output = body.get("output")
    if not isinstance(output, str):
        raise MalformedCallback("'output' is missing or not a string")
    entry = callback_map.get(output)
    if entry is None or entry.get("callback") is None:
        raise UnknownCallback(f"no server-side callback for {output[:200]!r}")
    _check_outputs(entry, body.get("outputs"))
    inputs = _pair("inputs", _dependencies(entry.get("inputs") or []), body.get("inputs"))
    state = _pair("state", _dependencies(entry.get("state") or []), body.get("state", []))  # absent: none
    _check_changed(body.get("changedPropIds", []))
    call = CallbackCall(output, entry, inputs, state)
    for dependency, item in call.sent():
        for one in item if dependency.multi else [item]:
            if "value" in one and not _typed(dependency.prop, one["value"]):
                raise MalformedCallback(f"{_describe(dependency)} is not {PROP_TYPES[dependency.prop]}")
    path = call.value(*ROUTER_PATH)
    if isinstance(path, str) and not path.startswith("/"):  # a browser's location always is one
        raise MalformedCallback("the page address is not an absolute path")
    return call


def _typed(prop: str, value: Any) -> bool:
    """Whether ``value`` is what Dash's components hold in ``prop`` (see :data:`PROP_TYPES`)."""
    kind = PROP_TYPES.get(prop)
    if kind == _COUNT:
        return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)
    if kind == _TEXT:
        return value is None or isinstance(value, str)
    if kind is not None:  # value
        return isinstance(value, _PLAIN) or (isinstance(value, list) and all(isinstance(v, _PLAIN) for v in value))
    return True


def _check_outputs(entry: Mapping[str, Any], sent: Any) -> None:
    registered = entry.get("output")
    if entry.get("no_output"):
        if sent not in (None, []):
            raise MalformedCallback("this callback has no outputs")
        return
    if isinstance(registered, (list, tuple)):
        outputs = [_dependency(item.component_id_str(), item.component_property) for item in registered]
        if not isinstance(sent, list) or len(sent) != len(outputs):
            raise MalformedCallback(f"'outputs' is not a list of {len(outputs)}")
        _pair("outputs", outputs, sent)
    else:
        _pair("outputs", [_dependency(registered.component_id_str(), registered.component_property)], [sent])


def _pair(part: str, registered: list[Dependency], sent: Any) -> tuple[tuple[Dependency, Any], ...]:
    """``sent`` (a list) matched position by position against ``registered``."""
    if not isinstance(sent, list):
        raise MalformedCallback(f"'{part}' is missing or not a list")
    if len(sent) != len(registered):
        raise MalformedCallback(f"'{part}' has {len(sent)} entries; the callback takes {len(registered)}")
    for position, (dependency, item) in enumerate(zip(registered, sent, strict=True)):
        items = item if dependency.multi else [item]
        if not isinstance(items, list) or not all(_matches(dependency, one) for one in items):
            raise MalformedCallback(f"'{part}' entry {position} is not {_describe(dependency)}")
    return tuple(zip(registered, sent, strict=True))


def _matches(dependency: Dependency, item: Any) -> bool:
    if not isinstance(item, dict) or not isinstance(item.get("property"), str):
        return False
    if item["property"].split("@", 1)[0] != dependency.prop:
        return False
    sent_id, pattern = item.get("id"), dependency.id
    if isinstance(pattern, str):
        return isinstance(sent_id, str) and sent_id == pattern
    if not isinstance(sent_id, dict) or set(sent_id) != set(pattern):
        return False
    for key, expected in pattern.items():
        value = sent_id[key]
        if _wildcard(expected) is not None:
            if not isinstance(value, _SCALAR) and not (dependency.optional and value == expected):
                return False
        elif json.dumps(value) != json.dumps(expected):  # 1 and true differ, as in the browser
            return False
    return True


def _check_changed(changed: Any) -> None:
    if not isinstance(changed, list) or not all(isinstance(prop_id, str) for prop_id in changed):
        raise MalformedCallback("'changedPropIds' is not a list of strings")
    for prop_id in changed:
        component_id = prop_id.rpartition(".")[0]
        if component_id.startswith("{"):  # Dash parses these for ctx.triggered_id: JSON inside a string
            try:
                parsed = parse_body(component_id.encode("utf-8", "surrogatepass"))
            except MalformedCallback:
                parsed = None
            if not isinstance(parsed, dict):
                raise MalformedCallback("a changed pattern-matching id is not a JSON object")


def _dependencies(specs: list[Mapping[str, Any]]) -> list[Dependency]:
    return [_dependency(spec["id"], spec["property"], bool(spec.get("allow_optional"))) for spec in specs]


def _dependency(component_id: str, prop: str, optional: bool = False) -> Dependency:
    """A registered dependency from Dash's string form of its id (a pattern id is its JSON)."""
    return Dependency(json.loads(component_id) if component_id.startswith("{") else component_id, prop, optional)


def _wildcard(value: Any) -> str | None:
    """``"ALL"`` for the registered ``["ALL"]`` (and so on); None for a plain value."""
    if isinstance(value, list) and len(value) == 1 and value[0] in _WILDCARDS:
        return str(value[0])
    return None


def _describe(dependency: Dependency) -> str:
    shown = dependency.id if isinstance(dependency.id, str) else json.dumps(dependency.id, sort_keys=True)
    return f"{shown[:200]}.{dependency.prop}" + (" (a list)" if dependency.multi else "")
