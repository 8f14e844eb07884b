"""The event intake over HTTP: ``POST /api/v1/events`` and ``POST /api/v1/items``.

The shop's backend posts what its customers just did (a JSON array of up to
:data:`~workflows.intake.MAX_EVENTS_PER_BATCH` events in the data contract, each with the
client's ``event_id``) and catalogue changes; both go through :mod:`workflows.intake`, the same
writer ``cli.py ingest --append`` uses. The guard in front (:mod:`service.web`) is the API's:
HTTP basic auth (or a session), the origin check, the sign-in throttle, and the role matrix
(``access.ROUTE_RULES``: only the ``intake`` service account may post here, and it may read
nothing else).

Why each status code, in the order they are decided:

* ``413`` when ``Content-Length`` says the body is over :data:`MAX_BODY_BYTES`, before a byte of
  it is read; a body without a length is read up to that cap and refused past it; a batch with
  more events than the intake takes is ``413`` too;
* ``415`` for a body that is not ``application/json``, ``400`` for one that is not JSON (bad
  UTF-8, NaN, nesting too deep, numbers too long) or not an array; the bad bytes are never echoed;
* ``429`` with ``Retry-After`` when :data:`MAX_IN_FLIGHT` batches are already being taken in by
  this process (the queue is full: a waiting batch holds a server thread that readers need) or
  the writer lock stays busy for the intake's timeout (another process appending);
* ``503`` when the store cannot be written (a full disk, no secret to pseudonymise with); a shop
  with no database file yet is fine: its first compaction creates one from the live segment;
* ``200`` with ``{"accepted", "duplicates", "rejected": [{"index", "event_id", "reason"}]}``
  once the batch is on disk (fsynced): a ``kill -9`` right after the answer loses none of it.
  Events refused one by one are in ``rejected`` (and the store's ``rejects``), never a 4xx, so
  the rest of the batch is not lost with them; re-sending a batch adds nothing.

Nothing here is audited per batch: the intake reads no customer, and the segment files record
what came in. An unexpected exception is logged and answered ``500`` in JSON, never HTML.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import flask
from werkzeug.wrappers import Response

from errors import RecsightError
from service.openapi import API_BASE, MAX_BODY_BYTES
from service.refusals import Refusal, json_endpoint
from service.responses import error_response, json_response
from settings import Settings
from workflows import intake

__all__ = ["INTAKE_BLUEPRINT", "MAX_BODY_BYTES", "MAX_IN_FLIGHT", "EVENTS_PATH", "ITEMS_PATH", "blueprint",
           "add_batch_route"]

log = logging.getLogger(__name__)

INTAKE_BLUEPRINT = "recsight_intake"
EVENTS_PATH, ITEMS_PATH = f"{API_BASE}/events", f"{API_BASE}/items"
MAX_IN_FLIGHT = 3  # batches taken in at once per process: the other server threads stay for readers
_JSON_TYPES = frozenset({"application/json"})
_READ_CHUNK = 64 * 1024
_OTHER_METHODS = ("GET", "PUT", "PATCH", "DELETE")  # HEAD comes with GET, OPTIONS from Flask


def blueprint(settings: Settings) -> flask.Blueprint:
    """The intake's two routes for the shop of ``settings``."""
    bp = flask.Blueprint(INTAKE_BLUEPRINT, __name__)
    slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)
    add_batch_route(bp, EVENTS_PATH, "events", slots, lambda batch: intake.append_events(
        settings.db_path, batch, settings.secret, timeout=intake.APPEND_TIMEOUT_S))
    add_batch_route(bp, ITEMS_PATH, "items", slots, lambda batch: intake.append_items(
        settings.db_path, batch, timeout=intake.APPEND_TIMEOUT_S))
    return bp


def add_batch_route(bp: flask.Blueprint, path: str, endpoint: str, slots: threading.BoundedSemaphore,
                    append: Callable[[list[object]], intake.IntakeResult]) -> None:
    """``POST path``: read a batch, take a slot, ``append`` it, answer its counts (the steps below,
    in order); any other method is 405. Every intake route (events, items, impressions) is one."""

    def post() -> Response:
        batch = read_batch()
        with intake_slot(slots):
            result = run_append(lambda: append(batch))
        return json_response(result.as_dict())

    bp.add_url_rule(path, endpoint, json_endpoint(post), methods=["POST"])
    bp.add_url_rule(path, "wrong_method", _wrong_method, methods=_OTHER_METHODS)  # one 405 endpoint per blueprint


def _wrong_method() -> Response:
    """405 naming POST, rather than the dashboard's catch-all page route answering a GET."""
    response = error_response(405, "only POST is offered here")
    response.headers["Allow"] = "POST"
    return response


# --------------------------------------------------------------------------- request steps


def read_batch() -> list[object]:
    """The request's JSON body, refused by its declared size before any of it is read."""
    request = flask.request
    if request.args:
        raise Refusal(400, "this route takes no query parameters: send the batch as the JSON body")
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise Refusal(413, f"the body is {length:,} bytes; send at most {MAX_BODY_BYTES:,} bytes per request")
    if request.mimetype not in _JSON_TYPES:
        raise Refusal(415, "send the batch as application/json (a JSON array)")
    batch = _parse(_capped_body(request.stream))
    if not isinstance(batch, list):
        raise Refusal(400, f"the body must be a JSON array of objects, not a JSON {_json_kind(batch)}")
    return batch


def _capped_body(stream: Any) -> bytes:
    """The body, read in chunks up to one byte past the cap (a body without a declared length
    cannot make the server read or hold more than that)."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_BODY_BYTES:
        chunk = stream.read(min(_READ_CHUNK, MAX_BODY_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > MAX_BODY_BYTES:
        raise Refusal(413, f"the body is over {MAX_BODY_BYTES:,} bytes; send smaller batches")
    return b"".join(chunks)


def _parse(body: bytes) -> object:
    """Strict JSON: UTF-8, no NaN or Infinity; a parse failure of any kind is a 400."""
    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise Refusal(400, "the body is not UTF-8 text") from None
    except (ValueError, RecursionError):  # JSONDecodeError, NaN, over-long numbers, deep nesting
        raise Refusal(400, "the body is not valid JSON: send a JSON array of objects") from None


def _json_kind(value: object) -> str:
    return {dict: "object", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


@contextmanager
def intake_slot(slots: threading.BoundedSemaphore) -> Iterator[None]:
    """One of the process's intake slots, or 429 at once when all are taken (the queue is full)."""
    if not slots.acquire(blocking=False):
        raise Refusal(429, "the intake queue is full", retry_after=intake.RETRY_AFTER_S)
    try:
        yield
    finally:
        slots.release()


def run_append(append: Callable[[], intake.IntakeResult]) -> intake.IntakeResult:
    """The use case, its errors mapped to status codes."""
    try:
        return append()
    except intake.BatchTooLarge as exc:
        raise Refusal(413, str(exc)) from None
    except intake.IntakeBusy:
        raise Refusal(429, "the store is busy with another writer", retry_after=intake.RETRY_AFTER_S) from None
    except RecsightError as exc:
        log.error("intake refused a batch: %s", exc)
        raise Refusal(503, f"the intake is unavailable: {exc}") from None
