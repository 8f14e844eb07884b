"""The one k-anonymity rule (dashboard/k_anonymity.py): hiding numbers of 1 to k-1 customers,
and the dependence plot's bins of at least k customers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import k_anonymity as ka
from errors import RecsightError


def test_small_is_one_to_k_minus_one():
    assert [ka.small(n, 3) for n in (0, 1, 2, 3, None, float("nan"))] == [False, True, True, False, False, False]


def test_hide_masks_from_the_counts_as_they_came():
    frame = pd.DataFrame({"users": [0, 1, 5], "events": [0, 4, 9], "buyers": [0, 5, 1], "revenue": [0.0, 2.0, 3.0]})
    out = ka.hide(frame, {"users": ("events", "users"), "buyers": ("revenue",)}, 3)
    assert out["users"].fillna(-1).tolist() == [0, -1, 5] and out["events"].fillna(-1).tolist() == [0, -1, 9]
    assert out["revenue"].fillna(-1).tolist() == [0.0, 2.0, -1]
    assert frame["users"].tolist() == [0, 1, 5]  # the input is left alone
    assert ka.hide(frame, {"users": ("events",)}, 1)["events"].dtype == np.int64  # nothing hidden: still counts


def test_hide_kpis_names_what_it_hid():
    numbers = {"users": 20, "buyers": 12, "payers": 4, "viewers": 20, "views": 50, "purchases": 15,
               "revenue": 99.0, "conversion": 0.3, "buyer_share": 0.6}
    out = ka.hide_kpis(numbers, 10)
    assert out["hidden"] == ("revenue",) and out["revenue"] is None and out["purchases"] == 15
    few_viewers = ka.hide_kpis({**numbers, "viewers": 3, "payers": 12}, 10)
    assert few_viewers["hidden"] == ("conversion", "views")


def test_dependence_bins_hold_k_customers_each_and_never_split_a_value():
    rng = np.random.default_rng(0)
    customers = np.repeat(np.arange(60), 5)  # 60 customers, 5 rows each
    values = rng.integers(0, 30, size=len(customers)).astype(float)
    values[:7] = np.nan
    bins, missing = ka.dependence_bins(values, values * 0.1, customers, k=10, max_bins=20)
    assert missing == 7 and bins["rows"].sum() == len(values) - 7
    assert (bins["customers"] >= 10).all() and len(bins) <= 20
    assert bins["value"].is_monotonic_increasing
    assert bins["contribution"].to_numpy() == pytest.approx(bins["value"].to_numpy() * 0.1)


def test_dependence_bins_refuse_fewer_than_k_customers():
    with pytest.raises(RecsightError, match="hidden for privacy"):
        ka.dependence_bins([1.0, 2.0, 3.0], [0.1, 0.2, 0.3], ["a", "b", "b"], k=3)
    bins, _ = ka.dependence_bins([1.0, 2.0, 3.0, 4.0], [0.1, 0.2, 0.3, 0.4], ["a", "b", "c", "c"], k=3)
    assert bins[["rows", "customers"]].values.tolist() == [[4, 3]]  # one bin: a short last one joins it


def test_a_funnel_whose_every_stage_is_hidden_says_so():
    from dashboard.overview_figures import funnel_figure

    nan = float("nan")
    frame = pd.DataFrame({"stage": ["view", "click", "cart", "purchase"], "events": [nan, 0, 0, nan],
                          "users": [nan, 0, 0, nan]})
    figure = funnel_figure(frame, k=10)
    assert not figure.data and "fewer than 10 customers" in figure.layout.annotations[0].text
