"""Plain sentences an agent can read out, built from the largest contributions and real evidence.

The rule that shapes this module: a sentence may only state what the customer's own data (or the
shop's data, for popularity) shows. So every sentence is built from an evidence lookup first
("which of this customer's events were on brand X?") and is dropped when the lookup finds
nothing, whatever the contribution says. Each :class:`Reason` keeps the facts it states in
``claims``, so tests can check them against the database independently.

Which sentences: features are grouped into topics (brand, category, co-visitation, popularity,
price, the deep-interest network, ...); a topic's weight is the sum of its SHAP contributions;
topics that raised the score, largest first, each give at most one sentence; three at most.

Order-only data (leave-one-out protocol, e.g. Amazon reviews) has synthetic timestamps: no
sentence cites a date or a time window there, only counts and order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import duckdb
import numpy as np
import pandas as pd

from analytics import schema as s
from explain.types import Contribution, HistoryEvidence
from models.features import ATTENTION_SCORE
from models.item_norms import ItemNorms
from models.serving import Recommender
from models.splits import TEMPORAL

__all__ = ["Reason", "Event", "CustomerData", "ItemFacts", "load_customer", "load_evidence",
           "covis_links", "build_reasons", "event_phrase"]


MAX_REASONS = 3
RECENT_WINDOW = timedelta(days=30)

# Topic of each feature. The customer's own activity level ("customer") says little about why
# this item rather than another, so it only speaks when nothing more specific does.
_TOPIC = {
    "brand_share": "brand", "brand_steps": "brand", "brand_days": "brand", "same_brand_last": "brand",
    "category_share": "category", "category_steps": "category", "category_days": "category",
    "same_category_last": "category", "root_share": "department",
    "pop_rank": "popularity", "item_users": "popularity", "item_recent_users": "popularity",
    "item_purchases": "popularity", "item_trend_7d": "trend", "item_events_7d": "trend",
    "item_conversion": "conversion", "item_age_days": "new", "price_ratio": "price",
    ATTENTION_SCORE: "attention",
    "user_events": "customer", "user_steps": "customer", "user_days_inactive": "customer",
}
_COVIS_VARIANTS = ("next", "prev", "near")
_TIMED_TOPICS = ("trend", "new")  # sentences about days: never for order-only data
_SEP = s.CATEGORY_SEPARATOR.strip()

# What the customer did, per event type that shows interest, strongest first ("{}" = the object).
_VERBS = ((s.PURCHASE, "bought {}"), (s.CART, "put {} in your basket"), (s.FAVORITE, "saved {}"),
          (s.CLICK, "clicked on {}"), (s.VIEW, "viewed {}"), (s.RATING_EVENT, "rated {}"))
_RANK = {event_type: i for i, (event_type, _) in enumerate(_VERBS)}


@dataclass(frozen=True)
class Reason:
    """One sentence, the topic it explains, its weight, and the facts it states."""

    text: str
    topic: str
    weight: float  # sum of the topic's SHAP contributions
    claims: dict[str, Any] = field(default_factory=dict)


class Event(NamedTuple):
    """One past event of the customer with its item's attributes (plain Python: reasons read a
    few dozen of them per item, and pandas' per-call overhead would dominate)."""

    item_id: str
    event_type: str
    ts: datetime
    price: float | None  # the event's price, else the catalogue price
    title: str
    category: str | None
    brand: str | None


ROOT = "root"  # the index key of an event's top-level category


@dataclass(frozen=True)
class CustomerData:
    """The customer's events as the model saw them (serving history), oldest first."""

    user_id: str
    events: list[Event]
    as_of: datetime  # the serving cutoff: every event is before it
    real_time: bool  # False for order-only data: never cite dates
    _index: dict[tuple[str, str], list[Event]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], list[Event]] = {}
        for event in self.events:
            keys = [(s.ITEM_ID, event.item_id), (s.BRAND, event.brand), (s.CATEGORY, event.category),
                    (ROOT, _root(event.category))]
            for key in keys:
                if key[1]:
                    index.setdefault(key, []).append(event)
        object.__setattr__(self, "_index", index)

    def on(self, column: str, value: str) -> list[Event]:
        """The events whose item has ``value`` in ``column`` (item_id, brand, category or root)."""
        return self._index.get((column, value), [])


@dataclass(frozen=True)
class ItemFacts:
    """A recommended item's catalogue entry (what its sentences may name)."""

    item_id: str
    title: str
    category: str | None
    brand: str | None
    price: float | None
    cold: bool = False  # first seen through the intake: scored from content and live counts (models.cold_items)


def load_customer(recommender: Recommender, user_id: str) -> CustomerData:
    """One query: the customer's events in the serving history, oldest first, with item attributes."""
    with recommender.connection() as con:
        return _customer(con, recommender, user_id)


def load_evidence(recommender: Recommender, user_id: str, item_ids: Sequence[str],
                  customer: CustomerData | None = None) -> tuple[CustomerData, dict[str, ItemFacts]]:
    """:func:`load_customer` (unless ``customer`` is given) and the catalogue entries of the items
    (an item missing from the catalogue is named by its id; ``cold`` marks the recommender's cold
    items, :attr:`Recommender.cold_items`), in one hold of the serving lock: every request takes
    it, so one wait instead of two."""
    with recommender.connection() as con:
        known = customer if customer is not None else _customer(con, recommender, user_id)
        return known, _items(con, recommender, item_ids)


def _customer(con: duckdb.DuckDBPyConnection, recommender: Recommender, user_id: str) -> CustomerData:
    rows = con.execute(
        f"""SELECT e.{s.ITEM_ID}, e.{s.EVENT_TYPE}, e.{s.TS}, coalesce(e.{s.PRICE}, i.{s.PRICE}),
                   coalesce(i.{s.TITLE}, e.{s.ITEM_ID}), nullif(i.{s.CATEGORY}, ''), nullif(i.{s.BRAND}, '')
            FROM {recommender.tables.history} e LEFT JOIN {s.ITEMS} i USING ({s.ITEM_ID})
            WHERE e.{s.USER_ID} = ? ORDER BY e.{s.TS}, e.{s.ITEM_ID}""", [user_id]).fetchall()
    as_of = recommender.as_of(user_id) or con.execute(
        f"SELECT max({s.TS}) + INTERVAL 1 MICROSECOND FROM {recommender.tables.history}").fetchone()[0]
    return CustomerData(user_id, [Event(*row) for row in rows], as_of,
                        recommender.artifact.metadata.get("protocol") == TEMPORAL)


def _root(category: str | None) -> str | None:
    return category.split(_SEP)[0].strip() if category else None


def _items(con: duckdb.DuckDBPyConnection, recommender: Recommender, item_ids: Sequence[str]) -> dict[str, ItemFacts]:
    rows = con.execute(
        f"""SELECT {s.ITEM_ID}, {s.TITLE}, {s.CATEGORY}, {s.BRAND}, {s.PRICE} FROM {s.ITEMS}
            WHERE {s.ITEM_ID} IN (SELECT unnest(?::VARCHAR[]))""", [list(item_ids)]).fetchall()
    cold = recommender.cold_items
    facts = {r[0]: ItemFacts(r[0], r[1] or r[0], r[2], r[3], r[4], r[0] in cold) for r in rows}
    return {i: facts.get(i, ItemFacts(i, i, None, None, None, i in cold)) for i in item_ids}


def covis_links(recommender: Recommender, sources: Sequence[str],
                targets: Sequence[str]) -> dict[str, list[tuple[str, str, float]]]:
    """Co-visitation links from the customer's items to each target: {target: [(variant, src, w)]},
    strongest first. Read from the model's own tables (held in memory by the recommender, see
    :meth:`Recommender.covis_links`), so a cited link is one the ranker used."""
    if not sources or not targets:
        return {t: [] for t in targets}
    return recommender.covis_links().links(_COVIS_VARIANTS, list(sources), list(targets))


def event_phrase(event_type: str, count: int, title: str) -> str:
    """'your 2 views of X', 'adding X to your basket': a customer's events on one item in words."""
    many = f"{count} " if count > 1 else ""
    plural = "s" if count > 1 else ""
    return {
        s.PURCHASE: f"your {many}purchase{plural} of {title}",
        s.VIEW: f"your {many}view{plural} of {title}",
        s.CLICK: f"your {many}click{plural} on {title}",
        s.CART: f"adding {title} to your basket",
        s.FAVORITE: f"saving {title}",
        s.RATING_EVENT: f"your rating of {title}",
        s.RETURN: f"your return of {title}",
    }.get(event_type, f"your {event_type} of {title}")


def _date(ts: datetime) -> str:
    return f"{ts.day} {ts:%b %Y}"


def _counts(events: Sequence[Event]) -> list[tuple[str, str, int]]:
    """(event type, verb, distinct items) for the interest-showing types present, strongest first."""
    items: dict[str, set[str]] = {}
    for event in events:
        items.setdefault(event.event_type, set()).add(event.item_id)
    return [(event_type, verb, len(items[event_type])) for event_type, verb in _VERBS if event_type in items]


def _did(counts: list[tuple[str, str, int]], where: str, lead: str = "You") -> str:
    """'You bought 2 items from X and viewed 9'."""
    (_, first, n), rest = counts[0], counts[1:]
    text = f"{lead} " + first.format(f"{n} {'item' if n == 1 else 'items'} {where}")
    return text + "".join(f" and {verb.format(m)}" for _, verb, m in rest)


def _activity_sentence(customer: CustomerData, column: str, value: str, where: str, topic: str,
                       weight: float) -> Reason | None:
    """'You viewed 9 and bought 2 items from Solfield ...' from the events on ``value``."""
    events = customer.on(column, value)
    window_start = None
    if customer.real_time:
        recent = [e for e in events if e.ts >= customer.as_of - RECENT_WINDOW]
        if recent:
            events, window_start = recent, customer.as_of - RECENT_WINDOW
    counts = _counts(events)[:2]
    if not counts:
        return None
    counted = {t for t, _, _ in counts}
    last_ts = max(e.ts for e in events if e.event_type in counted)
    lead = "You" if window_start is None else f"In the last {RECENT_WINDOW.days} days you"
    text = _did(counts, where, lead)
    if window_start is None and customer.real_time:
        text += f", most recently on {_date(last_ts)}"
    claims = {column: value, "counts": {t: n for t, _, n in counts}, "since": window_start,
              "last_ts": last_ts if customer.real_time else None}
    return Reason(text + ".", topic, weight, claims)


def _covis_sentence(customer: CustomerData, links: list[tuple[str, str, float]], weights: Mapping[str, float],
                    weight: float) -> Reason | None:
    """'You viewed X on 12 Mar; shoppers who looked at it often look at this next.'"""
    if not links:
        return None
    # the variant whose features added most, then its strongest source among the customer's items
    order = sorted(_COVIS_VARIANTS, key=lambda v: -weights.get(v, 0.0))
    variant = next(v for v in order if any(link[0] == v for link in links))
    _, src, w = next(link for link in links if link[0] == variant)
    mine = customer.on(s.ITEM_ID, src)
    kinds = {e.event_type for e in mine}
    strongest = next((t for t, _ in _VERBS if t in kinds), None)
    if strongest is None:
        return None
    did = dict(_VERBS)[strongest].format(mine[-1].title)
    last_ts = max(e.ts for e in mine if e.event_type == strongest)
    when = f" on {_date(last_ts)}" if customer.real_time else ""
    tail = {
        "next": "shoppers who looked at it often look at this item next",
        "prev": "shoppers often look at this item just before it",
        "near": "shoppers who looked at it also looked at this item",
    }[variant]
    claims = {"source_item": src, "event_type": strongest, "variant": variant, "link_weight": w,
              "last_ts": last_ts if customer.real_time else None}
    return Reason(f"You {did}{when}; {tail}.", "co-visitation", weight, claims)


def _attention_sentence(history: Sequence[HistoryEvidence], attention_share: float, weight: float,
                        real_time: bool) -> Reason | None:
    """'42 % of this match comes from what your recent browsing says you like, mostly your views of X and Y.'"""
    drivers = [h for h in sorted(history, key=lambda h: -h.score_share) if h.score_share > 0]
    if not drivers:
        return None
    picked: dict[str, list[HistoryEvidence]] = {}
    for h in drivers:
        if h.item_id not in picked and len(picked) == 2:
            continue
        picked.setdefault(h.item_id, []).append(h)
    phrases = []
    for events in picked.values():
        kind = min((h.event_type for h in events), key=lambda t: _RANK.get(t, len(_RANK)))
        latest = max(h.ts for h in events)
        count = sum(h.event_type == kind for h in events)
        phrases.append(event_phrase(kind, count, events[0].title) + (f" ({_date(latest)})" if real_time else ""))
    share = round(100 * attention_share)
    lead = (f"{share}% of this match comes from what your recent browsing says you like"
            if share >= 1 else "What your recent browsing says you like lifts it")
    claims = {"items": list(picked), "event_types": sorted({h.event_type for e in picked.values() for h in e})}
    return Reason(f"{lead}, mostly {' and '.join(phrases)}.", "attention", weight, claims)


def _price_sentence(customer: CustomerData, item: ItemFacts, weight: float) -> Reason | None:
    if item.price is None or pd.isna(item.price):
        return None
    paid = [e.price for e in customer.events if e.event_type == s.PURCHASE and e.price is not None]
    basis = "pay" if paid else "look at"
    if not paid:
        paid = [e.price for e in customer.events if e.event_type == s.VIEW and e.price is not None]
    if not paid:
        return None
    usual = float(np.median(paid))
    ratio = item.price / usual if usual else float("inf")
    # In proportion, not in amounts: the sentence is read out as it is, and the amounts' currency
    # is the shop's setting, which the card beside it shows with the price.
    if 0.8 <= ratio <= 1.25:
        where = "close to what"
    else:
        where = f"{abs(ratio - 1):.0%} {'below' if ratio < 1 else 'above'} what" if ratio < 10 else "far above what"
    text = f"Its price is {where} you usually {basis}."
    return Reason(text, "price", weight, {"price": item.price, "usual_price": usual, "basis": basis})


def _shop_sentence(topic: str, row: Mapping[str, Any], weight: float, norms: ItemNorms) -> Reason | None:
    """Popularity, trend, conversion and novelty: facts about the item in the shop's data, in
    words that agree with where the numbers stand among the shop's items (:mod:`models.item_norms`):
    "popular" only for the top quarter, "often" only for a conversion rate in the top quarter."""
    def number(name: str) -> float | None:
        value = row.get(name)
        return None if value is None or pd.isna(value) else float(value)

    if topic == "popularity":
        users, recent = number("item_users"), number("item_recent_users")
        if not users:
            return None
        level = norms.level("item_users", users)
        if level == "high":
            text = f"It is popular: {int(users)} customers have looked at it, more than at most items here"
        elif level == "typical":
            text = f"{int(users)} customers have looked at it, about as many as at a typical item here"
        else:
            return None  # few shoppers, or no shop to compare with: nothing true to say as a reason
        if recent:
            text += f", {int(recent)} of them on their latest visits"
        return Reason(text + ".", topic, weight, {"item_users": int(users), "item_recent_users": int(recent or 0),
                                                   "level": level})
    if topic == "trend":
        events_7d, trend = number("item_events_7d"), number("item_trend_7d")
        if not events_7d or trend is None or trend <= 1:
            return None
        return Reason(f"Interest in it is rising: {int(events_7d)} shopper events in the last 7 days.",
                      topic, weight, {"item_events_7d": int(events_7d), "item_trend_7d": trend})
    if topic == "conversion":
        conversion = number("item_conversion")
        if not conversion:
            return None
        level = norms.level("item_conversion", conversion)
        if level == "high":
            text = (f"Shoppers who view it often buy it: {conversion:.0%} of views end in a purchase, "
                    "more than for most items here.")
        elif level == "typical":
            text = f"{conversion:.0%} of views of it end in a purchase, about usual for this shop."
        else:
            return None
        return Reason(text, topic, weight, {"item_conversion": conversion, "level": level})
    if topic == "new":
        age = number("item_age_days")
        if age is None or age > 30:
            return None
        return Reason(f"It is new in the shop: first seen {max(1, round(age))} days ago.", topic, weight,
                      {"item_age_days": age})
    return None


def _cold_item_sentence(item: ItemFacts, row: Mapping[str, Any]) -> Reason:
    """Why a cold item's score rests on little: the model has not trained on it yet, so its
    content and the live counts since it arrived are all the ranker has (models.cold_items)."""
    users = row.get("item_users")
    users = 0 if users is None or pd.isna(users) else int(users)
    content = " and ".join(word for word, value in (("category", item.category), ("brand", item.brand)) if value)
    live = (f"the {users} {'customer' if users == 1 else 'customers'} who looked at it since it arrived" if users
            else "no customer's activity yet")
    basis = f"its {content}, and {live}" if content else live
    return Reason(f"New in the catalogue: until the next training it is scored from {basis}.", "cold item",
                  0.0, {"cold_item": True, "item_users": users, "category": item.category, "brand": item.brand})


def _topic_weights(contributions: Sequence[Contribution]) -> tuple[dict[str, float], dict[str, float]]:
    """Sum of contributions per topic, and per co-visitation variant."""
    topics: dict[str, float] = {}
    variants: dict[str, float] = {}
    for c in contributions:
        if c.group == "co-visitation":
            topic = "co-visitation"
            variant = c.feature.split("_", 1)[0]
            if variant in _COVIS_VARIANTS:
                variants[variant] = variants.get(variant, 0.0) + c.contribution
        else:
            topic = _TOPIC.get(c.feature)
        if topic:
            topics[topic] = topics.get(topic, 0.0) + c.contribution
    return topics, variants


def build_reasons(customer: CustomerData, item: ItemFacts, row: Mapping[str, Any],
                  contributions: Sequence[Contribution], history: Sequence[HistoryEvidence],
                  attention_share: float, links: list[tuple[str, str, float]], cold_start: bool,
                  norms: ItemNorms | None = None) -> list[Reason]:
    """Two or three sentences for one item, largest topics first; only evidence that exists.
    ``norms``: the shop's item quartiles, so "popular" and "often" are said only where the numbers
    are high for this shop (without them, no such sentence is said)."""
    if cold_start or not customer.events:
        users = row.get("item_users")
        text = "We have no history for you yet, so this list shows the shop's most popular items"
        claims: dict[str, Any] = {"cold_start": True}
        if users is not None and not pd.isna(users) and users > 0:
            text += f"; {int(users)} customers have looked at this one"
            claims["item_users"] = int(users)
        return [Reason(text + ".", "cold start", 0.0, claims)]
    topics, variants = _topic_weights(contributions)
    customer_weight = topics.pop("customer", 0.0)
    reasons = []
    for topic, weight in sorted(topics.items(), key=lambda kv: -kv[1]):
        if weight <= 0 or len(reasons) == MAX_REASONS:
            break
        reason = None
        if topic == "brand" and item.brand:
            reason = _activity_sentence(customer, s.BRAND, item.brand, f"from {item.brand}", topic, weight)
        elif topic == "category" and item.category:
            reason = _activity_sentence(customer, s.CATEGORY, item.category, f"in {s.category_leaf(item.category)}",
                                        topic, weight)
        elif topic == "department" and item.category:
            reason = _department_sentence(customer, _root(item.category), weight)
        elif topic == "co-visitation":
            reason = _covis_sentence(customer, links, variants, weight)
        elif topic == "attention":
            reason = _attention_sentence(history, attention_share, weight, customer.real_time)
        elif topic == "price":
            reason = _price_sentence(customer, item, weight)
        elif customer.real_time or topic not in _TIMED_TOPICS:
            reason = _shop_sentence(topic, row, weight, norms or ItemNorms({}))
        if reason is not None:
            reasons.append(reason)
    if len(reasons) < 2 and customer_weight > 0:
        n_events = len(customer.events)
        reasons.append(Reason(f"Your activity so far ({n_events} {'event' if n_events == 1 else 'events'}) "
                              "makes it a stronger match.", "customer", customer_weight, {"events": n_events}))
    if item.cold:  # first, whatever else speaks for it
        reasons = [_cold_item_sentence(item, row), *reasons[:MAX_REASONS - 1]]
    if not reasons:
        reasons.append(Reason("It completes the list: it scored next best among the items shortlisted for you, "
                              "though no single signal stands out for it.", "rank", 0.0, {}))
    return reasons


def _department_sentence(customer: CustomerData, root: str, weight: float) -> Reason | None:
    counts = _counts(customer.on(ROOT, root))[:2]
    if not counts:
        return None
    return Reason(f"{_did(counts, f'in the {root} department')}.", "department",
                  weight, {"department": root, "counts": {t: n for t, _, n in counts}})
