"""One small trained synthetic shop per test session, shared by the explanation tests.

The synthetic shop plants each customer's favourite categories and brands (truth/), so the
tests can check explanations against real causes. Training uses the ``--quick`` configuration
with one thread: on a shared 2-core machine two OpenMP threads can stall for tens of seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import duckdb
import pytest

from analytics import schema as s
from analytics.ingest import ingest_paths
from analytics.synth import generate_shop
from explain.api import explain_with_reasons
from explain.reasons import Reason
from explain.types import ItemExplanation
from models.hybrid import Recommendation, Recommender
from tests.conftest import TEST_SECRET
from tests.training import ONE_THREAD, fast_train

COLD_USER = "c_explain_cold_start"


class Shop(NamedTuple):
    db: Path
    models: Path
    raw: Path  # the synth output folder (truth/ inside)


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    folder = tmp_path_factory.mktemp("explain-shop")
    generate_shop(folder / "raw", n_users=400, n_items=600, n_days=90, seed=11)
    db = folder / "shop.duckdb"
    ingest_paths(db, "generic", [folder / "raw"], secret=TEST_SECRET)
    con = duckdb.connect(str(db))
    con.execute(f"INSERT INTO {s.USERS} ({s.USER_ID}) VALUES (?)", [COLD_USER])  # known, no events
    con.close()
    fast_train(db, folder / "models", ONE_THREAD)
    return Shop(db, folder / "models", folder / "raw")


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
