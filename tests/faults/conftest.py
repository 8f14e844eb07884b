from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from analytics import schema
from analytics.synth import generate_shop
from tests.faults.support import Shop
from tests.shop import COLD_RAW, COLD_USER, N_DAYS, N_ITEMS, N_USERS, SEED, TrainedShop
from workflows.recommenders import forget_all


@pytest.fixture(scope="session")
def base_shop(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """The session's trained shop without its two cold-start customers (the ingest tests count
    one profile per customer), and a later export of the same shop; never modified itself (every
    fault test works on its own copy, ``shop``). The users table is not part of the data
    fingerprint: the trained models still fit."""
    folder = tmp_path_factory.mktemp("fault-shop")
    db = folder / trained_shop.db.name
    shutil.copy2(trained_shop.db, db)
    with duckdb.connect(str(db)) as con:
        con.execute(f"DELETE FROM {schema.USERS} WHERE {schema.USER_ID} IN (?, ?)",
                    [COLD_USER, trained_shop.pseudonym(COLD_RAW)])
        con.execute("CHECKPOINT")
    later = folder / "later-export"
    generate_shop(later, n_users=N_USERS + 20, n_items=N_ITEMS, n_days=N_DAYS, seed=SEED + 1)
    return Shop(folder, db, trained_shop.models, trained_shop.export, later)


@pytest.fixture
def shop(base_shop: Shop, tmp_path: Path) -> Iterator[Shop]:
    """This test's own copy of the trained shop; loaded recommenders are dropped afterwards."""
    copy = base_shop.copy_to(tmp_path / "shop")
    yield copy
    forget_all()
