"""A/B experiment statistics over per-customer arrays: metrics with intervals, lift, CUPED, SRM, a verdict.

The customer is the unit an experiment randomises, not the impression: one customer's clicks on
the 40 lists they saw are not 40 independent coin flips (a keen shopper clicks a lot everywhere).
A ratio metric such as click-through, ``sum(clicks) / sum(impressions)`` over the customers of a
variant, therefore gets its variance from the delta method over customers (Deng, Knoblich & Lu,
"Applying the Delta Method in Metric Analytics", KDD 2018)::

    R = Ybar / Xbar,   Var(R) ~= (s_Y^2 - 2 R s_XY + R^2 s_X^2) / (n Xbar^2)

which is the variance of the mean of the *linearised* per-customer values
``R + (Y_i - R X_i) / Xbar``. Those pseudo-values are what the tests run on: the difference of two
variants' means of them is ``R_t - R_c`` and statsmodels' unequal-variance z-test on them gives
exactly the delta-method standard error, interval and p-value. A per-customer mean (revenue per
customer) is the same with ``X_i = 1``.

CUPED (Deng, Xu, Kohavi & Walker, WSDM 2013) subtracts ``theta * W_i`` from each pseudo-value,
where ``W_i`` is the customer's linearised value of the same metric in the pre-period (pooled
over the compared variants, so its mean is 0 over them) and ``theta`` the pooled within-variant
slope of the metric on it. The pre-period happened before assignment, so the adjustment changes
no expectation (the estimate stays unbiased) and removes the variance the customer's habits
explain. The sample-ratio check and the verdict sit on top; sample sizes are in
:mod:`analytics.experiment_power`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from errors import RecsightError

__all__ = ["ALPHA", "SRM_ALPHA", "MIN_CUSTOMERS", "Metric", "METRICS", "metric", "Customers", "Variant",
           "VariantSummary", "Comparison", "SampleRatio", "Analysis", "linearise", "summarise", "compare",
           "srm_check", "analyse", "verdict"]

log = logging.getLogger(__name__)

ALPHA = 0.05  # the test's significance level: 95 % intervals
SRM_ALPHA = 0.001  # the usual sample-ratio-mismatch threshold: at 0.05 one healthy test in 20 would be distrusted
MIN_CUSTOMERS = 100  # below this per variant the normal approximation of the delta method is not to be trusted


@dataclass(frozen=True)
class Metric:
    """``sum(numerator) / sum(denominator)`` over a variant's customers, times ``scale``; with no
    denominator, the mean per customer."""

    key: str
    label: str
    numerator: str
    denominator: str | None = "impressions"
    scale: float = 1.0


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("click_through", "click-through", "clicks"),
    Metric("conversion", "conversion", "purchases"),  # purchases per impression
    Metric("revenue_per_mille", "revenue per thousand impressions", "revenue", scale=1000.0),
    Metric("revenue_per_customer", "revenue per customer", "revenue", denominator=None),
)}


def metric(key: str | Metric) -> Metric:
    """The metric named ``key`` (a :class:`Metric` passes through), or a one-line error naming the known ones."""
    if isinstance(key, Metric):
        return key
    if key not in METRICS:
        raise RecsightError(f"unknown experiment metric {key!r}: use one of {', '.join(METRICS)}")
    return METRICS[key]


_COLUMNS = ("impressions", "clicks", "purchases", "revenue")


@dataclass(frozen=True)
class Customers:
    """One value per customer in each array, the customers in the same order in all of them.
    ``purchases`` and ``revenue`` may be left out when no metric of the analysis needs them."""

    impressions: np.ndarray
    clicks: np.ndarray
    purchases: np.ndarray | None = None
    revenue: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in _COLUMNS:
            values = getattr(self, name)
            if values is not None:
                try:
                    array = np.asarray(values, dtype=float)
                except (TypeError, ValueError):
                    raise RecsightError(f"{name} must be numbers, one per customer") from None
                if array.ndim != 1:
                    raise RecsightError(f"{name} must be a flat list, one value per customer")
                object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return int(self.impressions.shape[0])

    def check(self, where: str) -> None:
        """One-line errors for arrays of different lengths and for negative or missing values."""
        for name in _COLUMNS:
            values = getattr(self, name)
            if values is None:
                continue
            if values.shape[0] != len(self):
                raise RecsightError(f"{where}: {name} has {values.shape[0]:,} values but impressions has "
                                    f"{len(self):,} (one value per customer in each)")
            if not np.all(np.isfinite(values)) or np.any(values < 0):
                raise RecsightError(f"{where}: {name} holds negative or missing values")

    def column(self, name: str | None, where: str, label: str) -> np.ndarray:
        """The named array (ones for a per-customer mean), or a one-line error when it was left out."""
        if name is None:
            return np.ones(len(self))
        values = getattr(self, name)
        if values is None:
            raise RecsightError(f"{where} has no {name} values: {label} needs them")
        return values


@dataclass(frozen=True)
class Variant:
    """A variant's customers during the experiment and, optionally, the same customers (same
    order) in the pre-period before it, for CUPED."""

    name: str
    customers: Customers
    pre: Customers | None = None

    def __post_init__(self) -> None:
        if len(self.customers) == 0:
            raise RecsightError(f"variant {self.name!r} has no customers")
        self.customers.check(f"variant {self.name!r}")
        if self.pre is not None:
            self.pre.check(f"variant {self.name!r} (pre-period)")
            if len(self.pre) != len(self.customers):
                raise RecsightError(f"variant {self.name!r}: the pre-period has {len(self.pre):,} customers but the "
                                    f"experiment {len(self.customers):,} (the same customers, in the same order)")


def _rounded(obj: object) -> dict[str, object]:
    return {k: (round(v, 8) if isinstance(v, float) else v) for k, v in asdict(obj).items()}


@dataclass(frozen=True)
class VariantSummary:
    """A variant's metric value, its delta-method standard error and 95 % interval."""

    variant: str
    customers: int
    value: float
    se: float
    low: float
    high: float

    def to_dict(self) -> dict[str, object]:
        return _rounded(self)


@dataclass(frozen=True)
class Comparison:
    """``variant`` against ``control``: the difference of the metric and the lift (relative
    difference) with 95 % intervals, the two-sided p-value (``p_adjusted``: Holm-corrected when
    there are several comparisons, else the same), and with CUPED the share of the difference's
    variance it removed."""

    variant: str
    control: str
    difference: float
    difference_low: float
    difference_high: float
    lift: float | None  # None when the control's value is 0
    lift_low: float | None
    lift_high: float | None
    p_value: float
    p_adjusted: float
    cuped: bool
    variance_reduction: float | None

    def to_dict(self) -> dict[str, object]:
        return _rounded(self)


@dataclass(frozen=True)
class SampleRatio:
    """Customers per variant against the planned shares: chi-square goodness of fit."""

    variants: tuple[str, ...]
    counts: tuple[int, ...]
    planned: tuple[float, ...]
    statistic: float
    p_value: float
    flagged: bool

    @property
    def shares(self) -> tuple[float, ...]:
        total = sum(self.counts)
        return tuple(c / total for c in self.counts) if total else tuple(0.0 for _ in self.counts)

    def to_dict(self) -> dict[str, object]:
        return {**_rounded(self), "shares": [round(s, 6) for s in self.shares]}


@dataclass(frozen=True)
class Analysis:
    """Everything the Experiments page and ``evaluate`` show for one metric of one experiment."""

    metric: Metric
    control: str
    summaries: tuple[VariantSummary, ...]
    comparisons: tuple[Comparison, ...]
    srm: SampleRatio
    needed: int | None
    verdict: str = field(default="")

    def to_dict(self) -> dict[str, object]:
        return {"metric": self.metric.key, "label": self.metric.label, "control": self.control,
                "variants": [s.to_dict() for s in self.summaries],
                "comparisons": [c.to_dict() for c in self.comparisons], "srm": self.srm.to_dict(),
                "needed_per_variant": self.needed, "verdict": self.verdict}


def linearise(customers: Customers, which: str | Metric, where: str = "the data") -> tuple[float, np.ndarray]:
    """The metric's value over ``customers`` and its per-customer pseudo-values
    ``value + scale * (Y_i - R X_i) / Xbar``, whose mean is the value and whose variance over n is
    the delta-method variance of the value (see the module docstring)."""
    m = metric(which)
    y = customers.column(m.numerator, where, m.label)
    x = customers.column(m.denominator, where, m.label)
    xbar = float(x.mean())
    if xbar == 0:
        raise RecsightError(f"{where} has no {m.denominator}: {m.label} needs at least one")
    ratio = float(y.sum() / x.sum())
    return ratio * m.scale, ratio * m.scale + m.scale * (y - ratio * x) / xbar


def _interval(mean: float, se: float, alpha: float) -> tuple[float, float]:
    if se == 0:
        return mean, mean
    low, high = stats.norm.interval(1 - alpha, loc=mean, scale=se)
    return float(low), float(high)


def summarise(variant: Variant, which: str | Metric, alpha: float = ALPHA) -> VariantSummary:
    """The variant's metric value with its delta-method standard error and (1 - alpha) interval."""
    value, pseudo = linearise(variant.customers, which, f"variant {variant.name!r}")
    described = DescrStatsW(pseudo)
    se = float(described.std_mean) if pseudo.size > 1 else 0.0
    return VariantSummary(variant.name, int(pseudo.size), value, se, *_interval(value, se, alpha))


def _cuped(treatment: Variant, control: Variant, m: Metric, y_t: np.ndarray,
           y_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pseudo-values less ``theta * W``: ``W`` the pre-period's linearised metric over both
    variants' customers together (mean 0 over them), ``theta`` the pooled within-variant slope."""
    if treatment.pre is None or control.pre is None:
        raise RecsightError("CUPED needs the pre-period of every compared variant's customers")
    pooled = Customers(*(None if getattr(treatment.pre, c) is None or getattr(control.pre, c) is None
                         else np.concatenate([getattr(treatment.pre, c), getattr(control.pre, c)])
                         for c in _COLUMNS))
    y = pooled.column(m.numerator, "the pre-period", m.label)
    x = pooled.column(m.denominator, "the pre-period", m.label)
    if x.sum() == 0:
        log.info("CUPED skipped: the pre-period has no %s", m.denominator)
        return y_t, y_c
    w = (y - y.sum() / x.sum() * x) / x.mean()
    w_t, w_c = w[:y_t.size], w[y_t.size:]
    spread = float(((w_t - w_t.mean()) ** 2).sum() + ((w_c - w_c.mean()) ** 2).sum())
    if spread == 0:
        log.info("CUPED skipped: the pre-period metric is the same for every customer")
        return y_t, y_c
    theta = float(((y_t - y_t.mean()) * (w_t - w_t.mean())).sum()
                  + ((y_c - y_c.mean()) * (w_c - w_c.mean())).sum()) / spread
    return y_t - theta * w_t, y_c - theta * w_c


def _lift(mean_t: float, var_t: float, mean_c: float, var_c: float,
          alpha: float) -> tuple[float | None, float | None, float | None]:
    """``mean_t / mean_c - 1`` and its delta-method interval for two independent means:
    ``Var ~= var_t / mean_c^2 + mean_t^2 var_c / mean_c^4``."""
    if mean_c == 0:
        return None, None, None
    lift = mean_t / mean_c - 1
    se = float(np.sqrt(var_t / mean_c**2 + mean_t**2 * var_c / mean_c**4))
    return (lift, *_interval(lift, se, alpha))


def compare(treatment: Variant, control: Variant, which: str | Metric, cuped: bool = False,
            alpha: float = ALPHA) -> Comparison:
    """``treatment`` against ``control`` on the metric: difference and lift with (1 - alpha)
    intervals and the z-test's two-sided p-value (statsmodels, unequal variances, on the
    pseudo-values: the delta method); with ``cuped``, on the CUPED-adjusted pseudo-values."""
    m = metric(which)
    _, y_t = linearise(treatment.customers, m, f"variant {treatment.name!r}")
    _, y_c = linearise(control.customers, m, f"variant {control.name!r}")
    if min(y_t.size, y_c.size) < 2:
        raise RecsightError("each compared variant needs at least two customers")
    raw = CompareMeans(DescrStatsW(y_t), DescrStatsW(y_c))
    reduction = None
    if cuped:
        y_t, y_c = _cuped(treatment, control, m, y_t, y_c)
    means = CompareMeans(DescrStatsW(y_t), DescrStatsW(y_c))
    se = float(means.std_meandiff_separatevar)
    if cuped:
        before = float(raw.std_meandiff_separatevar) ** 2
        reduction = 1 - se**2 / before if before > 0 else 0.0
    mean_t, mean_c = float(y_t.mean()), float(y_c.mean())
    difference = mean_t - mean_c
    if se > 0:
        p_value = float(means.ztest_ind(usevar="unequal")[1])
        low, high = (float(v) for v in means.zconfint_diff(alpha=alpha, usevar="unequal"))
    else:  # every customer alike on both sides: the difference is exact
        p_value, low, high = (1.0 if difference == 0 else 0.0), difference, difference
    var_t, var_c = float(y_t.var(ddof=1)) / y_t.size, float(y_c.var(ddof=1)) / y_c.size
    lift, lift_low, lift_high = _lift(mean_t, var_t, mean_c, var_c, alpha)
    return Comparison(treatment.name, control.name, difference, low, high, lift, lift_low, lift_high,
                      p_value, p_value, cuped, reduction)


def srm_check(counts: Mapping[str, int] | Sequence[int], planned: Sequence[float] | None = None,
              threshold: float = SRM_ALPHA) -> SampleRatio:
    """Do the customers per variant fit the planned traffic shares (equal when not given)?
    Chi-square goodness of fit (scipy); flagged when p < ``threshold`` (0.001, the usual SRM
    threshold: a mismatch that unlikely means assignment or logging is broken, not luck)."""
    names = tuple(counts) if isinstance(counts, Mapping) else tuple(f"variant {i + 1}" for i in range(len(counts)))
    observed = np.asarray(list(counts.values()) if isinstance(counts, Mapping) else list(counts), dtype=float)
    if observed.size < 2:
        raise RecsightError("a sample-ratio check needs at least two variants")
    if np.any(observed < 0) or not np.all(np.isfinite(observed)) or observed.sum() == 0:
        raise RecsightError("customers per variant must be counts, not all zero")
    shares = np.full(observed.size, 1 / observed.size) if planned is None else np.asarray(planned, dtype=float)
    if shares.shape != observed.shape:
        raise RecsightError(f"{shares.size} planned shares for {observed.size} variants: give one per variant")
    if np.any(shares <= 0) or abs(shares.sum() - 1) > 1e-6:
        raise RecsightError("planned traffic shares must be positive and add up to 1 (100 %)")
    statistic, p_value = stats.chisquare(observed, f_exp=shares * observed.sum())
    return SampleRatio(names, tuple(int(c) for c in observed), tuple(float(s) for s in shares),
                       float(statistic), float(p_value), bool(p_value < threshold))


def analyse(variants: Sequence[Variant], which: str | Metric = "click_through", *, control: str | None = None,
            planned: Sequence[float] | None = None, cuped: bool = False, needed: int | None = None,
            alpha: float = ALPHA) -> Analysis:
    """One metric of an experiment: every variant's value, each non-control variant against the
    control (the first variant unless named; Holm-corrected p-values when there are several),
    the sample-ratio check against ``planned`` shares, and the verdict (``needed``: customers
    per variant the test was sized for, :mod:`analytics.experiment_power`)."""
    m = metric(which)
    names = [v.name for v in variants]
    if len(variants) < 2:
        raise RecsightError("an experiment needs at least two variants to compare")
    if len(set(names)) != len(names):
        raise RecsightError(f"variant names must differ: {', '.join(names)}")
    control = names[0] if control is None else control
    if control not in names:
        raise RecsightError(f"the control {control!r} is not one of the variants ({', '.join(names)})")
    base = variants[names.index(control)]
    summaries = tuple(summarise(v, m, alpha) for v in variants)
    comparisons = [compare(v, base, m, cuped, alpha) for v in variants if v.name != control]
    if len(comparisons) > 1:
        adjusted = multipletests([c.p_value for c in comparisons], alpha=alpha, method="holm")[1]
        comparisons = [replace(c, p_adjusted=float(p)) for c, p in zip(comparisons, adjusted)]
    srm = srm_check({v.name: len(v.customers) for v in variants}, planned)
    result = Analysis(m, control, summaries, tuple(comparisons), srm, needed)
    return replace(result, verdict=verdict(result, alpha))


def _pct(value: float) -> str:
    return f"{value * 100:+.1f} %"


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def verdict(analysis: Analysis, alpha: float = ALPHA) -> str:
    """The analysis in plain words, refusing to name a winner the data cannot support: a sample
    ratio mismatch distrusts everything, a test short of its planned size (or of
    :data:`MIN_CUSTOMERS`) is not read early (peeking inflates false wins), and a variant wins or
    loses only when its (Holm-adjusted) p-value is below ``alpha``. Several lines with several
    variants, each against the control."""
    m, srm = analysis.metric, analysis.srm
    if srm.flagged:
        p = "p < 0.001" if srm.p_value < 0.001 else f"p = {srm.p_value:.3f}"
        return (f"Do not trust this result: sample ratio mismatch ({' / '.join(_percent(s) for s in srm.shares)}"
                f" of customers against a planned {' / '.join(_percent(s) for s in srm.planned)}, {p})")
    fewest = min(s.customers for s in analysis.summaries)
    needed = max(analysis.needed or 0, MIN_CUSTOMERS)
    if fewest < needed:
        return f"Not enough data yet: {fewest:,} of the {needed:,} customers per variant the test needs"
    control = next(s for s in analysis.summaries if s.variant == analysis.control)
    if control.value == 0:
        return f"Not enough data yet: the control ({analysis.control}) has no {m.numerator}"
    several = len(analysis.comparisons) > 1
    lines = [f"Each variant is compared with the control, {analysis.control}, not with each other; "
             f"p-values Holm-corrected for {len(analysis.comparisons)} comparisons."] if several else []
    level = f"{(1 - alpha) * 100:g} % interval"
    for c in analysis.comparisons:
        if c.lift is None:  # a CUPED-adjusted control mean of 0: say the difference in the metric's units
            figure = f"{c.difference:+.4g} ({level} {c.difference_low:+.4g} to {c.difference_high:+.4g}"
        else:
            figure = f"{_pct(c.lift)} ({level} {_pct(c.lift_low)} to {_pct(c.lift_high)}"
        figure += f"; adjusted p = {c.p_adjusted:.3f})" if several else ")"
        if c.p_adjusted >= alpha and several:
            lines.append(f"Variant {c.variant}: no clear difference from {c.control}: {m.label} {figure}")
        elif c.p_adjusted >= alpha:
            lines.append(f"No clear difference: {m.label} {figure}")
        elif c.difference > 0:
            against = f" against {c.control}" if several else ""
            lines.append(f"Variant {c.variant} wins on {m.label}{against}: {figure}")
        else:
            lines.append(f"The control {c.control} wins on {m.label} against variant {c.variant}: {figure}")
    return "\n".join(lines)
