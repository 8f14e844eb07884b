"""Explaining a customer: the use cases behind the lookup page, the reports, the API and the CLI.

Each explanation is computed once per request (:mod:`explain.explainer`) and then handed, as it
is, to what extends it: the counterfactual search and the comparison of two items run no SHAP or
Integrated Gradients of their own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analytics.customers import resolve_customer
from analytics.profile_card import ProfileCard, profile_card
from explain.compare import compare_items, require_distinct
from explain.counterfactual import counterfactual_for, require_positive
from explain.explainer import explain_ranked
from explain.reasons import load_customer
from explain.types import Comparison, Counterfactual, CustomerExplanation
from models.serving import Recommender
from models.splits import TEMPORAL
from workflows import merchandising, variants
from workflows.report_counterfactuals import with_counterfactuals

__all__ = ["explain_customer", "customer_card", "compare", "counterfactual", "recommend", "recommendation_payload",
           "format_recommendations"]


def explain_customer(recommender: Recommender, user_id: str, k: int = 10, *,
                     counterfactuals: bool = False) -> CustomerExplanation:
    """The customer's explained top ``k`` with the profile card (what reports and the lookup page show),
    stamped with the moment its data is as of (``as_of``: the reference date a report states).

    ``counterfactuals`` also fills each item's ``counterfactual`` sentences (what would take it out
    of the top ``k``, and what would lift it); each is verified by re-scoring, several seconds for a
    list even with the re-scorings shared between its items, so it is meant for reports, not for
    interactive pages (:func:`workflows.report_counterfactuals.with_counterfactuals`).
    """
    result = merchandising.merchandised(recommender, user_id, k)  # after the shop's rules
    customer = load_customer(recommender, user_id) if counterfactuals and not result.cold_start else None
    items = merchandising.explain_merchandised(recommender, result, customer=customer)
    if customer is not None:
        items = with_counterfactuals(recommender, items, k, customer)
    profile = customer_card(recommender, user_id).to_dict()
    return CustomerExplanation(
        user_id=user_id,
        cold_start=result.cold_start,
        generated_at=datetime.now(UTC),
        model_version=recommender.artifact.path.name,
        profile=profile,
        items=items,
        as_of=recommender.as_of(user_id),
    )


def compare(recommender: Recommender, user_id: str, item_a: str, item_b: str) -> Comparison:
    """Why ``item_a`` ranks above (or below) ``item_b`` for the customer: both items are explained
    once, at their ranks in the customer's whole candidate list, and compared."""
    require_distinct(item_a, item_b)
    a, b = explain_ranked(recommender, user_id, [item_a, item_b])
    return compare_items(a, b)


def counterfactual(recommender: Recommender, user_id: str, item_id: str, k: int = 10) -> Counterfactual:
    """What would take ``item_id`` out of the customer's top ``k`` (verified by re-scoring), and
    what would lift it: the item is explained once and the customer's data read once."""
    require_positive(k)
    customer = load_customer(recommender, user_id)
    (explanation,) = explain_ranked(recommender, user_id, [item_id], customer=customer)
    return counterfactual_for(recommender, explanation, k, customer=customer)


def customer_card(recommender: Recommender, user_id: str) -> ProfileCard:
    """The customer's profile card as the API and the reports show it (the profiles are built as
    of all events, i.e. the serving time). Order-only shops (a leave-one-out model) have no
    meaningful recency or purchase days: the card's JSON leaves them out."""
    time_based = recommender.artifact.metadata.get("protocol") == TEMPORAL
    with recommender.connection() as con:
        return profile_card(con, user_id, time_based)


def recommend(db_path: Path, models_dir: Path, user: str, k: int = 10, explain: bool = False,
              secret: str = "") -> dict[str, Any]:
    """Top ``k`` items for one customer (shop id or pseudonym), as the JSON of ``recommend --json``;
    with ``explain``, each item carries its explanation. Loads the model for this one call (the
    command line); servers keep a loaded recommender instead (:mod:`workflows.recommenders`)."""
    recommender = Recommender.load(Path(db_path), Path(models_dir))
    served = None
    try:
        with recommender.connection() as con:
            user_id = resolve_customer(con, user, secret)
        served = variants.served_once(Path(db_path), Path(models_dir), user_id, recommender)
        payload = recommendation_payload(served.recommender, user_id, k, explain)
        payload.update(served.to_dict())  # the experiment and variant behind the list, as the API says
        return payload
    finally:
        recommender.close()
        if served is not None and served.recommender is not recommender:
            served.recommender.close()


def recommendation_payload(recommender: Recommender, user_id: str, k: int = 10,
                           explain: bool = False) -> dict[str, Any]:
    """The customer's top ``k`` as JSON (what ``recommend --json`` prints and the API answers);
    with ``explain``, each item carries its explanation, computed once for the whole list."""
    result = merchandising.merchandised(recommender, user_id, k)  # after the shop's rules
    payload = merchandising.list_payload(result)
    if explain:
        payload = merchandising.explanation_payload(recommender, result, payload)
    return payload


def format_recommendations(result: dict[str, Any]) -> str:
    """A readable list: rank, score, item id and title (and the reasons, when explained)."""
    head = f"customer {result['user_id']}" + (" (cold start: popular items)" if result["cold_start"] else "")
    lines = [head]
    for item in result["items"]:
        score = "   added" if item["score"] is None else f"{item['score']:>8.4f}"  # added by a rule: no score
        lines.append(f"{item['rank']:>3}. {score}  {item['item_id']}  {item['title']}")
        if item.get("rule_note"):  # what a merchandising rule did, apart from the model's reasons
            lines.append(f"       [rule] {item['rule_note']}")
        for reason in (item.get("explanation") or {}).get("reasons", []):
            lines.append(f"       - {reason}")
    if not result["items"]:
        lines.append("  (no items to recommend)")
    return "\n".join(lines)
