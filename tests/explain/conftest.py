"""The explanation tests' view of the session's trained shop (tests/shop.py).

The synthetic shop plants each customer's favourite categories and brands (``synth/truth/``), so
the tests can check explanations against real causes; :data:`COLD_USER` is a known customer
without events (a cold start).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from analytics import schema as s
from explain.explainer import explain_with_reasons
from explain.reasons import Reason
from explain.types import ItemExplanation
from models.serving import Recommendation, Recommender
from tests.shop import COLD_USER, TrainedShop

__all__ = ["COLD_USER", "Shop", "Explained"]


class Shop(NamedTuple):
    db: Path
    models: Path
    raw: Path  # the synth output folder (truth/ inside)


@pytest.fixture(scope="session")
def shop(trained_shop: TrainedShop) -> Shop:
    """The session's trained shop; read only (copy it with ``trained_shop.copy_to`` to change it)."""
    return Shop(trained_shop.db, trained_shop.models, trained_shop.export)


@pytest.fixture(scope="session")
def recommender(shop: Shop) -> Iterator[Recommender]:
    rec = Recommender.load(shop.db, shop.models)
    yield rec
    rec.close()


@pytest.fixture(scope="session")
def active_users(recommender: Recommender) -> list[str]:
    """Customers with a real history (at least 8 events), most active first, ties by id."""
    with recommender.connection() as con:
        rows = con.execute(f"""SELECT {s.USER_ID} FROM {s.EVENTS} GROUP BY 1 HAVING count(*) >= 8
                               ORDER BY count(*) DESC, 1""").fetchall()
    return [r[0] for r in rows]


class Explained(NamedTuple):
    result: Recommendation
    items: list[tuple[ItemExplanation, list[Reason]]]


@pytest.fixture(scope="session")
def explained(recommender: Recommender) -> Callable[[str], Explained]:
    """A customer's top 10 and its explanations, computed once per session and customer."""
    cache: dict[str, Explained] = {}

    def get(user: str) -> Explained:
        if user not in cache:
            result = recommender.recommend(user, k=10)
            cache[user] = Explained(result, explain_with_reasons(recommender, result))
        return cache[user]

    return get
