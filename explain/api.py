"""The explanation entry points the CLI, the API, reports and the dashboard call.

``explain_items`` is the one place an explanation is built: SHAP of the ranker, Integrated
Gradients of the attention network, the attention feature's SHAP split over the history events,
and the reasons. Everything else renders or extends its :class:`ItemExplanation` objects.

Cost per customer (measured in ``bench/explain_faithfulness.py``): one SHAP call for the whole
list, one batched IG run over all items, and three small queries (the customer's events, the
items, the co-visitation links); the profile card is one more query.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from datetime import datetime, timezone
from typing import Any

import duckdb
import numpy as np

from analytics import profiles as prof
from analytics import schema as s
from explain.attributions import attribute_items, history_evidence, split_attention_shap
from explain.compare import compare_items
from explain.counterfactual import counterfactual_for
from explain.reasons import Event, Reason, build_reasons, covis_links, load_customer, load_items
from explain.tree_shap import contributions_of, shap_rows
from explain.types import CustomerExplanation, ItemExplanation
from models.features import ATTENTION_SCORE
from models.hybrid import Recommendation, Recommender
from models.splits import TEMPORAL

__all__ = ["explain_items", "explain_with_reasons", "explain_customer", "explain_recommendation", "compare_items",
           "counterfactual_for", "customer_profile"]

log = logging.getLogger(__name__)

ATTENTION_AGREEMENT = 1e-4  # |IG's network score - the ranker's attention_score feature| allowed


def explain_items(recommender: Recommender, result: Recommendation) -> list[ItemExplanation]:
    """One :class:`ItemExplanation` per item of ``result``, in rank order."""
    return [explanation for explanation, _ in explain_with_reasons(recommender, result)]


def explain_with_reasons(recommender: Recommender,
                         result: Recommendation) -> list[tuple[ItemExplanation, list[Reason]]]:
    """The explanations with each reason's stated facts (``Reason.claims``), for audits and tests."""
    if not result.items:
        return []
    user_id = result.user_id
    frame = result.features
    rows = shap_rows(recommender.ranker, frame)
    item_ids = [item.item_id for item in result.items]
    customer = load_customer(recommender, user_id)
    facts = load_items(recommender, item_ids)
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
                                attention_share, links[item.item_id], result.cold_start)
        out.append((ItemExplanation(
            user_id=user_id, item_id=item.item_id, title=item.title, rank=item.rank, score=item.score,
            base_value=rows.base, contributions=contributions, history=history,
            convergence_delta=pair.delta, attention_share=attention_share, reasons=[r.text for r in reasons],
        ), reasons))
    return out


def _recent_items(events: list[Event], n_steps: int) -> list[str]:
    """Items of the customer's last ``n_steps`` distinct timestamps: a subset of the recent steps
    that seed co-visitation candidates, so a cited link is one the features used."""
    if not events:
        return []
    since = sorted({e.ts for e in events})[-n_steps:][0]
    return sorted({e.item_id for e in events if e.ts >= since})


def explain_recommendation(recommender: Recommender, result: Recommendation, payload: dict) -> dict:
    """``payload`` (``result.to_dict()``) with an ``"explanation"`` object added to every item."""
    by_item = {e.item_id: e for e in explain_items(recommender, result)}
    out = dict(payload)
    out["items"] = [dict(item, explanation=_json_safe(by_item[item["item_id"]].to_dict()))
                    for item in payload.get("items", [])]
    return out


def explain_customer(recommender: Recommender, user_id: str, k: int = 10, *,
                     counterfactuals: bool = False) -> CustomerExplanation:
    """The customer's explained top ``k`` with the profile card (what reports and the lookup page show).

    ``counterfactuals`` also fills each item's ``counterfactual`` sentence; each is verified by
    re-scoring (about a second per item), so it is meant for reports, not for interactive pages.
    """
    result = recommender.recommend(user_id, k)
    items = explain_items(recommender, result)
    if counterfactuals and not result.cold_start:
        items = [dataclasses.replace(item, counterfactual=counterfactual_for(recommender, user_id, item.item_id,
                                                                             k).sentence) for item in items]
    return CustomerExplanation(
        user_id=user_id,
        cold_start=result.cold_start,
        generated_at=datetime.now(timezone.utc),
        model_version=recommender.artifact.path.name,
        profile=customer_profile(recommender, user_id),
        items=items,
    )


def customer_profile(recommender: Recommender, user_id: str) -> dict[str, Any]:
    """The profile card from the shop's ``user_profiles`` (built as of all events, i.e. the
    serving time). Order-only data has no meaningful recency or purchase days: those are None."""
    real_time = recommender.artifact.metadata.get("protocol") == TEMPORAL
    columns = [prof.RFM_SEGMENT, prof.N_EVENTS, prof.COUNT_COLUMNS[s.PURCHASE], prof.RECENCY_DAYS,
               prof.FREQUENCY, prof.MONETARY, prof.TOP_CATEGORIES, prof.TOP_BRANDS,
               prof.BUY_PRICE_P25, prof.BUY_PRICE_MEDIAN, prof.BUY_PRICE_P75,
               prof.VIEW_PRICE_P25, prof.VIEW_PRICE_MEDIAN, prof.VIEW_PRICE_P75, prof.LAST_ACTIVE]
    with recommender.connection() as con:
        try:
            row = con.execute(f"SELECT {', '.join(columns)} FROM {prof.USER_PROFILES} WHERE {s.USER_ID} = ?",
                              [user_id]).fetchone()
        except duckdb.CatalogException:  # a shop whose profiles were never built
            log.info("no %s table: the profile card is empty", prof.USER_PROFILES)
            row = None
    if row is None:
        return {"user_id": user_id, "segment": None, "n_events": 0, "n_purchases": 0, "recency_days": None,
                "frequency": None, "monetary": None, "favourite_categories": [], "favourite_brands": [],
                "price_band": None, "time_based": real_time, "last_active": None}
    values = dict(zip(columns, row))
    bought = values[prof.BUY_PRICE_MEDIAN] is not None
    prefix = "buy" if bought else "view"
    band = None
    if values[f"{prefix}_price_median"] is not None:
        band = {"basis": "bought" if bought else "viewed", "p25": values[f"{prefix}_price_p25"],
                "median": values[f"{prefix}_price_median"], "p75": values[f"{prefix}_price_p75"]}
    return {
        "user_id": user_id,
        "segment": values[prof.RFM_SEGMENT],
        "n_events": values[prof.N_EVENTS],
        "n_purchases": values[prof.COUNT_COLUMNS[s.PURCHASE]],
        "recency_days": values[prof.RECENCY_DAYS] if real_time else None,
        "frequency": values[prof.FREQUENCY] if real_time else None,
        "monetary": values[prof.MONETARY],
        "favourite_categories": [dict(c) for c in values[prof.TOP_CATEGORIES] or []],
        "favourite_brands": [dict(b) for b in values[prof.TOP_BRANDS] or []],
        "price_band": band,
        "time_based": real_time,
        "last_active": values[prof.LAST_ACTIVE] if real_time else None,
    }


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
