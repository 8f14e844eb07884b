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

from service.intake_api import add_batch_route
from service.openapi import API_BASE
from settings import Settings
from workflows import intake, performance

__all__ = ["IMPRESSIONS_BLUEPRINT", "IMPRESSIONS_PATH", "MAX_IN_FLIGHT", "blueprint"]

IMPRESSIONS_BLUEPRINT = "recsight_impressions"
IMPRESSIONS_PATH = f"{API_BASE}/impressions"
MAX_IN_FLIGHT = 2  # with the event intake's 3, five of the server's eight threads at most take batches in


def blueprint(settings: Settings) -> flask.Blueprint:
    """The impressions route for the shop of ``settings`` (the event intake's steps, its own slots)."""
    bp = flask.Blueprint(IMPRESSIONS_BLUEPRINT, __name__)
    add_batch_route(bp, IMPRESSIONS_PATH, "impressions", threading.BoundedSemaphore(MAX_IN_FLIGHT),
                    lambda batch: performance.append_impressions(settings.db_path, batch, settings.secret,
                                                                 timeout=intake.APPEND_TIMEOUT_S))
    return bp
