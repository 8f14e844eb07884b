"""Experiments in use: customers in different variants are served (and shown, and explained) by
their own variant's model version; every change is audited before it is written; and the
analysis reads the impressions per customer and variant, with CUPED from the pre-period, an SRM
check and the k-anonymity rule."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics import experiments_store as xs
from analytics.experiments_store import Experiment, Variant
from analytics.impressions import ImpressionStore
from analytics.live_store import LiveStore, utc_now
from errors import RecsightError
from models import registry
from models.assignment import assign
from settings import Settings
from tests.conftest import TEST_SECRET
from tests.shop import TrainedShop
from tests.training import fast_train
from workflows import experiments, lookup, variants
from workflows.recommenders import forget_all, recommender_for


@pytest.fixture(scope="module")
def two_versions(trained_shop: TrainedShop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedShop]:
    """A copy of the session's shop with a second, quickly trained version (serving its plain
    ranker) made current; the session's hybrid stays as the older version."""
    shop = trained_shop.copy_to(tmp_path_factory.mktemp("two_versions"))
    fast_train(shop.db, shop.models, serve="ranker")
    assert len(registry.versions(shop.models)) == 2
    yield shop
    forget_all()


def _settings(shop: TrainedShop, state: Path) -> Settings:
    return shop.settings(state)


def _running(shop: TrainedShop, old: str, experiment_id: str = "old-vs-new") -> Experiment:
    """An experiment running now: control on the older version, treatment on the current one."""
    e = Experiment(experiment_id, "Old against new", "The new version lifts click-through.", "click_through",
                   (Variant("control", 0.5, model_version=old), Variant("treatment", 0.5)),
                   start=utc_now())  # after the previous test's experiment stopped: one at a time
    return xs.save(shop.db, e, "alan", now=utc_now() - timedelta(seconds=1))


def test_customers_in_different_variants_get_lists_from_their_own_model_versions(
        two_versions: TrainedShop, tmp_path: Path) -> None:
    settings = _settings(two_versions, tmp_path)
    current = registry.current(two_versions.models)
    old = next(v for v in registry.versions(two_versions.models) if v != current)
    assert variants.served_for(settings, two_versions.pseudonym(two_versions.raw_ids[0])).experiment is None
    e = _running(two_versions, old)
    try:
        listed = two_versions.listed_customers(recommender_for(settings))
        by_variant: dict[str, list[str]] = {}
        for _, user in listed:
            by_variant.setdefault(assign(e, user).name, []).append(user)
        assert set(by_variant) == {"control", "treatment"}
        differ = 0
        for name, version in (("control", old), ("treatment", current)):
            for user in by_variant[name][:5]:
                served = variants.served_for(settings, user)
                assert (served.experiment, served.variant, served.model_version) == ("old-vs-new", name, version)
                assert served.to_dict()["model_version"] == version
                mine = [i.item_id for i in served.recommender.recommend(user, 10).items]
                other = recommender_for(settings, current if version == old else old)
                differ += mine != [i.item_id for i in other.recommend(user, 10).items]
        assert differ > 0  # the two versions rank differently, so serving the right one matters
        assert recommender_for(settings, current) is recommender_for(settings)  # the current one is not loaded twice
    finally:
        xs.stop(two_versions.db, e.id, "alan")


def test_the_customer_page_shows_explains_and_refreshes_the_variant_s_list(
        two_versions: TrainedShop, tmp_path: Path) -> None:
    settings = _settings(two_versions, tmp_path)
    current = registry.current(two_versions.models)
    old = next(v for v in registry.versions(two_versions.models) if v != current)
    e = _running(two_versions, old, "page-check")
    try:
        user = next(u for _, u in two_versions.listed_customers(recommender_for(settings))
                    if assign(e, u).name == "control")
        found = lookup.look_up(user, settings, lambda customer, detail: None)
        assert isinstance(found, lookup.Found)
        assert found.version == old and found.serving is not None
        assert "page-check" in found.serving and "variant control" in found.serving
        assert [i.item_id for i in found.items] == [
            i.item_id for i in recommender_for(settings, old).recommend(user, lookup.K).items]
        explanation = lookup.explanation_for(settings, user, found.version)  # no "model was updated" refusal
        assert [i.item_id for i in explanation.items] == [i.item_id for i in found.items]
    finally:
        xs.stop(two_versions.db, e.id, "alan")
    after = lookup.look_up(user, settings, lambda customer, detail: None)
    assert after.version == current and after.serving is None  # stopped: the current model serves again


def test_each_variant_is_served_under_its_own_rule_set_version(two_versions: TrainedShop, tmp_path: Path) -> None:
    from analytics import rules_store
    from workflows import merchandising

    settings = _settings(two_versions, tmp_path)
    folder = rules_store.rules_folder(two_versions.db)
    for _ in range(2):
        rules_store.save_rules(folder, [], "ann", "an empty rule set")
    assert experiments.choices(settings).rules == ("v2", "v1") and experiments.choices(settings).current_rules == "v2"
    e = xs.save(two_versions.db, Experiment(
        "rules-check", "Rules", "Older rules lift conversion.", "conversion",
        (Variant("control", 0.5), Variant("old-rules", 0.5, rules_version="v1")), start=utc_now()),
        "alan", now=utc_now() - timedelta(seconds=1), known_rules=experiments.choices(settings).rules)
    try:
        users = [u for _, u in two_versions.listed_customers(recommender_for(settings))[:40]]
        for user in users:
            served = variants.served_for(settings, user)
            version = merchandising.rules_for(served.recommender, user).version
            assert (served.variant, served.rules_version, version) in (("control", None, 2), ("old-rules", "v1", 1))
        assert {variants.served_for(settings, u).variant for u in users} == {"control", "old-rules"}
    finally:
        xs.stop(two_versions.db, e.id, "alan")


def test_a_change_is_audited_before_it_is_written_and_not_written_without_its_row(
        trained_shop: TrainedShop, tmp_path: Path) -> None:
    shop = trained_shop.copy_to(tmp_path / "shop")
    settings = shop.settings(tmp_path)
    version = registry.current(shop.models)
    e = Experiment("audited", "Audited", "h", "conversion", (Variant("a", 0.5, model_version=version),
                                                             Variant("b", 0.5)), start=utc_now() + timedelta(hours=1))
    rows: list[str] = []
    saved = experiments.save_experiment(settings, e, "alan", rows.append)
    assert len(rows) == 1 and rows[0].startswith("experiment audited created (version 1): a 50% (model " + version)

    def failing(detail: str) -> None:
        raise RecsightError("the audit log cannot be written")

    with pytest.raises(RecsightError, match="audit log"):
        experiments.stop_experiment(settings, "audited", "ann", failing)
    assert xs.get(shop.db, "audited") == saved  # no row, no change
    stopped = experiments.stop_experiment(settings, "audited", "ann", rows.append)
    assert stopped.change == xs.STOPPING and "audited stopped (version 2)" in rows[1]
    with pytest.raises(RecsightError, match="is not in the models folder"):  # checked before any row
        experiments.save_experiment(settings, Experiment(
            "unknown-model", "x", "h", "click_through", (Variant("a", 0.5, model_version="nope"), Variant("b", 0.5)),
            start=utc_now() + timedelta(days=9)), "alan", rows.append)
    assert len(rows) == 2


# --------------------------------------------------------------------------- the analysis


def _frame(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"user_id": u, "model_version": "m", "experiment": "x", "variant": v, "lists": 1,
                          "impressions": n, "clicks": c, "carts": 0, "purchases": 0, "revenue": 0.0}
                         for u, v, n, c in rows])


def _definition(shares: tuple[float, float] = (0.5, 0.5)) -> Experiment:
    return Experiment("x", "X", "h", "click_through", (Variant("control", shares[0]), Variant("treatment", shares[1])),
                      start=datetime(2024, 1, 1))


def test_per_customer_arrays_sum_versions_drop_customers_in_two_variants_and_align_the_pre_period() -> None:
    during = _frame([("c1", "control", 10, 1), ("c1", "control", 5, 1), ("c2", "treatment", 8, 2),
                     ("c3", "control", 4, 0), ("c3", "treatment", 4, 4), ("c4", "nonsense", 3, 0)])
    pre = _frame([("c2", "", 20, 5), ("c9", "", 7, 1)])
    arrays = experiments.variant_arrays(during, pre, _definition())
    assert arrays.counts == {"control": 1, "treatment": 1} and (arrays.mixed, arrays.unknown) == (1, 1)
    control, treatment = arrays.variants
    assert (control.customers.impressions.tolist(), control.customers.clicks.tolist()) == ([15.0], [2.0])
    assert control.pre.impressions.tolist() == [0.0] and treatment.pre.impressions.tolist() == [20.0]
    assert arrays.has_pre


def _simulated(n: int, lift: float, seed: int, shares: tuple[float, float] = (0.5, 0.5)) -> tuple[pd.DataFrame,
                                                                                                  pd.DataFrame]:
    """Customers with a habit (their click propensity) seen before and during the experiment."""
    rng = np.random.default_rng(seed)
    habit = rng.beta(2, 30, n)
    variant = np.where(rng.random(n) < shares[0], "control", "treatment")
    shown_pre, shown = rng.integers(20, 60, n), rng.integers(20, 60, n)
    rate = habit * np.where(variant == "treatment", 1 + lift, 1.0)
    users = [f"c{i:05d}" for i in range(n)]
    during = _frame(list(zip(users, variant, shown, rng.binomial(shown, rate))))
    pre = _frame(list(zip(users, [""] * n, shown_pre, rng.binomial(shown_pre, habit))))
    return during, pre


def test_the_report_finds_a_real_lift_cuped_narrows_it_and_the_verdict_names_the_winner() -> None:
    during, pre = _simulated(20_000, 0.15, seed=3)
    arrays = experiments.variant_arrays(during, pre, _definition())
    report = experiments.report_from(_definition(), arrays, k=10, now=datetime(2024, 2, 1))
    assert report.analysis is not None and report.cuped and report.needed_from == "pre-period"
    (comparison,) = report.analysis.comparisons
    assert comparison.lift_low > 0 and comparison.variance_reduction > 0.2
    assert not report.analysis.srm.flagged and report.needed < 20_000
    assert report.analysis.verdict.startswith("Variant treatment wins on click-through")
    plain = experiments.report_from(_definition(), arrays, k=10, cuped=False, now=datetime(2024, 2, 1))
    (raw,) = plain.analysis.comparisons
    assert raw.difference_high - raw.difference_low > comparison.difference_high - comparison.difference_low


def test_a_skewed_split_is_flagged_and_small_variants_show_no_figures() -> None:
    during, pre = _simulated(20_000, 0.0, seed=4, shares=(0.52, 0.48))
    report = experiments.report_from(_definition(), experiments.variant_arrays(during, pre, _definition()), k=10)
    assert report.analysis.srm.flagged and report.analysis.verdict.startswith("Do not trust this result")
    few = experiments.variant_arrays(_frame([(f"c{i}", "control" if i % 2 else "treatment", 10, 1)
                                             for i in range(12)]), None, _definition())
    hidden = experiments.report_from(_definition(), few, k=10)
    assert hidden.analysis is None and "at least 10 customers" in hidden.message
    none = experiments.report_from(_definition(), experiments.variant_arrays(_frame([]), None, _definition()), k=10,
                                   now=datetime(2024, 2, 1))
    assert none.analysis is None and "No impressions of this experiment yet" in none.message


def test_analyse_experiment_reads_the_tagged_impressions_and_their_clicks(tmp_path: Path) -> None:
    db = tmp_path / "shop.duckdb"
    start = utc_now() - timedelta(days=2)
    e = xs.save(db, Experiment("live-x", "X", "h", "click_through", _definition().variants, start=start), "alan",
                now=start - timedelta(minutes=1))
    rng = np.random.default_rng(5)
    shown, events = [], []
    for i in range(60):
        user, variant = f"shopper-{i}", ("control", "treatment")[i % 2]
        ts = start + timedelta(hours=1, minutes=i)
        shown.append({"event_id": f"s{i}", "user_id": user, "ts": ts.isoformat(), "list": "home",
                      "items": ["i1", "i2", "i3"], "model_version": "m1", "experiment": e.id, "variant": variant})
        shown.append({"event_id": f"p{i}", "user_id": user, "ts": (start - timedelta(days=3)).isoformat(),
                      "list": "home", "items": ["i4", "i5"], "model_version": "m1"})
        if rng.random() < 0.5:
            events.append({"event_id": f"e{i}", "user_id": user, "item_id": "i2", "event_type": "click",
                           "ts": (ts + timedelta(minutes=5)).isoformat()})
    assert not LiveStore(db).append_events(events, TEST_SECRET).rejected
    assert not ImpressionStore(db).append(shown, TEST_SECRET).rejected
    settings = Settings(db_path=db, models_dir=tmp_path / "models", secret=TEST_SECRET)
    report = experiments.analyse_experiment(settings, e.id)
    assert report.counts == {"control": 30, "treatment": 30} and report.analysis is not None
    values = {s.variant: s.value * s.customers * 3 for s in report.analysis.summaries}  # 3 items per list
    assert sum(values.values()) == pytest.approx(len(events))  # every click attributed to its variant's impression
    assert report.analysis.verdict.startswith("Not enough data yet")  # 30 customers are not a test
