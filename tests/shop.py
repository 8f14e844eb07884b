"""The one trained shop of a test session, shared by every test package that needs a trained model.

The demo path in small: a synthetic shop (400 customers, 600 items, 90 days, seed 11) -> ingest
-> customer profiles -> ``workflows.training.train_shop`` with the quick configuration on one
thread (``ONE_THREAD``, tests/training.py), plus two customers in the users table without any event (cold starts): one
by pseudonym (:data:`COLD_USER`), one by shop id (:data:`COLD_RAW`). Neither is part of the data
fingerprint, so the trained model fits the database.

Why this size: the explanation tests check explanations against the causes the synthetic shop
plants (``synth/truth/``) and need at least 16 customers with 8 events or more and enough
planted favourites among their recommendations; fewer items or days thin those out. They also
need the quick model itself: with the cut-down ``FAST`` configuration the attention network's
top-attributed events no longer move its score twice as much as random ones
(tests/explain/test_attributions.py). Training takes 10-15 s on one thread.

Built once per session (``trained_shop`` in tests/conftest.py) and never changed: a test that
writes into the database or the models folder works on :meth:`TrainedShop.copy_to`.

Used by tests/explain, tests/service (``api_app``), tests/faults (a copy per test), tests/pages,
tests/browser (``live_app``), tests/workflows, and the live-serving tests of tests/models
(co-visitation and cold items on a copy: they need a trained model, not planted facts). The rest
of tests/models trains on hand-made shops whose assertions name their customers and items (a
walk through a 30-item catalogue, an order-only shop for leave-one-out, exactly 60 customers) or,
for the attention network, on planted sequences in memory; a synthetic shop cannot state those.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow.parquet as pq

from analytics import schema
from analytics.ingest import ingest_paths
from analytics.privacy import pseudonymise
from analytics.profile_build import refresh_profiles
from analytics.synth import generate_shop
from settings import Settings
from tests.conftest import TEST_SECRET
from tests.training import ONE_THREAD, fast_train

if TYPE_CHECKING:
    from models.serving import Recommender

__all__ = ["COLD_RAW", "COLD_USER", "N_DAYS", "N_ITEMS", "N_USERS", "SEED", "TrainedShop", "build_trained_shop"]

N_USERS, N_ITEMS, N_DAYS, SEED = 400, 600, 90, 11
COLD_USER = "c_explain_cold_start"  # a pseudonym in the users table, without events
COLD_RAW = "NEW-CUSTOMER-1"  # a shop id whose pseudonym is in the users table, without events


@dataclass(frozen=True)
class TrainedShop:
    """A shop database, its trained models and the synthetic export it was built from."""

    folder: Path
    export: Path  # the synth output: events/items/users Parquet with the raw customer ids, truth/
    db: Path  # folder/shop.duckdb; the export is also reachable as db.parent / "synth"
    models: Path
    raw_ids: tuple[str, ...]  # every customer id of users.parquet, as the shop's own systems know them

    def pseudonym(self, raw_id: str) -> str:
        return pseudonymise(raw_id, TEST_SECRET)

    def listed_customers(self, recommender: Recommender) -> list[tuple[str, str]]:
        """(raw id, pseudonym) of the customers with a precomputed list, in a fixed order."""
        assert recommender.top is not None
        pairs = [(raw, self.pseudonym(raw)) for raw in sorted(self.raw_ids)]
        return [(raw, user) for raw, user in pairs if user in recommender.top.spans]

    def settings(self, state: Path) -> Settings:
        """Settings serving this shop, with users (one per role) and audit log in ``state``."""
        from tests.service.support import write_users

        return Settings(db_path=self.db, models_dir=self.models, secret=TEST_SECRET,
                        users_file=write_users(state / "users.json"), audit_db=state / "audit.duckdb")

    def copy_to(self, folder: Path, models_only: bool = False) -> TrainedShop:
        """A copy to change: the models folder, and the database unless ``models_only``.

        The export is not copied (nothing writes it); ``folder / "synth"`` links to it, so code
        that finds the export beside the database still does.
        """
        folder.mkdir(parents=True, exist_ok=True)
        db = self.db
        if not models_only:
            db = folder / self.db.name
            shutil.copy2(self.db, db)
            os.symlink(self.export, folder / "synth", target_is_directory=True)
        shutil.copytree(self.models, folder / self.models.name)
        return TrainedShop(folder, self.export, db, folder / self.models.name, self.raw_ids)


def build_trained_shop(folder: Path) -> TrainedShop:
    export, db, models = folder / "synth", folder / "shop.duckdb", folder / "models"
    generate_shop(export, n_users=N_USERS, n_items=N_ITEMS, n_days=N_DAYS, seed=SEED)
    ingest_paths(db, "generic", [export], secret=TEST_SECRET)
    refresh_profiles(db)
    with duckdb.connect(str(db)) as con:  # known customers without events: cold starts
        con.executemany(f"INSERT INTO {schema.USERS} ({schema.USER_ID}) VALUES (?)",
                        [(COLD_USER,), (pseudonymise(COLD_RAW, TEST_SECRET),)])
    # The hybrid is pinned: the explanation tests exercise its attention feature (the choice on
    # validation is tested on shops of its own, tests/models/test_training.py).
    fast_train(db, models, ONE_THREAD, serve="hybrid")
    users = pq.read_table(export / "users.parquet", columns=[schema.USER_ID]).column(0).to_pylist()
    return TrainedShop(folder, export, db, models, tuple(str(u) for u in users))


def untouched_category(rec: Recommender, user_id: str) -> tuple[str, list[str]]:
    """A category the customer never touched, and its four most popular items known to the model
    (events there must move the customer's list)."""
    cat, item, events, items = schema.CATEGORY, schema.ITEM_ID, schema.EVENTS, schema.ITEMS
    with rec.connection() as con:
        row = con.execute(
            f"""WITH touched AS (SELECT DISTINCT i.{cat} FROM {events} e JOIN {items} i USING ({item})
                                 WHERE e.{schema.USER_ID} = ?),
                     pop AS (SELECT i.{cat}, e.{item}, count(*) AS n FROM {events} e
                             JOIN {items} i USING ({item}) WHERE i.{cat} IS NOT NULL GROUP BY ALL)
                SELECT {cat}, list({item} ORDER BY n DESC, {item})[1:4] FROM pop
                WHERE {cat} NOT IN (SELECT {cat} FROM touched WHERE {cat} IS NOT NULL)
                GROUP BY ALL HAVING count(*) >= 4 ORDER BY sum(n) DESC, 1 LIMIT 1""", [user_id]).fetchone()
    assert row is not None, "the test shop should have a category this customer never touched"
    return row[0], list(row[1])
