"""Assignment by pseudonym: the same customer always gets the same variant, shares hold for
20,000 customers, the split is what chance would give, and experiments are independent."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import numpy as np
from scipy import stats

from analytics.experiments_store import Experiment, Variant
from analytics.privacy import pseudonymise
from models.assignment import assign, bucket, variant_index

CUSTOMERS = [pseudonymise(f"customer-{i}", "assignment-test") for i in range(20_000)]


def _experiment(experiment_id: str, *shares: float) -> Experiment:
    variants = tuple(Variant(f"v{i}", share) for i, share in enumerate(shares))
    return Experiment(experiment_id, "test", "h", "click_through", variants, datetime(2025, 1, 1))


def test_the_same_customer_always_gets_the_same_variant() -> None:
    e = _experiment("exp-a", 0.5, 0.5)
    first = [assign(e, c).name for c in CUSTOMERS[:500]]
    again = [assign(_experiment("exp-a", 0.5, 0.5), c).name for c in CUSTOMERS[:500]]
    assert first == again
    assert bucket("exp-a", CUSTOMERS[0]) == bucket("exp-a", CUSTOMERS[0])


def test_shares_hold_within_one_percent_for_20000_customers() -> None:
    for shares in ((0.5, 0.5), (0.2, 0.3, 0.5), (0.9, 0.1)):
        e = _experiment("shares", *shares)
        counts = Counter(assign(e, c).name for c in CUSTOMERS)
        for i, share in enumerate(shares):
            assert abs(counts[f"v{i}"] / len(CUSTOMERS) - share) < 0.01, (shares, counts)


def test_the_split_is_unremarkable_by_chi_square() -> None:
    shares = (0.25, 0.25, 0.5)
    e = _experiment("chi-square", *shares)
    counts = Counter(assign(e, c).name for c in CUSTOMERS)
    observed = [counts[f"v{i}"] for i in range(3)]
    p = stats.chisquare(observed, f_exp=np.array(shares) * len(CUSTOMERS)).pvalue
    assert p > 0.001, observed  # an SRM check at its usual threshold would not flag the assignment itself
    places = np.array([bucket("chi-square", c) for c in CUSTOMERS])
    assert stats.kstest(places, "uniform").pvalue > 0.001  # the buckets are uniform on [0, 1)


def test_different_experiments_assign_independently() -> None:
    a = [assign(_experiment("first", 0.5, 0.5), c).name for c in CUSTOMERS]
    b = [assign(_experiment("second", 0.5, 0.5), c).name for c in CUSTOMERS]
    table = np.array([[sum(1 for x, y in zip(a, b) if x == i and y == j) for j in ("v0", "v1")]
                      for i in ("v0", "v1")])
    assert stats.chi2_contingency(table).pvalue > 0.001, table
    assert 0.48 < np.mean([x == y for x, y in zip(a, b)]) < 0.52  # no more agreement than chance


def test_the_cumulative_shares_decide_and_the_last_variant_takes_the_rounding() -> None:
    assert [variant_index([0.2, 0.3, 0.5], p) for p in (0.0, 0.1999, 0.2, 0.4999, 0.5, 0.9999999)] == [0, 0, 1, 1, 2, 2]
    assert variant_index([0.1] * 10, 0.99999999999) == 9  # ten tenths sum to 0.9999999999999999
