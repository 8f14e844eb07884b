"""What every JSON answer of the boundary looks like, and where the API lives.

The guard (:mod:`service.web`), the JSON API (:mod:`service.api`) and the intake
(:mod:`service.intake_api`) answer errors in one shape, ``{"status": ..., "message": ...}``, and
data as strict JSON; the guard and the API both need to know which paths are the API's. They take
all of it from here, so none has to import another.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import flask
import numpy as np
from werkzeug.wrappers import Response

__all__ = ["API_PREFIX", "error_response", "json_response"]

API_PREFIX = "/api/"


def error_response(status: int, message: str) -> Response:
    """A JSON error: ``{"status": 403, "message": "..."}`` with that status code."""
    response = flask.jsonify(status=status, message=message)
    response.status_code = status
    return response


def json_response(data: Any, status: int = 200) -> Response:
    """Strict JSON (no NaN; non-ASCII escaped, so a lone surrogate in a client's id cannot break the
    encoding): dates as ISO text, decimals and numpy numbers as numbers."""
    return Response(json.dumps(_plain(data), allow_nan=False), status=status, mimetype="application/json")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, Decimal, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    return value
