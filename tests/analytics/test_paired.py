"""The paired bootstrap behind every "served model against X" line: it says "ahead" only when the
per-customer differences are, and its interval narrows with more customers."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.metrics import evaluate_rankings
from analytics.paired import compare_to, paired_bootstrap, per_customer_ndcg


def test_the_same_scores_differ_by_nothing() -> None:
    result = paired_bootstrap([0.2, 0.0, 1.0], [0.2, 0.0, 1.0])
    assert (result.difference, result.low, result.high, result.users) == (0.0, 0.0, 0.0, 3)


def test_a_model_ahead_on_most_customers_has_an_interval_above_zero() -> None:
    rng = np.random.default_rng(1)
    base = rng.random(400)
    result = paired_bootstrap(base + 0.05 + rng.normal(0, 0.02, 400), base)
    assert 0 < result.low < result.difference < result.high
    assert result.relative == pytest.approx(result.difference / base.mean())


def test_noise_around_the_same_mean_straddles_zero_and_more_customers_narrow_it() -> None:
    rng = np.random.default_rng(2)
    small = paired_bootstrap(rng.random(100), rng.random(100))
    large = paired_bootstrap(rng.random(10_000), rng.random(10_000))
    assert small.low < 0 < small.high and large.low < 0 < large.high
    assert large.high - large.low < (small.high - small.low) / 5


def test_the_interval_is_the_same_each_time_and_unpaired_input_is_refused() -> None:
    a, b = [0.1, 0.5, 0.3, 0.9], [0.2, 0.1, 0.3, 0.4]
    assert paired_bootstrap(a, b) == paired_bootstrap(a, b)
    with pytest.raises(ValueError, match="one value per customer"):
        paired_bootstrap([0.1, 0.2], [0.1])
    assert paired_bootstrap([], []).users == 0


def test_per_customer_ndcg_averages_to_the_tables_ndcg() -> None:
    truth = {"u1": {"a": 1.0}, "u2": {"b": 1.0}, "u3": {"c": 1.0}}
    rankings = {"m1": {"u1": ["a", "x"], "u2": ["x", "b"]}, "m2": {"u1": ["x", "a"], "u3": ["c"]}}
    for ranking in rankings.values():
        table = evaluate_rankings(ranking, truth, 10, catalogue_size=5, item_users={}, n_users=3)
        assert np.mean(per_customer_ndcg(ranking, truth, 10)) == pytest.approx(table["ndcg@10"])
    against = compare_to("m1", rankings, truth, 10)
    assert set(against) == {"m2"} and against["m2"]["users"] == 3


def test_the_interval_does_not_depend_on_the_order_the_customers_were_read() -> None:
    rng = np.random.default_rng(3)
    users = [f"u{i}" for i in range(60)]
    truth = {u: {"a": 1.0} for u in users}
    rankings = {"m1": {u: ["a"] if rng.random() < 0.5 else ["x", "a"] for u in users},
                "m2": {u: ["x", "y", "a"] for u in users}}
    shuffled = {u: truth[u] for u in reversed(users)}
    assert compare_to("m1", rankings, truth, 10) == compare_to("m1", rankings, shuffled, 10)
