"""Why a search result sits where it does: TreeSHAP of the search ranker, the words it matched,
and sentences a support agent can read out.

The same machinery as recommendations (:mod:`explain.explainer`): the ranker's exact TreeSHAP
contributions, which add up to the result's score, are the evidence; the sentences only name
what they show. Contributions are grouped by the registry's two sides
(:data:`models.search_features.SIDES`): "matches the query" and "fits this customer". The query
side cites the query's words as they stand in the item's fields (only words that occur there);
the customer side cites the customer's own data (how often they chose the brand, the share of
their activity in the category, the recent item that links to this one). Nothing else.

"Why A above B" (:func:`compare_results`) compares two explained results the same way, and says
where a difference in contributions comes from features whose values are equal for both items:
that part is interaction with the other features, not a reason of its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analytics import schema as s
from errors import RecsightError
from models.search_features import SIDES, PersonalContext, search_feature
from models.search_index import SearchIndex
from models.search_ranker import SearchRanker, SearchResult

__all__ = ["SearchContribution", "MatchedField", "SearchExplanation", "SearchComparison", "explain_results",
           "compare_results", "FIELD_NAMES"]

FIELD_NAMES = {s.TITLE: "title", s.CATEGORY: "category", s.BRAND: "brand", s.DESCRIPTION: "description"}
_SHOWN = 6  # contributions a reason may draw on


@dataclass(frozen=True)
class SearchContribution:
    """One search ranker feature's TreeSHAP contribution to one result's score."""

    feature: str
    label: str
    side: str  # "query" or "customer"
    value: float | None
    contribution: float


@dataclass(frozen=True)
class MatchedField:
    """The query's words found in one field of the item, as the field writes them."""

    field: str
    words: tuple[str, ...]  # field words (each occurs verbatim in the field's text)
    query_words: tuple[str, ...]  # the query's words that matched them


@dataclass(frozen=True)
class SearchExplanation:
    """Why one result is at its rank. Invariant (tested): ``base_value + sum(contributions) == score``."""

    item_id: str
    title: str
    rank: int
    score: float
    personalised: bool
    base_value: float
    contributions: list[SearchContribution]
    matched: list[MatchedField]
    similarity: float
    semantic_rank: int  # the item's place in the whole catalogue by closeness of meaning to the query
    reasons: list[str] = field(default_factory=list)

    def side_total(self, side: str) -> float:
        return sum(c.contribution for c in self.contributions if c.side == side)

    def to_dict(self) -> dict[str, Any]:
        top = sorted(self.contributions, key=lambda c: -abs(c.contribution))
        return {  # by hand: dataclasses.asdict's deep copy was a tenth of a search request
            "reasons": list(self.reasons),
            "personalised": self.personalised,
            "base_value": self.base_value,
            "sides": {SIDES[side]: self.side_total(side) for side in SIDES},
            "matched": [{"field": m.field, "words": list(m.words), "query_words": list(m.query_words)}
                        for m in self.matched],
            "similarity": self.similarity,
            "semantic_rank": self.semantic_rank,
            "contributions": [{"feature": c.feature, "label": c.label, "side": c.side, "value": c.value,
                               "contribution": c.contribution} for c in top],
        }


@dataclass(frozen=True)
class SearchComparison:
    """Why result A ranks above (or below) result B for the same query and searcher."""

    a: SearchExplanation
    b: SearchExplanation
    summary: str
    sides: dict[str, float]  # side label -> A's contribution minus B's
    differences: list[tuple[str, float, float | None, float | None]]  # (label, A - B, value A, value B)
    interaction: float  # the part of A - B from features with equal values for both

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "sides": self.sides, "interaction": self.interaction,
                "differences": [{"label": label, "difference": d, "value_a": va, "value_b": vb}
                                for label, d, va, vb in self.differences]}


def explain_results(result: SearchResult, ranker: SearchRanker, index: SearchIndex, item_ids: Sequence[str],
                    personal: PersonalContext | None = None) -> list[SearchExplanation]:
    """Explain the results ``item_ids`` of ``result`` (any of its candidates, not only the top
    ``k``): one TreeSHAP pass over their feature rows."""
    frame = result.frame
    rows = [_row_of(frame, item) for item in item_ids]
    if not rows:
        return []
    picked = frame.iloc[rows].reset_index(drop=True)
    contrib = ranker.contributions(picked, result.personalised)
    features = result.features
    by_id = {c.item_id: c for c in result.retrieval.candidates}
    out = []
    for n, item in enumerate(item_ids):
        values = picked.iloc[n]
        contributions = [SearchContribution(name, search_feature(name).label, search_feature(name).side,
                                            _value(values[name]), float(contrib[n, j]))
                         for j, name in enumerate(features)]
        candidate = by_id[item]
        matched = [MatchedField(f, tuple(dict.fromkeys(w for m in terms for w in m.field_words)),
                                tuple(dict.fromkeys(w for m in terms for w in m.query_words)))
                   for f, terms in candidate.matched.items() if terms]
        explanation = SearchExplanation(
            item_id=item, title=_item_text(index, item, s.TITLE) or item, rank=rows[n] + 1,
            score=float(values["score"]), personalised=result.personalised, base_value=float(contrib[n, -1]),
            contributions=contributions, matched=matched, similarity=float(candidate.similarity),
            semantic_rank=int(candidate.semantic_rank))
        out.append(_with_reasons(explanation, index, personal))
    return out


def compare_results(a: SearchExplanation, b: SearchExplanation) -> SearchComparison:
    """Why ``a`` and ``b`` are in the order they are: the difference of their contributions, by
    side and by feature; features with equal values count as interaction, not as reasons."""
    if a.item_id == b.item_id:
        raise RecsightError("pick two different results to compare")
    if a.personalised != b.personalised:
        raise RecsightError("compare two results of the same search")
    first, second = (a, b) if a.rank <= b.rank else (b, a)
    by_b = {c.feature: c for c in second.contributions}
    diffs, interaction = [], 0.0
    for c in first.contributions:
        other = by_b[c.feature]
        delta = c.contribution - other.contribution
        if c.value == other.value:
            interaction += delta
        elif abs(delta) > 1e-9:
            diffs.append((c.label, delta, c.value, other.value))
    diffs.sort(key=lambda d: -abs(d[1]))
    sides = {SIDES[side]: first.side_total(side) - second.side_total(side) for side in SIDES}
    lead = max(sides, key=lambda label: sides[label])
    words = ", ".join(f"{label.lower()} ({_shown(va)} against {_shown(vb)})"
                      for label, delta, va, vb in diffs if delta > 0)
    summary = (f"“{first.title}” is #{first.rank} and “{second.title}” #{second.rank}: mostly because it "
               f"{lead} better" + (f": {words}." if words else "."))
    if abs(interaction) > 1e-6:
        summary += (f" Of the gap, {interaction:+.3f} comes from features equal for both items (they matter "
                    "only together with the others).")
    return SearchComparison(first, second, summary, sides, diffs[:8], interaction)


# --------------------------------------------------------------------------- sentences


def _with_reasons(item: SearchExplanation, index: SearchIndex, personal: PersonalContext | None) -> SearchExplanation:
    query = _query_reason(item)
    customer = _customer_reason(item, index, personal) if item.personalised else None
    because = query if customer is None else f"{query} and {customer}"
    reasons = [f"Ranked #{item.rank} because {because}."]
    if item.personalised:
        side = item.side_total("customer")
        if customer is None or side <= 0:
            reasons.append("This customer's history moves it little or down: the query decides its place."
                           if side <= 0 else "This customer's history lifts it a little.")
    if item.matched:
        reasons.append(f"By meaning it is the {_ordinal(item.semantic_rank)}closest item to the query "
                       f"(similarity {item.similarity:.2f}).")
    return dataclasses.replace(item, reasons=reasons)


def _query_reason(item: SearchExplanation) -> str:
    if not item.matched:
        return (f"by meaning it is the {_ordinal(item.semantic_rank)}closest item to the query "
                f"(similarity {item.similarity:.2f}), though it shares none of its words")
    order = [s.TITLE, s.CATEGORY, s.BRAND, s.DESCRIPTION]
    matched = sorted(item.matched, key=lambda m: order.index(m.field) if m.field in order else len(order))
    words = {w for m in matched for w in m.words}
    fields = [FIELD_NAMES.get(m.field, m.field) for m in matched]
    listed = ", ".join(f"‘{w}’" for w in sorted(words, key=str.lower)[:4])
    return f"it matches {listed} in the {_and(fields)}"


def _customer_reason(item: SearchExplanation, index: SearchIndex, personal: PersonalContext | None) -> str | None:
    """The customer fact behind the largest positive customer contribution (None: none lifts it)."""
    lifts = sorted((c for c in item.contributions if c.side == "customer" and c.contribution > 0),
                   key=lambda c: -c.contribution)[:_SHOWN]
    for c in lifts:
        sentence = _customer_fact(c, item.item_id, index, personal)
        if sentence:
            return sentence
    return None


def _customer_fact(c: SearchContribution, item_id: str, index: SearchIndex,
                   personal: PersonalContext | None) -> str | None:
    value = c.value or 0.0
    if c.feature == "brand_events" and value >= 1:
        brand = _item_text(index, item_id, s.BRAND)
        return f"the customer has chosen {brand} {_times(int(value))} before" if brand else None
    if c.feature == "brand_share" and value > 0:
        brand = _item_text(index, item_id, s.BRAND)
        return f"{value:.0%} of the customer's activity is on {brand}" if brand else None
    if c.feature == "category_share" and value > 0:
        category = _item_text(index, item_id, s.CATEGORY)
        leaf = s.category_leaf(category)
        return f"{value:.0%} of the customer's activity is in {leaf}" if leaf else None
    if c.feature.startswith("covis_") and value > 0 and personal is not None and personal.links is not None:
        variant = c.feature.removeprefix("covis_")
        found = personal.links.links([variant], list(personal.recent), [item_id]).get(item_id) or []
        if found:
            source = _item_text(index, found[0][1], s.TITLE) or found[0][1]
            return f"shoppers often choose it together with “{source}”, which the customer chose recently"
    if c.feature.startswith("recent_similarity") and personal is not None:
        closest = _closest_recent(index, item_id, personal)
        if closest:
            return f"it is much like “{closest}”, which the customer chose recently"
    if c.feature == "seen_before" and value >= 1:
        return "the customer has chosen this very item before"
    if c.feature == "attention_score":
        return "it fits the customer's recent behaviour"
    return None


def _closest_recent(index: SearchIndex, item_id: str, personal: PersonalContext) -> str | None:
    """The title of the customer's recent item closest in meaning to ``item_id`` (the vectors the
    ``recent_similarity`` features compare)."""
    row = index.row(item_id)
    recent = [(item, r) for item in personal.recent if item != item_id and (r := index.row(item)) is not None]
    if row is None or not recent:
        return None
    similarity = index.vectors[[r for _, r in recent]] @ index.vectors[row]
    best = recent[int(np.argmax(similarity))][0]
    return _item_text(index, best, s.TITLE) or best


def _row_of(frame: pd.DataFrame, item_id: str) -> int:
    hits = np.flatnonzero(frame[s.ITEM_ID].to_numpy() == item_id)
    if not len(hits):
        raise RecsightError(f"item {item_id!r} is not among this search's results")
    return int(hits[0])


def _item_text(index: SearchIndex, item_id: str, column: str) -> str | None:
    row = index.row(item_id)
    if row is None or column not in index.items.columns:
        return None
    value = index.items[column].iloc[row]
    return None if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip() \
        else str(value)


def _value(value: object) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) else number


def _ordinal(n: int) -> str:
    if n == 1:
        return ""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix} "


def _shown(value: float | None) -> str:
    return "none" if value is None else f"{value:.3g}"


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _and(words: Sequence[str]) -> str:
    words = list(dict.fromkeys(words))
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
