"""``POST /api/v1/impressions``: the lists the shop showed its customers, for attribution.

The shop's backend posts, beside its events, what each customer was shown: a JSON array of up
to :data:`~workflows.performance.MAX_IMPRESSIONS_PER_BATCH` impressions, each with the client's
``event_id``, the shop's customer id (pseudonymised on arrival), ``ts``, the ``list`` it was
(home, product, search...), its ``items`` in the order shown, and the ``model_version``,
``experiment`` and ``variant`` that produced it (:mod:`analytics.impressions` has the rules).

It is the event intake's twin and answers exactly as it does (:mod:`service.intake_api`, whose
request steps it reuses): the same guard (only the ``intake`` role may post), ``413`` by
declared or read size and for too many impressions, ``415``/``400`` for a body that is not a
JSON array, ``429`` with ``Retry-After`` when this route's slots are taken or the writer lock
stays busy, ``503`` when the store cannot be written, and ``200`` with ``{"accepted",
"duplicates", "rejected": [{"index", "event_id", "reason"}]}`` once the batch is fsynced.

Its slots are its own (:data:`MAX_IN_FLIGHT`, fewer than the events'): impressions come in
beside events, and together the two intakes leave most of the server's threads to readers.
"""

from __future__ import annotations

import threading

import flask
from werkzeug.wrappers import Response

from service.intake_api import intake_slot, read_batch, run_append  # the event intake's request steps
from service.openapi import API_BASE
from service.refusals import json_endpoint
from service.responses import error_response, json_response
from settings import Settings
from workflows import intake, performance

__all__ = ["IMPRESSIONS_BLUEPRINT", "IMPRESSIONS_PATH", "MAX_IN_FLIGHT", "blueprint"]

IMPRESSIONS_BLUEPRINT = "recsight_impressions"
IMPRESSIONS_PATH = f"{API_BASE}/impressions"
MAX_IN_FLIGHT = 2  # with the event intake's 3, five of the server's eight threads at most take batches in
_OTHER_METHODS = ("GET", "PUT", "PATCH", "DELETE")


def blueprint(settings: Settings) -> flask.Blueprint:
    """The impressions route for the shop of ``settings``."""
    bp = flask.Blueprint(IMPRESSIONS_BLUEPRINT, __name__)
    slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)

    @bp.post(IMPRESSIONS_PATH)
    @json_endpoint
    def impressions() -> Response:
        batch = read_batch()
        with intake_slot(slots):
            result = run_append(lambda: performance.append_impressions(settings.db_path, batch, settings.secret,
                                                                 timeout=intake.APPEND_TIMEOUT_S))
        return json_response(result.as_dict())

    def wrong_method() -> Response:
        """405 naming POST, rather than the dashboard's catch-all page route answering a GET."""
        response = error_response(405, "only POST is offered here")
        response.headers["Allow"] = "POST"
        return response

    bp.add_url_rule(IMPRESSIONS_PATH, "wrong_method", wrong_method, methods=_OTHER_METHODS)
    return bp
