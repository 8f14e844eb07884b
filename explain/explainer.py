"""The explanation entry point: what the use cases call to explain a list of recommendations.

``explain_with_reasons`` is the one place an explanation is built: SHAP of the ranker, Integrated
Gradients of the attention network, the attention feature's SHAP split over the history events,
and the reasons. Everything else renders or extends its :class:`ItemExplanation` objects; compare
and counterfactual take them as they are, so no request computes an explanation twice.

Cost per customer (measured in ``bench/explain_faithfulness.py``): one SHAP call for the whole
list, one batched IG run over all items, and three small queries (the customer's events, the
items, the co-visitation links).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from errors import RecsightError
from explain.attributions import attribute_items, history_evidence, split_attention_shap
from explain.reasons import CustomerData, Event, Reason, build_reasons, covis_links, load_evidence
from explain.tree_shap import contributions_of, shap_rows
from explain.types import ItemExplanation
from models.features import ATTENTION_SCORE
from models.serving import Recommendation, Recommender

__all__ = ["ALL_CANDIDATES", "explain_items", "explain_with_reasons", "explain_ranked", "explanation_payload"]

log = logging.getLogger(__name__)

ATTENTION_AGREEMENT = 1e-4  # |IG's network score - the ranker's attention_score feature| allowed
ALL_CANDIDATES = 1_000_000  # a k larger than any candidate set: rank every candidate


def explain_items(recommender: Recommender, result: Recommendation, *,
                  customer: CustomerData | None = None) -> list[ItemExplanation]:
    """One :class:`ItemExplanation` per item of ``result``, in the order of ``result.items``."""
    return [explanation for explanation, _ in explain_with_reasons(recommender, result, customer=customer)]


def explain_with_reasons(recommender: Recommender, result: Recommendation, *,
                         customer: CustomerData | None = None) -> list[tuple[ItemExplanation, list[Reason]]]:
    """The explanations with each reason's stated facts (``Reason.claims``), for audits and tests.

    ``customer`` is the customer's data when the caller has already loaded it (a counterfactual
    reads it too); else it is loaded here.
    """
    if not result.items:
        return []
    user_id = result.user_id
    frame = result.features
    rows = shap_rows(recommender.ranker, frame)
    item_ids = [item.item_id for item in result.items]
    customer, facts = load_evidence(recommender, user_id, item_ids, customer)
    histories = recommender.histories([user_id])
    pairs = attribute_items(recommender.attention, histories, user_id, item_ids)
    recent = _recent_items(customer.events, recommender.config.candidates.n_recent)
    links = covis_links(recommender, recent, item_ids)
    titles = {e.item_id: e.title for e in customer.events}
    attention_column = rows.features.index(ATTENTION_SCORE) if ATTENTION_SCORE in rows.features else None
    out = []
    for i, (item, pair) in enumerate(zip(result.items, pairs)):
        phi = float(rows.values[i, attention_column]) if attention_column is not None else 0.0
        if attention_column is not None and abs(pair.score - rows.inputs[i, attention_column]) > ATTENTION_AGREEMENT:
            log.warning("attention score of %s differs from the ranker's feature by %.2e", item.item_id,
                        abs(pair.score - rows.inputs[i, attention_column]))
        history = history_evidence(histories, user_id, pair, split_attention_shap(phi, pair.attributions), titles)
        total = float(np.abs(rows.values[i]).sum())
        attention_share = abs(phi) / total if total > 0 else 0.0
        contributions = contributions_of(rows, i)
        reasons = build_reasons(customer, facts[item.item_id], frame.iloc[i].to_dict(), contributions, history,
                                attention_share, links[item.item_id], result.cold_start, recommender.item_norms)
        out.append((ItemExplanation(
            user_id=user_id, item_id=item.item_id, title=item.title, rank=item.rank, score=item.score,
            base_value=rows.base, contributions=contributions, history=history,
            convergence_delta=pair.delta, attention_share=attention_share, reasons=[r.text for r in reasons],
            feature_values=_feature_values(rows.features, rows.inputs[i]),
        ), reasons))
    return out


def _recent_items(events: list[Event], n_steps: int) -> list[str]:
    """Items of the customer's last ``n_steps`` distinct timestamps: a subset of the recent steps
    that seed co-visitation candidates, so a cited link is one the features used."""
    if not events:
        return []
    since = sorted({e.ts for e in events})[-n_steps:][0]
    return sorted({e.item_id for e in events if e.ts >= since})


def explanation_payload(recommender: Recommender, result: Recommendation, payload: dict) -> dict:
    """``payload`` (``result.to_dict()``) with an ``"explanation"`` object added to every item."""
    by_item = {e.item_id: e for e in explain_items(recommender, result)}
    out = dict(payload)
    out["items"] = [dict(item, explanation=_json_safe(by_item[item["item_id"]].to_dict()))
                    for item in payload.get("items", [])]
    return out


def _feature_values(features: Sequence[str], inputs: np.ndarray) -> dict[str, float | None]:
    """Every ranker feature's value for one row (None where missing): a comparison needs the
    values of features that did not move this item's score but did move the other's."""
    return {name: None if math.isnan(value) else float(value) for name, value in zip(features, inputs.tolist())}


def explain_ranked(recommender: Recommender, user_id: str, item_ids: Sequence[str], *,
                   customer: CustomerData | None = None) -> list[ItemExplanation]:
    """Explanations of ``item_ids`` (in that order) at their ranks in the customer's whole
    candidate ranking: what a comparison or a counterfactual of any candidate starts from.

    Only the named items are explained (one SHAP call, one IG run); each keeps its rank and score
    in the full list. Raises ``RecsightError`` for an item the ranker does not score.
    """
    full = recommender.recommend(user_id, ALL_CANDIDATES)
    position = {item.item_id: i for i, item in enumerate(full.items)}
    for item_id in item_ids:
        if item_id not in position:
            raise RecsightError(f"item {item_id!r} is not among this customer's candidates, "
                                "so the ranker does not score it")
    rows = [position[item_id] for item_id in item_ids]
    chosen = Recommendation(full.user_id, full.cold_start, [full.items[i] for i in rows],
                            full.features.iloc[rows].reset_index(drop=True))
    return explain_items(recommender, chosen, customer=customer)


def _json_safe(value: Any) -> Any:
    """NaN and infinities become None, numpy scalars Python numbers: strict JSON everywhere."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
