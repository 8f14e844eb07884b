"""What changed in a customer's list between two moments, told by the difference of two explanations.

Why not a rule of its own ("the newest view is probably why"): the agent must be able to trust
that the event named behind a move is the one the models weighed. So both lists are explained
the way every explanation is (TreeSHAP of the ranker, Integrated Gradients of the attention
network over the history window *of that moment*), and a move is read off their difference:

* one ranker with one base value, so an item's score change is exactly the sum of its per-feature
  SHAP changes; the ones outside the attention network are summed per feature group (``drivers``);
* the attention feature's SHAP value is spread over the window's events in proportion to their IG
  attributions (:func:`explain.attributions.split_attention_shap`), so its change is exactly the
  sum of the events' share changes (``events``): a new event's change is all of its share now,
  an old event's is how much its part moved.

So ``score_now - score_before == sum(drivers) + sum(event share changes)`` (tested). The event
*behind* a move (``cause``) is the new event (at or after ``since``) with the largest Integrated
Gradients attribution change in the direction the item went: IG is the one explanation that
weighs single events (SHAP weighs features, and the profile and co-visitation features are
functions of all recent events together), and a new event's change is all of its attribution
now. The sentence also names the SHAP group that moved the score most. Where the item's own score
did not go its way (it rose only because one above it left), there is no cause and the sentence
says so.

An item that was no candidate in one of the two lists has no explanation there: it counts as
zero (the base value), so its drivers are its whole explanation. An item the customer acted on
after ``since`` leaves for a rule, not a score: items a customer already interacted with are not
candidates (:mod:`models.candidates`), and the sentence says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from analytics import schema as s
from explain.attributions import attribute_items, history_evidence, split_attention_shap
from explain.tree_shap import contributions_of, shap_rows
from explain.types import ItemExplanation
from models.features import ATTENTION_SCORE
from models.precompute import item_titles
from models.sequences import Histories
from models.serving import Recommendation, Recommender

__all__ = ["ENTERED", "LEFT", "MOVED", "NewEvent", "EventChange", "Driver", "Move", "Changes", "window_before",
           "explain_state", "explain_changes", "ago", "did"]

ENTERED, LEFT, MOVED = "entered", "left", "moved"
EPSILON = 1e-9  # score changes below this are float noise, not a move
EVENTS_SHOWN = 5  # per move, the events with the largest share change

GROUP_WORDS = {  # a feature group of models.features, as an agent reads it out
    "co-visitation": "what shoppers pick next to your recent items", "popularity": "how popular it is",
    "item": "the item's own record in the shop", "affinity": "how much you shop its brand or category",
    "recency": "how recently you chose its brand or category", "price": "how its price fits yours",
    "customer": "how much you have shopped with us", "attention": "what your recent browsing says you like",
}
_VERB = {s.VIEW: "viewed {}", s.CLICK: "clicked on {}", s.CART: "put {} in the basket", s.PURCHASE: "bought {}",
         s.FAVORITE: "saved {}", s.RATING_EVENT: "rated {}", s.RETURN: "returned {}"}
_WINDOW_TABLE = "changes_history"


@dataclass(frozen=True)
class NewEvent:
    """One of the customer's events at or after ``since``."""

    item_id: str
    title: str
    event_type: str
    ts: datetime  # naive UTC, as stored

    @property
    def key(self) -> tuple[str, str, datetime]:
        return self.item_id, self.event_type, self.ts


@dataclass(frozen=True)
class EventChange:
    """One history event's part in an item's move: its share of the attention feature's SHAP value
    (raw-score units) and its IG attribution, before and now (0 where it was not in the window)."""

    item_id: str
    title: str
    event_type: str
    ts: datetime
    new: bool  # at or after ``since``
    share_before: float
    share_now: float
    attribution_before: float
    attribution_now: float

    @property
    def share_change(self) -> float:
        return self.share_now - self.share_before

    @property
    def attribution_change(self) -> float:
        return self.attribution_now - self.attribution_before

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {"item_id": self.item_id, "title": self.title, "event_type": self.event_type, "ts": _iso(self.ts),
                "ago": ago(self.ts, now), "new": self.new, "share_change": self.share_change,
                "attribution_change": self.attribution_change}


@dataclass(frozen=True)
class Driver:
    """One feature group's SHAP change for an item (attention excluded: its events say it)."""

    group: str
    change: float

    @property
    def label(self) -> str:
        return GROUP_WORDS.get(self.group, self.group)


@dataclass(frozen=True)
class Move:
    """One item that entered, left or moved in the list, and why."""

    kind: str  # ENTERED, LEFT or MOVED
    item_id: str
    title: str
    rank_before: int | None  # rank in the whole candidate ranking; None: no candidate then
    rank_now: int | None
    score_before: float | None
    score_now: float | None
    drivers: list[Driver]  # largest |change| first
    events: list[EventChange]  # largest |share change| first
    cause: EventChange | NewEvent | None  # the new event behind the move (a NewEvent: acted on the item itself)
    sentence: str

    @property
    def score_change(self) -> float | None:
        if self.score_now is None or self.score_before is None:
            return None
        return self.score_now - self.score_before

    def to_dict(self, now: datetime) -> dict[str, Any]:
        cause = self.cause
        return {
            "kind": self.kind, "item_id": self.item_id, "title": self.title, "rank_before": self.rank_before,
            "rank_now": self.rank_now, "score_before": self.score_before, "score_now": self.score_now,
            "score_change": self.score_change, "sentence": self.sentence,
            "cause": None if cause is None else _event_dict(cause, now),
            "drivers": [{"group": d.group, "label": d.label, "change": d.change} for d in self.drivers],
            "events": [e.to_dict(now) for e in self.events[:EVENTS_SHOWN]],
        }


@dataclass(frozen=True)
class Changes:
    """The customer's top ``k`` before ``since`` against now: the new events and every move."""

    user_id: str
    since: datetime  # naive UTC
    now: datetime  # naive UTC: what "40 seconds ago" counts from
    k: int
    new_events: list[NewEvent]
    entered: list[Move] = field(default_factory=list)
    left: list[Move] = field(default_factory=list)
    moved: list[Move] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.entered or self.left or self.moved)

    def to_dict(self) -> dict[str, Any]:
        """The API's ``changes`` object."""
        return {
            "since": _iso(self.since), "k": self.k,
            "new_events": [_event_dict(e, self.now) for e in self.new_events],
            "entered": [m.to_dict(self.now) for m in self.entered],
            "left": [m.to_dict(self.now) for m in self.left],
            "moved": [m.to_dict(self.now) for m in self.moved],
        }


# --------------------------------------------------------------------------- the two explanations


def window_before(recommender: Recommender, user_id: str, before: datetime) -> Histories:
    """The attention network's window of the customer as it was before ``before`` (events at or
    after it dropped): what Integrated Gradients must run on to explain the earlier list."""
    with recommender.connection() as con:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_WINDOW_TABLE} AS SELECT * FROM {recommender.tables.history} "
                    f"WHERE {s.USER_ID} = ? AND {s.TS} < ?", [user_id, before])
        return recommender.attention.histories(con, _WINDOW_TABLE, [user_id])


def explain_state(recommender: Recommender, result: Recommendation, histories: Histories) -> dict[str, ItemExplanation]:
    """SHAP and IG of ``result``'s items over ``histories`` (the window of the moment ``result``
    was ranked at), by item id; without reasons (a move has its own sentence).

    The same calls as :func:`explain.explainer.explain_with_reasons` (one SHAP call, one batched
    IG run), but over a given window: the explainer always reads the current one.
    """
    if not result.items:
        return {}
    user_id, item_ids = result.user_id, [item.item_id for item in result.items]
    rows = shap_rows(recommender.ranker, result.features)
    pairs = attribute_items(recommender.attention, histories, user_id, item_ids)
    row = histories.rows([user_id])[0]
    window = [i for i in histories.item_ids[row].tolist() if i is not None] if row >= 0 else []
    with recommender.connection() as con:
        titles = item_titles(con, sorted(set(window)))
    column = rows.features.index(ATTENTION_SCORE) if ATTENTION_SCORE in rows.features else None
    out = {}
    for i, (item, pair) in enumerate(zip(result.items, pairs)):
        phi = float(rows.values[i, column]) if column is not None else 0.0
        total = float(np.abs(rows.values[i]).sum())
        out[item.item_id] = ItemExplanation(
            user_id=user_id, item_id=item.item_id, title=item.title, rank=item.rank, score=item.score,
            base_value=rows.base, contributions=contributions_of(rows, i),
            history=history_evidence(histories, user_id, pair, split_attention_shap(phi, pair.attributions), titles),
            convergence_delta=pair.delta, attention_share=abs(phi) / total if total > 0 else 0.0)
    return out


def _rows(full: Recommendation, item_ids: Sequence[str]) -> Recommendation:
    """The named items of a whole ranking (those it holds), keeping their ranks and feature rows."""
    position = {item.item_id: i for i, item in enumerate(full.items)}
    rows = [position[i] for i in item_ids if i in position]
    return Recommendation(full.user_id, full.cold_start, [full.items[r] for r in rows],
                          full.features.iloc[rows].reset_index(drop=True))


# --------------------------------------------------------------------------- the difference


def explain_changes(recommender: Recommender, before: Recommendation, now: Recommendation, k: int, since: datetime,
                    new_events: Sequence[NewEvent], clock: datetime) -> Changes:
    """The moves between the top ``k`` of ``before`` (the whole candidate ranking before ``since``)
    and of ``now`` (the whole ranking now), each explained by the difference of the item's two
    explanations. ``clock`` is the time relative times count from."""
    top_before = [i.item_id for i in before.items[:k]]
    top_now = [i.item_id for i in now.items[:k]]
    changes = Changes(now.user_id, since, clock, k, list(new_events))
    if top_before == top_now:
        return changes
    union = list(dict.fromkeys(top_now + top_before))
    explained_now = explain_state(recommender, _rows(now, union), recommender.histories([now.user_id]))
    explained_before = explain_state(recommender, _rows(before, union),
                                     window_before(recommender, now.user_id, since))
    acted_on = {e.item_id: e for e in new_events}  # the latest event per item (events are oldest first)
    for item_id in union:
        was, is_ = explained_before.get(item_id), explained_now.get(item_id)
        rank_before = was.rank if was is not None else None
        rank_now = is_.rank if is_ is not None else None
        if item_id not in top_before:
            kind = ENTERED
        elif item_id not in top_now:
            kind = LEFT
        elif rank_before != rank_now:
            kind = MOVED
        else:
            continue
        move = _move(kind, item_id, was, is_, since, acted_on.get(item_id), clock)
        {ENTERED: changes.entered, LEFT: changes.left, MOVED: changes.moved}[kind].append(move)
    changes.entered.sort(key=lambda m: m.rank_now or 0)
    changes.left.sort(key=lambda m: m.rank_before or 0)
    changes.moved.sort(key=lambda m: m.rank_now or 0)
    return changes


def _move(kind: str, item_id: str, was: ItemExplanation | None, is_: ItemExplanation | None, since: datetime,
          acted: NewEvent | None, clock: datetime) -> Move:
    """One move: drivers and event changes from the two explanations, the cause, the sentence."""
    drivers = _drivers(was, is_)
    events = _event_changes(was, is_, since)
    score_before = was.score if was is not None else None
    score_now = is_.score if is_ is not None else None
    title = (is_ or was).title  # type: ignore[union-attr]  # one of the two exists
    rank_before, rank_now = (was.rank if was else None), (is_.rank if is_ else None)
    up = rank_now is not None and (rank_before is None or rank_now < rank_before)
    change = None if score_before is None or score_now is None else score_now - score_before
    cause: EventChange | NewEvent | None = None
    if not up and is_ is None and acted is not None:  # no candidate any more: the customer acted on it
        cause = acted
    elif change is None or (change > EPSILON if up else change < -EPSILON):  # its own score went its way
        candidates = [e for e in events
                      if e.new and (e.attribution_change > EPSILON if up else e.attribution_change < -EPSILON)]
        cause = max(candidates, key=lambda e: abs(e.attribution_change)) if candidates else None
    sentence = _sentence(kind, title, rank_before, rank_now, change, drivers, cause, clock)
    return Move(kind, item_id, title, rank_before, rank_now, score_before, score_now, drivers, events, cause, sentence)


def _drivers(was: ItemExplanation | None, is_: ItemExplanation | None) -> list[Driver]:
    """Per feature group (attention left out), the SHAP contributions now minus before."""
    groups: dict[str, float] = {}
    for explanation, sign in ((is_, 1.0), (was, -1.0)):
        for c in explanation.contributions if explanation is not None else []:
            if c.feature != ATTENTION_SCORE:
                groups[c.group] = groups.get(c.group, 0.0) + sign * c.contribution
    out = [Driver(group, change) for group, change in groups.items() if abs(change) > EPSILON]
    out.sort(key=lambda d: (-abs(d.change), d.group))
    return out


def _event_changes(was: ItemExplanation | None, is_: ItemExplanation | None, since: datetime) -> list[EventChange]:
    """Every event of either window with its share and attribution before and now."""
    table: dict[tuple[str, str, datetime], list[Any]] = {}  # key -> [title, share_b, share_n, attr_b, attr_n]
    for explanation, at in ((was, 1), (is_, 2)):
        for h in explanation.history if explanation is not None else []:
            entry = table.setdefault((h.item_id, h.event_type, h.ts), [h.title, 0.0, 0.0, 0.0, 0.0])
            entry[at] += h.score_share
            entry[at + 2] += h.attribution
    out = [EventChange(item, title, event_type, ts, ts >= since, sb, sn, ab, an)
           for (item, event_type, ts), (title, sb, sn, ab, an) in table.items()]
    out.sort(key=lambda e: (-abs(e.share_change), e.ts, e.item_id))
    return out


# --------------------------------------------------------------------------- words


def _sentence(kind: str, title: str, rank_before: int | None, rank_now: int | None, change: float | None,
              drivers: Sequence[Driver], cause: EventChange | NewEvent | None, clock: datetime) -> str:
    """'New at #2 (was #14): you viewed "Alpine 2-person tent" 40 seconds ago; its match rose, mostly
    your brand and category preferences.' Words only: agents read these out, and the raw score
    changes stay in the move's data (``score_before``, ``score_now``, the drivers)."""
    was = "not a candidate before" if rank_before is None else f"was #{rank_before}"
    head = {ENTERED: f"New at #{rank_now} ({was})", MOVED: f"Moved to #{rank_now} ({was})",
            LEFT: f"Left the list (was #{rank_before}" + (")" if rank_now is None else f", now #{rank_now})")}[kind]
    if isinstance(cause, NewEvent):
        return (f"{head}: you {did(cause.event_type, cause.title)} {ago(cause.ts, clock)}, and items the customer "
                "has already interacted with are not recommended again.")
    top = drivers[0] if drivers else None
    score = "" if change is None or abs(change) <= EPSILON else f"its match {'rose' if change > 0 else 'fell'}"
    if top is not None:
        score += f"{', ' if score else ''}mostly {top.label}"
    if cause is not None:
        return f"{head}: you {did(cause.event_type, cause.title)} {ago(cause.ts, clock)}" + (f"; {score}." if score
                                                                                             else ".")
    if kind == LEFT and rank_now is None:
        return f"{head}: it is not among the candidates drawn from the customer's new recent items."
    up = rank_now is not None and (rank_before is None or rank_now < rank_before)
    if change is not None and (change <= EPSILON if up else change >= -EPSILON):
        return (f"{head}: its own match did not {'rise' if up else 'fall'}; items "
                f"{'above it left or fell' if up else 'below it rose above it'}.")
    return f"{head}: after the new activity, {score}." if score else f"{head}."


def did(event_type: str, title: str) -> str:
    """'viewed "Alpine 2-person tent"': one event in words."""
    return _VERB.get(event_type, event_type + " {}").format(f"“{title}”")


def ago(ts: datetime, clock: datetime) -> str:
    """'40 seconds ago', '3 minutes ago', '2 days ago' (a time ahead of the clock: 'just now')."""
    seconds = (clock - ts).total_seconds()
    if seconds < 1:
        return "just now"
    for size, unit in ((86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second")):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _iso(ts: datetime) -> str:
    return ts.isoformat(timespec="microseconds") + "Z"


def _event_dict(event: EventChange | NewEvent, clock: datetime) -> dict[str, Any]:
    if isinstance(event, EventChange):
        return event.to_dict(clock)
    return {"item_id": event.item_id, "title": event.title, "event_type": event.event_type, "ts": _iso(event.ts),
            "ago": ago(event.ts, clock)}

