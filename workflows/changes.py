"""What changed in a customer's list since a moment: the use case behind the API's ``?since=`` and
the customer page's live refresh.

Both ask the same question, "the list before ``since`` against now, and the event behind each
move", and get it from :func:`list_since`: the customer's whole candidate ranking now
(:meth:`Recommender.recommend`) and before ``since`` (:meth:`Recommender.rescore` with the history
cut strictly before it), both explained, and the moves read off the difference of the two
explanations (:mod:`explain.changes`). A customer without events at or after ``since`` costs one
small query and the usual list: no second ranking, no explanation.

``since`` is an event time (the ``ts`` the shop's backend sent), not an arrival time: "since the
agent last looked" is the newest event time the agent's list had seen. The API takes it from the
caller; the page keeps it in the customer store the server sealed (:func:`seen_mark`). The shop-wide
tables (co-visitation, popularity) stay as trained in both lists, so ``since`` is bounded to
:data:`MAX_SINCE_AGE`: further back, "the list as it was" would be a list nobody was shown.

The page's tick asks :func:`refresh` every few seconds; for an unchanged customer that is a
directory listing and a dict read (:meth:`Recommender.catch_up`, :meth:`Recommender.as_of`), no
SQL and no ranking.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics import schema as s
from analytics.profile_card import profile_card
from dashboard.customer_view import timeline
from errors import RecsightError
from explain.changes import Changes, NewEvent, explain_changes
from explain.explainer import ALL_CANDIDATES
from models.serving import Recommendation, Recommender
from settings import Settings
from workflows import merchandising
from workflows.lookup import Found, K, customer_connection, item_details
from workflows.variants import served_for

__all__ = ["MAX_SINCE_AGE", "SINCE_PATTERN", "SINCE_MAX_LENGTH", "SinceRefused", "SinceOutOfWindow", "Since",
           "Refresh", "parse_since", "list_since", "recommendations_since", "seen_mark", "refresh"]

log = logging.getLogger(__name__)

MAX_SINCE_AGE = timedelta(days=7)
# ISO 8601 with an explicit offset (Z or +hh:mm): a time without one could be anybody's local time.
SINCE_PATTERN = (r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
                 r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")
SINCE_MAX_LENGTH = 32
_SINCE = re.compile(SINCE_PATTERN)


class SinceRefused(RecsightError):
    """A ``since`` that is not a time (the API answers 400)."""


class SinceOutOfWindow(SinceRefused):
    """A real time, but in the future or more than :data:`MAX_SINCE_AGE` back (the API answers 409)."""


@dataclass(frozen=True)
class Since:
    """The customer's top ``k`` now, and what changed in it since ``changes.since``."""

    result: Recommendation
    changes: Changes


@dataclass(frozen=True)
class Refresh:
    """What the page shows after a customer changed: the lookup's data anew, the moves, and the new
    mark (what the agent has now seen)."""

    found: Found
    changes: Changes
    mark: str


def parse_since(text: str, clock: datetime | None = None) -> datetime:
    """``text`` as naive UTC (how event times are stored), or :class:`SinceRefused` saying why."""
    clock = clock or _utc_now()
    if len(text) > SINCE_MAX_LENGTH or not _SINCE.fullmatch(text):
        raise SinceRefused("since must be an ISO 8601 time with its offset, e.g. 2025-05-01T12:00:00Z")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        raise SinceRefused("since is not a real date and time") from None
    if moment > clock:
        raise SinceOutOfWindow("since is in the future")
    if clock - moment > MAX_SINCE_AGE:
        raise SinceOutOfWindow(f"since is more than {MAX_SINCE_AGE.days} days ago: ask for the list without it")
    return moment


def list_since(recommender: Recommender, user_id: str, since: datetime, k: int = K,
               clock: datetime | None = None) -> Since:
    """The customer's top ``k`` now and its changes since ``since`` (naive UTC)."""
    clock = clock or _utc_now()
    recommender.catch_up()
    events = _events_since(recommender, user_id, since)
    if not events:  # nothing happened: the list is the usual one, nothing to explain
        return Since(merchandising.merchandised(recommender, user_id, k), Changes(user_id, since, clock, k, []))
    now = recommender.recommend(user_id, ALL_CANDIDATES)
    before = recommender.rescore(user_id, ALL_CANDIDATES, before=since)
    unshown = [merchandising.without_excluded(recommender, ranked) for ranked in (before, now)]  # never named
    changes = explain_changes(recommender, *unshown, k, since, events, clock)  # the moves: the model's
    return Since(merchandising.merchandised(recommender, user_id, k, ranked=now), changes)


def recommendations_since(recommender: Recommender, user_id: str, since: datetime, k: int = K,
                          explain: bool = False) -> dict[str, Any]:
    """The API's answer to ``?since=``: the list (explained with ``explain``) and its ``changes``."""
    found = list_since(recommender, user_id, since, k)
    payload = merchandising.list_payload(found.result)
    if explain:
        payload = merchandising.explanation_payload(recommender, found.result, payload)
    payload["changes"] = found.changes.to_dict()
    return payload


# --------------------------------------------------------------------------- the customer page


def seen_mark(settings: Settings, user_id: str) -> str | None:
    """What the page has seen of the customer: the time their features are computed at (just after
    their newest event, or the model's serving time), as ISO text for the sealed store."""
    recommender = served_for(settings, user_id).recommender  # the customer's experiment variant, if any
    recommender.catch_up()
    mark = recommender.as_of(user_id)
    return None if mark is None else mark.isoformat()


def refresh(settings: Settings, user_id: str, mark: str | None, version: str | None) -> Refresh | None:
    """The page's data anew when the customer has events the page has not seen, else None.

    None costs a directory listing and a dict read. A mark that moved *back* (a compaction folded
    the live events into the shop, and the reloaded model no longer counts them as live) is no
    change; neither is a model other than the page's (its clicks already ask for a new lookup).
    """
    served = served_for(settings, user_id)
    recommender = served.recommender
    if version is not None and version != recommender.artifact.path.name:
        return None
    recommender.catch_up()
    now_mark = recommender.as_of(user_id)
    try:
        seen = datetime.fromisoformat(mark) if mark else None
    except ValueError:
        seen = None
    if now_mark is None or seen is None or now_mark <= seen:
        return None
    found = list_since(recommender, user_id, seen, K)
    log.info("live refresh of a customer: %d new events, %d entered, %d left", len(found.changes.new_events),
             len(found.changes.entered), len(found.changes.left))
    return Refresh(_found(settings, recommender, found.result, served.describe()), found.changes,
                   now_mark.isoformat())


def _found(settings: Settings, recommender: Recommender, result: Recommendation, serving: str | None = None) -> Found:
    """What a lookup shows, for a customer already found and audited: the list given, with the
    card, timeline and item details read where the lookup reads them (the live state)."""
    with customer_connection(settings, result.user_id) as con:
        card = profile_card(con, result.user_id)
        frame, total = timeline(con, result.user_id)
        details = item_details(con, [item.item_id for item in result.items])
    return Found(result.user_id, recommender.artifact.path.name, result.cold_start, list(result.items), card, frame,
                 total, details, settings.currency, serving)


# --------------------------------------------------------------------------- reading


def _events_since(recommender: Recommender, user_id: str, since: datetime) -> list[NewEvent]:
    """The customer's events at or after ``since``, oldest first, with titles."""
    with recommender.connection() as con:
        rows = con.execute(
            f"""SELECT e.{s.ITEM_ID}, coalesce(i.{s.TITLE}, e.{s.ITEM_ID}), e.{s.EVENT_TYPE}, e.{s.TS}
                FROM {recommender.tables.history} e LEFT JOIN {s.ITEMS} i USING ({s.ITEM_ID})
                WHERE e.{s.USER_ID} = ? AND e.{s.TS} >= ? ORDER BY e.{s.TS}, e.{s.ITEM_ID}""",
            [user_id, since]).fetchall()
    return [NewEvent(*row) for row in rows]


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
