"""workflows.recommenders: the recommender a server process shares between requests.

What an operator relies on: requests share one loaded recommender; a finished training run
(a new ``CURRENT``) or an ingest (a new shop file) is picked up by the next request without a
restart, while a request holding the old one can finish with it; a missing shop or model is one
clear line that says what to run, on every request, until it is fixed.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from analytics import schema
from analytics.db import rewriting
from errors import RecsightError
from models import registry
from settings import Settings
from tests.conftest import TEST_SECRET
from tests.shop import COLD_RAW, TrainedShop
from workflows.recommenders import forget_all, recommender_for, resolve_customer


@pytest.fixture
def shop(trained_shop: TrainedShop, tmp_path: Path) -> Iterator[TrainedShop]:
    """This test's own copy of the session's shop; loaded recommenders are dropped afterwards."""
    yield trained_shop.copy_to(tmp_path / "shop")
    forget_all()


def _settings(shop: TrainedShop) -> Settings:
    return Settings(db_path=shop.db, models_dir=shop.models, secret=TEST_SECRET)


def _busy_customer(shop: TrainedShop) -> str:
    with duckdb.connect(str(shop.db), read_only=True) as con:
        return con.execute(f"SELECT {schema.USER_ID} FROM {schema.EVENTS} GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
                           ).fetchone()[0]


def _publish_copy_of_current(models: Path, name: str) -> None:
    """A second version (a copy of the current one) made current, as a finished training run does."""
    current = registry.current(models)
    shutil.copytree(models / registry.VERSIONS_DIR / current, models / registry.VERSIONS_DIR / name)
    (models / registry.CURRENT_FILE).write_text(name + "\n")


def test_requests_share_one_recommender_until_a_new_version_is_current(shop: TrainedShop) -> None:
    settings = _settings(shop)
    first = recommender_for(settings)
    relative = Settings(db_path=Path(shop.db.parent.name) / shop.db.name, models_dir=shop.models, secret=TEST_SECRET)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(shop.db.parent.parent)
        assert recommender_for(relative) is first  # the same files, however they are named
    assert recommender_for(settings) is first

    user = _busy_customer(shop)
    expected = first.recommend(user, 5).items
    _publish_copy_of_current(shop.models, "29990101-000000-000000")
    second = recommender_for(settings)
    assert second is not first and second.artifact.path.name == "29990101-000000-000000"
    assert recommender_for(settings) is second
    assert second.recommend(user, 5).items == expected
    assert first.recommend(user, 5).items == expected  # a request holding the old one finishes with it


def test_a_new_shop_file_is_picked_up_by_the_next_request(shop: TrainedShop) -> None:
    settings = _settings(shop)
    before = recommender_for(settings)
    newcomer = "c_" + "e" * 16
    with pytest.raises(RecsightError, match="unknown customer"):
        before.recommend(newcomer, 3)
    with rewriting(shop.db) as rewrite:  # an ingest: a new file (users are not in the data fingerprint)
        rewrite.con.execute(f"INSERT INTO {schema.USERS} ({schema.USER_ID}) VALUES (?)", [newcomer])
    after = recommender_for(settings)
    assert after is not before
    assert after.recommend(newcomer, 3).cold_start  # the new customer is known now


def test_a_missing_shop_or_model_is_one_line_on_every_request_until_fixed(shop: TrainedShop, tmp_path: Path) -> None:
    def error(settings: Settings) -> str:
        with pytest.raises(RecsightError) as caught:
            recommender_for(settings)
        assert "\n" not in str(caught.value)
        return str(caught.value)

    settings = _settings(shop)
    missing_db = Settings(db_path=tmp_path / "none.duckdb", models_dir=shop.models, secret=TEST_SECRET)
    assert "run `python cli.py ingest` first" in error(missing_db)
    untrained = Settings(db_path=shop.db, models_dir=tmp_path / "no-models", secret=TEST_SECRET)
    assert "run `python cli.py train` first" in error(untrained)

    pointer = shop.models / registry.CURRENT_FILE
    good = pointer.read_text()
    pointer.write_text("20990101-000000-gone\n")  # a version deleted by hand
    for _ in range(2):  # every request says so; no stale recommender is served quietly
        assert "missing version" in error(settings)
    pointer.unlink()
    assert "run `python cli.py train` first" in error(settings)
    pointer.write_text(good)
    assert recommender_for(settings).recommend(_busy_customer(shop), 3).items  # fixed: no restart needed


def test_forget_all_closes_what_was_loaded(shop: TrainedShop) -> None:
    settings = _settings(shop)
    loaded = recommender_for(settings)
    forget_all()
    with pytest.raises(duckdb.Error):
        loaded.con.execute("SELECT 1")  # closed
    fresh = recommender_for(settings)
    assert fresh is not loaded and fresh.recommend(_busy_customer(shop), 3).items


def test_customers_are_named_by_shop_id_or_pseudonym(shop: TrainedShop) -> None:
    recommender = recommender_for(_settings(shop))
    raw = shop.raw_ids[0]
    pseudonym = shop.pseudonym(raw)
    assert resolve_customer(recommender, raw, TEST_SECRET) == pseudonym
    assert resolve_customer(recommender, f"  {raw} ", TEST_SECRET) == pseudonym
    assert resolve_customer(recommender, pseudonym, TEST_SECRET) == pseudonym
    assert recommender.recommend(resolve_customer(recommender, COLD_RAW, TEST_SECRET), 3).cold_start
    with pytest.raises(RecsightError, match="unknown customer"):
        resolve_customer(recommender, "NOBODY-AT-ALL", TEST_SECRET)
