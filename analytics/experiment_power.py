"""How many customers per variant an A/B test needs before its verdict is worth reading.

A test read before it reaches its planned size, or sized with no thought for the smallest effect
worth finding, either misses real improvements or (read again and again until it "wins") declares
noise a winner. The page states this number up front and :func:`analytics.experiment_stats.verdict`
refuses to call a result before it is reached.

Two ways in, both through statsmodels' power solver for a two-sided z-test at equal allocation
(:class:`statsmodels.stats.power.NormalIndPower`):

- :func:`sample_size_for_rate`: a yes/no outcome per customer (did they buy) at a baseline rate,
  effect size Cohen's h (:func:`statsmodels.stats.proportion.proportion_effectsize`);
- :func:`sample_size_for_metric`: any metric of :mod:`analytics.experiment_stats`, click-through
  included, from the customers of a pre-period: the per-customer spread of its delta-method
  pseudo-values is the spread the test will see. A ratio metric cannot use the rate formula,
  which would count impressions as if they were independent customers.
"""

from __future__ import annotations

import math

import numpy as np
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from analytics.experiment_stats import ALPHA, Customers, Metric, linearise, metric
from errors import RecsightError

__all__ = ["POWER", "sample_size_for_rate", "sample_size_for_metric"]

POWER = 0.8  # the chance of detecting an effect of exactly the minimum size


def _check(relative_mde: float, alpha: float, power: float) -> None:
    if not relative_mde > 0:
        raise RecsightError(f"the minimum detectable effect must be above 0 (e.g. 0.05 for 5 %), not {relative_mde}")
    if not (0 < alpha < 1 and 0 < power < 1):
        raise RecsightError("alpha and power must be between 0 and 1 (e.g. 0.05 and 0.8)")


def _solve(effect_size: float, alpha: float, power: float) -> int:
    n = NormalIndPower().solve_power(effect_size=effect_size, alpha=alpha, power=power, ratio=1.0,
                                     alternative="two-sided")
    return int(math.ceil(float(np.asarray(n).item())))


def sample_size_for_rate(baseline: float, relative_mde: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Customers per variant to detect a ``relative_mde`` change (0.05: +5 %) of a per-customer
    yes/no rate ``baseline`` (e.g. 0.03 of customers buy) with a two-sided test at ``alpha``."""
    _check(relative_mde, alpha, power)
    if not 0 < baseline < 1:
        raise RecsightError(f"the baseline rate must be between 0 and 1 (e.g. 0.03 for 3 %), not {baseline}")
    target = baseline * (1 + relative_mde)
    if target >= 1:
        raise RecsightError(f"a {relative_mde:.0%} lift on a baseline of {baseline:.1%} would pass 100 %")
    return _solve(abs(float(proportion_effectsize(target, baseline))), alpha, power)


def sample_size_for_metric(pre: Customers, which: str | Metric, relative_mde: float, alpha: float = ALPHA,
                           power: float = POWER, variance_reduction: float = 0.0) -> int:
    """Customers per variant to detect a ``relative_mde`` change of the metric, from a pre-period's
    customers: the baseline is the metric over them and the spread the standard deviation ``s``
    of their delta-method pseudo-values. The lift is taken to scale every customer's behaviour,
    so the treatment's spread is ``(1 + mde) s`` (conservative: the binomial part of the spread
    grows more slowly), and the standardised effect is ``value * mde / sqrt((s^2 + s_t^2) / 2)``.
    ``variance_reduction``: the share CUPED is expected to remove (from a past comparison's
    ``Comparison.variance_reduction``), scaling both variances by ``1 - variance_reduction``."""
    _check(relative_mde, alpha, power)
    if not 0 <= variance_reduction < 1:
        raise RecsightError(f"the variance reduction must be a share from 0 to below 1, not {variance_reduction}")
    if len(pre) < 2:
        raise RecsightError("sizing a test from a pre-period needs at least two of its customers")
    pre.check("the pre-period")
    m = metric(which)
    value, pseudo = linearise(pre, m, "the pre-period")
    if value == 0:
        raise RecsightError(f"the pre-period has no {m.numerator}: a relative effect on {m.label} of 0 is 0")
    spread = float(pseudo.var(ddof=1))
    if spread == 0:
        raise RecsightError(f"every pre-period customer has the same {m.label}: no spread to size a test from")
    pooled = math.sqrt(spread * (1 + (1 + relative_mde) ** 2) / 2 * (1 - variance_reduction))
    return _solve(abs(value) * relative_mde / pooled, alpha, power)
