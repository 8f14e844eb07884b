"""Refusals of the JSON routes (the customer API and the event intake), and the one wrapper that
turns them into answers.

A route raises :class:`Refusal` with the status and a one-line message for the client; the
wrapper answers it in the boundary's JSON error shape (429 with ``Retry-After``), and answers any
other exception with a logged 500 that names the endpoint only (a path may hold a raw customer id,
a body events), so no traceback reaches a client.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import flask
from werkzeug.wrappers import Response

from service import throttle
from service.responses import error_response

__all__ = ["Refusal", "json_endpoint"]

log = logging.getLogger(__name__)


class Refusal(Exception):
    """A refusal with its HTTP status and a one-line message for the client (and, for 429, the
    seconds to wait)."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def json_endpoint(view: Callable[..., Response]) -> Callable[..., Response]:
    """Refusals become JSON errors; anything else a logged JSON 500."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return view(*args, **kwargs)
        except Refusal as exc:
            if exc.retry_after is not None:
                return throttle.too_many(exc.retry_after, exc.message)
            return error_response(exc.status, exc.message)
        except Exception:
            log.exception("request %s %s failed", flask.request.method, flask.request.endpoint)
            return error_response(500, "internal error: the server log has the details")

    return wrapper
