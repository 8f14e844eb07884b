"""The shopper simulator (workflows/simulate.py, `cli.py simulate`): what it sends goes through the
intake and lands where the Performance page and the experiments read it, per variant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analytics import experiments_store
from analytics.experiments_store import Experiment, Variant
from errors import RecsightError
from workflows import recommenders
from workflows.performance import customer_outcomes
from workflows.simulate import SimulationConfig, simulate


@pytest.fixture
def served(shop, tmp_path: Path):
    settings = shop.settings(tmp_path)
    yield settings
    recommenders.forget_all()


def test_visits_become_impressions_and_attributed_clicks(shop, served) -> None:
    result = simulate(served, shop.export / "truth", SimulationConfig(visits=120, seed=3, span_hours=2))
    assert result.visits == 120 and result.skipped_customers == 0 and result.rejected == 0
    (tally,) = result.by_variant.values()
    assert tally.shown == 120 * 10
    outcomes = customer_outcomes(served.db_path)
    assert int(outcomes["lists"].sum()) == 120
    assert int(outcomes["impressions"].sum()) == 120 * 10
    assert int(outcomes["clicks"].sum()) == tally.clicks, "every simulated click is attributed to its list"
    assert int(outcomes["purchases"].sum()) == tally.purchases
    assert result.events >= tally.clicks + tally.carts + tally.purchases


def test_an_experiment_splits_the_visits_and_finds_a_planted_lift(shop, served) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    experiment = Experiment("sim-test", "Simulated", "B gets a planted click lift", "click_through",
                            (Variant("A", 0.5), Variant("B", 0.5)), start=now - timedelta(hours=3))
    experiments_store.save(served.db_path, experiment, "ana", now=now - timedelta(hours=4))
    result = simulate(served, shop.export / "truth",
                      SimulationConfig(visits=400, seed=4, span_hours=2, click_lifts={"B": 1.0}))
    a, b = result.by_variant["A"], result.by_variant["B"]
    assert a.visits + b.visits == 400 and min(a.visits, b.visits) > 150
    # the truth the simulator reports: B's lists are as good, so its planted lift doubles its expected clicks
    assert b.expected_clicks / b.visits == pytest.approx(2 * a.expected_clicks / a.visits, rel=0.25)
    assert b.clicks / b.visits > 1.4 * a.clicks / a.visits
    outcomes = customer_outcomes(served.db_path, experiment="sim-test")
    assert set(outcomes["variant"]) == {"A", "B"}


def test_an_experiment_that_started_just_now_has_nothing_to_simulate(shop, served) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    experiment = Experiment("fresh", "Fresh", "Nothing yet", "click_through", (Variant("A", 0.5), Variant("B", 0.5)),
                            start=now - timedelta(minutes=1))
    experiments_store.save(served.db_path, experiment, "ana", now=now - timedelta(minutes=2))
    with pytest.raises(RecsightError, match="ten minutes"):
        simulate(served, shop.export / "truth", SimulationConfig(visits=10))
