"""What every JSON error of the boundary looks like, and where the API lives.

Both the guard (:mod:`service.web`) and the JSON API (:mod:`service.api`) answer errors in one
shape, ``{"status": ..., "message": ...}``, and both need to know which paths are the API's. They
take both from here, so neither has to import the other.
"""

from __future__ import annotations

import flask
from werkzeug.wrappers import Response

__all__ = ["API_PREFIX", "error_response"]

API_PREFIX = "/api/"


def error_response(status: int, message: str) -> Response:
    """A JSON error: ``{"status": 403, "message": "..."}`` with that status code."""
    response = flask.jsonify(status=status, message=message)
    response.status_code = status
    return response
