"""The shopper preview: the customer's list as the shop would show it to them.

An agent on a call shares what the customer would see, not the analyst's view: per item its
title, category, brand and price (in the shop's currency, ``settings.currency``), how strong a
match it is in words, and the one reason that speaks most for it. Built from the same explanation
the lookup page shows (:func:`workflows.lookup.explanation_for`), so the preview never disagrees
with the cards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analytics import schema as s
from models.recommendation import match_words
from settings import Settings
from workflows.lookup import customer_connection, explanation_for, item_details
from workflows.variants import served_for

__all__ = ["PreviewCard", "shopper_preview"]

_NO_REASON = "Picked for you from what shoppers like you chose."
_FEATURED = "Featured by the shop."  # an item a merchandising rule added


@dataclass(frozen=True)
class PreviewCard:
    """One item as the shopper would see it."""

    rank: int
    item_id: str
    title: str
    category: str | None  # the leaf of the category path
    brand: str | None
    price: float | None
    currency: str  # the ISO 4217 code ``price`` is in (the shop's: ``settings.currency``)
    match: str | None  # "Strong match" and the like; None where the model version has no scale
    reason: str  # the strongest reason, or a neutral line where no single reason stands out


def shopper_preview(settings: Settings, user_id: str, version: str | None = None) -> list[PreviewCard]:
    """The customer's list as preview cards, in rank order (refused, like the explanation, when
    the model changed since the lookup ``version``)."""
    explanation = explanation_for(settings, user_id, version)
    scale = served_for(settings, user_id).recommender.match_scale
    with customer_connection(settings, user_id) as con:
        details = item_details(con, [item.item_id for item in explanation.items])
    cards = []
    for item in explanation.items:
        category, brand, price = details.get(item.item_id, (None, None, None))
        added = math.isnan(item.score)  # an item a merchandising rule added: no model score
        match = None if scale is None or added else match_words(scale.strength(item.score)).capitalize()
        cards.append(PreviewCard(item.rank, item.item_id, item.title,
                                 s.category_leaf(category),
                                 brand or None, None if price is None else float(price), settings.currency, match,
                                 item.reasons[0] if item.reasons else _FEATURED if added else _NO_REASON))
    return cards
