"""What the Performance page shows, as pure functions of the sums (:mod:`analytics.attribution`):
rates, the k-anonymity rule, the filters' choices, the chart over time, and the tables with the
CSVs behind them.

The measures, per group of impressions (a model version and variant, a position, an hour or a day):

* **lists shown** (distinct impressions) and **item impressions** (items in them);
* **click-through**: attributed clicks per item impression; **conversion**: attributed purchases
  per item impression (each impression row counts once per event type, so both are shares);
* **revenue per thousand item impressions** (RPM), in the shop's currency (:mod:`dashboard.money`).

Click-through by position shows position bias: the first slots are clicked more whatever sits
there, which is why variants are compared over the same positions, never one list's top against
another's tail.

Aggregates only, with the Overview's rule (:mod:`dashboard.k_anonymity`): a group shown to 1 to
k-1 customers shows no number at all (not even how many); clicks and click-through about 1 to k-1 clicking customers,
carts about 1 to k-1 carting ones, and purchases, conversion and revenue about 1 to k-1 buyers
are hidden (missing, "–" on the page, an empty cell in a CSV). Zero is shown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from analytics.attribution import PERIOD, PerformanceFilter
from analytics.impressions import EXPERIMENT, MODEL_VERSION, POSITION, VARIANT
from dashboard.csv_tables import ShownTable, shown_table
from dashboard.k_anonymity import hide
from dashboard.money import format_money, money_label
from dashboard.theme import PALETTE, empty_figure, style
from errors import RecsightError

__all__ = [
    "ALL", "RATES", "HIDDEN", "with_rates", "series_label", "list_options", "version_options", "chosen_filter",
    "kpis", "Table", "position_table", "variant_table", "over_time_table", "ctr_over_time_figure",
]

ALL = "all"  # the filters' "every list" / "every version" (a chosen value is JSON: '"home"', 'null')
HIDDEN = "–"
RATES = ("ctr", "cart_rate", "conversion", "rpm")
_COUNTS = ("lists", "impressions", "customers", "clicks", "carts", "purchases", "clickers", "carters", "buyers")
# count of customers -> the values it hides when it is 1..k-1
_HIDING = {
    "customers": ("lists", "impressions", "customers", "clicks", "carts", "purchases", "revenue", *RATES),
    "clickers": ("clicks", "ctr"),
    "carters": ("carts", "cart_rate"),
    "buyers": ("purchases", "conversion", "revenue", "rpm"),
}
NO_VERSION = "No model version"


def with_rates(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """``frame`` (sums of :func:`analytics.attribution.figures`) with click-through, cart rate,
    conversion and revenue per thousand item impressions, then every value about 1 to k-1
    customers hidden (NaN)."""
    out = frame.copy()
    shown = out["impressions"].where(out["impressions"] > 0)
    out["ctr"] = out["clicks"] / shown
    out["cart_rate"] = out["carts"] / shown
    out["conversion"] = out["purchases"] / shown
    out["rpm"] = out["revenue"] / shown * 1000
    return hide(out, _HIDING, k)


def series_label(model_version: Any, experiment: Any, variant: Any) -> str:
    """"v3 · homepage-test: B", "v3", or "No model version"."""
    name = NO_VERSION if _missing(model_version) else str(model_version)
    return name if _missing(experiment) else f"{name} · {experiment}: {variant}"


# --------------------------------------------------------------------------- filters


def list_options(lists: Sequence[str]) -> list[dict[str, str]]:
    """The list filter's options: every list, then each by name."""
    return [{"label": "All lists", "value": ALL}] + [{"label": name, "value": json.dumps(name)} for name in lists]


def version_options(versions: Sequence[str | None]) -> list[dict[str, str]]:
    """The model-version filter's options: every version, then each (None: sent without one)."""
    return [{"label": "All model versions", "value": ALL}] + [
        {"label": NO_VERSION if v is None else v, "value": json.dumps(v)} for v in versions]


def chosen_filter(list_value: Any, version_value: Any, start: Any, end: Any) -> PerformanceFilter:
    """The filter the page's controls say, checked: values come back from the browser, so a
    damaged one is a one-line refusal, never a crash."""
    chosen_list, list_name = _choice(list_value, "list")
    if chosen_list and list_name is None:  # every impression has a list name
        raise RecsightError("the chosen list is not readable: reload the page")
    chosen_version, version = _choice(version_value, "model version")
    return PerformanceFilter(list_name=list_name, model_version=version, unversioned=chosen_version and version is None,
                             start=_day(start), end=_day(end))


def _choice(value: Any, what: str) -> tuple[bool, str | None]:
    """(whether one value was chosen, that value: a name, or None for "sent without one")."""
    if value in (None, ALL):
        return False, None
    try:
        decoded = json.loads(value)
    except (TypeError, ValueError):
        decoded = 0  # not an option's value
    if decoded is not None and not isinstance(decoded, str):
        raise RecsightError(f"the chosen {what} is not readable: reload the page")
    return True, decoded


def _day(value: Any) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise RecsightError("the chosen dates are not readable: pick them again") from None


# --------------------------------------------------------------------------- KPIs and tables


def kpis(total: pd.DataFrame, currency: str, k: int) -> list[tuple[str, str, str]]:
    """The headline cards for the selection: (label, value, caption) each."""
    row = with_rates(total, k).iloc[0]
    few = f"hidden: fewer than {k} customers" if row["customers"] else "nothing shown in this selection"

    def caption(value: Any, text: str) -> str:
        return few if _missing(value) else text

    return [
        ("Lists shown", _count(row["lists"]), caption(row["lists"], f"{_count(row['impressions'])} item impressions")),
        ("Click-through", _percent(row["ctr"]), caption(row["ctr"], f"{_count(row['clicks'])} attributed clicks")),
        ("Conversion", _percent(row["conversion"]),
         caption(row["conversion"], f"{_count(row['purchases'])} attributed purchases")),
        ("Revenue per 1,000 impressions", _money(row["rpm"], currency),
         caption(row["rpm"], f"{_money(row['revenue'], currency)} attributed revenue")),
    ]


@dataclass(frozen=True)
class Table:
    """A table as the page shows it (headers, rows of text, the right-aligned columns) and its CSV."""

    headers: list[str]
    rows: list[list[str]]
    numeric: set[int]
    csv: ShownTable


_MEASURE_HEADERS = {"lists": "Lists shown", "impressions": "Item impressions", "customers": "Customers",
                    "clicks": "Clicks", "ctr": "Click-through", "carts": "Carts", "purchases": "Purchases",
                    "conversion": "Conversion"}


def _measure_columns(currency: str) -> dict[str, str]:
    return {**_MEASURE_HEADERS, "revenue": money_label("Revenue", currency),
            "rpm": money_label("Revenue per 1,000 impressions", currency)}


def _table(frame: pd.DataFrame, keys: dict[str, str], currency: str) -> Table:
    measures = _measure_columns(currency)
    headers = [*keys.values(), *measures.values()]
    rows = []
    for record in frame.to_dict("records"):
        cells = [str(record[key]) for key in keys]
        for name in measures:
            value = record[name]
            if name in RATES and name != "rpm":
                cells.append(_percent(value))
            elif name in ("revenue", "rpm"):
                cells.append(_money(value, currency))
            else:
                cells.append(_count(value))
        rows.append(cells)
    csv = shown_table(frame, {**keys, **measures}, counts=_COUNTS)
    return Table(headers, rows, set(range(len(keys), len(headers))), csv)


def position_table(frame: pd.DataFrame, currency: str, k: int) -> Table:
    """One row per position (1 = first shown): the measures, hidden where they describe fewer than k."""
    shown = with_rates(frame, k)
    shown[POSITION] = shown[POSITION].astype(int)
    return _table(shown, {POSITION: "Position"}, currency)


def variant_table(frame: pd.DataFrame, currency: str, k: int) -> Table:
    """One row per model version and experiment variant."""
    shown = _labelled(with_rates(frame, k))
    return _table(shown, {"model": "Model version", "experiment_name": "Experiment", "variant_name": "Variant"},
                  currency)


def over_time_table(frame: pd.DataFrame, bucket: str, currency: str, k: int) -> ShownTable:
    """The chart's data: per period and series, every measure (what its CSV holds)."""
    shown = _labelled(with_rates(frame, k))
    period = "Hour (UTC)" if bucket == "hour" else "Day"
    return shown_table(shown, {PERIOD: period, "model": "Model version", "experiment_name": "Experiment",
                               "variant_name": "Variant", **_measure_columns(currency)}, counts=_COUNTS)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["model"] = [NO_VERSION if _missing(v) else v for v in out[MODEL_VERSION]]
    out["experiment_name"] = ["–" if _missing(v) else v for v in out[EXPERIMENT]]
    out["variant_name"] = ["–" if _missing(v) else v for v in out[VARIANT]]
    return out


# --------------------------------------------------------------------------- the chart


def ctr_over_time_figure(frame: pd.DataFrame, bucket: str, k: int, height: int = 340) -> go.Figure:
    """Click-through per period, one line per model version and variant (gaps where hidden)."""
    shown = with_rates(frame, k)
    if shown.empty:
        return empty_figure("No impressions in this selection", height)
    fig = go.Figure()
    groups = shown.groupby([MODEL_VERSION, EXPERIMENT, VARIANT], dropna=False, sort=True)
    for n, (key, part) in enumerate(groups):
        label = series_label(*key)
        fig.add_trace(go.Scatter(
            x=part[PERIOD], y=part["ctr"], name=label, mode="lines+markers", connectgaps=False,
            line={"color": PALETTE[n % len(PALETTE)], "width": 2}, marker={"size": 5},
            customdata=part[["impressions", "clicks"]].astype("float64").to_numpy(),
            hovertemplate=f"<b>{label}</b><br>%{{x}}<br>click-through %{{y:.2%}}<br>"
                          "%{customdata[1]:,.0f} clicks of %{customdata[0]:,.0f} item impressions<extra></extra>",
        ))
    style(fig, height)
    fig.update_layout(showlegend=True, legend={"orientation": "h", "y": -0.2, "x": 0})
    fig.update_yaxes(tickformat=".1%", title_text="click-through", rangemode="tozero")
    fig.update_xaxes(title_text="hour (UTC)" if bucket == "hour" else "day")
    return fig


# --------------------------------------------------------------------------- cells


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value is pd.NA or value is pd.NaT


def _count(value: Any) -> str:
    return HIDDEN if _missing(value) else f"{int(value):,}"


def _percent(value: Any) -> str:
    return HIDDEN if _missing(value) else f"{float(value):.2%}"


def _money(value: Any, currency: str) -> str:
    return HIDDEN if _missing(value) else format_money(value, currency)
