"""The one explanation type that reasons, figures, reports, the API and the dashboard all read.

An explanation is built once per recommended item (:mod:`explain.explainer`) and then only rendered, so
every surface shows the same numbers: the SHAP contributions that add up to the ranker's score,
the history events that drove the attention network, and the sentences derived from both.
Everything here is plain data (no models, no connections), cheap to cache and to serialise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "Contribution", "HistoryEvidence", "ItemExplanation", "Difference", "Comparison",
    "Counterfactual", "CustomerExplanation",
]


@dataclass(frozen=True)
class Contribution:
    """One ranker feature's TreeSHAP contribution to one item's score."""

    feature: str  # column name in models.features.FEATURES
    label: str  # the registry's plain words ("How much of your shopping is this brand")
    group: str  # the registry's group ("affinity", "co-visitation", ...)
    value: float | None  # the feature's value for this user and item (None where missing)
    contribution: float  # SHAP value in raw-score units

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "label": self.label, "value": self.value,
                "contribution": self.contribution}


@dataclass(frozen=True)
class HistoryEvidence:
    """One past event of the customer and how much it drove the attention network's score."""

    item_id: str
    title: str
    event_type: str
    ts: datetime
    attribution: float  # Integrated Gradients, summed over the event's embedding dimensions
    attention: float  # the activation unit's weight for this event and the target item
    score_share: float = 0.0  # this event's part of the attention feature's SHAP contribution

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "event_type": self.event_type, "ts": self.ts.isoformat(),
                "attribution": self.attribution, "attention": self.attention}


@dataclass(frozen=True)
class ItemExplanation:
    """Why one item sits at its rank for one customer.

    Invariant (tested): ``base_value + sum(c.contribution for c in contributions) == score``
    to 1e-6, where ``score`` is the ranker's raw score shown in the list.
    """

    user_id: str  # pseudonym, never a raw shop id
    item_id: str
    title: str
    rank: int
    score: float
    base_value: float
    contributions: list[Contribution]  # sorted by |contribution|, largest first
    history: list[HistoryEvidence]  # sorted by |attribution|, largest first
    convergence_delta: float  # Integrated Gradients completeness error for this item
    attention_share: float  # share of sum(|SHAP|) carried by the attention-score feature, 0..1
    reasons: list[str] = field(default_factory=list)
    counterfactual: str | None = None  # e.g. "Without your views of X and Y it would drop out of the top 10."
    # Every ranker feature's value for this pair (None where missing), also those with no
    # contribution: comparing two items needs them. Not part of ``to_dict``.
    feature_values: dict[str, float | None] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The ``"explanation"`` object of ``recommend --explain --json`` and the API."""
        return {
            "base_value": self.base_value,
            "contributions": [c.to_dict() for c in self.contributions],
            "history": [h.to_dict() for h in self.history],
            "convergence_delta": self.convergence_delta,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Difference:
    """One feature's part in the score gap between two items (A minus B)."""

    feature: str
    label: str
    value_a: float | None
    value_b: float | None
    contribution_a: float
    contribution_b: float

    @property
    def difference(self) -> float:
        return self.contribution_a - self.contribution_b

    @property
    def equal_values(self) -> bool:
        """Both items have the same value: the feature's part of the gap is interaction with the
        features that differ (TreeSHAP splits the trees' joint effects), not a reason of its own."""
        return self.value_a == self.value_b


@dataclass(frozen=True)
class Comparison:
    """Why item A ranks above (or below) item B for one customer."""

    user_id: str
    item_a: str
    item_b: str
    title_a: str
    title_b: str
    score_a: float
    score_b: float
    differences: list[Difference]  # sorted by |difference|, largest first; sums to score_a - score_b
    summary: list[str]  # plain sentences, largest drivers first

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for row, diff in zip(data["differences"], self.differences):
            row["difference"] = diff.difference
            row["equal_values"] = diff.equal_values
        return data


@dataclass(frozen=True)
class Counterfactual:
    """What would change one item's place: the smallest removal that drops it, verified by re-scoring."""

    user_id: str
    item_id: str
    k: int
    removed: list[HistoryEvidence]  # the history events whose removal drops the item out of the top k
    rank_before: int
    rank_after: int | None  # None: out of the candidate list altogether
    verified: bool  # True when re-scoring without ``removed`` confirmed the drop
    raise_hint: str | None  # the single change that would most raise the item, in words
    sentence: str  # the counterfactual in words, for the agent

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["removed"] = [h.to_dict() for h in self.removed]
        return data


@dataclass(frozen=True)
class CustomerExplanation:
    """A customer's whole explained list: what a report, the lookup page and the API render."""

    user_id: str
    cold_start: bool
    generated_at: datetime
    model_version: str
    profile: dict[str, Any]  # the profile card: segment, recency/frequency/monetary, favourites, price band
    items: list[ItemExplanation]
    # The data's reference date: the moment the list, its features and the profile are computed as
    # of (naive UTC, as event times are stored; None where the caller did not say). Reports state it,
    # so "days since" figures can be checked against it.
    as_of: datetime | None = None
