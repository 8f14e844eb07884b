"""The experiment statistics behind the Experiments page: per-variant intervals that count customers
(not impressions) as the unit, lift, CUPED, the sample-ratio check, sample sizes and a verdict that
names a winner only when the data can."""

from __future__ import annotations

import json
import math
from statistics import NormalDist

import numpy as np
import pytest
import statsmodels.api as sm

from analytics.experiment_power import sample_size_for_metric, sample_size_for_rate
from analytics.experiment_stats import (
    METRICS,
    Analysis,
    Comparison,
    Customers,
    SampleRatio,
    Variant,
    VariantSummary,
    analyse,
    compare,
    linearise,
    srm_check,
    summarise,
    verdict,
)
from errors import RecsightError


def shoppers(rng: np.random.Generator, n: int, name: str = "A", lift: float = 0.0,
             habit: float = 1.0) -> Variant:
    """``n`` customers with their own activity and click-through (Beta, mean 5 %), impressions
    Poisson and clicks binomial; the pre-period shares their click-through (``habit`` 1) or has a
    fresh one (``habit`` 0: an uncorrelated covariate)."""
    activity = rng.gamma(2.0, 10.0, n)
    ctr = rng.beta(2.0, 38.0, n)
    pre_ctr = ctr if habit == 1 else rng.beta(2.0, 38.0, n)
    impressions, pre_impressions = rng.poisson(activity), rng.poisson(activity if habit == 1 else 20.0, n)
    clicks = rng.binomial(impressions, np.minimum(ctr * (1 + lift), 1.0))
    purchases = rng.binomial(clicks, 0.2)
    return Variant(name, Customers(impressions, clicks, purchases, purchases * 30.0),
                   Customers(pre_impressions, rng.binomial(pre_impressions, pre_ctr)))


# --- values against the formulas and statsmodels/scipy --------------------------------------------------------

def test_click_through_is_pooled_over_customers_with_the_delta_method_standard_error() -> None:
    impressions, clicks = np.array([10.0, 20, 5, 15, 30, 8]), np.array([1.0, 3, 0, 2, 1, 2])
    summary = summarise(Variant("A", Customers(impressions, clicks)), "click_through")
    n, ratio = 6, clicks.sum() / impressions.sum()
    cov = np.cov(clicks, impressions, ddof=1)  # Deng et al.: (s_Y^2 - 2 R s_XY + R^2 s_X^2) / (n Xbar^2)
    se = math.sqrt((cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / (n * impressions.mean() ** 2))
    assert summary.value == pytest.approx(9 / 88) and summary.customers == 6
    assert summary.se == pytest.approx(se)
    assert (summary.low, summary.high) == pytest.approx((ratio - 1.959964 * se, ratio + 1.959964 * se))


def test_a_per_customer_mean_compares_like_a_welch_z_test() -> None:
    a, b = np.array([0.0, 12, 30, 5, 0, 8, 22]), np.array([10.0, 0, 40, 25, 18, 3])
    ones = lambda v: Customers(np.ones(v.size), np.zeros(v.size), revenue=v)  # noqa: E731
    result = compare(Variant("B", ones(b)), Variant("A", ones(a)), "revenue_per_customer")
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    z = (b.mean() - a.mean()) / se
    assert result.difference == pytest.approx(b.mean() - a.mean())
    assert result.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2)))
    assert result.difference_low == pytest.approx(b.mean() - a.mean() - 1.959964 * se)
    lift_se = math.sqrt(b.var(ddof=1) / b.size / a.mean() ** 2 + b.mean() ** 2 * a.var(ddof=1) / a.size / a.mean() ** 4)
    assert result.lift == pytest.approx(b.mean() / a.mean() - 1)
    assert result.lift_high == pytest.approx(result.lift + 1.959964 * lift_se)


def test_the_delta_method_agrees_with_a_bootstrap_over_customers_and_impressions_are_not_independent() -> None:
    rng = np.random.default_rng(7)
    variant = shoppers(rng, 3000)
    imp, clk = variant.customers.impressions, variant.customers.clicks
    draws = rng.integers(0, imp.size, size=(1000, imp.size))
    boot = (clk[draws].sum(axis=1) / imp[draws].sum(axis=1)).std(ddof=1)
    summary = summarise(variant, "click_through")
    assert summary.se == pytest.approx(boot, rel=0.10)
    naive = math.sqrt(summary.value * (1 - summary.value) / imp.sum())  # as if every impression were a customer
    assert naive < 0.8 * summary.se


def test_other_metrics_are_their_pooled_ratios() -> None:
    variant = shoppers(np.random.default_rng(3), 500)
    c = variant.customers
    assert summarise(variant, "conversion").value == pytest.approx(c.purchases.sum() / c.impressions.sum())
    assert summarise(variant, "revenue_per_mille").value == pytest.approx(1000 * c.revenue.sum() / c.impressions.sum())
    assert summarise(variant, METRICS["revenue_per_customer"]).value == pytest.approx(c.revenue.mean())


# --- CUPED ----------------------------------------------------------------------------------------------------

def test_cuped_removes_variance_a_correlated_pre_period_explains_and_none_from_noise() -> None:
    rng = np.random.default_rng(11)
    habits = compare(shoppers(rng, 4000, "B", 0.05), shoppers(rng, 4000), "click_through", cuped=True)
    plain = compare(shoppers(rng, 4000, "B", 0.05, habit=0), shoppers(rng, 4000, habit=0), "click_through",
                    cuped=True)
    assert habits.cuped and habits.variance_reduction > 0.1
    assert abs(plain.variance_reduction) < 0.01


def test_the_cuped_difference_is_the_treatment_coefficient_of_a_regression_on_the_pre_period() -> None:
    """CUPED with the pooled within-variant theta is ANCOVA on the linearised values (statsmodels OLS)."""
    rng = np.random.default_rng(13)
    treatment, control = shoppers(rng, 2000, "B", 0.05), shoppers(rng, 2500)
    y = np.concatenate([linearise(v.customers, "click_through")[1] for v in (treatment, control)])
    pre_imp = np.concatenate([treatment.pre.impressions, control.pre.impressions])
    pre_clk = np.concatenate([treatment.pre.clicks, control.pre.clicks])
    w = (pre_clk - pre_clk.sum() / pre_imp.sum() * pre_imp) / pre_imp.mean()
    is_treated = np.r_[np.ones(2000), np.zeros(2500)]
    fit = sm.OLS(y, sm.add_constant(np.column_stack([is_treated, w]))).fit()
    assert compare(treatment, control, "click_through", cuped=True).difference == pytest.approx(fit.params[1])


def test_cuped_leaves_the_estimate_unbiased_and_narrows_it_across_repeated_tests() -> None:
    rng = np.random.default_rng(5)
    plain, adjusted = [], []
    for _ in range(200):
        treatment, control = shoppers(rng, 1500, "B", 0.05), shoppers(rng, 1500)
        plain.append(compare(treatment, control, "click_through").lift)
        adjusted.append(compare(treatment, control, "click_through", cuped=True).lift)
    spread = np.std(adjusted, ddof=1)
    assert abs(np.mean(adjusted) - 0.05) < 3 * spread / math.sqrt(200)
    assert spread < 0.95 * np.std(plain, ddof=1)


# --- sample ratio ----------------------------------------------------------------------------------------------

def test_a_52_48_split_of_20000_customers_is_flagged_and_50_3_49_7_is_not() -> None:
    flagged = srm_check({"A": 10_400, "B": 9_600})
    assert flagged.flagged and flagged.statistic == pytest.approx(32.0) and flagged.p_value < 1e-6
    assert flagged.shares == pytest.approx((0.52, 0.48))
    assert not srm_check([10_060, 9_940]).flagged
    assert not srm_check([10_150, 9_850]).flagged  # p = 0.03: unusual, not the p < 0.001 of a broken assignment
    assert not srm_check([12_000, 8_000], planned=[0.6, 0.4]).flagged
    assert srm_check([10_000, 10_000], planned=[0.6, 0.4]).flagged


# --- sample size -----------------------------------------------------------------------------------------------

def test_the_rate_sample_size_is_cohens_h_formula() -> None:
    h = 2 * math.asin(math.sqrt(0.11)) - 2 * math.asin(math.sqrt(0.10))
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    assert sample_size_for_rate(0.10, 0.10) == pytest.approx(2 * (z / h) ** 2, abs=1)  # per variant: Var = 2 / n
    assert sample_size_for_rate(0.10, 0.10) == pytest.approx(14_750, rel=0.01)  # the textbook 10 % -> 11 % figure
    assert sample_size_for_rate(0.10, 0.05) > 3.5 * sample_size_for_rate(0.10, 0.10)


def test_the_metric_sample_size_uses_the_pre_periods_per_customer_spread() -> None:
    pre = shoppers(np.random.default_rng(2), 20_000).customers
    value = pre.clicks.sum() / pre.impressions.sum()
    n = sample_size_for_metric(pre, "click_through", 0.05)
    pseudo_var = summarise(Variant("p", pre), "click_through").se ** 2 * 20_000
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    assert n == pytest.approx(z**2 * pseudo_var * (1 + 1.05**2) / (value * 0.05) ** 2, rel=1e-3)
    assert sample_size_for_metric(pre, "click_through", 0.05, variance_reduction=0.5) == pytest.approx(n / 2, rel=1e-3)
    as_if_impressions_were_customers = sample_size_for_rate(value, 0.05) / pre.impressions.mean()
    assert n > 1.5 * as_if_impressions_were_customers  # keen and idle shoppers spread the metric wider


# --- verdict ---------------------------------------------------------------------------------------------------

def _analysis(comparisons: list[tuple[str, float, float, float, float]], customers: int = 5000,
              srm: tuple[int, ...] | None = None, needed: int | None = None) -> str:
    """The verdict of a hand-made analysis: ``(variant, lift, low, high, p_adjusted)`` against A."""
    names = ["A", *(c[0] for c in comparisons)]
    summaries = tuple(VariantSummary(n, customers, 0.05, 0.001, 0.048, 0.052) for n in names)
    raw = len(comparisons)  # an unadjusted p-value below the adjusted one when there are several
    made = tuple(Comparison(v, "A", lift * 0.05, low * 0.05, high * 0.05, lift, low, high, p / raw, p, False, None)
                 for v, lift, low, high, p in comparisons)
    counts = srm or (customers,) * len(names)
    check = srm_check(dict(zip(names, counts)))
    return verdict(Analysis(METRICS["click_through"], "A", summaries, made, check, needed))


def test_the_verdict_names_a_winner_only_when_the_interval_excludes_no_difference() -> None:
    assert _analysis([("B", 0.061, 0.023, 0.099, 0.001)]) == \
        "Variant B wins on click-through: +6.1 % (95 % interval +2.3 % to +9.9 %)"
    assert _analysis([("B", 0.012, -0.020, 0.045, 0.46)]) == \
        "No clear difference: click-through +1.2 % (95 % interval -2.0 % to +4.5 %)"
    assert _analysis([("B", -0.05, -0.08, -0.02, 0.002)]) == \
        "The control A wins on click-through against variant B: -5.0 % (95 % interval -8.0 % to -2.0 %)"


def test_the_verdict_refuses_before_the_planned_size_and_on_a_sample_ratio_mismatch() -> None:
    assert _analysis([("B", 0.2, 0.1, 0.3, 1e-5)], customers=1240, needed=3900) == \
        "Not enough data yet: 1,240 of the 3,900 customers per variant the test needs"
    assert _analysis([("B", 0.2, 0.1, 0.3, 1e-5)], srm=(10_400, 9_600)) == (
        "Do not trust this result: sample ratio mismatch (52.0 % / 48.0 % of customers against a planned "
        "50.0 % / 50.0 %, p < 0.001)")


def test_several_variants_are_each_against_the_control_with_holm_corrected_p_values() -> None:
    text = _analysis([("B", 0.03, 0.001, 0.06, 0.08), ("C", 0.08, 0.05, 0.11, 0.0001)])
    lines = text.split("\n")
    assert lines[0] == ("Each variant is compared with the control, A, not with each other; "
                        "p-values Holm-corrected for 2 comparisons.")
    assert lines[1].startswith("Variant B: no clear difference from A: click-through +3.0 %")
    assert lines[1].endswith("adjusted p = 0.080)")
    assert lines[2].startswith("Variant C wins on click-through against A: +8.0 %")


def test_analyse_applies_holm_to_several_variants_and_not_to_one() -> None:
    rng = np.random.default_rng(9)
    variants = [shoppers(rng, 3000, "A"), shoppers(rng, 3000, "B", 0.08), shoppers(rng, 3000, "C", 0.02)]
    several = analyse(variants, needed=2000)
    raw = sorted(c.p_value for c in several.comparisons)
    holm = sorted(c.p_adjusted for c in several.comparisons)
    assert holm == pytest.approx([min(1, 2 * raw[0]), min(1, max(2 * raw[0], raw[1]))])
    single = analyse(variants[:2], needed=2000)
    assert single.comparisons[0].p_adjusted == single.comparisons[0].p_value
    assert single.verdict.startswith("Variant B wins on click-through: +")
    json.dumps(several.to_dict())  # what the page and `evaluate --json` hand on


def test_a_control_without_clicks_is_not_enough_data() -> None:
    rng = np.random.default_rng(4)
    control = Variant("A", Customers(rng.poisson(20, 500), np.zeros(500)))
    result = analyse([control, shoppers(rng, 500, "B")])
    assert result.verdict == "Not enough data yet: the control (A) has no clicks"


# --- bad input -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("make", "message"), [
    (lambda: Variant("B", Customers([], [])), "variant 'B' has no customers"),
    (lambda: summarise(Variant("B", Customers([0, 0], [0, 0])), "click_through"), "variant 'B' has no impressions"),
    (lambda: Variant("B", Customers([3, 4, 5], [1, 2])), "clicks has 2 values but impressions has 3"),
    (lambda: Variant("B", Customers([3, 4], [1, -2])), "clicks holds negative or missing values"),
    (lambda: Variant("B", Customers([3, 4], [1, 2]), Customers([3], [1])), "the pre-period has 1 customers"),
    (lambda: Customers([3, 4], ["a", "b"]), "clicks must be numbers"),
    (lambda: summarise(Variant("B", Customers([3], [1])), "revenue_per_customer"), "has no revenue values"),
    (lambda: summarise(Variant("B", Customers([3], [1])), "ctr"), "unknown experiment metric 'ctr'"),
    (lambda: compare(Variant("B", Customers([3, 4], [1, 2])), Variant("A", Customers([3, 4], [1, 2])),
                     "click_through", cuped=True), "CUPED needs the pre-period"),
    (lambda: analyse([Variant("A", Customers([3, 4], [1, 2]))]), "at least two variants"),
    (lambda: analyse([Variant("A", Customers([3, 4], [1, 2]))] * 2), "variant names must differ"),
    (lambda: analyse([Variant("A", Customers([3, 4], [1, 2])), Variant("B", Customers([3, 4], [1, 2]))],
                     control="Z"), "the control 'Z' is not one of the variants"),
    (lambda: srm_check([10, 10], planned=[0.5, 0.3]), "add up to 1"),
    (lambda: srm_check([10, 10, 10], planned=[0.5, 0.5]), "2 planned shares for 3 variants"),
    (lambda: sample_size_for_rate(0.05, 0), "minimum detectable effect must be above 0"),
    (lambda: sample_size_for_rate(1.5, 0.05), "baseline rate must be between 0 and 1"),
    (lambda: sample_size_for_metric(Customers([3, 4], [0, 0]), "click_through", 0.05), "the pre-period has no clicks"),
])
def test_bad_input_is_one_clear_line(make, message: str) -> None:
    with pytest.raises(RecsightError, match=message) as caught:
        make()
    assert "\n" not in str(caught.value)


def test_sample_ratio_to_dict_reports_the_shares() -> None:
    check = srm_check({"A": 600, "B": 400}, planned=[0.6, 0.4])
    assert isinstance(check, SampleRatio) and check.to_dict()["shares"] == [0.6, 0.4]
