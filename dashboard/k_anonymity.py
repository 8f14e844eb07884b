"""k-anonymity per figure: a number is shown only when it describes k or more customers.

Why per figure and not per selection: a selection of k or more customers still holds small
groups. One day of the ``loyal`` segment can have fifteen active customers, of whom one bought
something: its revenue, its purchase count and its conversion describe that one person, and so
does a funnel stage or a day's bar of four customers. So every number the overview shows is
tied to the customers it is computed from, and hidden when they are 1 to k-1:

* counts of events and items, over the customers active in the group;
* purchases and buyer shares, over the customers who bought;
* revenue, over the customers who bought or returned (a return moves revenue as a purchase does);
* views, over the customers who viewed; conversion needs both views and purchases.

Zero is shown: "nobody in this selection bought" is a statement about the whole group, which
has k or more customers (or the page refuses the selection). Hidden values are missing
(``None`` / NaN), and the figures and cards say "fewer than k" where they would be.

The Model page's dependence plot gets the same rule through :func:`dependence_bins`: instead
of one point per sampled row (one customer's feature value and SHAP contribution), points are
means over bins of at least k customers.

Pure functions of frames and dicts, so the queries (:mod:`dashboard.shop_overview`), the model
page's views (:mod:`dashboard.model_insight`) and the tests share one rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from errors import RecsightError

__all__ = ["small", "hide", "hide_kpis", "dependence_bins", "MAX_BINS", "KPI_COUNTS"]

MAX_BINS = 20  # points on the dependence plot at most: enough to read a shape
# Which customer count each KPI is computed from (the rest come from all active customers).
KPI_COUNTS: dict[str, tuple[str, ...]] = {
    "viewers": ("views",),
    "buyers": ("buyers", "purchases", "buyer_share"),
    "payers": ("revenue",),
}


def small(count: Any, k: int) -> bool:
    """Whether ``count`` customers are too few to show a number about: 1 to k-1."""
    if count is None or pd.isna(count):
        return False
    return 0 < int(count) < k


def hide(frame: pd.DataFrame, rules: Mapping[str, Iterable[str]], k: int) -> pd.DataFrame:
    """``frame`` with, for each ``count column -> value columns`` rule, the value columns
    missing (NaN) in the rows where the count column counts 1 to k-1 customers.

    Every mask is taken from the counts as they came, before anything is hidden, so a rule that
    hides its own count column (a funnel stage's customers) does not blind the rules after it.
    """
    out = frame.copy()
    masks = {column: (out[column] > 0) & (out[column] < k) for column in rules}
    for column, values in rules.items():
        if not masks[column].any():
            continue  # nothing to hide: the values keep their type (counts stay integers)
        for value in values:
            out[value] = out[value].astype("float64")
            out.loc[masks[column], value] = np.nan
    return out


def hide_kpis(numbers: Mapping[str, Any], k: int) -> dict[str, Any]:
    """The KPI dict of ``shop_overview.kpis`` with every value about 1 to k-1 customers set to
    None, and ``hidden``: the names of those values (so the page says why, not just "—").

    The customer counts behind them (viewers, payers) are dropped; ``buyers`` stays as the
    "N bought something" figure when it is k or more.
    """
    out = {name: value for name, value in numbers.items() if name not in ("viewers", "payers")}
    hidden: set[str] = set()
    for count, names in KPI_COUNTS.items():
        if small(numbers.get(count), k):
            hidden.update(names)
    if hidden & {"views", "purchases"}:
        hidden.add("conversion")
    for name in hidden:
        out[name] = None
    out["hidden"] = tuple(sorted(hidden))
    return out


def dependence_bins(values: Any, contributions: Any, customers: Any, k: int, max_bins: int = MAX_BINS
                    ) -> tuple[pd.DataFrame, int]:
    """A dependence plot's points as bins of at least k customers each, and how many rows had
    no value (missing feature values cannot be placed on the x axis).

    ``customers`` labels each row with its customer (any hashable; only equality is used). The
    rows are sorted by value and cut into consecutive bins of at least ``max(k, customers /
    max_bins)`` distinct customers, never splitting rows of the same value; a short last bin
    joins the one before. Each bin gives the mean value, the mean contribution, the spread
    (standard deviation) of the contributions, and its rows and customers: means and spreads
    only, never a single row's value (a bin's minimum or maximum would be one customer's).

    Raises RecsightError when the rows with a value cover fewer than k customers.
    """
    frame = pd.DataFrame({"value": np.asarray(values, dtype=float),
                          "contribution": np.asarray(contributions, dtype=float),
                          "customer": np.asarray(customers, dtype=object)})
    known = frame["value"].notna() & frame["contribution"].notna()
    missing = int((~known).sum())
    frame = frame[known].sort_values("value", kind="stable")
    total = int(frame["customer"].nunique())
    if total < k:
        raise RecsightError(f"the feature has a value for {total} sampled customers, fewer than {k}: "
                            "hidden for privacy")
    target = max(k, math.ceil(total / max(1, max_bins)))
    labels = np.zeros(len(frame), dtype=int)
    bin_no, seen, start = 0, set(), 0
    groups = frame.groupby("value", sort=True)["customer"]
    for (_, members), size in zip(groups, groups.size()):
        seen.update(members)
        labels[start:start + size] = bin_no
        start += size
        if len(seen) >= target:
            bin_no, seen = bin_no + 1, set()
    if seen and len(seen) < k and bin_no > 0:  # a short last bin joins the one before
        labels[labels == bin_no] = bin_no - 1
    frame = frame.assign(bin=labels)
    bins = frame.groupby("bin").agg(value=("value", "mean"), contribution=("contribution", "mean"),
                                    spread=("contribution", lambda c: float(np.std(c))),
                                    rows=("value", "size"), customers=("customer", "nunique"))
    return bins.reset_index(drop=True), missing
